//! The standalone write path: a voting core of one. One thread owns the txn
//! log. It takes a batch of write requests, preps each against the tree plus
//! the pending overlay, appends the batch, fsyncs once (group commit), then
//! applies and replies. No reply leaves before its txn is durable.
//!
//! The same thread runs session expiry, the container/TTL reaper and
//! background snapshots, so all writes have one order.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_auth::Principal;
use corral_proto::{ErrorCode, MultiOp, Request};
use corral_store::{LogEntry, Txn, TxnHeader, TxnLog};
use tokio::sync::oneshot;

use crate::apply::{apply_batch, Committed, Completion, ReplyShape};
use crate::prep::{Pending, Prep, PrepOptions};
use crate::state::{wall_ms, Shared};

/// A write waiting for the commit path.
pub struct WriteRequest {
    pub session_id: i64,
    pub xid: i32,
    pub op: WriteOp,
    pub principals: Arc<Vec<Principal>>,
    pub reply: Option<oneshot::Sender<Committed>>,
}

pub enum WriteOp {
    Client(Request),
    CreateSession {
        timeout_ms: i32,
        passwd: Vec<u8>,
    },
    /// Records the session's tenant in the replicated session table (see
    /// [`crate::tenancy::bind`]); prep decides it ([`Prep::bind_session`]).
    BindSession {
        tenant: String,
    },
}

impl WriteOp {
    /// The reply shape its waiter expects: the connection itself answers
    /// the client for the internal writes.
    pub fn shape(&self) -> ReplyShape {
        match self {
            WriteOp::Client(req) => shape_of(req),
            WriteOp::CreateSession { .. } | WriteOp::BindSession { .. } => ReplyShape::Session,
        }
    }
}

impl Prep<'_> {
    /// Preps a write of any kind. Never fails: errors become `Txn::Error`.
    pub fn write(&mut self, op: &WriteOp) -> Txn {
        match op {
            WriteOp::Client(req) => self.request(req.opcode(), req),
            WriteOp::CreateSession { timeout_ms, passwd } => Txn::CreateSession {
                timeout_ms: *timeout_ms,
                passwd: passwd.clone(),
            },
            WriteOp::BindSession { tenant } => self.bind_session(tenant),
        }
    }
}

/// Where connections submit writes. The standalone commit path implements it
/// here; voters (`corral-voter`) and observers implement it too.
pub trait Replicator: Send + Sync + 'static {
    /// Queues a write; gives it back if the queue is full or the node is stopping.
    fn submit(&self, w: WriteRequest) -> Result<(), Box<WriteRequest>>;

    /// `sync`: resolves `true` once this node has applied everything the
    /// ensemble had committed when the call was made, `false` if that cannot
    /// be known (the node lost its leader; the client should reconnect). A
    /// standalone node has applied everything it acknowledged.
    fn sync(&self) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(true);
        rx
    }

    /// A client reconnects with `session_id` (its password already checked
    /// against the tree): resolves `true` if the session is live and now
    /// owned by this node. The standalone answer is the local tracker's.
    fn revalidate(
        &self,
        shared: &Shared,
        session_id: i64,
        timeout_ms: i32,
    ) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        let live = match shared.tracker.lock() {
            Ok(mut t) if t.is_live(session_id) => {
                t.set_timeout(session_id, timeout_ms.max(0) as u32, shared.now_ms());
                true
            }
            _ => false,
        };
        let _ = tx.send(live);
        rx
    }
}

/// The standalone replicator: a bounded queue into the commit thread.
pub struct Standalone {
    tx: SyncSender<WriteRequest>,
}

impl Replicator for Standalone {
    fn submit(&self, w: WriteRequest) -> Result<(), Box<WriteRequest>> {
        self.tx.try_send(w).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(w) => Box::new(w),
            std::sync::mpsc::TrySendError::Disconnected(w) => Box::new(w),
        })
    }
}

/// Bound of the write queue into the commit thread.
pub const WRITE_QUEUE_LEN: usize = 10_000;

impl Standalone {
    /// Starts the commit thread over a recovered log.
    pub fn start(shared: Arc<Shared>, log: Box<dyn TxnLog>) -> Arc<Standalone> {
        let (tx, rx) = std::sync::mpsc::sync_channel(WRITE_QUEUE_LEN);
        std::thread::Builder::new()
            .name("corral-commit".into())
            .spawn(move || {
                // A panic here is a broken invariant: crash loudly rather than
                // serve reads from a node that can no longer commit.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    CommitLoop::new(shared, log).run(rx)
                }));
                if r.is_err() {
                    eprintln!("corral: the commit thread panicked; aborting");
                    std::process::abort();
                }
            })
            .expect("spawning the commit thread");
        Arc::new(Standalone { tx })
    }
}

