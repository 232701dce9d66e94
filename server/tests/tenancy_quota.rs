//! Per-tenant hard quotas: the tree quotas decided in prep (znodes, data
//! bytes, ephemerals, bytes per znode) with racing clients and a restart, and
//! the serving node's sessions, connections, watches and request rate.

mod common;

use common::tenants::{
    auth_req, bound_sessions, digest_tenant, exact_usage, raw_tenant, super_client, tenant_client,
    tenant_node, A, B,
};
use common::{create_req, path_watch, persistent, Raw};
use corral_proto::request::{DeleteRequest, SetDataRequest};
use corral_proto::{MultiOp, OpCode, Request};
use corral_store::NamespaceUsage;
use corral_tenant::Quotas;
use zookeeper_client as zk;

const QUOTA_EXCEEDED: i32 = -125;
const THROTTLED: i32 = -127;

fn create(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create(OpCode::Create, create_req(path, data, flags))
}

fn set_data(path: &str, len: usize) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: Some(vec![b'x'; len]),
        version: -1,
    })
}

async fn err(raw: &mut Raw, req: &Request) -> i32 {
    raw.call(req).await.1.err
}

#[test]
fn tree_quotas_refuse_at_the_limit_and_deletes_free_room() {
    // Goal: each tree quota admits usage up to its limit exactly and refuses
    // the write that would pass it with QuotaExceeded, a multi that would pass
    // it fails whole, shrinking and deleting are never refused, other tenants
    // are unaffected, and the counters always equal a recount.
    common::run(async {
        let q = Quotas {
            max_znodes: Some(5),
            max_data_bytes: Some(100),
            max_ephemerals: Some(2),
            max_bytes_per_znode: Some(40),
            ..Quotas::default()
        };
        let node = tenant_node(
            vec![digest_tenant(A, q), digest_tenant(B, Quotas::default())],
            |_| {},
        )
        .await;
        let mut a = raw_tenant(&node, A).await;
        assert_eq!(
            err(&mut a, &create("/big", &[0; 41], 0)).await,
            QUOTA_EXCEEDED
        );
        assert_eq!(err(&mut a, &create("/p1", &[0; 40], 0)).await, 0);
        assert_eq!(err(&mut a, &create("/e1", b"", 1)).await, 0);
        assert_eq!(err(&mut a, &create("/e2", b"", 1)).await, 0);
        assert_eq!(err(&mut a, &create("/e3", b"", 1)).await, QUOTA_EXCEEDED);
        assert_eq!(
            exact_usage(&node, "team-a"),
            NamespaceUsage {
                znodes: 3,
                data_bytes: 40,
                ephemerals: 2
            }
        );
        // Data bytes: 40 + 40 = 80 fits; 21 more would make 101.
        assert_eq!(err(&mut a, &create("/p2", &[0; 40], 0)).await, 0);
        assert_eq!(err(&mut a, &set_data("/p2", 41)).await, QUOTA_EXCEEDED);
        assert_eq!(
            err(&mut a, &create("/p3", &[0; 21], 0)).await,
            QUOTA_EXCEEDED
        );
        assert_eq!(err(&mut a, &set_data("/p2", 10)).await, 0, "shrinking");
        assert_eq!(exact_usage(&node, "team-a").data_bytes, 50);
        // Znodes: 4 used; a multi of two creates would make 6 and fails whole.
        let multi = Request::Multi(vec![
            MultiOp::Create(OpCode::Create, create_req("/m1", b"", 0)),
            MultiOp::Create(OpCode::Create, create_req("/m2", b"", 0)),
        ]);
        let (_, h, body) = a.call(&multi).await;
        assert_eq!(h.err, 0);
        let rs = common::decode(OpCode::Multi, &body);
        assert_eq!(
            rs,
            corral_proto::Response::Multi(vec![
                corral_proto::MultiResult::Error(0),
                corral_proto::MultiResult::Error(QUOTA_EXCEEDED),
            ])
        );
        assert_eq!(exact_usage(&node, "team-a").znodes, 4);
        assert_eq!(err(&mut a, &create("/m1", b"", 0)).await, 0);
        assert_eq!(err(&mut a, &create("/m2", b"", 0)).await, QUOTA_EXCEEDED);
        // A delete inside the multi makes room for the create after it.
        let swap = Request::Multi(vec![
            MultiOp::Delete(DeleteRequest {
                path: "/m1".into(),
                version: -1,
            }),
            MultiOp::Create(OpCode::Create, create_req("/m2", b"", 0)),
        ]);
        let (_, h, body) = a.call(&swap).await;
        assert_eq!(h.err, 0);
        assert!(
            matches!(common::decode(OpCode::Multi, &body), corral_proto::Response::Multi(rs) if rs.len() == 2 && !rs.iter().any(|r| matches!(r, corral_proto::MultiResult::Error(_)))),
            "delete then create in one multi"
        );
        // Closing the session deletes its ephemerals and frees their slots.
        drop(a);
        let sup = super_client(&node).await;
        common::eventually("ephemerals gone", common::STEP, || {
            let sup = &sup;
            async move {
                sup.check_stat("/tenants/team-a/e1")
                    .await
                    .unwrap()
                    .is_none()
            }
        })
        .await;
        let u = exact_usage(&node, "team-a");
        assert_eq!(u.ephemerals, 0);
        assert_eq!(u.znodes, 3);
        // Team B has no quota and is not affected by A's.
        let b = tenant_client(&node, B).await;
        for i in 0..10 {
            b.create(&format!("/b{i}"), &[0; 64], &persistent())
                .await
                .unwrap();
        }
        assert_eq!(exact_usage(&node, "team-b").znodes, 10);
    });
}

