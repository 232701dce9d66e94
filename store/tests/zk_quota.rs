//! ZooKeeper path quotas in the tree: the stats nodes follow every change on
//! apply, equal a recount, and come back identical after a snapshot load.
// `is_multiple_of` is newer than the workspace's rust-version (1.85).
#![allow(clippy::manual_is_multiple_of)]

mod common;

use std::sync::RwLock;

use std::collections::HashMap;

use common::{create, dump, prep_create, Driver};
use corral_store::snapshot::{load_snapshot, write_fuzzy_snapshot_interleaved};
use corral_store::zk_quota::{limit_path, stat_path, ZkQuotaUsage, QUOTA_ROOT};
use corral_store::{DataTree, LogEntry, MemTxnLog, Txn, TxnLog};
use rand::{Rng, SeedableRng};

/// zkCli 3.7+ `setquota -N 3 /app` limits text.
const LIMITS_N3: &[u8] = b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3";

fn set_data(path: &str, data: &[u8], version: i32) -> Txn {
    Txn::SetData {
        path: path.into(),
        data: Some(data.to_vec()),
        version,
    }
}

fn delete(path: &str) -> Txn {
    Txn::Delete { path: path.into() }
}

/// Creates the quota nodes for `path` as zkCli does: the parents under
/// `/zookeeper/quota` (null data), the limits node, then the stats node.
fn set_quota(d: &mut Driver, path: &str, limits: &[u8]) {
    let mut q = QUOTA_ROOT.to_string();
    for seg in path.split('/').skip(1) {
        q = format!("{q}/{seg}");
        if d.tree.get(&q).is_none() {
            d.apply(
                0,
                Txn::Create {
                    path: q.clone(),
                    data: None,
                    acl: corral_proto::Acl::open_unsafe(),
                    ephemeral_owner: 0,
                    parent_cversion: -1,
                },
            );
        }
    }
    d.apply(0, create(&limit_path(path), limits, 0, -1));
    d.apply(0, create(&stat_path(path), b"count=0,bytes=0", 0, -1));
}

fn stats_text(tree: &DataTree, path: &str) -> String {
    let n = tree.get(&stat_path(path)).expect("stats node");
    String::from_utf8(n.data_bytes().to_vec()).expect("utf-8")
}

/// Every root's maintained usage equals a recount, its stats node (if any)
/// shows it, the roots are exactly the limits nodes' paths, and the
/// incremental digest is right.
fn assert_exact(tree: &DataTree) {
    let mut expected_roots = Vec::new();
    tree.for_each_node(|p, _| {
        if let Some(r) = corral_store::zk_quota::limits_owner(p) {
            expected_roots.push(r.to_string());
        }
    });
    expected_roots.sort();
    assert_eq!(tree.zk_quota_roots(), expected_roots, "roots");
    for root in tree.zk_quota_roots() {
        let usage = tree.zk_quota_usage(&root).expect("a root");
        assert_eq!(usage, tree.count_zk_quota(&root), "usage of {root}");
        if let Some(n) = tree.get(&stat_path(&root)) {
            assert_eq!(
                n.data_bytes(),
                usage.to_stats().to_bytes().as_slice(),
                "stats node of {root}"
            );
        }
    }
    tree.for_each_node(|p, n| {
        if let Some(r) = corral_store::zk_quota::stats_owner(p) {
            if tree.zk_quota_usage(r).is_none() {
                assert_eq!(
                    n.data_bytes(),
                    b"count=0,bytes=0",
                    "stats node of non-root {r}"
                );
            }
        }
    });
    assert_eq!(tree.digest(), tree.recompute_digest(), "digest");
}

