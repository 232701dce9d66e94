//! Read scaling with observers (issue 4's benchmark).
//!
//!   cargo build --release -p corral-ops
//!   CORRAL_BIN=target/release/corral cargo run --release -p corral-tests \
//!       --example observer_scaling [-- SECS [ROUNDS]]
//!
//! Three voters, then 0, 2, 4 and 8 observers fed two ways: **direct** (every
//! observer's upstream is the leader) and **chained** (the first observer
//! hangs off the leader, each next one off the previous). For each, a write
//! load (`corral bench --workload set`, 100-byte values, through a
//! follower, at a fixed offered rate: `OBSERVER_SCALING_RATE`, default 500
//! txns/s) runs ROUNDS times (default 3) for SECS seconds (default 5),
//! and the median run by the leader's CPU per txn is reported (the
//! leader's CPU at rest, measured for 3 s before, is subtracted, so this is
//! the marginal cost of the txns): the leader's cost per
//! committed txn is measured: CPU time (utime + stime from /proc) and bytes
//! sent (to peers over QUIC, and down observer feeds, from `mntr`).
//! The same write runs go to Apache ZooKeeper 3.8 (3 participants plus 0,
//! 2, 4 and 8 observers, which in ZooKeeper all hang off the leader), whose
//! leader JVM's CPU per txn is measured the same way (ZooKeeper does not
//! count bytes per peer, so only CPU is compared).
//! Then reads: the same `get` load against one follower and against one
//! observer, each measured by its throughput and the serving process's CPU
//! per read. The voters run with `peer_sync_limit_ticks = 20` (2 s) instead
//! of 5: with eleven processes on two cores, a starved leader would
//! otherwise be voted out mid-run, which measures the scheduler. Everything runs on this one machine, so the figures are per
//! node costs; docs/benchmarks.md extrapolates to one machine per node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use corral_tests::ensemble::EnsembleProc;
use corral_tests::{corral_bin, four_letter_word, pick_free_port, zk_available, ZkProc};

