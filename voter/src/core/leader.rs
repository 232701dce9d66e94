//! The leader: discovery (new epoch), per-learner sync, broadcast.
//!
//! Discovery: learners send `FollowerInfo` with their accepted epoch. Once a
//! quorum (counting the leader) has, the new epoch is one above every
//! accepted epoch seen; the leader makes it its accepted epoch durably, then
//! sends `LeaderInfo`. Learners answer `AckEpoch` with their current epoch and
//! last zxid. A learner that is ahead of the leader (later current epoch, or
//! the same with a later zxid) means the election chose wrongly: the leader
//! gives up. At a quorum of `AckEpoch` the leader makes the epoch its current
//! epoch (durably) and syncs each learner.
//!
//! Sync mode, from the learner's last zxid `p` and the leader's log window
//! (`start`, `last`], as ZooKeeper's `LearnerHandler.syncFollower`:
//! - `p == last`: empty DIFF;
//! - `p` in the window (or equal to its start): DIFF of what follows;
//! - `p` after `last` in the same epoch: TRUNC to `last`;
//! - `p` inside the window but not in the log, and the entry that follows it
//!   in the leader's log is of `p`'s epoch: TRUNC to the entry before `p`,
//!   then DIFF;
//! - otherwise (older than the window, or a TRUNC that would cross an epoch
//!   boundary), if the learner's commit point `c` (reported in `AckEpoch`)
//!   is in the window: TRUNC to `c`, then DIFF — the learner's log up to `c`
//!   is committed history, which every log agrees on;
//! - else SNAP of the latest snapshot plus the entries after it.
//!
//! ZooKeeper sends a cross-epoch TRUNC when `p` is past its last zxid and a
//! SNAP for the other cross-epoch case; truncating to the commit point never
//! relies on the learner's uncommitted history and never rolls it back.
//!
//! The sync is followed by `NewLeader{zxid}` (the learner's log end). The
//! leader is established once a quorum, counting its own durable log and
//! current epoch, has acked at least its log end at establishment. Only then
//! does anything commit (its whole history first), and learners that acked
//! get `UpToDate`.
//!
//! Broadcast: a proposal is appended and persisted locally and sent to every
//! learner being synced or up to date. It commits when a quorum (the leader's
//! own durable log included) has acked it; commits go out in zxid order.
//!
//! Every "quorum" above is a quorum of each configuration in the leader's
//! view, and a learner counts only where it votes (see `members`). A leader
//! that commits a configuration it is not in steps down once the commit is
//! sent. A reconfig is proposed only when none is pending and when a quorum
//! of the new configuration is synced with the leader.

use std::collections::BTreeMap;

use corral_store::{LogEntry, Txn, TxnHeader};

use super::io::{PersistOp, Request, SubmitError};
use super::log::Log;
use super::members::Membership;
use super::message::Message;
use super::types::{Epoch, Role, ServerId, Zxid};
use super::{Core, Output, State};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `FollowerInfo` received; waiting for the epoch to be decided.
    Info,
    /// `LeaderInfo` sent.
    EpochSent,
    /// `AckEpoch` received; waiting for a quorum of them.
    EpochAcked { last_zxid: Zxid, committed: Zxid },
    /// Sync and `NewLeader{newleader}` sent.
    Syncing { newleader: Zxid },
    /// Acked `NewLeader`; gets commits.
    Ready,
}

#[derive(Debug)]
struct LearnerHandle {
    conn: u64,
    accepted_epoch: Epoch,
    stage: Stage,
    /// Highest zxid the learner reported durable in this epoch.
    acked: Zxid,
    last_heard_ms: u64,
}

/// Which sync a learner gets (exposed for tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    Diff,
    Trunc(Zxid),
    TruncDiff(Zxid),
    Snap,
}

