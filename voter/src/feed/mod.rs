//! The observer feed: how an upstream (a voter, or an observer that relays)
//! streams the committed txn sequence to the observers below it, and how
//! those observers' requests travel back up.
//!
//! # Protocol
//!
//! A feed is one QUIC connection (ALPN [`link::FEED_ALPN`], mutual TLS under
//! the cluster CA) that the downstream dials. Each direction is one
//! unidirectional stream of length-prefixed frames; each frame is one
//! [`Envelope`](crate::node::envelope::Envelope).
//!
//! 1. The downstream sends `FeedHello { observer, last_zxid }`: its server
//!    id (it must match its certificate) and the last zxid it applied.
//! 2. The upstream catches it up with whichever is possible:
//!    - **DIFF**: the committed txns after `last_zxid`, when its log window
//!      still holds them (always true when the downstream is at most one
//!      snapshot interval behind);
//!    - **SNAP**: `FeedSnapBegin`, the newest snapshot file in 1 MiB chunks,
//!      then the committed txns after the snapshot.
//!
//!    A downstream that is *ahead* (its upstream restarted from an older
//!    snapshot) just waits: the upstream skips what it already has.
//!
//!    The DIFF goes out in chunks of [`CATCH_UP_CHUNK`] txns, one chunk per
//!    feed per [`Hub::pump`] and only while fewer than [`CATCH_UP_QUEUED`]
//!    frames wait in the feed's queue, and all feeds together at most
//!    [`CATCH_UP_BYTES_PER_SEC`], so a
//!    new observer far behind never stalls the upstream's thread (on the
//!    leader that would stall the quorum) nor floods its own queue.
//! 3. Then `FeedStatus`, and from there on every txn the upstream applies,
//!    in zxid order, with a status heartbeat each tick.
//!
//! Only committed txns are ever sent, so a downstream never holds data from
//! an unknown future and never needs a TRUNC. Upward, the downstream sends
//! `Relayed { origin, .. }` requests (forwarded writes, session touches,
//! revalidation, `sync`) that each hop passes to its own upstream until the
//! leader answers; the answer comes back down as `Relayed { origin, .. }`,
//! and each hop routes it to the feed it learned `origin` from.
//!
//! # Bounds
//!
//! Each feed has a bounded outbound queue ([`FEED_QUEUE`] frames). A
//! downstream that falls that far behind is disconnected rather than allowed
//! to grow the upstream's memory or slow it down; it redials and resumes by
//! DIFF. Txn frames are cut at about [`TXN_FRAME_BYTES`].

pub mod downstream;
pub mod link;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use corral_store::LogEntry;
use tokio::sync::mpsc;

use crate::node::envelope::{self, Envelope, FeedStatus};

/// Frames queued to one downstream, at most.
pub const FEED_QUEUE: usize = 2048;
/// A txn frame is closed once it holds this many encoded bytes.
pub const TXN_FRAME_BYTES: usize = 1 << 20;
/// Snapshot chunk size.
pub const SNAP_CHUNK: usize = 1 << 20;
/// Txns one catching-up feed is sent per [`Hub::pump`].
pub const CATCH_UP_CHUNK: usize = 1000;
/// A catching-up feed gets its next chunk only while fewer frames than
/// this wait in its queue.
pub const CATCH_UP_QUEUED: usize = 8;
/// Catch-up bytes one upstream sends per second, over all its feeds: a
/// burst of observers catching up must not starve the live feeds and the
/// quorum's own traffic, which share the node's network and CPU.
pub const CATCH_UP_BYTES_PER_SEC: f64 = 16.0 * 1024.0 * 1024.0;

/// One feed connection, as the upstream's driver numbers it.
pub type SubId = u64;

/// Where a feed's outbound frames go (the connection's writer task).
pub type FeedOut = mpsc::Sender<Vec<u8>>;

/// What the transport tells the upstream's driver about its feeds.
#[derive(Debug)]
pub enum FeedEvent {
    /// A downstream with a verified certificate for server `observer`
    /// connected.
    Open {
        sub: SubId,
        observer: u64,
        out: FeedOut,
    },
    Frame {
        sub: SubId,
        frame: Vec<u8>,
    },
    Closed {
        sub: SubId,
    },
}

/// What an upstream's state offers its feeds.
pub trait FeedSource {
    /// The highest zxid applied to this node's tree.
    fn applied(&self) -> i64;
    /// At most `max` committed txns after `z` (through
    /// [`FeedSource::applied`]), or `None` when `z` is older than what is
    /// held (a SNAP is needed).
    fn committed_after(&self, z: i64, max: usize) -> Option<Vec<LogEntry>>;
    /// The newest snapshot: its zxid, and its file (`None`: the empty tree).
    fn snapshot(&self) -> (i64, Option<PathBuf>);
    fn status(&self) -> FeedStatus;
}

