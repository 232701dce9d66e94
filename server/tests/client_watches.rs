//! Watches through the `zookeeper-client` crate (and a raw socket where the
//! exact frame order or error code matters): one-shot data/exist/child
//! watches, their ordering, persistent and recursive watches,
//! checkWatches/removeWatches, and setWatches after a reconnect.

mod common;

use std::time::Duration;

use common::{client, code, path_watch, persistent, within, Frame, Raw, TestNode};
use corral_proto::opcode::{event_type, watcher_type};
use corral_proto::request::{SetWatches, WatchesRequest};
use corral_proto::{OpCode, Request, Response};
use zookeeper_client as zk;

/// Fails if `watcher` is already fired (checked right away, no waiting).
async fn assert_not_fired(watcher: zk::OneshotWatcher) {
    let r = tokio::time::timeout(Duration::from_millis(200), watcher.changed()).await;
    assert!(r.is_err(), "unexpected event {r:?}");
}

#[test]
fn data_watch_fires_once_on_change_and_on_delete() {
    // Goal: a getData watch fires NodeDataChanged once; a new one fires NodeDeleted on delete.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        let other = client(&node).await;
        c.create("/w", b"0", &persistent()).await.unwrap();
        let (_, _, w) = c.get_and_watch_data("/w").await.unwrap();
        other.set_data("/w", b"1", None).await.unwrap();
        let ev = within("data changed", w.changed()).await;
        assert_eq!(ev.event_type, zk::EventType::NodeDataChanged);
        assert_eq!(ev.path, "/w");
        // One-shot: the next change fires nothing until re-armed.
        let (_, _, w2) = c.get_and_watch_data("/w").await.unwrap();
        other.delete("/w", None).await.unwrap();
        let ev = within("deleted", w2.changed()).await;
        assert_eq!(ev.event_type, zk::EventType::NodeDeleted);
    });
}

#[test]
fn exist_watch_fires_on_creation_of_a_missing_node() {
    // Goal: exists on a missing node arms a watch that fires NodeCreated.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        let other = client(&node).await;
        let (stat, w) = c.check_and_watch_stat("/later").await.unwrap();
        assert_eq!(stat, None);
        other.create("/later", b"", &persistent()).await.unwrap();
        let ev = within("created", w.changed()).await;
        assert_eq!(ev.event_type, zk::EventType::NodeCreated);
        assert_eq!(ev.path, "/later");
        // On an existing node the same call watches data changes.
        let (stat, w) = c.check_and_watch_stat("/later").await.unwrap();
        assert!(stat.is_some());
        other.set_data("/later", b"x", None).await.unwrap();
        let ev = within("changed", w.changed()).await;
        assert_eq!(ev.event_type, zk::EventType::NodeDataChanged);
    });
}

#[test]
fn child_watch_fires_on_child_changes_only() {
    // Goal: a getChildren watch ignores the node's own data, fires NodeChildrenChanged on a child create.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        let other = client(&node).await;
        c.create("/parent", b"", &persistent()).await.unwrap();
        let (kids, w) = c.list_and_watch_children("/parent").await.unwrap();
        assert!(kids.is_empty());
        other.set_data("/parent", b"data", None).await.unwrap();
        other
            .create("/parent/kid", b"", &persistent())
            .await
            .unwrap();
        let ev = within("children changed", w.changed()).await;
        assert_eq!(ev.event_type, zk::EventType::NodeChildrenChanged);
        assert_eq!(ev.path, "/parent");
        // getChildren2 arms the same kind of watch; a child delete fires it.
        let (_, _, w) = c.get_and_watch_children("/parent").await.unwrap();
        other.delete("/parent/kid", None).await.unwrap();
        let ev = within("children changed again", w.changed()).await;
        assert_eq!(ev.event_type, zk::EventType::NodeChildrenChanged);
        // A child's data change fires nothing on the parent.
        other
            .create("/parent/k2", b"", &persistent())
            .await
            .unwrap();
        let (_, w) = c.list_and_watch_children("/parent").await.unwrap();
        other.set_data("/parent/k2", b"z", None).await.unwrap();
        assert_not_fired(w).await;
    });
}

