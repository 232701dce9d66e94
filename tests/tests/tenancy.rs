//! Tenancy with real `corral serve` processes: tenants declared in the config
//! file, isolation and quotas through the followers of a three-voter
//! ensemble, and `corral cli tenant` against a running server.

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use corral_proto::request::{AuthPacket, CreateRequest, PathWatch};
use corral_proto::{Acl, OpCode, Request, Response};
use corral_tests::ensemble::EnsembleProc;
use corral_tests::{corral_bin, ConnectOptions, RawClient, ServerProc};

const QUOTA_EXCEEDED: i32 = -125;
const AUTH_FAILED: i32 = -115;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn create(path: &str) -> Request {
    Request::Create(
        OpCode::Create,
        CreateRequest {
            path: path.into(),
            data: Some(b"d".to_vec()),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        },
    )
}

fn children(path: &str) -> Request {
    Request::GetChildren(PathWatch {
        path: path.into(),
        watch: false,
    })
}

fn auth(user_password: &str) -> Request {
    Request::Auth(AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: user_password.as_bytes().to_vec(),
    })
}

/// `corral hash-password <password>`: the argon2 hash a config file holds.
fn hash(password: &str) -> Result<String> {
    let out = Command::new(corral_bin()?)
        .args(["hash-password", password])
        .output()
        .context("corral hash-password")?;
    ensure!(out.status.success(), "hash-password failed");
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// A session authenticated (and so bound) as `user:password`.
async fn session(addr: std::net::SocketAddr, user_password: &str) -> Result<RawClient> {
    let c = RawClient::connect_opts(addr, ConnectOptions::default()).await?;
    let (h, _) = c.request(auth(user_password)).await?;
    ensure!(h.err == 0, "auth {user_password}: {}", h.err);
    Ok(c)
}

async fn names(c: &RawClient, path: &str) -> Result<Vec<String>> {
    let (h, body) = c.request(children(path)).await?;
    ensure!(h.err == 0, "getChildren {path}: {}", h.err);
    match body {
        Response::Children(mut v) => {
            v.sort();
            Ok(v)
        }
        other => anyhow::bail!("getChildren {path}: {other:?}"),
    }
}

/// Waits (as super) until the leader has written the configured tenants
/// team-a and team-b, which it does once it leads, and their roots.
async fn wait_for_tenants(sup: &RawClient) -> Result<()> {
    let t0 = std::time::Instant::now();
    loop {
        let (h, _) = sup.request(Request::Sync("/".into())).await?;
        ensure!(h.err == 0);
        let have = names(sup, "/zookeeper/corral/tenants")
            .await
            .unwrap_or_default();
        let roots = sup.request(children("/tenants")).await?.0.err == 0;
        if have == ["team-a", "team-b"]
            && roots
            && names(sup, "/tenants").await? == ["team-a", "team-b"]
        {
            return Ok(());
        }
        ensure!(
            t0.elapsed() < Duration::from_secs(20),
            "tenants never appeared: {have:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Config text for tenants team-a (alice:pa, with `a_quotas`) and team-b
/// (bob:pb), bound by digest.
fn two_tenants(a_quotas: &str) -> Result<String> {
    Ok(format!(
        "[{{ name = \"team-a\", quotas = {{ {a_quotas} }}, bindings = [{{ kind = \"digest\", user = \"alice\", password_hash = \"{}\" }}] }}, \
         {{ name = \"team-b\", bindings = [{{ kind = \"digest\", user = \"bob\", password_hash = \"{}\" }}] }}]",
        hash("pa")?,
        hash("pb")?
    ))
}

/// Three voters and an observer with [`two_tenants`], unbound sessions
/// refused and the harness's super user; returns once all serve, with the
/// leader's index.
fn tenant_ensemble(a_quotas: &str) -> Result<(EnsembleProc, usize)> {
    let e = EnsembleProc::builder(3)
        .set("tenants", &two_tenants(a_quotas)?)
        .set("tenant_unbound", "\"refuse\"")
        .set("zk_super_digest", "\"super:D/InIHSb7yEEbrWz8b9l71RjZJU=\"")
        .observers(1)
        .start()?;
    let leader = e.wait_serving(Duration::from_secs(30))?;
    e.wait_observers(Duration::from_secs(30))?;
    Ok((e, leader))
}

#[test]
fn followers_and_observers_enforce_config_tenants_isolation_and_quota() -> Result<()> {
    // Goal: tenants declared in the config file exist on every voter and on
    // an observer; writes through the followers and the observer stay in
    // their namespace and racing creators on different nodes (voters and
    // the observer) never pass the leader-decided quota; each tenant sees
    // only its own data, on the observer too; super sees both.
    let (e, leader) = tenant_ensemble("max_znodes = 12")?;
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    rt().block_on(async {
        let sup = session(e.addr(followers[0]), "super:test").await?;
        wait_for_tenants(&sup).await?;
        // Four alice sessions, on both followers, the leader and the
        // observer, race for 12 slots.
        let mut tasks = Vec::new();
        let racers = [
            e.addr(followers[0]),
            e.addr(followers[1]),
            e.addr(leader),
            e.observer_addr(0),
        ];
        for (k, addr) in racers.into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                let c = session(addr, "alice:pa").await?;
                let mut pending = Vec::new();
                for i in 0..8 {
                    pending.push(c.send(&create(&format!("/n{k}-{i}"))).await?);
                }
                let mut codes = Vec::new();
                for p in pending {
                    codes.push(p.wait().await?.header.err);
                }
                anyhow::Ok(codes)
            }));
        }
        let mut ok = 0;
        for t in tasks {
            for code in t.await?? {
                match code {
                    0 => ok += 1,
                    QUOTA_EXCEEDED => {}
                    other => anyhow::bail!("unexpected {other}"),
                }
            }
        }
        ensure!(ok == 12, "{ok} creates passed a 12-znode quota");
        // Bob on the observer sees none of it, and his data lands in his
        // namespace.
        let bob = session(e.observer_addr(0), "bob:pb").await?;
        ensure!(names(&bob, "/").await?.is_empty());
        let (h, body) = bob.request(create("/mine")).await?;
        ensure!(
            h.err == 0 && body == Response::Path("/mine".into()),
            "{h:?} {body:?}"
        );
        let (h, _) = bob.request(create("/../team-a/x")).await?;
        ensure!(h.err == -8, "escape: {}", h.err);
        let alice = session(e.addr(followers[1]), "alice:pa").await?;
        let (h, _) = alice.request(Request::Sync("/".into())).await?;
        ensure!(h.err == 0);
        let mine = names(&alice, "/").await?;
        ensure!(
            mine.len() == 12 && mine.iter().all(|n| n.starts_with('n')),
            "{mine:?}"
        );
        let (h, _) = sup.request(Request::Sync("/".into())).await?;
        ensure!(h.err == 0);
        ensure!(names(&sup, "/tenants/team-b").await? == ["mine"]);
        ensure!(names(&sup, "/tenants/team-a").await?.len() == 12);
        Ok(())
    })
}

