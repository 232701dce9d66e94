//! One client connection: the handshake, a reader that decodes requests and
//! submits writes at once (so they batch and pipeline), and a responder that
//! answers strictly in request order. Reads wait behind the session's earlier
//! writes, so a client always sees its own writes. Watch events share the
//! responder's socket and are flushed before any later reply.
//!
//! Tenancy: the reader decides the connection's scope (at connect, `addauth`,
//! or its first request; [`crate::tenancy::bind`]), takes a token of its
//! tenant's request rate, and translates every path into the namespace before
//! anything runs; the responder translates created paths back out.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use corral_auth::{AuthOutcome, Principal};
use corral_proto::opcode::xid;
use corral_proto::{
    ConnectRequest, ConnectResponse, DecodeError, ErrorCode, Reader, Record, ReplyHeader, Request,
    RequestHeader, Writer,
};
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, oneshot};

use crate::apply::{reply_frame, Committed};
use crate::commit::{Replicator, WriteOp, WriteRequest};
use crate::read::{set_watches, watches_op, ReadCtx};
use crate::state::{ConnHandle, Outbound, Shared};
use crate::tenancy::audit::{self as audit_log, WriteAudit};
use crate::tenancy::bind;
use crate::tenancy::{translate, Scope};
use crate::watch::ConnId;
use corral_proto::OpCode;
use corral_tenant::{AuditOp, AuditResult};

/// Per-connection read buffer: pipelined requests arrive many to a read.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Work queued to the responder, in request order.
enum Item {
    Frame(Vec<u8>),
    Read {
        xid: i32,
        req: Request,
        principals: Arc<Vec<Principal>>,
        scope: Scope,
        at: Instant,
    },
    Write {
        rx: oneshot::Receiver<Committed>,
        close_after: bool,
        at: Instant,
        /// The opcode, for translating created paths back out of `scope`.
        op: OpCode,
        scope: Scope,
        audit: Option<WriteAudit>,
    },
    /// `sync`: answered like a read once the node caught up.
    Sync {
        xid: i32,
        req: Request,
        rx: oneshot::Receiver<bool>,
        scope: Scope,
        at: Instant,
    },
    SetWatches {
        xid: i32,
        sw: corral_proto::request::SetWatches,
        scope: Scope,
        principals: Arc<Vec<Principal>>,
    },
    Watches {
        xid: i32,
        path: String,
        wtype: i32,
        remove: bool,
    },
    /// Reply, then close (auth failure).
    FrameThenClose(Vec<u8>),
}

/// Why a connection ended, for the log line.
#[derive(Debug)]
enum End {
    PeerClosed,
    Io(std::io::Error),
    Malformed(DecodeError),
    Expired,
    Closed,
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Vec<u8>, End> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(End::PeerClosed),
        Err(e) => return Err(End::Io(e)),
    }
    let n = corral_proto::frame::check_len(len, max).map_err(End::Malformed)?;
    let mut body = vec![0u8; n];
    r.read_exact(&mut body).await.map_err(End::Io)?;
    Ok(body)
}

fn ping_frame(zxid: i64) -> Vec<u8> {
    reply_frame(xid::PING, zxid, 0, None)
}

/// Serves one accepted socket until it closes.
pub async fn serve<S>(shared: Arc<Shared>, repl: Arc<dyn Replicator>, stream: S, remote: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_with(shared, repl, stream, remote, Vec::new()).await
}

/// As [`serve`], for a connection whose transport already proved identities (the
/// `x509` principal of a TLS client certificate): the session gets them after its
/// `ip` principal.
pub async fn serve_with<S>(
    shared: Arc<Shared>,
    repl: Arc<dyn Replicator>,
    stream: S,
    remote: SocketAddr,
    transport_principals: Vec<Principal>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_with_identity(shared, repl, stream, remote, transport_principals, None).await
}

