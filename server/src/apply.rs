//! Applying committed txns on this node: update the tree, fire watches,
//! queue events, then complete the waiting requests. Shared by every role:
//! the standalone commit path calls it now; followers and observers later.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use corral_proto::opcode::perms;
use corral_proto::{ErrorCode, MultiResult, OpCode, ReplyHeader, Response, Writer};
use corral_store::{Applied, DataTree, LogEntry, Outcome, Trigger, TriggerKind, Txn};
use tokio::sync::oneshot;

use crate::state::{Outbound, Shared};
use crate::watch::WatchManager;

/// Who waits for a txn, and how to shape the reply.
pub struct Completion {
    pub xid: i32,
    pub shape: ReplyShape,
    pub reply: oneshot::Sender<Committed>,
}

/// The reply body a client expects for its opcode.
#[derive(Debug, Clone)]
pub enum ReplyShape {
    Op(OpCode),
    /// Opcodes of the sub-ops of a multi.
    Multi(Vec<OpCode>),
    Session,
}

/// The result of a committed write, as sent to its connection.
#[derive(Debug)]
pub struct Committed {
    pub zxid: i64,
    pub err: i32,
    /// An encoded reply frame (absent for createSession, which the handshake answers).
    pub frame: Option<Vec<u8>>,
}

/// Encodes a reply frame; a non-zero `err` carries no body, as in ZooKeeper.
pub fn reply_frame(xid: i32, zxid: i64, err: i32, body: Option<&Response>) -> Vec<u8> {
    let mut w = Writer::framed();
    corral_proto::Record::write(&ReplyHeader { xid, zxid, err }, &mut w);
    if err == 0 {
        if let Some(b) = body {
            b.encode(&mut w);
        }
    }
    w.finish_frame()
}

fn multi_result(op: OpCode, o: &Outcome) -> MultiResult {
    match o {
        Outcome::Created { path, stat } => match op {
            OpCode::Create => MultiResult::Create(path.clone()),
            _ => MultiResult::Create2(path.clone(), *stat),
        },
        Outcome::Deleted => MultiResult::Delete,
        Outcome::SetData { stat } => MultiResult::SetData(*stat),
        Outcome::Checked => MultiResult::Check,
        Outcome::Error(e) => MultiResult::Error(*e),
        other => {
            debug_assert!(false, "unexpected multi outcome {other:?}");
            MultiResult::Error(ErrorCode::SystemError.code())
        }
    }
}

/// Turns an apply outcome into (err, reply body).
pub fn shape_reply(shape: &ReplyShape, outcome: &Outcome) -> (i32, Option<Response>) {
    match (shape, outcome) {
        (_, Outcome::Error(e)) => (*e, None),
        (ReplyShape::Multi(ops), Outcome::Multi(outs)) => {
            let results = ops
                .iter()
                .zip(outs.iter())
                .map(|(op, o)| multi_result(*op, o))
                .collect();
            (0, Some(Response::Multi(results)))
        }
        (ReplyShape::Op(op), Outcome::Created { path, stat }) => match op {
            OpCode::Create => (0, Some(Response::Path(path.clone()))),
            _ => (0, Some(Response::PathStat(path.clone(), *stat))),
        },
        (_, Outcome::SetData { stat }) | (_, Outcome::SetAcl { stat }) => {
            (0, Some(Response::Stat(*stat)))
        }
        _ => (0, Some(Response::Empty)),
    }
}