#[derive(Debug)]
pub(crate) struct Leader {
    started_ms: u64,
    learners: BTreeMap<ServerId, LearnerHandle>,
    /// The new epoch, once decided.
    pub(crate) epoch: Option<Epoch>,
    /// The epoch is durably our accepted epoch (LeaderInfo may go out).
    epoch_durable: bool,
    /// A quorum acked the epoch; learners are being synced.
    syncing: bool,
    /// Our log end when we started syncing (what a quorum must ack).
    newleader: Zxid,
    pub(crate) established: bool,
    /// The highest commit point sent to learners.
    commit_sent: Zxid,
}

impl Leader {
    pub(crate) fn new(now_ms: u64) -> Leader {
        Leader {
            started_ms: now_ms,
            learners: BTreeMap::new(),
            epoch: None,
            epoch_durable: false,
            syncing: false,
            newleader: Zxid::ZERO,
            established: false,
            commit_sent: Zxid::ZERO,
        }
    }

    /// (learners known, learners synced and acking proposals).
    pub(crate) fn learner_counts(&self) -> (usize, usize) {
        let ready = self
            .learners
            .values()
            .filter(|h| matches!(h.stage, Stage::Ready))
            .count();
        (self.learners.len(), ready)
    }

    /// Uncommitted proposals of our epoch (their fate is unknown if we stop).
    pub(crate) fn abandoned(&self, log: &Log) -> Vec<Zxid> {
        let Some(epoch) = self.epoch else {
            return Vec::new();
        };
        log.uncommitted()
            .into_iter()
            .filter(|z| z.epoch() == epoch)
            .collect()
    }
}

/// Chooses the sync for a learner whose log ends at `p` and whose commit
/// point is `c`.
pub(crate) fn choose_sync(log: &Log, p: Zxid, c: Zxid) -> SyncMode {
    let last = log.last();
    if p == last {
        return SyncMode::Diff;
    }
    if p > last && p.epoch() == last.epoch() {
        return SyncMode::Trunc(last);
    }
    if p < last && p >= log.start() {
        if log.contains(p) {
            return SyncMode::Diff;
        }
        if log
            .first_after(p)
            .is_some_and(|next| next.epoch() == p.epoch())
        {
            return SyncMode::TruncDiff(log.before(p));
        }
    }
    if c <= p && c >= log.start() && log.contains(c) {
        return if c == last {
            SyncMode::Trunc(c)
        } else {
            SyncMode::TruncDiff(c)
        };
    }
    SyncMode::Snap
}

impl Core {
    fn leader(&mut self) -> Option<&mut Leader> {
        match &mut self.state {
            State::Leading(l) => Some(l),
            _ => None,
        }
    }

    fn leader_ref(&self) -> Option<&Leader> {
        match &self.state {
            State::Leading(l) => Some(l),
            _ => None,
        }
    }

    pub(super) fn leader_start(&mut self) {
        // A lone voter is its own quorum.
        self.maybe_decide_epoch();
    }

    pub(super) fn leader_on_message(&mut self, from: ServerId, msg: Message) {
        let now = self.now_ms;
        let Some(l) = self.leader() else { return };
        if let Some(h) = l.learners.get_mut(&from) {
            h.last_heard_ms = now;
        }
        match msg {
            Message::FollowerInfo {
                conn,
                accepted_epoch,
                ..
            } => self.on_follower_info(from, conn, accepted_epoch),
            Message::AckEpoch {
                conn,
                epoch,
                current_epoch,
                last_zxid,
                committed_zxid,
            } => self.on_ack_epoch(
                from,
                conn,
                epoch,
                (current_epoch, last_zxid),
                committed_zxid,
            ),
            Message::Ack { epoch, zxid } => self.on_ack(from, epoch, zxid),
            _ => {}
        }
    }

    fn on_follower_info(&mut self, from: ServerId, conn: u64, accepted_epoch: Epoch) {
        let now = self.now_ms;
        let Some(l) = self.leader() else { return };
        // A late or duplicated FollowerInfo of the same learner incarnation
        // must not replace a newer handshake.
        if let Some(h) = l.learners.get(&from) {
            if h.conn >> 32 == conn >> 32 && conn <= h.conn {
                return;
            }
        }
        l.learners.insert(
            from,
            LearnerHandle {
                conn,
                accepted_epoch,
                stage: Stage::Info,
                acked: Zxid::ZERO,
                last_heard_ms: now,
            },
        );
        if l.epoch_durable {
            self.send_leader_info(from);
        } else {
            self.maybe_decide_epoch();
        }
    }