#[test]
fn stats_node_follows_create_delete_set_data_and_session_close() {
    // Goal: the stats node reads as ZooKeeper's after each kind of change, with its Stat untouched.
    let mut d = Driver::new();
    d.apply(0, create("/app", b"12345", 0, -1));
    d.apply(0, create("/other", b"zz", 0, -1));
    set_quota(&mut d, "/app", LIMITS_N3);
    // The create of the stats node recounts: /app itself is counted.
    assert_eq!(stats_text(&d.tree, "/app"), "count=1,bytes=5");
    let before = d.tree.stat(&stat_path("/app")).expect("stat");
    assert_eq!(before.data_length, "count=1,bytes=5".len() as i32);

    d.apply(0, create("/app/a", b"abc", 0, -1));
    assert_eq!(stats_text(&d.tree, "/app"), "count=2,bytes=8");
    d.apply(0, set_data("/app/a", b"abcdefgh", 1));
    assert_eq!(stats_text(&d.tree, "/app"), "count=2,bytes=13");
    d.apply(0, create("/other/x", b"not counted", 0, -1));
    assert_eq!(stats_text(&d.tree, "/app"), "count=2,bytes=13");

    let session = 0x77;
    d.apply(
        session,
        Txn::CreateSession {
            timeout_ms: 30_000,
            passwd: vec![1; 16],
        },
    );
    d.apply(session, create("/app/e1", b"e", session, -1));
    d.apply(session, create("/app/a/e2", b"ee", session, -1));
    assert_eq!(stats_text(&d.tree, "/app"), "count=4,bytes=16");
    d.apply(session, Txn::CloseSession);
    assert_eq!(stats_text(&d.tree, "/app"), "count=2,bytes=13");

    d.apply(0, delete("/app/a"));
    assert_eq!(stats_text(&d.tree, "/app"), "count=1,bytes=5");
    d.apply(0, delete("/app"));
    assert_eq!(stats_text(&d.tree, "/app"), "count=0,bytes=0");

    // Only the data moved: no new mzxid, mtime or version (ZooKeeper's updateQuotaStat).
    let after = d.tree.stat(&stat_path("/app")).expect("stat");
    assert_eq!(
        (after.mzxid, after.mtime, after.version, after.czxid),
        (before.mzxid, before.mtime, before.version, before.czxid)
    );
    assert_exact(&d.tree);
}

#[test]
fn stats_rewrites_fire_no_watch() {
    // Goal: a change under a quota reports triggers for the changed node only, never for the stats node.
    let mut d = Driver::new();
    d.apply(0, create("/app", b"", 0, -1));
    set_quota(&mut d, "/app", LIMITS_N3);
    let applied = d.apply(0, create("/app/x", b"data", 0, -1));
    assert!(
        applied
            .triggers
            .iter()
            .all(|t| !t.path.starts_with(QUOTA_ROOT)),
        "{:?}",
        applied.triggers
    );
}

#[test]
fn limits_without_stats_and_stats_written_by_a_client() {
    // Goal: a root without a stats node is still counted, its later stats node starts at the usage, a client's write to it is replaced by the usage, and without a root it reads zero.
    let mut d = Driver::new();
    d.apply(0, create("/app", b"xy", 0, -1));
    d.apply(0, create("/zookeeper/quota/app", b"", 0, -1));
    d.apply(0, create(&limit_path("/app"), LIMITS_N3, 0, -1));
    d.apply(0, create("/app/b", b"123", 0, -1));
    assert_eq!(
        d.tree.zk_quota_usage("/app"),
        Some(ZkQuotaUsage { count: 2, bytes: 5 })
    );
    d.apply(0, create(&stat_path("/app"), b"count=99,bytes=99", 0, -1));
    assert_eq!(stats_text(&d.tree, "/app"), "count=2,bytes=5");
    d.apply(0, set_data(&stat_path("/app"), b"count=0,bytes=0", 1));
    assert_eq!(stats_text(&d.tree, "/app"), "count=2,bytes=5");
    // Deleting the limits node ends the quota; the stats node reads zero.
    d.apply(0, delete(&limit_path("/app")));
    assert!(d.tree.zk_quota_roots().is_empty());
    assert_eq!(stats_text(&d.tree, "/app"), "count=0,bytes=0");
    d.apply(0, create("/app/c", b"1", 0, -1));
    d.apply(0, set_data(&stat_path("/app"), b"count=5,bytes=5", 2));
    assert_eq!(stats_text(&d.tree, "/app"), "count=0,bytes=0");
    assert_exact(&d.tree);
}

