//! DataTree::apply against ZooKeeper 3.8's DataTree semantics.

mod common;

use std::sync::Arc;

use common::{create, hdr, prep_create, Driver};
use corral_proto::{Acl, ErrorCode, Stat};
use corral_store::{
    ttl_owner, DataTree, NodeKind, Outcome, Trigger, TriggerKind, Txn, CONTAINER_OWNER,
};

fn trig(path: &str, kind: TriggerKind) -> Trigger {
    Trigger {
        path: path.into(),
        kind,
    }
}

#[test]
fn fresh_tree_matches_standalone_zookeeper() {
    // Goal: /, /zookeeper, /zookeeper/quota, /zookeeper/config as ZooKeeper's DataTree() builds them.
    let t = DataTree::new();
    let root = t.stat("/").unwrap();
    assert_eq!(
        root,
        Stat {
            cversion: -1,
            num_children: 1,
            ..Stat::default()
        }
    );
    let zk = t.stat("/zookeeper").unwrap();
    assert_eq!(
        zk,
        Stat {
            cversion: -2,
            num_children: 2,
            ..Stat::default()
        }
    );
    assert_eq!(t.stat("/zookeeper/quota").unwrap(), Stat::default());
    let config = t.get("/zookeeper/config").unwrap();
    assert_eq!(
        config.stat(),
        Stat {
            aversion: -1,
            ..Stat::default()
        }
    );
    assert_eq!(&**config.acl(), &[Acl::new(1, "world", "anyone")]);
    assert_eq!(&**t.get("/").unwrap().acl(), Acl::open_unsafe().as_slice());
    assert_eq!(t.children("/").unwrap(), vec!["zookeeper"]);
    assert_eq!(t.children("/zookeeper").unwrap(), vec!["config", "quota"]);
    assert_eq!(t.node_count(), 4);
    assert_eq!(t.descendant_count("/"), Some(3));
    assert_eq!(t.descendant_count("/zookeeper"), Some(2));
    assert_eq!(t.approximate_data_size(), 1 + 10 + 16 + 17);
    assert_eq!(t.last_zxid(), 0);
    assert!(t.sessions().is_empty());
    assert_eq!(t.digest(), t.recompute_digest());
}

#[test]
fn create_sets_every_stat_field_and_updates_parent() {
    // Goal: a persistent create's Stat and the parent's cversion/pzxid/num_children, plus triggers.
    let mut t = DataTree::new();
    let a = t.apply(&hdr(7, 100, 5000), &create("/a", b"hello", 0, 1));
    let want = Stat {
        czxid: 100,
        mzxid: 100,
        ctime: 5000,
        mtime: 5000,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 5,
        num_children: 0,
        pzxid: 100,
    };
    assert_eq!(
        a.outcome,
        Outcome::Created {
            path: "/a".into(),
            stat: want
        }
    );
    assert_eq!(
        a.triggers,
        vec![
            trig("/a", TriggerKind::Created),
            trig("/", TriggerKind::ChildrenChanged)
        ]
    );
    assert_eq!(t.stat("/a").unwrap(), want);
    let root = t.stat("/").unwrap();
    assert_eq!((root.num_children, root.cversion, root.pzxid), (2, 0, 100));
    assert_eq!(t.get("/").unwrap().persisted_cversion(), 1);
    assert_eq!(t.last_zxid(), 100);
    assert_eq!(t.get("/a").unwrap().data_bytes(), b"hello");
    assert_eq!(t.get("/a").unwrap().kind(), NodeKind::Persistent);
    assert_eq!(t.approximate_data_size(), 44 + 2 + 5);
}

