//! Starting a node: recover the tree from snapshot + log, start the commit
//! path, and accept connections with the per-IP limit.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use corral_auth::SuperUsers;
use corral_store::{SledTxnLog, TxnLog};
use tokio::net::TcpListener;

use crate::commit::{Replicator, Standalone};
use crate::session::SessionTracker;
use crate::state::{ServerOptions, Shared, Stats};
use crate::watch::WatchManager;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("recovering state: {0}")]
    Recover(#[from] corral_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running node.
pub struct Node {
    pub shared: Arc<Shared>,
    pub replicator: Arc<dyn Replicator>,
    pub listener: TcpListener,
}

impl Node {
    /// Recovers state and binds the client port; call [`Node::run`] to serve.
    pub async fn start(opts: ServerOptions, supers: SuperUsers) -> Result<Node, NodeError> {
        for dir in [&opts.data_dir, &opts.log_dir] {
            std::fs::create_dir_all(dir).map_err(|source| NodeError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let t0 = Instant::now();
        let log = SledTxnLog::open(&opts.log_dir.join("txnlog"))?;
        let tree = corral_store::recover(&opts.data_dir.join("snapshots"), &log)?;
        tracing::info!(
            zxid = format_args!("0x{:x}", tree.last_zxid()),
            znodes = tree.node_count(),
            sessions = tree.sessions().len(),
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
            opts,
        });
        let replicator: Arc<dyn Replicator> =
            Standalone::start(shared.clone(), Box::new(log) as Box<dyn TxnLog>);
        Ok(Node {
            shared,
            replicator,
            listener,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until the task is dropped.
    pub async fn run(self) {
        loop {
            let (stream, remote) = match self.listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let Some(guard) = IpSlot::take(&self.shared, remote.ip()) else {
                self.shared
                    .stats
                    .connections_refused
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    peer = %remote,
                    limit = self.shared.opts.max_client_cnxns,
                    "refusing connection: too many connections from this IP"
                );
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let shared = self.shared.clone();
            let repl = self.replicator.clone();
            tokio::spawn(async move {
                crate::conn::serve(shared, repl, stream, remote).await;
                drop(guard);
            });
        }
    }
}

/// One counted connection from an IP; released on drop.
struct IpSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl IpSlot {
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
