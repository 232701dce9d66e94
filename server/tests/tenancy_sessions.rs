//! A session's tenant binding is replicated state: the session table records
//! it through the write path, `max_sessions` counts the table's bound
//! sessions (not a node's), and a session's tenant never changes, across
//! reconnects and restarts.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::tenants::{auth_req, bound_sessions, digest_tenant, raw_tenant, tenant_node, A, B};
use common::{create_req, path_watch, Raw};
use corral_proto::{OpCode, Request};
use corral_server::commit::{Replicator, WriteRequest};
use corral_server::state::Shared;
use corral_server::tenancy::UnboundPolicy;
use corral_store::{Txn, TxnHeader};
use corral_tenant::Quotas;

const AUTH_FAILED: i32 = -115;
const QUOTA_EXCEEDED: i32 = -125;

fn session_tenant(node: &common::TestNode, session_id: i64) -> Option<String> {
    let shared = node.shared();
    let tree = shared.tree.read().unwrap();
    tree.session_tenant(session_id).map(str::to_string)
}

/// Opens a session and authenticates it as `user_password`: the auth reply's
/// error code, and the connection if it was admitted.
async fn try_bind(addr: SocketAddr, user_password: &'static str) -> (i32, Option<Raw>) {
    let mut raw = Raw::connect(addr, 6000).await;
    let (_, h, _) = raw.call(&auth_req(user_password)).await;
    if h.err != 0 {
        assert!(raw.closed_by_server().await, "a refused bind closes");
        return (h.err, None);
    }
    (0, Some(raw))
}

/// Resumes `session` on a new connection.
async fn resume(node: &common::TestNode, session: &Raw) -> Raw {
    let (raw, rsp) = Raw::handshake(
        node.addr,
        6000,
        session.session.session_id,
        session.session.passwd.clone(),
    )
    .await
    .unwrap();
    assert_eq!(rsp.session_id, session.session.session_id, "resumed");
    raw
}

#[test]
fn racing_binds_never_pass_max_sessions_and_the_count_survives_restart() {
    // Goal: many sessions binding to one tenant at once get exactly
    // max_sessions slots (the rest QuotaExceeded, unbound and closed); a
    // closed session frees its slot; the count is the replicated table's, so
    // it survives a restart and still refuses.
    common::run(async {
        let q = Quotas {
            max_sessions: Some(4),
            ..Quotas::default()
        };
        let mut node = tenant_node(
            vec![digest_tenant(A, q), digest_tenant(B, Quotas::default())],
            |_| {},
        )
        .await;
        let binds: Vec<_> = (0..12)
            .map(|_| tokio::spawn(try_bind(node.addr, "alice:pa")))
            .collect();
        let mut admitted: Vec<Raw> = Vec::new();
        for bind in binds {
            let (err, raw) = bind.await.unwrap();
            match raw {
                Some(r) => admitted.push(r),
                None => assert_eq!(err, QUOTA_EXCEEDED),
            }
        }
        assert_eq!(admitted.len(), 4, "exactly max_sessions binds succeed");
        assert_eq!(bound_sessions(&node, "team-a"), 4);
        for r in &admitted {
            assert_eq!(
                session_tenant(&node, r.session.session_id).as_deref(),
                Some("team-a")
            );
        }
        // Another tenant is not affected.
        for _ in 0..3 {
            raw_tenant(&node, B).await;
        }
        assert_eq!(bound_sessions(&node, "team-b"), 3);
        // A close frees a slot once it commits.
        let mut closing = admitted.pop().unwrap();
        assert_eq!(closing.call(&Request::CloseSession).await.1.err, 0);
        assert_eq!(bound_sessions(&node, "team-a"), 3);
        let (err, again) = try_bind(node.addr, "alice:pa").await;
        assert_eq!(err, 0);
        admitted.push(again.unwrap());
        assert_eq!(bound_sessions(&node, "team-a"), 4);
        // The bound sessions outlive the node's restart (they expire later).
        drop(admitted);
        node.restart();
        assert_eq!(bound_sessions(&node, "team-a"), 4);
        let (err, _) = try_bind(node.addr, "alice:pa").await;
        assert_eq!(err, QUOTA_EXCEEDED, "the replicated count still holds");
    });
}