#[test]
fn sequential_names_come_from_persisted_cversion_and_delete_bumps_client_cversion() {
    // Goal: ZooKeeper's cversion model: persisted = creates; client = 2*persisted - children.
    let mut d = Driver::new();
    d.apply(0, create("/q", b"", 0, 1));
    let mut names = Vec::new();
    for _ in 0..3 {
        let txn = prep_create(&d.tree, "/q/item-", b"", 0, true);
        if let Outcome::Created { path, .. } = d.apply(0, txn).outcome {
            names.push(path);
        }
    }
    assert_eq!(
        names,
        [
            "/q/item-0000000000",
            "/q/item-0000000001",
            "/q/item-0000000002"
        ]
    );
    let s = d.tree.stat("/q").unwrap();
    assert_eq!((s.cversion, s.num_children), (3, 3));
    let before = s.pzxid;
    let del = d.apply(
        0,
        Txn::Delete {
            path: "/q/item-0000000001".into(),
        },
    );
    assert_eq!(del.outcome, Outcome::Deleted);
    assert_eq!(
        del.triggers,
        vec![
            trig("/q/item-0000000001", TriggerKind::Deleted),
            trig("/q", TriggerKind::ChildrenChanged)
        ]
    );
    let s = d.tree.stat("/q").unwrap();
    assert_eq!(
        (s.cversion, s.num_children),
        (4, 2),
        "a delete shows as +1 cversion"
    );
    assert!(s.pzxid > before);
    assert_eq!(
        d.tree.get("/q").unwrap().persisted_cversion(),
        3,
        "deletes do not change the persisted cversion"
    );
    // The next sequential name continues from the persisted cversion, not the client one.
    let txn = prep_create(&d.tree, "/q/item-", b"", 0, true);
    assert!(
        matches!(d.apply(0, txn).outcome, Outcome::Created { path, .. } if path == "/q/item-0000000003")
    );
}

#[test]
fn ephemerals_are_tracked_and_close_session_deletes_them_in_order() {
    // Goal: ephemeralOwner, per-session index, CloseSession deleting sorted with triggers.
    let mut d = Driver::new();
    let s = 0x1234;
    d.apply(
        s,
        Txn::CreateSession {
            timeout_ms: 4000,
            passwd: vec![1; 16],
        },
    );
    assert_eq!(d.tree.sessions()[&s].timeout_ms, 4000);
    d.apply(0, create("/p", b"", 0, 1));
    d.apply(s, create("/p/z", b"", s, 1));
    d.apply(s, create("/p/b", b"", s, 2));
    d.apply(s, create("/e", b"x", s, 2));
    assert_eq!(d.tree.stat("/p/z").unwrap().ephemeral_owner, s);
    assert_eq!(d.tree.get("/e").unwrap().kind(), NodeKind::Ephemeral(s));
    assert_eq!(d.tree.ephemerals(s), vec!["/e", "/p/b", "/p/z"]);
    assert_eq!(d.tree.all_ephemerals().get(&s).map(Vec::len), Some(3));
    let a = d.apply(s, Txn::CloseSession);
    assert_eq!(
        a.outcome,
        Outcome::SessionClosed {
            deleted: vec!["/e".into(), "/p/b".into(), "/p/z".into()]
        }
    );
    assert_eq!(
        a.triggers,
        vec![
            trig("/e", TriggerKind::Deleted),
            trig("/", TriggerKind::ChildrenChanged),
            trig("/p/b", TriggerKind::Deleted),
            trig("/p", TriggerKind::ChildrenChanged),
            trig("/p/z", TriggerKind::Deleted),
            trig("/p", TriggerKind::ChildrenChanged),
        ]
    );
    assert!(d.tree.sessions().is_empty());
    assert!(d.tree.ephemerals(s).is_empty());
    assert!(d.tree.all_ephemerals().is_empty());
    assert_eq!(d.tree.stat("/p").unwrap().pzxid, d.zxid);
    assert_eq!(d.tree.digest(), d.tree.recompute_digest());
}

