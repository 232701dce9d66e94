//! Shared harness for the integration tests: an in-process corral node on
//! loopback (own thread, own tokio runtime, own tempdir) that can be stopped
//! and restarted on the same port and data dir, a `zookeeper-client`
//! connector, and a raw-socket client for what that crate cannot send.

#![allow(dead_code)]

pub mod tenants;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use corral_proto::{
    ConnectRequest, ConnectResponse, Reader, Record, ReplyHeader, Request, RequestHeader,
    WatcherEvent, Writer,
};
use corral_server::state::Shared;
use corral_server::{Node, ServerOptions};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zookeeper_client as zk;

/// Upper bound for a whole test body.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(45);
/// Upper bound for one wait inside a test.
pub const STEP: Duration = Duration::from_secs(10);

/// The super user's ZooKeeper-style digest (`super:test`).
pub const SUPER_DIGEST: &str = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";

/// Runs a test body on a fresh multi-thread runtime, bounded by [`TEST_TIMEOUT`].
pub fn run<F: Future<Output = ()>>(body: F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("test runtime");
    rt.block_on(async {
        tokio::time::timeout(TEST_TIMEOUT, body)
            .await
            .expect("test timed out");
    });
    rt.shutdown_timeout(Duration::from_secs(2));
}

/// Awaits `f`, failing the test if it takes longer than [`STEP`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// Polls `check` every 20 ms until it returns true or `limit` passes.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        if start.elapsed() > limit {
            panic!("condition not reached within {limit:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Options tuned for fast tests: 100 ms ticks, sessions of 0.4–10 s.
pub fn fast_options(data_dir: PathBuf) -> ServerOptions {
    let mut o = ServerOptions::standalone(data_dir, "127.0.0.1:0".parse().unwrap());
    o.tick_time_ms = 100;
    o.min_session_timeout_ms = 400;
    o.max_session_timeout_ms = 10_000;
    o
}

/// One in-process node. Dropping it stops the node.
pub struct TestNode {
    pub addr: SocketAddr,
    pub opts: ServerOptions,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    shared: Option<Arc<Shared>>,
}

impl TestNode {
    /// Starts a node with [`fast_options`] in a fresh tempdir.
    pub fn start() -> TestNode {
        Self::start_with(|_| {})
    }

    /// Starts a node with [`fast_options`] changed by `tweak`.
    pub fn start_with(tweak: impl FnOnce(&mut ServerOptions)) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = fast_options(dir.path().join("data"));
        tweak(&mut opts);
        let mut node = TestNode {
            addr: opts.listen,
            opts,
            dir,
            stop: None,
            thread: None,
            shared: None,
        };
        node.boot();
        node
    }

    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.opts.data_dir.clone()
    }

    fn boot(&mut self) {
        let opts = self.opts.clone();
        let (ready_tx, ready_rx) = std_mpsc::channel::<Result<(SocketAddr, Arc<Shared>), String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("corral-test-node".into())
            .spawn(move || node_thread(opts, ready_tx, stop_rx))
            .expect("spawn node thread");
        let (addr, shared) = match ready_rx.recv_timeout(STEP) {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => panic!("node failed to start: {e}"),
            Err(e) => panic!("node did not start in time: {e}"),
        };
        self.addr = addr;
        // A restart binds the same port, so clients can reconnect to it.
        self.opts.listen = addr;
        self.stop = Some(stop_tx);
        self.thread = Some(thread);
        self.shared = Some(shared);
    }

    /// The running node's shared state (tree, tenancy), for white-box checks.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone().expect("node is running")
    }

    /// Stops the node: every connection drops, the commit thread winds down.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let start = Instant::now();
            while !t.is_finished() {
                assert!(start.elapsed() < STEP, "node thread did not stop");
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = t.join();
        }
        self.shared = None;
    }

    /// Stops the node and starts it again on the same port and data dir.
    pub fn restart(&mut self) {
        self.stop();
        self.boot();
    }

    /// Kept so the tempdir lives as long as the node.
    pub fn tempdir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn node_thread(
    opts: ServerOptions,
    ready: std_mpsc::Sender<Result<(SocketAddr, Arc<Shared>), String>>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("node runtime");
    rt.block_on(async move {
        // The previous incarnation's commit thread releases the txn log a
        // moment after its runtime is gone: retry the open for a while.
        let start = Instant::now();
        let node = loop {
            let supers =
                corral_auth::SuperUsers::new(&[], Some(SUPER_DIGEST)).expect("super users");
            match Node::start(opts.clone(), supers).await {
                Ok(n) => break n,
                Err(_) if start.elapsed() < Duration::from_secs(8) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                    return;
                }
            }
        };
        let addr = node.local_addr().expect("local addr");
        let _ = ready.send(Ok((addr, node.shared.clone())));
        tokio::select! {
            _ = node.run() => {}
            _ = stop => {}
        }
    });
    // Dropping every task drops every connection and every handle on the
    // commit path, which then exits and closes the log.
    rt.shutdown_timeout(Duration::from_secs(2));
}

