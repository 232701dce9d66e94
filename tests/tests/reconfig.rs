//! Dynamic reconfiguration against real `corral serve` ensembles, driven by a
//! third-party client (the `zookeeper-client` crate).

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use corral_tests::ensemble::EnsembleProc;
use corral_tests::reconfig::{connect, parse, reconfig, wait_mode, wait_not_serving, SUPER_DIGEST};
use corral_tests::req::rt;
use zookeeper_client as zk;

#[test]
fn reconfig_adds_and_removes_observers_with_zookeepers_checks() -> Result<()> {
    // Goal: /zookeeper/config shows the ensemble; only a super user may
    // reconfig; adding and removing an observer commits on every server and
    // fires config watches; a stale fromConfig is BADVERSION, bad input
    // BADARGUMENTS, a second voter set without a synced quorum
    // NEWCONFIGNOQUORUM — as kazoo's TestReconfig and ZooKeeper expect.
    let e = EnsembleProc::builder(3)
        .set("reconfig_enabled", "true")
        .set("zk_super_digest", SUPER_DIGEST)
        .start()?;
    e.wait_serving(Duration::from_secs(20))?;
    rt().block_on(async {
        let anon = connect(e.addr(0)).await?;
        let (data, stat) = anon.get_config().await?;
        let initial = parse(&data)?;
        ensure!(
            initial.voters().len() == 3 && initial.version == 0,
            "{initial:?}"
        );
        ensure!(stat.version == 0, "{stat:?}");
        let joining = "server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456";
        let add = || zk::EnsembleUpdate::Incremental {
            joinings: vec![joining].into_iter(),
            leavings: Vec::new().into_iter(),
        };
        let r = anon.update_ensemble(add(), None).await;
        ensure!(r == Err(zk::Error::NoAuth), "anonymous reconfig: {r:?}");

        let admin = connect(e.addr(1)).await?;
        admin.auth("digest", b"super:test").await?;
        let (_, _, watch) = anon.get_and_watch_config().await?;
        let (data, stat) = admin.update_ensemble(add(), None).await?;
        let text = String::from_utf8(data.clone())?;
        ensure!(text.contains(joining), "{text}");
        ensure!(
            stat.version == -1,
            "ZooKeeper's reconfig stores data version -1: {stat:?}"
        );
        let added = parse(&data)?;
        ensure!(
            added.version == stat.mzxid,
            "version is the reconfig's zxid: {text}"
        );
        ensure!(
            added.voters() == initial.voters(),
            "an observer does not vote"
        );
        let ev = tokio::time::timeout(Duration::from_secs(5), watch.changed()).await?;
        ensure!(ev.event_type == zk::EventType::NodeDataChanged, "{ev:?}");
        for i in 0..3 {
            let c = connect(e.addr(i)).await?;
            c.sync("/").await?;
            let (d, _) = c.get_config().await?;
            ensure!(d == data, "node {i} shows another configuration");
        }

        let (data, _) = admin
            .update_ensemble(
                zk::EnsembleUpdate::Incremental {
                    joinings: Vec::new().into_iter(),
                    leavings: vec!["100"].into_iter(),
                },
                None,
            )
            .await?;
        ensure!(!String::from_utf8(data.clone())?.contains(joining));
        let current = parse(&data)?;
        let r = admin
            .update_ensemble(add(), Some(current.version + 1))
            .await;
        ensure!(r == Err(zk::Error::BadVersion), "future fromConfig: {r:?}");
        let r = admin
            .update_ensemble(
                zk::EnsembleUpdate::Incremental {
                    joinings: vec!["some thing"].into_iter(),
                    leavings: Vec::new().into_iter(),
                },
                None,
            )
            .await;
        ensure!(
            matches!(r, Err(zk::Error::BadArguments(_))),
            "bad joiner: {r:?}"
        );
        let r = admin
            .update_ensemble(
                zk::EnsembleUpdate::New {
                    ensemble: [
                        "server.7=127.0.0.1:7001:7002:participant;127.0.0.1:7003",
                        "server.8=127.0.0.1:8001:8002:participant;127.0.0.1:8003",
                    ]
                    .into_iter(),
                },
                Some(current.version),
            )
            .await;
        // The crate has no variant for NEWCONFIGNOQUORUM (-13).
        ensure!(
            r == Err(zk::Error::UnexpectedErrorCode(-13)),
            "absent voters: {r:?}"
        );
        // The configuration is unchanged by the refused attempts.
        let (d, _) = admin.get_config().await?;
        ensure!(parse(&d)? == current);
        Ok(())
    })
}