#[test]
fn own_write_event_arrives_before_its_reply() {
    // Goal: a session that watches a node and changes it gets the event before the setData reply.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        c.create("/own", b"", &persistent()).await.unwrap();
        let (_, _, w) = c.get_and_watch_data("/own").await.unwrap();
        c.set_data("/own", b"x", None).await.unwrap();
        // The event was dispatched before the reply completed: it is ready now.
        let ev = tokio::time::timeout(Duration::ZERO, w.changed())
            .await
            .expect("event must precede the reply");
        assert_eq!(ev.event_type, zk::EventType::NodeDataChanged);
    });
}

#[test]
fn event_precedes_any_reply_that_shows_the_change() {
    // Goal: on the wire, a watcher sees NodeDataChanged before the first read reply carrying the new version.
    common::run(async {
        let node = TestNode::start();
        let writer = client(&node).await;
        writer.create("/order", b"0", &persistent()).await.unwrap();
        let mut raw = Raw::connect(node.addr, 4000).await;
        let (_, h, _) = raw
            .call(&Request::GetData(path_watch("/order", true)))
            .await;
        assert_eq!(h.err, code::OK);
        let write = tokio::spawn(async move {
            writer.set_data("/order", b"1", None).await.unwrap();
            writer
        });
        let mut seen_event = false;
        loop {
            let (events, h, body) = raw
                .call(&Request::GetData(path_watch("/order", false)))
                .await;
            assert_eq!(h.err, code::OK);
            for e in &events {
                assert_eq!(
                    (e.event_type, e.path.as_str()),
                    (event_type::NODE_DATA_CHANGED, "/order")
                );
                seen_event = true;
            }
            let Response::Data(_, stat) = common::decode(OpCode::GetData, &body) else {
                panic!("getData reply");
            };
            if stat.version == 1 {
                assert!(seen_event, "reply showed version 1 before the event");
                break;
            }
            assert!(!seen_event, "event arrived before the change was visible");
        }
        within("writer", write).await.unwrap();
    });
}

#[test]
fn persistent_watch_fires_repeatedly_for_the_node_only() {
    // Goal: addWatch PERSISTENT sees data, child and delete events on its path, again and again, not on grandchildren.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        let other = client(&node).await;
        c.create("/pw", b"", &persistent()).await.unwrap();
        let mut w = c.watch("/pw", zk::AddWatchMode::Persistent).await.unwrap();
        other.set_data("/pw", b"1", None).await.unwrap();
        other.set_data("/pw", b"2", None).await.unwrap();
        other.create("/pw/a", b"", &persistent()).await.unwrap();
        other.set_data("/pw/a", b"ignored", None).await.unwrap();
        other
            .create("/pw/a/deep", b"", &persistent())
            .await
            .unwrap();
        other.delete("/pw/a/deep", None).await.unwrap();
        other.delete("/pw/a", None).await.unwrap();
        other.delete("/pw", None).await.unwrap();
        other.create("/pw", b"", &persistent()).await.unwrap();
        use zk::EventType::*;
        let want = [
            (NodeDataChanged, "/pw"),
            (NodeDataChanged, "/pw"),
            (NodeChildrenChanged, "/pw"),
            (NodeChildrenChanged, "/pw"),
            (NodeDeleted, "/pw"),
            (NodeCreated, "/pw"),
        ];
        for (i, (t, p)) in want.into_iter().enumerate() {
            let ev = within("persistent event", w.changed()).await;
            assert_eq!((ev.event_type, ev.path.as_str()), (t, p), "event #{i}");
        }
    });
}

