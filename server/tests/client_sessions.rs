//! Sessions: negotiated timeouts, resume with id+password, refusal of a
//! wrong password or a dead session, expiry and close deleting ephemerals.

mod common;

use std::time::Duration;

use common::{client, code, create_req, ephemeral, persistent, within, Raw, TestNode};
use corral_proto::{OpCode, Request};
use zookeeper_client as zk;

#[test]
fn session_timeout_is_clamped_to_min_and_max() {
    // Goal: the negotiated timeout is the request clamped to [min, max] session timeout.
    common::run(async {
        let node = TestNode::start_with(|o| {
            o.min_session_timeout_ms = 1_000;
            o.max_session_timeout_ms = 5_000;
        });
        for (asked, got) in [(100, 1_000), (3_000, 3_000), (60_000, 5_000)] {
            let (_, rsp) = Raw::handshake(node.addr, asked, 0, vec![0; 16])
                .await
                .unwrap();
            assert_ne!(rsp.session_id, 0);
            assert_eq!(rsp.timeout_ms, got, "asked {asked}");
            assert_eq!(rsp.passwd.len(), 16);
        }
    });
}

#[test]
fn session_ids_are_distinct() {
    // Goal: every new session gets its own non-zero id.
    common::run(async {
        let node = TestNode::start();
        let a = client(&node).await;
        let b = client(&node).await;
        assert_ne!(a.session_id().0, 0);
        assert_ne!(a.session_id(), b.session_id());
    });
}

#[test]
fn session_resumes_with_id_and_password() {
    // Goal: a new connection presenting the id and password resumes the session, ephemerals intact.
    common::run(async {
        let node = TestNode::start();
        let first = common::connect_with(&node, zk::Client::connector().with_detached()).await;
        let (st, _) = first.create("/mine", b"", &ephemeral()).await.unwrap();
        let id = first.session_id();
        assert_eq!(st.ephemeral_owner, id.0);
        let session = first.into_session();
        let again =
            common::connect_with(&node, zk::Client::connector().with_session(session)).await;
        assert_eq!(again.session_id(), id);
        let (_, st) = again.get_data("/mine").await.unwrap();
        assert_eq!(st.ephemeral_owner, id.0);
        // The resumed session can still write and own new ephemerals.
        let (st2, _) = again.create("/mine2", b"", &ephemeral()).await.unwrap();
        assert_eq!(st2.ephemeral_owner, id.0);
    });
}

#[test]
fn wrong_password_is_refused() {
    // Goal: resuming with a wrong password gets ZooKeeper's refusal (session id 0, timeout 0) and a closed socket.
    common::run(async {
        let node = TestNode::start();
        let live = Raw::connect(node.addr, 4000).await;
        let id = live.session.session_id;
        let mut wrong = live.session.passwd.clone();
        wrong[0] ^= 0xff;
        let (mut raw, rsp) = Raw::handshake(node.addr, 4000, id, wrong).await.unwrap();
        assert_eq!(rsp.session_id, 0);
        assert_eq!(rsp.timeout_ms, 0);
        assert!(raw.closed_by_server().await, "refused connection is closed");
        // The right password still works.
        let (_, ok) = Raw::handshake(node.addr, 4000, id, live.session.passwd.clone())
            .await
            .unwrap();
        assert_eq!(ok.session_id, id);
    });
}

#[test]
fn closed_session_cannot_be_resumed() {
    // Goal: after closeSession, resuming that session is refused as expired, through the crate too.
    common::run(async {
        let node = TestNode::start();
        let mut raw = Raw::connect(node.addr, 4000).await;
        let (id, pw) = (raw.session.session_id, raw.session.passwd.clone());
        let (_, h, _) = raw.call(&Request::CloseSession).await;
        assert_eq!(h.err, code::OK);
        assert!(
            raw.closed_by_server().await,
            "closeSession closes the socket"
        );
        let (_, rsp) = Raw::handshake(node.addr, 4000, id, pw).await.unwrap();
        assert_eq!(rsp.session_id, 0, "closed session refused");

        // Through the crate: drop a client (it sends closeSession), then try to resume it.
        let c = client(&node).await;
        let info = c.session().clone();
        drop(c);
        common::eventually("session closed", Duration::from_secs(5), || async {
            let r = zk::Client::connector()
                .with_session(info.clone())
                .with_session_timeout(Duration::from_secs(2))
                .with_fail_eagerly()
                .connect(&node.connect_string())
                .await;
            matches!(r, Err(zk::Error::SessionExpired))
        })
        .await;
    });
}

