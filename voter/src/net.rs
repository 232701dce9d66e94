//! The QUIC transport between peers: mutual TLS, one connection per peer
//! pair, ordered byte frames on a few channels.
//!
//! The transport knows nothing of ZAB. It moves opaque frames (the driver
//! puts [`crate::wire`]-encoded messages and its own envelopes in them) and
//! makes no protocol decision; losing a frame is always allowed, because the
//! core tolerates loss and resyncs a learner that missed proposals.
//!
//! # Connections
//!
//! - **One QUIC connection per peer pair; the smaller id dials.** Server `a`
//!   dials server `b` iff `a < b`; `b` only accepts from smaller ids. With a
//!   fixed dialer there are never two connections racing for one pair, and a
//!   restarted dialer's new connection simply replaces the old one at the
//!   acceptor.
//! - **Mutual TLS 1.3 under the cluster CA** (rustls, ring provider). The
//!   dialer asks for server name `server-<id>.corral`, so hostname
//!   verification binds the connection to the id it dialed. After the
//!   handshake both sides read the peer's id from its certificate
//!   ([`peer_id_of`]): the dialer requires the id it dialed, the acceptor
//!   requires a configured peer with a smaller id, and learns which peer it is
//!   from the certificate alone (the source address proves nothing). A
//!   mismatch closes the connection with an error log naming both ids.
//!   (In TLS 1.3 a client completes its handshake before the server has
//!   judged the client certificate, so a dialer the acceptor refuses counts
//!   as connected for about one round trip, and frames it writes in that
//!   window are lost.)
//! - **Membership changes** ([`Net::add_peer`], [`Net::remove_peer`]): the
//!   driver adds the voters a reconfiguration names and removes the ones a
//!   committed one drops; a removed server's connections close and it is
//!   refused until a later configuration names it again. A server that knows
//!   us but that we do not know yet (a joiner catching up before the
//!   reconfig that adds it) cannot be dialed by us; when a peer with a
//!   smaller id has not dialed it for [`INTRODUCE_AFTER`], it *introduces*
//!   itself: it dials that peer once and closes the connection at once. The
//!   smaller side, seeing a certificate-verified server it does not know,
//!   adds it at the connection's source address (the peer's own UDP socket)
//!   and dials it. A known peer's introduction is ignored (it is dialed
//!   already).
//! - **Reconnect** with jittered exponential backoff (50 ms doubling to 2 s)
//!   while a peer is unreachable; the backoff restarts after a connection
//!   that lived at least 2 s, so a peer that accepts and at once rejects us
//!   is not hammered.
//! - **Dead peers** are noticed by QUIC keep-alives and the idle timeout
//!   ([`NetConfig::keep_alive`], [`NetConfig::idle_timeout`]). A peer that
//!   restarts is noticed sooner: the stateless-reset key is derived from the
//!   node's private key, so the new process can reset connections the old
//!   one had, and the dialer redials at once.
//!
//! # Channels and frames
//!
//! Each [`Channel`] gets one long-lived unidirectional stream per direction
//! per connection, opened when its first frame is sent. A stream starts with
//! one byte naming the channel; then each frame is a `u32` big-endian length
//! and that many bytes, at most [`NetConfig::max_frame`] (default 256 MiB,
//! because a snapshot travels as one frame). Frames on one channel arrive in
//! order; there is no order across channels. Any protocol violation
//! (unknown channel, a second stream for a channel, an oversized frame)
//! closes the whole connection, and a reconnect opens fresh streams.
//!
//! # Backpressure and bounds
//!
//! - [`Net::send`] never blocks and may be called from any thread (the
//!   driver's core loop is a plain thread). Each peer has one bounded queue
//!   per channel ([`NetConfig::queue_len`]). When it is full the *new* frame
//!   is refused ([`SendError::Full`]) and counted as dropped; queued frames
//!   keep their order. Frames stay queued while the peer is disconnected and
//!   go out, in order, once it is back.
//! - A frame whose write was cut short because the connection died is kept
//!   and sent first on the next connection (an unfinished write cannot have
//!   delivered the whole frame, so this never duplicates one). It gets that
//!   one retry only: a frame the peer refuses (say, above its own
//!   `max_frame`) would otherwise kill every new connection. Frames already
//!   handed to QUIC when a connection dies are lost.
//! - Inbound frames go to one bounded receiver ([`NetConfig::inbound_len`]).
//!   When it is full the stream readers wait, which stops reading the
//!   streams, which pushes back on the sender through QUIC flow control.
//! - At most [`MAX_PENDING_HANDSHAKES`] inbound handshakes run at once;
//!   further connection attempts are refused until one finishes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, ConnectionError, Endpoint, RecvStream};
use rand::Rng;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, error, info, warn};

use crate::certs::{peer_dns_name, peer_id_of, PeerTls};