/// As [`serve_with`], with the whole identity of the client certificate, so
/// tenant bindings can match its SAN URIs, DNS names, emails and CN as well as
/// its subject DN (without it, only the `x509` principal's DN is known).
pub async fn serve_with_identity<S>(
    shared: Arc<Shared>,
    repl: Arc<dyn Replicator>,
    stream: S,
    remote: SocketAddr,
    transport_principals: Vec<Principal>,
    cert: Option<corral_auth::CertIdentity>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    // Pipelined requests are small: one read takes many of them, instead of
    // two reads (length, body) per request. A body larger than the buffer is
    // read straight into its own allocation.
    let mut rd = BufReader::with_capacity(READ_BUFFER_BYTES, rd);
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let mut first = [0u8; 4];
    if rd.read_exact(&mut first).await.is_err() {
        return;
    }
    if let Some(word) = corral_proto::frame::four_letter_word(first) {
        let text = crate::fourlw::answer(&shared, word);
        let _ = wr.write_all(text.as_bytes()).await;
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
        return;
    }
    let body = match corral_proto::frame::check_len(first, shared.opts.max_frame_bytes) {
        Ok(n) => {
            let mut b = vec![0u8; n];
            if rd.read_exact(&mut b).await.is_err() {
                return;
            }
            b
        }
        Err(e) => {
            shared
                .stats
                .malformed_frames
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %remote, reason = %e, "closing connection: bad first frame");
            return;
        }
    };
    let req = match ConnectRequest::from_bytes(&body) {
        Ok(r) => r,
        Err(e) => {
            shared
                .stats
                .malformed_frames
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %remote, reason = %e, "closing connection: malformed ConnectRequest");
            return;
        }
    };
    if req.last_zxid_seen > shared.last_zxid() {
        // The client has seen state this server does not have yet (it comes
        // from a fresher server, say a voter, and this one lags): serving it
        // would take its view back in time. ZooKeeper closes, and the client
        // tries another server.
        tracing::info!(
            peer = %remote,
            seen = format_args!("{:#x}", req.last_zxid_seen),
            ours = format_args!("{:#x}", shared.last_zxid()),
            "closing connection: the client has seen a newer zxid than this server; it must try another server"
        );
        return;
    }
    let read_only = !shared.is_serving();
    if read_only && !(shared.opts.read_only_mode && req.read_only == Some(true)) {
        // As ZooKeeper does while it has no quorum: close, so the client
        // tries another server (unless it asked for, and we allow, read-only).
        tracing::debug!(peer = %remote, "closing connection: not serving (no leader yet)");
        return;
    }
    let hs = handshake(
        &shared,
        &repl,
        &req,
        remote,
        transport_principals,
        read_only,
    )
    .await;
    let (conn_id, handle, rsp, out_rx) = match hs {
        Ok(x) => x,
        Err(Refusal::Unavailable) => {
            // No answer either way (queue full, leader unreachable): close,
            // and the client retries, here or elsewhere, with its session.
            tracing::debug!(peer = %remote, "closing connection: session could not be checked now");
            return;
        }
        Err(Refusal::Expired) => {
            let rsp = ConnectResponse {
                protocol_version: 0,
                timeout_ms: 0,
                session_id: 0,
                passwd: vec![0; 16],
                read_only: false,
            };
            let _ = wr
                .write_all(&connect_frame(&rsp, req.read_only.is_some()))
                .await;
            let _ = wr.flush().await;
            return;
        }
    };
    let cert = cert.as_ref().map(bind::cert_identity);
    if let Err(r) = bind::at_connect(&shared, &repl, &handle, cert.as_ref()).await {
        bind::refused(&shared, &handle, &r);
        if req.session_id == 0 && !read_only {
            // The session was made for this connection only: close it now
            // rather than let it linger until it expires.
            close_session(&repl, handle.session_id).await;
        }
        cleanup(&shared, conn_id, handle.session_id);
        return;
    }
    if audit_log::enabled(&shared) {
        let r = audit_log::for_conn(&shared, &handle, AuditOp::Connect, AuditResult::Success);
        audit_log::emit(&shared, r);
    }
    if wr
        .write_all(&connect_frame(&rsp, req.read_only.is_some()))
        .await
        .is_err()
        || wr.flush().await.is_err()
    {
        cleanup(&shared, conn_id, handle.session_id);
        return;
    }
    let (items_tx, items_rx) = mpsc::channel(shared.opts.max_outstanding_per_session.max(1));
    let mut responder = tokio::spawn(respond(
        shared.clone(),
        conn_id,
        handle.clone(),
        wr,
        items_rx,
        out_rx,
    ));
    let reader = read_loop(&shared, &repl, &handle, &mut rd, items_tx);
    let end = tokio::select! {
        e = reader => {
            // Let the responder finish what was already asked.
            let _ = (&mut responder).await;
            e
        }
        r = &mut responder => r.unwrap_or(End::Closed),
    };
    match &end {
        End::PeerClosed | End::Closed => {
            tracing::debug!(peer = %remote, session = format_args!("0x{:x}", handle.session_id), "connection closed")
        }
        End::Expired => {
            tracing::info!(peer = %remote, session = format_args!("0x{:x}", handle.session_id), "closing connection of an expired session")
        }
        End::Io(e) => tracing::debug!(peer = %remote, error = %e, "connection I/O error"),
        End::Malformed(e) => {
            shared
                .stats
                .malformed_frames
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %remote, reason = %e, "closing connection: malformed frame")
        }
    }
    cleanup(&shared, conn_id, handle.session_id);
}

