//! Observers in the simulated cluster, and the feed links that carry the
//! committed stream down to them.
//!
//! Every upstream (a voter, or an observer that relays) owns a real
//! [`Hub`]; every observer runs a real [`Downstream`]. A link is one feed
//! connection: the hello travels up after a delay, and the frames the hub
//! queues into the link's channel travel down after random delays but in
//! order, as on a QUIC stream (never dropped or reordered one by one). A
//! cut, or the upstream's crash, delivers some prefix of what was in flight
//! and then ends the connection on both sides. A link takes at most so many
//! frames a step off the hub's queue (its bandwidth), so queues fill up and
//! catch-ups wait for room. Snapshots are streamed from memory (the sim's
//! snapshot state is the encoded history) as `FeedSnapBegin` + chunks, as
//! the driver's snapshot thread would: it starts after a delay (failing if
//! the upstream's snapshot changed by then), then sends a few chunks a step
//! while the queue has room, and the upstream keeps applying and taking
//! snapshots meanwhile.
//!
//! Checked as it happens: every txn an observer applies was committed by a
//! voter and follows the observer's previous one in the committed sequence,
//! with the committed digest there; every installed snapshot (and every
//! durable prefix an observer restarts from) is a committed point; a feed
//! never reports `Broken`, since upstreams only send well-formed, gap-free
//! committed streams.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use corral_store::{DataTree, LogEntry};
use corral_voter::core::{Core, ServerId, Zxid};
use corral_voter::feed::downstream::{Downstream, Step};
use corral_voter::feed::{FeedSource, Hub, HubStats, SnapshotJob, SubId, FEED_QUEUE};
use corral_voter::node::envelope::{self, Envelope, FeedStatus};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;

use super::{Cluster, History, STEP_MS, TICK_MS};

/// Observers' server ids start above every voter's.
pub const OBSERVER_ID_BASE: u64 = 100;
/// An upstream that keeps saying "not serving" this long is dropped (the
/// observer driver's `upstream_grace_ms`).
const GRACE_MS: u64 = 1_000;
/// An unchanged serving state is repeated this often (each tick would only
/// cost time: the sim's observers read nothing else from a heartbeat).
const HEARTBEAT_MS: u64 = 4 * TICK_MS;

/// A feed's upstream: a voter or an observer, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Up {
    Voter(usize),
    Observer(usize),
}

/// The observers' PRNG: derived from the seed, apart from the voters'.
pub fn observer_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ 0x6f62_7365_7276_6572)
}

/// Each observer's home upstream: a voter, or (for chains) an earlier
/// observer, so every chain ends at a voter.
pub fn draw_homes(rng: &mut ChaCha8Rng, voters: usize, count: usize) -> Vec<Up> {
    (0..count)
        .map(|k| {
            if k > 0 && rng.gen_bool(0.6) {
                Up::Observer(rng.gen_range(0..k))
            } else {
                Up::Voter(rng.gen_range(0..voters))
            }
        })
        .collect()
}

/// The feed fault mix of one run (swarm testing, as for the voters).
#[derive(Debug, Clone)]
pub struct ObsFaults {
    pub max_delay_ms: u64,
    /// Per observer and step: its feed connection is cut.
    pub cut: f64,
    /// Per observer and step: it crashes.
    pub crash: f64,
    pub max_down_ms: u64,
    pub max_reconnect_ms: u64,
    /// The chance a (re)connect picks a random upstream over its home.
    pub switch: f64,
    /// How long a snapshot stream takes to start at most.
    pub max_job_ms: u64,
    pub chunk: usize,
    /// Snapshot chunks streamed per step at most.
    pub chunks_per_step: usize,
    /// Frames a link carries per step at most.
    pub bandwidth: usize,
    /// A feed's queue length (the driver's is [`FEED_QUEUE`]; shorter ones
    /// fill up, as the sim's short log window moves sooner).
    pub queue: usize,
    /// Committed txns an observer keeps before its latest snapshot (the
    /// sim's voters keep a `committed_log_window` of 8); a large one makes
    /// DIFFs from observers long enough to go out in several chunks.
    pub window_margin: usize,
}

impl ObsFaults {
    pub fn swarm(rng: &mut ChaCha8Rng) -> ObsFaults {
        fn pick(rng: &mut ChaCha8Rng, hi: f64) -> f64 {
            let p = rng.gen_range(0.0..hi);
            if rng.gen_bool(0.6) {
                p
            } else {
                0.0
            }
        }
        ObsFaults {
            max_delay_ms: rng.gen_range(1..120),
            cut: pick(rng, 0.004),
            crash: pick(rng, 0.002),
            max_down_ms: rng.gen_range(1..2000),
            max_reconnect_ms: rng.gen_range(1..500),
            switch: rng.gen_range(0.2..1.0),
            max_job_ms: rng.gen_range(0..50),
            chunk: rng.gen_range(256..8192),
            chunks_per_step: [1, 4, 64][rng.gen_range(0..3)],
            bandwidth: [2, 8, 64, usize::MAX][rng.gen_range(0..4)],
            queue: [16, 64, FEED_QUEUE][rng.gen_range(0..3)],
            window_margin: [8, 64, 4096][rng.gen_range(0..3)],
        }
    }