#[test]
fn bind_session_records_the_tenant_once_and_close_frees_it() {
    // Goal: BindSession sets the session's tenant and count; a rebind to the same tenant changes nothing, to another is AuthFailed, of a missing session SessionExpired; close frees the count.
    let mut d = Driver::new();
    let (s, t) = (0x1234, 0x5678);
    for id in [s, t] {
        d.apply(
            id,
            Txn::CreateSession {
                timeout_ms: 4000,
                passwd: vec![1; 16],
            },
        );
    }
    let bind = |tenant: &str| Txn::BindSession {
        tenant: tenant.into(),
    };
    let unbound = d.tree.digest();
    assert_eq!(d.apply(s, bind("a")).outcome, Outcome::SessionBound);
    assert_ne!(
        d.tree.digest(),
        unbound,
        "the binding is part of the digest"
    );
    assert_eq!(d.tree.session_tenant(s), Some("a"));
    assert_eq!(d.tree.sessions()[&s].tenant.as_deref(), Some("a"));
    assert_eq!(d.tree.tenant_session_count("a"), 1);
    let bound = d.tree.digest();
    assert_eq!(d.apply(s, bind("a")).outcome, Outcome::SessionBound);
    assert_eq!(d.tree.digest(), bound);
    assert_eq!(d.tree.tenant_session_count("a"), 1);
    assert_eq!(
        d.apply(s, bind("b")).outcome,
        Outcome::Error(ErrorCode::AuthFailed.code())
    );
    assert_eq!(d.tree.session_tenant(s), Some("a"));
    assert_eq!(d.tree.tenant_session_count("b"), 0);
    assert_eq!(d.tree.digest(), bound);
    assert_eq!(
        d.apply(0x9999, bind("a")).outcome,
        Outcome::Error(ErrorCode::SessionExpired.code())
    );
    assert_eq!(d.apply(t, bind("a")).outcome, Outcome::SessionBound);
    assert_eq!(d.tree.tenant_session_count("a"), 2);
    d.apply(s, Txn::CloseSession);
    assert_eq!(d.tree.tenant_session_count("a"), 1);
    assert_eq!(d.tree.session_tenant(s), None);
    d.apply(t, Txn::CloseSession);
    assert_eq!(d.tree.tenant_session_count("a"), 0);
    assert!(d.tree.tenant_session_counts().is_empty());
    assert_eq!(d.tree.digest(), d.tree.recompute_digest());
}

#[test]
fn containers_show_owner_zero_and_become_candidates_after_losing_children() {
    // Goal: container encoding is hidden from clients; ContainerManager's cversion>0 rule.
    let mut d = Driver::new();
    d.apply(0, create("/c", b"", CONTAINER_OWNER, 1));
    let n = d.tree.get("/c").unwrap();
    assert_eq!(n.kind(), NodeKind::Container);
    assert_eq!(n.raw_owner(), CONTAINER_OWNER);
    assert_eq!(n.stat().ephemeral_owner, 0);
    assert!(
        d.tree.container_candidates().is_empty(),
        "never had a child"
    );
    d.apply(0, create("/c/x", b"", 0, 1));
    assert!(d.tree.container_candidates().is_empty(), "has a child");
    d.apply(
        0,
        Txn::Delete {
            path: "/c/x".into(),
        },
    );
    assert_eq!(d.tree.container_candidates(), vec!["/c"]);
    d.apply(0, Txn::Delete { path: "/c".into() });
    assert!(d.tree.container_candidates().is_empty());
}

#[test]
fn ttl_nodes_expire_by_mtime_and_only_when_childless() {
    // Goal: TTL owner encoding and the now - mtime > ttl candidate rule.
    let mut t = DataTree::new();
    let owner = ttl_owner(1000).unwrap();
    t.apply(&hdr(0, 10, 5000), &create("/t", b"", owner, 1));
    let n = t.get("/t").unwrap();
    assert_eq!(n.kind(), NodeKind::Ttl(1000));
    assert_eq!(n.stat().ephemeral_owner, 0);
    assert!(
        t.ttl_candidates(6000).is_empty(),
        "elapsed == ttl is not expired"
    );
    assert_eq!(t.ttl_candidates(6001), vec!["/t"]);
    t.apply(
        &hdr(0, 11, 5500),
        &Txn::SetData {
            path: "/t".into(),
            data: Some(vec![1]),
            version: 1,
        },
    );
    assert!(t.ttl_candidates(6001).is_empty(), "setData moves mtime");
    t.apply(&hdr(0, 12, 5500), &create("/t/k", b"", 0, 1));
    assert!(t.ttl_candidates(100_000).is_empty(), "has a child");
    t.apply(
        &hdr(0, 13, 5600),
        &Txn::Delete {
            path: "/t/k".into(),
        },
    );
    assert_eq!(t.ttl_candidates(100_000), vec!["/t"]);
}

