//! The voter thread. See the module docs of [`super`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_auth::Principal;
use corral_proto::{ErrorCode, Request};
use corral_server::apply::{apply_batch, Completion};
use corral_server::commit::{WriteOp, WriteRequest};
use corral_server::prep::{Pending, Prep, PrepOptions};
use corral_server::state::{wall_ms, ModeInfo, Shared};
use corral_store::{LogEntry, Txn, TxnLog};
use tokio::sync::oneshot;

use super::disk::{self, Dirs};
use super::envelope::{self, Envelope, FeedStatus, ForwardOp};
use super::waits::{self, ClientInput, Rpc, Rpcs, Waiters};
use super::{Input, PeerLink, VoterOptions};
use crate::core::{
    Core, Message, Output, PersistOp, Recovered, Request as CoreRequest, Role, ServerId,
    SubmitError,
};
use crate::feed::{FeedEvent, FeedSource, Hub, SnapshotJob};
use crate::net::Channel;

/// Bound of the driver's input queue (client writes and peer frames).
pub const QUEUE_LEN: usize = 10_000;

/// Inputs handled per round before the outputs are worked off, so one round's
/// proposals share an fsync without starving the network.
const MAX_ROUND: usize = 2_000;

pub(crate) fn spawn(
    opts: VoterOptions,
    recovered: Recovered,
    shared: Arc<Shared>,
    log: Box<dyn TxnLog>,
    link: Arc<dyn PeerLink>,
    rx: Receiver<Input>,
    self_tx: SyncSender<Input>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("corral-voter".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Driver::new(opts, recovered, shared, log, link, self_tx).run(rx)
            }));
            if r.is_err() {
                // A broken invariant: stop rather than serve from a node that
                // can no longer take part in the protocol.
                eprintln!("corral: the voter thread panicked; aborting");
                std::process::abort();
            }
        })
        .map(|_| ())
}

/// Who a write came from, and so how a refusal is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// This node: its own clients, session expiry, the reaper.
    Local,
    /// A voter that forwarded its client's write.
    Peer(u64),
    /// Observer `id`, whose write voter `via` relayed.
    Relayed { id: u64, via: u64 },
    /// Observer `id`, through one of this node's own feeds.
    Feed { id: u64 },
}

impl Origin {
    /// The server whose client made the request (session ownership).
    fn server(self, me: u64) -> u64 {
        match self {
            Origin::Local => me,
            Origin::Peer(id) | Origin::Relayed { id, .. } | Origin::Feed { id } => id,
        }
    }
}

/// A write the leader could not propose yet (too many in flight).
struct Backlogged {
    origin: Origin,
    session_id: i64,
    cxid: i32,
    principals: Arc<Vec<Principal>>,
    op: WriteOp,
    waiter: Option<Completion>,
}

/// Writes waiting on the leader for in-flight proposals to commit.
const BACKLOG_LEN: usize = 20_000;

/// How long a voter a committed reconfig dropped stays connected, so the
/// commit and the answers to its clients' last writes reach it.
const LEAVE_GRACE: Duration = Duration::from_secs(1);

struct Driver {
    id: u64,
    opts: VoterOptions,
    core: Core,
    shared: Arc<Shared>,
    log: Box<dyn TxnLog>,
    dirs: Dirs,
    link: Arc<dyn PeerLink>,
    self_tx: SyncSender<Input>,
    t0: Instant,
    /// The leader we serve under, while serving.
    serving: Option<u64>,
    pending: Pending,
    prep_opts: PrepOptions,
    backlog: VecDeque<Backlogged>,
    /// Core messages of the current round, per peer and channel.
    outbox: std::collections::BTreeMap<(u64, Channel), Vec<Vec<u8>>>,
    waiters: Waiters,
    /// RPCs to the leader, and syncs waiting for its commit point.
    rpcs: Rpcs,
    /// Leader: which server each session's client is connected to.
    owners: HashMap<i64, u64>,
    last_reap: Instant,
    applied_since_snapshot: u64,
    snapshot_running: Arc<AtomicBool>,
    /// The observer feeds this voter serves.
    hub: Hub,
    /// Wall-clock time of the newest applied txn.
    last_applied_time: i64,
    /// The other voters the link is told to reach (see `sync_members`).
    members: BTreeSet<u64>,
    /// Peer addresses from the configurations seen (reconfig entries and
    /// `/zookeeper/config`), for voters the config file did not name.
    addresses: BTreeMap<u64, std::net::SocketAddr>,
    /// Voters a committed reconfig dropped, disconnected once due (so the
    /// commit and the replies to their clients reach them first).
    leaving: BTreeMap<u64, Instant>,
}

/// What a voter's feeds are served from: the core's committed log window and
/// newest snapshot, never past what this node has applied.
struct VoterSource<'a> {
    core: &'a Core,
    applied: i64,
    status: FeedStatus,
}