#[test]
fn recursive_watch_sees_the_subtree_without_child_events() {
    // Goal: addWatch PERSISTENT_RECURSIVE sees create/change/delete anywhere below, never NodeChildrenChanged.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        let other = client(&node).await;
        c.create("/rw", b"", &persistent()).await.unwrap();
        let mut w = c
            .watch("/rw", zk::AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        other.create("/rw/a", b"", &persistent()).await.unwrap();
        other.create("/rw/a/b", b"", &persistent()).await.unwrap();
        other.set_data("/rw/a", b"x", None).await.unwrap();
        other.create("/rwx", b"", &persistent()).await.unwrap(); // a sibling, not below
        other.delete("/rw/a/b", None).await.unwrap();
        other.set_data("/rw", b"y", None).await.unwrap();
        use zk::EventType::*;
        let want = [
            (NodeCreated, "/rw/a"),
            (NodeCreated, "/rw/a/b"),
            (NodeDataChanged, "/rw/a"),
            (NodeDeleted, "/rw/a/b"),
            (NodeDataChanged, "/rw"),
        ];
        for (i, (t, p)) in want.into_iter().enumerate() {
            let ev = within("recursive event", w.changed()).await;
            assert_eq!((ev.event_type, ev.path.as_str()), (t, p), "event #{i}");
        }
    });
}

#[test]
fn check_and_remove_watches_by_type() {
    // Goal: checkWatches/removeWatches honour the watcher type, answer NoWatcher on a miss, and a removed watch stays silent.
    common::run(async {
        let node = TestNode::start();
        let other = client(&node).await;
        other.create("/cw", b"", &persistent()).await.unwrap();
        let mut raw = Raw::connect(node.addr, 4000).await;
        raw.call(&Request::GetData(path_watch("/cw", true))).await;
        raw.call(&Request::GetChildren(path_watch("/cw", true)))
            .await;
        let req = |path: &str, t: i32| WatchesRequest {
            path: path.into(),
            watcher_type: t,
        };
        let (_, h, _) = raw
            .call(&Request::CheckWatches(req("/cw", watcher_type::DATA)))
            .await;
        assert_eq!(h.err, code::OK, "check data watch");
        let (_, h, _) = raw
            .call(&Request::CheckWatches(req("/other", watcher_type::ANY)))
            .await;
        assert_eq!(h.err, code::NO_WATCHER, "check on an unwatched path");
        let (_, h, _) = raw
            .call(&Request::RemoveWatches(req("/cw", watcher_type::DATA)))
            .await;
        assert_eq!(h.err, code::OK, "remove data watch");
        let (_, h, _) = raw
            .call(&Request::CheckWatches(req("/cw", watcher_type::DATA)))
            .await;
        assert_eq!(h.err, code::NO_WATCHER, "data watch is gone");
        let (_, h, _) = raw
            .call(&Request::RemoveWatches(req("/cw", watcher_type::DATA)))
            .await;
        assert_eq!(h.err, code::NO_WATCHER, "second remove misses");
        let (_, h, _) = raw
            .call(&Request::CheckWatches(req("/cw", watcher_type::CHILDREN)))
            .await;
        assert_eq!(h.err, code::OK, "child watch is still there");
        // The removed data watch stays silent; the child watch still fires.
        other.set_data("/cw", b"x", None).await.unwrap();
        other.create("/cw/kid", b"", &persistent()).await.unwrap();
        let (events, h, _) = raw.call(&Request::Exists(path_watch("/cw", false))).await;
        assert_eq!(h.err, code::OK);
        let got: Vec<(i32, String)> = events.into_iter().map(|e| (e.event_type, e.path)).collect();
        assert_eq!(
            got,
            [(event_type::NODE_CHILDREN_CHANGED, "/cw".to_string())]
        );
    });
}

#[test]
#[allow(deprecated)]
fn client_side_watch_removal_reaches_the_server() {
    // Goal: the crate's OneshotWatcher::remove succeeds (the server accepts its removeWatches).
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        c.create("/rm", b"", &persistent()).await.unwrap();
        let (_, _, w) = c.get_and_watch_data("/rm").await.unwrap();
        within("remove watch", w.remove()).await.unwrap();
        let mut pw = c.watch("/rm", zk::AddWatchMode::Persistent).await.unwrap();
        c.set_data("/rm", b"1", None).await.unwrap();
        let ev = within("persistent event", pw.changed()).await;
        assert_eq!(ev.event_type, zk::EventType::NodeDataChanged);
        within("remove persistent watch", pw.remove())
            .await
            .unwrap();
    });
}