#[test]
fn set_data_updates_version_mzxid_mtime_and_length() {
    // Goal: setData Stat fields and the DataChanged trigger; ctime/czxid untouched.
    let mut t = DataTree::new();
    t.apply(&hdr(0, 10, 100), &create("/a", b"abc", 0, 1));
    let a = t.apply(
        &hdr(0, 11, 200),
        &Txn::SetData {
            path: "/a".into(),
            data: Some(b"hello!".to_vec()),
            version: 1,
        },
    );
    let s = t.stat("/a").unwrap();
    assert_eq!(a.outcome, Outcome::SetData { stat: s });
    assert_eq!(a.triggers, vec![trig("/a", TriggerKind::DataChanged)]);
    assert_eq!(
        (
            s.czxid,
            s.mzxid,
            s.ctime,
            s.mtime,
            s.version,
            s.data_length,
            s.pzxid
        ),
        (10, 11, 100, 200, 1, 6, 10)
    );
    assert_eq!(t.stat("/").unwrap().pzxid, 10, "parent untouched");
    assert_eq!(t.approximate_data_size(), 44 + 2 + 6);
    let root = t.apply(
        &hdr(0, 12, 300),
        &Txn::SetData {
            path: "/".into(),
            data: Some(b"r".to_vec()),
            version: 1,
        },
    );
    assert!(matches!(root.outcome, Outcome::SetData { .. }));
    assert_eq!(
        t.approximate_data_size(),
        44 + 2 + 6 + 2,
        "ZooKeeper counts the root's data twice"
    );
    let missing = t.apply(
        &hdr(0, 13, 300),
        &Txn::SetData {
            path: "/nope".into(),
            data: Some(vec![]),
            version: 1,
        },
    );
    assert_eq!(missing.outcome, Outcome::Error(ErrorCode::NoNode.code()));
    assert!(missing.triggers.is_empty());
}

#[test]
fn set_acl_updates_aversion_and_interns_acls() {
    // Goal: setACL changes only acl and aversion, fires nothing, and equal ACL lists share memory.
    let mut t = DataTree::new();
    t.apply(&hdr(0, 10, 100), &create("/a", b"", 0, 1));
    t.apply(&hdr(0, 11, 100), &create("/b", b"", 0, 2));
    assert!(Arc::ptr_eq(
        t.get("/a").unwrap().acl(),
        t.get("/b").unwrap().acl()
    ));
    let acl = vec![Acl::new(31, "digest", "u:hash")];
    let a = t.apply(
        &hdr(0, 12, 900),
        &Txn::SetAcl {
            path: "/a".into(),
            acl: acl.clone(),
            version: 1,
        },
    );
    let s = t.stat("/a").unwrap();
    assert_eq!(a.outcome, Outcome::SetAcl { stat: s });
    assert!(a.triggers.is_empty());
    assert_eq!((s.aversion, s.mzxid, s.mtime, s.version), (1, 10, 100, 0));
    assert_eq!(&**t.get("/a").unwrap().acl(), acl.as_slice());
    t.apply(
        &hdr(0, 13, 900),
        &Txn::SetAcl {
            path: "/b".into(),
            acl,
            version: 1,
        },
    );
    assert!(Arc::ptr_eq(
        t.get("/a").unwrap().acl(),
        t.get("/b").unwrap().acl()
    ));
}