struct CommitLoop {
    shared: Arc<Shared>,
    log: Box<dyn TxnLog>,
    pending: Pending,
    prep_opts: PrepOptions,
    next_counter: i64,
    epoch: i64,
    txns_since_snapshot: u64,
    snapshot_running: Arc<std::sync::atomic::AtomicBool>,
    /// Log entries at or below this zxid are covered by every retained snapshot.
    purge_through: Arc<std::sync::atomic::AtomicI64>,
    purged_through: i64,
    last_reap: Instant,
    log_failed: bool,
}

impl CommitLoop {
    fn new(shared: Arc<Shared>, log: Box<dyn TxnLog>) -> Self {
        let last = shared.last_zxid();
        let prep_opts = PrepOptions::for_node(&shared);
        CommitLoop {
            log,
            pending: Pending::new(),
            prep_opts,
            epoch: (last >> 32).max(1),
            next_counter: if last >> 32 >= 1 {
                (last & 0xffff_ffff) + 1
            } else {
                1
            },
            txns_since_snapshot: 0,
            snapshot_running: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            purge_through: Arc::new(std::sync::atomic::AtomicI64::new(0)),
            purged_through: 0,
            last_reap: Instant::now(),
            log_failed: false,
            shared,
        }
    }

    fn next_zxid(&mut self) -> i64 {
        // zxid = epoch << 32 | counter. A standalone node starts a new epoch
        // when the counter would roll over, as a ZooKeeper leader re-elects.
        if self.next_counter > 0xffff_fffe {
            self.epoch += 1;
            self.next_counter = 1;
        }
        let z = (self.epoch << 32) | self.next_counter;
        self.next_counter += 1;
        z
    }