    pub fn calm() -> ObsFaults {
        ObsFaults {
            max_delay_ms: 5,
            cut: 0.0,
            crash: 0.0,
            max_down_ms: 1,
            max_reconnect_ms: 10,
            switch: 0.0,
            max_job_ms: 5,
            chunk: 1024,
            chunks_per_step: usize::MAX,
            bandwidth: usize::MAX,
            queue: FEED_QUEUE,
            window_margin: 8,
        }
    }

    pub fn healed(&self) -> ObsFaults {
        ObsFaults {
            max_delay_ms: 5,
            cut: 0.0,
            crash: 0.0,
            max_reconnect_ms: self.max_reconnect_ms.min(50),
            max_job_ms: self.max_job_ms.min(5),
            chunks_per_step: self.chunks_per_step.max(64),
            bandwidth: self.bandwidth.max(64),
            ..self.clone()
        }
    }
}

/// A non-voting replica fed the committed stream.
pub struct Observer {
    pub id: ServerId,
    home: Up,
    /// The upstream of the current (or last) connection.
    upstream: Option<Up>,
    feed: Downstream,
    tree: DataTree,
    /// Every txn applied, from the empty tree on.
    history: History,
    /// How much of `history` is durable (survives a crash).
    synced: usize,
    /// Its own latest snapshot covers `history[..snap_len]`; feeds below are
    /// served by DIFF from `history[window_start..]`.
    snap_len: usize,
    window_start: usize,
    since_snapshot: usize,
    hub: Hub,
    link: Option<SubId>,
    /// The upstream's newest status on this connection.
    up_status: FeedStatus,
    not_serving_since: Option<u64>,
    /// Whether this connection's catch-up was counted.
    counted: bool,
    reconnect_at: Option<u64>,
    /// A snapshot arriving: (zxid, bytes so far).
    snap_in: Option<(i64, Vec<u8>)>,
    next_tick_ms: u64,
    heartbeat: Heartbeat,
    /// When the next fault of each kind strikes (drawn ahead, so a step
    /// without one costs no draws).
    next_cut_ms: Option<u64>,
    next_crash_ms: Option<u64>,
    incarnation: u64,
    down_until_ms: Option<u64>,
    /// Kept away from every upstream (focused tests).
    held: bool,
}

/// When an upstream last sent its feeds a status.
#[derive(Default)]
pub struct Heartbeat {
    serving: Option<bool>,
    next_ms: u64,
}

impl Heartbeat {
    /// Whether a status is due: the serving state changed, or it is time.
    fn due(&mut self, now: u64, serving: bool) -> bool {
        if self.serving == Some(serving) && now < self.next_ms {
            return false;
        }
        self.serving = Some(serving);
        self.next_ms = now + HEARTBEAT_MS;
        true
    }
}

/// When an event with chance `p` per step next happens (`None`: never).
fn next_event(rng: &mut ChaCha8Rng, now: u64, p: f64) -> Option<u64> {
    if p <= 0.0 {
        return None;
    }
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    let steps = (u.ln() / (1.0 - p).ln()).floor() as u64 + 1;
    Some(now + steps.saturating_mul(STEP_MS))
}

impl Observer {
    fn new(id: ServerId, home: Up, tick_ms: u64) -> Observer {
        Observer {
            id,
            home,
            upstream: None,
            feed: Downstream::new(id.0, 0),
            tree: DataTree::new(),
            history: History::default(),
            synced: 0,
            snap_len: 0,
            window_start: 0,
            since_snapshot: 0,
            hub: Hub::new(),
            link: None,
            up_status: FeedStatus::default(),
            not_serving_since: None,
            counted: false,
            reconnect_at: Some(0),
            snap_in: None,
            next_tick_ms: tick_ms,
            heartbeat: Heartbeat::default(),
            next_cut_ms: None,
            next_crash_ms: None,
            incarnation: 0,
            down_until_ms: None,
            held: false,
        }
    }

    fn applied(&self) -> Zxid {
        self.history.last()
    }

    fn serving(&self) -> bool {
        self.link.is_some()
            && self.feed.is_live()
            && self.snap_in.is_none()
            && self.up_status.serving
    }

    /// What it tells the observers below (the driver's `feed_status`).
    fn status(&self) -> FeedStatus {
        let st = self.up_status;
        FeedStatus {
            serving: self.serving(),
            tip: st.tip.max(self.applied().0),
            leader: st.leader,
            epoch: st.epoch,
            tip_time_ms: st.tip_time_ms,
        }
    }
}

