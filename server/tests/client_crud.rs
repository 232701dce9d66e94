//! Node CRUD through the `zookeeper-client` crate: every create mode, version
//! checks, children with Stat, ephemeral rules, container/TTL reaping, and
//! (over a raw socket) the server's own path validation.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{client, code, create_req, ephemeral, persistent, within, Raw, TestNode};
use corral_proto::{OpCode, Request, Response};
use zookeeper_client as zk;

#[test]
fn create2_persistent_returns_a_complete_stat() {
    // Goal: create2 of a persistent node returns a Stat ZooKeeper would give, and getData agrees.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        let (stat, seq) = c.create("/p", b"hello", &persistent()).await.unwrap();
        assert_eq!(seq.into_i64(), -1);
        assert!(stat.czxid > 0);
        assert_eq!(stat.czxid, stat.mzxid);
        assert_eq!(stat.czxid, stat.pzxid);
        assert!(stat.ctime > 0);
        assert_eq!(stat.ctime, stat.mtime);
        assert_eq!(
            (stat.version, stat.cversion, stat.aversion),
            (0, 0, 0),
            "fresh versions"
        );
        assert_eq!(stat.ephemeral_owner, 0);
        assert_eq!(stat.data_length, 5);
        assert_eq!(stat.num_children, 0);
        let (data, stat2) = c.get_data("/p").await.unwrap();
        assert_eq!(data, b"hello");
        assert_eq!(stat2, stat);
        assert_eq!(c.check_stat("/p").await.unwrap(), Some(stat));
    });
}

#[test]
fn plain_create_opcode_returns_the_path_only() {
    // Goal: the pre-3.5 create opcode (1) works and creates the node (its reply has no Stat).
    common::run(async {
        let node = TestNode::start();
        let c =
            common::connect_with(&node, zk::Client::connector().with_server_version(3, 4, 0)).await;
        let (stat, _) = c.create("/old", b"x", &persistent()).await.unwrap();
        assert!(stat.is_invalid(), "create (op 1) carries no Stat");
        assert_eq!(c.get_data("/old").await.unwrap().0, b"x");
        // A sequential create through op 1 still reports its name.
        c.create("/old/s", b"", &persistent()).await.unwrap();
        let (_, seq) = c
            .create(
                "/old/n-",
                b"",
                &zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all()),
            )
            .await
            .unwrap();
        assert_eq!(seq.to_string(), "0000000001");
    });
}

#[test]
fn ephemeral_node_is_owned_by_its_session() {
    // Goal: an ephemeral's ephemeralOwner is the creating session's id.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        let (stat, _) = c.create("/e", b"", &ephemeral()).await.unwrap();
        assert_eq!(stat.ephemeral_owner, c.session_id().0);
        let (_, stat2) = c.get_data("/e").await.unwrap();
        assert_eq!(stat2.ephemeral_owner, c.session_id().0);
    });
}

#[test]
fn sequential_names_use_ten_digits_from_parent_cversion() {
    // Goal: sequential suffixes are the parent's cversion, zero-padded to 10 digits, in every sequential mode.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        c.create("/seq", b"", &persistent()).await.unwrap();
        c.create("/seq/plain", b"", &persistent()).await.unwrap(); // cversion 1
        let ps = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
        let es = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        let (_, s1) = c.create("/seq/n-", b"", &ps).await.unwrap();
        let (_, s2) = c.create("/seq/n-", b"", &ps).await.unwrap();
        let (st3, s3) = c.create("/seq/e-", b"", &es).await.unwrap();
        let (_, s4) = c.create("/seq/", b"", &ps).await.unwrap();
        assert_eq!(
            [s1, s2, s3, s4].map(|s| s.to_string()),
            ["0000000001", "0000000002", "0000000003", "0000000004"]
        );
        assert_eq!(st3.ephemeral_owner, c.session_id().0);
        let kids: BTreeSet<String> = c.list_children("/seq").await.unwrap().into_iter().collect();
        let want: BTreeSet<String> = [
            "plain",
            "n-0000000001",
            "n-0000000002",
            "e-0000000003",
            "0000000004",
        ]
        .map(String::from)
        .into();
        assert_eq!(kids, want);
        let (_, pstat) = c.get_children("/seq").await.unwrap();
        assert_eq!(pstat.cversion, 5);
        assert_eq!(pstat.num_children, 5);
    });
}