/// Applies one committed entry and completes its waiter, if this node has one.
pub fn apply_entry(
    shared: &Shared,
    tree: &mut DataTree,
    entry: &LogEntry,
    done: Option<Completion>,
) {
    let doomed = acls_of_deleted(tree, entry);
    let closing_tenant = match entry.txn {
        Txn::CloseSession => tree
            .session_tenant(entry.hdr.session_id)
            .map(str::to_string),
        _ => None,
    };
    let applied: Applied = tree.apply(&entry.hdr, &entry.txn);
    if let Txn::Reconfig { data } = &entry.txn {
        crate::reconfig::applied(shared, data, entry.hdr.zxid);
    }
    shared.stats.txns_committed.fetch_add(1, Ordering::Relaxed);
    if applied.triggers.iter().any(|t| touches_registry(&t.path)) {
        crate::tenancy::registry_changed(shared, tree);
    }
    fire_watches(shared, tree, &applied.triggers, &doomed);
    if let Outcome::SessionClosed { deleted } = &applied.outcome {
        audit_session_end(shared, entry, deleted, closing_tenant, done.is_some());
        on_session_closed(shared, entry.hdr.session_id);
    }
    if let Some(c) = done {
        let frame = match c.shape {
            ReplyShape::Session => None,
            _ => {
                let (err, body) = match (&entry.txn, &applied.outcome) {
                    // reconfig answers with the new configuration, as getData would.
                    (Txn::Reconfig { data }, Outcome::SetData { stat }) => {
                        (0, Some(Response::Data(Some(data.clone()), *stat)))
                    }
                    _ => shape_reply(&c.shape, &applied.outcome),
                };
                Some(reply_frame(c.xid, entry.hdr.zxid, err, body.as_ref()))
            }
        };
        let err = match applied.outcome {
            Outcome::Error(e) => e,
            _ => 0,
        };
        let _ = c.reply.send(Committed {
            zxid: entry.hdr.zxid,
            err,
            frame,
        });
    }
}

fn on_session_closed(shared: &Shared, session_id: i64) {
    if let Ok(mut t) = shared.tracker.lock() {
        t.remove(session_id);
    }
}

/// A record (or the registry root itself) changed: the directory must follow.
fn touches_registry(path: &str) -> bool {
    corral_tenant::is_within(corral_tenant::REGISTRY_ROOT, path)
}

/// Audits a session's end once in the ensemble: a client's close on the node
/// holding its connection (`client_close`), an expiry on the leader that
/// decided it; with one record per ephemeral the close deleted. `tenant` is
/// the session's, as the table had it before the close.
fn audit_session_end(
    shared: &Shared,
    entry: &LogEntry,
    deleted: &[String],
    tenant: Option<String>,
    client_close: bool,
) {
    use crate::tenancy::audit;
    use corral_tenant::{AuditOp, AuditResult};
    let session_id = entry.hdr.session_id;
    let expired = !client_close && shared.tenancy.take_expiring(session_id);
    if !audit::enabled(shared) || !(client_close || expired) {
        return;
    }
    let conn = shared
        .conn_of_session(session_id)
        .and_then(|c| shared.conn(c));
    let record = |op| {
        let mut r = match &conn {
            Some(c) => audit::for_conn(shared, c, op, AuditResult::Success),
            None => audit::base(shared, op, AuditResult::Success),
        };
        r.session = Some(session_id);
        r.tenant = r.tenant.or_else(|| tenant.clone());
        r.zxid = Some(entry.hdr.zxid);
        r
    };
    let op = if expired {
        AuditOp::SessionExpire
    } else {
        AuditOp::SessionClose
    };
    audit::emit(shared, record(op));
    let dir = shared.tenancy.directory();
    for path in deleted {
        let mut r = record(AuditOp::EphemeralDeletion);
        r.path_absolute = Some(path.clone());
        if let Some(t) = dir.owner_of(path) {
            r.path_relative = corral_tenant::to_outer(&t.root, path);
        }
        r.znode_type = Some("ephemeral".into());
        audit::emit(shared, r);
    }
}

/// Closes the connection that holds a closed session (expiry, or a close from another node).
pub fn drop_session_connection(shared: &Shared, session_id: i64) {
    let conn = shared
        .session_conn
        .lock()
        .ok()
        .and_then(|mut m| m.remove(&session_id));
    if let Some(c) = conn.and_then(|c| shared.conn(c)) {
        let _ = c.tx.try_send(Outbound::Close);
    }
}