#[test]
fn reconfig_is_refused_when_disabled() -> Result<()> {
    // Goal: without reconfig_enabled an ensemble answers RECONFIGDISABLED, as ZooKeeper does by default.
    let e = EnsembleProc::builder(3)
        .set("zk_super_digest", SUPER_DIGEST)
        .start()?;
    e.wait_serving(Duration::from_secs(20))?;
    rt().block_on(async {
        let admin = connect(e.addr(0)).await?;
        admin.auth("digest", b"super:test").await?;
        let r = admin
            .update_ensemble(
                zk::EnsembleUpdate::Incremental {
                    joinings: Vec::new().into_iter(),
                    leavings: vec!["3"].into_iter(),
                },
                None,
            )
            .await;
        ensure!(r == Err(zk::Error::ReconfigDisabled), "{r:?}");
        Ok(())
    })
}

#[test]
fn voters_join_leave_and_are_replaced_with_no_restart() -> Result<()> {
    // Goal: grow 3 → 5 voters, shrink back to 3, and replace a voter, each by
    // one reconfig with no restart; new voters catch up and serve, removed
    // ones are cut off and stop serving, and every write survives.
    let mut e = EnsembleProc::builder(3)
        .set("reconfig_enabled", "true")
        .set("zk_super_digest", SUPER_DIGEST)
        .spare_observers(3)
        .start()?;
    let r = join_leave_replace(&mut e);
    if r.is_err() {
        for (i, n) in e.nodes.iter().enumerate() {
            eprintln!("--- node index {i} ---\n{}", n.log_tail(200));
        }
    }
    r
}

fn join_leave_replace(e: &mut EnsembleProc) -> Result<()> {
    let e = &mut *e;
    e.wait_serving(Duration::from_secs(20))?;
    let rt = rt();
    let (i4, s4) = e.add_voter()?;
    let (i5, s5) = e.add_voter()?;
    // The joiners follow the leader as non-voting learners first.
    e.wait_serving(Duration::from_secs(30))?;
    let c = rt.block_on(reconfig(e, 0, &[&s4, &s5], &[]))?;
    ensure!(c.voters().len() == 5, "{c:?}");
    e.wait_serving(Duration::from_secs(30))?;
    let write = |e: &EnsembleProc, node: usize, path: &str| -> Result<()> {
        rt.block_on(async {
            let c = connect(e.addr(node)).await?;
            c.create(
                path,
                b"v",
                &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
            )
            .await
            .with_context(|| format!("create {path} via node {node}"))?;
            Ok(())
        })
    };
    write(e, i4, "/through-4")?;
    write(e, i5, "/through-5")?;

    let c = rt.block_on(reconfig(e, i4, &[], &["4", "5"]))?;
    ensure!(c.voters().len() == 3, "{c:?}");
    e.wait_serving_among(&[0, 1, 2], Duration::from_secs(30))?;
    wait_not_serving(e, i4, Duration::from_secs(15))?;
    wait_not_serving(e, i5, Duration::from_secs(15))?;
    write(e, 1, "/after-shrink")?;

    // Replace a follower (the leader's own removal is below).
    let leader = e.leader().context("a leader")?;
    let old = (0..3).find(|&i| i != leader).context("a follower")?;
    let keep: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let (i6, s6) = e.add_voter()?;
    e.wait_serving_among(&[0, 1, 2, i6], Duration::from_secs(30))?;
    let gone = (old + 1).to_string();
    let c = rt.block_on(reconfig(e, keep[0], &[&s6], &[&gone]))?;
    let mut want: Vec<u64> = keep.iter().map(|&i| i as u64 + 1).collect();
    want.push(6);
    ensure!(c.voters().into_iter().collect::<Vec<_>>() == want, "{c:?}");
    let members = [keep[0], keep[1], i6];
    e.wait_serving_among(&members, Duration::from_secs(30))?;
    wait_not_serving(e, old, Duration::from_secs(15))?;
    write(e, i6, "/through-6")?;
    rt.block_on(async {
        for i in members {
            let c = connect(e.addr(i)).await?;
            c.sync("/").await?;
            for p in ["/through-4", "/through-5", "/after-shrink", "/through-6"] {
                ensure!(c.check_stat(p).await?.is_some(), "node {i} lacks {p}");
            }
            let (d, _) = c.get_config().await?;
            ensure!(parse(&d)?.voters().len() == 3);
        }
        Ok(())
    })
}

