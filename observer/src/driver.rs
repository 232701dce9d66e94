//! The observer thread: applies its feed, serves clients' writes by
//! forwarding them up, relays to observers below it. See the crate docs.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_server::apply::apply_batch;
use corral_server::commit::WriteRequest;
use corral_server::state::{ModeInfo, ObserverInfo, Shared};
use corral_store::snapshot::{load_snapshot, snapshot_file_name};
use corral_store::{LogEntry, StoreError, TxnLog};
use corral_voter::feed::downstream::{Downstream, Step};
use corral_voter::feed::{FeedEvent, FeedOut, FeedSource, Hub, SnapshotJob};
use corral_voter::node::envelope::{self, Envelope, FeedStatus, ForwardOp};
use corral_voter::node::waits::{self, ClientInput, Rpc, Rpcs, Waiters};
use tokio::sync::oneshot;

use crate::upstream::UpEvent;
use crate::{Input, ObserverOptions};

/// Inputs handled per round before housekeeping.
const MAX_ROUND: usize = 2_000;
/// Committed entries kept before the newest snapshot, for DIFFs to
/// observers below that are slightly behind it.
const WINDOW_MARGIN: usize = 500;

/// The committed entries after the newest snapshot, read back from the log
/// at start (they are the relay window).
pub(crate) fn recovered_window(shared: &Shared, log: &dyn TxnLog) -> Result<Window, StoreError> {
    let dir = shared.opts.data_dir.join("snapshots");
    let snaps = corral_store::snapshot::list_snapshots(&dir)?;
    let newest = snaps.iter().copied().max();
    let start = newest.unwrap_or(0);
    let entries: VecDeque<LogEntry> = log.read_after(start)?.into();
    Ok(Window {
        start,
        entries,
        snapshot: (start, newest.map(|z| dir.join(snapshot_file_name(z)))),
    })
}

/// Committed entries after `start`, and the newest snapshot (at or after
/// `start`), which together are what this observer can feed others.
pub(crate) struct Window {
    start: i64,
    entries: VecDeque<LogEntry>,
    snapshot: (i64, Option<PathBuf>),
}

pub(crate) fn spawn(
    opts: ObserverOptions,
    shared: Arc<Shared>,
    log: Box<dyn TxnLog>,
    window: Window,
    rx: Receiver<Input>,
    self_tx: SyncSender<Input>,
    plan: tokio::sync::watch::Receiver<crate::upstream::Plan>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("corral-observer".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Driver::new(opts, shared, log, window, self_tx, plan).run(rx)
            }));
            if r.is_err() {
                eprintln!("corral: the observer thread panicked; aborting");
                std::process::abort();
            }
        })
        .map(|_| ())
}

/// The current upstream connection.
struct Up {
    conn: u64,
    id: u64,
    addr: String,
    out: FeedOut,
    status: FeedStatus,
    not_serving_since: Option<Instant>,
}

/// A snapshot arriving in chunks.
struct SnapIn {
    zxid: i64,
    file: std::fs::File,
    path: PathBuf,
}

struct Driver {
    id: u64,
    opts: ObserverOptions,
    shared: Arc<Shared>,
    log: Box<dyn TxnLog>,
    self_tx: SyncSender<Input>,
    /// The upstream plan in force (a reload replaces it), for its region.
    plan: tokio::sync::watch::Receiver<crate::upstream::Plan>,
    snapshots: PathBuf,
    incoming: PathBuf,
    up: Option<Up>,
    /// The feed's protocol state (what is applied, catch-up progress).
    feed: Downstream,
    serving: bool,
    snap_in: Option<SnapIn>,
    waiters: Waiters,
    /// RPCs to the leader, and syncs waiting for its commit point.
    rpcs: Rpcs,
    window: Window,
    hub: Hub,
    applied_since_snapshot: u64,
    snapshot_running: Arc<AtomicBool>,
    log_dirty: bool,
    last_applied_time: i64,
    /// The newest status heard from any upstream (kept across reconnects).
    last_status: FeedStatus,
    failovers: u64,
    last_upstream: Option<u64>,
}

/// What this observer feeds the observers below it from.
struct ObserverSource<'a> {
    window: &'a Window,
    applied: i64,
    status: FeedStatus,
}

