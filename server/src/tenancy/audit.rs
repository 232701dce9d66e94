//! Building audit records on the serving node and handing them to the sink.
//!
//! One record per: connect, refused connection, auth success and failure,
//! tenant bind, create / delete / setData / setACL (each sub-op of a
//! successful multi, or one `multiOperation` record for a failed one), client
//! session close and leader-decided expiry with one record per ephemeral they
//! delete, quota and throttle rejections, and tenant-admin changes. Writes are
//! audited by the node that holds the client's connection, once their result
//! is known, so each event is recorded once in the ensemble.

use corral_proto::{Acl, CreateMode, ErrorCode, MultiOp, MultiResult, OpCode, Reader, Record};
use corral_proto::{ReplyHeader, Request, Response};
use corral_tenant::{
    acl_string, principal_for_audit, znode_type, AuditOp, AuditRecord, AuditResult,
};

use crate::state::{wall_ms, ConnHandle, Shared};

/// Whether records are written at all (skip building them otherwise).
pub fn enabled(shared: &Shared) -> bool {
    shared.tenancy.audit_sink().is_some()
}

/// A record with the node's fields.
pub fn base(shared: &Shared, op: AuditOp, result: AuditResult) -> AuditRecord {
    AuditRecord::new(
        wall_ms().max(0) as u64,
        shared.tenancy.server_name(),
        op,
        result,
    )
}

/// A record about one connection: session, principals, client IP, tenant.
pub fn for_conn(
    shared: &Shared,
    conn: &ConnHandle,
    op: AuditOp,
    result: AuditResult,
) -> AuditRecord {
    let mut r = base(shared, op, result);
    r.session = Some(conn.session_id);
    r.principals = conn.principals().iter().map(principal_for_audit).collect();
    r.client_ip = Some(conn.remote.ip());
    r.tenant = conn.scope().tenant().map(|t| t.name.clone());
    r
}

/// Hands a record to the sink, if any.
pub fn emit(shared: &Shared, record: AuditRecord) {
    if let Some(sink) = shared.tenancy.audit_sink() {
        sink.record(record);
    }
}

/// Sets the error code and a matching result.
pub fn with_code(mut r: AuditRecord, code: i32) -> AuditRecord {
    r.error_code = code;
    r.result = if code == 0 {
        AuditResult::Success
    } else {
        AuditResult::Failure
    };
    r
}

/// What the audit log needs of one write op, taken before it is submitted.
#[derive(Debug, Clone)]
pub struct OpAudit {
    pub op: AuditOp,
    /// The path as the client named it.
    pub relative: String,
    /// The server path it was translated to.
    pub absolute: String,
    pub znode_type: Option<&'static str>,
    pub acl: Option<String>,
}

/// The audited ops of a write request (empty: not audited).
#[derive(Debug, Clone)]
pub struct WriteAudit {
    pub op: OpCode,
    pub multi: bool,
    pub ops: Vec<OpAudit>,
}

fn create_type(flags: i32) -> Option<&'static str> {
    CreateMode::from_flags(flags).map(znode_type)
}

fn op_audit(client: &MultiOp, server: &MultiOp) -> Option<OpAudit> {
    let (op, znode_type, acl): (AuditOp, _, Option<&[Acl]>) = match client {
        MultiOp::Create(_, c) => (AuditOp::Create, create_type(c.flags), Some(&c.acl)),
        MultiOp::Delete(_) => (AuditOp::Delete, None, None),
        MultiOp::SetData(_) => (AuditOp::SetData, None, None),
        MultiOp::Check(_) | MultiOp::GetData(_) | MultiOp::GetChildren(_) => return None,
    };
    Some(OpAudit {
        op,
        relative: client.path().to_string(),
        absolute: server.path().to_string(),
        znode_type,
        acl: acl.map(acl_string),
    })
}

/// The audit description of a client write (`client` as sent, `server` as
/// translated), or `None` for writes that are not audited.
pub fn describe_write(client: &Request, server: &Request) -> Option<WriteAudit> {
    let one = |op, rel: &str, abs: &str, znode_type, acl: Option<&[Acl]>| OpAudit {
        op,
        relative: rel.to_string(),
        absolute: abs.to_string(),
        znode_type,
        acl: acl.map(acl_string),
    };
    let ops = match (client, server) {
        (Request::Create(_, c), Request::Create(_, s)) => vec![one(
            AuditOp::Create,
            &c.path,
            &s.path,
            create_type(c.flags),
            Some(&c.acl),
        )],
        (Request::Delete(c), Request::Delete(s)) => {
            vec![one(AuditOp::Delete, &c.path, &s.path, None, None)]
        }
        (Request::DeleteContainer(c), Request::DeleteContainer(s)) => {
            vec![one(AuditOp::Delete, c, s, None, None)]
        }
        (Request::SetData(c), Request::SetData(s)) => {
            vec![one(AuditOp::SetData, &c.path, &s.path, None, None)]
        }
        (Request::SetAcl(c), Request::SetAcl(s)) => {
            vec![one(AuditOp::SetAcl, &c.path, &s.path, None, Some(&c.acl))]
        }
        (Request::Multi(c), Request::Multi(s)) => {
            let ops = c
                .iter()
                .zip(s.iter())
                .filter_map(|(c, s)| op_audit(c, s))
                .collect();
            return Some(WriteAudit {
                op: OpCode::Multi,
                multi: true,
                ops,
            });
        }
        _ => return None,
    };
    Some(WriteAudit {
        op: client.opcode(),
        multi: false,
        ops,
    })
}