#[test]
fn container_and_ttl_nodes_show_no_owner_to_clients() {
    // Goal: container and TTL nodes are created (TTL-sequential with a suffix) and, as in ZooKeeper, report ephemeralOwner 0.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        let container = zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());
        let (st, _) = c.create("/box", b"", &container).await.unwrap();
        assert_eq!(st.ephemeral_owner, 0);
        let ttl = persistent().with_ttl(Duration::from_secs(100));
        let (st, _) = c.create("/ttl", b"t", &ttl).await.unwrap();
        assert_eq!(st.ephemeral_owner, 0);
        assert_eq!(c.get_data("/ttl").await.unwrap().1.ephemeral_owner, 0);
        assert_eq!(c.get_data("/ttl").await.unwrap().0, b"t");
        let ttl_seq = zk::CreateMode::PersistentSequential
            .with_acls(zk::Acls::anyone_all())
            .with_ttl(Duration::from_secs(50));
        let (st, seq) = c.create("/box/t-", b"", &ttl_seq).await.unwrap();
        assert_eq!(seq.to_string(), "0000000000");
        assert_eq!(st.ephemeral_owner, 0);
        assert!(c.check_stat("/box/t-0000000000").await.unwrap().is_some());
    });
}

#[test]
fn ttl_create_is_unimplemented_when_ttl_nodes_are_disabled() {
    // Goal: with TTL nodes off, createTTL gets Unimplemented as ZooKeeper without extended types.
    common::run(async {
        let node = TestNode::start_with(|o| o.ttl_nodes_enabled = false);
        let c = client(&node).await;
        let ttl = persistent().with_ttl(Duration::from_secs(10));
        assert_eq!(
            c.create("/ttl", b"", &ttl).await.unwrap_err(),
            zk::Error::Unimplemented
        );
        assert_eq!(c.check_stat("/ttl").await.unwrap(), None);
    });
}

#[test]
fn versions_are_checked_on_set_data_and_delete() {
    // Goal: setData/delete honour expected versions (BadVersion), and missing nodes give NoNode.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        let (created, _) = c.create("/v", b"0", &persistent()).await.unwrap();
        let s1 = c.set_data("/v", b"1", Some(0)).await.unwrap();
        assert_eq!(s1.version, 1);
        assert!(s1.mzxid > created.mzxid);
        assert_eq!(s1.czxid, created.czxid);
        assert_eq!(s1.ctime, created.ctime);
        assert_eq!(s1.data_length, 1);
        assert_eq!(
            c.set_data("/v", b"x", Some(0)).await.unwrap_err(),
            zk::Error::BadVersion
        );
        let s2 = c.set_data("/v", b"22", None).await.unwrap();
        assert_eq!(s2.version, 2);
        assert_eq!(c.get_data("/v").await.unwrap().0, b"22");
        assert_eq!(
            c.delete("/v", Some(1)).await.unwrap_err(),
            zk::Error::BadVersion
        );
        c.delete("/v", Some(2)).await.unwrap();
        assert_eq!(c.check_stat("/v").await.unwrap(), None);
        assert_eq!(c.get_data("/v").await.unwrap_err(), zk::Error::NoNode);
        assert_eq!(
            c.set_data("/v", b"", None).await.unwrap_err(),
            zk::Error::NoNode
        );
        assert_eq!(c.delete("/v", None).await.unwrap_err(), zk::Error::NoNode);
    });
}

#[test]
fn create_and_delete_refuse_conflicts() {
    // Goal: NodeExists on a duplicate, NoNode under a missing parent, NotEmpty on a parent.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        c.create("/a", b"", &persistent()).await.unwrap();
        assert_eq!(
            c.create("/a", b"", &persistent()).await.unwrap_err(),
            zk::Error::NodeExists
        );
        assert_eq!(
            c.create("/missing/x", b"", &persistent())
                .await
                .unwrap_err(),
            zk::Error::NoNode
        );
        c.create("/a/b", b"", &persistent()).await.unwrap();
        assert_eq!(c.delete("/a", None).await.unwrap_err(), zk::Error::NotEmpty);
        c.delete("/a/b", None).await.unwrap();
        c.delete("/a", None).await.unwrap();
    });
}

