//! The tree digest: equal trees agree, any change shows, incremental == from scratch.

mod common;

use common::{create, hdr, op_strategy, prep, Driver};
use corral_proto::Acl;
use corral_store::{DataTree, Txn};
use proptest::prelude::*;

#[test]
fn same_txns_give_same_digest_and_any_change_differs() {
    // Goal: determinism across instances, sensitivity to data, stat, acl, sessions and paths.
    let build = || {
        let mut t = DataTree::new();
        t.apply(&hdr(0, 10, 1), &create("/a", b"x", 0, 1));
        t.apply(&hdr(0, 11, 1), &create("/b", b"y", 0, 2));
        t
    };
    let (a, b) = (build(), build());
    assert_eq!(a.digest(), b.digest());
    let base = a.digest();
    let variants: Vec<Txn> = vec![
        Txn::SetData {
            path: "/a".into(),
            data: Some(b"x".to_vec()),
            version: 1,
        },
        Txn::SetData {
            path: "/a".into(),
            data: Some(b"z".to_vec()),
            version: 0,
        },
        Txn::SetAcl {
            path: "/a".into(),
            acl: vec![Acl::new(1, "world", "anyone")],
            version: 0,
        },
        Txn::SetAcl {
            path: "/a".into(),
            acl: Acl::open_unsafe(),
            version: 1,
        },
        create("/c", b"", 0, 3),
        create("/a/c", b"", 0, 1),
        Txn::Delete { path: "/b".into() },
        Txn::CreateSession {
            timeout_ms: 1,
            passwd: vec![],
        },
    ];
    let mut seen = vec![base];
    for v in variants {
        let mut t = build();
        t.apply(&hdr(0, 12, 1), &v);
        assert_ne!(t.digest(), base, "{v:?} left the digest unchanged");
        assert!(!seen.contains(&t.digest()));
        seen.push(t.digest());
        assert_eq!(t.digest(), t.recompute_digest());
    }
    // Same content under swapped names differs.
    let mut c = DataTree::new();
    c.apply(&hdr(0, 10, 1), &create("/a", b"y", 0, 1));
    c.apply(&hdr(0, 11, 1), &create("/b", b"x", 0, 2));
    assert_ne!(c.digest(), base);
}

#[test]
fn digest_is_independent_of_history_that_cancels_out() {
    // Goal: order-independence: a session opened and closed, an ACL set and restored, leave no trace.
    let mut a = DataTree::new();
    a.apply(&hdr(0, 10, 1), &create("/a", b"", 0, 1));
    let before = a.digest();
    a.apply(
        &hdr(5, 11, 1),
        &Txn::CreateSession {
            timeout_ms: 10,
            passwd: vec![1],
        },
    );
    a.apply(&hdr(5, 12, 1), &Txn::CloseSession);
    assert_eq!(a.digest(), before);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn incremental_digest_equals_recomputation(ops in proptest::collection::vec(op_strategy(), 1..60)) {
        // Goal: after any txn sequence the O(1) digest equals a full recount, and replicas agree.
        let mut d = Driver::new();
        let mut twin = DataTree::new();
        for op in &ops {
            let (session, txn) = prep(&d.tree, op);
            let h = d.next_hdr(session);
            d.tree.apply(&h, &txn);
            twin.apply(&h, &txn);
            prop_assert_eq!(d.tree.digest(), d.tree.recompute_digest());
        }
        prop_assert_eq!(d.tree.digest(), twin.digest());
    }

    #[test]
    fn tenant_session_counts_equal_a_recount(ops in proptest::collection::vec(op_strategy(), 1..80)) {
        // Goal: the per-tenant session counts, kept by every apply (bind, close, refused binds), equal a recount of the session table.
        let mut d = Driver::new();
        for op in &ops {
            let (session, txn) = prep(&d.tree, op);
            d.apply(session, txn);
            prop_assert_eq!(d.tree.tenant_session_counts(), &d.tree.count_tenant_sessions());
        }
    }
}