/// One feed connection.
pub struct Link {
    up: Up,
    obs: usize,
    /// The hub's queue for this feed (the connection's writer).
    rx: mpsc::Receiver<Vec<u8>>,
    /// The hello, and when it reaches the upstream.
    hello: Option<(u64, Vec<u8>)>,
    /// Frames on the wire, with when each arrives (non-decreasing).
    inflight: VecDeque<(u64, Vec<u8>)>,
    last_at: u64,
    /// The connection is over; the downstream learns it after `inflight`.
    ended: bool,
}

/// A snapshot being streamed to a feed.
pub struct Job {
    /// When it starts (reads the snapshot), then streams.
    at_ms: u64,
    up: Up,
    incarnation: u64,
    job: SnapshotJob,
    /// Once started: the snapshot's bytes, and how many went out.
    bytes: Option<Arc<[u8]>>,
    sent: usize,
}

/// A voter's feeds are served from its core's committed window and newest
/// snapshot, never past what it applied (the driver's `VoterSource`).
struct VoterSource<'a> {
    core: &'a Core,
    applied: i64,
    path: PathBuf,
}

fn voter_status(core: &Core, applied: i64) -> FeedStatus {
    FeedStatus {
        serving: core.serving_epoch().is_some(),
        tip: applied,
        leader: 0,
        epoch: core.serving_epoch().unwrap_or(0),
        tip_time_ms: 0,
    }
}

impl FeedSource for VoterSource<'_> {
    fn applied(&self) -> i64 {
        self.applied
    }

    fn committed_after(&self, z: i64, max: usize) -> Option<Vec<LogEntry>> {
        self.core.committed_after(Zxid(z), Zxid(self.applied), max)
    }

    fn snapshot(&self) -> (i64, Option<PathBuf>) {
        let z = self.core.latest_snapshot().zxid.0;
        (z, (z != 0).then(|| self.path.clone()))
    }

    fn status(&self) -> FeedStatus {
        voter_status(self.core, self.applied)
    }
}

/// An observer's feeds are served from its own applied history.
struct ObserverSource<'a> {
    history: &'a History,
    window_start: usize,
    snap_len: usize,
    status: FeedStatus,
    path: PathBuf,
}

impl FeedSource for ObserverSource<'_> {
    fn applied(&self) -> i64 {
        self.history.last().0
    }

    fn committed_after(&self, z: i64, max: usize) -> Option<Vec<LogEntry>> {
        if z < self.history.zxid_at(self.window_start) {
            return None;
        }
        let h = self.history.entries();
        let i = h
            .partition_point(|e| e.hdr.zxid <= z)
            .max(self.window_start);
        let end = h.len().min(i.saturating_add(max));
        Some(h[i..end].to_vec())
    }

    fn snapshot(&self) -> (i64, Option<PathBuf>) {
        let z = self.history.zxid_at(self.snap_len);
        (z, (self.snap_len > 0).then(|| self.path.clone()))
    }

    fn status(&self) -> FeedStatus {
        self.status
    }
}

/// How a snapshot stream stands after a step.
enum Streamed {
    More,
    Done,
    /// The feed's queue is closed.
    Gone,
}

/// Queues up to `n` of a snapshot's frames (the begin frame, then chunks)
/// while its feed's queue has room, as the driver's blocking sender would.
fn stream_some(j: &mut Job, chunk: usize, n: usize) -> Streamed {
    let Some(bytes) = j.bytes.clone() else {
        return Streamed::Gone;
    };
    for _ in 0..n {
        let frame = if j.sent == 0 {
            Envelope::FeedSnapBegin {
                zxid: j.job.zxid,
                len: bytes.len() as u64,
            }
        } else {
            let from = (j.sent - 1) * chunk;
            if from >= bytes.len() {
                return Streamed::Done;
            }
            let to = bytes.len().min(from + chunk);
            Envelope::FeedSnapChunk(bytes[from..to].to_vec())
        };
        match j.job.out.try_send(envelope::encode(&frame)) {
            Ok(()) => j.sent += 1,
            Err(mpsc::error::TrySendError::Full(_)) => return Streamed::More,
            Err(mpsc::error::TrySendError::Closed(_)) => return Streamed::Gone,
        }
    }
    if (j.sent - 1) * chunk >= bytes.len() {
        Streamed::Done
    } else {
        Streamed::More
    }
}

fn brief(e: &Envelope) -> String {
    match e {
        Envelope::FeedTxns { prev, entries: es } => format!(
            "txns after {prev:#x}: {:#x}..={:#x} ({})",
            es.first().map_or(0, |e| e.hdr.zxid),
            es.last().map_or(0, |e| e.hdr.zxid),
            es.len()
        ),
        Envelope::FeedSnapChunk(b) => format!("snap chunk {} bytes", b.len()),
        other => format!("{other:?}"),
    }
}