/// The offered write load (OBSERVER_SCALING_RATE, default 500 txns/s): the
/// same for every configuration and for ZooKeeper, so the per-txn costs
/// compare at equal batching. ZooKeeper with 8 observers on this machine
/// sustains about 700/s, so the default stays below that.
fn rate() -> u64 {
    std::env::var("OBSERVER_SCALING_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

/// A process's CPU use at rest (keep-alives, ticks, heartbeats), in CPU
/// seconds per second, over 3 s. Subtracted from a run's CPU so that what
/// is reported is the marginal cost of the txns themselves.
fn idle_rate(pid: u32) -> Result<f64> {
    let (t0, c0) = (Instant::now(), cpu_secs(pid)?);
    std::thread::sleep(Duration::from_secs(3));
    Ok((cpu_secs(pid)? - c0) / t0.elapsed().as_secs_f64())
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(") ").context("stat format")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

fn mntr(addr: SocketAddr) -> Result<BTreeMap<String, String>> {
    Ok(four_letter_word(addr, "mntr")?
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn num(m: &BTreeMap<String, String>, k: &str) -> f64 {
    m.get(k)
        .map(|v| {
            v.strip_prefix("0x")
                .map(|h| i64::from_str_radix(h, 16).unwrap_or(0) as f64)
                .unwrap_or_else(|| v.parse().unwrap_or(0.0))
        })
        .unwrap_or(0.0)
}

/// Runs `corral bench`; returns ops/s. Writes use a moderate load (4
/// sessions × 8 in flight) so that eleven processes on two cores do not
/// starve the voters into an election mid-measurement; reads use 8 × 16.
fn bench(addr: SocketAddr, workload: &str, secs: u64) -> Result<f64> {
    bench_at(addr, workload, secs, 0)
}

/// As [`bench`], at an offered load of `rate` requests per second (0: as
/// fast as the pipeline allows).
fn bench_at(addr: SocketAddr, workload: &str, secs: u64, rate: u64) -> Result<f64> {
    let (sessions, pipeline) = if workload == "get" {
        ("8", "16")
    } else {
        ("4", "8")
    };
    let out = Command::new(corral_bin()?)
        .args(["bench", "--workload", workload, "--size", "100"])
        .args(["--sessions", sessions, "--pipeline", pipeline])
        .args(["--duration-secs", &secs.to_string(), "--json"])
        .args(["--rate", &rate.to_string()])
        .args(["--server", &addr.to_string()])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "bench failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v = text
        .split("\"ops_per_sec\":")
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .context("ops_per_sec in bench output")?;
    Ok(v.parse()?)
}

/// One write run: txns, ops/s, leader CPU µs/txn, peer B/txn, feed B/txn.
type Run = (f64, f64, f64, f64, f64);

struct WriteRow {
    observers: usize,
    shape: &'static str,
    txns: f64,
    ops_per_sec: f64,
    cpu_us_per_txn: f64,
    peer_bytes_per_txn: f64,
    feed_bytes_per_txn: f64,
}

/// Sets up `k` observers in `shape` under the current leader and measures
/// one write run; `None` when the leader changed during it (an election
/// under load), so the caller repeats it.
fn measure(
    e: &mut EnsembleProc,
    k: usize,
    shape: &'static str,
    secs: u64,
    rounds: usize,
) -> Result<Option<WriteRow>> {
    for mut o in std::mem::take(&mut e.observers) {
        o.kill9();
    }
    e.observer_feeds.clear();
    let leader = e.wait_serving(Duration::from_secs(30))?;
    let follower = (0..3).find(|&i| i != leader).unwrap_or(0);
    let leader_pid = e.nodes[leader].pid().context("leader pid")?;
    let leader_peer = e.voter_peers[leader].clone();
    for j in 0..k {
        let up = if shape == "direct" || j == 0 {
            leader_peer.clone()
        } else {
            e.observer_feeds[j - 1].clone()
        };
        e.add_observer(&[up])?;
    }
    e.wait_observers(Duration::from_secs(30))?;
    let wanted = if shape == "direct" { k } else { k.min(1) };
    let t0 = Instant::now();
    while num(&mntr(e.addr(leader))?, "corral_observer_feeds") as usize != wanted {
        if t0.elapsed() > Duration::from_secs(10) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let idle = idle_rate(leader_pid)?;
    let mut runs = Vec::new();
    for _ in 0..rounds {
        match write_run(e, leader, follower, leader_pid, secs, idle)? {
            Some(r) => runs.push(r),
            None => return Ok(None),
        }
    }
    // The median run by leader CPU per txn.
    runs.sort_by(|a, b| a.2.total_cmp(&b.2));
    let (txns, ops, cpu, peer, feed) = runs[runs.len() / 2];
    Ok(Some(WriteRow {
        observers: k,
        shape,
        txns,
        ops_per_sec: ops,
        cpu_us_per_txn: cpu,
        peer_bytes_per_txn: peer,
        feed_bytes_per_txn: feed,
    }))
}

/// One write run: (txns, ops/s, leader CPU µs/txn, peer B/txn, feed B/txn),
/// or `None` when the leader changed during it.
fn write_run(
    e: &EnsembleProc,
    leader: usize,
    follower: usize,
    leader_pid: u32,
    secs: u64,
    idle: f64,
) -> Result<Option<Run>> {
    std::thread::sleep(Duration::from_millis(300));
    let m0 = mntr(e.addr(leader))?;
    let (t0, c0) = (Instant::now(), cpu_secs(leader_pid)?);
    let ops = bench_at(e.addr(follower), "set", secs, rate())?;
    std::thread::sleep(Duration::from_millis(300));
    let m1 = mntr(e.addr(leader))?;
    let c1 = cpu_secs(leader_pid)? - idle * t0.elapsed().as_secs_f64();
    if m0.get("zk_epoch") != m1.get("zk_epoch")
        || m1.get("zk_server_state").map(String::as_str) != Some("leader")
    {
        if std::env::var_os("OBSERVER_SCALING_TRACE").is_some() {
            for (i, n) in e.nodes.iter().enumerate() {
                eprintln!("--- voter {} ---\n{}", i + 1, n.log_tail(25));
            }
        }
        return Ok(None);
    }
    let txns = (num(&m1, "corral_last_zxid") - num(&m0, "corral_last_zxid")).max(1.0);
    let delta = |key: &str| (num(&m1, key) - num(&m0, key)) / txns;
    Ok(Some((
        txns,
        ops,
        (c1 - c0) * 1e6 / txns,
        delta("corral_peer_bytes_sent"),
        delta("corral_feed_bytes_sent"),
    )))
}

/// ZooKeeper: 3 participants + `k` observers; the leader JVM's CPU per txn
/// for a write run through a follower (median of `rounds`).
fn zk_write_cost(k: usize, secs: u64, rounds: usize) -> Result<(f64, f64)> {
    let n = 3 + k;
    let client: Vec<u16> = (0..n).map(|_| pick_free_port()).collect();
    let quorum: Vec<u16> = (0..n).map(|_| pick_free_port()).collect();
    let election: Vec<u16> = (0..n).map(|_| pick_free_port()).collect();
    let mut procs = Vec::new();
    let mut dirs = Vec::new();
    for (i, &port) in client.iter().enumerate() {
        let dir = tempfile::Builder::new().prefix("zk-obs-").tempdir()?;
        std::fs::write(dir.path().join("myid"), format!("{}\n", i + 1))?;
        let mut b = ZkProc::builder()
            .data_dir(dir.path())
            .port(port)
            .wait_serving(false)
            .jvm_arg("-Xmx512m")
            .cfg_line("initLimit=10")
            .cfg_line("syncLimit=5");
        if i >= 3 {
            b = b.cfg_line("peerType=observer");
        }
        for j in 0..n {
            let role = if j >= 3 { ":observer" } else { "" };
            b = b.cfg_line(&format!(
                "server.{}=127.0.0.1:{}:{}{role}",
                j + 1,
                quorum[j],
                election[j]
            ));
        }
        procs.push(b.start()?);
        dirs.push(dir);
    }
    let t0 = Instant::now();
    let (leader, follower) = loop {
        let modes: Vec<Option<String>> = procs
            .iter()
            .map(|p| {
                four_letter_word(p.addr(), "srvr").ok().and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("Mode: ").map(|m| m.trim().to_string()))
                })
            })
            .collect();
        let leader = modes.iter().position(|m| m.as_deref() == Some("leader"));
        let serving = modes.iter().filter(|m| m.is_some()).count();
        if let (Some(l), true) = (leader, serving == n) {
            break (l, (0..3).find(|&i| i != l).unwrap_or(0));
        }
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("ZooKeeper ensemble with {k} observers not serving: {modes:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let pid = procs[leader].pid().context("zk leader pid")?;
    let zxid = |p: &ZkProc| -> Result<f64> {
        let t = four_letter_word(p.addr(), "srvr")?;
        let z = t
            .lines()
            .find_map(|l| l.strip_prefix("Zxid: 0x"))
            .context("Zxid in srvr")?;
        Ok(i64::from_str_radix(z.trim(), 16)? as f64)
    };
    // Warm the JIT before measuring.
    bench(procs[follower].addr(), "set", 2)?;
    let idle = idle_rate(pid)?;
    let mut runs = Vec::new();
    for _ in 0..rounds {
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        let (z0, c0) = (zxid(&procs[leader])?, cpu_secs(pid)?);
        let ops = bench_at(procs[follower].addr(), "set", secs, rate())?;
        std::thread::sleep(Duration::from_millis(300));
        let z1 = zxid(&procs[leader])?;
        let c1 = cpu_secs(pid)? - idle * t0.elapsed().as_secs_f64();
        let txns = (z1 - z0).max(1.0);
        runs.push(((c1 - c0) * 1e6 / txns, ops));
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    for mut p in procs {
        p.kill9();
    }
    Ok(runs[runs.len() / 2])
}

fn main() -> Result<()> {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    eprintln!("binary: {}", corral_bin()?.display());
    let mut e = EnsembleProc::builder(3)
        .spare_observers(100)
        .set("snap_count", "1000000")
        // Eleven processes share two cores here; a voter starved of CPU for
        // half a second must not be taken for dead mid-measurement.
        .set("peer_sync_limit_ticks", "20")
        .start()?;
    let leader = e.wait_serving(Duration::from_secs(30))?;
    let follower = (0..3).find(|&i| i != leader).unwrap_or(0);
    // The bench's working node exists before any measurement.
    bench(e.addr(follower), "set", 1)?;
    let mut rows = Vec::new();
    let all = [
        (0, "direct"),
        (2, "direct"),
        (4, "direct"),
        (8, "direct"),
        (2, "chained"),
        (4, "chained"),
        (8, "chained"),
    ];
    // OBSERVER_SCALING_CONFIGS=8direct,8chained runs only those.
    let only = std::env::var("OBSERVER_SCALING_CONFIGS").ok();
    for (k, shape) in all.into_iter().filter(|(k, shape)| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|c| c == format!("{k}{shape}")))
    }) {
        let mut tries = 0;
        let row = loop {
            tries += 1;
            if let Some(row) = measure(&mut e, k, shape, secs, rounds)? {
                break row;
            }
            if tries == 3 {
                bail!("the leader changed in three runs in a row");
            }
            eprintln!("the leader changed during the run; repeating it");
        };
        eprintln!(
            "{k} observers {shape}: {:.0} txns, {:.0} ops/s, leader {:.1} us CPU, {:.0} B to peers, {:.0} B to feeds per txn",
            row.txns, row.ops_per_sec, row.cpu_us_per_txn, row.peer_bytes_per_txn, row.feed_bytes_per_txn
        );
        rows.push(row);
    }
    // Reads: one follower vs one observer (two observers exist; the second
    // adds nothing to the read being measured).
    for mut o in std::mem::take(&mut e.observers) {
        o.kill9();
    }
    e.observer_feeds.clear();
    let leader = e.wait_serving(Duration::from_secs(30))?;
    let follower = (0..3).find(|&i| i != leader).unwrap_or(0);
    e.add_observer(std::slice::from_ref(&e.voter_peers[leader].clone()))?;
    e.wait_observers(Duration::from_secs(30))?;
    let mut reads = Vec::new();
    for (name, addr, pid) in [
        (
            "follower",
            e.addr(follower),
            e.nodes[follower].pid().context("pid")?,
        ),
        (
            "observer",
            e.observer_addr(0),
            e.observers[0].pid().context("pid")?,
        ),
    ] {
        let c0 = cpu_secs(pid)?;
        let ops = bench(addr, "get", secs)?;
        let c1 = cpu_secs(pid)?;
        let per = (c1 - c0) * 1e6 / (ops * secs as f64).max(1.0);
        eprintln!("reads on a {name}: {ops:.0} ops/s, {per:.2} us CPU per read");
        reads.push((name, ops, per));
    }
    println!("\n| observers | shape | txns | write ops/s | leader CPU µs/txn | leader → peers B/txn | leader → feeds B/txn |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0} |",
            r.observers,
            r.shape,
            r.txns,
            r.ops_per_sec,
            r.cpu_us_per_txn,
            r.peer_bytes_per_txn,
            r.feed_bytes_per_txn
        );
    }
    drop(e);
    if zk_available() {
        println!("\n| observers | ZooKeeper write ops/s | ZooKeeper leader CPU µs/txn | corral (direct) leader CPU µs/txn | ratio corral/ZooKeeper |");
        println!("|---|---|---|---|---|");
        for k in [0, 2, 4, 8] {
            let (zk_cpu, zk_ops) = zk_write_cost(k, secs, rounds)?;
            let ours = rows
                .iter()
                .find(|r| r.observers == k && r.shape == "direct")
                .map_or(f64::NAN, |r| r.cpu_us_per_txn);
            eprintln!(
                "ZooKeeper, {k} observers: {zk_ops:.0} ops/s, leader {zk_cpu:.1} us CPU per txn"
            );
            println!(
                "| {k} | {zk_ops:.0} | {zk_cpu:.1} | {ours:.1} | {:.2} |",
                ours / zk_cpu
            );
        }
    } else {
        eprintln!("ZooKeeper is not installed; skipping the side-by-side rows");
    }
    println!("\n| reads served by | ops/s | CPU µs per read on that node |");
    println!("|---|---|---|");
    for (name, ops, per) in &reads {
        println!("| one {name} | {ops:.0} | {per:.2} |");
    }
    Ok(())
}