    fn maybe_decide_epoch(&mut self) {
        let own = self.accepted_epoch;
        let me = self.cfg.id;
        let Some(l) = self.leader_ref() else { return };
        if l.epoch.is_some() || !self.view_quorum(|s| s == me || l.learners.contains_key(&s)) {
            return;
        }
        let Some(l) = self.leader() else { return };
        let max = l
            .learners
            .values()
            .map(|h| h.accepted_epoch)
            .fold(own, Epoch::max);
        let Some(epoch) = max.checked_add(1) else {
            tracing::error!("epoch space exhausted");
            return;
        };
        l.epoch = Some(epoch);
        self.accepted_epoch = epoch;
        self.persist(vec![PersistOp::AcceptedEpoch(epoch)]);
    }

    fn send_leader_info(&mut self, to: ServerId) {
        let Some(l) = self.leader() else { return };
        let (Some(epoch), Some(h)) = (l.epoch, l.learners.get_mut(&to)) else {
            return;
        };
        h.stage = Stage::EpochSent;
        let conn = h.conn;
        self.send(to, Message::LeaderInfo { conn, epoch });
    }

    fn on_ack_epoch(
        &mut self,
        from: ServerId,
        conn: u64,
        epoch: Epoch,
        (current_epoch, last_zxid): (Epoch, Zxid),
        committed: Zxid,
    ) {
        let (my_epoch, my_last) = (self.current_epoch, self.log.last());
        // Only a voter of the view proves the election wrong; a non-voting
        // learner ahead of us holds nothing committed we lack and is
        // truncated by its sync.
        let votes = self.in_view(from);
        let Some(l) = self.leader() else { return };
        if l.epoch != Some(epoch) {
            return;
        }
        let syncing = l.syncing;
        let Some(h) = l.learners.get_mut(&from) else {
            return;
        };
        if h.conn != conn || h.stage != Stage::EpochSent {
            return;
        }
        if votes && !syncing && (current_epoch, last_zxid) > (my_epoch, my_last) {
            tracing::warn!(%from, %last_zxid, "a learner is ahead of the leader; re-electing");
            self.start_looking();
            return;
        }
        h.stage = Stage::EpochAcked {
            last_zxid,
            committed,
        };
        if syncing {
            self.sync_learner(from);
        } else {
            self.maybe_start_sync();
        }
    }

    fn maybe_start_sync(&mut self) {
        let last = self.log.last();
        let me = self.cfg.id;
        let Some(l) = self.leader_ref() else { return };
        let acked: Vec<ServerId> = l
            .learners
            .iter()
            .filter(|(_, h)| matches!(h.stage, Stage::EpochAcked { .. }))
            .map(|(&s, _)| s)
            .collect();
        let Some(epoch) = l.epoch else { return };
        if l.syncing || !l.epoch_durable || !self.view_quorum(|s| s == me || acked.contains(&s)) {
            return;
        }
        let Some(l) = self.leader() else { return };
        l.syncing = true;
        l.newleader = last;
        self.current_epoch = epoch;
        self.persist(vec![PersistOp::CurrentEpoch(epoch)]);
        for s in acked {
            self.sync_learner(s);
        }
        self.maybe_establish();
    }