#[test]
fn failed_multi_applies_nothing_and_reports_zookeeper_codes() {
    // Goal: DataTree's multi rule: 0 before the failure, its code, then -2; no state change.
    let mut d = Driver::new();
    d.apply(0, create("/a", b"", 0, 1));
    let digest = d.tree.digest();
    let stat = d.tree.stat("/").unwrap();
    let a = d.apply(
        0,
        Txn::Multi(vec![
            create("/b", b"", 0, 2),
            Txn::SetData {
                path: "/a".into(),
                data: Some(vec![1]),
                version: 1,
            },
            Txn::Error(ErrorCode::NoNode.code()),
            Txn::Delete { path: "/a".into() },
            Txn::Error(ErrorCode::RuntimeInconsistency.code()),
        ]),
    );
    assert_eq!(
        a.outcome,
        Outcome::Multi(vec![
            Outcome::Error(0),
            Outcome::Error(0),
            Outcome::Error(-101),
            Outcome::Error(-2),
            Outcome::Error(-2),
        ])
    );
    assert!(a.triggers.is_empty());
    assert_eq!(d.tree.digest(), digest);
    assert_eq!(d.tree.stat("/").unwrap(), stat);
    assert!(d.tree.get("/b").is_none());
    assert_eq!(
        d.tree.last_zxid(),
        d.zxid,
        "a failed multi still consumes its zxid"
    );
}

#[test]
fn successful_multi_applies_in_order_with_one_zxid() {
    // Goal: every sub-op applies with the multi's zxid; outcomes and triggers in order.
    let mut d = Driver::new();
    d.apply(0, create("/a", b"", 0, 1));
    let a = d.apply(
        0,
        Txn::Multi(vec![
            Txn::Check {
                path: "/a".into(),
                version: 0,
            },
            create("/b", b"x", 0, 2),
            Txn::SetData {
                path: "/b".into(),
                data: Some(b"yy".to_vec()),
                version: 1,
            },
            Txn::Delete { path: "/a".into() },
        ]),
    );
    let Outcome::Multi(outs) = a.outcome else {
        panic!("not a multi outcome")
    };
    assert_eq!(outs.len(), 4);
    assert_eq!(outs[0], Outcome::Checked);
    assert!(
        matches!(&outs[1], Outcome::Created { path, stat } if path == "/b" && stat.czxid == d.zxid)
    );
    assert!(
        matches!(&outs[2], Outcome::SetData { stat } if stat.version == 1 && stat.mzxid == d.zxid)
    );
    assert_eq!(outs[3], Outcome::Deleted);
    assert_eq!(a.triggers.len(), 5);
    let b = d.tree.stat("/b").unwrap();
    assert_eq!((b.czxid, b.mzxid, b.data_length), (d.zxid, d.zxid, 2));
}

#[test]
fn replayed_create_of_existing_node_still_raises_parent_cversion() {
    // Goal: fuzzy-replay rule: NodeExists, but parent cversion/pzxid move up if the txn's value is larger.
    let mut t = DataTree::new();
    t.apply(&hdr(0, 10, 1), &create("/p", b"", 0, 1));
    t.apply(&hdr(0, 11, 1), &create("/p/c", b"", 0, 1));
    let a = t.apply(&hdr(0, 20, 1), &create("/p/c", b"other", 0, 5));
    assert_eq!(a.outcome, Outcome::Error(ErrorCode::NodeExists.code()));
    assert!(a.triggers.is_empty());
    let p = t.get("/p").unwrap();
    assert_eq!((p.persisted_cversion(), p.stat().pzxid), (5, 20));
    assert_eq!(
        t.get("/p/c").unwrap().data_bytes(),
        b"",
        "existing node kept"
    );
    // A smaller value changes nothing.
    t.apply(&hdr(0, 21, 1), &create("/p/c", b"", 0, 2));
    let p = t.get("/p").unwrap();
    assert_eq!((p.persisted_cversion(), p.stat().pzxid), (5, 20));
    assert_eq!(t.digest(), t.recompute_digest());
}

