//! The audit log, read back from the JSON-lines file: one record per audited
//! event, with the session, tenant, principals, client IP, both paths, znode
//! type, ACL, zxid, result and error code.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::tenants::{auth_req, digest_tenant, raw_tenant, super_client, tenant_node, A, B};
use common::{create_req, path_watch, Raw, TestNode};
use corral_proto::request::{DeleteRequest, SetAclRequest, SetDataRequest};
use corral_proto::{Acl, MultiOp, OpCode, Request};
use corral_tenant::{AuditOp, AuditRecord, AuditResult, FileSinkConfig, Quotas, Tenant};

fn records(dir: &Path) -> Vec<AuditRecord> {
    let text = std::fs::read_to_string(dir.join("audit.log")).unwrap_or_default();
    text.lines()
        .map(|l| AuditRecord::from_json_line(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// Waits until `pred` holds for the records written so far, and returns them.
async fn wait_for(
    dir: &Path,
    what: &str,
    pred: impl Fn(&[AuditRecord]) -> bool,
) -> Vec<AuditRecord> {
    let start = std::time::Instant::now();
    loop {
        let r = records(dir);
        if pred(&r) {
            return r;
        }
        assert!(
            start.elapsed() < common::STEP,
            "audit log never showed {what}; it has:\n{}",
            r.iter()
                .map(|r| r.to_json_line())
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn of(rs: &[AuditRecord], op: AuditOp) -> Vec<&AuditRecord> {
    rs.iter().filter(|r| r.operation == op).collect()
}

fn one<'a>(rs: &'a [AuditRecord], op: AuditOp, abs: &str) -> &'a AuditRecord {
    let hits: Vec<&AuditRecord> = rs
        .iter()
        .filter(|r| r.operation == op && r.path_absolute.as_deref() == Some(abs))
        .collect();
    assert_eq!(hits.len(), 1, "{op:?} {abs}: {hits:?}");
    hits[0]
}

async fn audited_node(dir: PathBuf) -> TestNode {
    let a = digest_tenant(
        A,
        Quotas {
            max_znodes: Some(3),
            ..Quotas::default()
        },
    );
    let b = digest_tenant(
        B,
        Quotas {
            max_request_rate: Some(1),
            ..Quotas::default()
        },
    );
    tenant_node(vec![a, b], move |o| {
        o.tenancy.audit = Some(FileSinkConfig::new(dir));
    })
    .await
}

#[test]
fn connections_auth_and_binds_are_audited() {
    // Goal: a connect, a successful auth that binds, a failed auth that
    // refuses the connection, and an unbound request under the refuse policy
    // each leave exactly their records, with session, tenant, IP and principals.
    common::run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = audited_node(dir.path().to_path_buf()).await;
        let alice = raw_tenant(&node, A).await;
        let sid = alice.session.session_id;
        let mut wrong = Raw::connect(node.addr, 6000).await;
        let (_, h, _) = wrong.call(&auth_req("alice:nope")).await;
        assert_eq!(h.err, -115);
        let wrong_sid = wrong.session.session_id;
        let mut unbound = Raw::connect(node.addr, 6000).await;
        let (_, h, _) = unbound.call(&Request::Exists(path_watch("/", false))).await;
        assert_eq!(h.err, -124);
        let unbound_sid = unbound.session.session_id;
        let rs = wait_for(dir.path(), "three refusals' records", |rs| {
            of(rs, AuditOp::ConnectionRefused).len() >= 2
        })
        .await;
        let for_session = |op: AuditOp, s: i64| -> Vec<&AuditRecord> {
            rs.iter()
                .filter(|r| r.operation == op && r.session == Some(s))
                .collect()
        };
        let connect = for_session(AuditOp::Connect, sid);
        assert_eq!(connect.len(), 1);
        assert_eq!(connect[0].client_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(connect[0].principals, vec!["ip:127.0.0.1".to_string()]);
        let auth = for_session(AuditOp::Auth, sid);
        assert_eq!(auth.len(), 1);
        assert_eq!(auth[0].result, AuditResult::Success);
        assert!(
            auth[0].principals.contains(&"digest:alice".to_string()),
            "{auth:?}"
        );
        let bind = for_session(AuditOp::TenantBind, sid);
        assert_eq!(bind.len(), 1);
        assert_eq!(bind[0].tenant.as_deref(), Some("team-a"));
        assert_eq!(bind[0].path_absolute.as_deref(), Some("/tenants/team-a"));
        let failed = for_session(AuditOp::Auth, wrong_sid);
        assert_eq!(failed.len(), 1);
        assert_eq!(
            (failed[0].result, failed[0].error_code),
            (AuditResult::Failure, -115)
        );
        assert_eq!(for_session(AuditOp::ConnectionRefused, wrong_sid).len(), 1);
        assert!(for_session(AuditOp::TenantBind, wrong_sid).is_empty());
        let refused = for_session(AuditOp::ConnectionRefused, unbound_sid);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].error_code, -124);
        // No record repeats the digest hash of a password.
        for r in &rs {
            for p in &r.principals {
                assert!(!p.contains('='), "{p}");
            }
        }
        drop(alice);
    });
}

#[test]
fn writes_quota_and_throttle_rejections_are_audited() {
    // Goal: create (sequential too), setData, setACL and delete each leave one
    // record with relative and absolute paths, type, ACL and zxid; a
    // successful multi one record per op, a failed multi one multiOperation
    // record; a quota rejection and a throttled request one record each.
    common::run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = audited_node(dir.path().to_path_buf()).await;
        let mut a = raw_tenant(&node, A).await;
        let sid = a.session.session_id;
        let ok = |h: corral_proto::ReplyHeader| assert_eq!(h.err, 0);
        ok(
            a.call(&Request::Create(OpCode::Create, create_req("/x", b"1", 0)))
                .await
                .1,
        );
        ok(
            a.call(&Request::Create(OpCode::Create, create_req("/s-", b"", 2)))
                .await
                .1,
        );
        ok(a.call(&Request::SetData(SetDataRequest {
            path: "/x".into(),
            data: Some(b"2".to_vec()),
            version: -1,
        }))
        .await
        .1);
        ok(a.call(&Request::SetAcl(SetAclRequest {
            path: "/x".into(),
            acl: vec![Acl::new(31, "world", "anyone")],
            version: -1,
        }))
        .await
        .1);
        ok(
            a.call(&Request::Create(OpCode::Create, create_req("/y", b"", 0)))
                .await
                .1,
        );
        let (_, h, _) = a
            .call(&Request::Create(
                OpCode::Create,
                create_req("/over", b"", 0),
            ))
            .await;
        assert_eq!(h.err, -125);
        ok(a.call(&Request::Delete(DeleteRequest {
            path: "/y".into(),
            version: -1,
        }))
        .await
        .1);
        ok(a.call(&Request::Multi(vec![
            MultiOp::Create(OpCode::Create, create_req("/m", b"", 0)),
            MultiOp::Delete(DeleteRequest {
                path: "/m".into(),
                version: -1,
            }),
        ]))
        .await
        .1);
        ok(a.call(&Request::Multi(vec![
            MultiOp::Create(OpCode::Create, create_req("/n", b"", 0)),
            MultiOp::Delete(DeleteRequest {
                path: "/missing".into(),
                version: -1,
            }),
        ]))
        .await
        .1);
        // One znode slot is left: the second create of this multi is over.
        ok(a.call(&Request::Multi(vec![
            MultiOp::Create(OpCode::Create, create_req("/q1", b"", 0)),
            MultiOp::Create(OpCode::Create, create_req("/q2", b"", 0)),
        ]))
        .await
        .1);
        let mut b = raw_tenant(&node, B).await;
        let mut codes = Vec::new();
        for _ in 0..3 {
            codes.push(b.call(&Request::Exists(path_watch("/", false))).await.1.err);
        }
        let throttled = codes.iter().filter(|c| **c == -127).count();
        assert!(throttled >= 1, "{codes:?}");
        let rs = wait_for(dir.path(), "the failed multi", |rs| {
            of(rs, AuditOp::Multi).len() >= 2 && of(rs, AuditOp::Throttled).len() >= throttled
        })
        .await;
        let c = one(&rs, AuditOp::Create, "/tenants/team-a/x");
        assert_eq!(c.session, Some(sid));
        assert_eq!(c.tenant.as_deref(), Some("team-a"));
        assert_eq!(c.path_relative.as_deref(), Some("/x"));
        assert_eq!(c.znode_type.as_deref(), Some("persistent"));
        assert_eq!(c.acl.as_deref(), Some("world:anyone:cdrwa"));
        assert!(c.zxid.is_some_and(|z| z > 0));
        assert_eq!((c.result, c.error_code), (AuditResult::Success, 0));
        let seq = one(&rs, AuditOp::Create, "/tenants/team-a/s-0000000001");
        assert_eq!(seq.path_relative.as_deref(), Some("/s-0000000001"));
        assert_eq!(seq.znode_type.as_deref(), Some("persistent_sequential"));
        one(&rs, AuditOp::SetData, "/tenants/team-a/x");
        let acl = one(&rs, AuditOp::SetAcl, "/tenants/team-a/x");
        assert_eq!(acl.acl.as_deref(), Some("world:anyone:cdrwa"));
        let over = one(&rs, AuditOp::Create, "/tenants/team-a/over");
        assert_eq!((over.result, over.error_code), (AuditResult::Failure, -125));
        let quota = of(&rs, AuditOp::QuotaRejected);
        assert_eq!(quota.len(), 2, "{quota:?}");
        assert_eq!(
            quota[0].path_absolute.as_deref(),
            Some("/tenants/team-a/over")
        );
        assert_eq!(quota[0].path_relative.as_deref(), Some("/over"));
        // In a multi, the record names the op the quota refused.
        assert_eq!(
            quota[1].path_absolute.as_deref(),
            Some("/tenants/team-a/q2")
        );
        assert_eq!(quota[1].path_relative.as_deref(), Some("/q2"));
        assert_eq!(quota[1].error_code, -125);
        one(&rs, AuditOp::Delete, "/tenants/team-a/y");
        one(&rs, AuditOp::Create, "/tenants/team-a/m");
        one(&rs, AuditOp::Delete, "/tenants/team-a/m");
        assert!(rs
            .iter()
            .all(|r| r.path_absolute.as_deref() != Some("/tenants/team-a/n")));
        let multi = of(&rs, AuditOp::Multi);
        assert_eq!(multi.len(), 2);
        assert_eq!(
            (multi[0].result, multi[0].error_code),
            (AuditResult::Failure, -101)
        );
        assert_eq!(
            (multi[1].result, multi[1].error_code),
            (AuditResult::Failure, -125)
        );
        let t = of(&rs, AuditOp::Throttled);
        assert_eq!(t.len(), throttled);
        assert_eq!(t[0].tenant.as_deref(), Some("team-b"));
        assert_eq!(t[0].error_code, -127);
    });
}