#[test]
fn get_children_and_children2_report_the_parent_stat() {
    // Goal: getChildren lists every child; getChildren2 adds the parent's Stat (numChildren, cversion, pzxid).
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        c.create("/kids", b"", &persistent()).await.unwrap();
        let mut last = None;
        for k in ["a", "b", "c"] {
            let (st, _) = c
                .create(&format!("/kids/{k}"), b"", &persistent())
                .await
                .unwrap();
            last = Some(st);
        }
        let mut kids = c.list_children("/kids").await.unwrap();
        kids.sort();
        assert_eq!(kids, ["a", "b", "c"]);
        let (mut kids2, st) = c.get_children("/kids").await.unwrap();
        kids2.sort();
        assert_eq!(kids2, kids);
        assert_eq!(st.num_children, 3);
        assert_eq!(st.cversion, 3);
        assert_eq!(st.pzxid, last.unwrap().czxid);
        c.delete("/kids/b", None).await.unwrap();
        let (kids3, st2) = c.get_children("/kids").await.unwrap();
        assert_eq!(kids3.len(), 2);
        assert_eq!(st2.num_children, 2);
        assert!(st2.pzxid > st.pzxid, "delete moves pzxid");
        // ZooKeeper shows cversion as 2 * creates - children: a delete counts too.
        assert_eq!(st2.cversion, 4);
        assert_eq!(st2.mzxid, st.mzxid, "child changes leave mzxid alone");
        assert_eq!(
            c.list_children("/nope").await.unwrap_err(),
            zk::Error::NoNode
        );
        assert_eq!(
            c.get_children("/nope").await.unwrap_err(),
            zk::Error::NoNode
        );
    });
}

#[test]
fn all_children_number_counts_every_descendant() {
    // Goal: getAllChildrenNumber counts all descendants (not the node itself).
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        for p in ["/t", "/t/a", "/t/a/b", "/t/a/b/c", "/t/d"] {
            c.create(p, b"", &persistent()).await.unwrap();
        }
        assert_eq!(c.count_descendants_number("/t").await.unwrap(), 4);
        assert_eq!(c.count_descendants_number("/t/a").await.unwrap(), 2);
        assert_eq!(c.count_descendants_number("/t/d").await.unwrap(), 0);
        assert_eq!(
            c.count_descendants_number("/none").await.unwrap_err(),
            zk::Error::NoNode
        );
    });
}

#[test]
fn get_ephemerals_lists_only_this_sessions_nodes_under_a_prefix() {
    // Goal: getEphemerals returns the caller's ephemerals, filtered by path prefix.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        let other = client(&node).await;
        c.create("/eph", b"", &persistent()).await.unwrap();
        c.create("/eph/a", b"", &ephemeral()).await.unwrap();
        c.create("/eph/b", b"", &ephemeral()).await.unwrap();
        c.create("/solo", b"", &ephemeral()).await.unwrap();
        other
            .create("/eph/theirs", b"", &ephemeral())
            .await
            .unwrap();
        let mut under = c.list_ephemerals("/eph").await.unwrap();
        under.sort();
        assert_eq!(under, ["/eph/a", "/eph/b"]);
        let mut all = c.list_ephemerals("/").await.unwrap();
        all.sort();
        assert_eq!(all, ["/eph/a", "/eph/b", "/solo"]);
        assert_eq!(other.list_ephemerals("/").await.unwrap(), ["/eph/theirs"]);
    });
}

#[test]
fn ephemerals_cannot_have_children() {
    // Goal: creating under an ephemeral gives NoChildrenForEphemerals, in every mode.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        c.create("/e", b"", &ephemeral()).await.unwrap();
        assert_eq!(
            c.create("/e/x", b"", &persistent()).await.unwrap_err(),
            zk::Error::NoChildrenForEphemerals
        );
        let es = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        assert_eq!(
            c.create("/e/s-", b"", &es).await.unwrap_err(),
            zk::Error::NoChildrenForEphemerals
        );
        assert_eq!(c.list_children("/e").await.unwrap(), Vec::<String>::new());
    });
}

#[test]
fn sync_answers_with_its_path() {
    // Goal: sync succeeds on any path and a read after it sees the latest write.
    common::run(async {
        let node = TestNode::start();
        let writer = client(&node).await;
        let reader = client(&node).await;
        writer.create("/s", b"v1", &persistent()).await.unwrap();
        reader.sync("/s").await.unwrap();
        assert_eq!(reader.get_data("/s").await.unwrap().0, b"v1");
        reader.sync("/").await.unwrap();
        let mut raw = Raw::connect(node.addr, 4000).await;
        let (_, h, body) = raw.call(&Request::Sync("/s".into())).await;
        assert_eq!(h.err, code::OK);
        assert_eq!(
            common::decode(OpCode::Sync, &body),
            Response::Path("/s".into())
        );
    });
}