fn connect_frame(rsp: &ConnectResponse, with_read_only: bool) -> Vec<u8> {
    let mut w = Writer::framed();
    rsp.write(&mut w);
    let mut f = w.finish_frame();
    if !with_read_only {
        // Pre-3.4 clients do not expect the readOnly byte.
        f.pop();
        let len = (f.len() - 4) as i32;
        f[..4].copy_from_slice(&len.to_be_bytes());
    }
    f
}

fn negotiate_timeout(shared: &Shared, requested: i32) -> i32 {
    let min = shared.opts.min_session_timeout_ms as i32;
    let max = shared.opts.max_session_timeout_ms as i32;
    requested.clamp(min, max.max(min))
}

/// ZooKeeper-style session ids: server id in the top byte, a time-seeded counter below.
fn new_session_id(shared: &Shared) -> i64 {
    static NEXT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    if NEXT.load(Ordering::Relaxed) == 0 {
        let base = ((crate::state::wall_ms() << 24) as u64 >> 8) as i64;
        let seeded = base | ((shared.opts.server_id as i64 & 0xff) << 56);
        let _ = NEXT.compare_exchange(0, seeded, Ordering::Relaxed, Ordering::Relaxed);
    }
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Why a handshake gives no session.
enum Refusal {
    /// The session is gone (or the password is wrong): ZooKeeper's answer,
    /// a ConnectResponse with timeout 0.
    Expired,
    /// The answer is not known now; close without one.
    Unavailable,
}

/// Creates or resumes the session.
async fn handshake(
    shared: &Arc<Shared>,
    repl: &Arc<dyn Replicator>,
    req: &ConnectRequest,
    remote: SocketAddr,
    transport_principals: Vec<Principal>,
    read_only: bool,
) -> Result<
    (
        ConnId,
        Arc<ConnHandle>,
        ConnectResponse,
        mpsc::Receiver<Outbound>,
    ),
    Refusal,
> {
    let timeout_ms = negotiate_timeout(shared, req.timeout_ms);
    let mut principals = corral_auth::connect_principals(remote.ip());
    principals.extend(transport_principals);
    let (session_id, passwd) = if read_only {
        read_only_session(shared, req, timeout_ms).ok_or(Refusal::Expired)?
    } else if req.session_id == 0 {
        let session_id = new_session_id(shared);
        let mut passwd = vec![0u8; 16];
        rand::thread_rng().fill_bytes(&mut passwd);
        let (tx, rx) = oneshot::channel();
        let w = WriteRequest {
            session_id,
            xid: 0,
            op: WriteOp::CreateSession {
                timeout_ms,
                passwd: passwd.clone(),
            },
            principals: Arc::new(principals.clone()),
            reply: Some(tx),
        };
        submit(repl, w).await;
        let c = rx.await.map_err(|_| Refusal::Unavailable)?;
        if c.err != 0 {
            return Err(Refusal::Unavailable);
        }
        if let Ok(mut t) = shared.tracker.lock() {
            t.add(session_id, timeout_ms as u32, shared.now_ms());
        }
        (session_id, passwd)
    } else {
        let ok = {
            let tree = shared.tree.read().map_err(|_| Refusal::Unavailable)?;
            tree.sessions()
                .get(&req.session_id)
                .is_some_and(|s| s.passwd == req.passwd)
        };
        let live = ok
            && repl
                .revalidate(shared, req.session_id, timeout_ms)
                .await
                .map_err(|_| Refusal::Unavailable)?;
        if !live {
            tracing::info!(
                peer = %remote,
                session = format_args!("0x{:x}", req.session_id),
                "refusing reconnect: session expired or wrong password"
            );
            return Err(Refusal::Expired);
        }
        (req.session_id, req.passwd.clone())
    };
    let conn_id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(shared.opts.max_queued_events.max(16));
    let handle = Arc::new(ConnHandle {
        conn_id,
        session_id,
        remote,
        principals: Mutex::new(Arc::new(principals)),
        tx,
        connected_at: Instant::now(),
        packets_received: Default::default(),
        packets_sent: Default::default(),
        last_zxid: Default::default(),
        read_only,
        resumed: req.session_id != 0,
        scope: Default::default(),
        counted_tenant: Default::default(),
    });
    if let Ok(mut conns) = shared.conns.lock() {
        conns.insert(conn_id, handle.clone());
    }
    let old = shared
        .session_conn
        .lock()
        .ok()
        .and_then(|mut m| m.insert(session_id, conn_id));
    if let Some(old) = old.and_then(|c| shared.conn(c)) {
        // The session moved to this connection: the old one goes, as in ZooKeeper.
        let _ = old.tx.try_send(Outbound::Close);
    }
    let rsp = ConnectResponse {
        protocol_version: 0,
        timeout_ms,
        session_id,
        passwd,
        read_only,
    };
    Ok((conn_id, handle, rsp, rx))
}

/// A session for a read-only client: local to this node, as ZooKeeper's
/// read-only server makes them. A client may resume its own local session
/// here; a replicated session cannot be checked without a quorum, so it gets
/// a new one (the client sees session expiry, as with ZooKeeper).
fn read_only_session(
    shared: &Shared,
    req: &ConnectRequest,
    timeout_ms: i32,
) -> Option<(i64, Vec<u8>)> {
    let now = shared.now_ms();
    let mut ro = shared.ro_sessions.lock().ok()?;
    if req.session_id != 0 && ro.get(&req.session_id) == Some(&req.passwd) {
        if let Ok(mut t) = shared.tracker.lock() {
            t.add(req.session_id, timeout_ms as u32, now);
        }
        return Some((req.session_id, req.passwd.clone()));
    }
    if req.session_id != 0 {
        return None;
    }
    let session_id = new_session_id(shared);
    let mut passwd = vec![0u8; 16];
    rand::thread_rng().fill_bytes(&mut passwd);
    ro.insert(session_id, passwd.clone());
    if let Ok(mut t) = shared.tracker.lock() {
        t.add(session_id, timeout_ms as u32, now);
    }
    Some((session_id, passwd))
}

/// Submits a write, waiting (without blocking the runtime) while the queue is full.
pub(crate) async fn submit(repl: &Arc<dyn Replicator>, mut w: WriteRequest) {
    loop {
        match repl.submit(w) {
            Ok(()) => return,
            Err(back) => {
                w = *back;
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    }
}

/// Closes a session this node just created for a refused connection.
async fn close_session(repl: &Arc<dyn Replicator>, session_id: i64) {
    let w = WriteRequest {
        session_id,
        xid: 0,
        op: WriteOp::Client(Request::CloseSession),
        principals: Arc::new(Vec::new()),
        reply: None,
    };
    submit(repl, w).await;
}

fn cleanup(shared: &Shared, conn: ConnId, session_id: i64) {
    let handle = shared.conn(conn);
    if let Some(h) = &handle {
        bind::release(shared, h);
    }
    let read_only = handle.is_some_and(|c| c.read_only);
    if read_only {
        // A local session lives only as long as its connection here.
        if let Ok(mut t) = shared.tracker.lock() {
            t.remove(session_id);
        }
        if let Ok(mut ro) = shared.ro_sessions.lock() {
            ro.remove(&session_id);
        }
    }
    if let Ok(mut w) = shared.watches.lock() {
        w.remove_conn(conn);
    }
    if let Ok(mut c) = shared.conns.lock() {
        c.remove(&conn);
    }
    if let Ok(mut m) = shared.session_conn.lock() {
        if m.get(&session_id) == Some(&conn) {
            m.remove(&session_id);
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    shared: &Arc<Shared>,
    repl: &Arc<dyn Replicator>,
    handle: &Arc<ConnHandle>,
    rd: &mut R,
    items: mpsc::Sender<Item>,
) -> End {
    loop {
        let body = match read_frame(rd, shared.opts.max_frame_bytes).await {
            Ok(b) => b,
            Err(e) => return e,
        };
        let at = Instant::now();
        shared
            .stats
            .packets_received
            .fetch_add(1, Ordering::Relaxed);
        handle.packets_received.fetch_add(1, Ordering::Relaxed);
        let touched = shared
            .tracker
            .lock()
            .map(|mut t| t.touch(handle.session_id, shared.now_ms()))
            .unwrap_or(false);
        if !touched {
            return End::Expired;
        }
        let mut r = Reader::new(&body);
        let hdr = match RequestHeader::read(&mut r) {
            Ok(h) => h,
            Err(e) => return End::Malformed(e),
        };
        let item = match Request::decode(hdr.op, &mut r) {
            Ok(req) => match to_item(shared, repl, handle, hdr.xid, req, at).await {
                Some(i) => i,
                None => continue,
            },
            Err(DecodeError::UnknownOpCode(op)) => {
                tracing::debug!(peer = %handle.remote, op, "unknown opcode");
                Item::Frame(reply_frame(
                    hdr.xid,
                    shared.last_zxid(),
                    ErrorCode::Unimplemented.code(),
                    None,
                ))
            }
            Err(e) => return End::Malformed(e),
        };
        if items.send(item).await.is_err() {
            return End::Closed;
        }
    }
}

async fn to_item(
    shared: &Arc<Shared>,
    repl: &Arc<dyn Replicator>,
    handle: &Arc<ConnHandle>,
    xid: i32,
    req: Request,
    at: Instant,
) -> Option<Item> {
    let err =
        |code: ErrorCode| Item::Frame(reply_frame(xid, shared.last_zxid(), code.code(), None));
    // What needs no scope: keepalive, identity, and leaving.
    match req {
        Request::Ping => return Some(Item::Frame(ping_frame(shared.last_zxid()))),
        Request::Auth(a) => return Some(auth_item(shared, repl, handle, xid, &a).await),
        Request::Sasl(_) => return Some(err(ErrorCode::Unimplemented)),
        _ => {}
    }
    let scope = if matches!(req, Request::CloseSession) {
        handle.scope()
    } else {
        match bind::before_request(shared, repl, handle).await {
            Ok(s) => s,
            Err(r) => {
                bind::refused(shared, handle, &r);
                return Some(Item::FrameThenClose(reply_frame(
                    xid,
                    shared.last_zxid(),
                    r.code.code(),
                    None,
                )));
            }
        }
    };
    let client_req = req;
    let req = match scope.tenant() {
        Some(t) => {
            if !matches!(client_req, Request::CloseSession)
                && !shared.tenancy.take_request_token(&t.name)
            {
                throttled(shared, handle);
                return Some(err(ErrorCode::ThrottledOp));
            }
            match translate::request_in(&t.root, client_req.clone()) {
                Ok(r) => r,
                Err(code) => return Some(err(code)),
            }
        }
        None => client_req.clone(),
    };
    Some(match req {
        Request::SetWatches(sw) | Request::SetWatches2(sw) => Item::SetWatches {
            xid,
            sw,
            scope,
            principals: handle.principals(),
        },
        Request::CheckWatches(c) => Item::Watches {
            xid,
            path: c.path,
            wtype: c.watcher_type,
            remove: false,
        },
        Request::RemoveWatches(c) => Item::Watches {
            xid,
            path: c.path,
            wtype: c.watcher_type,
            remove: true,
        },
        req if handle.read_only && matches!(req, Request::CloseSession) => {
            Item::FrameThenClose(reply_frame(xid, shared.last_zxid(), 0, None))
        }
        req if handle.read_only && (req.is_write() || matches!(req, Request::Sync(_))) => {
            err(ErrorCode::NotReadOnly)
        }
        Request::Sync(path) => Item::Sync {
            xid,
            req: Request::Sync(path),
            rx: repl.sync(),
            scope,
            at,
        },
        req if req.is_write() => {
            let close_after = matches!(req, Request::CloseSession);
            let op = req.opcode();
            let audit = if audit_log::enabled(shared) {
                audit_log::describe_write(&client_req, &req)
            } else {
                None
            };
            let (tx, rx) = oneshot::channel();
            let w = WriteRequest {
                session_id: handle.session_id,
                xid,
                op: WriteOp::Client(req),
                principals: handle.principals(),
                reply: Some(tx),
            };
            if close_after {
                if let Ok(mut t) = shared.tracker.lock() {
                    t.set_closing(handle.session_id);
                }
            }
            submit(repl, w).await;
            Item::Write {
                rx,
                close_after,
                at,
                op,
                scope,
                audit,
            }
        }
        req => Item::Read {
            xid,
            req,
            principals: handle.principals(),
            scope,
            at,
        },
    })
}

fn throttled(shared: &Shared, handle: &ConnHandle) {
    tracing::debug!(peer = %handle.remote, "request throttled by its tenant's rate limit");
    if audit_log::enabled(shared) {
        let r = audit_log::with_code(
            audit_log::for_conn(shared, handle, AuditOp::Throttled, AuditResult::Failure),
            ErrorCode::ThrottledOp.code(),
        );
        audit_log::emit(shared, r);
    }
}

/// ZooKeeper answers auth with the request's own xid (the Java client always
/// sends -4, other clients a normal xid) and zxid 0. A failed auth (or an
/// identity that may not bind) is answered `AuthFailed` and the connection
/// closed.
async fn auth_item(
    shared: &Arc<Shared>,
    repl: &Arc<dyn Replicator>,
    handle: &Arc<ConnHandle>,
    xid: i32,
    a: &corral_proto::request::AuthPacket,
) -> Item {
    let outcome = corral_auth::add_auth(&a.scheme, &a.auth, handle.remote.ip(), &shared.supers);
    let failed = |code: ErrorCode, reason: &str| {
        tracing::info!(peer = %handle.remote, scheme = %a.scheme, reason, "auth failed");
        let mut w = Writer::framed();
        ReplyHeader {
            xid,
            zxid: 0,
            err: code.code(),
        }
        .write(&mut w);
        Item::FrameThenClose(w.finish_frame())
    };
    let audit_auth = |code: ErrorCode| {
        if audit_log::enabled(shared) {
            let r = audit_log::with_code(
                audit_log::for_conn(shared, handle, AuditOp::Auth, AuditResult::Success),
                code.code(),
            );
            audit_log::emit(shared, r);
        }
    };
    match outcome {
        AuthOutcome::Added(ids) => {
            if let Ok(mut p) = handle.principals.lock() {
                let mut v: Vec<Principal> = p.as_ref().clone();
                for id in &ids {
                    if !v.contains(id) {
                        v.push(id.clone());
                    }
                }
                *p = Arc::new(v);
            }
            if let Err(r) = bind::at_auth(shared, repl, handle, &a.scheme, &a.auth, &ids).await {
                // A full tenant says so (QuotaExceeded), so the client can
                // retry later; anything else is the terminal AuthFailed.
                let code = match r.code {
                    ErrorCode::QuotaExceeded => ErrorCode::QuotaExceeded,
                    _ => ErrorCode::AuthFailed,
                };
                audit_auth(code);
                bind::refused(shared, handle, &r);
                return failed(code, &r.reason);
            }
            if crate::tenancy::is_super(&ids) {
                if let Ok(mut w) = shared.watches.lock() {
                    w.set_group(handle.conn_id, None);
                }
            }
            audit_auth(ErrorCode::Ok);
            Item::Frame(reply_frame(xid, 0, 0, None))
        }
        AuthOutcome::Failed => {
            audit_auth(ErrorCode::AuthFailed);
            failed(ErrorCode::AuthFailed, "scheme refused")
        }
    }
}

async fn respond<W: AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    conn: ConnId,
    handle: Arc<ConnHandle>,
    mut wr: BufWriter<W>,
    mut items: mpsc::Receiver<Item>,
    mut events: mpsc::Receiver<Outbound>,
) -> End {
    loop {
        let end = tokio::select! {
            biased;
            ev = events.recv() => match ev {
                Some(Outbound::Frame(f)) => write(&shared, &handle, &mut wr, &f).await,
                Some(Outbound::Close) | None => Some(End::Expired),
            },
            item = items.recv() => match item {
                Some(item) => handle_item(&shared, conn, &handle, &mut wr, &mut events, item).await,
                None => Some(End::PeerClosed),
            },
        };
        if let Some(e) = end {
            let _ = wr.flush().await;
            return e;
        }
        if items.is_empty() && events.is_empty() && wr.flush().await.is_err() {
            return End::Closed;
        }
    }
}

async fn write<W: AsyncWrite + Unpin>(
    shared: &Shared,
    handle: &ConnHandle,
    wr: &mut BufWriter<W>,
    frame: &[u8],
) -> Option<End> {
    shared.stats.packets_sent.fetch_add(1, Ordering::Relaxed);
    handle.packets_sent.fetch_add(1, Ordering::Relaxed);
    wr.write_all(frame).await.err().map(End::Io)
}

/// Writes every event already queued, so they precede the reply that follows.
async fn drain_events<W: AsyncWrite + Unpin>(
    shared: &Shared,
    handle: &ConnHandle,
    wr: &mut BufWriter<W>,
    events: &mut mpsc::Receiver<Outbound>,
) -> Option<End> {
    while let Ok(ev) = events.try_recv() {
        match ev {
            Outbound::Frame(f) => {
                if let Some(e) = write(shared, handle, wr, &f).await {
                    return Some(e);
                }
            }
            Outbound::Close => return Some(End::Expired),
        }
    }
    None
}

/// Writes the first `n` queued events.
async fn drain_n<W: AsyncWrite + Unpin>(
    shared: &Shared,
    handle: &ConnHandle,
    wr: &mut BufWriter<W>,
    events: &mut mpsc::Receiver<Outbound>,
    n: usize,
) -> Option<End> {
    for _ in 0..n {
        match events.try_recv() {
            Ok(Outbound::Frame(f)) => {
                if let Some(e) = write(shared, handle, wr, &f).await {
                    return Some(e);
                }
            }
            Ok(Outbound::Close) => return Some(End::Expired),
            Err(_) => break,
        }
    }
    None
}

async fn handle_item<W: AsyncWrite + Unpin>(
    shared: &Shared,
    conn: ConnId,
    handle: &ConnHandle,
    wr: &mut BufWriter<W>,
    events: &mut mpsc::Receiver<Outbound>,
    item: Item,
) -> Option<End> {
    let ran_read = matches!(item, Item::Read { .. } | Item::Sync { .. });
    let (frame, close, at) = match item {
        Item::Frame(f) => (f, false, None),
        Item::FrameThenClose(f) => (f, true, None),
        Item::Read {
            xid,
            req,
            principals,
            scope,
            at,
        } => {
            let ctx = ReadCtx {
                shared,
                conn,
                session_id: handle.session_id,
                principals: &principals,
                scope: &scope,
            };
            let mut seen = 0;
            let (zxid, r) = ctx.run_locked(&req, || seen = events.len());
            // Exactly the events for changes this read sees go before its
            // reply; later ones follow it, as ZooKeeper orders them.
            if let Some(e) = drain_n(shared, handle, wr, events, seen).await {
                return Some(e);
            }
            if r == Err(ErrorCode::QuotaExceeded) {
                watch_quota_rejected(shared, handle, &scope, watched_path(&req));
            }
            let f = match r {
                Ok(body) => reply_frame(xid, zxid, 0, Some(&body)),
                Err(e) => reply_frame(xid, zxid, e.code(), None),
            };
            (f, false, Some(at))
        }
        Item::Write {
            rx,
            close_after,
            at,
            op,
            scope,
            audit,
        } => match rx.await {
            Ok(Committed { frame: Some(f), .. }) => {
                if let Some(a) = &audit {
                    audit_log::write_done(shared, handle, a, &f);
                }
                let f = match scope.root() {
                    Some(root) => translate::reply_out(root, op, f),
                    None => f,
                };
                (f, close_after, Some(at))
            }
            _ => return Some(End::Closed),
        },
        Item::Sync {
            xid,
            req,
            rx,
            scope,
            at,
        } => {
            if !rx.await.unwrap_or(false) {
                return Some(End::Closed);
            }
            let ctx = ReadCtx {
                shared,
                conn,
                session_id: handle.session_id,
                principals: &[],
                scope: &scope,
            };
            let mut seen = 0;
            let (zxid, r) = ctx.run_locked(&req, || seen = events.len());
            if let Some(e) = drain_n(shared, handle, wr, events, seen).await {
                return Some(e);
            }
            let f = match r {
                Ok(body) => reply_frame(xid, zxid, 0, Some(&body)),
                Err(e) => reply_frame(xid, zxid, e.code(), None),
            };
            (f, false, Some(at))
        }
        Item::SetWatches {
            xid,
            sw,
            scope,
            principals,
        } => {
            let fired = match set_watches(shared, conn, &sw, &scope, &principals) {
                Ok(f) => f,
                Err(e) => {
                    if e == ErrorCode::QuotaExceeded {
                        watch_quota_rejected(shared, handle, &scope, None);
                    }
                    let f = reply_frame(xid, shared.last_zxid(), e.code(), None);
                    return write(shared, handle, wr, &f).await;
                }
            };
            for mut ev in fired {
                if let Some(root) = scope.root() {
                    match corral_tenant::event_path(root, &ev.path) {
                        Some(p) => ev.path = p,
                        None => continue,
                    }
                }
                let mut w = Writer::framed();
                ReplyHeader {
                    xid: xid::NOTIFICATION,
                    zxid: -1,
                    err: 0,
                }
                .write(&mut w);
                ev.write(&mut w);
                if let Some(e) = write(shared, handle, wr, &w.finish_frame()).await {
                    return Some(e);
                }
            }
            (reply_frame(xid, shared.last_zxid(), 0, None), false, None)
        }
        Item::Watches {
            xid,
            path,
            wtype,
            remove,
        } => {
            let err = match watches_op(shared, conn, &path, wtype, remove) {
                Ok(()) => 0,
                Err(e) => e.code(),
            };
            (reply_frame(xid, shared.last_zxid(), err, None), false, None)
        }
    };
    if !ran_read {
        if let Some(e) = drain_events(shared, handle, wr, events).await {
            return Some(e);
        }
    }
    if let Some(e) = write(shared, handle, wr, &frame).await {
        return Some(e);
    }
    if let Some(at) = at {
        shared.stats.record_latency(at.elapsed().as_micros() as u64);
    }
    if close {
        let _ = wr.flush().await;
        return Some(End::Closed);
    }
    None
}

/// The path a read that can leave a watch is for (in the tree).
fn watched_path(req: &Request) -> Option<&str> {
    match req {
        Request::Exists(p)
        | Request::GetData(p)
        | Request::GetChildren(p)
        | Request::GetChildren2(p) => Some(&p.path),
        Request::AddWatch(a) => Some(&a.path),
        _ => None,
    }
}

/// The watch quota refused a watch on `path` (in the tree; `None` for a
/// setWatches, which names many).
fn watch_quota_rejected(shared: &Shared, handle: &ConnHandle, scope: &Scope, path: Option<&str>) {
    if !audit_log::enabled(shared) {
        return;
    }
    let paths = path.map(|abs| {
        let relative = match scope.root() {
            Some(root) => corral_tenant::to_outer(root, abs).unwrap_or_else(|| abs.to_string()),
            None => abs.to_string(),
        };
        (relative, abs)
    });
    audit_log::quota_rejected(
        shared,
        handle,
        ErrorCode::QuotaExceeded.code(),
        paths.as_ref().map(|(r, a)| (r.as_str(), *a)),
    );
}