    fn run(mut self, rx: Receiver<WriteRequest>) {
        let tick = Duration::from_millis(self.shared.opts.tick_time_ms.clamp(10, 1000) as u64 / 2);
        loop {
            let first = match rx.recv_timeout(tick) {
                Ok(w) => Some(w),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut batch: Vec<WriteRequest> = first.into_iter().collect();
            while batch.len() < self.shared.opts.max_batch {
                match rx.try_recv() {
                    Ok(w) => batch.push(w),
                    Err(_) => break,
                }
            }
            let mut internal = self.expired_sessions();
            internal.extend(self.reaper_requests());
            batch.extend(internal);
            if !batch.is_empty() {
                self.commit(batch);
            }
            self.maybe_snapshot();
        }
    }

    /// Preps, logs, fsyncs, applies and replies to one batch.
    fn commit(&mut self, batch: Vec<WriteRequest>) {
        let mut entries = Vec::with_capacity(batch.len());
        let mut waiters = Vec::with_capacity(batch.len());
        {
            let shared = self.shared.clone();
            let Ok(tree) = shared.tree.read() else {
                return;
            };
            let time_ms = wall_ms();
            for w in batch {
                let zxid = self.next_zxid();
                let mut prep = Prep {
                    tree: &tree,
                    pending: &mut self.pending,
                    opts: &self.prep_opts,
                    session_id: w.session_id,
                    principals: &w.principals,
                    zxid,
                    time_ms,
                };
                let (txn, shape) = (prep.write(&w.op), w.op.shape());
                entries.push(LogEntry {
                    hdr: TxnHeader {
                        session_id: w.session_id,
                        cxid: w.xid,
                        zxid,
                        time_ms,
                    },
                    txn,
                });
                waiters.push(w.reply.map(|reply| Completion {
                    xid: w.xid,
                    shape,
                    reply,
                }));
            }
        }
        self.pending.clear();
        if let Err(e) = self.persist(&entries) {
            self.fail_batch(e, entries, waiters);
            return;
        }
        self.txns_since_snapshot += entries.len() as u64;
        apply_batch(&self.shared, entries.into_iter().zip(waiters).collect());
    }

    fn persist(&mut self, entries: &[LogEntry]) -> Result<(), corral_store::StoreError> {
        self.log.append(entries)?;
        self.log.sync()?;
        self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        if self.log_failed {
            tracing::info!("txn log writable again");
            self.log_failed = false;
        }
        Ok(())
    }

    /// The log refused the batch (disk full, I/O error): nothing was applied,
    /// so undo the zxids, drop any partial append and tell every waiter.
    fn fail_batch(
        &mut self,
        e: corral_store::StoreError,
        entries: Vec<LogEntry>,
        waiters: Vec<Option<Completion>>,
    ) {
        if !self.log_failed {
            tracing::error!(error = %e, "txn log append/fsync failed; writes fail until it recovers");
        }
        self.log_failed = true;
        let last = self.shared.last_zxid();
        if let Err(e2) = self.log.truncate_after(last) {
            tracing::error!(error = %e2, "could not truncate the txn log after a failed append");
        }
        self.next_counter -= entries.len() as i64;
        for (entry, w) in entries.into_iter().zip(waiters) {
            if matches!(entry.txn, Txn::CloseSession) {
                // Let expiry retry on the next tick.
                if let Ok(mut t) = self.shared.tracker.lock() {
                    t.add(
                        entry.hdr.session_id,
                        self.shared.opts.tick_time_ms,
                        self.shared.now_ms(),
                    );
                }
            }
            if let Some(c) = w {
                let err = ErrorCode::SystemError.code();
                let frame = match c.shape {
                    ReplyShape::Session => None,
                    _ => Some(crate::apply::reply_frame(c.xid, last, err, None)),
                };
                let _ = c.reply.send(Committed {
                    zxid: last,
                    err,
                    frame,
                });
            }
        }
    }

    fn expired_sessions(&mut self) -> Vec<WriteRequest> {
        let now = self.shared.now_ms();
        let expired = match self.shared.tracker.lock() {
            Ok(mut t) => t.expire(now),
            Err(_) => return Vec::new(),
        };
        expired
            .into_iter()
            .map(|session_id| {
                tracing::info!(
                    session = format_args!("0x{session_id:x}"),
                    "session expired"
                );
                self.shared.tenancy.note_expiring(session_id);
                WriteRequest {
                    session_id,
                    xid: 0,
                    op: WriteOp::Client(Request::CloseSession),
                    principals: Arc::new(Vec::new()),
                    reply: None,
                }
            })
            .collect()
    }

    /// Containers emptied of children and expired TTL nodes, as deleteContainer requests.
    fn reaper_requests(&mut self) -> Vec<WriteRequest> {
        let interval = Duration::from_millis(self.shared.opts.container_check_interval_ms);
        if self.last_reap.elapsed() < interval {
            return Vec::new();
        }
        self.last_reap = Instant::now();
        let Ok(tree) = self.shared.tree.read() else {
            return Vec::new();
        };
        let mut paths = tree.container_candidates();
        if self.shared.opts.ttl_nodes_enabled {
            paths.extend(tree.ttl_candidates(wall_ms()));
        }
        paths
            .into_iter()
            .map(|p| WriteRequest {
                session_id: 0,
                xid: 0,
                op: WriteOp::Client(Request::DeleteContainer(p)),
                principals: Arc::new(vec![corral_auth::super_principal()]),
                reply: None,
            })
            .collect()
    }

    /// Starts a fuzzy snapshot in the background every `snap_count` txns, then
    /// purges old snapshots and the log they cover.
    fn maybe_snapshot(&mut self) {
        let through = self.purge_through.load(Ordering::Acquire);
        if through > self.purged_through {
            match self.log.purge_through(through) {
                Ok(()) => self.purged_through = through,
                Err(e) => tracing::warn!(error = %e, "purging the txn log failed"),
            }
        }
        if self.txns_since_snapshot < self.shared.opts.snap_count
            || self.snapshot_running.load(Ordering::Acquire)
        {
            return;
        }
        self.txns_since_snapshot = 0;
        self.snapshot_running.store(true, Ordering::Release);
        let shared = self.shared.clone();
        let running = self.snapshot_running.clone();
        let purge = self.purge_through.clone();
        std::thread::Builder::new()
            .name("corral-snapshot".into())
            .spawn(move || {
                if let Some(z) = snapshot_and_purge(&shared) {
                    purge.store(z, Ordering::Release);
                }
                running.store(false, Ordering::Release);
            })
            .ok();
    }
}

/// Writes a snapshot and purges old ones; returns the zxid through which the
/// log is no longer needed (the start of the oldest retained snapshot).
fn snapshot_and_purge(shared: &Shared) -> Option<i64> {
    let dir = shared.opts.data_dir.join("snapshots");
    match corral_store::write_fuzzy_snapshot(&shared.tree, &dir) {
        Ok((zxid, path)) => {
            tracing::info!(zxid = format_args!("0x{zxid:x}"), file = %path.display(), "snapshot written");
            match corral_store::purge_snapshots(&dir, shared.opts.snap_retain_count) {
                Ok(kept) => kept.iter().min().copied(),
                Err(e) => {
                    tracing::warn!(error = %e, "purging old snapshots failed");
                    None
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "snapshot failed");
            None
        }
    }
}

/// The reply shape a client expects for this request.
pub fn shape_of(req: &Request) -> ReplyShape {
    match req {
        Request::Multi(ops) => ReplyShape::Multi(
            ops.iter()
                .map(|o| match o {
                    MultiOp::Create(code, c) => {
                        crate::prep::multi_create(*code, c).map_or(*code, |n| n.opcode())
                    }
                    other => other.opcode(),
                })
                .collect(),
        ),
        other => ReplyShape::Op(other.opcode()),
    }
}