/// Default [`NetConfig::max_frame`]: a snapshot travels as one frame.
pub const DEFAULT_MAX_FRAME: usize = 256 << 20;
/// Default [`NetConfig::queue_len`].
pub const DEFAULT_QUEUE_LEN: usize = 1024;
/// Default [`NetConfig::inbound_len`].
pub const DEFAULT_INBOUND_LEN: usize = 4096;
/// Default [`NetConfig::keep_alive`].
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(1);
/// Default [`NetConfig::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Inbound handshakes in progress at once, at most.
pub const MAX_PENDING_HANDSHAKES: usize = 64;

/// The RTT assumed before the first sample (quinn's default is 333 ms). Peers
/// of one ensemble are usually close, and the first Initial's retransmit
/// timer derives from this: after a peer restarts, the dialer's pending
/// handshake reaches it at the next retransmit, so a lower value reconnects
/// sooner. Too low costs only a spurious retransmit on a far link; real
/// samples replace it after one round trip.
pub(crate) const INITIAL_RTT: Duration = Duration::from_millis(100);
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// ALPN of the peer protocol; a change of stream or frame layout bumps it.
const ALPN: &[u8] = b"corral-peer/1";

/// Application close codes, so the other side's log says why.
const CLOSE_SHUTDOWN: u32 = 0;
const CLOSE_IDENTITY: u32 = 1;
const CLOSE_REPLACED: u32 = 2;
const CLOSE_PROTOCOL: u32 = 3;
const CLOSE_INTRODUCED: u32 = 4;
const CLOSE_REMOVED: u32 = 5;

/// How long an accepting side waits for a smaller peer to dial before it
/// introduces itself (see the module docs), and again between introductions.
pub const INTRODUCE_AFTER: Duration = Duration::from_secs(2);

/// A logical stream between two peers. Frames on one channel stay in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Leader election notifications.
    Election,
    /// The ZAB learner feed (discovery, sync, broadcast).
    Feed,
    /// Requests forwarded to the leader.
    Forward,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Election, Channel::Feed, Channel::Forward];

    fn index(self) -> usize {
        match self {
            Channel::Election => 0,
            Channel::Feed => 1,
            Channel::Forward => 2,
        }
    }

    fn from_index(b: u8) -> Option<Channel> {
        Channel::ALL.get(usize::from(b)).copied()
    }
}

/// Everything [`Net::start`] needs. [`NetConfig::new`] fills the defaults.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// This node's server id; its certificate must name it.
    pub id: u64,
    /// The UDP address to bind.
    pub listen: SocketAddr,
    /// Every other voter: id and address. Must not contain `id`.
    pub peers: Vec<(u64, SocketAddr)>,
    pub tls: PeerTls,
    /// Largest frame sent or accepted, in bytes (at most `u32::MAX`).
    pub max_frame: usize,
    /// Frames queued per peer per channel, at most.
    pub queue_len: usize,
    /// Inbound frames waiting for the driver, at most.
    pub inbound_len: usize,
    /// QUIC keep-alive interval (keeps idle connections open and probes
    /// liveness).
    pub keep_alive: Duration,
    /// A connection with no packet from the peer for this long is dead.
    pub idle_timeout: Duration,
    /// Where observer feeds (ALPN [`crate::feed::link::FEED_ALPN`]) go;
    /// `None` refuses them.
    pub feeds: Option<FeedAcceptor>,
}

/// The driver that takes observer feeds accepted on the peer port.
#[derive(Clone)]
pub struct FeedAcceptor(pub Arc<dyn crate::feed::link::FeedSink>);

impl std::fmt::Debug for FeedAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeedAcceptor")
    }
}

impl NetConfig {
    pub fn new(id: u64, listen: SocketAddr, peers: Vec<(u64, SocketAddr)>, tls: PeerTls) -> Self {
        NetConfig {
            id,
            listen,
            peers,
            tls,
            max_frame: DEFAULT_MAX_FRAME,
            queue_len: DEFAULT_QUEUE_LEN,
            inbound_len: DEFAULT_INBOUND_LEN,
            keep_alive: DEFAULT_KEEP_ALIVE,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            feeds: None,
        }
    }
}

/// One frame received from a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    pub from: u64,
    pub channel: Channel,
    pub frame: Vec<u8>,
}

/// Counters of one peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    pub connected: bool,
    /// Connections established (each reconnect counts).
    pub connects: u64,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub frames_received: u64,
    pub bytes_received: u64,
    /// Frames refused by [`Net::send`] because the queue was full.
    pub frames_dropped: u64,
    /// Frames given up after their write was cut short on two connections.
    pub frames_lost: u64,
    /// Frames waiting in the queues now (all channels).
    pub queued: usize,
}

/// A snapshot of the transport's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub peers: BTreeMap<u64, PeerStats>,
    /// TLS handshakes that failed (bad or untrusted certificate, wrong
    /// server name, protocol error), on either side. Dials that merely time
    /// out are not counted.
    pub handshake_failures: u64,
    /// Connections closed after the handshake because the certificate named
    /// the wrong server, one not configured, or one that should not dial us.
    pub identity_rejections: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot bind the peer port {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("peer TLS setup: {0}")]
    Tls(String),
    #[error("this node is configured as server {configured} but its certificate names {cert}")]
    OwnIdentity { configured: u64, cert: String },
    #[error("peer transport configuration: {0}")]
    Config(String),
}

