//! Memory per znode and restart time with the shape of `corral bench --workload load`.
//!
//! ```text
//! cargo run --release -p corral-store --example footprint -- mem [N] [SIZE] [PARENTS]
//! cargo run --release -p corral-store --example footprint -- prepare DIR [N] [SIZE] [PARENTS]
//! cargo run --release -p corral-store --example footprint -- restart DIR
//! cargo run --release -p corral-store --example footprint -- load DIR
//! ```
//!
//! The shape is what `bench/compare.sh` loads: `/load/<pid>/s<k>/n<i>` with
//! PARENTS (16) sessions each creating `n0, n1, ...` (numeric order, so not byte
//! order), SIZE (100) bytes of data each, N (1,000,000) znodes in all.
//!
//! `mem` builds the tree with `DataTree::apply` and prints the RSS delta, the
//! live heap (a counting allocator: requested bytes and glibc chunk bytes),
//! and live allocations by size class. `prepare` writes a data dir as the
//! server would (`DIR/txnlog` file log, `DIR/snapshots` with a fuzzy snapshot
//! every 100,000 txns, 3 retained, the log purged behind them); `restart`
//! times `FileTxnLog::open` + `recover` on it, as the server does at start,
//! and `load` times `load_snapshot` of its newest snapshot alone (wall and
//! CPU time: CPU time is the steadier number on a shared machine).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::RwLock;
use std::time::Instant;

use corral_proto::Acl;
use corral_store::{
    purge_snapshots, recover, snapshot, write_fuzzy_snapshot, DataTree, FileTxnLog, LogEntry, Txn,
    TxnHeader, TxnLog,
};

/// Live heap: requested bytes, glibc chunk bytes, and a histogram by size.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static CHUNKS: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// Live allocations per power-of-two size class (0: <=16 B, 1: <=32 B, ...).
static HIST: [AtomicUsize; 40] = [const { AtomicUsize::new(0) }; 40];
static HIST_BYTES: [AtomicUsize; 40] = [const { AtomicUsize::new(0) }; 40];

/// What glibc malloc really takes for a request (8 B header, 16 B steps, 32 B minimum).
fn chunk(n: usize) -> usize {
    if n >= 128 * 1024 {
        return (n + 8).next_multiple_of(4096);
    }
    ((n + 8).next_multiple_of(16)).max(32)
}

fn class(n: usize) -> usize {
    (n.max(16).next_power_of_two().trailing_zeros() as usize - 4).min(39)
}