    fn sync_learner(&mut self, to: ServerId) {
        let Some(l) = self.leader_ref() else { return };
        let (Some(epoch), Some(h)) = (l.epoch, l.learners.get(&to)) else {
            return;
        };
        let Stage::EpochAcked {
            last_zxid: p,
            committed: c,
        } = h.stage
        else {
            return;
        };
        let conn = h.conn;
        let mode = choose_sync(&self.log, p, c);
        tracing::debug!(%to, peer_last = %p, ?mode, "syncing learner");
        let msg = match mode {
            SyncMode::Diff => Message::Diff {
                conn,
                epoch,
                base_zxid: p,
                entries: self.log.after(p),
            },
            SyncMode::Trunc(z) | SyncMode::TruncDiff(z) => Message::Trunc {
                conn,
                epoch,
                zxid: z,
                entries: self.log.after(z),
            },
            SyncMode::Snap => {
                let snapshot = self.log.snapshot().clone();
                Message::Snap {
                    conn,
                    epoch,
                    entries: self.log.after(snapshot.zxid),
                    snapshot,
                    configs: self.configs().to_vec(),
                }
            }
        };
        let newleader = self.log.last();
        let configs = self.configs().to_vec();
        self.send(to, msg);
        self.send(
            to,
            Message::NewLeader {
                conn,
                epoch,
                zxid: newleader,
                configs,
            },
        );
        if let Some(h) = self.leader().and_then(|l| l.learners.get_mut(&to)) {
            h.stage = Stage::Syncing { newleader };
            h.acked = Zxid::ZERO;
        }
    }

    fn on_ack(&mut self, from: ServerId, epoch: Epoch, zxid: Zxid) {
        let Some(l) = self.leader() else { return };
        if l.epoch != Some(epoch) {
            return;
        }
        let Some(h) = l.learners.get_mut(&from) else {
            return;
        };
        if !matches!(h.stage, Stage::Syncing { .. } | Stage::Ready) {
            return;
        }
        h.acked = h.acked.max(zxid);
        self.maybe_establish();
        self.maybe_ready(from);
        self.advance_commit();
    }

    /// The leader's own vote in commit counting: its durable log end, once
    /// the new epoch is durably current.
    fn own_ack(&self) -> Zxid {
        let Some(l) = self.leader_ref() else {
            return Zxid::ZERO;
        };
        match l.epoch {
            Some(e) if l.syncing && self.durable.current_epoch == e => self.durable.last_zxid,
            _ => Zxid::ZERO,
        }
    }

    /// How far server `s` has durably acked in this epoch (zero for a
    /// learner not yet syncing).
    fn reached(&self, l: &Leader, own: Zxid, s: ServerId) -> Zxid {
        if s == self.cfg.id {
            return own;
        }
        l.learners
            .get(&s)
            .filter(|h| matches!(h.stage, Stage::Syncing { .. } | Stage::Ready))
            .map_or(Zxid::ZERO, |h| h.acked)
    }

    /// The highest zxid every configuration of the view has a quorum at.
    fn view_ack(&self) -> Zxid {
        let Some(l) = self.leader_ref() else {
            return Zxid::ZERO;
        };
        let own = self.own_ack();
        self.view()
            .iter()
            .map(|m| m.quorum_zxid(|s| self.reached(l, own, s)))
            .min()
            .unwrap_or(Zxid::ZERO)
    }

    /// How far the log may commit now: a zxid needs a quorum of the
    /// configuration in force at the commit point and of every pending one
    /// at or before it (see `members`).
    fn commit_bound(&self) -> Zxid {
        let Some(l) = self.leader_ref() else {
            return Zxid::ZERO;
        };
        let own = self.own_ack();
        let committed = self.log.committed();
        let configs = self.log.configs();
        let base = configs.active(committed);
        let mut bound = base.quorum_zxid(|s| self.reached(l, own, s));
        for m in configs.list().iter().filter(|m| m.version > base.version) {
            if bound >= m.version {
                let q = m.quorum_zxid(|s| self.reached(l, own, s));
                // Without its quorum, commit only what precedes the reconfig
                // (an entry's zxid: the commit point is always one).
                bound = bound.min(q.max(self.log.before(m.version)));
            }
        }
        bound
    }

    fn maybe_establish(&mut self) {
        let q = self.view_ack();
        let id = self.cfg.id;
        let Some(l) = self.leader() else { return };
        let Some(epoch) = l.epoch else { return };
        if l.established || !l.syncing || q < l.newleader {
            return;
        }
        l.established = true;
        let learners: Vec<ServerId> = l.learners.keys().copied().collect();
        tracing::debug!(%id, epoch, "leader established");
        self.outputs
            .push_back(Output::Serving { epoch, leader: id });
        self.advance_commit();
        for s in learners {
            self.maybe_ready(s);
        }
    }

