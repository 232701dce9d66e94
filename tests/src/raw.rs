//! A raw async ZooKeeper client on top of `corral-proto`.
//!
//! It exposes every opcode and the raw `ReplyHeader.err`, so tests can see exactly
//! what a server answers. Requests may be pipelined: replies must come back in the
//! order the requests were sent (checked), notifications (xid -1) go to an event
//! channel, pings (xid -2), auth (xid -4) and setWatches (xid -8) have their own
//! FIFO queues. A background task pings every `timeout / 3` to keep the session alive.

use corral_proto::jute::Reader;
use corral_proto::opcode::xid;
use corral_proto::records::Record;
use corral_proto::{
    ConnectRequest, ConnectResponse, OpCode, ReplyHeader, Request, RequestHeader, Response,
    WatcherEvent, Writer,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Largest reply frame the client accepts.
const MAX_REPLY_FRAME: usize = 64 << 20;

/// What can go wrong below the ZooKeeper error code level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawError {
    Io(String),
    /// No answer within the bound.
    Timeout(&'static str),
    /// The connection closed (or broke) with requests outstanding.
    ConnectionLoss(String),
    /// The server refused the session (`timeout_ms == 0` in the ConnectResponse).
    SessionRefused(ConnectResponse),
    /// A reply that does not decode, or came out of order.
    Protocol(String),
}

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawError::Io(e) => write!(f, "i/o error: {e}"),
            RawError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            RawError::ConnectionLoss(why) => write!(f, "connection lost: {why}"),
            RawError::SessionRefused(r) => write!(f, "session refused: {r:?}"),
            RawError::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

impl std::error::Error for RawError {}

impl From<std::io::Error> for RawError {
    fn from(e: std::io::Error) -> Self {
        RawError::Io(e.to_string())
    }
}

/// A reply: the header and, when `header.err == 0`, the decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub header: ReplyHeader,
    /// `None` when `header.err != 0` (ZooKeeper sends no body then).
    pub body: Option<Response>,
}

/// How to open a session.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub last_zxid_seen: i64,
    /// `None` omits the readOnly byte (pre-3.4 clients).
    pub read_only: Option<bool>,
    /// Background keep-alive pings every `timeout / 3`.
    pub keepalive: bool,
    /// Bound on connect and on every request.
    pub request_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout_ms: 30_000,
            session_id: 0,
            passwd: vec![0; 16],
            last_zxid_seen: 0,
            read_only: Some(false),
            keepalive: true,
            request_timeout: Duration::from_secs(15),
        }
    }
}

type RawReply = Result<(ReplyHeader, Vec<u8>), RawError>;

struct Waiter {
    xid: i32,
    tx: oneshot::Sender<RawReply>,
}

#[derive(Default)]
struct Pending {
    normal: VecDeque<Waiter>,
    pings: VecDeque<oneshot::Sender<RawReply>>,
    auths: VecDeque<oneshot::Sender<RawReply>>,
    set_watches: VecDeque<oneshot::Sender<RawReply>>,
    closed: Option<String>,
}

impl Pending {
    fn fail_all(&mut self, why: &str) {
        let err = || Err(RawError::ConnectionLoss(why.to_string()));
        for w in self.normal.drain(..) {
            let _ = w.tx.send(err());
        }
        for q in [&mut self.pings, &mut self.auths, &mut self.set_watches] {
            for tx in q.drain(..) {
                let _ = tx.send(err());
            }
        }
        self.closed.get_or_insert_with(|| why.to_string());
    }
}

struct Shared {
    writer: tokio::sync::Mutex<Option<OwnedWriteHalf>>,
    pending: Mutex<Pending>,
    next_xid: AtomicI32,
}

/// A reply not yet received (from [`RawClient::send`]).
pub struct PendingReply {
    op: i32,
    rx: oneshot::Receiver<RawReply>,
    bound: Duration,
}

impl PendingReply {
    /// Waits for the reply (bounded by the client's request timeout).
    pub async fn wait(self) -> Result<Reply, RawError> {
        let op = OpCode::from_code(self.op);
        let (h, body) = self.wait_raw().await?;
        decode_reply(op, h, &body)
    }

