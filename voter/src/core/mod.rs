//! The sans-IO ZAB core. See the crate docs for the ordering rules.
//!
//! - [`types`]: `ServerId`, `Zxid`, `Vote`, roles.
//! - [`message`]: peer messages as data.
//! - [`io`]: configuration, recovered state, requests, outputs.
//! - `log`: the in-memory log window and commit point.
//! - `election`: fast leader election (LOOKING).
//! - `leader`: discovery, sync and broadcast as the leader (LEADING).
//! - `follower`: the learner side (FOLLOWING).

mod election;
mod follower;
pub mod io;
mod leader;
mod log;
pub mod members;
pub mod message;
pub mod types;

use std::collections::VecDeque;

use corral_store::LogEntry;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use io::{Config, Output, PersistOp, Recovered, Request, SubmitError};
pub use members::{Configs, Membership};
pub use message::{Message, Notification, Snapshot};
pub use types::{Epoch, PeerState, Role, ServerId, Vote, Zxid};

use election::Election;
use follower::Follower;
use leader::Leader;
use log::Log;

/// What is durable, as of the last completed `Persist`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Durable {
    accepted_epoch: Epoch,
    current_epoch: Epoch,
    last_zxid: Zxid,
}

#[derive(Debug)]
enum State {
    Looking(Election),
    Following(Follower),
    Leading(Leader),
}

/// One voter's protocol state. Feed it with `handle_*`, drain `poll_output`.
#[derive(Debug)]
pub struct Core {
    cfg: Config,
    rng: ChaCha8Rng,
    now_ms: u64,
    state: State,
    log: Log,
    /// The latest values issued to the disk (durable or not).
    accepted_epoch: Epoch,
    current_epoch: Epoch,
    durable: Durable,
    /// Issued persists not yet reported durable: (id, what is durable after it).
    persisting: VecDeque<(u64, Durable)>,
    next_persist_id: u64,
    /// The logical clock of fast leader election; survives role changes.
    election_epoch: u64,
    /// The vote this server last decided on (what it tells LOOKING peers).
    vote: Vote,
    conn_base: u64,
    conn_seq: u64,
    outputs: VecDeque<Output>,
}

