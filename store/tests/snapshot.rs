//! Snapshots: round trip, fuzzy snapshots under concurrent writes, corruption fallback, purge, recovery.
// `is_multiple_of` is newer than the workspace's rust-version (1.85).
#![allow(clippy::manual_is_multiple_of)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use common::{create, dump, hdr, prep, session_id, Driver, Op};
use corral_store::snapshot::{
    list_snapshots, load_snapshot, snapshot_file_name, write_fuzzy_snapshot_chunked,
    write_fuzzy_snapshot_interleaved,
};
use corral_store::{
    load_latest_snapshot, purge_snapshots, recover, write_fuzzy_snapshot, DataTree, LogEntry,
    MemTxnLog, Outcome, Txn, TxnHeader, TxnLog, CONTAINER_OWNER,
};
use proptest::prelude::*;

/// xorshift64*, so the workload is reproducible without extra crates.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn op(&mut self) -> Op {
        let r = self.next();
        let pick = self.next() as usize;
        let small = (r >> 8) as u8;
        match r % 18 {
            0..=5 => Op::Create {
                parent: pick,
                name: small % 6,
                data: vec![small; (small % 5) as usize],
                kind: small % 4,
                seq: small % 3 == 0,
            },
            6..=9 => Op::Delete { pick },
            10..=11 => Op::SetData {
                pick,
                data: vec![small; 3],
            },
            12 => Op::SetAcl {
                pick,
                read_only: small % 2 == 0,
            },
            13 => Op::OpenSession { id: small % 3 },
            14 => Op::CloseSession { id: small % 3 },
            16 | 17 => Op::BindSession {
                id: small % 3,
                tenant: small % 2,
            },
            _ => Op::Multi {
                pick,
                name: small % 6,
                fail: small % 4 == 0,
            },
        }
    }
}

/// Applies and logs one txn.
fn step(tree: &mut DataTree, log: &mut MemTxnLog, zxid: &mut i64, session: i64, txn: Txn) {
    *zxid += 1;
    let h = TxnHeader {
        session_id: session,
        cxid: 0,
        zxid: *zxid,
        time_ms: *zxid,
    };
    tree.apply(&h, &txn);
    log.append(&[LogEntry { hdr: h, txn }]).unwrap();
}

/// A tree with `dirs * files` nodes, every txn logged.
fn populated(dirs: usize, files: usize, log: &mut MemTxnLog) -> (DataTree, i64) {
    let mut t = DataTree::new();
    let mut z = 0x1_0000_0000;
    step(
        &mut t,
        log,
        &mut z,
        session_id(0),
        Txn::CreateSession {
            timeout_ms: 5000,
            passwd: vec![0; 16],
        },
    );
    for d in 0..dirs {
        let owner = if d % 7 == 0 { CONTAINER_OWNER } else { 0 };
        let cv = t.get("/").unwrap().persisted_cversion() + 1;
        step(
            &mut t,
            log,
            &mut z,
            0,
            create(&format!("/d{d}"), b"dir", owner, cv),
        );
        for f in 0..files {
            let owner = if f % 5 == 0 { session_id(0) } else { 0 };
            step(
                &mut t,
                log,
                &mut z,
                session_id(0),
                create(&format!("/d{d}/f{f}"), &[f as u8; 3], owner, f as i32 + 1),
            );
        }
    }
    (t, z)
}