/// Records a write's outcome from its reply frame (in the server's view,
/// before any path translation): one record per op, a quota-rejection record
/// when a quota refused it, and a tenant-admin record when it changed the
/// registry.
pub fn write_done(shared: &Shared, conn: &ConnHandle, w: &WriteAudit, frame: &[u8]) {
    let Some((hdr, body)) = decode_reply(w.op, frame) else {
        return;
    };
    let root = conn.scope().root().map(str::to_string);
    let rel = |abs: &str, fallback: &str| match &root {
        Some(r) => corral_tenant::to_outer(r, abs).unwrap_or_else(|| fallback.to_string()),
        None => abs.to_string(),
    };
    let per_op = per_op_outcomes(w, &hdr, body.as_ref());
    if w.multi {
        let codes: Vec<i32> = per_op.iter().map(|(e, _)| *e).collect();
        // The op that failed, not the RuntimeInconsistency of those after it.
        let first_err = codes
            .iter()
            .copied()
            .find(|e| *e != 0 && *e != ErrorCode::RuntimeInconsistency.code())
            .or_else(|| codes.iter().copied().find(|e| *e != 0))
            .unwrap_or(hdr.err);
        if first_err != 0 {
            let mut r = with_code(
                for_conn(shared, conn, AuditOp::Multi, AuditResult::Failure),
                first_err,
            );
            r.zxid = Some(hdr.zxid);
            emit(shared, r);
            // The quota record names the op the quota refused.
            let failed = codes.iter().position(|e| *e == first_err);
            let paths = failed
                .and_then(|i| w.ops.get(i))
                .map(|op| (op.relative.as_str(), op.absolute.as_str()));
            quota_rejected(shared, conn, first_err, paths);
            return;
        }
    }
    for (op, (code, created)) in w.ops.iter().zip(per_op) {
        let abs = created.clone().unwrap_or_else(|| op.absolute.clone());
        let mut r = with_code(for_conn(shared, conn, op.op, AuditResult::Success), code);
        let relative = match &created {
            Some(p) => rel(p, &op.relative),
            None => op.relative.clone(),
        };
        r.path_relative = Some(relative.clone());
        r.path_absolute = Some(abs.clone());
        r.znode_type = op.znode_type.map(str::to_string);
        r.acl = op.acl.clone();
        r.zxid = Some(hdr.zxid);
        emit(shared, r);
        quota_rejected(shared, conn, code, Some((&relative, &abs)));
        if code == 0 {
            tenant_admin(shared, conn, op.op, &abs, hdr.zxid);
        }
    }
}

/// Each audited op's (error code, created path) in order.
fn per_op_outcomes(
    w: &WriteAudit,
    hdr: &ReplyHeader,
    body: Option<&Response>,
) -> Vec<(i32, Option<String>)> {
    if !w.multi {
        let created = match body {
            Some(Response::Path(p)) | Some(Response::PathStat(p, _)) => Some(p.clone()),
            _ => None,
        };
        return vec![(hdr.err, created)];
    }
    let Some(Response::Multi(results)) = body else {
        return vec![(hdr.err, None); w.ops.len()];
    };
    results
        .iter()
        .filter(|r| !matches!(r, MultiResult::Check))
        .map(|r| match r {
            MultiResult::Error(e) => (*e, None),
            MultiResult::Create(p) | MultiResult::Create2(p, _) => (0, Some(p.clone())),
            _ => (0, None),
        })
        .collect()
}

/// A quota refused a request: one record with the path it was for, as the
/// client named it and in the whole tree.
pub fn quota_rejected(shared: &Shared, conn: &ConnHandle, code: i32, paths: Option<(&str, &str)>) {
    if code != ErrorCode::QuotaExceeded.code() {
        return;
    }
    let mut r = with_code(
        for_conn(shared, conn, AuditOp::QuotaRejected, AuditResult::Failure),
        code,
    );
    if let Some((relative, absolute)) = paths {
        r.path_relative = Some(relative.to_string());
        r.path_absolute = Some(absolute.to_string());
    }
    emit(shared, r);
}

/// A committed write of a registry record is also a tenant-admin event.
fn tenant_admin(shared: &Shared, conn: &ConnHandle, op: AuditOp, abs: &str, zxid: i64) {
    let Some(name) = abs
        .strip_prefix(corral_tenant::REGISTRY_ROOT)
        .and_then(|r| r.strip_prefix('/'))
    else {
        return;
    };
    if name.is_empty() || name.contains('/') {
        return;
    }
    let admin = match op {
        AuditOp::Create => AuditOp::TenantCreate,
        AuditOp::SetData => AuditOp::TenantUpdate,
        AuditOp::Delete => AuditOp::TenantDelete,
        _ => return,
    };
    let mut r = for_conn(shared, conn, admin, AuditResult::Success);
    r.path_absolute = Some(abs.to_string());
    r.path_relative = Some(name.to_string());
    r.zxid = Some(zxid);
    emit(shared, r);
}

fn decode_reply(op: OpCode, frame: &[u8]) -> Option<(ReplyHeader, Option<Response>)> {
    let mut r = Reader::new(frame.get(4..)?);
    let hdr = ReplyHeader::read(&mut r).ok()?;
    if hdr.err != 0 {
        return Some((hdr, None));
    }
    let body = Response::decode(op, &mut r).ok();
    Some((hdr, body))
}