impl Core {
    /// Starts LOOKING from recovered durable state.
    pub fn new(cfg: Config, recovered: Recovered, now_ms: u64) -> Core {
        let configs = if recovered.configs.is_empty() {
            Configs::new(
                recovered
                    .membership
                    .unwrap_or_else(|| Membership::new(Zxid::ZERO, cfg.voters.iter().copied())),
            )
        } else {
            Configs::recovered(recovered.configs, recovered.membership)
        };
        let log = Log::new(recovered.snapshot, recovered.log, configs);
        let durable = Durable {
            accepted_epoch: recovered.accepted_epoch,
            current_epoch: recovered.current_epoch,
            last_zxid: log.last(),
        };
        let vote = Vote {
            leader: cfg.id,
            zxid: log.last(),
            election_epoch: 0,
            peer_epoch: recovered.current_epoch,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let conn_base = u64::from(rng.gen::<u32>());
        let mut core = Core {
            rng,
            conn_base,
            conn_seq: 0,
            cfg,
            now_ms,
            state: State::Looking(Election::default()),
            log,
            accepted_epoch: recovered.accepted_epoch,
            current_epoch: recovered.current_epoch,
            durable,
            persisting: VecDeque::new(),
            next_persist_id: 1,
            election_epoch: 0,
            vote,
            outputs: VecDeque::new(),
        };
        core.start_looking();
        core
    }

    pub fn id(&self) -> ServerId {
        self.cfg.id
    }

    pub fn role(&self) -> Role {
        match &self.state {
            State::Looking(_) => Role::Looking,
            State::Following(f) => Role::Following { leader: f.leader },
            State::Leading(_) => Role::Leading,
        }
    }

    /// The epoch this node leads or follows in, once established/synced.
    pub fn serving_epoch(&self) -> Option<Epoch> {
        match &self.state {
            State::Leading(l) if l.established => l.epoch,
            State::Following(f) if f.serving() => f.epoch(),
            _ => None,
        }
    }

    /// The vote this server last decided (what it tells LOOKING peers).
    pub fn vote(&self) -> Vote {
        self.vote
    }

    pub fn last_zxid(&self) -> Zxid {
        self.log.last()
    }

    pub fn committed_zxid(&self) -> Zxid {
        self.log.committed()
    }

    pub fn accepted_epoch(&self) -> Epoch {
        self.accepted_epoch
    }

    pub fn current_epoch(&self) -> Epoch {
        self.current_epoch
    }

    pub fn election_epoch(&self) -> u64 {
        self.election_epoch
    }

    /// The configurations this node knows (see [`members`]), oldest first.
    pub fn configs(&self) -> &[Membership] {
        self.log.configs().list()
    }

    /// The configuration in force at this node's commit point.
    pub fn active_config(&self) -> &Membership {
        self.log.configs().active(self.log.committed())
    }

    /// Every voter of the configurations this node counts now (see
    /// [`members`]): the servers it must be able to reach.
    pub fn view_voters(&self) -> std::collections::BTreeSet<ServerId> {
        Configs::union(&self.view())
    }

    /// Whether a reconfig is proposed and not yet committed here.
    pub fn reconfig_pending(&self) -> bool {
        self.log.configs().pending(self.log.committed())
    }

    /// The configurations whose quorums this node needs now.
    fn view(&self) -> Vec<&Membership> {
        self.log.configs().view(self.log.committed())
    }

    /// Whether the servers for which `yes` holds include a quorum of every
    /// configuration in the view.
    fn view_quorum(&self, yes: impl Fn(ServerId) -> bool) -> bool {
        self.view().iter().all(|m| m.has_quorum(&yes))
    }

    /// Whether `s` votes in some configuration of the view.
    fn in_view(&self, s: ServerId) -> bool {
        self.view().iter().any(|m| m.contains(s))
    }

    /// Whether `s` may lead: it votes in some configuration of our view, or
    /// of a pending configuration a peer reported while we look. A voter of
    /// the old configuration leads a pending reconfig to its commit, then
    /// steps down if it is not in the new one; a voter of the new one may
    /// lead it too, which matters when only it holds the latest history.
    /// Counting peers' pending configurations keeps servers that do and do
    /// not hold a pending reconfig agreeing on candidates. Election only
    /// picks whom to try; establishment's quorums decide.
    fn may_lead(&self, s: ServerId) -> bool {
        self.in_view(s) || matches!(&self.state, State::Looking(e) if e.heard.contains(&s))
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    pub fn handle_message(&mut self, now_ms: u64, from: ServerId, msg: Message) {
        self.advance(now_ms);
        // Anyone with a cluster certificate may talk: a server outside the
        // configuration may follow as a non-voting learner, and its votes
        // count for nothing (see `members`).
        if from == self.cfg.id {
            return;
        }
        if let Message::Notification(n) = msg {
            self.on_notification(from, n);
            return;
        }
        match &self.state {
            State::Leading(_) => self.leader_on_message(from, msg),
            State::Following(f) if f.leader == from => self.follower_on_message(msg),
            _ => {}
        }
    }

    /// The driver learned that `peer`'s process is gone (its port refuses
    /// packets): a follower of that peer re-elects at once instead of waiting
    /// for `sync_limit_ticks` of silence. Only a hint that saves time; missing
    /// or late hints change nothing, and a wrong one costs an election.
    pub fn handle_peer_down(&mut self, now_ms: u64, peer: ServerId) {
        self.advance(now_ms);
        if let State::Following(f) = &self.state {
            if f.leader == peer {
                tracing::info!(leader = %peer, "the leader's process is gone; re-electing");
                self.start_looking();
            }
        }
    }

    pub fn handle_tick(&mut self, now_ms: u64) {
        self.advance(now_ms);
        match &self.state {
            State::Looking(_) => self.election_on_tick(),
            State::Following(_) => self.follower_on_tick(),
            State::Leading(_) => self.leader_on_tick(),
        }
    }

    /// The driver made persist `id` (and every earlier one) durable.
    pub fn handle_persisted(&mut self, now_ms: u64, id: u64) {
        self.advance(now_ms);
        let mut advanced = false;
        while let Some(&(pid, d)) = self.persisting.front() {
            if pid > id {
                break;
            }
            self.persisting.pop_front();
            self.durable = d;
            advanced = true;
        }
        if !advanced {
            return;
        }
        match &self.state {
            State::Looking(_) => {}
            State::Following(_) => self.follower_on_durable(),
            State::Leading(_) => self.leader_on_durable(),
        }
    }

    /// The driver took a snapshot of its state machine at `snapshot.zxid`
    /// (at or below the commit point); the window before it may be trimmed.
    pub fn handle_snapshot(&mut self, now_ms: u64, snapshot: Snapshot) {
        self.advance(now_ms);
        if self.log.set_snapshot(snapshot) {
            self.log.trim(self.cfg.committed_log_window);
        }
    }

    /// At most `max` committed entries after `z` and at or below `through`
    /// (capped at the commit point), in zxid order; `None` when `z` is older
    /// than the log window (the caller then needs
    /// [`Core::latest_snapshot`]). What an observer feed sends.
    pub fn committed_after(&self, z: Zxid, through: Zxid, max: usize) -> Option<Vec<LogEntry>> {
        if z < self.log.start() {
            return None;
        }
        let through = through.min(self.log.committed());
        Some(self.log.range_after(z, through, max))
    }

    /// The newest snapshot the driver reported (or the empty one); the log
    /// window always holds every entry after it.
    pub fn latest_snapshot(&self) -> Snapshot {
        self.log.snapshot().clone()
    }

    /// The zxid the next [`Core::handle_submit`] would get (leader prep
    /// stamps it into the txn's pending changes), or why it would refuse.
    pub fn next_zxid(&self) -> Result<Zxid, SubmitError> {
        self.leader_next_zxid()
    }

    /// On a leader: (learners in a handshake or later, learners synced and
    /// receiving proposals). `None` when not leading.
    pub fn learner_counts(&self) -> Option<(usize, usize)> {
        match &self.state {
            State::Leading(l) => Some(l.learner_counts()),
            _ => None,
        }
    }

    /// Proposes a prepared txn. Only an established leader accepts.
    pub fn handle_submit(&mut self, now_ms: u64, req: Request) -> Result<Zxid, SubmitError> {
        self.advance(now_ms);
        self.leader_submit(req)
    }

    fn advance(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    fn ticks(&self, n: u64) -> u64 {
        n.saturating_mul(self.cfg.tick_ms)
    }

    fn send(&mut self, to: ServerId, msg: Message) {
        self.outputs.push_back(Output::Send { to, msg });
    }

    /// Every other voter of the view.
    fn others(&self) -> Vec<ServerId> {
        let mut all = Configs::union(&self.view());
        all.remove(&self.cfg.id);
        all.into_iter().collect()
    }

    fn persist(&mut self, ops: Vec<PersistOp>) {
        if ops.is_empty() {
            return;
        }
        let id = self.next_persist_id;
        self.next_persist_id += 1;
        let after = Durable {
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            last_zxid: self.log.last(),
        };
        self.persisting.push_back((id, after));
        self.outputs.push_back(Output::Persist { id, ops });
    }

    /// Commits through `z`; returns the newest configuration a committed
    /// reconfig among them made active, if any.
    fn commit_through(&mut self, z: Zxid) -> Option<Membership> {
        let mut activated = None;
        for e in self.log.commit_through(z) {
            if let Some(m) = Membership::of_entry(&e) {
                activated = Some(m);
            }
            self.outputs.push_back(Output::Commit(e));
        }
        self.log.trim(self.cfg.committed_log_window);
        activated
    }

    /// A handshake number: a random per-incarnation high half (from the
    /// seeded PRNG, so a restarted node given a fresh seed does not reuse its
    /// predecessor's) and a counter, so the leader can tell a late
    /// `FollowerInfo` from an earlier handshake of the same incarnation.
    fn fresh_conn(&mut self) -> u64 {
        self.conn_seq += 1;
        (self.conn_base << 32) | (self.conn_seq & 0xffff_ffff)
    }

    /// Leaves any role and starts a new election round.
    fn start_looking(&mut self) {
        if let State::Leading(l) = &self.state {
            let abandoned = l.abandoned(&self.log);
            if !abandoned.is_empty() {
                self.outputs.push_back(Output::Abandoned(abandoned));
            }
        }
        self.state = State::Looking(Election::default());
        self.outputs.push_back(Output::RoleChanged(Role::Looking));
        self.election_start();
    }
}

#[cfg(test)]
mod tests;