impl FeedSource for ObserverSource<'_> {
    fn applied(&self) -> i64 {
        self.applied
    }

    fn committed_after(&self, z: i64, max: usize) -> Option<Vec<LogEntry>> {
        if z < self.window.start {
            return None;
        }
        // The window is in zxid order: skip to the first entry after `z`.
        let from = self.window.entries.partition_point(|e| e.hdr.zxid <= z);
        Some(
            self.window
                .entries
                .range(from..)
                .take_while(|e| e.hdr.zxid <= self.applied)
                .take(max)
                .cloned()
                .collect(),
        )
    }

    fn snapshot(&self) -> (i64, Option<PathBuf>) {
        self.window.snapshot.clone()
    }

    fn status(&self) -> FeedStatus {
        self.status
    }
}

fn epoch_of(z: i64) -> i64 {
    z >> 32
}

impl Driver {
    fn new(
        opts: ObserverOptions,
        shared: Arc<Shared>,
        log: Box<dyn TxnLog>,
        window: Window,
        self_tx: SyncSender<Input>,
        plan: tokio::sync::watch::Receiver<crate::upstream::Plan>,
    ) -> Driver {
        let data = shared.opts.data_dir.clone();
        if let Ok(mut t) = shared.tracker.lock() {
            t.record_touches(true);
        }
        let id = opts.id;
        let d = Driver {
            id,
            opts,
            log,
            self_tx,
            plan,
            snapshots: data.join("snapshots"),
            incoming: data.join("snap-incoming"),
            up: None,
            feed: Downstream::new(id, shared.last_zxid()),
            serving: false,
            snap_in: None,
            waiters: Waiters::default(),
            rpcs: Rpcs::default(),
            window,
            hub: Hub::new(),
            applied_since_snapshot: 0,
            snapshot_running: Arc::new(AtomicBool::new(false)),
            log_dirty: false,
            last_applied_time: 0,
            last_status: FeedStatus::default(),
            failovers: 0,
            last_upstream: None,
            shared,
        };
        d.update_mode();
        d
    }

    fn run(mut self, rx: Receiver<Input>) {
        let tick = Duration::from_millis(self.opts.tick_ms.max(10));
        waits::run_rounds(&mut self, &rx, tick, MAX_ROUND);
    }

    /// Moves catching-up observer feeds one chunk on.
    fn pump_feeds(&mut self) {
        if !self.hub.catching_up() {
            return;
        }
        let jobs = self.with_feed(|hub, src| hub.pump(src));
        for job in jobs {
            self.spawn_feed_snapshot(job);
        }
    }

    fn input(&mut self, i: Input) {
        match i {
            Input::Client(ClientInput::Write(w)) => self.write(w),
            Input::Client(ClientInput::Sync(reply)) => self.sync(reply),
            Input::Client(ClientInput::Revalidate {
                session_id,
                timeout_ms,
                reply,
            }) => self.revalidate(session_id, timeout_ms, reply),
            Input::Up(ev) => self.up_event(ev),
            Input::UpstreamGone(addr) => {
                if self.up.as_ref().is_some_and(|u| u.addr == addr.to_string()) {
                    self.drop_upstream("its port refuses packets (the process is gone)");
                }
            }
            Input::Feed(ev) => self.feed_event(ev),
            Input::FeedSnapSent { sub, zxid, ok } => {
                let job = self.with_feed(|hub, src| hub.snapshot_sent(sub, zxid, ok, src));
                if let Some(job) = job {
                    self.spawn_feed_snapshot(job);
                }
            }
            Input::SnapshotDone { zxid, path } => self.snapshot_done(zxid, path),
        }
    }

    // ---- the upstream ----

    fn up_event(&mut self, ev: UpEvent) {
        match ev {
            UpEvent::Connected {
                conn,
                upstream,
                addr,
                out,
            } => {
                if self.up.is_some() {
                    self.drop_upstream("replaced");
                }
                let hello = self.feed.connected();
                if out.try_send(envelope::encode(&hello)).is_err() {
                    return;
                }
                if self.last_upstream.is_some_and(|prev| prev != upstream) {
                    self.failovers += 1;
                }
                self.last_upstream = Some(upstream);
                self.up = Some(Up {
                    conn,
                    id: upstream,
                    addr,
                    out,
                    status: FeedStatus::default(),
                    not_serving_since: None,
                });
                self.snap_in = None;
                self.update_mode();
            }
            UpEvent::Frame { conn, frame } => {
                if self.up.as_ref().is_some_and(|u| u.conn == conn) {
                    self.upstream_frame(frame);
                }
            }
            UpEvent::Closed { conn } => {
                if self.up.as_ref().is_some_and(|u| u.conn == conn) {
                    self.up = None;
                    self.snap_in = None;
                    self.feed.disconnected();
                    tracing::warn!("lost the upstream; not serving until a feed is back");
                    self.set_serving(false);
                }
            }
        }
    }

