//! Read scaling with observers (issue 4's benchmark).
//!
//!   cargo build --release -p corral-ops
//!   CORRAL_BIN=target/release/corral cargo run --release -p corral-tests \
//!       --example observer_scaling [-- SECS]
//!
//! Three voters, then 0, 2, 4 and 8 observers fed two ways: **direct** (every
//! observer's upstream is the leader) and **chained** (the first observer
//! hangs off the leader, each next one off the previous). For each, a write
//! load (`corral bench --workload set`, 100-byte values, through a
//! follower) runs for SECS seconds (default 5) and the leader's cost per
//! committed txn is measured: CPU time (utime + stime from /proc) and bytes
//! sent (to peers over QUIC, and down observer feeds, from `mntr`).
//! Then reads: the same `get` load against one follower and against one
//! observer, each measured by its throughput and the serving process's CPU
//! per read. Everything runs on this one machine, so the figures are per
//! node costs; docs/benchmarks.md extrapolates to one machine per node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use corral_tests::ensemble::EnsembleProc;
use corral_tests::{corral_bin, four_letter_word};

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

/// Runs `corral bench`; returns ops/s.
fn bench(addr: SocketAddr, workload: &str, secs: u64) -> Result<f64> {
    let out = Command::new(corral_bin()?)
        .args(["bench", "--workload", workload, "--size", "100"])
        .args(["--sessions", "8", "--pipeline", "16"])
        .args(["--duration-secs", &secs.to_string(), "--json"])
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

struct WriteRow {
    observers: usize,
    shape: &'static str,
    txns: f64,
    ops_per_sec: f64,
    cpu_us_per_txn: f64,
    peer_bytes_per_txn: f64,
    feed_bytes_per_txn: f64,
}

fn main() -> Result<()> {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    eprintln!("binary: {}", corral_bin()?.display());
    let mut e = EnsembleProc::builder(3)
        .spare_observers(2 * (2 + 4 + 8) + 2)
        .set("snap_count", "1000000")
        .start()?;
    let leader = e.wait_serving(Duration::from_secs(30))?;
    let follower = (0..3).find(|&i| i != leader).unwrap_or(0);
    let leader_pid = e.nodes[leader].pid().context("leader pid")?;
    let leader_peer = e.voter_peers[leader].clone();
    eprintln!("leader is voter {}", leader + 1);
    // The bench's working node exists before any measurement.
    bench(e.addr(follower), "set", 1)?;
    let mut rows = Vec::new();
    for (k, shape) in [
        (0, "direct"),
        (2, "direct"),
        (4, "direct"),
        (8, "direct"),
        (2, "chained"),
        (4, "chained"),
        (8, "chained"),
    ] {
        for mut o in std::mem::take(&mut e.observers) {
            o.kill9();
        }
        e.observer_feeds.clear();
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
                bail!("leader does not show {wanted} feeds");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let counters settle, then measure one write run.
        std::thread::sleep(Duration::from_millis(300));
        let m0 = mntr(e.addr(leader))?;
        let c0 = cpu_secs(leader_pid)?;
        let ops = bench(e.addr(follower), "set", secs)?;
        std::thread::sleep(Duration::from_millis(300));
        let m1 = mntr(e.addr(leader))?;
        let c1 = cpu_secs(leader_pid)?;
        let txns = (num(&m1, "corral_last_zxid") - num(&m0, "corral_last_zxid")).max(1.0);
        let row = WriteRow {
            observers: k,
            shape,
            txns,
            ops_per_sec: ops,
            cpu_us_per_txn: (c1 - c0) * 1e6 / txns,
            peer_bytes_per_txn: (num(&m1, "corral_peer_bytes_sent")
                - num(&m0, "corral_peer_bytes_sent"))
                / txns,
            feed_bytes_per_txn: (num(&m1, "corral_feed_bytes_sent")
                - num(&m0, "corral_feed_bytes_sent"))
                / txns,
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
    e.add_observer(std::slice::from_ref(&leader_peer))?;
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
    println!("\n| reads served by | ops/s | CPU µs per read on that node |");
    println!("|---|---|---|");
    for (name, ops, per) in &reads {
        println!("| one {name} | {ops:.0} | {per:.2} |");
    }
    Ok(())
}