impl Cluster {
    pub(super) fn add_observers(&mut self, homes: &[Up]) {
        for (k, &home) in homes.iter().enumerate() {
            if let Up::Observer(j) = home {
                assert!(
                    j < k,
                    "observer {k} must be fed by a voter or an earlier observer"
                );
            }
            let id = ServerId(OBSERVER_ID_BASE + 1 + k as u64);
            let tick = self.orng.gen_range(0..TICK_MS);
            let mut o = Observer::new(id, home, tick);
            o.next_cut_ms = next_event(&mut self.orng, 0, self.obs_faults.cut);
            o.next_crash_ms = next_event(&mut self.orng, 0, self.obs_faults.crash);
            self.observers.push(o);
        }
        let mut depth: Vec<u64> = Vec::new();
        for &h in homes {
            let d = match h {
                Up::Voter(_) => 1,
                Up::Observer(j) => depth[j] + 1,
            };
            depth.push(d);
        }
        self.stats.observers = homes.len() as u64;
        self.stats.max_chain = depth.into_iter().max().unwrap_or(0);
    }

    fn hub_mut(&mut self, up: Up) -> &mut Hub {
        self.feed_dirty = true;
        match up {
            Up::Voter(i) => &mut self.nodes[i].hub,
            Up::Observer(k) => &mut self.observers[k].hub,
        }
    }

    fn up_alive(&self, up: Up) -> bool {
        match up {
            Up::Voter(i) => self.nodes[i].core.is_some(),
            Up::Observer(k) => self.observers[k].down_until_ms.is_none(),
        }
    }

    fn up_incarnation(&self, up: Up) -> u64 {
        match up {
            Up::Voter(i) => self.nodes[i].incarnation,
            Up::Observer(k) => self.observers[k].incarnation,
        }
    }

    /// Runs a hub step against an upstream's current state; `None` when it
    /// is down.
    fn with_source<T>(
        &mut self,
        up: Up,
        f: impl FnOnce(&mut Hub, &dyn FeedSource) -> T,
    ) -> Option<T> {
        self.feed_dirty = true;
        match up {
            Up::Voter(i) => {
                let node = &mut self.nodes[i];
                let applied = node.applied().0;
                let path = PathBuf::from(format!("sim:{}", node.id));
                let core = node.core.as_ref()?;
                let src = VoterSource {
                    core,
                    applied,
                    path,
                };
                Some(f(&mut node.hub, &src))
            }
            Up::Observer(k) => {
                let o = &mut self.observers[k];
                if o.down_until_ms.is_some() {
                    return None;
                }
                let src = ObserverSource {
                    history: &o.history,
                    window_start: o.window_start,
                    snap_len: o.snap_len,
                    status: o.status(),
                    path: PathBuf::from(format!("sim:{}", o.id)),
                };
                Some(f(&mut o.hub, &src))
            }
        }
    }

    /// A voter's tick: its status to every live feed.
    pub(super) fn voter_heartbeat(&mut self, i: usize) {
        let now = self.now_ms;
        let node = &mut self.nodes[i];
        let Some(core) = node.core.as_ref() else {
            return;
        };
        if node.hub.is_empty() || !node.heartbeat.due(now, core.serving_epoch().is_some()) {
            return;
        }
        self.with_source(Up::Voter(i), |hub, src| {
            hub.status(src.status(), Duration::ZERO)
        });
    }

    pub(super) fn feed_step(&mut self) {
        if self.observers.is_empty() {
            return;
        }
        if let Err(e) = self.feed_step_checked() {
            panic!(
                "seed {}: invariant broken at {} ms: {e}; observers {}",
                self.seed,
                self.now_ms,
                self.describe_observers()
            );
        }
    }

    fn feed_step_checked(&mut self) -> Result<(), String> {
        let now = self.now_ms;
        // As the drivers do once per round: catching-up feeds move on.
        if !self.pumping.is_empty() {
            for up in std::mem::take(&mut self.pumping) {
                self.pump(up);
            }
        }
        // Links need a look only when a hub did something, or something
        // in flight is due.
        if self.feed_dirty || now >= self.next_link_ms {
            self.feed_dirty = false;
            let subs: Vec<SubId> = self.links.keys().copied().collect();
            for sub in subs {
                self.link_step(sub)?;
            }
            self.next_link_ms = self
                .links
                .values()
                .filter_map(|l| {
                    let h = l.hello.as_ref().map(|h| h.0);
                    let f = l.inflight.front().map(|f| f.0);
                    h.into_iter().chain(f).min()
                })
                .min()
                .unwrap_or(u64::MAX);
        }
        if !self.jobs.is_empty() {
            for j in std::mem::take(&mut self.jobs) {
                if let Some(j) = self.job_step(j) {
                    self.jobs.push(j);
                }
            }
        }
        for k in 0..self.observers.len() {
            self.observer_step(k)?;
        }
        Ok(())
    }

