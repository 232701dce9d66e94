// Goal: a 3-voter ensemble under kill -9 of the leader, SIGSTOP/SIGCONT of a
// follower and restarts stays linearizable per register, and every
// acknowledged sequential create exists exactly once.
//
// Five clients, each on its own voter (moving to the next after an error),
// run a random mix against three registers for CORRAL_LIN_SECS seconds
// (default 20): sync+getData (linearizable reads, which corral promises and
// ZooKeeper does not), setData with a version (compare-and-set), blind
// setData, and sequential creates. A request that times out or loses its
// connection is recorded as "maybe happened". Meanwhile a nemesis injects a
// fault every 1.5-3 s. The history is then checked with the WGL checker
// (`corral_tests::linearizable`). CORRAL_LIN_SEED picks the schedule (printed).
//
// The second test runs the same clients against two observers only (one fed
// by the voters, one chained below it), with observer faults added: sync +
// read on an observer must be linearizable too.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use corral_proto::request::{CreateRequest, PathWatch, SetDataRequest};
use corral_proto::{Acl, OpCode, Request, Response};
use corral_tests::ensemble::{EnsembleBuilder, EnsembleProc, Upstream};
use corral_tests::linearizable::{
    check_registers, CheckOptions, KeyedRegHistory, Recorder, RegCall, RegRet, RegState,
};
use corral_tests::reconfig::{reconfig, wait_not_serving, SUPER_DIGEST};
use corral_tests::req::create;
use corral_tests::{ConnectOptions, RawClient, RawError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CLIENTS: usize = 5;
const REGISTERS: usize = 3;

fn reg(k: usize) -> String {
    format!("/lin/r{k}")
}

fn parse(d: Option<Vec<u8>>) -> i64 {
    d.and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1)
}

/// What a client saw for one request.
enum Res<T> {
    Ok(T),
    /// A ZooKeeper error code: definite.
    Err(i32),
    /// Timeout or connection loss: maybe happened.
    Unknown,
}

async fn call(c: &RawClient, req: Request) -> Res<Response> {
    match c.request(req).await {
        Ok((h, _)) if h.err != 0 => Res::Err(h.err),
        Ok((_, r)) => Res::Ok(r),
        Err(RawError::ConnectionLoss(_) | RawError::Timeout(_) | RawError::Io(_)) => Res::Unknown,
        Err(_) => Res::Unknown,
    }
}

struct Shared {
    recorder: Recorder<(usize, RegCall<i64>), RegRet<i64>>,
    acked_seq: Mutex<BTreeMap<i64, String>>,
    sent_seq: Mutex<Vec<i64>>,
    next_token: AtomicI64,
    stop: AtomicBool,
    ops: AtomicI64,
    unknown: AtomicI64,
}