#[test]
fn racing_clients_never_pass_the_limit_and_counters_survive_restart() {
    // Goal: 8 clients pipelining 6 creates each into a 20-znode quota get
    // exactly 20 successes and 28 QuotaExceeded; the counters equal a recount
    // before and after a restart, which still refuses the 21st znode.
    common::run(async {
        let q = Quotas {
            max_znodes: Some(20),
            ..Quotas::default()
        };
        let mut node = tenant_node(vec![digest_tenant(A, q)], |_| {}).await;
        let mut tasks = Vec::new();
        for c in 0..8 {
            let mut raw = raw_tenant(&node, A).await;
            tasks.push(tokio::spawn(async move {
                let mut xids = Vec::new();
                for i in 0..6 {
                    xids.push(raw.send(&create(&format!("/c{c}-{i}"), b"d", 0)).await);
                }
                let mut codes = Vec::new();
                for xid in xids {
                    codes.push(raw.reply_to(xid).await.1.err);
                }
                codes
            }));
        }
        let mut ok = 0;
        let mut refused = 0;
        for t in tasks {
            for code in t.await.expect("client task") {
                match code {
                    0 => ok += 1,
                    QUOTA_EXCEEDED => refused += 1,
                    other => panic!("unexpected {other}"),
                }
            }
        }
        assert_eq!((ok, refused), (20, 28));
        let want = NamespaceUsage {
            znodes: 20,
            data_bytes: 20,
            ephemerals: 0,
        };
        assert_eq!(exact_usage(&node, "team-a"), want);
        node.restart();
        common::tenants::wait_tenants(&node, &["team-a".to_string()]).await;
        assert_eq!(exact_usage(&node, "team-a"), want);
        let mut a = raw_tenant(&node, A).await;
        assert_eq!(err(&mut a, &create("/late", b"", 0)).await, QUOTA_EXCEEDED);
        let del = Request::Delete(DeleteRequest {
            path: "/c0-0".into(),
            version: -1,
        });
        let (_, h, _) = a.call(&del).await;
        if h.err == -101 {
            // c0-0 may have lost the race; any created node will do.
            let (_, _, body) = a.call(&Request::GetChildren(path_watch("/", false))).await;
            let corral_proto::Response::Children(c) = common::decode(OpCode::GetChildren, &body)
            else {
                panic!("children")
            };
            let del = Request::Delete(DeleteRequest {
                path: format!("/{}", c[0]),
                version: -1,
            });
            assert_eq!(err(&mut a, &del).await, 0);
        } else {
            assert_eq!(h.err, 0);
        }
        assert_eq!(err(&mut a, &create("/late", b"", 0)).await, 0);
        assert_eq!(exact_usage(&node, "team-a").znodes, 20);
    });
}