#[test]
fn nested_roots_take_their_nodes_from_the_enclosing_root() {
    // Goal: each node counts for its longest quota prefix only; adding or removing a nested root moves its usage.
    let mut d = Driver::new();
    for p in ["/a", "/a/b", "/a/b/c", "/a/x"] {
        d.apply(0, create(p, b"1234", 0, -1));
    }
    set_quota(&mut d, "/a", LIMITS_N3);
    assert_eq!(stats_text(&d.tree, "/a"), "count=4,bytes=16");
    set_quota(&mut d, "/a/b", LIMITS_N3);
    assert_eq!(stats_text(&d.tree, "/a"), "count=2,bytes=8");
    assert_eq!(stats_text(&d.tree, "/a/b"), "count=2,bytes=8");
    d.apply(0, create("/a/b/c/d", b"", 0, -1));
    assert_eq!(stats_text(&d.tree, "/a/b"), "count=3,bytes=8");
    assert_eq!(stats_text(&d.tree, "/a"), "count=2,bytes=8");
    assert_eq!(d.tree.zk_quota_root_of("/a/b/c/d"), Some("/a/b"));
    assert_eq!(d.tree.zk_quota_root_of("/a/x"), Some("/a"));
    assert_eq!(d.tree.zk_quota_root_of("/ab"), None);
    d.apply(0, delete(&limit_path("/a/b")));
    assert_eq!(stats_text(&d.tree, "/a"), "count=5,bytes=16");
    assert_exact(&d.tree);
}

/// One random txn over a small tree with quota nodes coming and going, valid
/// as a leader's prep would make it (a txn that would fail is an error txn,
/// so replay over a fuzzy snapshot converges). With `subtrees`, a delete
/// may also remove a node with children, as only replay does.
fn random_txn(
    tree: &DataTree,
    rng: &mut rand::rngs::StdRng,
    step: usize,
    subtrees: bool,
) -> (i64, Txn) {
    const NO_NODE: Txn = Txn::Error(-101);
    let bases = ["/a", "/a/b", "/a/b/c", "/d", "/d/e"];
    let mut paths: Vec<String> = Vec::new();
    tree.for_each_node(|p, _| {
        if p != "/" && !p.starts_with("/zookeeper") {
            paths.push(p.to_string())
        }
    });
    let session = rng.gen_range(1..4);
    let pick = |rng: &mut rand::rngs::StdRng| paths[rng.gen_range(0..paths.len())].clone();
    let deletable = |p: &str| {
        tree.get(p)
            .is_some_and(|n| subtrees || n.num_children() == 0)
    };
    match rng.gen_range(0..20) {
        0..=6 => {
            let path = if paths.is_empty() || rng.gen_bool(0.3) {
                bases[rng.gen_range(0..bases.len())].to_string()
            } else {
                format!("{}/n{step}", pick(rng))
            };
            let parent_ok = tree
                .get(corral_store::parent(&path))
                .is_some_and(|n| !matches!(n.kind(), corral_store::NodeKind::Ephemeral(_)));
            if tree.get(&path).is_some() || !parent_ok {
                return (0, NO_NODE);
            }
            let live_session = tree.sessions().contains_key(&session);
            let owner = if live_session && rng.gen_bool(0.2) {
                session
            } else {
                0
            };
            let data = vec![7; rng.gen_range(0..20)];
            (owner, prep_create(tree, &path, &data, owner, false))
        }
        7..=9 if !paths.is_empty() => {
            let p = pick(rng);
            if !deletable(&p) {
                return (0, NO_NODE);
            }
            (0, delete(&p))
        }
        10..=11 if !paths.is_empty() => {
            let p = pick(rng);
            let v = tree.stat(&p).map_or(0, |s| s.version + 1);
            (0, set_data(&p, &vec![1; rng.gen_range(0..30)], v))
        }
        12 => (
            session,
            Txn::CreateSession {
                timeout_ms: 1000,
                passwd: vec![1; 16],
            },
        ),
        13 => (session, Txn::CloseSession),
        14..=15 => {
            // setquota as zkCli writes it, in one multi, with absolute
            // parent cversions as prep computes them.
            let b = bases[rng.gen_range(0..bases.len())];
            let mut cversions: HashMap<String, i32> = HashMap::new();
            let mut subs = Vec::new();
            let mut add = |subs: &mut Vec<Txn>, path: &str, data: &[u8]| {
                let parent = corral_store::parent(path).to_string();
                let cv = cversions
                    .entry(parent.clone())
                    .or_insert_with(|| tree.get(&parent).map_or(0, |n| n.persisted_cversion()));
                *cv += 1;
                subs.push(create(path, data, 0, *cv));
            };
            let mut q = QUOTA_ROOT.to_string();
            for seg in b.split('/').skip(1) {
                q = format!("{q}/{seg}");
                if tree.get(&q).is_none() {
                    add(&mut subs, &q, b"");
                }
            }
            if rng.gen_bool(0.5) && tree.get(&limit_path(b)).is_none() {
                add(&mut subs, &limit_path(b), LIMITS_N3);
            }
            if rng.gen_bool(0.7) && tree.get(&stat_path(b)).is_none() {
                add(&mut subs, &stat_path(b), b"count=0,bytes=0");
            }
            (0, Txn::Multi(subs))
        }
        16 if step % 3 == 0 => {
            let b = bases[rng.gen_range(0..bases.len())];
            let which = if rng.gen_bool(0.5) {
                limit_path(b)
            } else {
                stat_path(b)
            };
            if tree.get(&which).is_none() {
                return (0, NO_NODE);
            }
            (0, delete(&which))
        }
        17 => {
            // A client writes a stats node.
            let p = stat_path(bases[rng.gen_range(0..bases.len())]);
            match tree.stat(&p) {
                Some(s) => (0, set_data(&p, b"count=1,bytes=1", s.version + 1)),
                None => (0, NO_NODE),
            }
        }
        18 if subtrees && step % 5 == 0 => {
            // Replay can remove a whole quota subtree at once.
            let b = bases[rng.gen_range(0..bases.len())];
            (0, delete(&format!("{QUOTA_ROOT}{b}")))
        }
        _ => (0, NO_NODE),
    }
}

