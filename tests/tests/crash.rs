// Goal: under concurrent pipelined writes, kill -9 at random points loses no acknowledged write and half-applies nothing.
//
// Each cycle starts corral on the same data dir, runs WRITERS pipelined sessions for a
// random 50-400 ms, SIGKILLs the server mid-stream, restarts it, and checks:
// - every acknowledged create exists with the data it was sent; an unacknowledged one
//   may or may not exist, but if it does its data is whole; nothing exists that was
//   never sent;
// - each register (one writer per register, setData with an increasing counter) holds
//   a counter in [last acked, last sent], whole, and its version equals the counter
//   (every earlier setData applied: the log is a prefix);
// - every multi (2-3 creates) is all-or-nothing, and all if acknowledged.
// Earlier cycles' nodes are re-checked by child listing, so a later crash or snapshot
// cannot lose them either. Every third cycle runs with `snap_count = 200`, so
// snapshots, purges and recovery from snapshot + log are exercised.
//
// CORRAL_CRASH_CYCLES (default 20), CORRAL_CRASH_SEED (default: time-based, printed),
// CORRAL_CRASH_KEEP=1 keeps the data dir after a passing run.

use anyhow::{bail, ensure, Context, Result};
use corral_proto::request::{CreateRequest, PathWatch, SetDataRequest};
use corral_proto::{Acl, MultiOp, OpCode, Request, Response, Stat};
use corral_tests::raw::PendingReply;
use corral_tests::{RawClient, RawError, ServerProc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WRITERS: usize = 4;
/// Requests each writer keeps in flight.
const WINDOW: usize = 8;
const ROOT: &str = "/crash";

/// One write as sent.
#[derive(Debug, Clone)]
enum Write {
    Create { path: String, data: Vec<u8> },
    Register { path: String, value: u64 },
    Multi { paths: Vec<String>, data: Vec<u8> },
}

impl Write {
    fn request(&self) -> Request {
        let create = |path: &str, data: &[u8]| CreateRequest {
            path: path.to_string(),
            data: Some(data.to_vec()),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        };
        match self {
            Write::Create { path, data } => Request::Create(OpCode::Create, create(path, data)),
            Write::Register { path, value } => Request::SetData(SetDataRequest {
                path: path.clone(),
                data: Some(value.to_string().into_bytes()),
                version: -1,
            }),
            Write::Multi { paths, data } => Request::Multi(
                paths
                    .iter()
                    .map(|p| MultiOp::Create(OpCode::Create, create(p, data)))
                    .collect(),
            ),
        }
    }
}

/// What one writer did in one cycle.
#[derive(Debug, Default)]
struct WriterLog {
    /// Every write handed to the connection, acknowledged or not.
    sent: Vec<Write>,
    /// Indexes into `sent` of the writes acknowledged with err 0.
    acked: Vec<usize>,
    /// Replies with a non-zero error code (none are expected).
    errors: Vec<String>,
}

fn register_path(w: usize) -> String {
    format!("{ROOT}/r{w}")
}

fn cycle_dir(cycle: usize) -> String {
    format!("{ROOT}/c{cycle}")
}

/// Writes pipelined until the connection dies; returns what it sent and what was acked.
async fn writer(
    addr: SocketAddr,
    w: usize,
    cycle: usize,
    first_value: u64,
    seed: u64,
) -> WriterLog {
    let mut log = WriterLog::default();
    let Ok(c) = RawClient::connect(addr, 30_000).await else {
        return log;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = cycle_dir(cycle);
    let mut next_value = first_value;
    let mut inflight: VecDeque<(usize, PendingReply)> = VecDeque::new();
    for seq in 0.. {
        if inflight.len() >= WINDOW {
            let (i, p) = inflight.pop_front().expect("window is full");
            if !settle(&mut log, i, p.wait().await) {
                break;
            }
        }
        let data = format!("c{cycle}-w{w}-{seq}-{}", "x".repeat(rng.gen_range(0..64))).into_bytes();
        let write = match rng.gen_range(0..10) {
            0..=4 => Write::Create {
                path: format!("{dir}/w{w}-{seq}"),
                data,
            },
            5..=7 => {
                next_value += 1;
                Write::Register {
                    path: register_path(w),
                    value: next_value,
                }
            }
            _ => Write::Multi {
                paths: (0..rng.gen_range(2..=3))
                    .map(|k| format!("{dir}/m{w}-{seq}-{k}"))
                    .collect(),
                data,
            },
        };
        let req = write.request();
        log.sent.push(write);
        match c.send(&req).await {
            Ok(p) => inflight.push_back((log.sent.len() - 1, p)),
            Err(_) => break,
        }
    }
    for (i, p) in inflight {
        settle(&mut log, i, p.wait().await);
    }
    c.disconnect().await;
    log
}

/// Records one reply; false once the connection is gone.
fn settle(log: &mut WriterLog, i: usize, r: Result<corral_tests::Reply, RawError>) -> bool {
    match r {
        Ok(rep) if rep.header.err == 0 => {
            log.acked.push(i);
            true
        }
        Ok(rep) => {
            log.errors
                .push(format!("{:?} -> err {}", log.sent[i], rep.header.err));
            true
        }
        Err(_) => false,
    }
}

/// Everything acknowledged or sent so far, across cycles.
#[derive(Default)]
struct History {
    /// cycle -> (name -> (data, acked)) for every node any create or multi sent.
    nodes: BTreeMap<usize, BTreeMap<String, (Vec<u8>, bool)>>,
    /// register -> (last acked value, last sent value).
    registers: Vec<(u64, u64)>,
    /// Per cycle, the multis: (member names, acked).
    multis: BTreeMap<usize, Vec<(Vec<String>, bool)>>,
}

impl History {
    fn record(&mut self, cycle: usize, w: usize, log: &WriterLog) {
        let acked: BTreeSet<usize> = log.acked.iter().copied().collect();
        let nodes = self.nodes.entry(cycle).or_default();
        let multis = self.multis.entry(cycle).or_default();
        let name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
        for (i, write) in log.sent.iter().enumerate() {
            let ok = acked.contains(&i);
            match write {
                Write::Create { path, data } => {
                    nodes.insert(name(path), (data.clone(), ok));
                }
                Write::Register { value, .. } => {
                    let r = &mut self.registers[w];
                    r.1 = r.1.max(*value);
                    if ok {
                        r.0 = r.0.max(*value);
                    }
                }
                Write::Multi { paths, data } => {
                    for p in paths {
                        nodes.insert(name(p), (data.clone(), ok));
                    }
                    multis.push((paths.iter().map(|p| name(p)).collect(), ok));
                }
            }
        }
    }
}

async fn call(c: &RawClient, req: &Request) -> Result<corral_tests::Reply> {
    c.call(req).await.with_context(|| format!("{req:?}"))
}

async fn children(c: &RawClient, path: &str) -> Result<BTreeSet<String>> {
    let r = call(
        c,
        &Request::GetChildren(PathWatch {
            path: path.into(),
            watch: false,
        }),
    )
    .await?;
    match r.body {
        Some(Response::Children(v)) => Ok(v.into_iter().collect()),
        _ => bail!("getChildren {path}: err {}", r.header.err),
    }
}

/// getData for many paths, pipelined: path -> Some((data, stat)) or None if absent.
async fn get_all(c: &RawClient, paths: &[String]) -> Result<Vec<Option<(Vec<u8>, Stat)>>> {
    let mut out = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(256) {
        let mut pending = Vec::new();
        for p in chunk {
            let req = Request::GetData(PathWatch {
                path: p.clone(),
                watch: false,
            });
            pending.push(c.send(&req).await?);
        }
        for (p, pr) in chunk.iter().zip(pending) {
            let r = pr.wait().await.with_context(|| format!("getData {p}"))?;
            out.push(match (r.header.err, r.body) {
                (0, Some(Response::Data(d, st))) => Some((d.unwrap_or_default(), st)),
                (-101, _) => None,
                (e, b) => bail!("getData {p}: err {e} {b:?}"),
            });
        }
    }
    Ok(out)
}

/// Checks the recovered tree against the history; returns a summary line.
async fn verify(addr: SocketAddr, hist: &History, cycle: usize) -> Result<String> {
    let c = RawClient::connect(addr, 30_000).await?;
    // This cycle: every node sent, by data.
    let nodes = &hist.nodes[&cycle];
    let names: Vec<String> = nodes.keys().cloned().collect();
    let paths: Vec<String> = names
        .iter()
        .map(|n| format!("{}/{n}", cycle_dir(cycle)))
        .collect();
    let got = get_all(&c, &paths).await?;
    let mut present = BTreeSet::new();
    let mut unacked_present = 0;
    for ((name, found), path) in names.iter().zip(&got).zip(&paths) {
        let (data, acked) = &nodes[name];
        match found {
            Some((d, _)) => {
                ensure!(
                    d == data,
                    "cycle {cycle}: {path} has data {:?}, sent {:?}",
                    String::from_utf8_lossy(d),
                    String::from_utf8_lossy(data)
                );
                present.insert(name.clone());
                if !acked {
                    unacked_present += 1;
                }
            }
            None => ensure!(!acked, "cycle {cycle}: acknowledged {path} is missing"),
        }
    }
    for (members, acked) in &hist.multis[&cycle] {
        let n = members.iter().filter(|m| present.contains(*m)).count();
        ensure!(
            n == 0 || n == members.len(),
            "cycle {cycle}: multi {members:?} is half-applied ({n} of {} exist)",
            members.len()
        );
        ensure!(
            !acked || n == members.len(),
            "cycle {cycle}: acknowledged multi {members:?} is missing"
        );
    }
    // Every cycle so far: acked names present, nothing present that was never sent.
    // (This cycle's listing must also equal exactly what getData found.)
    let mut listed_total = 0;
    for (&k, sent) in &hist.nodes {
        let listed = children(&c, &cycle_dir(k)).await?;
        listed_total += listed.len();
        for (name, (_, acked)) in sent {
            ensure!(
                !acked || listed.contains(name),
                "after cycle {cycle}: acknowledged {}/{name} from cycle {k} is gone",
                cycle_dir(k)
            );
        }
        if let Some(stray) = listed.iter().find(|n| !sent.contains_key(*n)) {
            bail!(
                "after cycle {cycle}: {}/{stray} exists but was never sent",
                cycle_dir(k)
            );
        }
        if k == cycle {
            ensure!(
                listed == present,
                "cycle {cycle}: child list and getData disagree"
            );
        }
    }
    // Registers.
    let regs: Vec<String> = (0..WRITERS).map(register_path).collect();
    for (w, found) in get_all(&c, &regs).await?.into_iter().enumerate() {
        let (lo, hi) = hist.registers[w];
        let Some((d, st)) = found else {
            bail!("register {} is missing", regs[w]);
        };
        let text = String::from_utf8_lossy(&d);
        let v: u64 = text
            .parse()
            .with_context(|| format!("register {} holds {text:?}", regs[w]))?;
        ensure!(
            lo <= v && v <= hi,
            "cycle {cycle}: register {} = {v}, acked up to {lo}, sent up to {hi}",
            regs[w]
        );
        ensure!(
            st.version as u64 == v,
            "cycle {cycle}: register {} = {v} but version {} (a setData was skipped)",
            regs[w],
            st.version
        );
    }
    let _ = c.close().await;
    let acked = nodes.values().filter(|(_, a)| *a).count();
    Ok(format!(
        "{} nodes sent, {acked} acked, {unacked_present} unacked present; {listed_total} nodes in all cycles",
        nodes.len()
    ))
}

/// (snapshot files, leftover `snapshot.*.tmp` files) anywhere under the data dir.
/// Printed per cycle: complete snapshots stay at the retain count once purges run.
fn snapshot_files(dir: &std::path::Path) -> (usize, usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let mut n = (0, 0);
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            let (a, b) = snapshot_files(&p);
            n = (n.0 + a, n.1 + b);
        } else if name.starts_with("snapshot.") {
            if name.ends_with(".tmp") {
                n.1 += 1;
            } else {
                n.0 += 1;
            }
        }
    }
    n
}