/// Connects to `addr` and authenticates as `user_password`: the auth
/// reply's code, and the client when it was admitted.
async fn try_session(
    addr: std::net::SocketAddr,
    opts: ConnectOptions,
    user_password: &str,
) -> Result<(i32, Option<RawClient>)> {
    let c = RawClient::connect_opts(addr, opts).await?;
    let (h, _) = c.request(auth(user_password)).await?;
    Ok((h.err, (h.err == 0).then_some(c)))
}

fn resume(c: &RawClient) -> ConnectOptions {
    ConnectOptions {
        session_id: c.session_id(),
        passwd: c.passwd().to_vec(),
        ..ConnectOptions::default()
    }
}

#[test]
fn session_bindings_are_replicated_state_across_voters_and_observers() -> Result<()> {
    // Goal: max_sessions holds cluster-wide: sessions binding to one tenant
    // at once through both followers, the leader and an observer get exactly
    // max_sessions slots, and a close frees one anywhere; a session bound to
    // A on one node, resumed on another with B's identity, is refused
    // (AuthFailed) and stays A's; resumed with A's identity it works in A's
    // namespace.
    let (e, leader) = tenant_ensemble("max_sessions = 3")?;
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let nodes = [
        e.addr(followers[0]),
        e.addr(followers[1]),
        e.addr(leader),
        e.observer_addr(0),
    ];
    rt().block_on(async {
        let sup = session(e.addr(leader), "super:test").await?;
        wait_for_tenants(&sup).await?;
        let mut tasks = Vec::new();
        for addr in nodes.iter().chain(nodes.iter()) {
            let addr = *addr;
            tasks.push(tokio::spawn(async move {
                try_session(addr, ConnectOptions::default(), "alice:pa").await
            }));
        }
        let mut admitted = Vec::new();
        for t in tasks {
            match t.await?? {
                (0, Some(c)) => admitted.push(c),
                (QUOTA_EXCEEDED, None) => {}
                (other, _) => anyhow::bail!("unexpected bind result {other}"),
            }
        }
        ensure!(
            admitted.len() == 3,
            "{} sessions bound under max_sessions = 3",
            admitted.len()
        );
        for addr in nodes {
            let (code, _) = try_session(addr, ConnectOptions::default(), "alice:pa").await?;
            ensure!(
                code == QUOTA_EXCEEDED,
                "a fourth session via {addr}: {code}"
            );
        }
        // A session bound on one node moves to another node.
        let moving = admitted.remove(0);
        let from = moving.addr();
        let to = *nodes.iter().find(|a| **a != from).expect("another node");
        let opts = resume(&moving);
        moving.disconnect().await;
        let (code, _) = try_session(to, opts.clone(), "bob:pb").await?;
        ensure!(
            code == AUTH_FAILED,
            "B's identity on the session's new node: {code}"
        );
        let (code, back) = try_session(to, opts, "alice:pa").await?;
        ensure!(code == 0, "A's identity on the session's new node: {code}");
        let back = back.expect("admitted");
        let (h, body) = back.request(create("/moved")).await?;
        ensure!(
            h.err == 0 && body == Response::Path("/moved".into()),
            "{h:?} {body:?}"
        );
        let (h, _) = sup.request(Request::Sync("/".into())).await?;
        ensure!(h.err == 0);
        ensure!(names(&sup, "/tenants/team-a").await? == ["moved"]);
        ensure!(names(&sup, "/tenants/team-b").await?.is_empty());
        // The move took no second slot; a close frees one for any node.
        let (code, _) =
            try_session(e.observer_addr(0), ConnectOptions::default(), "alice:pa").await?;
        ensure!(code == QUOTA_EXCEEDED, "after the move: {code}");
        let h = back.close().await?;
        ensure!(h.err == 0, "close: {}", h.err);
        let (code, _) =
            try_session(e.observer_addr(0), ConnectOptions::default(), "alice:pa").await?;
        ensure!(code == 0, "after a close: {code}");
        Ok(())
    })
}