#[test]
fn random_ops_keep_quota_usage_equal_to_a_recount() {
    // Goal: over random creates, deletes (subtrees included), setData, session closes and quota nodes coming and going (nested too), every root's usage equals a recount and its stats node shows it.
    for seed in 0..6 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut d = Driver::new();
        let mut with_roots = 0;
        for step in 0..1500 {
            let (session, txn) = random_txn(&d.tree, &mut rng, step, true);
            d.apply(session, txn);
            assert_exact(&d.tree);
            with_roots += usize::from(!d.tree.zk_quota_roots().is_empty());
        }
        assert!(
            with_roots > 500,
            "seed {seed}: quotas existed in only {with_roots} steps"
        );
    }
}

/// Applies one random txn and logs it.
fn logged_step(
    tree: &mut DataTree,
    log: &mut MemTxnLog,
    zxid: &mut i64,
    rng: &mut rand::rngs::StdRng,
) {
    *zxid += 1;
    let (session, txn) = random_txn(tree, rng, *zxid as usize, false);
    let hdr = corral_store::TxnHeader {
        session_id: session,
        cxid: 0,
        zxid: *zxid,
        time_ms: *zxid,
    };
    tree.apply(&hdr, &txn);
    log.append(&[LogEntry { hdr, txn }]).expect("append");
}

#[test]
fn fuzzy_snapshot_plus_replay_rebuilds_identical_stats() {
    // Goal: a tree loaded from a fuzzy snapshot (txns applied between its chunks) and replayed equals the live tree: same roots, stats bytes, data size and digest.
    for seed in 0..8 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(100 + seed);
        let mut log = MemTxnLog::new();
        let mut zxid = 0x1_0000_0000_i64;
        let mut tree = DataTree::new();
        for _ in 0..300 {
            logged_step(&mut tree, &mut log, &mut zxid, &mut rng);
        }
        let roots_at_start = tree.zk_quota_roots().len();
        let lock = RwLock::new(tree);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wlog = log.clone();
        let (start, file) = write_fuzzy_snapshot_interleaved(&lock, dir.path(), 3, &mut || {
            let mut t = lock.write().expect("lock");
            for _ in 0..4 {
                logged_step(&mut t, &mut wlog, &mut zxid, &mut rng);
            }
        })
        .expect("snapshot");
        let live = lock.into_inner().expect("lock");
        assert!(live.last_zxid() > start, "writes ran during the snapshot");
        let (_, mut loaded) = load_snapshot(&file).expect("load");
        for e in log.read_after(start).expect("read") {
            loaded.apply(&e.hdr, &e.txn);
        }
        assert!(
            dump(&loaded) == dump(&live),
            "seed {seed}: replayed vs live:\n{}",
            common::diff(&loaded, &live)
        );
        assert_eq!(loaded.zk_quota_roots(), live.zk_quota_roots());
        for r in live.zk_quota_roots() {
            assert_eq!(loaded.zk_quota_usage(&r), live.zk_quota_usage(&r));
        }
        assert_eq!(loaded.digest(), live.digest());
        assert_eq!(loaded.approximate_data_size(), live.approximate_data_size());
        assert_exact(&loaded);
        assert!(
            roots_at_start + live.zk_quota_roots().len() > 0,
            "seed {seed}: the workload made quotas"
        );
    }
}
