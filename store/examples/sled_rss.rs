//! Measures the RSS the sled txn log adds while appending `N` entries:
//! `cargo run --release -p corral-store --example sled_rss -- 100000 100`.
use corral_store::{LogEntry, SledTxnLog, Txn, TxnHeader, TxnLog};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: i64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let size: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = SledTxnLog::open(dir.path()).expect("open");
    let before = rss_kib();
    let mut batch = Vec::new();
    for z in 1..=n {
        batch.push(LogEntry {
            hdr: TxnHeader {
                session_id: 1,
                cxid: z as i32,
                zxid: (1 << 32) | z,
                time_ms: 0,
            },
            txn: Txn::Create {
                path: format!("/bench/n{z}"),
                data: Some(vec![b'x'; size]),
                acl: corral_proto::Acl::open_unsafe(),
                ephemeral_owner: 0,
                parent_cversion: z as i32,
            },
        });
        if batch.len() == 64 {
            log.append(&batch).expect("append");
            log.sync().expect("sync");
            batch.clear();
        }
    }
    log.append(&batch).expect("append");
    log.sync().expect("sync");
    println!(
        "sled log: {n} entries of {size} B: RSS +{} KiB",
        rss_kib() - before
    );
}