fn cli(server: &ServerProc, args: &[&str]) -> Result<(bool, String)> {
    corral_tests::corral_cli(server.addr(), Some("super:test"), args)
}

#[test]
fn cli_creates_updates_lists_shows_and_deletes_tenants() -> Result<()> {
    // Goal: `corral cli tenant` manages tenants on a running server: a created
    // tenant binds at once and its quota holds, an update applies to the next
    // write, `usage` shows the tree usage against the quotas, bad input fails
    // with a message and changes nothing, and delete removes the record but
    // keeps the data.
    let server = ServerProc::builder()
        .set("tenant_unbound", "\"refuse\"")
        .start()?;
    let (ok, out) = cli(
        &server,
        &[
            "tenant",
            "create",
            "team-x",
            "--bind-digest",
            "xu:xp",
            "--quota",
            "max_znodes=2",
        ],
    )?;
    ensure!(ok, "create: {out}");
    let (ok, out) = cli(&server, &["tenant", "list"])?;
    ensure!(ok && out.contains("team-x\t/tenants/team-x"), "list: {out}");
    let (ok, out) = cli(&server, &["tenant", "show", "team-x"])?;
    ensure!(ok && out.contains("\"max_znodes\": 2"), "show: {out}");
    for (args, expect) in [
        (vec!["tenant", "create", "Bad_Name"], "invalid tenant name"),
        (vec!["tenant", "create", "team-x"], "already exists"),
        (
            vec!["tenant", "create", "team-y", "--root", "/tenants/team-x/in"],
            "overlaps",
        ),
        (
            vec!["tenant", "update", "nope", "--quota", "max_znodes=1"],
            "no tenant",
        ),
        (
            vec!["tenant", "update", "team-x", "--quota", "max_things=1"],
            "not a quota name",
        ),
    ] {
        let (ok, out) = cli(&server, &args)?;
        ensure!(!ok && out.contains(expect), "{args:?}: {out}");
    }
    rt().block_on(async {
        let x = session(server.addr(), "xu:xp").await?;
        for (p, want) in [("/a", 0), ("/b", 0), ("/c", QUOTA_EXCEEDED)] {
            let (h, _) = x.request(create(p)).await?;
            ensure!(h.err == want, "{p}: {}", h.err);
        }
        anyhow::Ok(())
    })?;
    let (ok, out) = cli(
        &server,
        &["tenant", "update", "team-x", "--quota", "max_znodes=3"],
    )?;
    ensure!(ok, "update: {out}");
    rt().block_on(async {
        let x = session(server.addr(), "xu:xp").await?;
        let (h, _) = x.request(create("/c")).await?;
        ensure!(h.err == 0, "after update: {}", h.err);
        anyhow::Ok(())
    })?;
    // Usage against the quotas: three 1-byte znodes below the root.
    let (ok, out) = cli(&server, &["tenant", "usage", "team-x"])?;
    ensure!(
        ok && out.contains("znodes\t3\t3")
            && out.contains("data_bytes\t3\tno limit")
            && out.contains("ephemerals\t0\tno limit"),
        "usage: {out}"
    );
    let (ok, out) = cli(&server, &["tenant", "usage", "nope"])?;
    ensure!(
        !ok && out.contains("no tenant"),
        "usage of a missing tenant: {out}"
    );
    let (ok, out) = cli(&server, &["tenant", "delete", "team-x"])?;
    ensure!(ok && out.contains("kept"), "delete: {out}");
    let (ok, out) = cli(&server, &["tenant", "list"])?;
    ensure!(ok && !out.contains("team-x"), "list after delete: {out}");
    let (ok, out) = Command::new(corral_bin()?)
        .args([
            "cli",
            "--server",
            &server.addr().to_string(),
            "tenant",
            "list",
        ])
        .env_remove("CORRAL_SUPER_AUTH")
        .output()
        .map(|o| {
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).to_string(),
            )
        })?;
    ensure!(!ok && out.contains("super credentials"), "no auth: {out}");
    rt().block_on(async {
        let sup = session(server.addr(), "super:test").await?;
        ensure!(names(&sup, "/tenants/team-x").await? == ["a", "b", "c"]);
        anyhow::Ok(())
    })
}