/// A `zookeeper-client` session with a 6 s timeout.
pub async fn client(node: &TestNode) -> zk::Client {
    connect_with(
        node,
        zk::Client::connector().with_session_timeout(Duration::from_secs(6)),
    )
    .await
}

/// Connects with a prepared connector (6 s session unless it says otherwise), bounded by [`STEP`].
pub async fn connect_with(node: &TestNode, connector: zk::Connector) -> zk::Client {
    within("connect", connector.connect(&node.connect_string()))
        .await
        .expect("connect")
}

pub fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

pub fn ephemeral() -> zk::CreateOptions<'static> {
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())
}

/// Sends one four-letter word and returns the whole answer.
pub async fn four_letter(addr: SocketAddr, word: &str) -> String {
    match try_four_letter(addr, word).await {
        Ok(out) => out,
        Err(e) => panic!("four-letter word {word}: {e}"),
    }
}

/// As [`four_letter`], giving back the I/O error (a refused connection).
pub async fn try_four_letter(addr: SocketAddr, word: &str) -> std::io::Result<String> {
    within("four-letter word", async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(word.as_bytes()).await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    })
    .await
}

/// What arrived on a raw connection: a notification or a reply.
#[derive(Debug)]
pub enum Frame {
    Event(WatcherEvent),
    Reply(ReplyHeader, Vec<u8>),
}

/// A hand-driven client connection, for requests the crate cannot make.
pub struct Raw {
    pub stream: TcpStream,
    pub session: ConnectResponse,
    next_xid: i32,
}

impl Raw {
    /// Opens a new session with the given timeout.
    pub async fn connect(addr: SocketAddr, timeout_ms: i32) -> Raw {
        let (raw, rsp) = Self::handshake(addr, timeout_ms, 0, vec![0; 16])
            .await
            .expect("raw handshake");
        assert_ne!(rsp.session_id, 0, "session refused");
        raw
    }