    async fn wait_raw_inner(rx: oneshot::Receiver<RawReply>, bound: Duration) -> RawReply {
        match timeout(bound, rx).await {
            Err(_) => Err(RawError::Timeout("reply")),
            Ok(Err(_)) => Err(RawError::ConnectionLoss("client dropped".into())),
            Ok(Ok(r)) => r,
        }
    }

    /// Waits for the raw header and body bytes.
    pub async fn wait_raw(self) -> RawReply {
        Self::wait_raw_inner(self.rx, self.bound).await
    }
}

fn decode_reply(op: Option<OpCode>, header: ReplyHeader, body: &[u8]) -> Result<Reply, RawError> {
    if header.err != 0 {
        return Ok(Reply { header, body: None });
    }
    let Some(op) = op else {
        return Ok(Reply {
            header,
            body: Some(Response::Empty),
        });
    };
    let mut r = Reader::new(body);
    let rsp = Response::decode(op, &mut r)
        .map_err(|e| RawError::Protocol(format!("decode {op:?} reply: {e:?}")))?;
    Ok(Reply {
        header,
        body: Some(rsp),
    })
}

/// A connected session. See the module docs.
pub struct RawClient {
    shared: Arc<Shared>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<WatcherEvent>>,
    reader: JoinHandle<()>,
    pinger: Option<JoinHandle<()>>,
    connect: ConnectResponse,
    addr: SocketAddr,
    request_timeout: Duration,
}

impl RawClient {
    /// Opens a new session with the given requested timeout.
    pub async fn connect(addr: SocketAddr, timeout_ms: i32) -> Result<RawClient, RawError> {
        let opts = ConnectOptions {
            timeout_ms,
            ..ConnectOptions::default()
        };
        RawClient::connect_opts(addr, opts).await
    }

    /// Resumes (or tries to resume) a session; `read_only_byte` says whether the
    /// ConnectRequest carries the optional readOnly byte (false).
    pub async fn connect_with(
        addr: SocketAddr,
        session_id: i64,
        passwd: &[u8],
        read_only_byte: bool,
    ) -> Result<RawClient, RawError> {
        let opts = ConnectOptions {
            session_id,
            passwd: passwd.to_vec(),
            read_only: read_only_byte.then_some(false),
            ..ConnectOptions::default()
        };
        RawClient::connect_opts(addr, opts).await
    }