/// A snapshot the driver must stream (a file read; off the driver thread).
#[derive(Debug)]
pub struct SnapshotJob {
    pub sub: SubId,
    pub zxid: i64,
    pub path: Option<PathBuf>,
    pub out: FeedOut,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SubState {
    /// Waiting for the hello.
    New,
    /// A snapshot at this zxid is being streamed.
    Snapshot(i64),
    /// Being sent the txns after this zxid from the window, in chunks.
    CatchUp(i64),
    /// Receiving every committed txn after this zxid.
    Live(i64),
}

struct Sub {
    observer: u64,
    out: FeedOut,
    state: SubState,
}

/// Counters of an upstream's feeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    pub feeds: usize,
    pub diffs: u64,
    pub snaps: u64,
    pub frames: u64,
    pub bytes: u64,
    /// Feeds dropped because their queue was full.
    pub slow_disconnects: u64,
}

/// The upstream side of every feed of one node. Owned by the node's driver
/// thread; sending never blocks.
#[derive(Default)]
pub struct Hub {
    subs: BTreeMap<SubId, Sub>,
    /// Which feed each relaying origin was last heard from.
    routes: HashMap<u64, SubId>,
    stats: HubStats,
    last_status: Option<(FeedStatus, Instant)>,
    /// Catch-up byte budget (a token bucket of one second's worth).
    budget: f64,
    budget_at: Option<Instant>,
}

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    /// Refills the catch-up budget; true while some is left.
    fn refill(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = self
            .budget_at
            .map_or(1.0, |t| now.duration_since(t).as_secs_f64());
        self.budget_at = Some(now);
        self.budget = (self.budget + elapsed * CATCH_UP_BYTES_PER_SEC).min(CATCH_UP_BYTES_PER_SEC);
        self.budget > 0.0
    }

    pub fn stats(&self) -> HubStats {
        HubStats {
            feeds: self.subs.len(),
            ..self.stats
        }
    }

    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// The server ids of the connected downstreams.
    pub fn observers(&self) -> Vec<u64> {
        self.subs.values().map(|s| s.observer).collect()
    }

    pub fn open(&mut self, sub: SubId, observer: u64, out: FeedOut) {
        tracing::info!(observer, "observer feed connected");
        self.subs.insert(
            sub,
            Sub {
                observer,
                out,
                state: SubState::New,
            },
        );
    }

    /// Forgets a feed (its connection ended, or it is being dropped: the
    /// writer closes the connection once the last sender is gone).
    pub fn close(&mut self, sub: SubId) {
        if let Some(s) = self.subs.remove(&sub) {
            tracing::info!(observer = s.observer, "observer feed closed");
        }
        self.routes.retain(|_, s| *s != sub);
    }

    /// Drops every feed: this node's state jumped (it installed a snapshot),
    /// so each downstream must redial and resync.
    pub fn reset_all(&mut self) {
        let subs: Vec<SubId> = self.subs.keys().copied().collect();
        for s in subs {
            self.close(s);
        }
    }

    /// The downstream's hello: check who it is, then DIFF, or ask the driver
    /// for a SNAP.
    pub fn hello(
        &mut self,
        sub: SubId,
        observer: u64,
        last_zxid: i64,
        src: &dyn FeedSource,
    ) -> Option<SnapshotJob> {
        let s = self.subs.get(&sub)?;
        if s.observer != observer || s.state != SubState::New {
            tracing::warn!(
                cert = s.observer,
                claimed = observer,
                "observer feed hello does not match its certificate, or came twice; closing"
            );
            self.close(sub);
            return None;
        }
        self.catch_up(sub, last_zxid, src)
    }

    /// Starts sending the txns after `from`: by DIFF when the window holds
    /// them, else the driver must stream a SNAP.
    fn catch_up(&mut self, sub: SubId, from: i64, src: &dyn FeedSource) -> Option<SnapshotJob> {
        if src.committed_after(from, 0).is_some() {
            let s = self.subs.get_mut(&sub)?;
            if s.state == SubState::New {
                self.stats.diffs += 1;
            }
            tracing::info!(
                observer = s.observer,
                from = format_args!("{from:#x}"),
                to = format_args!("{:#x}", src.applied()),
                "observer feed: DIFF"
            );
            s.state = SubState::CatchUp(from);
            return self.step(sub, src);
        }
        let (zxid, path) = src.snapshot();
        let s = self.subs.get_mut(&sub)?;
        self.stats.snaps += 1;
        tracing::info!(
            observer = s.observer,
            from = format_args!("{from:#x}"),
            snapshot = format_args!("{zxid:#x}"),
            "observer feed: SNAP"
        );
        s.state = SubState::Snapshot(zxid);
        Some(SnapshotJob {
            sub,
            zxid,
            path,
            out: s.out.clone(),
        })
    }

    /// One chunk of a feed's catch-up, if its queue has room; the status
    /// and live txns follow once it reaches what this node applied.
    fn step(&mut self, sub: SubId, src: &dyn FeedSource) -> Option<SnapshotJob> {
        let s = self.subs.get(&sub)?;
        let SubState::CatchUp(through) = s.state else {
            return None;
        };
        // The next chunk only while few frames wait in the queue: catch-up
        // is paced by how fast the connection drains, and live frames for
        // other feeds (and the peer protocol sharing the runtime) are not
        // stuck behind a burst.
        if s.out.max_capacity() - s.out.capacity() >= CATCH_UP_QUEUED {
            return None;
        }
        if !self.refill() {
            return None;
        }
        let Some(entries) = src.committed_after(through, CATCH_UP_CHUNK) else {
            // The window moved past this feed meanwhile (a snapshot was
            // taken and the log trimmed): a SNAP after all.
            return self.catch_up(sub, through, src);
        };
        let Some(last) = entries.last().map(|e| e.hdr.zxid) else {
            self.go_live(sub, through, src);
            return None;
        };
        let done = entries.len() < CATCH_UP_CHUNK;
        for f in txn_frames(through, &entries) {
            self.budget -= f.len() as f64;
            if !self.push(sub, f) {
                return None;
            }
        }
        if let Some(s) = self.subs.get_mut(&sub) {
            s.state = SubState::CatchUp(last);
        }
        if done {
            // Everything this node applied is sent: from here on the feed
            // is live (what is applied next is published to it). Under a
            // steady write load a pump always finds something new, so it
            // must not wait for an empty chunk.
            self.go_live(sub, last, src);
        }
        None
    }

    fn go_live(&mut self, sub: SubId, through: i64, src: &dyn FeedSource) {
        if self.push(sub, envelope::encode(&Envelope::FeedStatus(src.status()))) {
            if let Some(s) = self.subs.get_mut(&sub) {
                s.state = SubState::Live(through);
            }
        }
    }

    /// Moves every catching-up feed one chunk on, within the byte budget
    /// ([`CATCH_UP_BYTES_PER_SEC`]); call once per driver round. Returns
    /// SNAPs the driver must now stream (a window moved).
    pub fn pump(&mut self, src: &dyn FeedSource) -> Vec<SnapshotJob> {
        let ids: Vec<SubId> = self
            .subs
            .iter()
            .filter(|(_, s)| matches!(s.state, SubState::CatchUp(_)))
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|sub| self.step(sub, src))
            .collect()
    }

    /// Whether any feed is still catching up (the driver keeps pumping).
    pub fn catching_up(&self) -> bool {
        self.subs
            .values()
            .any(|s| matches!(s.state, SubState::CatchUp(_)))
    }

    /// The snapshot thread finished streaming: send what came after it.
    pub fn snapshot_sent(
        &mut self,
        sub: SubId,
        zxid: i64,
        ok: bool,
        src: &dyn FeedSource,
    ) -> Option<SnapshotJob> {
        let s = self.subs.get(&sub)?;
        if s.state != SubState::Snapshot(zxid) {
            return None;
        }
        if !ok {
            self.close(sub);
            return None;
        }
        self.catch_up(sub, zxid, src)
    }

    /// Sends newly applied txns to every live feed.
    pub fn publish(&mut self, entries: &[LogEntry]) {
        if entries.is_empty() || self.subs.is_empty() {
            return;
        }
        let first = entries[0].hdr.zxid;
        let last = entries[entries.len() - 1].hdr.zxid;
        // Most feeds are exactly at the previous tip: encode once for them
        // (frames name the txn before them, so one encoding serves every
        // feed at the same position).
        let mut common: HashMap<i64, Vec<Vec<u8>>> = HashMap::new();
        let ids: Vec<SubId> = self.subs.keys().copied().collect();
        for sub in ids {
            let Some(SubState::Live(through)) = self.subs.get(&sub).map(|s| s.state) else {
                continue;
            };
            if through >= last {
                continue;
            }
            let frames = if through < first {
                common
                    .entry(through)
                    .or_insert_with(|| txn_frames(through, entries))
                    .clone()
            } else {
                let rest: Vec<LogEntry> = entries
                    .iter()
                    .filter(|e| e.hdr.zxid > through)
                    .cloned()
                    .collect();
                txn_frames(through, &rest)
            };
            let mut ok = true;
            for f in frames {
                if !self.push(sub, f) {
                    ok = false;
                    break;
                }
            }
            if ok {
                if let Some(s) = self.subs.get_mut(&sub) {
                    s.state = SubState::Live(last);
                }
            }
        }
    }

    /// Sends the status to every live feed: at once when it changed, else
    /// as a heartbeat at most every `every`.
    pub fn status(&mut self, st: FeedStatus, every: std::time::Duration) {
        let due = match &self.last_status {
            Some((prev, at)) => *prev != st || at.elapsed() >= every,
            None => true,
        };
        if !due || self.subs.is_empty() {
            return;
        }
        self.last_status = Some((st, Instant::now()));
        let frame = envelope::encode(&Envelope::FeedStatus(st));
        let ids: Vec<SubId> = self
            .subs
            .iter()
            .filter(|(_, s)| matches!(s.state, SubState::Live(_)))
            .map(|(id, _)| *id)
            .collect();
        for sub in ids {
            self.push(sub, frame.clone());
        }
    }

    /// Remembers that `origin`'s requests come through `sub`.
    pub fn learn_route(&mut self, origin: u64, sub: SubId) {
        self.routes.insert(origin, sub);
    }

    /// Sends a relayed answer down toward `origin`; false when no feed leads
    /// there (the observer went away; its client's request times out).
    pub fn route(&mut self, origin: u64, env: &Envelope) -> bool {
        match self.routes.get(&origin).copied() {
            Some(sub) => self.push(sub, envelope::encode(env)),
            None => false,
        }
    }

    /// Queues one frame; a full or closed queue drops the feed.
    fn push(&mut self, sub: SubId, frame: Vec<u8>) -> bool {
        let Some(s) = self.subs.get(&sub) else {
            return false;
        };
        let len = frame.len();
        match s.out.try_send(frame) {
            Ok(()) => {
                self.stats.frames += 1;
                self.stats.bytes += len as u64;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    observer = s.observer,
                    "observer feed is {FEED_QUEUE} frames behind; disconnecting it (it resumes by DIFF)"
                );
                self.stats.slow_disconnects += 1;
                self.close(sub);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.close(sub);
                false
            }
        }
    }
}

