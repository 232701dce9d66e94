//! multi and multiRead through the `zookeeper-client` crate, plus the raw
//! per-op result format of a failed multi.

mod common;

use common::{client, code, create_req, persistent, Raw, TestNode};
use corral_proto::request::{CheckVersionRequest, SetDataRequest};
use corral_proto::{MultiOp, MultiResult, OpCode, Request, Response};
use zk::{MultiReadResult, MultiWriteError, MultiWriteResult};
use zookeeper_client as zk;

#[test]
fn multi_applies_every_op_in_one_zxid() {
    // Goal: a successful multi returns per-op results, later ops see earlier ones, and all share one zxid.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        c.create("/m", b"", &persistent()).await.unwrap();
        c.create("/m/old", b"", &persistent()).await.unwrap();
        let seq = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
        let mut w = c.new_multi_writer();
        w.add_create("/m/a", b"A", &persistent()).unwrap();
        w.add_create("/m/s-", b"", &seq).unwrap();
        w.add_set_data("/m", b"top", Some(0)).unwrap();
        w.add_check_version("/m", 1).unwrap();
        w.add_delete("/m/old", None).unwrap();
        let results = w.commit().await.unwrap();
        assert_eq!(results.len(), 5);
        // ZooKeeper 3.8 answers a create inside a multi like create (path, no Stat).
        let MultiWriteResult::Create { path, stat } = &results[0] else {
            panic!("create result: {results:?}");
        };
        assert_eq!(path, "/m/a");
        assert!(stat.is_invalid(), "no Stat for a create in a multi");
        let MultiWriteResult::Create { path, .. } = &results[1] else {
            panic!("create result: {results:?}");
        };
        assert_eq!(path, "/m/s-0000000002");
        let MultiWriteResult::SetData { stat: m } = &results[2] else {
            panic!("setData result: {results:?}");
        };
        assert_eq!(m.version, 1);
        assert_eq!(results[3], MultiWriteResult::Check);
        assert_eq!(results[4], MultiWriteResult::Delete);
        let a = c.check_stat("/m/a").await.unwrap().unwrap();
        let s = c.check_stat("/m/s-0000000002").await.unwrap().unwrap();
        assert_eq!(a.czxid, s.czxid);
        assert_eq!(a.czxid, m.mzxid);
        let (mut kids, parent) = c.get_children("/m").await.unwrap();
        kids.sort();
        assert_eq!(kids, ["a", "s-0000000002"]);
        assert_eq!(parent.pzxid, a.czxid);
        assert_eq!(c.get_data("/m").await.unwrap().0, b"top");
    });
}

#[test]
fn failed_multi_applies_nothing() {
    // Goal: when one op fails the whole multi is rolled back and the crate reports the failing index and code.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        c.create("/m", b"v0", &persistent()).await.unwrap();
        let before = c.check_stat("/m").await.unwrap().unwrap();
        let mut w = c.new_multi_writer();
        w.add_create("/m/x", b"", &persistent()).unwrap();
        w.add_set_data("/m", b"v1", None).unwrap();
        w.add_set_data("/m/missing", b"", None).unwrap();
        w.add_delete("/m", None).unwrap();
        let err = w.commit().await.unwrap_err();
        assert_eq!(
            err,
            MultiWriteError::OperationFailed {
                index: 2,
                source: zk::Error::NoNode
            }
        );
        assert_eq!(c.check_stat("/m/x").await.unwrap(), None);
        let (data, after) = c.get_data("/m").await.unwrap();
        assert_eq!(data, b"v0");
        assert_eq!(after.version, before.version);
        assert_eq!(after.cversion, before.cversion);
        assert_eq!(after.num_children, 0);

        let mut w = c.new_multi_writer();
        w.add_check_version("/m", 7).unwrap();
        w.add_create("/m/y", b"", &persistent()).unwrap();
        assert_eq!(
            w.commit().await.unwrap_err(),
            MultiWriteError::OperationFailed {
                index: 0,
                source: zk::Error::BadVersion
            }
        );
        assert_eq!(c.check_stat("/m/y").await.unwrap(), None);
    });
}