impl FeedSource for VoterSource<'_> {
    fn applied(&self) -> i64 {
        self.applied
    }

    fn committed_after(&self, z: i64, max: usize) -> Option<Vec<LogEntry>> {
        self.core
            .committed_after(crate::core::Zxid(z), crate::core::Zxid(self.applied), max)
    }

    fn snapshot(&self) -> (i64, Option<std::path::PathBuf>) {
        let s = self.core.latest_snapshot();
        (s.zxid.0, disk::path_of(&s))
    }

    fn status(&self) -> FeedStatus {
        self.status
    }
}

impl Driver {
    fn new(
        opts: VoterOptions,
        recovered: Recovered,
        shared: Arc<Shared>,
        log: Box<dyn TxnLog>,
        link: Arc<dyn PeerLink>,
        self_tx: SyncSender<Input>,
    ) -> Driver {
        let core = Core::new(opts.core_config(), recovered, 0);
        let dirs = Dirs::new(&shared.opts.data_dir);
        let prep_opts = PrepOptions::for_node(&shared);
        if let Ok(mut m) = shared.mode.write() {
            *m = ModeInfo {
                mode: "looking",
                voters: core.active_config().voters.len(),
                ..ModeInfo::default()
            };
        }
        Driver {
            id: opts.id,
            opts,
            core,
            dirs,
            log,
            link,
            self_tx,
            t0: Instant::now(),
            serving: None,
            pending: Pending::new(),
            prep_opts,
            backlog: VecDeque::new(),
            outbox: std::collections::BTreeMap::new(),
            waiters: Waiters::default(),
            rpcs: Rpcs::default(),
            owners: HashMap::new(),
            last_reap: Instant::now(),
            applied_since_snapshot: 0,
            snapshot_running: Arc::new(AtomicBool::new(false)),
            hub: Hub::new(),
            last_applied_time: 0,
            members: BTreeSet::new(),
            addresses: BTreeMap::new(),
            leaving: BTreeMap::new(),
            shared,
        }
        .with_members()
    }

    /// Starts from the configured voters and the recovered configuration.
    fn with_members(mut self) -> Driver {
        self.members = self
            .opts
            .voters
            .iter()
            .copied()
            .filter(|&v| v != self.id)
            .collect();
        self.learn_tree_addresses();
        self.sync_members();
        self
    }

    /// Records the peer addresses the tree's `/zookeeper/config` names.
    fn learn_tree_addresses(&mut self) {
        let text = self
            .shared
            .tree
            .read()
            .ok()
            .and_then(|t| t.config_data().map(<[u8]>::to_vec));
        if let Some(text) = text {
            self.learn_addresses(&text);
        }
    }

    /// Records the peer addresses a configuration text names.
    fn learn_addresses(&mut self, text: &[u8]) {
        let Ok(ens) = std::str::from_utf8(text).map(corral_store::Ensemble::parse) else {
            return;
        };
        let Ok(ens) = ens else { return };
        for s in ens.servers.values().filter(|s| s.is_voter()) {
            use std::net::ToSocketAddrs;
            match (s.host.as_str(), s.quorum_port).to_socket_addrs() {
                Ok(mut a) => {
                    if let Some(addr) = a.next() {
                        self.addresses.insert(s.id, addr);
                    }
                }
                Err(e) => {
                    tracing::warn!(server = s.id, host = %s.host, "cannot resolve a voter's peer address: {e}")
                }
            }
        }
    }

    /// Keeps the link's peers equal to the voters the core counts: voters a
    /// reconfig adds are dialed (or accepted) as soon as it is proposed, and
    /// voters a committed reconfig dropped are disconnected and refused
    /// [`LEAVE_GRACE`] later.
    fn sync_members(&mut self) {
        let now = Instant::now();
        let due: Vec<u64> = self
            .leaving
            .iter()
            .filter(|(_, &at)| at <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.leaving.remove(&id);
            tracing::info!(server = id, "voter left the configuration; disconnecting");
            self.link.remove_peer(id);
        }
        let want: BTreeSet<u64> = self
            .core
            .view_voters()
            .into_iter()
            .map(|s| s.0)
            .filter(|&v| v != self.id)
            .collect();
        if want == self.members {
            return;
        }
        for &id in want.difference(&self.members) {
            self.leaving.remove(&id);
            match self.addresses.get(&id) {
                Some(&addr) => self.link.add_peer(id, addr),
                // It may still introduce itself.
                None => tracing::warn!(server = id, "no peer address known for a new voter"),
            }
        }
        for &id in self.members.difference(&want) {
            self.leaving.insert(id, now + LEAVE_GRACE);
        }
        self.members = want;
    }