/// Encodes txns that follow `prev` as `FeedTxns` frames of about
/// [`TXN_FRAME_BYTES`] each, each frame naming the txn before its first.
pub fn txn_frames(prev: i64, entries: &[LogEntry]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut bufs = Vec::new();
    let mut bytes = 0;
    let mut before = prev;
    for e in entries {
        let b = e.encode();
        bytes += b.len();
        bufs.push(b);
        if bytes >= TXN_FRAME_BYTES {
            frames.push(envelope::feed_txns_frame(before, &bufs));
            bufs.clear();
            bytes = 0;
            before = e.hdr.zxid;
        }
    }
    if !bufs.is_empty() {
        frames.push(envelope::feed_txns_frame(before, &bufs));
    }
    frames
}

/// Streams a snapshot file as `FeedSnapBegin` + chunks. Runs on its own
/// thread (it blocks on the feed's queue). Returns false when the file
/// cannot be read or the feed went away.
pub fn stream_snapshot(job: &SnapshotJob) -> bool {
    use std::io::Read;
    let send = |frame: Vec<u8>| job.out.blocking_send(frame).is_ok();
    let Some(path) = &job.path else {
        return send(envelope::encode(&Envelope::FeedSnapBegin {
            zxid: job.zxid,
            len: 0,
        }));
    };
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "cannot open the snapshot for an observer feed");
            return false;
        }
    };
    let len = match f.metadata() {
        Ok(m) => m.len(),
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "cannot stat the snapshot for an observer feed");
            return false;
        }
    };
    if !send(envelope::encode(&Envelope::FeedSnapBegin {
        zxid: job.zxid,
        len,
    })) {
        return false;
    }
    let mut left = len;
    let mut buf = vec![0u8; SNAP_CHUNK];
    while left > 0 {
        let n = (left as usize).min(SNAP_CHUNK);
        if let Err(e) = f.read_exact(&mut buf[..n]) {
            tracing::error!(file = %path.display(), error = %e, "reading the snapshot for an observer feed");
            return false;
        }
        if !send(envelope::encode(&Envelope::FeedSnapChunk(
            buf[..n].to_vec(),
        ))) {
            return false;
        }
        left -= n as u64;
    }
    true
}

#[cfg(test)]
mod tests;
