//! The state one node shares between its connections and its commit path.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use corral_auth::{Principal, SuperUsers};
use corral_store::DataTree;
use tokio::sync::mpsc;

use crate::session::SessionTracker;
use crate::tenancy::{Scope, Tenancy, TenancyOptions};
use crate::watch::{ConnId, WatchManager};

/// Everything the server needs to know, already validated by the caller.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub server_id: u64,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
    pub tick_time_ms: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    /// Per client IP; 0 = unlimited.
    pub max_client_cnxns: u32,
    pub max_frame_bytes: usize,
    /// Whitelisted four-letter words; "*" allows all.
    pub four_letter_words: Vec<String>,
    pub ttl_nodes_enabled: bool,
    pub container_check_interval_ms: u64,
    pub snap_count: u64,
    pub snap_retain_count: usize,
    pub max_batch: usize,
    pub max_outstanding_per_session: usize,
    /// Watch events queued to one connection before it is dropped as too slow.
    pub max_queued_events: usize,
    pub log_engine: LogEngine,
    /// ZooKeeper's `readonlymode.enabled`: while a voter has no quorum, a
    /// client that asks for read-only mode may still connect and read.
    pub read_only_mode: bool,
    /// Tenants, the unbound policy and the audit log (none by default).
    pub tenancy: TenancyOptions,
    /// ZooKeeper's `reconfigEnabled` (off by default, as in ZooKeeper).
    pub reconfig_enabled: bool,
    /// The ensemble this node was started with (`None` standalone): what
    /// `/zookeeper/config` shows until a reconfig commits.
    pub ensemble: Option<Arc<corral_store::Ensemble>>,
    /// This process runs the observer role (else a voter or standalone).
    pub observer: bool,
}

/// Which [`corral_store::TxnLog`] holds the txn log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEngine {
    /// Segmented append-only files, one fdatasync per batch (the default).
    File,
    /// sled, the design card's engine; kept for comparison (see docs/benchmarks.md).
    Sled,
}

impl ServerOptions {
    /// Defaults for a single node on loopback (tests, `corral serve` with no config).
    pub fn standalone(data_dir: PathBuf, listen: SocketAddr) -> Self {
        ServerOptions {
            server_id: 1,
            listen,
            log_dir: data_dir.clone(),
            data_dir,
            tick_time_ms: 2000,
            min_session_timeout_ms: 4000,
            max_session_timeout_ms: 40000,
            max_client_cnxns: 60,
            max_frame_bytes: corral_proto::frame::DEFAULT_MAX_FRAME,
            four_letter_words: vec!["*".into()],
            ttl_nodes_enabled: true,
            container_check_interval_ms: 60_000,
            snap_count: 100_000,
            snap_retain_count: 3,
            max_batch: 1000,
            max_outstanding_per_session: 1000,
            max_queued_events: 100_000,
            log_engine: LogEngine::File,
            read_only_mode: false,
            tenancy: TenancyOptions::default(),
            reconfig_enabled: false,
            ensemble: None,
            observer: false,
        }
    }

    pub fn four_letter_allowed(&self, word: &str) -> bool {
        self.four_letter_words.iter().any(|w| w == "*" || w == word)
    }
}

/// What the commit path pushes to a connection.
#[derive(Debug)]
pub enum Outbound {
    /// A ready frame (watch event).
    Frame(Vec<u8>),
    /// Close the connection (session expired or closed elsewhere).
    Close,
}

/// A connected client, as the rest of the node sees it.
pub struct ConnHandle {
    pub conn_id: ConnId,
    pub session_id: i64,
    pub remote: SocketAddr,
    pub principals: Mutex<Arc<Vec<Principal>>>,
    pub tx: mpsc::Sender<Outbound>,
    pub connected_at: Instant,
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub last_zxid: AtomicI64,
    /// A read-only session on a node without a quorum: reads only, and the
    /// session is local to this node (never replicated).
    pub read_only: bool,
    /// The client resumed an existing session (this connection did not create it).
    pub resumed: bool,
    /// The part of the tree this connection sees (see [`crate::tenancy`]).
    pub scope: RwLock<Scope>,
    /// The tenant whose connection slot this connection holds.
    pub counted_tenant: Mutex<Option<String>>,
}