    /// Drops the upstream connection (the writer ends, which closes it, and
    /// the upstream task moves on to the next upstream).
    fn drop_upstream(&mut self, why: &str) {
        if let Some(u) = self.up.take() {
            tracing::warn!(upstream = u.id, addr = %u.addr, "dropping the upstream: {why}");
        }
        self.snap_in = None;
        self.feed.disconnected();
        self.set_serving(false);
    }

    fn upstream_frame(&mut self, frame: Vec<u8>) {
        let env = match envelope::decode(&frame) {
            Ok(e) => e,
            Err(e) => {
                self.drop_upstream(&format!("malformed feed frame: {e}"));
                return;
            }
        };
        match self.feed.on_frame(env) {
            Step::Apply(entries) => self.apply(entries),
            Step::SnapBegin { zxid, len } => self.snap_begin(zxid, len),
            Step::SnapChunk { bytes, last } => self.snap_chunk(&bytes, last),
            Step::Status(st) => self.status(st),
            Step::Relayed { origin, inner } => {
                if origin == self.id {
                    self.answer(inner);
                } else {
                    let env = Envelope::Relayed {
                        origin,
                        inner: Box::new(inner),
                    };
                    self.hub.route(origin, &env);
                }
            }
            Step::Nothing => {}
            Step::Broken(why) => self.drop_upstream(&format!("{why}; resyncing")),
        }
    }

    fn status(&mut self, st: FeedStatus) {
        let grace = Duration::from_millis(self.opts.upstream_grace_ms);
        let Some(u) = self.up.as_mut() else { return };
        u.status = st;
        self.last_status = st;
        if st.serving {
            u.not_serving_since = None;
        } else {
            let since = *u.not_serving_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= grace {
                self.drop_upstream("it has not been serving for too long");
                return;
            }
        }
        self.set_serving(st.serving);
        self.update_mode();
    }

    fn answer(&mut self, env: Envelope) {
        match env {
            Envelope::ForwardFailed {
                session_id,
                cxid,
                code,
            } => self.waiters.fail(&self.shared, session_id, cxid, code),
            Envelope::RevalidateReply { req, live } => {
                self.rpcs.revalidated(&self.shared, req, live)
            }
            Envelope::SyncReply { req, zxid } => self.rpcs.synced(&self.shared, req, zxid),
            other => tracing::warn!(?other, "unexpected relayed answer; ignoring"),
        }
    }

    // ---- applying the feed ----

    /// Applies txns the feed checked (in order, following what is here).
    fn apply(&mut self, fresh: Vec<LogEntry>) {
        let mut batch = Vec::with_capacity(fresh.len());
        for e in &fresh {
            let w = self.waiters.take(e.hdr.session_id, e.hdr.cxid);
            batch.push((e.clone(), w));
        }
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.log.append(&fresh) {
            // The tree is what serves; the log only speeds up a restart. A
            // log that cannot be written is reported, and a restart will
            // resync by SNAP.
            tracing::error!(error = %e, "observer txn log append failed");
        }
        self.log_dirty = true;
        self.last_applied_time = fresh.last().map_or(0, |e| e.hdr.time_ms);
        self.applied_since_snapshot += fresh.len() as u64;
        apply_batch(&self.shared, batch);
        self.hub.publish(&fresh);
        self.window.entries.extend(fresh);
        self.rpcs.applied(self.shared.last_zxid());
        self.maybe_snapshot();
    }

    fn snap_begin(&mut self, zxid: i64, len: u64) {
        if let Err(e) = std::fs::create_dir_all(&self.incoming) {
            self.drop_upstream(&format!("cannot make {}: {e}", self.incoming.display()));
            return;
        }
        let path = self
            .incoming
            .join(format!("{}.part", snapshot_file_name(zxid)));
        let file = match std::fs::File::create(&path) {
            Ok(f) => f,
            Err(e) => {
                self.drop_upstream(&format!("cannot create {}: {e}", path.display()));
                return;
            }
        };
        tracing::info!(
            zxid = format_args!("{zxid:#x}"),
            bytes = len,
            "receiving a snapshot from the upstream"
        );
        self.snap_in = Some(SnapIn { zxid, file, path });
        if len == 0 {
            self.snap_done(true);
        }
    }