    fn link_step(&mut self, sub: SubId) -> Result<(), String> {
        let now = self.now_ms;
        let Some(l) = self.links.get_mut(&sub) else {
            return Ok(());
        };
        let up = l.up;
        if l.hello.as_ref().is_some_and(|h| h.0 <= now) {
            if let Some((_, frame)) = l.hello.take() {
                self.hello_arrived(up, sub, &frame)?;
            }
        }
        let max_delay = self.obs_faults.max_delay_ms;
        let Some(l) = self.links.get_mut(&sub) else {
            return Ok(());
        };
        let mut room = self.obs_faults.bandwidth;
        while !l.ended {
            if room == 0 {
                // More next step.
                self.feed_dirty = true;
                break;
            }
            room -= 1;
            match l.rx.try_recv() {
                Ok(f) => {
                    let at = (now + self.orng.gen_range(1..=max_delay)).max(l.last_at);
                    l.last_at = at;
                    l.inflight.push_back((at, f));
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => l.ended = true,
            }
        }
        let mut due = Vec::new();
        while l.inflight.front().is_some_and(|f| f.0 <= now) {
            if let Some((_, f)) = l.inflight.pop_front() {
                due.push(f);
            }
        }
        let obs = l.obs;
        for f in due {
            if self.observers[obs].link != Some(sub) {
                return Ok(());
            }
            self.observer_frame(obs, f)?;
        }
        if self
            .links
            .get(&sub)
            .is_some_and(|l| l.ended && l.inflight.is_empty())
        {
            self.link_ended(sub);
        }
        Ok(())
    }

    /// Moves `up`'s catching-up feeds on (and again next step while any is).
    fn pump(&mut self, up: Up) {
        if !self.hub_mut(up).catching_up() {
            return;
        }
        let jobs = self
            .with_source(up, |hub, src| hub.pump(src))
            .unwrap_or_default();
        for job in jobs {
            self.schedule(up, job);
        }
        self.may_catch_up(up);
    }

    /// A hub call may have left a feed catching up: pump it next step.
    fn may_catch_up(&mut self, up: Up) {
        if !self.pumping.contains(&up) {
            self.pumping.push(up);
        }
    }

    fn hello_arrived(&mut self, up: Up, sub: SubId, frame: &[u8]) -> Result<(), String> {
        let env = envelope::decode(frame).map_err(|e| format!("a hello does not decode: {e}"))?;
        let Envelope::FeedHello {
            observer,
            last_zxid,
        } = env
        else {
            return Err(format!("unexpected upstream frame {env:?}"));
        };
        let job = self
            .with_source(up, |hub, src| hub.hello(sub, observer, last_zxid, src))
            .flatten();
        if let Some(job) = job {
            self.schedule(up, job);
        }
        self.may_catch_up(up);
        Ok(())
    }

    fn schedule(&mut self, up: Up, job: SnapshotJob) {
        let at_ms = self.now_ms + self.orng.gen_range(0..=self.obs_faults.max_job_ms);
        let incarnation = self.up_incarnation(up);
        self.jobs.push(Job {
            at_ms,
            up,
            incarnation,
            job,
            bytes: None,
            sent: 0,
        });
    }

    /// The snapshot thread's work for one step: read the snapshot the job
    /// names (if it is still the upstream's), stream some, and tell the hub
    /// when done. Returns the job while it goes on.
    fn job_step(&mut self, mut j: Job) -> Option<Job> {
        if j.at_ms > self.now_ms {
            return Some(j);
        }
        if !self.up_alive(j.up) || self.up_incarnation(j.up) != j.incarnation {
            return None; // It died with its process.
        }
        if j.bytes.is_none() {
            j.bytes = match j.up {
                Up::Voter(i) => self.nodes[i]
                    .core
                    .as_ref()
                    .map(|c| c.latest_snapshot())
                    .filter(|s| s.zxid.0 == j.job.zxid)
                    .map(|s| s.state),
                Up::Observer(k) => {
                    let o = &self.observers[k];
                    (o.history.zxid_at(o.snap_len) == j.job.zxid)
                        .then(|| Arc::from(o.history.encoded(o.snap_len)))
                }
            };
            if j.bytes.is_none() {
                self.stats.obs_snap_failures += 1;
            }
        }
        self.feed_dirty = true;
        let ok = match stream_some(
            &mut j,
            self.obs_faults.chunk,
            self.obs_faults.chunks_per_step,
        ) {
            Streamed::More => return Some(j),
            Streamed::Done => true,
            Streamed::Gone => false,
        };
        let (up, sub, zxid) = (j.up, j.job.sub, j.job.zxid);
        // Its sender goes: once the hub lets go too, the link sees the end.
        drop(j);
        let next = self
            .with_source(up, |hub, src| hub.snapshot_sent(sub, zxid, ok, src))
            .flatten();
        if let Some(next) = next {
            self.schedule(up, next);
        }
        self.may_catch_up(up);
        None
    }

    fn observer_step(&mut self, k: usize) -> Result<(), String> {
        let now = self.now_ms;
        if let Some(t) = self.observers[k].down_until_ms {
            if now < t {
                return Ok(());
            }
            self.restart_observer(k)?;
        }
        if self.observers[k].next_crash_ms.is_some_and(|t| now >= t) {
            self.observers[k].next_crash_ms =
                next_event(&mut self.orng, now, self.obs_faults.crash);
            let down = self.orng.gen_range(0..=self.obs_faults.max_down_ms);
            self.crash_observer(k, down);
            return Ok(());
        }
        if self.observers[k].next_cut_ms.is_some_and(|t| now >= t) {
            self.observers[k].next_cut_ms = next_event(&mut self.orng, now, self.obs_faults.cut);
            if let Some(sub) = self.observers[k].link {
                self.cut(sub);
            }
        }
        let o = &self.observers[k];
        if o.link.is_none() && !o.held && o.reconnect_at.is_some_and(|t| now >= t) {
            self.connect(k);
        }
        if now >= self.observers[k].next_tick_ms {
            self.observer_tick(k);
        }
        Ok(())
    }

    fn observer_tick(&mut self, k: usize) {
        let now = self.now_ms;
        let sync = self.orng.gen_bool(0.5);
        let o = &mut self.observers[k];
        o.next_tick_ms = now + TICK_MS;
        if sync {
            o.synced = o.history.len();
        }
        if o.link.is_some()
            && o.not_serving_since
                .is_some_and(|t| now.saturating_sub(t) >= GRACE_MS)
        {
            self.drop_upstream(k);
        }
        let o = &mut self.observers[k];
        if !o.hub.is_empty() {
            let st = o.status();
            if o.heartbeat.due(now, st.serving) {
                o.hub.status(st, Duration::ZERO);
                self.feed_dirty = true;
            }
        }
    }

    fn choose_upstream(&mut self, k: usize) -> Up {
        let switch = self.obs_faults.switch;
        if switch > 0.0 && self.orng.gen_bool(switch) {
            let n = self.nodes.len();
            let c = self.orng.gen_range(0..n + k);
            if c < n {
                Up::Voter(c)
            } else {
                Up::Observer(c - n)
            }
        } else {
            self.observers[k].home
        }
    }

    fn connect(&mut self, k: usize) {
        let now = self.now_ms;
        let up = self.choose_upstream(k);
        if !self.up_alive(up) {
            // Refused: try again later.
            let d = self
                .orng
                .gen_range(1..=self.obs_faults.max_reconnect_ms.max(1));
            self.observers[k].reconnect_at = Some(now + d);
            return;
        }
        let sub = self.next_sub;
        self.next_sub += 1;
        let (tx, rx) = mpsc::channel(self.obs_faults.queue);
        let id = self.observers[k].id;
        self.hub_mut(up).open(sub, id.0, tx);
        let hello = envelope::encode(&self.observers[k].feed.connected());
        let at = now + self.orng.gen_range(1..=self.obs_faults.max_delay_ms);
        if self.trace == Some(id.0) {
            eprintln!("{now} {id} connects to {up:?} (sub {sub})");
        }
        let o = &mut self.observers[k];
        o.link = Some(sub);
        o.upstream = Some(up);
        o.reconnect_at = None;
        o.up_status = FeedStatus::default();
        o.not_serving_since = None;
        o.snap_in = None;
        o.counted = false;
        self.links.insert(
            sub,
            Link {
                up,
                obs: k,
                rx,
                hello: Some((at, hello)),
                inflight: VecDeque::new(),
                last_at: now,
                ended: false,
            },
        );
    }

    /// The observer's side of a connection that ended.
    fn disconnected(&mut self, k: usize) {
        let d = self.orng.gen_range(0..=self.obs_faults.max_reconnect_ms);
        let now = self.now_ms;
        let o = &mut self.observers[k];
        if self.trace == Some(o.id.0) {
            eprintln!("{now} {} disconnected from {:?}", o.id, o.upstream);
        }
        o.link = None;
        o.feed.disconnected();
        o.snap_in = None;
        o.up_status = FeedStatus::default();
        o.not_serving_since = None;
        o.reconnect_at = Some(now + d);
    }

    /// The observer drops its upstream (the upstream's hub hears of it).
    fn drop_upstream(&mut self, k: usize) {
        let Some(sub) = self.observers[k].link else {
            return;
        };
        if let Some(l) = self.links.remove(&sub) {
            self.hub_mut(l.up).close(sub);
        }
        self.disconnected(k);
    }

    /// Every frame in flight was delivered and the connection is over.
    fn link_ended(&mut self, sub: SubId) {
        let Some(l) = self.links.remove(&sub) else {
            return;
        };
        self.hub_mut(l.up).close(sub);
        if self.observers[l.obs].link == Some(sub) {
            self.disconnected(l.obs);
        }
    }

    /// The connection breaks: a prefix of what is in flight still arrives.
    fn cut(&mut self, sub: SubId) {
        let Some(l) = self.links.get_mut(&sub) else {
            return;
        };
        if l.ended {
            return;
        }
        l.hello = None;
        let keep = self.orng.gen_range(0..=l.inflight.len());
        l.inflight.truncate(keep);
        l.ended = true;
        let up = l.up;
        self.hub_mut(up).close(sub);
        self.stats.feed_cuts += 1;
    }

    /// An upstream's process died: its feeds end with it.
    pub(super) fn upstream_lost(&mut self, up: Up) {
        if self.observers.is_empty() {
            return;
        }
        self.hub_mut(up).reset_all();
        let subs: Vec<SubId> = self
            .links
            .iter()
            .filter(|(_, l)| l.up == up)
            .map(|(s, _)| *s)
            .collect();
        for s in subs {
            self.cut(s);
        }
    }

    fn crash_observer(&mut self, k: usize, down_ms: u64) {
        self.stats.obs_crashes += 1;
        if let Some(sub) = self.observers[k].link.take() {
            if let Some(l) = self.links.remove(&sub) {
                self.hub_mut(l.up).close(sub);
            }
        }
        self.upstream_lost(Up::Observer(k));
        let now = self.now_ms;
        let o = &mut self.observers[k];
        // What was synced survives, and maybe some more.
        let keep = self.orng.gen_range(o.synced..=o.history.len());
        if self.trace == Some(o.id.0) {
            eprintln!(
                "{now} {} crashes, keeping {keep} of {} txns",
                o.id,
                o.history.len()
            );
        }
        if keep < o.history.len() {
            // The process restarts from what is on disk.
            o.history.truncate(keep);
            o.tree = DataTree::new();
            o.history.apply_to(&mut o.tree, 0);
        }
        o.incarnation += 1;
        o.down_until_ms = Some(now + down_ms);
        o.snap_in = None;
        o.up_status = FeedStatus::default();
        o.not_serving_since = None;
        o.reconnect_at = None;
    }

    fn restart_observer(&mut self, k: usize) -> Result<(), String> {
        let now = self.now_ms;
        let o = &mut self.observers[k];
        let applied = o.applied();
        o.feed = Downstream::new(o.id.0, applied.0);
        o.snap_len = o.history.len();
        o.window_start = o.snap_len.saturating_sub(self.obs_faults.window_margin);
        o.synced = o.history.len();
        o.since_snapshot = 0;
        o.down_until_ms = None;
        o.reconnect_at = Some(now);
        self.checker.snapshot(o.id, applied, o.tree.digest())
    }

    fn observer_frame(&mut self, k: usize, frame: Vec<u8>) -> Result<(), String> {
        let id = self.observers[k].id;
        let env = envelope::decode(&frame)
            .map_err(|e| format!("{id} got an undecodable feed frame: {e}"))?;
        if self.trace == Some(id.0) {
            eprintln!(
                "{} {:?} -> {id}: {}",
                self.now_ms,
                self.observers[k].upstream,
                brief(&env)
            );
        }
        match self.observers[k].feed.on_frame(env) {
            Step::Apply(entries) => self.observer_apply(k, entries)?,
            Step::SnapBegin { zxid, len } => {
                if len == 0 {
                    self.observer_install(k, zxid, &[])?;
                } else {
                    self.observers[k].snap_in = Some((zxid, Vec::with_capacity(len as usize)));
                }
            }
            Step::SnapChunk { bytes, last } => {
                let o = &mut self.observers[k];
                let Some((_, buf)) = o.snap_in.as_mut() else {
                    return Err(format!(
                        "{id}: the feed took a snapshot chunk with no snapshot"
                    ));
                };
                buf.extend_from_slice(&bytes);
                if last {
                    if let Some((zxid, buf)) = o.snap_in.take() {
                        self.observer_install(k, zxid, &buf)?;
                    }
                }
            }
            Step::Status(st) => self.observer_status(k, st),
            Step::Relayed { origin, .. } => {
                return Err(format!("{id} got a relayed answer for {origin}"))
            }
            Step::Nothing => {}
            Step::Broken(why) => {
                return Err(format!(
                    "{id}'s feed from {:?} broke: {why}",
                    self.observers[k].upstream
                ))
            }
        }
        Ok(())
    }

    fn observer_status(&mut self, k: usize, st: FeedStatus) {
        let now = self.now_ms;
        let o = &mut self.observers[k];
        if !o.counted {
            o.counted = true;
            if o.feed.snapped() {
                self.stats.obs_snap_catchups += 1;
            } else {
                self.stats.obs_diff_catchups += 1;
            }
        }
        o.up_status = st;
        if st.serving {
            o.not_serving_since = None;
        } else {
            o.not_serving_since.get_or_insert(now);
        }
    }

    fn observer_apply(&mut self, k: usize, entries: Vec<LogEntry>) -> Result<(), String> {
        let every = self.faults.snapshot_every;
        let o = &mut self.observers[k];
        for e in &entries {
            let prev = o.applied();
            o.tree.apply(&e.hdr, &e.txn);
            o.history.push(e.clone());
            self.checker.observe(o.id, prev, e, o.tree.digest())?;
        }
        if o.applied().0 != o.feed.applied() {
            return Err(format!(
                "{}: the sim applied through {} but the feed says {:#x}",
                o.id,
                o.applied(),
                o.feed.applied()
            ));
        }
        self.stats.obs_applied += entries.len() as u64;
        if !o.hub.is_empty() {
            o.hub.publish(&entries);
            self.feed_dirty = true;
        }
        o.since_snapshot += entries.len();
        if o.since_snapshot >= every {
            o.since_snapshot = 0;
            o.snap_len = o.history.len();
            o.window_start = o
                .window_start
                .max(o.snap_len.saturating_sub(self.obs_faults.window_margin));
        }
        Ok(())
    }

    fn observer_install(&mut self, k: usize, zxid: i64, bytes: &[u8]) -> Result<(), String> {
        let o = &mut self.observers[k];
        // Loading the snapshot: its history is always a committed one, and
        // so is this observer's, older; then only what is new is applied
        // (the same tree as a replay from scratch, sooner).
        let kept = o.history.install(bytes);
        if kept == 0 {
            o.tree = DataTree::new();
        }
        o.history.apply_to(&mut o.tree, kept);
        let last = o.history.last().0;
        if last != zxid {
            return Err(format!(
                "{} got a snapshot announced at {zxid:#x} that holds {last:#x}",
                o.id
            ));
        }
        let digest = o.tree.digest();
        o.feed.installed(zxid);
        // Its state jumped: the observers below resync.
        o.hub.reset_all();
        self.feed_dirty = true;
        o.snap_len = o.history.len();
        o.window_start = o.snap_len;
        o.synced = o.snap_len;
        o.since_snapshot = 0;
        self.stats.obs_snaps += 1;
        self.checker.snapshot(o.id, Zxid(zxid), digest)
    }

    pub(super) fn heal_observers(&mut self) {
        self.obs_faults = self.obs_faults.healed();
        let now = self.now_ms;
        for k in 0..self.observers.len() {
            if self.observers[k].down_until_ms.is_some() {
                if let Err(e) = self.restart_observer(k) {
                    panic!("seed {}: invariant broken at {now} ms: {e}", self.seed);
                }
            }
            let o = &mut self.observers[k];
            o.reconnect_at = o.reconnect_at.map(|t| t.min(now));
            o.next_cut_ms = None;
            o.next_crash_ms = None;
        }
    }

    /// Every observer is connected, caught up, at the committed maximum
    /// with the committed digest.
    pub fn observers_converged(&self) -> bool {
        if self.observers.is_empty() {
            return true;
        }
        let max = self.checker.max_committed();
        let want = match self.checker.digest_at(max) {
            Some(d) => d,
            None if max == Zxid::ZERO => DataTree::new().digest(),
            None => return false,
        };
        self.observers.iter().all(|o| {
            o.down_until_ms.is_none()
                && o.link.is_some()
                && o.feed.is_live()
                && o.snap_in.is_none()
                && o.applied() == max
                && o.tree.digest() == want
        })
    }

    pub fn observer_applied(&self, k: usize) -> Zxid {
        self.observers[k].applied()
    }

    pub fn observer_digest(&self, k: usize) -> u64 {
        self.observers[k].tree.digest()
    }

    /// Whether observer `k`'s current connection caught up by SNAP.
    pub fn observer_snapped(&self, k: usize) -> bool {
        self.observers[k].feed.snapped()
    }

    /// Keeps observer `k` away from every upstream (it drops its feed now),
    /// or lets it reconnect at once.
    pub fn hold_observer(&mut self, k: usize, held: bool) {
        self.observers[k].held = held;
        if held {
            self.drop_upstream(k);
        } else {
            self.observers[k].reconnect_at = Some(self.now_ms);
        }
    }

    pub fn hub_stats(&self, up: Up) -> HubStats {
        match up {
            Up::Voter(i) => self.nodes[i].hub.stats(),
            Up::Observer(k) => self.observers[k].hub.stats(),
        }
    }

    /// Feeds every hub dropped because its queue was full.
    pub fn slow_disconnects(&self) -> u64 {
        let voters = self.nodes.iter().map(|n| n.hub.stats().slow_disconnects);
        let observers = self
            .observers
            .iter()
            .map(|o| o.hub.stats().slow_disconnects);
        voters.chain(observers).sum()
    }

    pub fn voter_digest(&self, i: usize) -> u64 {
        self.nodes[i].tree.digest()
    }

    pub(super) fn describe_observers(&self) -> String {
        let v: Vec<String> = self
            .observers
            .iter()
            .map(|o| {
                if o.down_until_ms.is_some() {
                    return format!("{}:down", o.id);
                }
                format!(
                    "{}:{:?} link {:?} live {} applied {} serving {}",
                    o.id,
                    o.upstream,
                    o.link,
                    o.feed.is_live(),
                    o.applied(),
                    o.serving()
                )
            })
            .collect();
        format!("{v:?}")
    }
}
