//! ZooKeeper's own path quotas (`/zookeeper/quota`, as zkCli `setquota`
//! writes them): hard limits refuse in prep, soft ones do not, the longest
//! prefix decides, the stats node reads as ZooKeeper's, tenants cannot touch
//! them, and path and tenant quotas both apply.

mod common;

use common::tenants::{auth_req, digest_tenant, raw_tenant, tenant_node, A};
use common::{create_req, path_watch, Raw, TestNode};
use corral_proto::request::{DeleteRequest, SetDataRequest};
use corral_proto::{MultiOp, MultiResult, OpCode, Request, Response, Stat};
use corral_tenant::zk_quota::{limit_path, stat_path, StatsTrack, QUOTA_ROOT};
use corral_tenant::Quotas;

const QUOTA_EXCEEDED: i32 = -125;
const NO_NODE: i32 = -101;
const NODE_EXISTS: i32 = -110;
const BAD_VERSION: i32 = -103;
const MARSHALLING_ERROR: i32 = -5;

fn create(path: &str, data: &[u8]) -> Request {
    Request::Create(OpCode::Create, create_req(path, data, 0))
}

fn create_null(path: &str) -> Request {
    let mut c = create_req(path, b"", 0);
    c.data = None;
    Request::Create(OpCode::Create, c)
}

fn set_data(path: &str, data: &[u8], version: i32) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: Some(data.to_vec()),
        version,
    })
}

async fn err(raw: &mut Raw, req: &Request) -> i32 {
    raw.call(req).await.1.err
}

async fn get(raw: &mut Raw, path: &str) -> Result<(Vec<u8>, Stat), i32> {
    let (_, h, body) = raw.call(&Request::GetData(path_watch(path, false))).await;
    if h.err != 0 {
        return Err(h.err);
    }
    match common::decode(OpCode::GetData, &body) {
        Response::Data(d, s) => Ok((d.unwrap_or_default(), s)),
        other => panic!("getData answered {other:?}"),
    }
}

async fn stats(raw: &mut Raw, path: &str) -> String {
    let (d, _) = get(raw, &stat_path(path)).await.expect("stats node");
    String::from_utf8(d).expect("utf-8")
}

/// What zkCli 3.7+ `setquota` does (`SetQuotaCommand.createQuota`), minus its
/// client-side checks: `/zookeeper/quota` if missing, the quota path's
/// parents, all with null data, then the
/// limits node with all four keys and the stats node `count=0,bytes=0`; or,
/// when the limits node exists, the merged limits by setData.
async fn setquota(
    raw: &mut Raw,
    path: &str,
    n: Option<i64>,
    b: Option<i64>,
    hn: Option<i64>,
    hb: Option<i64>,
) {
    if get(raw, QUOTA_ROOT).await == Err(NO_NODE) {
        for p in ["/zookeeper", QUOTA_ROOT] {
            let e = err(raw, &create_null(p)).await;
            assert!(e == 0 || e == NODE_EXISTS, "create {p}: {e}");
        }
    }
    let mut q = QUOTA_ROOT.to_string();
    for seg in path.split('/').skip(1) {
        q = format!("{q}/{seg}");
        let e = err(raw, &create_null(&q)).await;
        assert!(e == 0 || e == NODE_EXISTS, "create {q}: {e}");
    }
    match get(raw, &limit_path(path)).await {
        Err(NO_NODE) => {
            let limits = StatsTrack::limits(n, b, hn, hb);
            assert_eq!(
                err(raw, &create(&limit_path(path), &limits.to_bytes())).await,
                0
            );
            assert_eq!(
                err(raw, &create(&stat_path(path), b"count=0,bytes=0")).await,
                0
            );
        }
        Ok((data, _)) => {
            let mut limits = StatsTrack::parse_bytes(&data).expect("limits parse");
            // zkCli overwrites only the limits given (it passes -1 for the others).
            let given = StatsTrack::limits(n, b, hn, hb);
            for (v, set) in [
                (
                    given.count(),
                    StatsTrack::set_count as fn(&mut StatsTrack, i64),
                ),
                (given.bytes(), StatsTrack::set_bytes),
                (given.count_hard_limit(), StatsTrack::set_count_hard_limit),
                (given.byte_hard_limit(), StatsTrack::set_byte_hard_limit),
            ] {
                if v > -1 {
                    set(&mut limits, v);
                }
            }
            assert_eq!(
                err(raw, &set_data(&limit_path(path), &limits.to_bytes(), -1)).await,
                0
            );
        }
        Err(e) => panic!("getData limits: {e}"),
    }
}