/// Why [`Net::send`] refused a frame. The frame is dropped in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("server {0} is not a configured peer")]
    UnknownPeer(u64),
    #[error("queue to server {to} on {channel:?} is full; frame dropped")]
    Full { to: u64, channel: Channel },
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("the peer transport is shut down")]
    Shutdown,
}

/// The peer transport of one node. Cheap to clone; all clones share it.
/// Dropping the last clone shuts it down.
#[derive(Clone)]
pub struct Net {
    inner: Arc<NetInner>,
}

// The driver's core loop (a plain thread) and the tokio side share it.
const _: fn() = || {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Net>();
};

struct NetInner {
    ctx: Arc<Ctx>,
    local_addr: SocketAddr,
    endpoint: Mutex<Option<Endpoint>>,
    tasks: Mutex<Vec<AbortHandle>>,
    shut: AtomicBool,
}

/// What the transport's tasks share.
struct Ctx {
    id: u64,
    feeds: Option<FeedAcceptor>,
    max_frame: usize,
    queue_len: usize,
    peers: RwLock<BTreeMap<u64, Arc<Peer>>>,
    /// Servers removed from the configuration: refused until added again.
    removed: Mutex<BTreeSet<u64>>,
    /// What a peer added later needs to run (`None` once shut down, so the
    /// UDP port is released and the inbound receiver ends).
    endpoint: Mutex<Option<Endpoint>>,
    inbound: Mutex<Option<mpsc::Sender<Inbound>>>,
    /// The runtime the transport started in ([`Net::add_peer`] may be called
    /// from a plain thread).
    runtime: tokio::runtime::Handle,
    handshake_failures: AtomicU64,
    identity_rejections: AtomicU64,
}