/// Delivers watch events, each only to connections allowed to READ the node
/// (the fix for CVE-2024-23944 applies to every watch type, as in ZooKeeper 3.9).
fn fire_watches(shared: &Shared, tree: &DataTree, triggers: &[Trigger], doomed: &DoomedAcls) {
    if triggers.is_empty() {
        return;
    }
    let Ok(mut watches) = shared.watches.lock() else {
        return;
    };
    for t in triggers {
        deliver(shared, tree, &mut watches, t, doomed);
    }
}

/// ACLs of the nodes a txn deletes, read before apply, so NodeDeleted events
/// can still be filtered by READ permission.
type DoomedAcls = Vec<(String, Arc<[corral_proto::Acl]>)>;

fn acls_of_deleted(tree: &DataTree, entry: &LogEntry) -> DoomedAcls {
    fn walk(tree: &DataTree, session_id: i64, txn: &Txn, out: &mut DoomedAcls) {
        match txn {
            Txn::Delete { path } => {
                if let Some(n) = tree.get(path) {
                    out.push((path.clone(), n.acl().clone()));
                }
            }
            Txn::CloseSession => {
                for p in tree.ephemerals(session_id) {
                    if let Some(n) = tree.get(&p) {
                        out.push((p.clone(), n.acl().clone()));
                    }
                }
            }
            Txn::Multi(txns) => {
                for t in txns {
                    walk(tree, session_id, t, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(tree, entry.hdr.session_id, &entry.txn, &mut out);
    out
}

fn deliver(
    shared: &Shared,
    tree: &DataTree,
    watches: &mut WatchManager,
    t: &Trigger,
    doomed: &DoomedAcls,
) {
    let deliveries = watches.trigger(t);
    if deliveries.is_empty() {
        return;
    }
    let acl = match t.kind {
        TriggerKind::Deleted => doomed
            .iter()
            .find(|(p, _)| *p == t.path)
            .map(|(_, a)| a.clone()),
        _ => tree.get(&t.path).map(|n| n.acl().clone()),
    };
    let zxid = tree.last_zxid();
    for mut d in deliveries {
        let Some(conn) = shared.conn(d.conn) else {
            continue;
        };
        let principals = conn.principals();
        if let Some(acl) = &acl {
            if !corral_auth::check(acl, perms::READ, &principals) {
                continue;
            }
        }
        // A tenant-bound connection hears only about its namespace, in its
        // own paths; nobody but super hears about the reserved subtree.
        match conn.scope().root() {
            Some(root) => match corral_tenant::event_path(root, &d.event.path) {
                Some(p) => d.event.path = p,
                None => continue,
            },
            None => {
                if crate::tenancy::is_reserved(&d.event.path)
                    && !crate::tenancy::is_super(&principals)
                {
                    continue;
                }
            }
        }
        let mut w = Writer::framed();
        corral_proto::Record::write(
            &ReplyHeader {
                xid: corral_proto::opcode::xid::NOTIFICATION,
                zxid,
                err: 0,
            },
            &mut w,
        );
        corral_proto::Record::write(&d.event, &mut w);
        if conn.tx.try_send(Outbound::Frame(w.finish_frame())).is_err() {
            tracing::warn!(
                peer = %conn.remote,
                session = format_args!("0x{:x}", conn.session_id),
                "watch event queue full; closing the slow connection"
            );
            let _ = conn.tx.try_send(Outbound::Close);
        }
    }
}

/// Shorthand for callers that hold an `Arc<Shared>`.
pub fn apply_batch(shared: &Arc<Shared>, batch: Vec<(LogEntry, Option<Completion>)>) {
    let mut closed = Vec::new();
    {
        let Ok(mut tree) = shared.tree.write() else {
            return;
        };
        for (entry, done) in batch {
            // A client's own closeSession closes its connection after the reply;
            // expiry (no waiter here) closes it now.
            if matches!(entry.txn, corral_store::Txn::CloseSession) && done.is_none() {
                closed.push(entry.hdr.session_id);
            }
            apply_entry(shared, &mut tree, &entry, done);
        }
    }
    for s in closed {
        drop_session_connection(shared, s);
    }
}