impl ConnHandle {
    pub fn principals(&self) -> Arc<Vec<Principal>> {
        self.principals
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    pub fn scope(&self) -> Scope {
        self.scope.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn set_scope(&self, scope: Scope) {
        if let Ok(mut s) = self.scope.write() {
            *s = scope;
        }
    }
}

/// Counters for the four-letter words and metrics.
#[derive(Default)]
pub struct Stats {
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub latency_total_us: AtomicU64,
    pub latency_count: AtomicU64,
    pub latency_max_us: AtomicU64,
    pub latency_min_us: AtomicU64,
    pub outstanding: AtomicI64,
    pub fsyncs: AtomicU64,
    pub txns_committed: AtomicU64,
    pub connections_refused: AtomicU64,
    pub malformed_frames: AtomicU64,
    /// Bytes this node sent to and received from its voting peers (the
    /// ZAB protocol and forwarded requests), as of the last tick.
    pub peer_bytes_sent: AtomicU64,
    pub peer_bytes_received: AtomicU64,
    /// Bytes and frames sent down observer feeds, as of the last tick.
    pub feed_bytes_sent: AtomicU64,
    pub feed_frames_sent: AtomicU64,
}

impl Stats {
    pub fn record_latency(&self, us: u64) {
        self.latency_total_us.fetch_add(us, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_max_us.fetch_max(us, Ordering::Relaxed);
        let min = self.latency_min_us.load(Ordering::Relaxed);
        if min == 0 || us < min {
            self.latency_min_us.store(us.max(1), Ordering::Relaxed);
        }
    }

    pub fn reset(&self) {
        for a in [
            &self.packets_received,
            &self.packets_sent,
            &self.latency_total_us,
            &self.latency_count,
            &self.latency_max_us,
            &self.latency_min_us,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }
}

/// The node's shared state. Lock order: tree, then watches, then conns,
/// then tracker. The commit path holds the tree write lock while it fires
/// watches, so a read that sees new data runs after the event was queued.
pub struct Shared {
    pub opts: ServerOptions,
    pub tree: Arc<RwLock<DataTree>>,
    pub watches: Mutex<WatchManager>,
    pub conns: Mutex<HashMap<ConnId, Arc<ConnHandle>>>,
    pub session_conn: Mutex<HashMap<i64, ConnId>>,
    pub tracker: Mutex<SessionTracker>,
    pub supers: SuperUsers,
    pub ip_counts: Mutex<HashMap<IpAddr, u32>>,
    pub stats: Stats,
    pub next_conn_id: AtomicU64,
    pub started: Instant,
    /// Milliseconds since `started`, as the node's monotonic clock.
    pub epoch_ms: u64,
    /// Whether clients may connect: always for a standalone node; for a voter
    /// only while it leads an established epoch or follows a synced leader.
    pub serving: AtomicBool,
    /// What `srvr`/`mntr` report about this node's role.
    pub mode: RwLock<ModeInfo>,
    /// Passwords of the local sessions of read-only clients.
    pub ro_sessions: Mutex<HashMap<i64, Vec<u8>>>,
    /// Tenant registry, bindings, per-tenant limits and the audit sink.
    pub tenancy: Tenancy,
    /// Set when a committed reconfig gave this server the other role (see
    /// [`crate::reconfig::applied`]); the process then restarts in it.
    pub role_switch: Mutex<Option<RoleSwitch>>,
    pub role_switched: tokio::sync::Notify,
}

/// A committed reconfig made this server a voter (`to_observer` false) or
/// an observer; `applied` is the zxid it had applied then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleSwitch {
    pub to_observer: bool,
    pub applied: i64,
}

/// A node's role as the four-letter words show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModeInfo {
    /// `standalone`, `leader`, `follower` or `looking`.
    pub mode: &'static str,
    /// The ZAB epoch the node serves in (0 when standalone or looking).
    pub epoch: u32,
    /// The leader's server id, when known.
    pub leader: Option<u64>,
    /// On a leader: learners connected, and those synced and acking.
    pub learners: usize,
    pub synced_followers: usize,
    /// Voters in the configuration (1 when standalone).
    pub voters: usize,
    /// Observer feeds this node serves (voters, and observers that relay).
    pub feeds: usize,
    /// On an observer: where its feed comes from and how far behind it is.
    pub observer: Option<ObserverInfo>,
}

/// An observer's feed, as `srvr` and `mntr` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObserverInfo {
    pub region: String,
    /// The upstream's server id and address, while connected.
    pub upstream: Option<(u64, String)>,
    /// How the current feed caught up: `diff`, `snap`, or `none` yet.
    pub sync_mode: &'static str,
    /// Committed txns known upstream and not yet applied here.
    pub zxid_lag: u64,
    /// How old the newest applied txn is relative to the newest one known
    /// upstream (0 when caught up).
    pub time_lag_ms: u64,
    /// Times the observer moved to another upstream.
    pub failovers: u64,
}

impl ModeInfo {
    pub fn standalone() -> ModeInfo {
        ModeInfo {
            mode: "standalone",
            voters: 1,
            ..ModeInfo::default()
        }
    }
}

impl Shared {
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    pub fn mode(&self) -> ModeInfo {
        self.mode.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// Closes the read-only connections (the node serves again: their
    /// clients reconnect in read-write mode, with a new session).
    pub fn close_read_only_connections(&self) {
        let conns: Vec<Arc<ConnHandle>> = match self.conns.lock() {
            Ok(c) => c.values().filter(|c| c.read_only).cloned().collect(),
            Err(_) => return,
        };
        for c in conns {
            let _ = c.tx.try_send(Outbound::Close);
        }
    }

    /// Closes every client connection (the node stopped serving: clients
    /// reconnect to another server and resume their sessions there).
    pub fn close_all_connections(&self) {
        let conns: Vec<Arc<ConnHandle>> = match self.conns.lock() {
            Ok(c) => c.values().cloned().collect(),
            Err(_) => return,
        };
        for c in conns {
            let _ = c.tx.try_send(Outbound::Close);
        }
    }

    pub fn conn(&self, id: ConnId) -> Option<Arc<ConnHandle>> {
        self.conns.lock().ok()?.get(&id).cloned()
    }

    pub fn conn_of_session(&self, session_id: i64) -> Option<ConnId> {
        self.session_conn.lock().ok()?.get(&session_id).copied()
    }

    pub fn last_zxid(&self) -> i64 {
        self.tree.read().map(|t| t.last_zxid()).unwrap_or(0)
    }
}

/// Wall-clock milliseconds since the Unix epoch (ctime/mtime of znodes).
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