#[test]
fn set_watches_fires_missed_events_and_rearms_the_rest() {
    // Goal: setWatches with an old relativeZxid fires what changed since, and re-arms watches on unchanged nodes.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        c.create("/sw", b"", &persistent()).await.unwrap();
        c.create("/quiet", b"", &persistent()).await.unwrap();
        c.create("/gone", b"", &persistent()).await.unwrap();
        let zxid = c.check_stat("/quiet").await.unwrap().unwrap().mzxid;
        // Changes after `zxid` that the "disconnected" client missed.
        c.set_data("/sw", b"changed", None).await.unwrap();
        c.create("/sw/kid", b"", &persistent()).await.unwrap();
        c.create("/born", b"", &persistent()).await.unwrap();
        c.delete("/gone", None).await.unwrap();
        let mut raw = Raw::connect(node.addr, 4000).await;
        let sw = SetWatches {
            relative_zxid: zxid,
            data_watches: vec!["/sw".into(), "/quiet".into(), "/gone".into()],
            exist_watches: vec!["/born".into(), "/unborn".into()],
            child_watches: vec!["/sw".into(), "/quiet".into()],
            ..SetWatches::default()
        };
        raw.send_with(
            corral_proto::opcode::xid::SET_WATCHES,
            OpCode::SetWatches.code(),
            |w| Request::SetWatches(sw).encode(w),
        )
        .await;
        let (events, h, _) = raw.reply_to(corral_proto::opcode::xid::SET_WATCHES).await;
        assert_eq!(h.err, code::OK);
        let mut got: Vec<(i32, String)> =
            events.into_iter().map(|e| (e.event_type, e.path)).collect();
        got.sort();
        let mut want = vec![
            (event_type::NODE_CREATED, "/born".to_string()),
            (event_type::NODE_DELETED, "/gone".to_string()),
            (event_type::NODE_DATA_CHANGED, "/sw".to_string()),
            (event_type::NODE_CHILDREN_CHANGED, "/sw".to_string()),
        ];
        want.sort();
        assert_eq!(got, want);
        // The quiet watches were re-armed and fire on the next change.
        c.set_data("/quiet", b"now", None).await.unwrap();
        c.create("/quiet/kid", b"", &persistent()).await.unwrap();
        c.create("/unborn", b"", &persistent()).await.unwrap();
        let mut later = Vec::new();
        while later.len() < 3 {
            match raw.read().await {
                Frame::Event(e) => later.push((e.event_type, e.path)),
                Frame::Reply(h, _) => panic!("unexpected reply {h:?}"),
            }
        }
        later.sort();
        let mut want = vec![
            (event_type::NODE_DATA_CHANGED, "/quiet".to_string()),
            (event_type::NODE_CHILDREN_CHANGED, "/quiet".to_string()),
            (event_type::NODE_CREATED, "/unborn".to_string()),
        ];
        want.sort();
        assert_eq!(later, want);
    });
}