#[test]
fn a_sessions_tenant_never_changes_across_reconnects_and_restarts() {
    // Goal: a session bound to A and resumed on a new connection is refused
    // (AuthFailed, closed, counted) with B's identity, refused with no
    // identity even under the open policy, gets A back with A's identity and
    // sees A's namespace; super still sees the whole tree; all of it holds
    // after a restart, since the binding is in the replicated session table.
    common::run(async {
        let mut node = tenant_node(
            vec![
                digest_tenant(A, Quotas::default()),
                digest_tenant(B, Quotas::default()),
            ],
            |o| o.tenancy.unbound = UnboundPolicy::Open,
        )
        .await;
        let mut a = raw_tenant(&node, A).await;
        let create = Request::Create(OpCode::Create, create_req("/mine", b"a", 0));
        assert_eq!(a.call(&create).await.1.err, 0);
        let sid = a.session.session_id;
        assert_eq!(session_tenant(&node, sid).as_deref(), Some("team-a"));
        let exists = Request::Exists(path_watch("/mine", false));
        for round in ["before restart", "after restart"] {
            let refused_before = node
                .shared()
                .stats
                .connections_refused
                .load(std::sync::atomic::Ordering::Relaxed);
            let mut as_b = resume(&node, &a).await;
            let (_, h, _) = as_b.call(&auth_req("bob:pb")).await;
            assert_eq!(h.err, AUTH_FAILED, "{round}: B's identity");
            assert!(as_b.closed_by_server().await);
            let mut nobody = resume(&node, &a).await;
            let (_, h, _) = nobody.call(&exists).await;
            assert_eq!(h.err, AUTH_FAILED, "{round}: no identity, open policy");
            assert!(nobody.closed_by_server().await);
            let refused = node
                .shared()
                .stats
                .connections_refused
                .load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(
                refused - refused_before,
                2,
                "{round}: both refusals counted"
            );
            assert_eq!(session_tenant(&node, sid).as_deref(), Some("team-a"));
            let mut back = resume(&node, &a).await;
            assert_eq!(back.call(&auth_req("alice:pa")).await.1.err, 0);
            assert_eq!(back.call(&exists).await.1.err, 0, "{round}: A's namespace");
            let mut sup = resume(&node, &a).await;
            assert_eq!(sup.call(&auth_req("super:test")).await.1.err, 0);
            let whole = Request::Exists(path_watch("/tenants/team-a/mine", false));
            assert_eq!(sup.call(&whole).await.1.err, 0, "{round}: super");
            a = sup;
            if round == "before restart" {
                node.restart();
            }
        }
        assert_eq!(bound_sessions(&node, "team-a"), 1);
        assert_eq!(bound_sessions(&node, "team-b"), 0);
    });
}

/// A node's replicator whose table lags: the session was bound through
/// another node, and this one applies that bind only when asked to catch up
/// (`sync`). It takes no writes.
struct Lagging {
    shared: Arc<Shared>,
    session_id: i64,
    syncs: AtomicUsize,
}

impl Replicator for Lagging {
    fn submit(&self, _: WriteRequest) -> Result<(), Box<WriteRequest>> {
        panic!("the lagging node takes no writes in this test");
    }

    fn sync(&self) -> tokio::sync::oneshot::Receiver<bool> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        let mut tree = self.shared.tree.write().unwrap();
        let hdr = TxnHeader {
            session_id: self.session_id,
            cxid: 0,
            zxid: tree.last_zxid() + 1,
            time_ms: 1,
        };
        tree.apply(
            &hdr,
            &Txn::BindSession {
                tenant: "team-a".into(),
            },
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = tx.send(true);
        rx
    }
}

#[test]
fn a_resumed_session_is_checked_after_catching_up_before_the_open_policy() {
    // Goal: under the open policy, a resumed session that this node's table
    // shows unbound is looked up again after a sync, so a bind made through
    // another node a moment ago refuses it (AuthFailed) instead of handing
    // it the whole tree.
    common::run(async {
        let node = tenant_node(vec![digest_tenant(A, Quotas::default())], |o| {
            o.tenancy.unbound = UnboundPolicy::Open
        })
        .await;
        let unbound = Raw::connect(node.addr, 6000).await;
        let session_id = unbound.session.session_id;
        let lagging = Arc::new(Lagging {
            shared: node.shared(),
            session_id,
            syncs: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shared, repl) = (node.shared(), lagging.clone());
        tokio::spawn(async move {
            let (stream, remote) = listener.accept().await.unwrap();
            corral_server::conn::serve(shared, repl, stream, remote).await;
        });
        let (mut resumed, rsp) =
            Raw::handshake(addr, 6000, session_id, unbound.session.passwd.clone())
                .await
                .unwrap();
        assert_eq!(rsp.session_id, session_id);
        let (_, h, _) = resumed.call(&Request::Exists(path_watch("/", false))).await;
        assert_eq!(h.err, AUTH_FAILED, "the whole tree for a bound session");
        assert!(resumed.closed_by_server().await);
        assert_eq!(lagging.syncs.load(Ordering::SeqCst), 1);
        assert_eq!(session_tenant(&node, session_id).as_deref(), Some("team-a"));
    });
}
