//! Measures resident memory of a DataTree holding N znodes (default 1,000,000).
//!
//! `cargo run --release -p corral-store --example rss -- 1000000 16`
//! (znodes, data bytes each). Layout: 1000 parents under /bench, N/1000 children each.

use corral_proto::Acl;
use corral_store::{DataTree, Txn, TxnHeader};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let data_len: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let before = rss_kib();
    let mut t = DataTree::new();
    let mut zxid = 0x1_0000_0000i64;
    let mut apply = |t: &mut DataTree, txn: Txn| {
        zxid += 1;
        let h = TxnHeader {
            session_id: 0,
            cxid: 0,
            zxid,
            time_ms: zxid,
        };
        t.apply(&h, &txn);
    };
    let create = |path: String, cv: i32| Txn::Create {
        path,
        data: Some(vec![b'x'; data_len]),
        acl: Acl::open_unsafe(),
        ephemeral_owner: 0,
        parent_cversion: cv,
    };
    let cv = t.get("/").map_or(0, |n| n.persisted_cversion()) + 1;
    apply(&mut t, create("/bench".into(), cv));
    let parents = 1000.min(n.max(1));
    let per = n / parents;
    let start = std::time::Instant::now();
    for p in 0..parents {
        apply(&mut t, create(format!("/bench/p{p:04}"), p as i32 + 1));
        for c in 0..per {
            apply(
                &mut t,
                create(format!("/bench/p{p:04}/n{c:010}"), c as i32 + 1),
            );
        }
    }
    let after = rss_kib();
    println!(
        "{} znodes, {} data bytes each: RSS {} MiB ({} bytes/znode), built in {:.1?}, digest {:#x}",
        t.node_count(),
        data_len,
        (after - before) / 1024,
        (after - before) * 1024 / t.node_count() as u64,
        start.elapsed(),
        t.digest()
    );
}