/// An open node (no tenancy) and a session on it.
async fn open_node() -> (TestNode, Raw) {
    let node = TestNode::start();
    let raw = Raw::connect(node.addr, 6000).await;
    (node, raw)
}

#[test]
fn hard_count_and_byte_limits_refuse_with_quota_exceeded() {
    // Goal: setquota -N and -B limits admit usage up to the limit and refuse the create or setData past it with QuotaExceeded, before the version check, as ZooKeeper with enforceQuota does.
    common::run(async {
        let (_node, mut c) = open_node().await;
        assert_eq!(err(&mut c, &create("/app", b"")).await, 0);
        setquota(&mut c, "/app", None, None, Some(3), None).await;
        assert_eq!(stats(&mut c, "/app").await, "count=1,bytes=0");
        assert_eq!(
            get(&mut c, &limit_path("/app")).await.expect("limits").0,
            b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3"
        );
        assert_eq!(err(&mut c, &create("/app/a", b"12345")).await, 0);
        assert_eq!(err(&mut c, &create("/app/b", b"")).await, 0);
        assert_eq!(err(&mut c, &create("/app/c", b"")).await, QUOTA_EXCEEDED);
        let ttl = Request::Create(OpCode::CreateContainer, create_req("/app/c", b"", 4));
        assert_eq!(
            err(&mut c, &ttl).await,
            QUOTA_EXCEEDED,
            "every create opcode"
        );
        assert_eq!(stats(&mut c, "/app").await, "count=3,bytes=5");
        setquota(&mut c, "/app", None, None, None, Some(10)).await;
        assert_eq!(
            get(&mut c, &limit_path("/app")).await.expect("limits").0,
            b"count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=3"
        );
        assert_eq!(err(&mut c, &set_data("/app/b", b"12345", -1)).await, 0);
        assert_eq!(
            err(&mut c, &set_data("/app/b", b"123456", -1)).await,
            QUOTA_EXCEEDED
        );
        // ZooKeeper judges the quota before the version.
        assert_eq!(
            err(&mut c, &set_data("/app/b", b"123456", 42)).await,
            QUOTA_EXCEEDED
        );
        assert_eq!(
            err(&mut c, &set_data("/app/b", b"1234", 42)).await,
            BAD_VERSION
        );
        assert_eq!(stats(&mut c, "/app").await, "count=3,bytes=10");
        // A delete makes room again; paths outside the quota never count.
        let del = Request::Delete(DeleteRequest {
            path: "/app/b".into(),
            version: -1,
        });
        assert_eq!(err(&mut c, &del).await, 0);
        assert_eq!(err(&mut c, &create("/app/c", b"12345")).await, 0);
        assert_eq!(err(&mut c, &create("/apple", &[0; 100])).await, 0);
        assert_eq!(stats(&mut c, "/app").await, "count=3,bytes=10");
    });
}

#[test]
fn a_multi_that_would_pass_a_hard_limit_fails_whole() {
    // Goal: a multi whose second create would pass a count hard limit is refused as a whole: nothing applies and the stats stay.
    common::run(async {
        let (_node, mut c) = open_node().await;
        assert_eq!(err(&mut c, &create("/app", b"")).await, 0);
        setquota(&mut c, "/app", None, None, Some(3), None).await;
        assert_eq!(err(&mut c, &create("/app/a", b"")).await, 0);
        let multi = Request::Multi(vec![
            MultiOp::Create(OpCode::Create, create_req("/app/x", b"", 0)),
            MultiOp::Create(OpCode::Create, create_req("/app/y", b"", 0)),
        ]);
        let (_, h, body) = c.call(&multi).await;
        assert_eq!(h.err, 0);
        assert_eq!(
            common::decode(OpCode::Multi, &body),
            Response::Multi(vec![
                MultiResult::Error(0),
                MultiResult::Error(QUOTA_EXCEEDED)
            ])
        );
        assert_eq!(get(&mut c, "/app/x").await.err(), Some(NO_NODE));
        assert_eq!(stats(&mut c, "/app").await, "count=2,bytes=0");
        // One create alone still fits.
        assert_eq!(err(&mut c, &create("/app/x", b"")).await, 0);
    });
}