    fn snap_chunk(&mut self, bytes: &[u8], last: bool) {
        let Some(s) = self.snap_in.as_mut() else {
            self.drop_upstream("snapshot chunk without a snapshot");
            return;
        };
        if let Err(e) = s.file.write_all(bytes) {
            self.drop_upstream(&format!("writing the incoming snapshot: {e}"));
            return;
        }
        if last {
            self.snap_done(false);
        }
    }

    /// The whole snapshot is here: it becomes this observer's state.
    fn snap_done(&mut self, empty: bool) {
        let Some(SnapIn { zxid, file, path }) = self.snap_in.take() else {
            return;
        };
        if let Err(e) = file.sync_all() {
            self.drop_upstream(&format!("syncing the incoming snapshot: {e}"));
            return;
        }
        drop(file);
        let (tree, kept) = if empty {
            (corral_store::DataTree::default(), None)
        } else {
            match load_snapshot(&path) {
                Ok((z, tree)) if z == zxid => {
                    let dest = self.snapshots.join(snapshot_file_name(zxid));
                    let moved = std::fs::create_dir_all(&self.snapshots)
                        .and_then(|_| std::fs::rename(&path, &dest));
                    match moved {
                        Ok(()) => (tree, Some(dest)),
                        Err(e) => {
                            self.drop_upstream(&format!("keeping the snapshot: {e}"));
                            return;
                        }
                    }
                }
                Ok((z, _)) => {
                    self.drop_upstream(&format!("snapshot announced at {zxid:#x} holds {z:#x}"));
                    return;
                }
                Err(e) => {
                    self.drop_upstream(&format!("cannot load the upstream's snapshot: {e}"));
                    return;
                }
            }
        };
        if let Ok(mut t) = self.shared.tree.write() {
            *t = tree;
            corral_server::tenancy::registry_changed(&self.shared, &mut t);
        }
        // What was logged before is covered by the snapshot.
        if let Err(e) = self.log.purge_through(zxid) {
            tracing::warn!(error = %e, "purging the txn log after a snapshot install");
        }
        self.window = Window {
            start: zxid,
            entries: VecDeque::new(),
            snapshot: (zxid, kept),
        };
        self.applied_since_snapshot = 0;
        // Waiting writes may be inside the snapshot, unmatched: their
        // clients reconnect and see "connection loss" (maybe applied).
        self.waiters.clear();
        self.feed.installed(zxid);
        // Observers below resync against the new state.
        self.hub.reset_all();
        tracing::info!(
            zxid = format_args!("{zxid:#x}"),
            "installed the upstream's snapshot"
        );
    }

    // ---- serving ----

    fn set_serving(&mut self, on: bool) {
        if on == self.serving {
            return;
        }
        self.serving = on;
        if on {
            tracing::info!("observer serving");
            self.shared.close_read_only_connections();
            self.shared.serving.store(true, Ordering::Release);
        } else {
            tracing::info!("observer stopped serving; closing client connections");
            self.shared.serving.store(false, Ordering::Release);
            self.shared.close_all_connections();
            self.waiters.clear();
            self.rpcs.clear();
        }
        self.update_mode();
    }

    /// Sends a request up the chain on behalf of this observer's client.
    fn send_up(&mut self, env: Envelope) -> bool {
        let Some(u) = self.up.as_ref() else {
            return false;
        };
        let env = Envelope::Relayed {
            origin: self.id,
            inner: Box::new(env),
        };
        u.out.try_send(envelope::encode(&env)).is_ok()
    }

    fn write(&mut self, w: WriteRequest) {
        if !self.serving {
            return;
        }
        let (op, shape) = ForwardOp::from_write(w.op);
        if let Some(reply) = w.reply {
            self.waiters.add_reply(w.session_id, w.xid, shape, reply);
        }
        let env = Envelope::Forward {
            session_id: w.session_id,
            cxid: w.xid,
            principals: w.principals.as_ref().clone(),
            op,
        };
        if !self.send_up(env) {
            self.waiters.take(w.session_id, w.xid);
        }
    }

    fn sync(&mut self, reply: oneshot::Sender<bool>) {
        if !self.serving {
            let _ = reply.send(false);
            return;
        }
        let req = self.rpcs.start(Rpc::Sync(reply));
        if !self.send_up(Envelope::Sync { req }) {
            self.rpcs.fail(req);
        }
    }