impl Ctx {
    fn peer(&self, id: u64) -> Option<Arc<Peer>> {
        self.peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    fn all_peers(&self) -> Vec<Arc<Peer>> {
        self.peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Adds `id` at `addr` and starts its tasks; `None` if it is known
    /// already or the transport is shut down.
    fn add(self: &Arc<Ctx>, id: u64, addr: SocketAddr) -> Option<Arc<Peer>> {
        let inbound = lock(&self.inbound).clone()?;
        let endpoint = lock(&self.endpoint).clone()?;
        let mut peers = self.peers.write().unwrap_or_else(|p| p.into_inner());
        if peers.contains_key(&id) || id == self.id {
            return None;
        }
        let peer = Arc::new(Peer::new(id, addr, self.queue_len));
        let task = if self.id < id {
            self.runtime
                .spawn(dial_loop(self.clone(), peer.clone(), endpoint, inbound))
        } else {
            self.runtime
                .spawn(accept_side_loop(self.clone(), peer.clone(), inbound))
        };
        lock(&peer.tasks).push(task.abort_handle());
        peers.insert(id, peer.clone());
        Some(peer)
    }
}

struct Peer {
    id: u64,
    addr: SocketAddr,
    /// Its dial or accept loop.
    tasks: Mutex<Vec<AbortHandle>>,
    queues: [mpsc::Sender<Vec<u8>>; 3],
    /// Held by the writer of the current connection, one per channel.
    outgoing: [tokio::sync::Mutex<Outgoing>; 3],
    /// The connection in use, if any.
    current: Mutex<Option<Connection>>,
    /// Acceptor side: the newest verified connection from this peer.
    offered: watch::Sender<Option<Connection>>,
    counters: Counters,
}

struct Outgoing {
    rx: mpsc::Receiver<Vec<u8>>,
    /// The frame being written, kept here rather than in the writer so that
    /// it survives the writer being aborted mid-write when its connection
    /// ends; the next connection's writer retries it (see [`MAX_ATTEMPTS`]).
    pending: Option<Pending>,
}

struct Pending {
    frame: Vec<u8>,
    /// Writes started, on as many connections.
    attempts: u32,
}

/// Connections a frame is tried on before it is given up (counted in
/// [`PeerStats::frames_lost`]).
const MAX_ATTEMPTS: u32 = 2;

#[derive(Default)]
struct Counters {
    connects: AtomicU64,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_received: AtomicU64,
    frames_dropped: AtomicU64,
    frames_lost: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent if a holder panicked (each critical
    // section is a single assignment or read).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn bump(c: &AtomicU64, n: usize) {
    c.fetch_add(n as u64, Ordering::Relaxed);
}

impl Net {
    /// Binds `cfg.listen` now (an error if the port is taken), then dials the
    /// peers with larger ids and accepts the ones with smaller ids in the
    /// background. Must run inside a tokio runtime.
    pub async fn start(cfg: NetConfig) -> Result<(Net, mpsc::Receiver<Inbound>), NetError> {
        let socket = UdpSocket::bind(cfg.listen).map_err(|source| NetError::Bind {
            addr: cfg.listen,
            source,
        })?;
        Net::start_on(cfg, socket).await
    }

    /// As [`Net::start`], on a socket the caller bound (`cfg.listen` is then
    /// ignored).
    pub async fn start_on(
        cfg: NetConfig,
        socket: UdpSocket,
    ) -> Result<(Net, mpsc::Receiver<Inbound>), NetError> {
        let cert_id = cfg.tls.id();
        if cert_id.as_ref().ok() != Some(&cfg.id) {
            return Err(NetError::OwnIdentity {
                configured: cfg.id,
                cert: match cert_id {
                    Ok(id) => format!("server {id}"),
                    Err(e) => format!("no server ({e})"),
                },
            });
        }
        Net::start_unchecked(cfg, socket)
    }

    /// Starts without checking that the certificate names `cfg.id`; only
    /// tests use it, to play an impostor.
    fn start_unchecked(
        cfg: NetConfig,
        socket: UdpSocket,
    ) -> Result<(Net, mpsc::Receiver<Inbound>), NetError> {
        validate(&cfg)?;
        let local_addr = socket.local_addr().map_err(|source| NetError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let (server_config, client_config) = quic_configs(&cfg)?;
        let runtime = Arc::new(quinn::TokioRuntime);
        let mut endpoint = Endpoint::new(
            endpoint_config(&cfg.tls),
            Some(server_config),
            socket,
            runtime,
        )
        .map_err(|source| NetError::Bind {
            addr: local_addr,
            source,
        })?;
        endpoint.set_default_client_config(client_config);

        let (inbound_tx, inbound_rx) = mpsc::channel(cfg.inbound_len);
        let ctx = Arc::new(Ctx {
            id: cfg.id,
            feeds: cfg.feeds.clone(),
            max_frame: cfg.max_frame,
            queue_len: cfg.queue_len,
            peers: RwLock::new(BTreeMap::new()),
            removed: Mutex::new(BTreeSet::new()),
            endpoint: Mutex::new(Some(endpoint.clone())),
            inbound: Mutex::new(Some(inbound_tx)),
            runtime: tokio::runtime::Handle::current(),
            handshake_failures: AtomicU64::new(0),
            identity_rejections: AtomicU64::new(0),
        });
        for &(id, addr) in &cfg.peers {
            ctx.add(id, addr);
        }
        let tasks = vec![tokio::spawn(accept_loop(ctx.clone(), endpoint.clone())).abort_handle()];
        info!(id = ctx.id, %local_addr, peers = cfg.peers.len(), "peer transport started");
        let net = Net {
            inner: Arc::new(NetInner {
                ctx,
                local_addr,
                endpoint: Mutex::new(Some(endpoint)),
                tasks: Mutex::new(tasks),
                shut: AtomicBool::new(false),
            }),
        };
        Ok((net, inbound_rx))
    }

    /// This node's server id.
    pub fn id(&self) -> u64 {
        self.inner.ctx.id
    }

    /// The bound UDP address (useful when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Queues `frame` for `to` on `channel`. Never blocks; see the module
    /// docs for the drop policy.
    pub fn send(&self, to: u64, channel: Channel, frame: Vec<u8>) -> Result<(), SendError> {
        if self.inner.shut.load(Ordering::Acquire) {
            return Err(SendError::Shutdown);
        }
        let ctx = &self.inner.ctx;
        let peer = ctx.peer(to).ok_or(SendError::UnknownPeer(to))?;
        if frame.len() > ctx.max_frame {
            return Err(SendError::TooLarge {
                len: frame.len(),
                max: ctx.max_frame,
            });
        }
        match peer.queues[channel.index()].try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                bump(&peer.counters.frames_dropped, 1);
                Err(SendError::Full { to, channel })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Shutdown),
        }
    }

    /// Peers with an established, verified connection now.
    pub fn connected(&self) -> Vec<u64> {
        self.inner
            .ctx
            .all_peers()
            .iter()
            .filter(|p| p.is_connected())
            .map(|p| p.id)
            .collect()
    }

    /// Makes `id` a peer at `addr` (a configuration names it); no change if
    /// it is one already.
    pub fn add_peer(&self, id: u64, addr: SocketAddr) {
        if self.inner.shut.load(Ordering::Acquire) {
            return;
        }
        let ctx = &self.inner.ctx;
        lock(&ctx.removed).remove(&id);
        if ctx.add(id, addr).is_some() {
            info!(id = ctx.id, peer = id, %addr, "peer added");
        }
    }

    /// Drops peer `id` (a committed configuration no longer names it): its
    /// connection closes and it is refused until added again.
    pub fn remove_peer(&self, id: u64) {
        let ctx = &self.inner.ctx;
        lock(&ctx.removed).insert(id);
        let peer = ctx
            .peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(peer) = peer {
            peer.stop(CLOSE_REMOVED, b"removed from the configuration");
            info!(id = ctx.id, peer = id, "peer removed");
        }
    }

    pub fn stats(&self) -> NetStats {
        let ctx = &self.inner.ctx;
        let peers = ctx
            .all_peers()
            .iter()
            .map(|p| {
                let c = &p.counters;
                let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
                let queued = p.queues.iter().map(|q| ctx.queue_len - q.capacity()).sum();
                let stats = PeerStats {
                    connected: p.is_connected(),
                    connects: get(&c.connects),
                    frames_sent: get(&c.frames_sent),
                    bytes_sent: get(&c.bytes_sent),
                    frames_received: get(&c.frames_received),
                    bytes_received: get(&c.bytes_received),
                    frames_dropped: get(&c.frames_dropped),
                    frames_lost: get(&c.frames_lost),
                    queued,
                };
                (p.id, stats)
            })
            .collect();
        NetStats {
            peers,
            handshake_failures: ctx.handshake_failures.load(Ordering::Relaxed),
            identity_rejections: ctx.identity_rejections.load(Ordering::Relaxed),
        }
    }

    /// Closes every connection (peers see a clean close, not a timeout),
    /// stops all tasks and releases the UDP port once the closes are sent.
    /// The inbound receiver then ends. Idempotent; callable from any thread.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }
}

impl NetInner {
    fn shutdown(&self) {
        if self.shut.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(endpoint) = lock(&self.endpoint).take() {
            endpoint.close(CLOSE_SHUTDOWN.into(), b"shutdown");
        }
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        lock(&self.ctx.inbound).take();
        lock(&self.ctx.endpoint).take();
        for peer in self.ctx.all_peers() {
            peer.stop(CLOSE_SHUTDOWN, b"shutdown");
        }
        info!(id = self.ctx.id, "peer transport shut down");
    }
}

impl Drop for NetInner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Peer {
    fn new(id: u64, addr: SocketAddr, queue_len: usize) -> Peer {
        let (queues, outgoing): (Vec<_>, Vec<_>) = Channel::ALL
            .iter()
            .map(|_| {
                let (tx, rx) = mpsc::channel(queue_len);
                (tx, tokio::sync::Mutex::new(Outgoing { rx, pending: None }))
            })
            .unzip();
        let (offered, _) = watch::channel(None);
        Peer {
            id,
            addr,
            queues: queues
                .try_into()
                .unwrap_or_else(|_| unreachable!("one queue per channel")),
            outgoing: outgoing
                .try_into()
                .unwrap_or_else(|_| unreachable!("one queue per channel")),
            current: Mutex::new(None),
            offered,
            counters: Counters::default(),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Stops its tasks and closes its connection with `code`.
    fn stop(&self, code: u32, why: &[u8]) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        self.offered.send_replace(None);
        if let Some(c) = lock(&self.current).take() {
            c.close(code.into(), why);
        }
    }

    fn is_connected(&self) -> bool {
        lock(&self.current)
            .as_ref()
            .is_some_and(|c| c.close_reason().is_none())
    }
}

fn validate(cfg: &NetConfig) -> Result<(), NetError> {
    let bad = |m: String| Err(NetError::Config(m));
    let mut seen = std::collections::BTreeSet::new();
    for &(id, _) in &cfg.peers {
        if id == cfg.id {
            return bad(format!("peers list this node's own id {id}"));
        }
        if !seen.insert(id) {
            return bad(format!("peer {id} is listed twice"));
        }
    }
    if cfg.max_frame > u32::MAX as usize {
        return bad(format!(
            "max_frame {} exceeds the u32 frame length limit",
            cfg.max_frame
        ));
    }
    if cfg.queue_len == 0 || cfg.inbound_len == 0 {
        return bad("queue_len and inbound_len must be at least 1".into());
    }
    if cfg.keep_alive >= cfg.idle_timeout {
        return bad(format!(
            "keep_alive ({:?}) must be shorter than idle_timeout ({:?})",
            cfg.keep_alive, cfg.idle_timeout
        ));
    }
    Ok(())
}

/// The rustls + quinn configs: TLS 1.3 only (QUIC requires it), client
/// certificates required and verified against the CA, ALPN pinned.
fn quic_configs(cfg: &NetConfig) -> Result<(quinn::ServerConfig, quinn::ClientConfig), NetError> {
    let tls_err = |what: &str, e: &dyn std::fmt::Display| NetError::Tls(format!("{what}: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in cfg.tls.ca() {
        roots
            .add(ca.clone())
            .map_err(|e| tls_err("bad CA certificate", &e))?;
    }
    let roots = Arc::new(roots);

    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| tls_err("client verifier", &e))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err("TLS versions", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(cfg.tls.chain().to_vec(), cfg.tls.key().clone_key())
        .map_err(|e| tls_err("certificate and key do not fit", &e))?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    if cfg.feeds.is_some() {
        server
            .alpn_protocols
            .push(crate::feed::link::FEED_ALPN.to_vec());
    }
    let server =
        QuicServerConfig::try_from(server).map_err(|e| tls_err("QUIC server config", &e))?;

    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err("TLS versions", &e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(cfg.tls.chain().to_vec(), cfg.tls.key().clone_key())
        .map_err(|e| tls_err("certificate and key do not fit", &e))?;
    client.alpn_protocols = vec![ALPN.to_vec()];
    let client =
        QuicClientConfig::try_from(client).map_err(|e| tls_err("QUIC client config", &e))?;

    let transport = crate::feed::link::transport(crate::feed::link::FeedTiming {
        keep_alive: cfg.keep_alive,
        idle_timeout: cfg.idle_timeout,
    })
    .map_err(|e| NetError::Config(format!("idle_timeout {:?}: {e}", cfg.idle_timeout)))?;

    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(server));
    server_config.transport_config(transport.clone());
    let mut client_config = quinn::ClientConfig::new(Arc::new(client));
    client_config.transport_config(transport);
    Ok((server_config, client_config))
}

/// The endpoint config, with the stateless-reset key and the connection-id
/// key derived from the node's private key. A restarted process (same key)
/// then recognises its predecessor's connection ids as its own and resets
/// them, so peers notice the restart at their next packet instead of after
/// the idle timeout. HMAC keeps the private key itself out of reach.
fn endpoint_config(tls: &PeerTls) -> quinn::EndpointConfig {
    let root = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, tls.key().secret_der());
    let derive = |label: &[u8]| ring::hmac::sign(&root, label);
    let reset = derive(b"corral peer stateless reset key v1");
    let mut config = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        reset.as_ref(),
    )));
    let cid = derive(b"corral peer connection id key v1");
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&cid.as_ref()[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    config
}

/// The server id in a connection's verified client or server certificate.
pub(crate) fn identity_of(conn: &Connection) -> Result<u64, String> {
    let any = conn
        .peer_identity()
        .ok_or_else(|| "no peer certificate".to_string())?;
    let chain = any
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| "peer identity is not a certificate chain".to_string())?;
    let leaf = chain
        .first()
        .ok_or_else(|| "empty certificate chain".to_string())?;
    peer_id_of(leaf).map_err(|e| e.to_string())
}