    /// Sends a ConnectRequest and reads the ConnectResponse (the raw connection
    /// is returned even when the session was refused).
    pub async fn handshake(
        addr: SocketAddr,
        timeout_ms: i32,
        session_id: i64,
        passwd: Vec<u8>,
    ) -> std::io::Result<(Raw, ConnectResponse)> {
        let mut stream = within("raw connect", TcpStream::connect(addr)).await?;
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id,
            passwd,
            read_only: Some(false),
        };
        let mut w = Writer::framed();
        req.write(&mut w);
        stream.write_all(&w.finish_frame()).await?;
        let body = within("connect response", read_body(&mut stream)).await?;
        let rsp = ConnectResponse::from_bytes(&body)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        Ok((
            Raw {
                stream,
                session: rsp.clone(),
                next_xid: 1,
            },
            rsp,
        ))
    }

    /// Sends a request with a fresh xid; returns the xid.
    pub async fn send(&mut self, req: &Request) -> i32 {
        let xid = self.next_xid;
        self.next_xid += 1;
        self.send_with(xid, req.opcode().code(), |w| req.encode(w))
            .await;
        xid
    }

    /// Sends a frame with an explicit header and a hand-written body.
    pub async fn send_with(&mut self, xid: i32, op: i32, body: impl FnOnce(&mut Writer)) {
        let mut w = Writer::framed();
        RequestHeader { xid, op }.write(&mut w);
        body(&mut w);
        self.stream
            .write_all(&w.finish_frame())
            .await
            .expect("raw send");
    }

    /// Reads the next frame, bounded by [`STEP`].
    pub async fn read(&mut self) -> Frame {
        let body = within("raw read", read_body(&mut self.stream))
            .await
            .expect("raw read");
        let mut r = Reader::new(&body);
        let hdr = ReplyHeader::read(&mut r).expect("reply header");
        if hdr.xid == corral_proto::opcode::xid::NOTIFICATION {
            Frame::Event(WatcherEvent::read(&mut r).expect("watcher event"))
        } else {
            Frame::Reply(hdr, body[16..].to_vec())
        }
    }

    /// Reads until the reply to `xid`, collecting the events seen before it.
    pub async fn reply_to(&mut self, xid: i32) -> (Vec<WatcherEvent>, ReplyHeader, Vec<u8>) {
        let mut events = Vec::new();
        loop {
            match self.read().await {
                Frame::Event(e) => events.push(e),
                Frame::Reply(h, b) if h.xid == xid => return (events, h, b),
                Frame::Reply(h, _) => panic!("unexpected reply {h:?} while waiting for xid {xid}"),
            }
        }
    }

    /// Sends `req` and waits for its reply (events before it are returned too).
    pub async fn call(&mut self, req: &Request) -> (Vec<WatcherEvent>, ReplyHeader, Vec<u8>) {
        let xid = self.send(req).await;
        self.reply_to(xid).await
    }

    /// True once the server has closed this connection (EOF or reset), within [`STEP`].
    pub async fn closed_by_server(&mut self) -> bool {
        closed_by_server(&mut self.stream).await
    }
}

/// True once the server has closed `s` (EOF or reset), within [`STEP`].
pub async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn read_body(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let n = i32::from_be_bytes(len);
    if n < 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "negative frame length",
        ));
    }
    let mut body = vec![0u8; n as usize];
    s.read_exact(&mut body).await?;
    Ok(body)
}

/// A path+watch request body, as exists/getData/getChildren take.
pub fn path_watch(path: &str, watch: bool) -> corral_proto::request::PathWatch {
    corral_proto::request::PathWatch {
        path: path.to_string(),
        watch,
    }
}

/// Decodes a successful reply body to a request with opcode `op`.
pub fn decode(op: corral_proto::OpCode, body: &[u8]) -> corral_proto::Response {
    let mut r = Reader::new(body);
    let rsp = corral_proto::Response::decode(op, &mut r).expect("decode reply");
    assert!(r.is_empty(), "trailing bytes after a {op:?} reply");
    rsp
}

/// A create request open to everyone.
pub fn create_req(path: &str, data: &[u8], flags: i32) -> corral_proto::request::CreateRequest {
    corral_proto::request::CreateRequest {
        path: path.to_string(),
        data: Some(data.to_vec()),
        acl: corral_proto::Acl::open_unsafe(),
        flags,
        ttl: -1,
    }
}

/// ZooKeeper error codes the tests look for.
pub mod code {
    pub const OK: i32 = 0;
    pub const RUNTIME_INCONSISTENCY: i32 = -2;
    pub const UNIMPLEMENTED: i32 = -6;
    pub const BAD_ARGUMENTS: i32 = -8;
    pub const NO_NODE: i32 = -101;
    pub const NO_AUTH: i32 = -102;
    pub const BAD_VERSION: i32 = -103;
    pub const NODE_EXISTS: i32 = -110;
    pub const NO_WATCHER: i32 = -121;
}