    fn revalidate(&mut self, session_id: i64, timeout_ms: i32, reply: oneshot::Sender<bool>) {
        if !self.serving {
            // Unknown: dropping the reply closes the connection.
            return;
        }
        let req = self.rpcs.start(Rpc::Revalidate {
            session_id,
            timeout_ms,
            reply,
        });
        let env = Envelope::Revalidate {
            req,
            session_id,
            timeout_ms,
        };
        if !self.send_up(env) {
            self.rpcs.fail(req);
        }
    }

    // ---- observers below ----

    fn feed_status(&self) -> FeedStatus {
        let applied = self.shared.last_zxid();
        let st = self.up.as_ref().map(|u| u.status).unwrap_or_default();
        FeedStatus {
            serving: self.serving,
            tip: st.tip.max(applied),
            leader: st.leader,
            epoch: st.epoch,
            tip_time_ms: st.tip_time_ms.max(self.last_applied_time),
        }
    }

    fn with_feed<T>(&mut self, f: impl FnOnce(&mut Hub, &ObserverSource<'_>) -> T) -> T {
        let src = ObserverSource {
            window: &self.window,
            applied: self.shared.last_zxid(),
            status: self.feed_status(),
        };
        f(&mut self.hub, &src)
    }

    fn feed_event(&mut self, ev: FeedEvent) {
        match ev {
            FeedEvent::Open { sub, observer, out } => self.hub.open(sub, observer, out),
            FeedEvent::Closed { sub } => self.hub.close(sub),
            FeedEvent::Frame { sub, frame } => match envelope::decode(&frame) {
                Ok(Envelope::FeedHello {
                    observer,
                    last_zxid,
                }) => {
                    let job = self.with_feed(|hub, src| hub.hello(sub, observer, last_zxid, src));
                    if let Some(job) = job {
                        self.spawn_feed_snapshot(job);
                    }
                }
                Ok(Envelope::Relayed { origin, inner }) => {
                    if origin == self.id || self.opts.voters.contains(&origin) {
                        tracing::warn!(
                            origin,
                            "a relayed request names this node or a voter; ignoring"
                        );
                        return;
                    }
                    self.hub.learn_route(origin, sub);
                    let is_forward = matches!(*inner, Envelope::Forward { .. });
                    let failed = match &*inner {
                        Envelope::Forward {
                            session_id, cxid, ..
                        } => Some((*session_id, *cxid)),
                        _ => None,
                    };
                    let sent = self.up.as_ref().is_some_and(|u| {
                        u.out
                            .try_send(envelope::encode(&Envelope::Relayed { origin, inner }))
                            .is_ok()
                    });
                    if !sent && is_forward {
                        if let Some((session_id, cxid)) = failed {
                            let env = Envelope::Relayed {
                                origin,
                                inner: Box::new(Envelope::ForwardFailed {
                                    session_id,
                                    cxid,
                                    code: 0,
                                }),
                            };
                            self.hub.route(origin, &env);
                        }
                    }
                }
                Ok(other) => {
                    tracing::warn!(?other, "unexpected frame on an observer feed; ignoring")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "malformed frame on an observer feed; ignoring")
                }
            },
        }
    }

    fn spawn_feed_snapshot(&mut self, job: SnapshotJob) {
        let tx = self.self_tx.clone();
        let (sub, zxid) = (job.sub, job.zxid);
        let started = waits::spawn_feed_snapshot(job, move |sub, zxid, ok| {
            let _ = tx.send(Input::FeedSnapSent { sub, zxid, ok });
        });
        if !started {
            self.with_feed(|hub, src| hub.snapshot_sent(sub, zxid, false, src));
        }
    }

    // ---- snapshots of its own ----

    fn maybe_snapshot(&mut self) {
        if self.applied_since_snapshot < self.shared.opts.snap_count
            || self.snapshot_running.load(Ordering::Acquire)
        {
            return;
        }
        self.applied_since_snapshot = 0;
        let tx = self.self_tx.clone();
        waits::spawn_snapshot(
            &self.shared,
            self.snapshots.clone(),
            &self.snapshot_running,
            move |zxid, path| {
                let _ = tx.send(Input::SnapshotDone { zxid, path });
            },
        );
    }