#[test]
fn an_observer_becomes_a_voter_and_a_voter_an_observer() -> Result<()> {
    // Goal: a reconfig that lists an observer as a participant turns it into
    // a voter (it restarts in that role, keeps its data and serves as a
    // follower), and one that lists a voter as an observer turns it into an
    // observer fed by the voters; writes keep working throughout.
    let e = EnsembleProc::builder(3)
        .set("reconfig_enabled", "true")
        .set("zk_super_digest", SUPER_DIGEST)
        .observers(1)
        .start()?;
    e.wait_serving(Duration::from_secs(20))?;
    e.wait_observers(Duration::from_secs(30))?;
    let rt = rt();
    rt.block_on(async {
        let c = connect(e.observer_addr(0)).await?;
        c.create(
            "/before",
            b"v",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
        )
        .await?;
        Ok::<_, anyhow::Error>(())
    })?;
    let obs = e.observer_addr(0);
    let peer = corral_tests::ensemble::pick_free_udp_port();
    let spec = format!(
        "server.4=127.0.0.1:{peer}:{}:participant;{obs}",
        corral_tests::ensemble::pick_free_udp_port()
    );
    let c = rt.block_on(reconfig(&e, 0, &[&spec], &[]))?;
    ensure!(c.voters().len() == 4, "{c:?}");
    wait_mode(obs, "follower", Duration::from_secs(30))
        .with_context(|| e.observers[0].log_tail(30))?;
    rt.block_on(async {
        let c = connect(obs).await?;
        c.sync("/").await?;
        ensure!(
            c.check_stat("/before").await?.is_some(),
            "the promoted voter lost data"
        );
        c.create(
            "/via-promoted",
            b"v",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
        )
        .await?;
        Ok(())
    })?;

    // A follower other than node 1 becomes an observer.
    let leader = e.leader().context("a leader")?;
    let f = (1..3).find(|&i| i != leader).context("a follower")?;
    let addr = e.addr(f);
    let entry = c.servers.get(&(f as u64 + 1)).context("its entry")?;
    let spec = format!(
        "server.{}={}:{}:{}:observer;{}",
        entry.id,
        entry.host,
        entry.quorum_port,
        entry.election_port + 1,
        addr
    );
    let c = rt.block_on(reconfig(&e, 0, &[&spec], &[]))?;
    ensure!(c.voters().len() == 3, "{c:?}");
    wait_mode(addr, "observer", Duration::from_secs(30))
        .with_context(|| e.nodes[f].log_tail(30))?;
    rt.block_on(async {
        let c = connect(addr).await?;
        c.sync("/").await?;
        for p in ["/before", "/via-promoted"] {
            ensure!(
                c.check_stat(p).await?.is_some(),
                "the new observer lacks {p}"
            );
        }
        c.create(
            "/via-demoted",
            b"v",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
        )
        .await?;
        let c0 = connect(e.addr(0)).await?;
        c0.sync("/").await?;
        ensure!(c0.check_stat("/via-demoted").await?.is_some());
        Ok(())
    })
}

fn cli(e: &EnsembleProc, auth: bool, args: &[&str]) -> Result<(bool, String)> {
    corral_tests::corral_cli(e.addr(0), auth.then_some("super:test"), args)
}

#[test]
fn corral_cli_reconfig_shows_adds_and_removes_servers() -> Result<()> {
    // Goal: `corral cli reconfig show|add|remove` reads and changes the
    // membership as the super user, refuses without credentials, and reports
    // a stale --from-config as ZooKeeper's BADVERSION.
    let e = EnsembleProc::builder(3)
        .set("reconfig_enabled", "true")
        .set("zk_super_digest", SUPER_DIGEST)
        .start()?;
    e.wait_serving(Duration::from_secs(20))?;
    let (ok, out) = cli(&e, false, &["reconfig", "show"])?;
    ensure!(
        ok && out.matches(":participant;").count() == 3,
        "show: {out}"
    );
    ensure!(out.contains("version=0"), "show: {out}");
    let spec = "server.100=127.0.0.1:41234:41235:observer;127.0.0.1:41236";
    let (ok, out) = cli(&e, false, &["reconfig", "add", spec])?;
    ensure!(
        !ok && out.contains("super credentials"),
        "add without auth: {out}"
    );
    let (ok, out) = cli(&e, true, &["reconfig", "add", spec])?;
    ensure!(ok && out.contains(spec), "add: {out}");
    let version = parse(out.trim().as_bytes())?.version;
    let (ok, out) = cli(
        &e,
        true,
        &["reconfig", "remove", "100", "--from-config", "0"],
    )?;
    ensure!(!ok && out.contains("(-103)"), "stale from-config: {out}");
    let v = format!("{version:x}");
    let (ok, out) = cli(
        &e,
        true,
        &["reconfig", "remove", "100", "--from-config", &v],
    )?;
    ensure!(ok && !out.contains("server.100"), "remove: {out}");
    let (ok, out) = cli(&e, true, &["reconfig", "set", "server.1=h:1:2;3"])?;
    ensure!(!ok && out.contains("(-8)"), "a one-voter set: {out}");
    Ok(())
}