/// Counting costs atomics on every allocation: on only for `mem`.
static COUNTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn track(n: usize, add: bool) {
    if !COUNTING.load(Relaxed) {
        return;
    }
    let c = class(n);
    if add {
        LIVE.fetch_add(n, Relaxed);
        CHUNKS.fetch_add(chunk(n), Relaxed);
        COUNT.fetch_add(1, Relaxed);
        HIST[c].fetch_add(1, Relaxed);
        HIST_BYTES[c].fetch_add(chunk(n), Relaxed);
    } else {
        LIVE.fetch_sub(n, Relaxed);
        CHUNKS.fetch_sub(chunk(n), Relaxed);
        COUNT.fetch_sub(1, Relaxed);
        HIST[c].fetch_sub(1, Relaxed);
        HIST_BYTES[c].fetch_sub(chunk(n), Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        track(l.size(), true);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        track(l.size(), false);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        track(l.size(), true);
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        track(l.size(), false);
        track(new, true);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

struct Heap {
    live: usize,
    chunks: usize,
    count: usize,
    hist: Vec<(usize, usize)>,
}

fn heap() -> Heap {
    Heap {
        live: LIVE.load(Relaxed),
        chunks: CHUNKS.load(Relaxed),
        count: COUNT.load(Relaxed),
        hist: (0..40)
            .map(|i| (HIST[i].load(Relaxed), HIST_BYTES[i].load(Relaxed)))
            .collect(),
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// The txns `corral bench --workload load` makes, in the order a round-robin
/// over its sessions would apply them.
fn load_txns(n: usize, size: usize, parents: usize) -> impl Iterator<Item = Txn> {
    let root = "/load/4242".to_string();
    let dirs = ["/load".to_string(), root.clone()]
        .into_iter()
        .chain((0..parents).map(move |s| format!("/load/4242/s{s}")));
    let create = move |path: String, data: Vec<u8>| Txn::Create {
        path,
        data: Some(data),
        acl: Acl::open_unsafe(),
        ephemeral_owner: 0,
        parent_cversion: -1,
    };
    let per = n / parents;
    let data = vec![b'x'; size];
    dirs.map(move |p| create(p, Vec::new()))
        .chain((0..per * parents).map(move |i| {
            create(
                format!("{root}/s{}/n{}", i % parents, i / parents),
                data.clone(),
            )
        }))
}

fn mem(args: &[String]) {
    let n: usize = arg(args, 0, 1_000_000);
    let size: usize = arg(args, 1, 100);
    let parents: usize = arg(args, 2, 16);
    COUNTING.store(true, Relaxed);
    let (rss0, h0) = (rss_kib(), heap());
    let mut t = DataTree::new();
    let start = Instant::now();
    for (zxid, txn) in (0x1_0000_0001i64..).zip(load_txns(n, size, parents)) {
        let h = TxnHeader {
            session_id: 0,
            cxid: 0,
            zxid,
            time_ms: zxid,
        };
        t.apply(&h, &txn);
    }
    let built = start.elapsed();
    let (rss1, h1) = (rss_kib(), heap());
    let nodes = t.node_count() as f64;
    let per = |b: usize| b as f64 / nodes;
    println!(
        "{} znodes ({} parents, {} B data) built in {:.2?}; size_of::<Node>() = {} B",
        t.node_count(),
        parents,
        size,
        built,
        std::mem::size_of::<corral_store::Node>()
    );
    println!(
        "RSS delta {:.1} MiB = {:.1} B/znode; live heap {:.1} B/znode requested, {:.1} B/znode in glibc chunks, {:.2} allocations/znode",
        (rss1 - rss0) as f64 / 1024.0,
        (rss1 - rss0) as f64 * 1024.0 / nodes,
        per(h1.live - h0.live),
        per(h1.chunks - h0.chunks),
        (h1.count - h0.count) as f64 / nodes
    );
    println!("live allocations by size (glibc chunk bytes):");
    for (i, ((c1, b1), (c0, b0))) in h1.hist.iter().zip(&h0.hist).enumerate() {
        if c1 > c0 {
            println!(
                "  <= {:>9} B: {:>9} allocations, {:>7.1} B/znode",
                16usize << i,
                c1 - c0,
                per(b1 - b0)
            );
        }
    }
    println!("estimated by part (DataTree::memory_breakdown):");
    for (k, v) in t.memory_breakdown() {
        println!("  {k}: {:.1} B/znode", per(v));
    }
    COUNTING.store(false, Relaxed);
    // Reads: random existing paths, as the server's get/exists do.
    let per = n / parents;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let paths: Vec<String> = (0..1_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!(
                "/load/4242/s{}/n{}",
                x % parents as u64,
                (x >> 20) % per as u64
            )
        })
        .collect();
    let t0 = Instant::now();
    let mut sum = 0i64;
    for p in &paths {
        let node = t.get(p).expect("exists");
        sum += node.stat().mzxid + node.data_bytes().len() as i64;
    }
    let gets = t0.elapsed();
    let dirs: Vec<String> = (0..parents).map(|k| format!("/load/4242/s{k}")).collect();
    let t0 = Instant::now();
    for i in 0..1_000_000 {
        let node = t.get(&dirs[i % parents]).expect("exists");
        sum += node.stat().mzxid + node.data_bytes().len() as i64;
    }
    let hot = t0.elapsed();
    let t0 = Instant::now();
    let names = t.children("/load/4242/s0").expect("exists").len();
    println!(
        "1M random get+stat: {:.0} ns each; 1M get+stat of /load/4242/sK: {:.0} ns each; children() of a {names}-child znode: {:.1?} ({sum:x})",
        gets.as_nanos() as f64 / 1e6,
        hot.as_nanos() as f64 / 1e6,
        t0.elapsed()
    );
    println!("digest {:#x}", t.digest());
}

fn prepare(args: &[String]) {
    let dir = Path::new(&args[0]);
    let n: usize = arg(args, 1, 1_000_000);
    let size: usize = arg(args, 2, 100);
    let parents: usize = arg(args, 3, 16);
    let _ = std::fs::remove_dir_all(dir);
    let snaps = dir.join("snapshots");
    let mut log = FileTxnLog::open(&dir.join("txnlog")).expect("open log");
    let tree = RwLock::new(DataTree::new());
    let mut zxid = 0x1_0000_0000i64;
    let mut batch = Vec::new();
    let snap_count = 100_000;
    let start = Instant::now();
    let flush = |batch: &mut Vec<LogEntry>, log: &mut FileTxnLog, tree: &RwLock<DataTree>| {
        log.append(batch).expect("append");
        log.sync().expect("sync");
        let mut t = tree.write().unwrap();
        for e in batch.drain(..) {
            t.apply(&e.hdr, &e.txn);
        }
    };
    for (i, txn) in load_txns(n, size, parents).enumerate() {
        zxid += 1;
        batch.push(LogEntry {
            hdr: TxnHeader {
                session_id: 0x100,
                cxid: i as i32,
                zxid,
                time_ms: 1_700_000_000_000 + i as i64,
            },
            txn,
        });
        if batch.len() == 1000 {
            flush(&mut batch, &mut log, &tree);
        }
        if (i + 1) % snap_count == 0 {
            flush(&mut batch, &mut log, &tree);
            write_fuzzy_snapshot(&tree, &snaps).expect("snapshot");
            let kept = purge_snapshots(&snaps, 3).expect("purge");
            log.purge_through(kept[0]).expect("purge log");
            log.sync().expect("sync");
        }
    }
    flush(&mut batch, &mut log, &tree);
    let t = tree.read().unwrap();
    println!(
        "prepared {} znodes in {:.1?}: last zxid {:#x}, digest {:#x}",
        t.node_count(),
        start.elapsed(),
        t.last_zxid(),
        t.digest()
    );
}

/// User + system CPU time of this process so far, in seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the file; `f[0]` is field 3.
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// What the server does at start: open the log, then `recover`.
fn restart(args: &[String]) {
    let dir = Path::new(&args[0]);
    let (rss0, cpu0) = (rss_kib(), cpu_secs());
    let t0 = Instant::now();
    let log = FileTxnLog::open(&dir.join("txnlog")).expect("open log");
    let opened = t0.elapsed();
    let tree = recover(&dir.join("snapshots"), &log).expect("recover");
    let total = t0.elapsed();
    let (rss1, cpu1) = (rss_kib(), cpu_secs());
    println!(
        "restart: {:.3} s wall ({:.2} s CPU): FileTxnLog::open {:.3} s + recover {:.3} s; {} znodes, last zxid {:#x}, digest {:#x}, RSS delta {:.1} MiB",
        total.as_secs_f64(),
        cpu1 - cpu0,
        opened.as_secs_f64(),
        (total - opened).as_secs_f64(),
        tree.node_count(),
        tree.last_zxid(),
        tree.digest(),
        (rss1 - rss0) as f64 / 1024.0
    );
    if std::env::var_os("CHECK").is_some() {
        assert_eq!(tree.digest(), tree.recompute_digest());
        println!("digest verified from scratch");
    }
}

/// `load_snapshot` of the newest snapshot alone.
fn load(args: &[String]) {
    let snaps = Path::new(&args[0]).join("snapshots");
    let newest = *snapshot::list_snapshots(&snaps)
        .expect("list")
        .last()
        .expect("a snapshot");
    let (rss0, cpu0) = (rss_kib(), cpu_secs());
    let t0 = Instant::now();
    let (_, tree) =
        snapshot::load_snapshot(&snaps.join(snapshot::snapshot_file_name(newest))).expect("load");
    let wall = t0.elapsed();
    let (rss1, cpu1) = (rss_kib(), cpu_secs());
    println!(
        "load_snapshot: {:.3} s wall ({:.2} s CPU); {} znodes, digest {:#x}, RSS delta {:.1} MiB",
        wall.as_secs_f64(),
        cpu1 - cpu0,
        tree.node_count(),
        tree.digest(),
        (rss1 - rss0) as f64 / 1024.0
    );
}

/// Times `write_fuzzy_snapshot` of the `mem` tree (best of 3) into DIR.
fn snap(args: &[String]) {
    let dir = Path::new(&args[0]);
    let mut t = DataTree::new();
    for (zxid, txn) in (0x1_0000_0001i64..).zip(load_txns(1_000_000, 100, 16)) {
        let h = TxnHeader {
            session_id: 0,
            cxid: 0,
            zxid,
            time_ms: zxid,
        };
        t.apply(&h, &txn);
    }
    let tree = RwLock::new(t);
    let mut best = f64::MAX;
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(dir);
        let (cpu0, t0) = (cpu_secs(), Instant::now());
        write_fuzzy_snapshot(&tree, dir).expect("snapshot");
        let wall = t0.elapsed().as_secs_f64();
        println!(
            "write_fuzzy_snapshot of 1M znodes: {wall:.3} s wall ({:.2} s CPU)",
            cpu_secs() - cpu0
        );
        best = best.min(wall);
    }
    println!("best {best:.3} s");
}

/// `ITER` (20M) get+stat of a few paths in a small tree (the cached read path).
fn hot() {
    let mut t = DataTree::new();
    for (i, txn) in load_txns(1600, 100, 16).enumerate() {
        let h = TxnHeader {
            session_id: 0,
            cxid: 0,
            zxid: i as i64 + 1,
            time_ms: 0,
        };
        t.apply(&h, &txn);
    }
    let dirs: Vec<String> = (0..16).map(|k| format!("/load/4242/s{k}/n{k}")).collect();
    let iters: usize = std::env::var("ITER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000_000);
    let t0 = Instant::now();
    let mut sum = 0i64;
    for i in 0..iters {
        let node = t.get(&dirs[i % 16]).expect("exists");
        sum += node.stat().mzxid + node.data_bytes().len() as i64;
    }
    println!(
        "{iters} get+stat of /load/4242/sK/nK: {:.1} ns each ({sum:x})",
        t0.elapsed().as_nanos() as f64 / iters as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("mem") | None => mem(args.get(1..).unwrap_or(&[])),
        Some("prepare") => prepare(&args[1..]),
        Some("restart") => restart(&args[1..]),
        Some("load") => load(&args[1..]),
        Some("hot") => hot(),
        Some("snap") => snap(&args[1..]),
        Some(other) => panic!("unknown mode {other}"),
    }
}
