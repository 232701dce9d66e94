//! Durability through restarts on the same data dir: log replay, snapshot
//! plus log recovery, and sessions that outlive a restart.

mod common;

use std::time::Duration;

use common::{client, code, create_req, ephemeral, persistent, within, Raw, TestNode};
use corral_proto::{OpCode, Request};
use zookeeper_client as zk;

/// Waits until the node's client is connected again after a restart.
async fn reconnected(c: &zk::Client) {
    within("reconnect", async {
        loop {
            if c.check_stat("/").await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

fn snapshot_files(node: &TestNode) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(node.data_dir().join("snapshots")) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn data_survives_a_restart() {
    // Goal: every acknowledged write (data, versions, ACLs, sequence counters) is there after a restart.
    common::run(async {
        let mut node = TestNode::start();
        let c = client(&node).await;
        c.create("/app", b"cfg", &persistent()).await.unwrap();
        for i in 0..3 {
            c.set_data("/app", format!("v{i}").as_bytes(), None)
                .await
                .unwrap();
        }
        let seq = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
        c.create("/app/q-", b"", &seq).await.unwrap();
        c.create("/app/q-", b"", &seq).await.unwrap();
        let ro = [zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone())];
        c.create("/app/ro", b"r", &persistent()).await.unwrap();
        c.set_acl("/app/ro", &ro, None).await.unwrap();
        c.create("/app/gone", b"", &persistent()).await.unwrap();
        c.delete("/app/gone", None).await.unwrap();
        let (_, app) = c.get_children("/app").await.unwrap();
        let (_, ro_stat) = c.get_data("/app/ro").await.unwrap();
        drop(c);

        node.restart();
        let c = client(&node).await;
        let (data, app2) = c.get_data("/app").await.unwrap();
        assert_eq!(data, b"v2");
        let (mut kids, app3) = c.get_children("/app").await.unwrap();
        kids.sort();
        assert_eq!(kids, ["q-0000000000", "q-0000000001", "ro"]);
        assert_eq!(app2, app3);
        assert_eq!(app3, app, "every Stat field of /app survives");
        let (acl, ro2) = c.get_acl("/app/ro").await.unwrap();
        assert_eq!(acl, ro);
        assert_eq!(ro2, ro_stat);
        assert_eq!(c.check_stat("/app/gone").await.unwrap(), None);
        // The sequence counter (child creates so far: 4) and zxids carry on.
        let (st, s) = c.create("/app/q-", b"", &seq).await.unwrap();
        assert_eq!(s.to_string(), "0000000004");
        assert!(st.czxid > app.pzxid, "zxids keep increasing after recovery");
    });
}

#[test]
fn snapshot_plus_log_recovery_keeps_everything() {
    // Goal: with small snap_count, snapshots are written and recovery (snapshot, then log) loses nothing.
    common::run(async {
        let mut node = TestNode::start_with(|o| {
            o.snap_count = 20;
            o.snap_retain_count = 2;
        });
        let c = client(&node).await;
        c.create("/bulk", b"", &persistent()).await.unwrap();
        for i in 0..120 {
            c.create(
                &format!("/bulk/n{i:03}"),
                format!("{i}").as_bytes(),
                &persistent(),
            )
            .await
            .unwrap();
        }
        common::eventually("a snapshot file", Duration::from_secs(5), || async {
            !snapshot_files(&node).is_empty()
        })
        .await;
        // Writes after the latest snapshot live only in the log.
        for i in 0..5 {
            c.set_data(&format!("/bulk/n{i:03}"), b"late", None)
                .await
                .unwrap();
        }
        c.delete("/bulk/n119", None).await.unwrap();
        let (_, before) = c.get_children("/bulk").await.unwrap();
        drop(c);
        // Let a snapshot in flight finish before the stop.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let snaps = snapshot_files(&node).len();
        assert!(
            (1..=3).contains(&snaps),
            "snapshots are purged to the retain count (+1 in flight): {snaps}"
        );

        node.restart();
        let c = client(&node).await;
        let (kids, after) = c.get_children("/bulk").await.unwrap();
        assert_eq!(kids.len(), 119);
        assert_eq!(after, before);
        for i in 0..119 {
            let (data, st) = c.get_data(&format!("/bulk/n{i:03}")).await.unwrap();
            if i < 5 {
                assert_eq!((data.as_slice(), st.version), (&b"late"[..], 1), "n{i:03}");
            } else {
                assert_eq!(data, format!("{i}").as_bytes(), "n{i:03}");
            }
        }
        // And a second restart, now recovering from whatever the first one left.
        drop(c);
        node.restart();
        let c = client(&node).await;
        assert_eq!(c.count_descendants_number("/bulk").await.unwrap(), 119);
    });
}

#[test]
fn connected_session_and_its_ephemerals_survive_a_restart() {
    // Goal: a client reconnects to the restarted node with the same session and keeps its ephemerals.
    common::run(async {
        let mut node = TestNode::start();
        let c = client(&node).await;
        let (st, _) = c.create("/mine", b"", &ephemeral()).await.unwrap();
        let id = c.session_id();
        node.restart();
        reconnected(&c).await;
        assert_eq!(c.session_id(), id);
        let (_, st2) = c.get_data("/mine").await.unwrap();
        assert_eq!(st2.ephemeral_owner, id.0);
        assert_eq!(st2.czxid, st.czxid);
        c.set_data("/mine", b"still mine", None).await.unwrap();
    });
}

#[test]
fn abandoned_session_expires_after_a_restart() {
    // Goal: a recovered session whose client never returns expires, and its ephemerals go.
    common::run(async {
        let mut node = TestNode::start();
        let mut raw = Raw::connect(node.addr, 2_000).await;
        let (_, h, _) = raw
            .call(&Request::Create(
                OpCode::Create2,
                create_req("/orphan", b"", 1),
            ))
            .await;
        assert_eq!(h.err, code::OK);
        drop(raw);
        node.restart();
        let c = client(&node).await;
        let st = c.check_stat("/orphan").await.unwrap();
        assert!(st.is_some(), "the ephemeral was recovered with its session");
        common::eventually(
            "orphan ephemeral expired",
            Duration::from_secs(5),
            || async { c.check_stat("/orphan").await.unwrap().is_none() },
        )
        .await;
    });
}