#[test]
fn reconfig_is_refused_as_disabled() {
    // Goal: reconfig gets ReconfigDisabled, as a ZooKeeper with reconfig off answers.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        let servers = ["server.2=127.0.0.1:2888:3888:participant;2182"];
        let r = c
            .update_ensemble(
                zk::EnsembleUpdate::Incremental {
                    joinings: servers.iter().copied(),
                    leavings: [].iter().copied(),
                },
                None,
            )
            .await;
        assert_eq!(r.unwrap_err(), zk::Error::ReconfigDisabled);
    });
}

#[test]
fn server_validates_paths() {
    // Goal: the server itself refuses malformed paths with BadArguments (the crate would stop them client-side).
    common::run(async {
        let node = TestNode::start();
        let mut raw = Raw::connect(node.addr, 4000).await;
        let (_, h, _) = raw
            .call(&Request::Create(OpCode::Create2, create_req("/ok", b"", 0)))
            .await;
        assert_eq!(h.err, code::OK);
        for bad in ["noslash", "/ok/", "/ok/.", "/ok/..", "/ok/a\u{0}b"] {
            let (_, h, _) = raw
                .call(&Request::Create(OpCode::Create2, create_req(bad, b"", 0)))
                .await;
            assert_eq!(h.err, code::BAD_ARGUMENTS, "create {bad:?}");
        }
        for bad in ["/ok/", "/ok/./x", "noslash"] {
            let (_, h, _) = raw
                .call(&Request::SetData(corral_proto::request::SetDataRequest {
                    path: bad.into(),
                    data: Some(vec![]),
                    version: -1,
                }))
                .await;
            assert_eq!(h.err, code::BAD_ARGUMENTS, "setData {bad:?}");
        }
        for special in ["/", "/zookeeper", "noslash"] {
            let (_, h, _) = raw
                .call(&Request::Delete(corral_proto::request::DeleteRequest {
                    path: special.into(),
                    version: -1,
                }))
                .await;
            assert_eq!(h.err, code::BAD_ARGUMENTS, "delete {special:?}");
        }
        let (_, h, _) = raw
            .call(&Request::Exists(common::path_watch("/ok\u{0}", false)))
            .await;
        assert_eq!(h.err, code::BAD_ARGUMENTS, "exists with NUL");
        // The connection is still fine after all those errors.
        let (_, h, body) = raw
            .call(&Request::Exists(common::path_watch("/ok", false)))
            .await;
        assert_eq!(h.err, code::OK);
        assert!(matches!(
            common::decode(OpCode::Exists, &body),
            Response::Stat(_)
        ));
    });
}

#[test]
fn emptied_containers_are_reaped_and_unused_ones_stay() {
    // Goal: the reaper deletes a container whose last child went, fires NodeDeleted, and keeps never-used containers.
    common::run(async {
        let node = TestNode::start_with(|o| o.container_check_interval_ms = 100);
        let c = client(&node).await;
        let container = zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());
        c.create("/used", b"", &container).await.unwrap();
        c.create("/unused", b"", &container).await.unwrap();
        c.create("/used/child", b"", &persistent()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            c.check_stat("/used").await.unwrap().is_some(),
            "a container with children stays"
        );
        let (_, watcher) = c.check_and_watch_stat("/used").await.unwrap();
        c.delete("/used/child", None).await.unwrap();
        let ev = within("container deletion event", watcher.changed()).await;
        assert_eq!(ev.event_type, zk::EventType::NodeDeleted);
        assert_eq!(ev.path, "/used");
        assert_eq!(c.check_stat("/used").await.unwrap(), None);
        assert!(
            c.check_stat("/unused").await.unwrap().is_some(),
            "a never-used container is not reaped"
        );
    });
}

#[test]
fn ttl_nodes_expire_unless_they_have_children() {
    // Goal: an untouched, childless TTL node is deleted after its TTL; one with a child stays.
    common::run(async {
        let node = TestNode::start_with(|o| o.container_check_interval_ms = 100);
        let c = client(&node).await;
        let short = persistent().with_ttl(Duration::from_millis(300));
        c.create("/ttl-lone", b"", &short).await.unwrap();
        c.create("/ttl-parent", b"", &short).await.unwrap();
        c.create("/ttl-parent/kid", b"", &persistent())
            .await
            .unwrap();
        common::eventually("TTL node reaped", Duration::from_secs(5), || async {
            c.check_stat("/ttl-lone").await.unwrap().is_none()
        })
        .await;
        assert!(
            c.check_stat("/ttl-parent").await.unwrap().is_some(),
            "a TTL node with children stays"
        );
    });
}