#[test]
fn session_ends_and_tenant_admin_changes_are_audited() {
    // Goal: a client's close and a leader-decided expiry each leave one
    // record plus one per ephemeral they delete (both paths given), and
    // creating, updating and deleting a tenant record leaves one admin record each.
    common::run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = audited_node(dir.path().to_path_buf()).await;
        let mut a = raw_tenant(&node, A).await;
        let a_sid = a.session.session_id;
        assert_eq!(
            a.call(&Request::Create(OpCode::Create, create_req("/e", b"", 1)))
                .await
                .1
                .err,
            0
        );
        assert_eq!(a.call(&Request::CloseSession).await.1.err, 0);
        // Bob's session expires: a raw client sends no pings.
        let mut b = Raw::connect(node.addr, 400).await;
        let b_sid = b.session.session_id;
        assert_eq!(b.call(&auth_req("bob:pb")).await.1.err, 0);
        assert_eq!(
            b.call(&Request::Create(OpCode::Create, create_req("/eph", b"", 1)))
                .await
                .1
                .err,
            0
        );
        let sup = super_client(&node).await;
        let record = "/zookeeper/corral/tenants/team-c";
        let c = Tenant::new("team-c");
        let acl = zookeeper_client::CreateMode::Persistent
            .with_acls(zookeeper_client::Acls::anyone_all());
        sup.create(record, &c.to_json(), &acl).await.unwrap();
        let mut c2 = c.clone();
        c2.quotas.max_znodes = Some(9);
        sup.set_data(record, &c2.to_json(), None).await.unwrap();
        sup.delete(record, None).await.unwrap();
        let rs = wait_for(dir.path(), "the expiry", |rs| {
            !of(rs, AuditOp::SessionExpire).is_empty() && !of(rs, AuditOp::TenantDelete).is_empty()
        })
        .await;
        let close = of(&rs, AuditOp::SessionClose);
        assert_eq!(close.len(), 1);
        assert_eq!(close[0].session, Some(a_sid));
        assert_eq!(close[0].tenant.as_deref(), Some("team-a"));
        let gone = one(&rs, AuditOp::EphemeralDeletion, "/tenants/team-a/e");
        assert_eq!(gone.path_relative.as_deref(), Some("/e"));
        assert_eq!(gone.session, Some(a_sid));
        let exp = of(&rs, AuditOp::SessionExpire);
        assert_eq!(exp.len(), 1);
        assert_eq!(exp[0].session, Some(b_sid));
        assert_eq!(exp[0].tenant.as_deref(), Some("team-b"));
        let gone = one(&rs, AuditOp::EphemeralDeletion, "/tenants/team-b/eph");
        assert_eq!(gone.path_relative.as_deref(), Some("/eph"));
        for op in [
            AuditOp::TenantCreate,
            AuditOp::TenantUpdate,
            AuditOp::TenantDelete,
        ] {
            let r = one(&rs, op, record);
            assert_eq!(r.path_relative.as_deref(), Some("team-c"));
            assert!(r.principals.contains(&"super:".to_string()), "{r:?}");
        }
        drop(b);
    });
}