#[test]
fn replayed_delete_of_missing_node_still_raises_parent_pzxid() {
    // Goal: fuzzy-replay rule: NoNode, but the parent's pzxid moves up (never down).
    let mut t = DataTree::new();
    t.apply(&hdr(0, 10, 1), &create("/p", b"", 0, 1));
    let a = t.apply(
        &hdr(0, 30, 1),
        &Txn::Delete {
            path: "/p/gone".into(),
        },
    );
    assert_eq!(a.outcome, Outcome::Error(ErrorCode::NoNode.code()));
    assert_eq!(t.stat("/p").unwrap().pzxid, 30);
    let b = t.apply(
        &hdr(0, 31, 1),
        &Txn::Delete {
            path: "/nope/x".into(),
        },
    );
    assert_eq!(b.outcome, Outcome::Error(ErrorCode::NoNode.code()));
    assert_eq!(t.digest(), t.recompute_digest());
}

#[test]
fn replayed_delete_of_node_with_children_removes_the_subtree() {
    // Goal: a delete that meets a later incarnation's children removes them (the log rebuilds them).
    let mut t = DataTree::new();
    t.apply(&hdr(0, 10, 1), &create("/a", b"", 0, 1));
    t.apply(&hdr(0, 11, 1), &create("/a/b", b"", 0, 1));
    t.apply(&hdr(0, 12, 1), &create("/a/b/c", b"", 7, 1));
    let a = t.apply(&hdr(0, 13, 1), &Txn::Delete { path: "/a".into() });
    assert_eq!(a.outcome, Outcome::Deleted);
    assert_eq!(t.node_count(), 4);
    assert!(t.ephemerals(7).is_empty());
    assert_eq!(t.approximate_data_size(), 44);
    assert_eq!(t.digest(), t.recompute_digest());
}

#[test]
fn invalid_paths_in_txns_are_refused_deterministically() {
    // Goal: garbage paths from a corrupt log cannot corrupt the tree or panic.
    let mut t = DataTree::new();
    for (z, p) in ["", "a", "/", "/a/", "//", "/a/../b"].iter().enumerate() {
        let a = t.apply(&hdr(0, 10 + z as i64, 1), &create(p, b"", 0, 1));
        assert_eq!(
            a.outcome,
            Outcome::Error(ErrorCode::BadArguments.code()),
            "{p:?}"
        );
    }
    let a = t.apply(&hdr(0, 50, 1), &Txn::Delete { path: "/".into() });
    assert_eq!(a.outcome, Outcome::Error(ErrorCode::BadArguments.code()));
    assert_eq!(t.node_count(), 4);
}

#[test]
fn error_txn_consumes_zxid_only() {
    // Goal: Txn::Error changes nothing but last_zxid.
    let mut t = DataTree::new();
    let d = t.digest();
    let a = t.apply(&hdr(0, 9, 1), &Txn::Error(-103));
    assert_eq!(a.outcome, Outcome::Error(-103));
    assert_eq!((t.digest(), t.last_zxid()), (d, 9));
}

#[test]
#[should_panic(expected = "applied after")]
fn applying_an_old_zxid_panics() {
    // Goal: out-of-order apply is a programmer error and crashes loudly.
    let mut t = DataTree::new();
    t.apply(&hdr(0, 10, 1), &create("/a", b"", 0, 1));
    t.apply(&hdr(0, 10, 1), &create("/b", b"", 0, 2));
}

#[test]
fn counts_and_children_queries() {
    // Goal: children sorted, child_count, descendant_count per getAllChildrenNumber.
    let mut d = Driver::new();
    d.apply(0, create("/x", b"", 0, 1));
    d.apply(0, create("/x/b", b"", 0, 1));
    d.apply(0, create("/x/a", b"", 0, 2));
    d.apply(0, create("/x/a/1", b"", 0, 1));
    assert_eq!(d.tree.children("/x").unwrap(), vec!["a", "b"]);
    assert_eq!(d.tree.child_count("/x"), Some(2));
    assert_eq!(d.tree.descendant_count("/x"), Some(3));
    assert_eq!(d.tree.descendant_count("/x/b"), Some(0));
    assert_eq!(d.tree.descendant_count("/"), Some(7));
    assert_eq!(d.tree.descendant_count("/missing"), None);
    assert_eq!(d.tree.children("/missing"), None);
    assert_eq!(d.tree.node_count(), 8);
}