    pub async fn connect_opts(
        addr: SocketAddr,
        opts: ConnectOptions,
    ) -> Result<RawClient, RawError> {
        let bound = opts.request_timeout;
        let stream = timeout(bound, TcpStream::connect(addr))
            .await
            .map_err(|_| RawError::Timeout("tcp connect"))??;
        stream.set_nodelay(true)?;
        let (mut rd, mut wr) = stream.into_split();
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: opts.last_zxid_seen,
            timeout_ms: opts.timeout_ms,
            session_id: opts.session_id,
            passwd: opts.passwd.clone(),
            read_only: opts.read_only,
        };
        let mut w = Writer::framed();
        req.write(&mut w);
        timeout(bound, wr.write_all(&w.finish_frame()))
            .await
            .map_err(|_| RawError::Timeout("connect write"))??;
        let frame = timeout(bound, read_frame(&mut rd))
            .await
            .map_err(|_| RawError::Timeout("ConnectResponse"))??
            .ok_or_else(|| RawError::ConnectionLoss("closed before ConnectResponse".into()))?;
        let connect = ConnectResponse::from_bytes(&frame)
            .map_err(|e| RawError::Protocol(format!("ConnectResponse: {e:?}")))?;
        if connect.timeout_ms <= 0 {
            return Err(RawError::SessionRefused(connect));
        }
        let shared = Arc::new(Shared {
            writer: tokio::sync::Mutex::new(Some(wr)),
            pending: Mutex::new(Pending::default()),
            next_xid: AtomicI32::new(1),
        });
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(rd, shared.clone(), ev_tx));
        let pinger = opts.keepalive.then(|| {
            let every = Duration::from_millis((connect.timeout_ms as u64 / 3).max(100));
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let (tx, _rx) = oneshot::channel();
                    if send_frame(&shared, xid::PING, OpCode::Ping.code(), &[], Slot::Ping(tx))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            })
        });
        Ok(RawClient {
            shared,
            events: tokio::sync::Mutex::new(ev_rx),
            reader,
            pinger,
            connect,
            addr,
            request_timeout: bound,
        })
    }

    pub fn session_id(&self) -> i64 {
        self.connect.session_id
    }

    pub fn passwd(&self) -> &[u8] {
        &self.connect.passwd
    }

    /// The negotiated session timeout.
    pub fn timeout_ms(&self) -> i32 {
        self.connect.timeout_ms
    }

    pub fn connect_response(&self) -> &ConnectResponse {
        &self.connect
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Why the connection closed, if it did.
    pub fn closed_reason(&self) -> Option<String> {
        self.shared.pending.lock().unwrap().closed.clone()
    }

    /// Sends a request without waiting (pipelining). Auth uses xid -4, setWatches
    /// xid -8, ping xid -2; everything else the next positive xid.
    pub async fn send(&self, req: &Request) -> Result<PendingReply, RawError> {
        let mut w = Writer::new();
        req.encode(&mut w);
        self.send_raw(req.opcode().code(), &w.into_inner()).await
    }

    /// Sends an arbitrary opcode and body (for unknown-opcode tests).
    pub async fn send_raw(&self, op: i32, body: &[u8]) -> Result<PendingReply, RawError> {
        let (tx, rx) = oneshot::channel();
        let (xid, slot) = match OpCode::from_code(op) {
            Some(OpCode::Ping) => (xid::PING, Slot::Ping(tx)),
            Some(OpCode::Auth) => (xid::AUTH, Slot::Auth(tx)),
            Some(OpCode::SetWatches) | Some(OpCode::SetWatches2) => {
                (xid::SET_WATCHES, Slot::SetWatches(tx))
            }
            _ => {
                let x = self.shared.next_xid.fetch_add(1, Ordering::Relaxed);
                (x, Slot::Normal(x, tx))
            }
        };
        send_frame(&self.shared, xid, op, body, slot).await?;
        Ok(PendingReply {
            op,
            rx,
            bound: self.request_timeout,
        })
    }

    /// Sends a request and waits for its reply. A non-zero `err` comes back in the
    /// header with `Response::Empty`.
    pub async fn request(&self, req: Request) -> Result<(ReplyHeader, Response), RawError> {
        let r = self.send(&req).await?.wait().await?;
        Ok((r.header, r.body.unwrap_or(Response::Empty)))
    }

    /// Like [`request`](Self::request) but keeps "no body" distinct.
    pub async fn call(&self, req: &Request) -> Result<Reply, RawError> {
        self.send(req).await?.wait().await
    }

    /// Sends a raw opcode/body and waits for the raw reply bytes.
    pub async fn request_raw(
        &self,
        op: i32,
        body: &[u8],
    ) -> Result<(ReplyHeader, Vec<u8>), RawError> {
        self.send_raw(op, body).await?.wait_raw().await
    }

    /// A ping round trip. Every reply and notification queued before it has been
    /// received once this returns, so it doubles as an event barrier.
    pub async fn ping(&self) -> Result<(), RawError> {
        let (h, _) = self.request_raw(OpCode::Ping.code(), &[]).await?;
        if h.xid != xid::PING {
            return Err(RawError::Protocol(format!(
                "ping answered with xid {}",
                h.xid
            )));
        }
        Ok(())
    }

    /// The next watch notification, waiting at most `wait`.
    pub async fn next_event(&self, wait: Duration) -> Option<WatcherEvent> {
        let mut rx = self.events.lock().await;
        timeout(wait, rx.recv()).await.ok().flatten()
    }

    /// Every notification already received, without waiting.
    pub async fn drain_events(&self) -> Vec<WatcherEvent> {
        let mut rx = self.events.lock().await;
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push(e);
        }
        out
    }

    /// Sends closeSession, waits for its reply, then drops the connection.
    pub async fn close(mut self) -> Result<ReplyHeader, RawError> {
        if let Some(p) = self.pinger.take() {
            p.abort();
        }
        let r = self.request(Request::CloseSession).await;
        self.shutdown().await;
        r.map(|(h, _)| h)
    }

    /// Drops the TCP connection without closing the session (as a network cut would).
    pub async fn disconnect(mut self) {
        if let Some(p) = self.pinger.take() {
            p.abort();
        }
        self.shutdown().await;
    }

    async fn shutdown(&self) {
        if let Some(mut w) = self.shared.writer.lock().await.take() {
            let _ = w.shutdown().await;
        }
        self.reader.abort();
        self.shared
            .pending
            .lock()
            .unwrap()
            .fail_all("closed by client");
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        if let Some(p) = self.pinger.take() {
            p.abort();
        }
        self.reader.abort();
    }
}