#[test]
fn pipelined_creates_cannot_pass_a_hard_limit_together() {
    // Goal: creates sent back to back (the later ones may be prepped before the earlier ones apply) never pass a hard limit together.
    common::run(async {
        let (_node, mut c) = open_node().await;
        assert_eq!(err(&mut c, &create("/app", b"")).await, 0);
        setquota(&mut c, "/app", None, None, None, Some(10)).await;
        let mut xids = Vec::new();
        for i in 0..5 {
            xids.push(c.send(&create(&format!("/app/n{i}"), b"1234")).await);
        }
        let mut codes = Vec::new();
        for x in xids {
            codes.push(c.reply_to(x).await.1.err);
        }
        assert_eq!(
            codes,
            [0, 0, QUOTA_EXCEEDED, QUOTA_EXCEEDED, QUOTA_EXCEEDED]
        );
        assert_eq!(stats(&mut c, "/app").await, "count=3,bytes=8");
    });
}

#[test]
fn soft_limits_only_warn() {
    // Goal: setquota -n and -b (soft) never refuse a write, as in ZooKeeper with enforceQuota; the stats show the overrun.
    common::run(async {
        let (_node, mut c) = open_node().await;
        assert_eq!(err(&mut c, &create("/app", b"")).await, 0);
        setquota(&mut c, "/app", Some(2), Some(3), None, None).await;
        for i in 0..4 {
            assert_eq!(
                err(&mut c, &create(&format!("/app/n{i}"), b"abcd")).await,
                0
            );
        }
        assert_eq!(stats(&mut c, "/app").await, "count=5,bytes=16");
    });
}

#[test]
fn nested_quotas_use_the_longest_prefix() {
    // Goal: with quotas on /a and /a/b (written directly; zkCli refuses nesting), a path is judged by its longest quota prefix only.
    common::run(async {
        let (_node, mut c) = open_node().await;
        assert_eq!(err(&mut c, &create("/a", b"")).await, 0);
        assert_eq!(err(&mut c, &create("/a/b", b"")).await, 0);
        setquota(&mut c, "/a", None, None, Some(3), None).await;
        setquota(&mut c, "/a/b", None, None, Some(2), None).await;
        assert_eq!(stats(&mut c, "/a").await, "count=1,bytes=0");
        assert_eq!(stats(&mut c, "/a/b").await, "count=1,bytes=0");
        assert_eq!(err(&mut c, &create("/a/b/x", b"")).await, 0);
        assert_eq!(err(&mut c, &create("/a/b/y", b"")).await, QUOTA_EXCEEDED);
        // /a's limit does not see /a/b's nodes.
        assert_eq!(err(&mut c, &create("/a/x", b"")).await, 0);
        assert_eq!(err(&mut c, &create("/a/y", b"")).await, 0);
        assert_eq!(err(&mut c, &create("/a/z", b"")).await, QUOTA_EXCEEDED);
        assert_eq!(stats(&mut c, "/a").await, "count=3,bytes=0");
        assert_eq!(stats(&mut c, "/a/b").await, "count=2,bytes=0");
    });
}

#[test]
fn stats_node_reads_like_zookeepers_and_survives_a_restart() {
    // Goal: after creates, setData, an ephemeral's session close and deletes, the stats node's data is ZooKeeper's text and its Stat is only that of its create; a restart shows the same bytes.
    common::run(async {
        let (mut node, mut c) = open_node().await;
        assert_eq!(err(&mut c, &create("/app", b"root")).await, 0);
        setquota(&mut c, "/app", Some(100), None, None, None).await;
        let (_, created) = get(&mut c, &stat_path("/app")).await.expect("stats");
        assert_eq!(stats(&mut c, "/app").await, "count=1,bytes=4");
        assert_eq!(err(&mut c, &create("/app/a", b"12")).await, 0);
        assert_eq!(err(&mut c, &set_data("/app/a", b"123456", -1)).await, 0);
        let mut e = Raw::connect(node.addr, 6000).await;
        let eph = Request::Create(OpCode::Create, create_req("/app/e", b"eph", 1));
        assert_eq!(err(&mut e, &eph).await, 0);
        assert_eq!(stats(&mut c, "/app").await, "count=3,bytes=13");
        assert_eq!(err(&mut e, &Request::CloseSession).await, 0);
        assert_eq!(stats(&mut c, "/app").await, "count=2,bytes=10");
        let (data, stat) = get(&mut c, &stat_path("/app")).await.expect("stats");
        assert_eq!(
            (stat.mzxid, stat.version, stat.mtime),
            (created.mzxid, 0, created.mtime),
            "no new mzxid, version or mtime"
        );
        assert_eq!(stat.data_length as usize, data.len());
        // A client's write to the stats node gives way to the tree's count.
        assert_eq!(
            err(
                &mut c,
                &set_data(&stat_path("/app"), b"count=0,bytes=0", -1)
            )
            .await,
            0
        );
        assert_eq!(stats(&mut c, "/app").await, "count=2,bytes=10");
        drop(c);
        node.restart();
        let mut c = Raw::connect(node.addr, 6000).await;
        assert_eq!(stats(&mut c, "/app").await, "count=2,bytes=10");
        let tree = node.shared();
        let tree = tree.tree.read().expect("tree");
        assert_eq!(
            tree.zk_quota_usage("/app"),
            Some(tree.count_zk_quota("/app"))
        );
    });
}