    /// Sends UPTODATE to a learner that acked its NEWLEADER, once established.
    fn maybe_ready(&mut self, s: ServerId) {
        let committed = self.log.committed();
        let Some(l) = self.leader() else { return };
        let Some(epoch) = l.epoch else { return };
        if !l.established {
            return;
        }
        let Some(h) = l.learners.get_mut(&s) else {
            return;
        };
        let Stage::Syncing { newleader } = h.stage else {
            return;
        };
        if h.acked < newleader {
            return;
        }
        h.stage = Stage::Ready;
        let conn = h.conn;
        self.send(
            s,
            Message::UpToDate {
                conn,
                epoch,
                commit_zxid: committed,
            },
        );
    }

    fn advance_commit(&mut self) {
        let mut activated = None;
        // Committing a reconfig changes which quorums count for what
        // follows it, so go round until nothing more commits.
        loop {
            let q = self.commit_bound();
            let Some(l) = self.leader_ref() else { return };
            if !l.established || q <= self.log.committed() {
                break;
            }
            if let Some(m) = self.commit_through(q) {
                activated = Some(m);
            }
        }
        let Some(l) = self.leader_ref() else { return };
        let Some(epoch) = l.epoch else { return };
        if self.log.committed() <= l.commit_sent {
            return;
        }
        let to: Vec<ServerId> = l
            .learners
            .iter()
            .filter(|(_, h)| matches!(h.stage, Stage::Syncing { .. } | Stage::Ready))
            .map(|(&s, _)| s)
            .collect();
        let zxid = self.log.committed();
        for s in to {
            self.send(s, Message::Commit { epoch, zxid });
        }
        if let Some(l) = self.leader() {
            l.commit_sent = zxid;
        }
        if let Some(m) = activated {
            if !m.contains(self.cfg.id) {
                tracing::info!(version = %m.version, "this leader is not in the new configuration; stepping down");
                self.start_looking();
            }
        }
    }

    pub(super) fn leader_on_durable(&mut self) {
        let accepted = self.durable.accepted_epoch;
        let Some(l) = self.leader() else { return };
        if let (Some(e), false) = (l.epoch, l.epoch_durable) {
            if accepted >= e {
                l.epoch_durable = true;
                let waiting: Vec<ServerId> = l
                    .learners
                    .iter()
                    .filter(|(_, h)| h.stage == Stage::Info)
                    .map(|(&s, _)| s)
                    .collect();
                for s in waiting {
                    self.send_leader_info(s);
                }
                self.maybe_start_sync();
            }
        }
        self.maybe_establish();
        self.advance_commit();
    }

    pub(super) fn leader_on_tick(&mut self) {
        let now = self.now_ms;
        let init = self.ticks(self.cfg.init_limit_ticks);
        let sync = self.ticks(self.cfg.sync_limit_ticks);
        let committed = self.log.committed();
        let me = self.cfg.id;
        let configs = self.configs().to_vec();
        let Some(l) = self.leader() else { return };
        if !l.established {
            if now.saturating_sub(l.started_ms) > init {
                tracing::debug!("no quorum within initLimit; re-electing");
                self.start_looking();
            }
            return;
        }
        l.learners
            .retain(|_, h| now.saturating_sub(h.last_heard_ms) <= sync);
        let Some(l) = self.leader_ref() else { return };
        let live = |s: ServerId| {
            s == me
                || l.learners
                    .get(&s)
                    .is_some_and(|h| matches!(h.stage, Stage::Syncing { .. } | Stage::Ready))
        };
        if !self.view_quorum(live) {
            tracing::debug!("lost the quorum; stepping down");
            self.start_looking();
            return;
        }
        let Some(epoch) = l.epoch else { return };
        let mut sends = Vec::new();
        for (&s, h) in &l.learners {
            let conn = h.conn;
            let msg = match h.stage {
                Stage::Info | Stage::EpochAcked { .. } => continue,
                Stage::EpochSent => Message::LeaderInfo { conn, epoch },
                Stage::Syncing { newleader } => Message::NewLeader {
                    conn,
                    epoch,
                    zxid: newleader,
                    configs: configs.clone(),
                },
                Stage::Ready => Message::UpToDate {
                    conn,
                    epoch,
                    commit_zxid: committed,
                },
            };
            sends.push((s, msg));
        }
        for (s, msg) in sends {
            self.send(s, msg);
        }
    }