enum Slot {
    Normal(i32, oneshot::Sender<RawReply>),
    Ping(oneshot::Sender<RawReply>),
    Auth(oneshot::Sender<RawReply>),
    SetWatches(oneshot::Sender<RawReply>),
}

/// Registers the waiter and writes the frame under the writer lock, so the
/// pending queues are in send order.
async fn send_frame(
    shared: &Shared,
    xid: i32,
    op: i32,
    body: &[u8],
    slot: Slot,
) -> Result<(), RawError> {
    let mut w = Writer::framed();
    RequestHeader { xid, op }.write(&mut w);
    w.write_raw(body);
    let frame = w.finish_frame();
    let mut guard = shared.writer.lock().await;
    let Some(wr) = guard.as_mut() else {
        return Err(RawError::ConnectionLoss("client closed".into()));
    };
    {
        let mut p = shared.pending.lock().unwrap();
        if let Some(why) = &p.closed {
            return Err(RawError::ConnectionLoss(why.clone()));
        }
        match slot {
            Slot::Normal(xid, tx) => p.normal.push_back(Waiter { xid, tx }),
            Slot::Ping(tx) => p.pings.push_back(tx),
            Slot::Auth(tx) => p.auths.push_back(tx),
            Slot::SetWatches(tx) => p.set_watches.push_back(tx),
        }
    }
    if let Err(e) = wr.write_all(&frame).await {
        let why = format!("write: {e}");
        shared.pending.lock().unwrap().fail_all(&why);
        return Err(RawError::ConnectionLoss(why));
    }
    Ok(())
}

async fn read_frame(rd: &mut OwnedReadHalf) -> Result<Option<Vec<u8>>, RawError> {
    let mut len = [0u8; 4];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let n = corral_proto::frame::check_len(len, MAX_REPLY_FRAME)
        .map_err(|e| RawError::Protocol(format!("frame length: {e:?}")))?;
    let mut buf = vec![0u8; n];
    rd.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

async fn read_loop(
    mut rd: OwnedReadHalf,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<WatcherEvent>,
) {
    let why = loop {
        let frame = match read_frame(&mut rd).await {
            Ok(Some(f)) => f,
            Ok(None) => break "server closed the connection".to_string(),
            Err(e) => break e.to_string(),
        };
        let mut r = Reader::new(&frame);
        let header = match ReplyHeader::read(&mut r) {
            Ok(h) => h,
            Err(e) => break format!("bad ReplyHeader: {e:?}"),
        };
        let body = frame[r.position()..].to_vec();
        if header.xid == xid::NOTIFICATION {
            match WatcherEvent::from_bytes(&body) {
                Ok(ev) => {
                    let _ = events.send(ev);
                }
                Err(e) => break format!("bad WatcherEvent: {e:?}"),
            }
            continue;
        }
        let mut p = shared.pending.lock().unwrap();
        let tx = match header.xid {
            xid::PING => p.pings.pop_front(),
            xid::AUTH => p.auths.pop_front(),
            xid::SET_WATCHES => p.set_watches.pop_front(),
            x => match p.normal.pop_front() {
                Some(w) if w.xid == x => Some(w.tx),
                Some(w) => {
                    let msg = format!("reply xid {x} but the oldest outstanding xid is {}", w.xid);
                    let _ = w.tx.send(Err(RawError::Protocol(msg.clone())));
                    p.fail_all(&msg);
                    return;
                }
                None => None,
            },
        };
        match tx {
            Some(tx) => {
                let _ = tx.send(Ok((header, body)));
            }
            None => {
                let msg = format!("unexpected reply with xid {}", header.xid);
                p.fail_all(&msg);
                return;
            }
        }
    };
    shared.pending.lock().unwrap().fail_all(&why);
}