/// Starts corral on `data` (a fresh port), with small snapshots if asked.
async fn start(data: PathBuf, small_snaps: bool) -> Result<ServerProc> {
    tokio::task::spawn_blocking(move || {
        let mut b = ServerProc::builder().data_dir(data);
        if small_snaps {
            b = b.set("snap_count", "200");
        }
        b.start()
    })
    .await?
}

/// The registers' recovered values (the next cycle's writers continue from them).
async fn register_values(addr: SocketAddr) -> Result<Vec<u64>> {
    let c = RawClient::connect(addr, 30_000).await?;
    let regs: Vec<String> = (0..WRITERS).map(register_path).collect();
    let mut out = Vec::new();
    for (p, found) in regs.iter().zip(get_all(&c, &regs).await?) {
        let (d, _) = found.with_context(|| format!("register {p} missing"))?;
        out.push(String::from_utf8_lossy(&d).parse()?);
    }
    let _ = c.close().await;
    Ok(out)
}

async fn setup(addr: SocketAddr) -> Result<()> {
    let c = RawClient::connect(addr, 30_000).await?;
    let mut paths = vec![ROOT.to_string()];
    paths.extend((0..WRITERS).map(register_path));
    for p in paths {
        let data = if p == ROOT { "" } else { "0" };
        let w = Write::Create {
            path: p.clone(),
            data: data.as_bytes().to_vec(),
        };
        let r = call(&c, &w.request()).await?;
        ensure!(r.header.err == 0, "setup: create {p}: err {}", r.header.err);
    }
    let _ = c.close().await;
    Ok(())
}