#[test]
fn unreadable_limits_fail_writes_with_marshalling_error() {
    // Goal: a limits text ZooKeeper's parser throws on fails creates under it with MarshallingError, a multi as a whole, as ZooKeeper's prep does.
    common::run(async {
        let (_node, mut c) = open_node().await;
        assert_eq!(err(&mut c, &create("/app", b"")).await, 0);
        setquota(&mut c, "/app", None, None, Some(3), None).await;
        assert_eq!(
            err(&mut c, &set_data(&limit_path("/app"), b"count=x", -1)).await,
            0
        );
        assert_eq!(err(&mut c, &create("/app/a", b"")).await, MARSHALLING_ERROR);
        let multi = Request::Multi(vec![
            MultiOp::Create(OpCode::Create, create_req("/other", b"", 0)),
            MultiOp::Create(OpCode::Create, create_req("/app/a", b"", 0)),
        ]);
        assert_eq!(err(&mut c, &multi).await, MARSHALLING_ERROR);
        assert_eq!(get(&mut c, "/other").await.err(), Some(NO_NODE));
    });
}

#[test]
fn tenants_cannot_reach_path_quotas_and_both_quotas_apply() {
    // Goal: a tenant-bound session cannot read or write /zookeeper/quota (its /zookeeper/quota is inside its namespace and sets no quota), while a quota the operator sets on a path inside the namespace applies together with the tenant's own quotas.
    common::run(async {
        let node = tenant_node(
            vec![digest_tenant(
                A,
                Quotas {
                    max_znodes: Some(12),
                    ..Quotas::default()
                },
            )],
            |_| {},
        )
        .await;
        let mut admin = Raw::connect(node.addr, 6000).await;
        assert_eq!(admin.call(&auth_req("super:test")).await.1.err, 0);
        assert_eq!(
            err(&mut admin, &create("/tenants/team-a/app", b"")).await,
            0
        );
        setquota(&mut admin, "/tenants/team-a/app", None, None, Some(2), None).await;

        let mut a = raw_tenant(&node, A).await;
        assert_eq!(
            get(&mut a, &stat_path("/tenants/team-a/app")).await.err(),
            Some(NO_NODE)
        );
        assert_eq!(get(&mut a, &stat_path("/app")).await.err(), Some(NO_NODE));
        // Its own "setquota" lands in its namespace and limits nothing.
        setquota(&mut a, "/app", None, None, Some(1), None).await;
        {
            let shared = node.shared();
            let tree = shared.tree.read().expect("tree");
            assert!(tree
                .get("/tenants/team-a/zookeeper/quota/app/zookeeper_limits")
                .is_some());
            assert_eq!(tree.zk_quota_roots(), ["/tenants/team-a/app"]);
        }
        // The path quota (count 2 with /app itself) refuses first...
        assert_eq!(err(&mut a, &create("/app/x", b"")).await, 0);
        assert_eq!(err(&mut a, &create("/app/y", b"")).await, QUOTA_EXCEEDED);
        // ...and the tenant quota (12 znodes: /app, /app/x and the tenant's
        // own five quota nodes make 7) elsewhere.
        assert_eq!(
            stats(&mut admin, "/tenants/team-a/app").await,
            "count=2,bytes=0"
        );
        for i in 0..5 {
            assert_eq!(err(&mut a, &create(&format!("/n{i}"), b"")).await, 0);
        }
        assert_eq!(err(&mut a, &create("/n5", b"")).await, QUOTA_EXCEEDED);
        assert_eq!(common::tenants::exact_usage(&node, "team-a").znodes, 12);
    });
}