#[test]
fn snapshot_round_trip_preserves_everything() {
    // Goal: write + load gives the same digest, nodes, stats, sessions, indexes and sizes.
    let dir = tempfile::tempdir().unwrap();
    let mut log = MemTxnLog::new();
    let (mut t, mut z) = populated(30, 40, &mut log);
    let mut rng = Rng(7);
    for _ in 0..300 {
        let (s, txn) = prep(&t, &rng.op());
        step(&mut t, &mut log, &mut z, s, txn);
    }
    t.apply(
        &hdr(0, z + 1, 1),
        &Txn::SetData {
            path: "/".into(),
            data: Some(b"root".to_vec()),
            version: 1,
        },
    );
    // One more bound session, whatever the random workload left.
    let bound = session_id(9);
    t.apply(
        &hdr(bound, z + 2, 1),
        &Txn::CreateSession {
            timeout_ms: 5000,
            passwd: vec![9; 16],
        },
    );
    t.apply(
        &hdr(bound, z + 3, 1),
        &Txn::BindSession {
            tenant: "t9".into(),
        },
    );
    let lock = RwLock::new(t);
    let (zxid, file) = write_fuzzy_snapshot(&lock, dir.path()).unwrap();
    let t = lock.into_inner().unwrap();
    assert_eq!(zxid, t.last_zxid());
    assert_eq!(
        file.file_name().unwrap().to_str().unwrap(),
        snapshot_file_name(zxid)
    );
    let (z2, loaded) = load_latest_snapshot(dir.path()).unwrap().unwrap();
    assert_eq!(z2, zxid);
    assert_eq!(dump(&loaded), dump(&t));
    assert_eq!(loaded.digest(), t.digest());
    assert_eq!(loaded.digest(), loaded.recompute_digest());
    assert_eq!(loaded.last_zxid(), t.last_zxid());
    assert_eq!(loaded.sessions(), t.sessions());
    assert_eq!(loaded.session_tenant(bound), Some("t9"));
    assert_eq!(loaded.tenant_session_counts(), t.tenant_session_counts());
    assert_eq!(
        loaded.tenant_session_counts(),
        &loaded.count_tenant_sessions()
    );
    assert_eq!(loaded.all_ephemerals(), t.all_ephemerals());
    assert_eq!(loaded.container_candidates(), t.container_candidates());
    assert_eq!(loaded.ttl_candidates(i64::MAX), t.ttl_candidates(i64::MAX));
    assert_eq!(loaded.node_count(), t.node_count());
    assert_eq!(loaded.approximate_data_size(), t.approximate_data_size());
    // ACLs come back interned.
    let a = loaded.get("/d1").unwrap();
    let b = loaded.get("/d2").unwrap();
    if a.acl() == b.acl() {
        assert!(Arc::ptr_eq(a.acl(), b.acl()));
    }
}

#[test]
fn fresh_tree_snapshot_round_trips() {
    // Goal: the special /zookeeper nodes (aversion -1, READ acl) survive a snapshot.
    let dir = tempfile::tempdir().unwrap();
    let lock = RwLock::new(DataTree::new());
    write_fuzzy_snapshot(&lock, dir.path()).unwrap();
    let (_, loaded) = load_latest_snapshot(dir.path()).unwrap().unwrap();
    assert_eq!(dump(&loaded), dump(&DataTree::new()));
    assert_eq!(loaded.digest(), DataTree::new().digest());
}

#[test]
fn a_reconfig_sets_the_config_node_and_snapshots_record_it_exactly() {
    // Goal: a reconfig txn writes /zookeeper/config as ZooKeeper does (data
    // version -1), and a snapshot records the configuration at its start
    // even if a later reconfig lands while it is written.
    let dir = tempfile::tempdir().unwrap();
    let mut t = DataTree::new();
    assert_eq!(t.config_data(), Some(&b""[..]));
    let text = |v: u64| format!("server.{v}=h:1{v}:2{v}:participant;0.0.0.0:3{v}\nversion={v:x}");
    let at = |z: i64| TxnHeader {
        session_id: 0,
        cxid: 0,
        zxid: z,
        time_ms: 5,
    };
    t.apply(
        &at(1),
        &Txn::Reconfig {
            data: text(1).into_bytes(),
        },
    );
    let stat = t.stat("/zookeeper/config").unwrap();
    assert_eq!((stat.version, stat.mzxid, stat.mtime), (-1, 1, 5));
    assert_eq!(t.config_data(), Some(text(1).as_bytes()));
    let lock = RwLock::new(t);
    let mut once = true;
    let (start, _) = write_fuzzy_snapshot_interleaved(&lock, dir.path(), 1, &mut || {
        if std::mem::take(&mut once) {
            lock.write().unwrap().apply(
                &at(2),
                &Txn::Reconfig {
                    data: text(2).into_bytes(),
                },
            );
        }
    })
    .unwrap();
    assert_eq!(start, 1);
    let (_, loaded) = load_snapshot(&dir.path().join(snapshot_file_name(start))).unwrap();
    assert_eq!(loaded.snapshot_config(), Some(text(1).as_bytes()));
    assert_eq!(
        loaded.config_data(),
        Some(text(2).as_bytes()),
        "the fuzzy walk saw the later reconfig"
    );
    let fresh = tempfile::tempdir().unwrap();
    write_fuzzy_snapshot(&RwLock::new(DataTree::new()), fresh.path()).unwrap();
    let (_, plain) = load_latest_snapshot(fresh.path()).unwrap().unwrap();
    assert_eq!(plain.snapshot_config(), None);
}