#[test]
fn set_watches2_rearms_persistent_and_recursive_watches() {
    // Goal: setWatches2 re-arms persistent and persistent-recursive watches on a new connection.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        c.create("/pp", b"", &persistent()).await.unwrap();
        c.create("/rr", b"", &persistent()).await.unwrap();
        let zxid = c.check_stat("/rr").await.unwrap().unwrap().mzxid;
        let mut raw = Raw::connect(node.addr, 4000).await;
        let sw = SetWatches {
            relative_zxid: zxid,
            persistent_watches: vec!["/pp".into()],
            persistent_recursive_watches: vec!["/rr".into()],
            ..SetWatches::default()
        };
        raw.send_with(
            corral_proto::opcode::xid::SET_WATCHES,
            OpCode::SetWatches2.code(),
            |w| Request::SetWatches2(sw).encode(w),
        )
        .await;
        let (events, h, _) = raw.reply_to(corral_proto::opcode::xid::SET_WATCHES).await;
        assert_eq!(h.err, code::OK);
        assert!(
            events.is_empty(),
            "nothing changed since relativeZxid: {events:?}"
        );
        c.set_data("/pp", b"1", None).await.unwrap();
        c.create("/pp/kid", b"", &persistent()).await.unwrap();
        c.create("/rr/a", b"", &persistent()).await.unwrap();
        c.create("/rr/a/b", b"", &persistent()).await.unwrap();
        c.set_data("/pp", b"2", None).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 5 {
            match raw.read().await {
                Frame::Event(e) => got.push((e.event_type, e.path)),
                Frame::Reply(h, _) => panic!("unexpected reply {h:?}"),
            }
        }
        let want = [
            (event_type::NODE_DATA_CHANGED, "/pp"),
            (event_type::NODE_CHILDREN_CHANGED, "/pp"),
            (event_type::NODE_CREATED, "/rr/a"),
            (event_type::NODE_CREATED, "/rr/a/b"),
            (event_type::NODE_DATA_CHANGED, "/pp"),
        ]
        .map(|(t, p)| (t, p.to_string()));
        assert_eq!(got, want);
    });
}

#[test]
fn watches_survive_a_node_restart() {
    // Goal: after the node restarts, the crate reconnects the same session, re-sends its one-shot watches, and they fire.
    // (zookeeper-client 0.11.2 never re-sends persistent watches: its resend_watches keeps
    // `index` at 0, so it always picks setWatches v1. setWatches2 is covered over a raw socket.)
    common::run(async {
        let mut node = TestNode::start();
        let c = client(&node).await;
        c.create("/keep", b"", &persistent()).await.unwrap();
        c.create("/dir", b"", &persistent()).await.unwrap();
        let (_, _, data_w) = c.get_and_watch_data("/keep").await.unwrap();
        let (_, exist_w) = c.check_and_watch_stat("/new").await.unwrap();
        let (_, child_w) = c.list_and_watch_children("/dir").await.unwrap();
        let session = c.session_id();
        let mut state = c.state_watcher();
        node.restart();
        // Wait for the crate to reconnect with the same session.
        within("reconnect", async {
            loop {
                if state.peek_state() == zk::SessionState::SyncConnected
                    && c.check_stat("/keep").await.is_ok()
                {
                    break;
                }
                state.changed().await;
            }
        })
        .await;
        assert_eq!(c.session_id(), session);
        let other = client(&node).await;
        other.set_data("/keep", b"1", None).await.unwrap();
        other.create("/new", b"", &persistent()).await.unwrap();
        other.create("/dir/kid", b"", &persistent()).await.unwrap();
        assert_eq!(
            within("data watch", data_w.changed()).await.event_type,
            zk::EventType::NodeDataChanged
        );
        assert_eq!(
            within("exist watch", exist_w.changed()).await.event_type,
            zk::EventType::NodeCreated
        );
        assert_eq!(
            within("child watch", child_w.changed()).await.event_type,
            zk::EventType::NodeChildrenChanged
        );
    });
}

#[test]
fn watch_events_skip_sessions_without_read_permission() {
    // Goal: a watch set while readable does not deliver an event once the node denies READ to the watcher.
    common::run(async {
        let node = TestNode::start();
        let owner = client(&node).await;
        within("auth", owner.auth("digest", b"alice:pw"))
            .await
            .unwrap();
        let watcher = client(&node).await;
        owner.create("/acl-w", b"", &persistent()).await.unwrap();
        let (_, _, w) = watcher.get_and_watch_data("/acl-w").await.unwrap();
        let (_, _, ow) = owner.get_and_watch_data("/acl-w").await.unwrap();
        let only_alice = [zk::Acl::new(
            zk::Permission::ALL,
            zk::AuthId::new("digest", &corral_auth::digest_id("alice", "pw")),
        )];
        owner.set_acl("/acl-w", &only_alice, None).await.unwrap();
        owner.set_data("/acl-w", b"secret", None).await.unwrap();
        assert_eq!(
            within("owner event", ow.changed()).await.event_type,
            zk::EventType::NodeDataChanged
        );
        assert_not_fired(w).await;
    });
}