fn reject(ctx: &Ctx, conn: &Connection, why: &str) {
    bump(&ctx.identity_rejections, 1);
    error!(id = ctx.id, remote = %conn.remote_address(), "peer connection rejected: {why}");
    conn.close(CLOSE_IDENTITY.into(), why.as_bytes());
}

fn jittered(d: Duration) -> Duration {
    let ms = d.as_millis().max(2) as u64;
    Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms))
}

/// Dials `peer` until shut down, serving each connection until it ends.
async fn dial_loop(
    ctx: Arc<Ctx>,
    peer: Arc<Peer>,
    endpoint: Endpoint,
    inbound: mpsc::Sender<Inbound>,
) {
    let mut backoff = BACKOFF_START;
    let mut quiet = false;
    loop {
        match dial(&ctx, &peer, &endpoint).await {
            Ok(conn) => {
                quiet = false;
                let up = Instant::now();
                serve(&ctx, &peer, conn, &inbound, None).await;
                if up.elapsed() >= BACKOFF_MAX {
                    backoff = BACKOFF_START;
                }
            }
            // Log the first failure of a run loudly, the retries quietly.
            Err(e) if !quiet => {
                quiet = true;
                warn!(id = ctx.id, peer = peer.id, addr = %peer.addr, "cannot reach peer: {e}; retrying");
            }
            Err(e) => debug!(id = ctx.id, peer = peer.id, "dial failed: {e}"),
        }
        tokio::time::sleep(jittered(backoff)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn dial(ctx: &Ctx, peer: &Peer, endpoint: &Endpoint) -> Result<Connection, String> {
    let connecting = endpoint
        .connect(peer.addr, &peer_dns_name(peer.id))
        .map_err(|e| e.to_string())?;
    let conn = match connecting.await {
        Ok(c) => c,
        Err(e) => {
            if !matches!(
                e,
                ConnectionError::TimedOut | ConnectionError::LocallyClosed
            ) {
                bump(&ctx.handshake_failures, 1);
            }
            return Err(format!("handshake with server {}: {e}", peer.id));
        }
    };
    match identity_of(&conn) {
        Ok(id) if id == peer.id => Ok(conn),
        Ok(id) => {
            let why = format!(
                "server {} dialed server {} at {} but its certificate names server {id}",
                ctx.id, peer.id, peer.addr
            );
            reject(ctx, &conn, &why);
            Err(why)
        }
        Err(e) => {
            let why = format!(
                "server {} dialed server {} at {}: {e}",
                ctx.id, peer.id, peer.addr
            );
            reject(ctx, &conn, &why);
            Err(why)
        }
    }
}

/// Accepts handshakes and hands each verified connection to its peer.
async fn accept_loop(ctx: Arc<Ctx>, endpoint: Endpoint) {
    let mut handshakes = JoinSet::new();
    while let Some(incoming) = endpoint.accept().await {
        while handshakes.try_join_next().is_some() {}
        if handshakes.len() >= MAX_PENDING_HANDSHAKES {
            warn!(id = ctx.id, remote = %incoming.remote_address(), "too many peer handshakes in progress; refusing");
            incoming.refuse();
            continue;
        }
        handshakes.spawn(accept_one(ctx.clone(), incoming));
    }
}

async fn accept_one(ctx: Arc<Ctx>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            bump(&ctx.handshake_failures, 1);
            warn!(id = ctx.id, %remote, "peer handshake failed: {e}");
            return;
        }
    };
    let id = match identity_of(&conn) {
        Ok(id) => id,
        Err(e) => return reject(&ctx, &conn, &format!("from {remote}: {e}")),
    };
    if crate::feed::link::alpn_of(&conn).as_deref() == Some(crate::feed::link::FEED_ALPN) {
        return match &ctx.feeds {
            Some(f) if id != ctx.id && ctx.peer(id).is_none() => {
                debug!(id = ctx.id, observer = id, %remote, "observer feed accepted");
                crate::feed::link::serve_downstream(conn, id, f.0.clone());
            }
            Some(_) => reject(
                &ctx,
                &conn,
                &format!("{remote} opened an observer feed as server {id}, which is a voter"),
            ),
            None => reject(&ctx, &conn, "this node takes no observer feeds"),
        };
    }
    if id == ctx.id {
        return reject(&ctx, &conn, &format!("{remote} presented our own id {id}"));
    }
    if lock(&ctx.removed).contains(&id) {
        return reject(
            &ctx,
            &conn,
            &format!("server {id} at {remote} was removed from the configuration"),
        );
    }
    let peer = match ctx.peer(id) {
        Some(p) => p,
        // A server we do not know yet (a joiner): it is where it dialed from.
        None => match ctx.add(id, remote) {
            Some(p) => {
                info!(id = ctx.id, peer = id, %remote, "peer introduced itself; added");
                p
            }
            None => return conn.close(CLOSE_SHUTDOWN.into(), b"shutting down"),
        },
    };
    if id > ctx.id {
        // An introduction: we dial it (now, or already).
        debug!(id = ctx.id, peer = id, %remote, "introduction from a peer we dial");
        conn.close(CLOSE_INTRODUCED.into(), b"introduced; the smaller id dials");
        return;
    }
    debug!(id = ctx.id, peer = id, %remote, "peer connection accepted");
    peer.offered.send_replace(Some(conn));
}

/// Dials a smaller peer that has not dialed us, so that it learns of us (see
/// the module docs); it closes the connection once it has.
async fn introduce(ctx: &Ctx, peer: &Peer) {
    let Some(endpoint) = lock(&ctx.endpoint).clone() else {
        return;
    };
    if let Ok(conn) = dial(ctx, peer, &endpoint).await {
        debug!(id = ctx.id, peer = peer.id, "introduced ourselves");
        let _ = tokio::time::timeout(INTRODUCE_AFTER, conn.closed()).await;
        conn.close(CLOSE_INTRODUCED.into(), b"introduction");
    }
}

/// Acceptor side of one peer: serves the newest verified connection; a newer
/// one (the peer restarted or redialed) replaces it.
async fn accept_side_loop(ctx: Arc<Ctx>, peer: Arc<Peer>, inbound: mpsc::Sender<Inbound>) {
    let mut offered = peer.offered.subscribe();
    loop {
        let next = offered
            .borrow_and_update()
            .clone()
            .filter(|c| c.close_reason().is_none());
        match next {
            Some(conn) => serve(&ctx, &peer, conn, &inbound, Some(&mut offered)).await,
            None => tokio::select! {
                r = offered.changed() => if r.is_err() {
                    return;
                },
                _ = tokio::time::sleep(jittered(INTRODUCE_AFTER)) => {
                    introduce(&ctx, &peer).await;
                }
            },
        }
    }
}

/// Runs one connection: a writer per channel, a reader per incoming stream.
/// Returns when the connection is closed, or (acceptor side) replaced.
async fn serve(
    ctx: &Arc<Ctx>,
    peer: &Arc<Peer>,
    conn: Connection,
    inbound: &mpsc::Sender<Inbound>,
    replaced: Option<&mut watch::Receiver<Option<Connection>>>,
) {
    info!(id = ctx.id, peer = peer.id, remote = %conn.remote_address(), "peer connected");
    bump(&peer.counters.connects, 1);
    *lock(&peer.current) = Some(conn.clone());
    let mut tasks = JoinSet::new();
    for channel in Channel::ALL {
        tasks.spawn(write_channel(
            ctx.clone(),
            peer.clone(),
            conn.clone(),
            channel,
        ));
    }
    tasks.spawn(read_streams(
        ctx.clone(),
        peer.id,
        conn.clone(),
        inbound.clone(),
    ));
    match replaced {
        Some(offered) => {
            tokio::select! {
                _ = conn.closed() => {}
                _ = offered.changed() => {
                    conn.close(CLOSE_REPLACED.into(), b"replaced by a newer connection");
                }
            }
        }
        None => {
            conn.closed().await;
        }
    }
    // Writers must let go of the queues before the next connection's take
    // them.
    tasks.shutdown().await;
    {
        let mut current = lock(&peer.current);
        if current
            .as_ref()
            .is_some_and(|c| c.stable_id() == conn.stable_id())
        {
            *current = None;
        }
    }
    let reason = conn
        .close_reason()
        .map_or_else(|| "closed".to_string(), |r| r.to_string());
    info!(id = ctx.id, peer = peer.id, "peer disconnected: {reason}");
}

/// Moves frames from `peer`'s `channel` queue onto one stream of `conn`.
async fn write_channel(ctx: Arc<Ctx>, peer: Arc<Peer>, conn: Connection, channel: Channel) {
    let mut guard = peer.outgoing[channel.index()].lock().await;
    let out = &mut *guard;
    let mut stream = None;
    loop {
        let pending = match &mut out.pending {
            Some(p) => p,
            None => tokio::select! {
                f = out.rx.recv() => match f {
                    Some(frame) => out.pending.insert(Pending { frame, attempts: 0 }),
                    None => return,
                },
                _ = conn.closed() => return,
            },
        };
        if pending.attempts >= MAX_ATTEMPTS {
            out.pending = None;
            bump(&peer.counters.frames_lost, 1);
            continue;
        }
        pending.attempts += 1;
        if stream.is_none() {
            stream = match conn.open_uni().await {
                Ok(mut s) => s.write_all(&[channel.index() as u8]).await.map(|()| s).ok(),
                Err(_) => None,
            };
        }
        let Some(s) = stream.as_mut() else {
            return;
        };
        let frame = &pending.frame;
        let written = async {
            s.write_all(&(frame.len() as u32).to_be_bytes()).await?;
            s.write_all(frame).await
        }
        .await;
        if let Err(e) = written {
            debug!(id = ctx.id, peer = peer.id, ?channel, "write failed: {e}");
            conn.close(CLOSE_PROTOCOL.into(), b"stream write failed");
            return;
        }
        bump(&peer.counters.frames_sent, 1);
        bump(&peer.counters.bytes_sent, frame.len());
        out.pending = None;
    }
}

/// Accepts the peer's channel streams and reads each in its own task. The
/// channel byte is read in that task too, so a stream that stalls before it
/// cannot hold up the others.
async fn read_streams(
    ctx: Arc<Ctx>,
    peer_id: u64,
    conn: Connection,
    inbound: mpsc::Sender<Inbound>,
) {
    let mut readers = JoinSet::new();
    let opened = Arc::new(Mutex::new([false; 3]));
    while let Ok(mut recv) = conn.accept_uni().await {
        let (ctx, conn, inbound, opened) =
            (ctx.clone(), conn.clone(), inbound.clone(), opened.clone());
        readers.spawn(async move {
            let mut b = [0u8; 1];
            if recv.read_exact(&mut b).await.is_err() {
                return;
            }
            let Some(channel) = Channel::from_index(b[0]) else {
                let why = format!("unknown channel {}", b[0]);
                return protocol_error(&ctx, peer_id, &conn, &why);
            };
            if std::mem::replace(&mut lock(&opened)[channel.index()], true) {
                let why = format!("second stream for {channel:?}");
                return protocol_error(&ctx, peer_id, &conn, &why);
            }
            read_channel(ctx, peer_id, conn, channel, recv, inbound).await;
        });
    }
}

fn protocol_error(ctx: &Ctx, peer_id: u64, conn: &Connection, why: &str) {
    error!(
        id = ctx.id,
        peer = peer_id,
        "peer protocol error: {why}; closing the connection"
    );
    conn.close(CLOSE_PROTOCOL.into(), why.as_bytes());
}

async fn read_channel(
    ctx: Arc<Ctx>,
    peer_id: u64,
    conn: Connection,
    channel: Channel,
    mut recv: RecvStream,
    inbound: mpsc::Sender<Inbound>,
) {
    let Some(peer) = ctx.peer(peer_id) else {
        return;
    };
    let counters = &peer.counters;
    loop {
        let mut len = [0u8; 4];
        if recv.read_exact(&mut len).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > ctx.max_frame {
            return protocol_error(
                &ctx,
                peer_id,
                &conn,
                &format!(
                    "frame of {len} bytes on {channel:?} exceeds the limit of {}",
                    ctx.max_frame
                ),
            );
        }
        // Grow with what arrives rather than trusting the length up front.
        let mut frame = Vec::with_capacity(len.min(1 << 20));
        while frame.len() < len {
            match recv.read_chunk(len - frame.len(), true).await {
                Ok(Some(chunk)) => frame.extend_from_slice(&chunk.bytes),
                Ok(None) | Err(_) => return,
            }
        }
        bump(&counters.frames_received, 1);
        bump(&counters.bytes_received, len);
        let msg = Inbound {
            from: peer_id,
            channel,
            frame,
        };
        if inbound.send(msg).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