#[test]
fn fuzzy_snapshot_during_writes_plus_replay_equals_live_tree() {
    // Goal: snapshots taken while another thread applies txns, plus log replay, reproduce the live tree exactly.
    let dir = tempfile::tempdir().unwrap();
    let mut log = MemTxnLog::new();
    let (t, z) = populated(40, 40, &mut log);
    log.sync().unwrap();
    let tree = Arc::new(RwLock::new(t));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (tree, done, mut log) = (tree.clone(), done.clone(), log.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(0x5eed);
            let mut z = z;
            let mut n = 0;
            while !done.load(Ordering::Relaxed) || n < 2000 {
                let mut t = tree.write().unwrap();
                let (s, txn) = prep(&t, &rng.op());
                step(&mut t, &mut log, &mut z, s, txn);
                n += 1;
                drop(t);
                std::thread::yield_now();
                if n > 20_000 {
                    break;
                }
            }
            n
        })
    };
    let mut snaps = Vec::new();
    let mut during = 0;
    for _ in 0..4 {
        let start = write_fuzzy_snapshot_chunked(&tree, dir.path(), 7)
            .unwrap()
            .0;
        during += tree.read().unwrap().last_zxid() - start;
        snaps.push(start);
    }
    done.store(true, Ordering::Relaxed);
    let applied = writer.join().unwrap();
    assert!(applied >= 2000);
    let live = tree.read().unwrap();
    assert!(snaps.windows(2).all(|w| w[0] <= w[1]), "{snaps:x?}");
    snaps.dedup();
    // Each snapshot, replayed from its own start zxid, converges on the live tree.
    let mut absorbed = 0;
    for &s in &snaps {
        let (start, mut t) = load_snapshot(&dir.path().join(snapshot_file_name(s))).unwrap();
        assert_eq!(start, s);
        for e in log.read_after(start).unwrap() {
            let a = t.apply(&e.hdr, &e.txn);
            if matches!(a.outcome, Outcome::Error(-110) | Outcome::Error(-101))
                && !matches!(e.txn, Txn::Error(_))
            {
                absorbed += 1;
            }
        }
        assert_eq!(dump(&t), dump(&live), "snapshot {s:#x}");
        assert_eq!(t.digest(), live.digest());
        assert_eq!(t.sessions(), live.sessions());
        assert_eq!(t.tenant_session_counts(), live.tenant_session_counts());
        assert_eq!(t.tenant_session_counts(), &t.count_tenant_sessions());
        assert_eq!(t.all_ephemerals(), live.all_ephemerals());
    }
    eprintln!("{during} txns applied during snapshots; replay absorbed {absorbed} already in them");
    assert!(
        during > 0,
        "no snapshot overlapped a write; the test proves nothing"
    );
    let recovered = recover(dir.path(), &log).unwrap();
    assert_eq!(recovered.digest(), live.digest());
    assert_eq!(recovered.last_zxid(), live.last_zxid());
    // And from no snapshot at all: the whole log from scratch.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(recover(empty.path(), &log).unwrap().digest(), live.digest());
}

#[test]
fn corrupt_newest_snapshot_falls_back_to_older() {
    // Goal: a snapshot failing its checksum (or truncated) is skipped, and recovery still reaches the same tree.
    let dir = tempfile::tempdir().unwrap();
    let mut log = MemTxnLog::new();
    let (t, mut z) = populated(5, 5, &mut log);
    let lock = RwLock::new(t);
    let (old, _) = write_fuzzy_snapshot(&lock, dir.path()).unwrap();
    {
        let mut t = lock.write().unwrap();
        step(
            &mut t,
            &mut log,
            &mut z,
            0,
            Txn::SetData {
                path: "/d1".into(),
                data: Some(b"new".to_vec()),
                version: 1,
            },
        );
    }
    let (new, file) = write_fuzzy_snapshot(&lock, dir.path()).unwrap();
    assert!(new > old);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    assert_eq!(load_latest_snapshot(dir.path()).unwrap().unwrap().0, old);
    assert_eq!(
        recover(dir.path(), &log).unwrap().digest(),
        lock.read().unwrap().digest()
    );
    // Truncated is just as unusable.
    std::fs::write(&file, &bytes[..mid]).unwrap();
    assert_eq!(load_latest_snapshot(dir.path()).unwrap().unwrap().0, old);
    // Nothing usable at all: None, not an error.
    std::fs::write(dir.path().join(snapshot_file_name(old)), b"junk").unwrap();
    assert!(load_latest_snapshot(dir.path()).unwrap().is_none());
}