    fn snapshot_done(&mut self, zxid: i64, path: PathBuf) {
        if zxid < self.window.snapshot.0 {
            return;
        }
        self.window.snapshot = (zxid, Some(path));
        // Keep every entry after the snapshot, and a margin before it.
        let before = self
            .window
            .entries
            .iter()
            .take_while(|e| e.hdr.zxid <= zxid)
            .count();
        let drop_n = before.saturating_sub(WINDOW_MARGIN);
        for _ in 0..drop_n {
            if let Some(e) = self.window.entries.pop_front() {
                self.window.start = e.hdr.zxid;
            }
        }
        match corral_store::purge_snapshots(&self.snapshots, self.shared.opts.snap_retain_count) {
            Ok(kept) => {
                if let Some(&oldest) = kept.iter().min() {
                    if let Err(e) = self.log.purge_through(oldest) {
                        tracing::warn!(error = %e, "purging the txn log failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "purging old snapshots failed"),
        }
    }

    // ---- ticks ----

    fn tick(&mut self) {
        if self.log_dirty {
            self.log_dirty = false;
            if let Err(e) = self.log.sync() {
                tracing::error!(error = %e, "observer txn log sync failed");
            }
        }
        // An upstream that stopped sending statuses (or never caught us up)
        // is handled by the connection's idle timeout; one that keeps saying
        // "not serving" is dropped here after the grace period.
        let grace = Duration::from_millis(self.opts.upstream_grace_ms);
        if self
            .up
            .as_ref()
            .and_then(|u| u.not_serving_since)
            .is_some_and(|t| t.elapsed() >= grace)
        {
            self.drop_upstream("it has not been serving for too long");
        }
        if self.serving {
            let touched = self
                .shared
                .tracker
                .lock()
                .map(|mut t| t.drain_touched())
                .unwrap_or_default();
            if !touched.is_empty() {
                let sessions = touched.into_iter().map(|(s, t)| (s, t as i32)).collect();
                self.send_up(Envelope::Touch { sessions });
            }
        }
        self.expire_waits();
        let st = self.feed_status();
        self.hub
            .status(st, Duration::from_millis(self.opts.tick_ms));
        let feeds = self.hub.stats();
        let stats = &self.shared.stats;
        stats.feed_bytes_sent.store(feeds.bytes, Ordering::Relaxed);
        stats
            .feed_frames_sent
            .store(feeds.frames, Ordering::Relaxed);
        self.update_mode();
    }

    fn expire_waits(&mut self) {
        let limit =
            Duration::from_millis(u64::from(self.shared.opts.max_session_timeout_ms).max(10_000));
        self.waiters.expire(limit);
        self.rpcs.expire(Duration::from_millis(
            self.opts.upstream_grace_ms.max(2_000) * 2,
        ));
    }

    fn update_mode(&self) {
        let applied = self.shared.last_zxid();
        let st = self
            .up
            .as_ref()
            .map(|u| u.status)
            .unwrap_or(self.last_status);
        let zxid_lag = if epoch_of(st.tip) == epoch_of(applied) {
            (st.tip - applied).max(0) as u64
        } else if st.tip > applied {
            // Another epoch: at least one txn, count unknown.
            1
        } else {
            0
        };
        let time_lag_ms = if zxid_lag == 0 {
            0
        } else {
            (st.tip_time_ms - self.last_applied_time).max(0) as u64
        };
        let info = ModeInfo {
            mode: "observer",
            epoch: st.epoch,
            leader: (st.leader != 0 && self.serving).then_some(st.leader),
            learners: 0,
            synced_followers: 0,
            voters: self.opts.voters.len(),
            feeds: self.hub.stats().feeds,
            observer: Some(ObserverInfo {
                region: self.plan.borrow().region.clone(),
                upstream: self.up.as_ref().map(|u| (u.id, u.addr.clone())),
                sync_mode: match (&self.up, self.feed.is_live(), self.feed.snapped()) {
                    (Some(_), true, true) => "snap",
                    (Some(_), true, false) => "diff",
                    _ => "none",
                },
                zxid_lag,
                time_lag_ms,
                failovers: self.failovers,
            }),
        };
        if let Ok(mut m) = self.shared.mode.write() {
            if *m != info {
                *m = info;
            }
        }
    }
}

impl waits::Rounds<Input> for Driver {
    fn input(&mut self, i: Input) {
        Driver::input(self, i)
    }

    fn tick(&mut self) {
        Driver::tick(self)
    }

    fn end_round(&mut self) {
        self.pump_feeds();
    }

    fn hurry(&self) -> bool {
        self.hub.catching_up()
    }
}