    fn now(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    fn leading(&self) -> bool {
        self.serving == Some(self.id)
    }

    fn run(mut self, rx: Receiver<Input>) {
        // The core counts time in ms and checks its deadlines when ticked;
        // ticking four times per configured tick makes elections and
        // failure detection land within a quarter tick of their deadline.
        let tick = Duration::from_millis((self.opts.tick_ms / 4).max(1));
        self.pump();
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

    // ---- inputs ----

    fn input(&mut self, i: Input) {
        match i {
            Input::Peer { from, frame } => self.peer(from, frame),
            Input::Client(ClientInput::Write(w)) => self.write(w),
            Input::Client(ClientInput::Sync(reply)) => self.sync(reply),
            Input::Client(ClientInput::Revalidate {
                session_id,
                timeout_ms,
                reply,
            }) => self.revalidate(session_id, timeout_ms, reply),
            Input::SnapshotDone { zxid, path } => self.snapshot_done(zxid, path),
            Input::PeerDown(peer) => {
                let now = self.now();
                self.core.handle_peer_down(now, ServerId(peer));
            }
            Input::Feed(ev) => self.feed_event(ev),
            Input::FeedSnapSent { sub, zxid, ok } => {
                let job = self.with_feed(|hub, src| hub.snapshot_sent(sub, zxid, ok, src));
                if let Some(job) = job {
                    self.spawn_feed_snapshot(job);
                }
            }
        }
    }

    // ---- observer feeds ----

    fn feed_status(&self) -> FeedStatus {
        FeedStatus {
            serving: self.serving.is_some(),
            tip: self.shared.last_zxid(),
            leader: self.serving.unwrap_or(0),
            epoch: self.core.serving_epoch().unwrap_or(0),
            tip_time_ms: self.last_applied_time,
        }
    }

    /// Runs a hub step against this voter's state.
    fn with_feed<T>(&mut self, f: impl FnOnce(&mut Hub, &VoterSource<'_>) -> T) -> T {
        let src = VoterSource {
            core: &self.core,
            applied: self.shared.last_zxid(),
            status: self.feed_status(),
        };
        f(&mut self.hub, &src)
    }

    fn feed_event(&mut self, ev: FeedEvent) {
        match ev {
            FeedEvent::Open { sub, observer, out } => {
                if self.core.view_voters().contains(&ServerId(observer)) {
                    tracing::warn!(observer, "a voter's id opened an observer feed; refusing");
                    return;
                }
                self.hub.open(sub, observer, out);
            }
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
                    self.hub.learn_route(origin, sub);
                    self.relayed(origin, None, *inner);
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

    /// A request relayed on behalf of observer `origin` (from a voter peer,
    /// or from one of this node's feeds when `from` is `None`), or the
    /// leader's answer to one.
    fn relayed(&mut self, origin: u64, from: Option<u64>, inner: Envelope) {
        if origin == self.id || self.core.view_voters().contains(&ServerId(origin)) {
            tracing::warn!(
                origin,
                "a relayed request names a voter as its origin; ignoring"
            );
            return;
        }
        match inner {
            Envelope::ForwardFailed { .. }
            | Envelope::RevalidateReply { .. }
            | Envelope::SyncReply { .. } => {
                // Answers only come down, from the leader.
                if from.is_some() {
                    let env = Envelope::Relayed {
                        origin,
                        inner: Box::new(inner),
                    };
                    self.hub.route(origin, &env);
                }
            }
            req @ (Envelope::Forward { .. }
            | Envelope::Touch { .. }
            | Envelope::Revalidate { .. }
            | Envelope::Sync { .. }) => {
                let via = match from {
                    Some(p) => Origin::Relayed { id: origin, via: p },
                    None => Origin::Feed { id: origin },
                };
                self.request(via, req);
            }
            other => tracing::warn!(?other, "unexpected relayed envelope; ignoring"),
        }
    }

    /// A request for the leader (a forwarded write, touches, revalidation,
    /// `sync`) from a voter peer or an observer. The leader handles it; a
    /// follower passes an observer's request from its own feeds up to the
    /// leader (a voter peer forwards to the leader itself); a node that
    /// cannot do either refuses a write at once, so the client does not
    /// wait, and drops the rest, which then time out as "unknown", never as
    /// "expired".
    fn request(&mut self, origin: Origin, req: Envelope) {
        match (self.serving, origin) {
            (Some(l), _) if l == self.id => self.lead_request(origin, req),
            (Some(l), Origin::Feed { id }) => {
                let env = Envelope::Relayed {
                    origin: id,
                    inner: Box::new(req),
                };
                self.send_env(l, Channel::Forward, &env);
            }
            _ => {
                if let Envelope::Forward {
                    session_id, cxid, ..
                } = req
                {
                    self.answer(
                        origin,
                        Envelope::ForwardFailed {
                            session_id,
                            cxid,
                            code: 0,
                        },
                    );
                }
            }
        }
    }

    /// The leader handles a request from a peer or an observer.
    fn lead_request(&mut self, origin: Origin, req: Envelope) {
        let id = origin.server(self.id);
        match req {
            Envelope::Forward {
                session_id,
                cxid,
                principals,
                op,
            } => {
                let op = op.into_write();
                self.lead_write(origin, session_id, cxid, Arc::new(principals), op, None);
            }
            Envelope::Touch { sessions } => self.touched(id, sessions),
            Envelope::Revalidate {
                req,
                session_id,
                timeout_ms,
            } => {
                let live = self.revalidate_here(id, session_id, timeout_ms);
                self.answer(origin, Envelope::RevalidateReply { req, live });
            }
            Envelope::Sync { req } => {
                let zxid = self.core.committed_zxid().0;
                self.answer(origin, Envelope::SyncReply { req, zxid });
            }
            _ => {}
        }
    }

    /// Sends an answer back toward where a request came from.
    fn answer(&mut self, origin: Origin, env: Envelope) {
        match origin {
            Origin::Peer(p) => {
                self.send_env(p, Channel::Forward, &env);
            }
            Origin::Relayed { id, via } => {
                let env = Envelope::Relayed {
                    origin: id,
                    inner: Box::new(env),
                };
                self.send_env(via, Channel::Forward, &env);
            }
            Origin::Feed { id } => {
                let env = Envelope::Relayed {
                    origin: id,
                    inner: Box::new(env),
                };
                self.hub.route(id, &env);
            }
            Origin::Local => {}
        }
    }

    fn peer(&mut self, from: u64, frame: Vec<u8>) {
        let env = match envelope::decode(&frame) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(peer = from, error = %e, "dropping a malformed peer frame");
                return;
            }
        };
        if let Envelope::Batch(frames) = env {
            // One round of the sender's messages to us, in order.
            for f in frames {
                match envelope::decode(&f) {
                    Ok(Envelope::Batch(_)) => {
                        tracing::warn!(peer = from, "dropping a batch nested in a batch");
                    }
                    Ok(e) => self.peer_env(from, e),
                    Err(e) => {
                        tracing::warn!(peer = from, error = %e, "dropping a malformed message in a batch")
                    }
                }
            }
            return;
        }
        self.peer_env(from, env);
    }

    fn peer_env(&mut self, from: u64, env: Envelope) {
        let now = self.now();
        match env {
            Envelope::Batch(_) => {}
            Envelope::Zab(msg) => {
                let msg = match self.incoming_snapshot(msg) {
                    Some(m) => m,
                    None => return,
                };
                self.core.handle_message(now, ServerId(from), msg);
            }
            req @ (Envelope::Forward { .. }
            | Envelope::Touch { .. }
            | Envelope::Revalidate { .. }
            | Envelope::Sync { .. }) => self.request(Origin::Peer(from), req),
            Envelope::ForwardFailed {
                session_id,
                cxid,
                code,
            } => self.waiters.fail(&self.shared, session_id, cxid, code),
            Envelope::RevalidateReply { req, live } => {
                self.rpcs.revalidated(&self.shared, req, live);
            }
            Envelope::Relayed { origin, inner } => self.relayed(origin, Some(from), *inner),
            Envelope::FeedHello { .. }
            | Envelope::FeedTxns { .. }
            | Envelope::FeedSnapBegin { .. }
            | Envelope::FeedSnapChunk(_)
            | Envelope::FeedStatus(_) => {
                tracing::warn!(peer = from, "feed message on the peer protocol; ignoring");
            }
            Envelope::SyncReply { req, zxid } => self.rpcs.synced(&self.shared, req, zxid),
        }
    }

    /// A SNAP carries the snapshot's bytes on the wire; keep them as a file
    /// and hand the core a handle.
    fn incoming_snapshot(&mut self, msg: Message) -> Option<Message> {
        let Message::Snap {
            conn,
            epoch,
            snapshot,
            entries,
            configs,
        } = msg
        else {
            return Some(msg);
        };
        match disk::store_incoming(&self.dirs, snapshot.zxid.0, &snapshot.state) {
            Ok(handle) => Some(Message::Snap {
                conn,
                epoch,
                snapshot: handle,
                entries,
                configs,
            }),
            Err(e) => {
                tracing::error!(error = %e, "cannot store the snapshot sent by the leader; dropping it");
                None
            }
        }
    }

    fn write(&mut self, w: WriteRequest) {
        let Some(leader) = self.serving else {
            // Not serving: dropping the reply closes the connection.
            return;
        };
        if leader == self.id {
            let shape = w.op.shape();
            let waiter = w.reply.map(|reply| Completion {
                xid: w.xid,
                shape,
                reply,
            });
            self.lead_write(
                Origin::Local,
                w.session_id,
                w.xid,
                w.principals,
                w.op,
                waiter,
            );
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
        if !self.send_env(leader, Channel::Forward, &env) {
            self.waiters.take(w.session_id, w.xid);
        }
    }

    /// The leader preps and proposes a write from `origin` (itself or a
    /// learner). While `max_in_flight` proposals are uncommitted, writes wait
    /// in a bounded backlog, in arrival order (so one session's writes keep
    /// their order); past that bound they are refused with THROTTLEDOP.
    fn lead_write(
        &mut self,
        origin: Origin,
        session_id: i64,
        cxid: i32,
        principals: Arc<Vec<Principal>>,
        op: WriteOp,
        waiter: Option<Completion>,
    ) {
        let w = Backlogged {
            origin,
            session_id,
            cxid,
            principals,
            op,
            waiter,
        };
        if !self.backlog.is_empty() {
            self.backlog_push(w);
            return;
        }
        if let Err(w) = self.propose(w) {
            self.backlog_push(*w);
        }
    }

    fn backlog_push(&mut self, w: Backlogged) {
        if self.backlog.len() >= BACKLOG_LEN {
            let e = SubmitError::Busy(self.backlog.len());
            self.refuse(w.origin, w.session_id, w.cxid, w.waiter, &e);
            return;
        }
        self.backlog.push_back(w);
    }

    /// Proposes backlogged writes while the core takes them.
    fn drain_backlog(&mut self) {
        while let Some(w) = self.backlog.pop_front() {
            if let Err(w) = self.propose(w) {
                self.backlog.push_front(*w);
                return;
            }
        }
    }

    /// Preps and proposes one write; gives it back if the core is busy.
    fn propose(&mut self, w: Backlogged) -> Result<(), Box<Backlogged>> {
        let zxid = match self.core.next_zxid() {
            Ok(z) => z,
            Err(SubmitError::Busy(_)) => return Err(Box::new(w)),
            Err(e) => {
                self.refuse(w.origin, w.session_id, w.cxid, w.waiter, &e);
                return Ok(());
            }
        };
        let Backlogged {
            origin,
            session_id,
            cxid,
            principals,
            op,
            waiter,
        } = w;
        let time_ms = wall_ms();
        let txn = {
            let shared = self.shared.clone();
            let Ok(tree) = shared.tree.read() else {
                return Ok(());
            };
            let checked = match &op {
                WriteOp::CreateSession { .. } => None,
                WriteOp::Client(req) => self.session_check(origin, session_id, Some(req)),
                WriteOp::BindSession { .. } => self.session_check(origin, session_id, None),
            };
            let mut prep = Prep {
                tree: &tree,
                pending: &mut self.pending,
                opts: &self.prep_opts,
                session_id,
                principals: &principals,
                zxid: zxid.0,
                time_ms,
            };
            match checked {
                Some(code) => Txn::Error(code.code()),
                None => prep.write(&op),
            }
        };
        let creates_session = matches!(op, WriteOp::CreateSession { .. });
        let req = CoreRequest {
            session_id,
            cxid,
            time_ms,
            txn,
        };
        match self.core.handle_submit(self.now(), req) {
            Ok(z) => {
                debug_assert_eq!(z, zxid, "prep stamped the zxid the core gave");
                if creates_session {
                    self.owners.insert(session_id, origin.server(self.id));
                }
                if let Some(c) = waiter {
                    self.waiters.add(session_id, c);
                }
            }
            Err(e) => {
                // Prep's pending changes for this zxid never happen.
                self.pending.clear();
                self.refuse(origin, session_id, cxid, waiter, &e);
            }
        }
        Ok(())
    }

    /// ZooKeeper's session checks on the leader: a request of an expired (or
    /// expiring) session fails with SESSIONEXPIRED, one arriving through a
    /// server the session has left with SESSIONMOVED. Internal requests
    /// (expiry, the reaper) are not checked.
    fn session_check(
        &self,
        origin: Origin,
        session_id: i64,
        req: Option<&Request>,
    ) -> Option<ErrorCode> {
        if session_id == 0 {
            return None;
        }
        let live = self
            .shared
            .tracker
            .lock()
            .map(|t| t.is_live(session_id))
            .unwrap_or(false);
        if !live {
            // The expiry closeSession itself comes from this node with no
            // client behind it; let it through.
            if matches!(req, Some(Request::CloseSession)) && origin == Origin::Local {
                return None;
            }
            return Some(ErrorCode::SessionExpired);
        }
        match self.owners.get(&session_id) {
            Some(&owner) if owner != origin.server(self.id) => Some(ErrorCode::SessionMoved),
            _ => None,
        }
    }

    fn refuse(
        &mut self,
        origin: Origin,
        session_id: i64,
        cxid: i32,
        waiter: Option<Completion>,
        e: &SubmitError,
    ) {
        tracing::debug!(error = %e, session = format_args!("0x{session_id:x}"), "write refused");
        let code = if e.definite() { e.code() } else { 0 };
        if origin != Origin::Local {
            self.answer(
                origin,
                Envelope::ForwardFailed {
                    session_id,
                    cxid,
                    code,
                },
            );
            return;
        }
        // A write whose fate is unknown closes the connection (code 0): the
        // client retries elsewhere.
        if let Some(c) = waiter {
            waits::fail(&self.shared, c, code);
        }
    }

    fn sync(&mut self, reply: oneshot::Sender<bool>) {
        match self.serving {
            None => {
                let _ = reply.send(false);
            }
            // Everything this leader acknowledged is applied here already.
            Some(l) if l == self.id => {
                let _ = reply.send(true);
            }
            Some(l) => {
                let req = self.rpcs.start(Rpc::Sync(reply));
                if !self.send_env(l, Channel::Forward, &Envelope::Sync { req }) {
                    self.rpcs.fail(req);
                }
            }
        }
    }

    fn revalidate(&mut self, session_id: i64, timeout_ms: i32, reply: oneshot::Sender<bool>) {
        match self.serving {
            // Unknown without a leader: dropping the reply closes the
            // connection and the client retries.
            None => drop(reply),
            Some(l) if l == self.id => {
                let live = self.revalidate_here(self.id, session_id, timeout_ms);
                let _ = reply.send(live);
            }
            Some(l) => {
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
                if !self.send_env(l, Channel::Forward, &env) {
                    self.rpcs.fail(req);
                }
            }
        }
    }

    /// Leader: is the session live? If so it now belongs to `owner`.
    fn revalidate_here(&mut self, owner: u64, session_id: i64, timeout_ms: i32) -> bool {
        let now = self.shared.now_ms();
        let live = match self.shared.tracker.lock() {
            Ok(mut t) if t.is_live(session_id) => {
                t.set_timeout(session_id, timeout_ms.max(0) as u32, now);
                true
            }
            _ => false,
        };
        if live {
            self.owners.insert(session_id, owner);
        }
        live
    }

    fn touched(&mut self, from: u64, sessions: Vec<(i64, i32)>) {
        if !self.leading() {
            return;
        }
        let now = self.shared.now_ms();
        let known: Vec<bool> = match self.shared.tree.read() {
            Ok(tree) => sessions
                .iter()
                .map(|(s, _)| tree.sessions().contains_key(s))
                .collect(),
            Err(_) => return,
        };
        let Ok(mut t) = self.shared.tracker.lock() else {
            return;
        };
        for ((s, timeout), in_tree) in sessions.into_iter().zip(known) {
            if !t.touch(s, now) && in_tree && t.timeout_of(s).is_none() {
                // A session this leader did not track yet (it became leader
                // after the session was created): adopt it.
                t.add(s, timeout.max(0) as u32, now);
            }
            self.owners.entry(s).or_insert(from);
        }
    }

    fn snapshot_done(&mut self, zxid: i64, path: std::path::PathBuf) {
        let now = self.now();
        self.core.handle_snapshot(now, disk::handle(zxid, &path));
        match corral_store::purge_snapshots(
            &self.dirs.snapshots,
            self.shared.opts.snap_retain_count,
        ) {
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
        let now = self.now();
        self.core.handle_tick(now);
        match self.serving {
            Some(l) if l == self.id => {
                self.expire_sessions();
                self.reap();
            }
            Some(l) => {
                let touched = self
                    .shared
                    .tracker
                    .lock()
                    .map(|mut t| t.drain_touched())
                    .unwrap_or_default();
                if !touched.is_empty() {
                    let sessions = touched.into_iter().map(|(s, t)| (s, t as i32)).collect();
                    self.send_env(l, Channel::Forward, &Envelope::Touch { sessions });
                }
            }
            None => {}
        }
        self.expire_waits();
        let st = self.feed_status();
        self.hub
            .status(st, Duration::from_millis(self.opts.tick_ms));
        self.publish_traffic();
        self.update_mode();
    }

    /// Peer and feed traffic counters into `mntr`.
    fn publish_traffic(&self) {
        let (sent, received) = self.link.bytes();
        let feeds = self.hub.stats();
        let s = &self.shared.stats;
        s.peer_bytes_sent.store(sent, Ordering::Relaxed);
        s.peer_bytes_received.store(received, Ordering::Relaxed);
        s.feed_bytes_sent.store(feeds.bytes, Ordering::Relaxed);
        s.feed_frames_sent.store(feeds.frames, Ordering::Relaxed);
    }

    fn expire_sessions(&mut self) {
        let now = self.shared.now_ms();
        let expired = match self.shared.tracker.lock() {
            Ok(mut t) => t.expire(now),
            Err(_) => return,
        };
        for session_id in expired {
            tracing::info!(
                session = format_args!("0x{session_id:x}"),
                "session expired"
            );
            self.shared.tenancy.note_expiring(session_id);
            self.lead_write(
                Origin::Local,
                session_id,
                0,
                Arc::new(Vec::new()),
                WriteOp::Client(Request::CloseSession),
                None,
            );
        }
    }

    /// Empty containers and expired TTL nodes, deleted by the leader.
    fn reap(&mut self) {
        let interval = Duration::from_millis(self.shared.opts.container_check_interval_ms);
        if self.last_reap.elapsed() < interval {
            return;
        }
        self.last_reap = Instant::now();
        let paths = match self.shared.tree.read() {
            Ok(tree) => {
                let mut p = tree.container_candidates();
                if self.shared.opts.ttl_nodes_enabled {
                    p.extend(tree.ttl_candidates(wall_ms()));
                }
                p
            }
            Err(_) => return,
        };
        for p in paths {
            self.lead_write(
                Origin::Local,
                0,
                0,
                Arc::new(vec![corral_auth::super_principal()]),
                WriteOp::Client(Request::DeleteContainer(p)),
                None,
            );
        }
    }

    /// Requests whose answer is overdue: a lost forward, a leader that
    /// vanished mid-request. Their clients' connections close ("maybe").
    fn expire_waits(&mut self) {
        let limit =
            Duration::from_millis(u64::from(self.shared.opts.max_session_timeout_ms).max(10_000));
        self.waiters.expire(limit);
        let rpc_limit =
            Duration::from_millis((self.opts.tick_ms * self.opts.sync_limit_ticks * 4).max(2_000));
        self.rpcs.expire(rpc_limit);
    }

    fn update_mode(&mut self) {
        let (learners, synced) = self.core.learner_counts().unwrap_or((0, 0));
        let mode = match (self.core.role(), self.serving.is_some()) {
            (Role::Leading, true) => "leader",
            (Role::Following { .. }, true) => "follower",
            _ => "looking",
        };
        let info = ModeInfo {
            mode,
            epoch: self.core.serving_epoch().unwrap_or(0),
            leader: self.serving,
            learners,
            synced_followers: synced,
            voters: self.core.active_config().voters.len(),
            feeds: self.hub.stats().feeds,
            observer: None,
        };
        if let Ok(mut m) = self.shared.mode.write() {
            if *m != info {
                *m = info;
            }
        }
    }

    // ---- outputs ----

    /// Works off the core's outputs until it has nothing more to say.
    fn pump(&mut self) {
        loop {
            let mut persisted = None;
            let mut commits: Vec<LogEntry> = Vec::new();
            // Consecutive appends of this round go to the log in one write.
            let mut appends: Vec<LogEntry> = Vec::new();
            let mut any = false;
            while let Some(o) = self.core.poll_output() {
                any = true;
                match o {
                    Output::Send { to, msg } => self.send_msg(to.0, msg),
                    Output::Persist { id, ops } => {
                        for op in &ops {
                            if let PersistOp::Append(entries) = op {
                                for e in entries {
                                    if let corral_store::Txn::Reconfig { data } = &e.txn {
                                        let data = data.clone();
                                        self.learn_addresses(&data);
                                    }
                                }
                            }
                        }
                        for op in ops {
                            if let PersistOp::Append(entries) = op {
                                appends.extend(entries);
                                continue;
                            }
                            self.write_appends(&mut appends);
                            if let Err(e) = disk::apply_op(&self.dirs, self.log.as_mut(), op) {
                                self.disk_failed(&e);
                            }
                        }
                        persisted = Some(id);
                    }
                    Output::Commit(e) => commits.push(e),
                    Output::InstallSnapshot(s) => {
                        self.write_appends(&mut appends);
                        self.apply(std::mem::take(&mut commits));
                        self.install(&s);
                    }
                    Output::Elected { vote, role } => {
                        tracing::info!(leader = vote.leader.0, zxid = %vote.zxid, ?role, "election finished");
                    }
                    Output::RoleChanged(role) => {
                        self.apply(std::mem::take(&mut commits));
                        self.stop_serving(role);
                    }
                    Output::Serving { epoch, leader } => {
                        self.apply(std::mem::take(&mut commits));
                        self.start_serving(epoch, leader.0);
                    }
                    Output::Abandoned(z) => {
                        tracing::info!(count = z.len(), "stopped leading with proposals in flight; their outcome is decided by the next leader");
                    }
                }
            }
            self.write_appends(&mut appends);
            self.sync_members();
            self.flush_outbox();
            self.apply(commits);
            if let Some(id) = persisted {
                if let Err(e) = self.log.sync() {
                    self.disk_failed(&e);
                }
                self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                let now = self.now();
                self.core.handle_persisted(now, id);
                continue;
            }
            if !any {
                return;
            }
        }
    }

    /// Writes the appends gathered so far (durable at the round's sync).
    fn write_appends(&mut self, appends: &mut Vec<LogEntry>) {
        if appends.is_empty() {
            return;
        }
        let entries = std::mem::take(appends);
        if let Err(e) = disk::apply_op(&self.dirs, self.log.as_mut(), PersistOp::Append(entries)) {
            self.disk_failed(&e);
        }
    }

    /// The log cannot take writes. A voter that cannot persist cannot keep
    /// its promises to the ensemble: exit, as ZooKeeper does, so the others
    /// carry on, and restart once the disk is fixed.
    fn disk_failed(&self, e: &corral_store::StoreError) -> ! {
        tracing::error!(error = %e, "txn log write failed; a voter cannot continue without a durable log");
        eprintln!("corral: txn log write failed ({e}); exiting");
        std::process::exit(70);
    }

    fn send_msg(&mut self, to: u64, msg: Message) {
        let channel = match msg {
            Message::Notification(_) => Channel::Election,
            _ => Channel::Feed,
        };
        let msg = match msg {
            Message::Snap {
                conn,
                epoch,
                snapshot,
                entries,
                configs,
            } => match disk::read_snapshot(&snapshot) {
                Ok(bytes) => Message::Snap {
                    conn,
                    epoch,
                    snapshot: crate::core::Snapshot {
                        zxid: snapshot.zxid,
                        state: Arc::from(bytes),
                    },
                    entries,
                    configs,
                },
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the snapshot for a SNAP sync");
                    return;
                }
            },
            m => m,
        };
        // Queued, and sent when the round's outputs are all out, so one
        // round's messages to a peer travel as one frame.
        self.outbox
            .entry((to, channel))
            .or_default()
            .push(envelope::encode(&Envelope::Zab(msg)));
    }

    /// Sends what `send_msg` queued: one frame per peer and channel, a
    /// batch when there is more than one message (order kept).
    fn flush_outbox(&mut self) {
        for ((to, channel), mut frames) in std::mem::take(&mut self.outbox) {
            let frame = if frames.len() == 1 {
                frames.pop().unwrap_or_default()
            } else {
                envelope::encode(&Envelope::Batch(frames))
            };
            self.link.send(to, channel, frame);
        }
    }

    fn send_env(&self, to: u64, channel: Channel, env: &Envelope) -> bool {
        self.link.send(to, channel, envelope::encode(env))
    }

    /// Applies committed entries in order, completing this node's waiters.
    fn apply(&mut self, commits: Vec<LogEntry>) {
        if commits.is_empty() {
            return;
        }
        let last = commits.last().map(|e| e.hdr.zxid).unwrap_or(0);
        let leading = self.leading();
        let mut batch = Vec::with_capacity(commits.len());
        for e in commits {
            if leading {
                self.on_leader_commit(&e);
            }
            let w = self.waiters.take(e.hdr.session_id, e.hdr.cxid);
            batch.push((e, w));
        }
        self.applied_since_snapshot += batch.len() as u64;
        let published: Option<Vec<LogEntry>> =
            (!self.hub.is_empty()).then(|| batch.iter().map(|(e, _)| e.clone()).collect());
        if let Some((e, _)) = batch.last() {
            self.last_applied_time = e.hdr.time_ms;
        }
        apply_batch(&self.shared, batch);
        if let Some(entries) = published {
            self.hub.publish(&entries);
        }
        if leading {
            self.pending.applied_through(last);
            self.drain_backlog();
        }
        self.rpcs.applied(self.shared.last_zxid());
        self.maybe_snapshot();
    }

    fn on_leader_commit(&mut self, e: &LogEntry) {
        match &e.txn {
            Txn::CreateSession { timeout_ms, .. } => {
                if let Ok(mut t) = self.shared.tracker.lock() {
                    if t.timeout_of(e.hdr.session_id).is_none() {
                        t.add(
                            e.hdr.session_id,
                            (*timeout_ms).max(0) as u32,
                            self.shared.now_ms(),
                        );
                    }
                }
            }
            Txn::CloseSession => {
                self.owners.remove(&e.hdr.session_id);
            }
            _ => {}
        }
    }

    /// A learner got a SNAP: its tree becomes the snapshot's.
    fn install(&mut self, s: &crate::core::Snapshot) {
        match disk::load_tree(s) {
            Ok(tree) => {
                if let Ok(mut t) = self.shared.tree.write() {
                    *t = tree;
                    // The tenant registry and usage roots come with the tree.
                    corral_server::tenancy::registry_changed(&self.shared, &mut t);
                }
                tracing::info!(zxid = %s.zxid, "installed the leader's snapshot");
                self.learn_tree_addresses();
                // The tree jumped: every observer feed resyncs from scratch.
                self.hub.reset_all();
            }
            Err(e) => {
                // The core believes the state is installed; serving from a
                // stale tree would be wrong, so stop.
                tracing::error!(error = %e, "cannot load the snapshot sent by the leader");
                eprintln!("corral: cannot load the leader's snapshot ({e}); exiting");
                std::process::exit(70);
            }
        }
    }

    fn start_serving(&mut self, epoch: u32, leader: u64) {
        self.serving = Some(leader);
        self.pending.clear();
        let now = self.shared.now_ms();
        if leader == self.id {
            // Every session in the tree gets a fresh deadline from the new
            // leader, as in ZooKeeper; local clients are owned here.
            let sessions: Vec<(i64, i32)> = self
                .shared
                .tree
                .read()
                .map(|t| {
                    t.sessions()
                        .iter()
                        .map(|(id, s)| (*id, s.timeout_ms))
                        .collect()
                })
                .unwrap_or_default();
            if let Ok(mut t) = self.shared.tracker.lock() {
                t.record_touches(false);
                for (id, timeout) in sessions {
                    if !t.touch(id, now) {
                        t.add(id, timeout.max(0) as u32, now);
                    }
                }
            }
            self.owners.clear();
            if let Ok(m) = self.shared.session_conn.lock() {
                for s in m.keys() {
                    self.owners.insert(*s, self.id);
                }
            }
        } else if let Ok(mut t) = self.shared.tracker.lock() {
            t.record_touches(true);
        }
        // Read-only clients reconnect in read-write mode now.
        self.shared.close_read_only_connections();
        tracing::info!(
            epoch,
            leader,
            role = if leader == self.id {
                "leader"
            } else {
                "follower"
            },
            "serving"
        );
        self.shared.serving.store(true, Ordering::Release);
        self.update_mode();
    }

    fn stop_serving(&mut self, role: Role) {
        if self.serving.take().is_some() {
            tracing::info!(?role, "stopped serving; closing client connections");
        }
        self.shared.serving.store(false, Ordering::Release);
        self.shared.close_all_connections();
        self.waiters.clear();
        self.rpcs.clear();
        self.pending.clear();
        self.backlog.clear();
        self.owners.clear();
        self.update_mode();
    }

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
            self.dirs.snapshots.clone(),
            &self.snapshot_running,
            move |zxid, path| {
                let _ = tx.try_send(Input::SnapshotDone { zxid, path });
            },
        );
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
        self.pump();
        self.pump_feeds();
    }

    fn hurry(&self) -> bool {
        self.hub.catching_up()
    }
}