    /// The zxid the next accepted submit gets, or why it would be refused.
    pub(super) fn leader_next_zxid(&self) -> Result<Zxid, SubmitError> {
        let leader_hint = match self.role() {
            Role::Following { leader } => Some(leader),
            _ => None,
        };
        let max = self.cfg.max_in_flight;
        let in_flight = self.log.uncommitted_len();
        let last = self.log.last();
        let Some(l) = self.leader_ref() else {
            return Err(SubmitError::NotLeader {
                leader: leader_hint,
            });
        };
        let Some(epoch) = l.epoch.filter(|_| l.established) else {
            return Err(SubmitError::NotReady);
        };
        if in_flight >= max {
            return Err(SubmitError::Busy(in_flight));
        }
        let zxid = if last.epoch() == epoch {
            last.next()
        } else {
            Some(Zxid::new(epoch, 1))
        };
        zxid.ok_or(SubmitError::Rollover)
    }

    /// ZooKeeper's rules for proposing a reconfig: none pending, and a
    /// quorum of the new configuration synced with this leader (so it can
    /// commit soon and a new voter has caught up before it counts).
    fn check_reconfig(&self, entry: &LogEntry) -> Result<(), SubmitError> {
        if self.reconfig_pending() {
            return Err(SubmitError::ReconfigInProgress);
        }
        let Some(next) = Membership::of_entry(entry) else {
            return Err(SubmitError::BadReconfig);
        };
        let me = self.cfg.id;
        let Some(l) = self.leader_ref() else {
            return Err(SubmitError::NotReady);
        };
        let synced =
            |s: ServerId| s == me || l.learners.get(&s).is_some_and(|h| h.stage == Stage::Ready);
        if !next.has_quorum(synced) {
            return Err(SubmitError::NewConfigNoQuorum);
        }
        Ok(())
    }

    pub(super) fn leader_submit(&mut self, req: Request) -> Result<Zxid, SubmitError> {
        let last = self.log.last();
        let zxid = match self.leader_next_zxid() {
            Ok(z) => z,
            Err(SubmitError::Rollover) => {
                // ZooKeeper's XidRolloverException: the counter cannot go on
                // in this epoch, so force an election, which brings a new epoch.
                tracing::warn!(
                    epoch = last.epoch(),
                    "zxid counter exhausted; forcing an election"
                );
                self.start_looking();
                return Err(SubmitError::Rollover);
            }
            Err(e) => return Err(e),
        };
        let epoch = zxid.epoch();
        let entry = LogEntry {
            hdr: TxnHeader {
                session_id: req.session_id,
                cxid: req.cxid,
                zxid: zxid.0,
                time_ms: req.time_ms,
            },
            txn: req.txn,
        };
        if let Txn::Reconfig { .. } = &entry.txn {
            self.check_reconfig(&entry)?;
        }
        self.log.append(entry.clone());
        self.persist(vec![PersistOp::Append(vec![entry.clone()])]);
        let Some(l) = self.leader_ref() else {
            return Ok(zxid);
        };
        let to: Vec<ServerId> = l
            .learners
            .iter()
            .filter(|(_, h)| matches!(h.stage, Stage::Syncing { .. } | Stage::Ready))
            .map(|(&s, _)| s)
            .collect();
        for s in to {
            self.send(
                s,
                Message::Proposal {
                    epoch,
                    prev_zxid: last,
                    entry: entry.clone(),
                },
            );
        }
        Ok(zxid)
    }
}