async fn client(id: usize, addrs: Vec<SocketAddr>, seed: u64, sh: Arc<Shared>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut node = id % addrs.len();
    let mut conn: Option<RawClient> = None;
    let mut known_version = [0i32; REGISTERS];
    while !sh.stop.load(Ordering::Relaxed) {
        let c = match &conn {
            Some(c) => c,
            None => {
                let opts = ConnectOptions {
                    timeout_ms: 4000,
                    request_timeout: Duration::from_secs(3),
                    ..ConnectOptions::default()
                };
                match tokio::time::timeout(
                    Duration::from_secs(2),
                    RawClient::connect_opts(addrs[node], opts),
                )
                .await
                {
                    Ok(Ok(c)) => conn.insert(c),
                    _ => {
                        node = (node + 1) % addrs.len();
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
        };
        let k = rng.gen_range(0..REGISTERS);
        let token = sh.next_token.fetch_add(1, Ordering::Relaxed);
        let roll = rng.gen_range(0..100);
        sh.ops.fetch_add(1, Ordering::Relaxed);
        let mut broken = false;
        if roll < 40 {
            let op = sh.recorder.invoke(id, (k, RegCall::Read));
            let synced = call(c, Request::Sync(reg(k))).await;
            let got = match synced {
                Res::Ok(_) => {
                    call(
                        c,
                        Request::GetData(PathWatch {
                            path: reg(k),
                            watch: false,
                        }),
                    )
                    .await
                }
                other => other,
            };
            match got {
                Res::Ok(Response::Data(d, stat)) => {
                    known_version[k] = stat.version;
                    sh.recorder.complete(
                        op,
                        RegRet::Read {
                            value: parse(d),
                            version: stat.version,
                        },
                    );
                }
                // A read with no answer changes nothing: drop it.
                _ => {
                    sh.recorder.fail(op);
                    broken = true;
                }
            }
        } else if roll < 80 {
            let blind = roll >= 70;
            let version = if blind { -1 } else { known_version[k] };
            let call_kind = if blind {
                RegCall::Write { value: token }
            } else {
                RegCall::Cas {
                    expected_version: version,
                    value: token,
                }
            };
            let op = sh.recorder.invoke(id, (k, call_kind));
            let req = Request::SetData(SetDataRequest {
                path: reg(k),
                data: Some(token.to_string().into_bytes()),
                version,
            });
            match call(c, req).await {
                Res::Ok(Response::Stat(stat)) => {
                    known_version[k] = stat.version;
                    sh.recorder.complete(
                        op,
                        RegRet::Written {
                            version: stat.version,
                        },
                    );
                }
                Res::Err(-103) if !blind => sh.recorder.complete(op, RegRet::BadVersion),
                Res::Err(e) => panic!("setData {}: unexpected error {e}", reg(k)),
                _ => {
                    sh.unknown.fetch_add(1, Ordering::Relaxed);
                    sh.recorder.unknown(op);
                    broken = true;
                }
            }
        } else {
            sh.sent_seq.lock().unwrap().push(token);
            let req = Request::Create(
                OpCode::Create,
                CreateRequest {
                    path: "/lin/seq/s-".into(),
                    data: Some(token.to_string().into_bytes()),
                    acl: Acl::open_unsafe(),
                    flags: 2,
                    ttl: -1,
                },
            );
            match call(c, req).await {
                Res::Ok(Response::Path(p)) => {
                    sh.acked_seq.lock().unwrap().insert(token, p);
                }
                Res::Err(e) => panic!("sequential create: unexpected error {e}"),
                _ => {
                    sh.unknown.fetch_add(1, Ordering::Relaxed);
                    broken = true;
                }
            }
        }
        if broken {
            conn = None;
            node = (node + 1) % addrs.len();
        }
    }
}

fn signal(pid: Option<u32>, sig: i32) {
    if let Some(pid) = pid {
        // SAFETY: signalling a child process this test started.
        unsafe {
            libc::kill(pid as i32, sig);
        }
    }
}

/// Injects one fault every 1.5-3 s until `deadline`; returns what it did.
fn nemesis(e: &mut EnsembleProc, rng: &mut ChaCha8Rng, deadline: Instant) -> Vec<String> {
    let mut log = Vec::new();
    let kinds = if e.observers.is_empty() { 3 } else { 6 };
    while Instant::now() + Duration::from_secs(3) < deadline {
        std::thread::sleep(Duration::from_millis(rng.gen_range(1500..3000)));
        let leader = e.leader();
        match rng.gen_range(0..kinds) {
            3 => {
                let j = rng.gen_range(0..e.observers.len());
                signal(e.observers[j].pid(), libc::SIGSTOP);
                std::thread::sleep(Duration::from_millis(rng.gen_range(300..2000)));
                signal(e.observers[j].pid(), libc::SIGCONT);
                log.push(format!("SIGSTOP/SIGCONT observer {j}"));
            }
            4 => {
                let j = rng.gen_range(0..e.observers.len());
                e.observers[j].kill9();
                std::thread::sleep(Duration::from_millis(rng.gen_range(200..1500)));
                let _ = e.observers[j].start_again();
                log.push(format!("kill -9 observer {j} and restart"));
            }
            5 => {
                let j = rng.gen_range(0..e.observers.len());
                let _ = e.observers[j].restart();
                log.push(format!("restart observer {j}"));
            }
            0 => {
                if let Some(l) = leader {
                    e.nodes[l].kill9();
                    std::thread::sleep(Duration::from_millis(rng.gen_range(200..1500)));
                    let _ = e.nodes[l].start_again();
                    log.push(format!("kill -9 leader {} and restart", l + 1));
                }
            }
            1 => {
                let f = (leader.unwrap_or(0) + rng.gen_range(1..3)) % 3;
                signal(e.nodes[f].pid(), libc::SIGSTOP);
                std::thread::sleep(Duration::from_millis(rng.gen_range(300..2000)));
                signal(e.nodes[f].pid(), libc::SIGCONT);
                log.push(format!("SIGSTOP/SIGCONT node {}", f + 1));
            }
            _ => {
                let n = rng.gen_range(0..3);
                let _ = e.nodes[n].restart();
                log.push(format!("restart node {}", n + 1));
            }
        }
    }
    log
}

#[test]
fn registers_stay_linearizable_and_sequential_creates_exactly_once_under_faults() -> Result<()> {
    run(0)
}

#[test]
fn sync_and_read_through_observers_stays_linearizable_under_faults() -> Result<()> {
    run(2)
}

#[test]
fn registers_stay_linearizable_while_voters_join_leave_and_are_replaced() -> Result<()> {
    // Goal: under continuous client load, growing 3 → 5 voters, shrinking
    // back, replacing a follower, turning an observer into a voter and
    // finally replacing the leader (which hands over) by reconfig keeps the
    // history linearizable and loses no acknowledged write.
    let b = EnsembleProc::builder(3)
        .set("reconfig_enabled", "true")
        .set("zk_super_digest", SUPER_DIGEST)
        .observers(1)
        .spare_observers(4);
    run_with(
        b,
        |e| (0..3).map(|i| e.addr(i)).collect(),
        |e, _rng, _deadline| match membership_changes(e) {
            Ok(r) => r,
            Err(err) => panic!("membership changes failed: {err:#}"),
        },
    )
}

/// The server id in a `server.N=…` entry.
fn id_of(spec: &str) -> String {
    spec.trim_start_matches("server.")
        .split('=')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Node `i`'s server id, from the configuration.
fn node_id(e: &EnsembleProc, i: usize) -> Result<String> {
    let addr = e.addr(i).to_string();
    let rt = corral_tests::req::rt();
    let (d, _) = rt.block_on(async {
        let c = corral_tests::reconfig::connect(e.addr(0)).await?;
        c.sync("/").await?;
        Ok::<_, anyhow::Error>(c.get_config().await?)
    })?;
    let c = corral_tests::reconfig::parse(&d)?;
    c.servers
        .values()
        .find(|s| s.client.as_deref() == Some(addr.as_str()))
        .map(|s| s.id.to_string())
        .with_context(|| format!("no server listens on {addr}: {c:?}"))
}

/// The reconfig schedule of the test above; node 0 stays a voter.
fn membership_changes(e: &mut EnsembleProc) -> Result<(Vec<String>, Vec<usize>)> {
    let rt = corral_tests::req::rt();
    let mut log = Vec::new();
    let pause = || std::thread::sleep(Duration::from_millis(1500));
    pause();
    let (ia, sa) = e.add_voter()?;
    let (ib, sb) = e.add_voter()?;
    e.wait_serving(Duration::from_secs(30))?;
    let c = rt.block_on(reconfig(e, 0, &[&sa, &sb], &[]))?;
    ensure!(c.voters().len() == 5, "{c:?}");
    e.wait_serving(Duration::from_secs(30))?;
    log.push("grow 3 -> 5".to_string());
    pause();
    let c = rt.block_on(reconfig(e, 0, &[], &[&id_of(&sa), &id_of(&sb)]))?;
    ensure!(c.voters().len() == 3, "{c:?}");
    e.wait_serving_among(&[0, 1, 2], Duration::from_secs(30))?;
    wait_not_serving(e, ia, Duration::from_secs(15))?;
    wait_not_serving(e, ib, Duration::from_secs(15))?;
    log.push("shrink 5 -> 3".to_string());
    pause();
    let leader = e.leader().context("a leader")?;
    let old = (1..3)
        .find(|&i| i != leader)
        .context("a follower other than node 0")?;
    let (ic, sc) = e.add_voter()?;
    e.wait_serving_among(&[0, 1, 2, ic], Duration::from_secs(30))?;
    let gone = node_id(e, old)?;
    rt.block_on(reconfig(e, 0, &[&sc], &[&gone]))?;
    let mut members: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    members.push(ic);
    e.wait_serving_among(&members, Duration::from_secs(30))?;
    wait_not_serving(e, old, Duration::from_secs(15))?;
    log.push(format!("replace server {gone} by server {}", id_of(&sc)));
    pause();
    let (io, so) = e.promote_observer(0);
    let c = rt.block_on(reconfig(e, 0, &[&so], &[]))?;
    ensure!(c.voters().len() == 4, "{c:?}");
    members.push(io);
    e.wait_serving_among(&members, Duration::from_secs(30))?;
    log.push(format!("observer {} becomes a voter", id_of(&so)));
    pause();
    // The leader removes itself when node 0 does not lead; the client may
    // then lose its connection (its server re-elects), as with any leader
    // change, so the outcome is read back rather than taken from the reply.
    let leader = e.leader().context("a leader")?;
    if leader != 0 {
        let gone = node_id(e, leader)?;
        let (id, sd) = e.add_voter()?;
        e.wait_serving_among(
            &[members.clone(), vec![id]].concat(),
            Duration::from_secs(30),
        )?;
        let _ = rt.block_on(reconfig(e, 0, &[&sd], &[&gone]));
        members.retain(|&i| i != leader);
        members.push(id);
        e.wait_serving_among(&members, Duration::from_secs(30))?;
        let (d, _) = rt.block_on(async {
            let c = corral_tests::reconfig::connect(e.addr(0)).await?;
            c.sync("/").await?;
            Ok::<_, anyhow::Error>(c.get_config().await?)
        })?;
        let c = corral_tests::reconfig::parse(&d)?;
        ensure!(
            !c.voters().contains(&gone.parse()?),
            "the old leader is still a voter: {c:?}"
        );
        log.push(format!(
            "replace the leader {gone} by server {}",
            id_of(&sd)
        ));
    }
    Ok((log, members))
}

/// One run: clients on the voters (`observers == 0`) or on the observers only.
fn run(observers: usize) -> Result<()> {
    let mut b = EnsembleProc::builder(3).observers(observers);
    if observers >= 2 {
        b = b.observer_upstreams(1, vec![Upstream::Observer(0), Upstream::Voter(0)]);
    }
    let clients = move |e: &EnsembleProc| -> Vec<SocketAddr> {
        if observers == 0 {
            (0..3).map(|i| e.addr(i)).collect()
        } else {
            (0..observers).map(|j| e.observer_addr(j)).collect()
        }
    };
    run_with(b, clients, |e, rng, deadline| {
        let faults = nemesis(e, rng, deadline);
        (faults, (0..3).collect())
    })
}

/// Clients on `clients(e)` run against an ensemble from `builder` while
/// `faults` acts; it returns what it did and which nodes must serve at the
/// end (node 0 among them: the final checks read through it). Then the
/// register history must be linearizable and every acknowledged sequential
/// create present exactly once.
fn run_with(
    builder: EnsembleBuilder,
    clients: impl Fn(&EnsembleProc) -> Vec<SocketAddr>,
    faults: impl FnOnce(&mut EnsembleProc, &mut ChaCha8Rng, Instant) -> (Vec<String>, Vec<usize>),
) -> Result<()> {
    let secs: u64 = std::env::var("CORRAL_LIN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("CORRAL_LIN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        });
    eprintln!(
        "linearizability: seed {seed} (CORRAL_LIN_SEED={seed} replays the schedule), {secs} s"
    );
    let mut e = builder.start()?;
    e.wait_serving(Duration::from_secs(30))?;
    e.wait_observers(Duration::from_secs(30))?;
    let addrs = clients(&e);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let c = RawClient::connect(addrs[0], 4000).await?;
        for p in ["/lin", "/lin/seq"] {
            let (h, _) = c.request(create(p, b"", 0)).await?;
            ensure!(h.err == 0, "create {p}: {}", h.err);
        }
        for k in 0..REGISTERS {
            let (h, _) = c.request(create(&reg(k), b"0", 0)).await?;
            ensure!(h.err == 0, "create {}: {}", reg(k), h.err);
        }
        Ok(())
    })?;
    let sh = Arc::new(Shared {
        recorder: Recorder::new(),
        acked_seq: Mutex::new(BTreeMap::new()),
        sent_seq: Mutex::new(Vec::new()),
        next_token: AtomicI64::new(1),
        stop: AtomicBool::new(false),
        ops: AtomicI64::new(0),
        unknown: AtomicI64::new(0),
    });
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| rt.spawn(client(i, addrs.clone(), seed ^ (i as u64 + 1), sh.clone())))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (faults, members) = faults(&mut e, &mut rng, deadline);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    sh.stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    });
    e.wait_serving_among(&members, Duration::from_secs(30))?;
    e.wait_observers(Duration::from_secs(30))?;
    eprintln!("faults: {faults:?}");
    eprintln!(
        "ops: {} ({} maybe-happened writes)",
        sh.ops.load(Ordering::Relaxed),
        sh.unknown.load(Ordering::Relaxed)
    );
    // Registers.
    let history: KeyedRegHistory<usize, i64> = sh.recorder.history();
    let report = check_registers(
        &history,
        |_| RegState {
            value: 0,
            version: 0,
        },
        &CheckOptions::default(),
    );
    ensure!(
        report.is_linearizable(),
        "not linearizable (seed {seed}):\n{report}"
    );
    // Sequential creates: each acknowledged one exactly once, none twice.
    let children = rt.block_on(async {
        // Serving again does not mean every session write gets through at
        // once (a new leader may still refuse a forwarded createSession
        // while it settles; the server then closes, as ZooKeeper does, and
        // a client retries): retry the connect for a while.
        let mut tries = 0;
        let c = loop {
            match RawClient::connect(addrs[0], 4000).await {
                Ok(c) => break c,
                Err(e) if tries < 50 => {
                    tries += 1;
                    eprintln!("connect for the final check: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        c.request(Request::Sync("/lin/seq".into())).await?;
        let mut out = BTreeMap::new();
        let (h, r) = c
            .request(Request::GetChildren(PathWatch {
                path: "/lin/seq".into(),
                watch: false,
            }))
            .await?;
        ensure!(h.err == 0, "getChildren: {}", h.err);
        let Response::Children(names) = r else {
            anyhow::bail!("getChildren reply {r:?}")
        };
        for n in names {
            let path = format!("/lin/seq/{n}");
            let (h, r) = c
                .request(Request::GetData(PathWatch {
                    path: path.clone(),
                    watch: false,
                }))
                .await?;
            ensure!(h.err == 0, "getData {path}: {}", h.err);
            if let Response::Data(d, _) = r {
                out.insert(path, parse(d));
            }
        }
        Ok(out)
    })?;
    let mut seen: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (path, token) in &children {
        seen.entry(*token).or_default().push(path.clone());
    }
    for (token, paths) in &seen {
        ensure!(
            paths.len() == 1,
            "token {token} created {} times: {paths:?}",
            paths.len()
        );
    }
    let sent: std::collections::BTreeSet<i64> =
        sh.sent_seq.lock().unwrap().iter().copied().collect();
    for token in seen.keys() {
        ensure!(
            sent.contains(token),
            "a sequential node with token {token} was never sent"
        );
    }
    for (token, path) in sh.acked_seq.lock().unwrap().iter() {
        ensure!(
            seen.get(token).is_some_and(|p| p == &vec![path.clone()]),
            "acknowledged create {path} (token {token}) is missing or elsewhere: {:?}",
            seen.get(token)
        );
    }
    eprintln!(
        "checked {} register ops and {} sequential nodes ({} acknowledged)",
        history.len(),
        children.len(),
        sh.acked_seq.lock().unwrap().len()
    );
    Ok(())
}