#[test]
fn session_expiry_deletes_ephemerals_in_one_go() {
    // Goal: a session that stops pinging expires after its timeout, and all its ephemerals go (watchers told).
    common::run(async {
        let node = TestNode::start();
        let watcher = client(&node).await;
        let mut raw = Raw::connect(node.addr, 500).await;
        assert_eq!(raw.session.timeout_ms, 500);
        watcher.create("/dir", b"", &persistent()).await.unwrap();
        for p in ["/dir/e1", "/dir/e2", "/lonely"] {
            let (_, h, _) = raw
                .call(&Request::Create(OpCode::Create2, create_req(p, b"", 1)))
                .await;
            assert_eq!(h.err, code::OK, "create {p}");
        }
        let (_, st) = watcher.get_data("/lonely").await.unwrap();
        assert_eq!(st.ephemeral_owner, raw.session.session_id);
        let (_, w) = watcher.check_and_watch_stat("/lonely").await.unwrap();
        let (_, cw) = watcher.list_and_watch_children("/dir").await.unwrap();
        // Go silent without closing: only expiry can remove them.
        drop(raw);
        let ev = within("ephemeral deleted by expiry", w.changed()).await;
        assert_eq!(ev.event_type, zk::EventType::NodeDeleted);
        assert_eq!(
            within("children changed", cw.changed()).await.event_type,
            zk::EventType::NodeChildrenChanged
        );
        assert!(watcher.list_children("/dir").await.unwrap().is_empty());
        assert_eq!(watcher.check_stat("/lonely").await.unwrap(), None);
        // The three deletions happened in one txn: /dir's pzxid equals every deletion's zxid.
        let (_, dir) = watcher.get_children("/dir").await.unwrap();
        assert_eq!(dir.num_children, 0);
        let root_kids = watcher.get_children("/").await.unwrap().1;
        assert_eq!(root_kids.pzxid, dir.pzxid, "one zxid for the whole expiry");
    });
}

#[test]
fn expired_session_is_told_and_refused() {
    // Goal: an expired session cannot be resumed: the crate reports SessionExpired.
    common::run(async {
        let node = TestNode::start();
        let c = common::connect_with(
            &node,
            zk::Client::connector()
                .with_detached()
                .with_session_timeout(Duration::from_millis(500)),
        )
        .await;
        c.create("/gone-soon", b"", &ephemeral()).await.unwrap();
        let info = c.into_session();
        let observer = client(&node).await;
        common::eventually("ephemeral expired", Duration::from_secs(5), || async {
            observer.check_stat("/gone-soon").await.unwrap().is_none()
        })
        .await;
        let r = zk::Client::connector()
            .with_session(info)
            .with_session_timeout(Duration::from_secs(2))
            .with_fail_eagerly()
            .connect(&node.connect_string())
            .await;
        assert_eq!(r.unwrap_err(), zk::Error::SessionExpired);
    });
}

#[test]
fn pings_keep_a_short_session_alive() {
    // Goal: a connected client with a short timeout keeps its session (and ephemerals) by pinging.
    common::run(async {
        let node = TestNode::start();
        let c = common::connect_with(
            &node,
            zk::Client::connector().with_session_timeout(Duration::from_millis(600)),
        )
        .await;
        c.create("/alive", b"", &ephemeral()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        let (_, st) = c.get_data("/alive").await.unwrap();
        assert_eq!(st.ephemeral_owner, c.session_id().0);
    });
}

#[test]
fn close_session_deletes_ephemerals_at_once() {
    // Goal: closing a session (dropping the client) deletes its ephemerals without waiting for expiry.
    common::run(async {
        let node = TestNode::start_with(|o| o.max_session_timeout_ms = 10_000);
        let c = client(&node).await;
        c.create("/bye", b"", &ephemeral()).await.unwrap();
        let other = client(&node).await;
        let (_, w) = other.check_and_watch_stat("/bye").await.unwrap();
        drop(c);
        // Far below the 6 s session timeout: this is the close, not expiry.
        let ev = tokio::time::timeout(Duration::from_secs(3), w.changed())
            .await
            .expect("ephemeral deleted on close");
        assert_eq!(ev.event_type, zk::EventType::NodeDeleted);
    });
}

#[test]
fn session_moves_to_the_newest_connection() {
    // Goal: resuming a session on a second socket closes the first one; the session keeps working.
    common::run(async {
        let node = TestNode::start();
        let mut first = Raw::connect(node.addr, 4000).await;
        let (id, pw) = (first.session.session_id, first.session.passwd.clone());
        let (mut second, rsp) = Raw::handshake(node.addr, 4000, id, pw).await.unwrap();
        assert_eq!(rsp.session_id, id);
        assert!(first.closed_by_server().await, "old connection closed");
        let (_, h, _) = second
            .call(&Request::Create(
                OpCode::Create2,
                create_req("/moved", b"", 1),
            ))
            .await;
        assert_eq!(h.err, code::OK);
    });
}