#[test]
fn connection_and_session_quotas_refuse_the_extra_bind() {
    // Goal: a tenant at max_connections refuses the next bind with
    // QuotaExceeded and closes it; a freed slot admits again; max_sessions
    // counts sessions, so a session resuming on a new connection still binds.
    common::run(async {
        let q = Quotas {
            max_connections: Some(2),
            max_sessions: Some(3),
            ..Quotas::default()
        };
        let node = tenant_node(vec![digest_tenant(A, q)], |_| {}).await;
        let c1 = raw_tenant(&node, A).await;
        let _c2 = raw_tenant(&node, A).await;
        let mut c3 = Raw::connect(node.addr, 6000).await;
        let (_, h, _) = c3.call(&auth_req("alice:pa")).await;
        assert_eq!(h.err, QUOTA_EXCEEDED);
        assert!(c3.closed_by_server().await);
        let shared = node.shared();
        assert_eq!(shared.tenancy.connection_count("team-a"), 2);
        // Session 1 moves to a new connection: the old one closes, the new one binds.
        let (sid, pw) = (c1.session.session_id, c1.session.passwd.clone());
        drop(c1);
        common::eventually("slot released", common::STEP, || {
            let n = shared.tenancy.connection_count("team-a");
            async move { n == 1 }
        })
        .await;
        let (mut again, rsp) = Raw::handshake(node.addr, 6000, sid, pw).await.unwrap();
        assert_eq!(rsp.session_id, sid);
        let (_, h, _) = again.call(&auth_req("alice:pa")).await;
        assert_eq!(h.err, 0, "a resumed session keeps its slot");
        assert_eq!(bound_sessions(&node, "team-a"), 2);
        drop(again);
        drop(_c2);
        common::eventually("slots released", common::STEP, || {
            let n = shared.tenancy.connection_count("team-a");
            async move { n == 0 }
        })
        .await;
        // Sessions outlive connections: 2 are bound; one more fits, then none.
        let _s3 = raw_tenant(&node, A).await;
        let mut s4 = Raw::connect(node.addr, 6000).await;
        let (_, h, _) = s4.call(&auth_req("alice:pa")).await;
        assert_eq!(h.err, QUOTA_EXCEEDED);
        assert_eq!(bound_sessions(&node, "team-a"), 3);
    });
}

#[test]
fn watch_quota_and_request_rate_are_enforced_on_the_serving_node() {
    // Goal: max_watches refuses a new watch (not a repeated one) with
    // QuotaExceeded until one fires; max_request_rate throttles a burst with
    // ThrottledOp while admitting about one second's worth.
    common::run(async {
        let q = Quotas {
            max_watches: Some(3),
            ..Quotas::default()
        };
        let r = Quotas {
            max_request_rate: Some(5),
            ..Quotas::default()
        };
        let node = tenant_node(vec![digest_tenant(A, q), digest_tenant(B, r)], |_| {}).await;
        let a = tenant_client(&node, A).await;
        for p in ["/w1", "/w2", "/w3", "/w4"] {
            a.create(p, b"", &persistent()).await.unwrap();
        }
        let mut raw = raw_tenant(&node, A).await;
        for p in ["/w1", "/w2", "/w3"] {
            assert_eq!(
                err(&mut raw, &Request::GetData(path_watch(p, true))).await,
                0
            );
        }
        assert_eq!(
            err(&mut raw, &Request::GetData(path_watch("/w4", true))).await,
            QUOTA_EXCEEDED
        );
        assert_eq!(
            err(&mut raw, &Request::Exists(path_watch("/w1", true))).await,
            0,
            "a watch on an already watched path is not a new one"
        );
        assert_eq!(
            err(&mut raw, &Request::GetData(path_watch("/w4", false))).await,
            0,
            "reads without a watch are unaffected"
        );
        a.set_data("/w1", b"x", None).await.unwrap();
        let (events, _, _) = raw.call(&Request::Exists(path_watch("/", false))).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            err(&mut raw, &Request::GetData(path_watch("/w4", true))).await,
            0
        );

        let mut b = raw_tenant(&node, B).await;
        let mut xids = Vec::new();
        for _ in 0..40 {
            xids.push(b.send(&Request::Exists(path_watch("/", false))).await);
        }
        let mut ok = 0;
        let mut throttled = 0;
        for xid in xids {
            match b.reply_to(xid).await.1.err {
                0 => ok += 1,
                THROTTLED => throttled += 1,
                other => panic!("unexpected {other}"),
            }
        }
        assert!((5..=10).contains(&ok), "ok={ok}");
        assert_eq!(ok + throttled, 40);
        // Other tenants' buckets are their own.
        let a2 = tenant_client(&node, A).await;
        for _ in 0..20 {
            a2.check_stat("/w1").await.unwrap();
        }
        let _ = zk::Error::Throttled;
    });
}
