//! Starting a node: recover the tree from snapshot + log, start the commit
//! path, and accept connections (plain TCP, and TLS when configured) with the
//! per-IP limit.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use corral_auth::SuperUsers;
use corral_store::{DataTree, FileTxnLog, SledTxnLog, TxnLog};
use tokio::net::TcpListener;

use crate::commit::{Replicator, Standalone};
use crate::session::SessionTracker;
use crate::state::{LogEngine, ModeInfo, ServerOptions, Shared, Stats};
use crate::tls::{TlsError, TlsOptions, TlsReloader};
use crate::watch::WatchManager;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("txn_log_engine is {engine} but {other} holds a txn log from the other engine; switch back, or move the data dir aside")]
    OtherEngine { engine: &'static str, other: String },
    #[error("recovering state: {0}")]
    Recover(#[from] corral_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS listener: {0}")]
    Tls(#[from] TlsError),
    /// A role-specific start failure (peer network, cluster config).
    #[error("{0}")]
    Role(String),
    #[error("audit log: {0}")]
    Audit(std::io::Error),
}

/// How a node rebuilds its tree and who commits its writes.
pub trait NodeRole: Send {
    /// Rebuilds the tree from the snapshots and the txn log on disk.
    fn recover(&mut self, opts: &ServerOptions, log: &dyn TxnLog) -> Result<DataTree, NodeError>;

    /// Starts the write path over the recovered state. The role sets
    /// `shared.serving` and `shared.mode` when it may serve.
    fn start(self: Box<Self>, shared: Arc<Shared>, log: Box<dyn TxnLog>) -> RoleStart;
}

/// What [`NodeRole::start`] returns: the replicator, once started.
pub type RoleStart = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Arc<dyn Replicator>, NodeError>> + Send>,
>;

/// A voting core of one: the whole log is committed, so recovery replays it
/// all, and the node serves at once.
pub struct StandaloneRole;

impl NodeRole for StandaloneRole {
    fn recover(&mut self, opts: &ServerOptions, log: &dyn TxnLog) -> Result<DataTree, NodeError> {
        Ok(corral_store::recover(
            &opts.data_dir.join("snapshots"),
            log,
        )?)
    }

    fn start(self: Box<Self>, shared: Arc<Shared>, log: Box<dyn TxnLog>) -> RoleStart {
        if let Ok(mut m) = shared.mode.write() {
            *m = ModeInfo::standalone();
        }
        shared.serving.store(true, Ordering::Release);
        let repl: Arc<dyn Replicator> = Standalone::start(shared, log);
        Box::pin(async move { Ok(repl) })
    }
}

/// A running node.
pub struct Node {
    pub shared: Arc<Shared>,
    pub replicator: Arc<dyn Replicator>,
    pub listener: TcpListener,
    /// The TLS client listener and its reloadable config, when configured.
    pub tls: Option<(TcpListener, Arc<TlsReloader>)>,
}

impl Node {
    /// Recovers state and binds the client port; call [`Node::run`] to serve.
    pub async fn start(opts: ServerOptions, supers: SuperUsers) -> Result<Node, NodeError> {
        Self::start_with_tls(opts, supers, None).await
    }

    /// As [`Node::start`], plus a TLS client listener when `tls` is given. Bad
    /// certificate files stop the start, before any state is touched.
    pub async fn start_with_tls(
        opts: ServerOptions,
        supers: SuperUsers,
        tls: Option<TlsOptions>,
    ) -> Result<Node, NodeError> {
        Self::start_role(opts, supers, tls, Box::new(StandaloneRole)).await
    }

    /// Starts a node whose state recovery and write path belong to `role`
    /// (standalone here; voters and observers in their own crates).
    pub async fn start_role(
        opts: ServerOptions,
        supers: SuperUsers,
        tls: Option<TlsOptions>,
        mut role: Box<dyn NodeRole>,
    ) -> Result<Node, NodeError> {
        let tls_config = tls.map(TlsReloader::load).transpose()?;
        for dir in [&opts.data_dir, &opts.log_dir] {
            std::fs::create_dir_all(dir).map_err(|source| NodeError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let t0 = Instant::now();
        refuse_other_engine(&opts)?;
        let log: Box<dyn TxnLog> = match opts.log_engine {
            LogEngine::File => Box::new(FileTxnLog::open(&opts.log_dir.join("txnlog"))?),
            LogEngine::Sled => Box::new(SledTxnLog::open(&opts.log_dir.join("txnlog-sled"))?),
        };
        let mut tree = role.recover(&opts, log.as_ref())?;
        let tenancy = crate::tenancy::Tenancy::new(opts.tenancy.clone(), opts.server_id)
            .map_err(NodeError::Audit)?;
        let directory = tenancy.load(&mut tree);
        tracing::info!(
            zxid = format_args!("0x{:x}", tree.last_zxid()),
            znodes = tree.node_count(),
            sessions = tree.sessions().len(),
            tenants = directory.registry().len(),
            ms = t0.elapsed().as_millis() as u64,
            "recovered"
        );
        let started = Instant::now();
        let mut tracker = SessionTracker::new(opts.tick_time_ms as u64);
        // Sessions survive a restart; clients get their timeout to reconnect.
        for (id, s) in tree.sessions() {
            tracker.add(*id, s.timeout_ms.max(0) as u32, 0);
        }
        let listener =
            TcpListener::bind(opts.listen)
                .await
                .map_err(|source| NodeError::Listen {
                    addr: opts.listen,
                    source,
                })?;
        let tls = match tls_config {
            Some(config) => {
                let addr = config.options().listen;
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|source| NodeError::Listen { addr, source })?;
                Some((l, config))
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            tree: Arc::new(RwLock::new(tree)),
            watches: Mutex::new(WatchManager::new()),
            conns: Mutex::new(HashMap::new()),
            session_conn: Mutex::new(HashMap::new()),
            tracker: Mutex::new(tracker),
            supers,
            ip_counts: Mutex::new(HashMap::new()),
            stats: Stats::default(),
            next_conn_id: AtomicU64::new(1),
            started,
            epoch_ms: 0,
            serving: AtomicBool::new(false),
            mode: std::sync::RwLock::new(ModeInfo::default()),
            ro_sessions: Mutex::new(HashMap::new()),
            tenancy,
            role_switch: Mutex::new(None),
            role_switched: tokio::sync::Notify::new(),
            opts,
        });
        let replicator = role.start(shared.clone(), log).await?;
        if !shared.opts.tenancy.bootstrap.is_empty() {
            tokio::spawn(crate::tenancy::bootstrap::run(
                shared.clone(),
                replicator.clone(),
            ));
        }
        Ok(Node {
            shared,
            replicator,
            listener,
            tls,
        })
    }

    /// The node's shared state (for watching it while [`Node::run`] runs).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The TLS listener's address, when there is one.
    pub fn secure_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The TLS config holder, to reload it (SIGHUP) or inspect it.
    pub fn tls_reloader(&self) -> Option<Arc<TlsReloader>> {
        self.tls.as_ref().map(|(_, r)| r.clone())
    }

    /// Accepts connections (and polls the TLS files) until the task is dropped.
    pub async fn run(self) {
        let Node {
            shared,
            replicator,
            listener,
            tls,
        } = self;
        let plain = accept_plain(listener, shared.clone(), replicator.clone());
        match tls {
            None => plain.await,
            Some((tls_listener, reloader)) => {
                let secure =
                    crate::tls::accept_loop(tls_listener, reloader.clone(), shared, replicator);
                tokio::select! {
                    _ = plain => {}
                    _ = secure => {}
                    _ = reloader.watch_files() => {}
                }
            }
        }
    }
}

async fn accept_plain(listener: TcpListener, shared: Arc<Shared>, replicator: Arc<dyn Replicator>) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(guard) = IpSlot::admit(&shared, remote) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let repl = replicator.clone();
        tokio::spawn(async move {
            crate::conn::serve(shared, repl, stream, remote).await;
            drop(guard);
        });
    }
}

/// One counted connection from an IP; released on drop.
pub(crate) struct IpSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl IpSlot {
    /// Takes a slot for `remote`, or counts and logs the refusal.
    pub(crate) fn admit(shared: &Arc<Shared>, remote: SocketAddr) -> Option<IpSlot> {
        let slot = IpSlot::take(shared, remote.ip());
        if slot.is_none() {
            shared
                .stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                peer = %remote,
                limit = shared.opts.max_client_cnxns,
                "refusing connection: too many connections from this IP"
            );
            if crate::tenancy::audit::enabled(shared) {
                use corral_tenant::{AuditOp, AuditResult};
                let mut r = crate::tenancy::audit::base(
                    shared,
                    AuditOp::ConnectionRefused,
                    AuditResult::Failure,
                );
                r.client_ip = Some(remote.ip());
                crate::tenancy::audit::emit(shared, r);
            }
        }
        slot
    }

    fn take(shared: &Arc<Shared>, ip: IpAddr) -> Option<IpSlot> {
        let limit = shared.opts.max_client_cnxns;
        let mut counts = shared.ip_counts.lock().ok()?;
        let n = counts.entry(ip).or_insert(0);
        if limit != 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            shared: shared.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.shared.ip_counts.lock() {
            if let Some(n) = counts.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&self.ip);
                }
            }
        }
    }
}

/// A log written by the other engine would be silently ignored: refuse instead.
/// Drops the txn log's entries after `zxid` (a voter made an observer keeps
/// only what it knew committed: its tail may hold proposals that never were).
pub fn truncate_log_after(opts: &ServerOptions, zxid: i64) -> Result<(), NodeError> {
    let mut log: Box<dyn TxnLog> = match opts.log_engine {
        LogEngine::File => Box::new(FileTxnLog::open(&opts.log_dir.join("txnlog"))?),
        LogEngine::Sled => Box::new(SledTxnLog::open(&opts.log_dir.join("txnlog-sled"))?),
    };
    log.truncate_after(zxid)?;
    log.sync()?;
    Ok(())
}

fn refuse_other_engine(opts: &ServerOptions) -> Result<(), NodeError> {
    let (engine, other) = match opts.log_engine {
        LogEngine::File => ("file", opts.log_dir.join("txnlog-sled")),
        LogEngine::Sled => ("sled", opts.log_dir.join("txnlog")),
    };
    let used = std::fs::read_dir(&other).is_ok_and(|mut d| d.next().is_some());
    if used {
        return Err(NodeError::OtherEngine {
            engine,
            other: other.display().to_string(),
        });
    }
    Ok(())
}