async fn mkdir(addr: SocketAddr, path: &str) -> Result<()> {
    let c = RawClient::connect(addr, 30_000).await?;
    let w = Write::Create {
        path: path.into(),
        data: Vec::new(),
    };
    let r = call(&c, &w.request()).await?;
    ensure!(r.header.err == 0, "create {path}: err {}", r.header.err);
    let _ = c.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_under_load_loses_no_acknowledged_write() {
    // Goal: every acknowledged write survives kill -9 and restart; no multi is half-applied.
    let cycles: usize = std::env::var("CORRAL_CRASH_CYCLES")
        .ok()
        .map(|v| v.parse().expect("CORRAL_CRASH_CYCLES is a number"))
        .unwrap_or(20);
    let seed: u64 = std::env::var("CORRAL_CRASH_SEED")
        .ok()
        .map(|v| v.parse().expect("CORRAL_CRASH_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(1)
        });
    eprintln!("crash test: {cycles} cycles, CORRAL_CRASH_SEED={seed}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tmp = tempfile::Builder::new()
        .prefix("corral-crash-")
        .tempdir()
        .expect("temp dir");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let t0 = Instant::now();

    let mut hist = History {
        registers: vec![(0, 0); WRITERS],
        ..History::default()
    };
    let mut srv = start(data.clone(), false).await.expect("first start");
    setup(srv.addr()).await.expect("setup");
    let mut total_acked = 0;
    for cycle in 0..cycles {
        let result: Result<String> = async {
            let addr = srv.addr();
            mkdir(addr, &cycle_dir(cycle)).await?;
            let values = register_values(addr).await?;
            for (w, v) in values.iter().enumerate() {
                // Verified against [acked, sent] already; the writers continue from it.
                hist.registers[w].0 = hist.registers[w].0.max(*v);
                hist.registers[w].1 = hist.registers[w].1.max(*v);
            }
            let tasks: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let s = rng.gen();
                    tokio::spawn(writer(addr, w, cycle, values[w], s))
                })
                .collect();
            let delay = Duration::from_millis(rng.gen_range(50..=400));
            tokio::time::sleep(delay).await;
            srv.kill9();
            let mut logs = Vec::new();
            for t in tasks {
                logs.push(t.await?);
            }
            for (w, log) in logs.iter().enumerate() {
                ensure!(
                    log.errors.is_empty(),
                    "writer {w} got error replies: {:?}",
                    &log.errors[..log.errors.len().min(5)]
                );
                hist.record(cycle, w, log);
            }
            let acked: usize = logs.iter().map(|l| l.acked.len()).sum();
            let sent: usize = logs.iter().map(|l| l.sent.len()).sum();
            total_acked += acked;
            let small = cycle % 3 == 2;
            drop(std::mem::replace(
                &mut srv,
                start(data.clone(), small)
                    .await
                    .context("restart after kill -9")?,
            ));
            let summary = verify(srv.addr(), &hist, cycle).await?;
            let (snaps, tmps) = snapshot_files(&data);
            // Recovery deletes partial snapshots; at most one can be in flight now.
            anyhow::ensure!(tmps <= 1, "{tmps} partial snapshot files survived recovery");
            Ok(format!(
                "killed after {delay:?}: {sent} writes sent, {acked} acked; restart{}: {summary}; \
                 {snaps} snapshots, {tmps} leftover .tmp",
                if small { " (snap_count 200)" } else { "" },
            ))
        }
        .await;
        match result {
            Ok(line) => eprintln!("cycle {cycle}: {line}"),
            Err(e) => panic!(
                "cycle {cycle} failed (replay: CORRAL_CRASH_SEED={seed}): {e:#}\n---- server log ----\n{}",
                srv.log_tail(40)
            ),
        }
    }
    eprintln!(
        "crash test: {cycles} cycles, {total_acked} acknowledged writes verified in {:.1?}",
        t0.elapsed()
    );
    if std::env::var("CORRAL_CRASH_KEEP").as_deref() == Ok("1") {
        drop(srv);
        eprintln!("crash test: data dir kept at {}", tmp.keep().display());
    }
    assert!(
        total_acked > 0,
        "no write was ever acknowledged: the test did not test anything"
    );
}