#[test]
fn failed_multi_uses_zookeepers_per_op_error_format() {
    // Goal: on the wire, ops before the failure read 0, the failing op its code, later ops RuntimeInconsistency.
    common::run(async {
        let node = TestNode::start();
        let mut raw = Raw::connect(node.addr, 4000).await;
        let (_, h, _) = raw
            .call(&Request::Create(OpCode::Create2, create_req("/n", b"", 0)))
            .await;
        assert_eq!(h.err, code::OK);
        let ops = vec![
            MultiOp::Create(OpCode::Create2, create_req("/n/a", b"", 0)),
            MultiOp::Check(CheckVersionRequest {
                path: "/n".into(),
                version: 0,
            }),
            MultiOp::Create(OpCode::Create2, create_req("/n", b"", 0)),
            MultiOp::SetData(SetDataRequest {
                path: "/n".into(),
                data: Some(b"x".to_vec()),
                version: -1,
            }),
            MultiOp::Check(CheckVersionRequest {
                path: "/n".into(),
                version: 0,
            }),
        ];
        let (_, h, body) = raw.call(&Request::Multi(ops)).await;
        assert_eq!(
            h.err,
            code::OK,
            "a failed multi still has err 0 in its header"
        );
        assert_eq!(
            common::decode(OpCode::Multi, &body),
            Response::Multi(vec![
                MultiResult::Error(code::OK),
                MultiResult::Error(code::OK),
                MultiResult::Error(code::NODE_EXISTS),
                MultiResult::Error(code::RUNTIME_INCONSISTENCY),
                MultiResult::Error(code::RUNTIME_INCONSISTENCY),
            ])
        );
        let (_, h, body) = raw
            .call(&Request::GetChildren2(common::path_watch("/n", false)))
            .await;
        assert_eq!(h.err, code::OK);
        let Response::Children2(kids, st) = common::decode(OpCode::GetChildren2, &body) else {
            panic!("getChildren2 reply");
        };
        assert!(kids.is_empty());
        assert_eq!((st.version, st.cversion), (0, 0));
        // A successful raw multi answers create and create2 alike: path only (ZooKeeper 3.8).
        let ops = vec![
            MultiOp::Create(OpCode::Create2, create_req("/n/b", b"", 0)),
            MultiOp::Create(OpCode::Create, create_req("/n/c", b"", 0)),
        ];
        let (_, h, body) = raw.call(&Request::Multi(ops)).await;
        assert_eq!(h.err, code::OK);
        let Response::Multi(results) = common::decode(OpCode::Multi, &body) else {
            panic!("multi reply");
        };
        assert_eq!(
            results,
            [
                MultiResult::Create("/n/b".into()),
                MultiResult::Create("/n/c".into())
            ]
        );
    });
}

#[test]
fn multi_read_reports_per_op_results() {
    // Goal: multiRead returns data, children, and a per-op NoNode without failing the rest.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        c.create("/r", b"root", &persistent()).await.unwrap();
        c.create("/r/k1", b"", &persistent()).await.unwrap();
        c.create("/r/k2", b"", &persistent()).await.unwrap();
        let mut reader = c.new_multi_reader();
        reader.add_get_data("/r").unwrap();
        reader.add_get_children("/r").unwrap();
        reader.add_get_data("/absent").unwrap();
        reader.add_get_children("/absent").unwrap();
        let results = reader.commit().await.unwrap();
        assert_eq!(results.len(), 4);
        let MultiReadResult::Data { data, stat } = &results[0] else {
            panic!("data result: {results:?}");
        };
        assert_eq!(data, b"root");
        assert_eq!(stat.num_children, 2);
        let MultiReadResult::Children { children } = &results[1] else {
            panic!("children result: {results:?}");
        };
        let mut children = children.clone();
        children.sort();
        assert_eq!(children, ["k1", "k2"]);
        for r in &results[2..] {
            assert!(
                matches!(
                    r,
                    MultiReadResult::Error {
                        err: zk::Error::NoNode
                    }
                ),
                "{r:?}"
            );
        }
    });
}

#[test]
fn multi_honours_acls_per_op() {
    // Goal: an op without permission fails the multi with NoAuth and nothing is applied.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        let ro = [zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone())];
        c.create(
            "/locked",
            b"",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&ro)),
        )
        .await
        .unwrap();
        let mut w = c.new_multi_writer();
        w.add_create("/free", b"", &persistent()).unwrap();
        w.add_set_data("/locked", b"x", None).unwrap();
        assert_eq!(
            w.commit().await.unwrap_err(),
            MultiWriteError::OperationFailed {
                index: 1,
                source: zk::Error::NoAuth
            }
        );
        assert_eq!(c.check_stat("/free").await.unwrap(), None);
    });
}