#[test]
fn purge_keeps_the_newest_retain() {
    // Goal: purge_snapshots deletes all but the newest `retain`, never the last one.
    let dir = tempfile::tempdir().unwrap();
    let lock = RwLock::new(DataTree::new());
    let mut zs = Vec::new();
    for z in 1..=5 {
        lock.write().unwrap().apply(&hdr(0, z, 1), &Txn::Error(0));
        zs.push(write_fuzzy_snapshot(&lock, dir.path()).unwrap().0);
    }
    assert_eq!(list_snapshots(dir.path()).unwrap(), zs);
    assert_eq!(purge_snapshots(dir.path(), 2).unwrap(), vec![4, 5]);
    assert_eq!(list_snapshots(dir.path()).unwrap(), vec![4, 5]);
    assert_eq!(purge_snapshots(dir.path(), 0).unwrap(), vec![5]);
    assert_eq!(purge_snapshots(dir.path(), 3).unwrap(), vec![5]);
    assert!(purge_snapshots(&dir.path().join("none"), 3)
        .unwrap()
        .is_empty());
}

#[test]
fn recover_refuses_a_log_purged_past_the_snapshot() {
    // Goal: recovery reports the gap instead of silently losing the purged txns.
    let dir = tempfile::tempdir().unwrap();
    let mut log = MemTxnLog::new();
    let (_t, _z) = populated(2, 2, &mut log);
    log.purge_through(0x1_0000_0003).unwrap();
    assert!(recover(dir.path(), &log).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn loading_a_damaged_snapshot_never_panics(pos in any::<usize>(), val in any::<u8>(), cut in any::<usize>()) {
        // Goal: snapshot decoding is total: damaged files give errors (or a valid tree), never a panic.
        let dir = tempfile::tempdir().unwrap();
        let mut d = Driver::new();
        d.apply(7, Txn::CreateSession { timeout_ms: 1, passwd: vec![1] });
        d.apply(0, create("/a", b"xyz", 0, 1));
        d.apply(7, create("/a/e", b"", 7, 1));
        let lock = RwLock::new(d.tree);
        let (_, file) = write_fuzzy_snapshot(&lock, dir.path()).unwrap();
        let mut bytes = std::fs::read(&file).unwrap();
        let p = pos % bytes.len();
        bytes[p] = val;
        bytes.truncate(bytes.len() - cut % 3);
        std::fs::write(&file, &bytes).unwrap();
        let _ = load_snapshot(&file);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn interleaved_fuzzy_snapshot_plus_replay_equals_live_tree(
        seed in any::<u64>(),
        chunk in 1usize..6,
        per_chunk in 1usize..8,
    ) {
        // Goal: with txns applied between every chunk of the walk (deterministically), replay converges exactly.
        let dir = tempfile::tempdir().unwrap();
        let mut log = MemTxnLog::new();
        let (mut t, mut z) = populated(4, 5, &mut log);
        let mut rng = Rng(seed | 1);
        for _ in 0..40 {
            let (s, txn) = prep(&t, &rng.op());
            step(&mut t, &mut log, &mut z, s, txn);
        }
        let tree = RwLock::new(t);
        let mut wlog = log.clone();
        let (start, file) = corral_store::snapshot::write_fuzzy_snapshot_interleaved(&tree, dir.path(), chunk, &mut || {
            let mut t = tree.write().unwrap();
            for _ in 0..per_chunk {
                let (s, txn) = prep(&t, &rng.op());
                step(&mut t, &mut wlog, &mut z, s, txn);
            }
        }).unwrap();
        let live = tree.into_inner().unwrap();
        prop_assert!(live.last_zxid() > start);
        let (_, mut loaded) = load_snapshot(&file).unwrap();
        for e in log.read_after(start).unwrap() {
            loaded.apply(&e.hdr, &e.txn);
        }
        prop_assert!(dump(&loaded) == dump(&live), "replayed vs live:\n{}", common::diff(&loaded, &live));
        prop_assert_eq!(loaded.pending_ghosts(), 0);
        prop_assert_eq!(loaded.digest(), live.digest());
        prop_assert_eq!(loaded.sessions(), live.sessions());
        prop_assert_eq!(loaded.all_ephemerals(), live.all_ephemerals());
        prop_assert_eq!(loaded.container_candidates(), live.container_candidates());
        prop_assert_eq!(loaded.approximate_data_size(), live.approximate_data_size());
    }
}

#[test]
fn recovery_removes_partial_snapshot_files() {
    // Goal: a snapshot.*.tmp left by a crash mid-write is deleted at recovery and never loaded.
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("snapshot.0000000000000005.tmp");
    std::fs::write(&tmp, b"half a snapshot").unwrap();
    let log = corral_store::MemTxnLog::new();
    let tree = corral_store::recover(dir.path(), &log).unwrap();
    assert_eq!(tree.last_zxid(), 0);
    assert!(!tmp.exists());
}
