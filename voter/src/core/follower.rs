//! The learner side of discovery, sync and broadcast (FOLLOWING).
//!
//! A handshake (`conn`) runs `FollowerInfo` → `LeaderInfo` → (accepted epoch
//! durable) → `AckEpoch` → DIFF/TRUNC/SNAP → `NewLeader` → (current epoch and
//! log durable) → `Ack` → `UpToDate`. Anything out of step — a proposal that
//! does not follow our log end, a sync that does not fit, silence — starts a
//! new handshake with the same leader; silence beyond the limits sends the
//! server back to LOOKING.
//!
//! Ordering rule: an `Ack{zxid}` leaves only once a completed persist shows
//! the log durable through `zxid` and the leader's epoch durable as our
//! current epoch.

use corral_store::LogEntry;

use super::io::PersistOp;
use super::members::Membership;
use super::message::{Message, Snapshot};
use super::types::{Epoch, ServerId, Zxid};
use super::{Core, Output, State};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `FollowerInfo` sent.
    Discovery,
    /// Accepting `epoch`; `AckEpoch` goes once that is durable.
    AcceptingEpoch { epoch: Epoch },
    /// `AckEpoch` sent; waiting for the sync.
    AwaitingSync { epoch: Epoch },
    /// Sync applied; the log is a prefix of the leader's.
    Synced {
        epoch: Epoch,
        /// The `NewLeader` zxid, once received.
        newleader: Option<Zxid>,
        serving: bool,
    },
}

#[derive(Debug)]
pub(crate) struct Follower {
    pub(crate) leader: ServerId,
    conn: u64,
    stage: Stage,
    started_ms: u64,
    stage_ms: u64,
    last_heard_ms: u64,
    /// The highest commit point the leader announced.
    leader_commit: Zxid,
    /// Since when the leader's commit point is beyond our log end.
    behind_since_ms: Option<u64>,
}

impl Follower {
    pub(crate) fn new(leader: ServerId, now_ms: u64) -> Follower {
        Follower {
            leader,
            conn: 0,
            stage: Stage::Discovery,
            started_ms: now_ms,
            stage_ms: now_ms,
            last_heard_ms: now_ms,
            leader_commit: Zxid::ZERO,
            behind_since_ms: None,
        }
    }

    pub(crate) fn serving(&self) -> bool {
        matches!(self.stage, Stage::Synced { serving: true, .. })
    }

    pub(crate) fn epoch(&self) -> Option<Epoch> {
        match self.stage {
            Stage::Discovery => None,
            Stage::AcceptingEpoch { epoch }
            | Stage::AwaitingSync { epoch }
            | Stage::Synced { epoch, .. } => Some(epoch),
        }
    }
}

impl Core {
    fn follower(&mut self) -> Option<&mut Follower> {
        match &mut self.state {
            State::Following(f) => Some(f),
            _ => None,
        }
    }

    pub(super) fn follower_start(&mut self) {
        self.new_handshake();
    }

    fn new_handshake(&mut self) {
        let conn = self.fresh_conn();
        let now = self.now_ms;
        let (accepted_epoch, last_zxid) = (self.accepted_epoch, self.log.last());
        let Some(f) = self.follower() else { return };
        f.conn = conn;
        f.stage = Stage::Discovery;
        f.stage_ms = now;
        f.behind_since_ms = None;
        let leader = f.leader;
        self.send(
            leader,
            Message::FollowerInfo {
                conn,
                accepted_epoch,
                last_zxid,
            },
        );
    }

    fn set_stage(&mut self, stage: Stage) {
        let now = self.now_ms;
        if let Some(f) = self.follower() {
            f.stage = stage;
            f.stage_ms = now;
        }
    }

    pub(super) fn follower_on_message(&mut self, msg: Message) {
        let now = self.now_ms;
        let Some(f) = self.follower() else { return };
        // Only messages of our handshake or epoch count as hearing from the
        // leader; stale ones must not keep a dead handshake alive.
        let relevant = match &msg {
            Message::LeaderInfo { conn, .. }
            | Message::Diff { conn, .. }
            | Message::Trunc { conn, .. }
            | Message::Snap { conn, .. }
            | Message::NewLeader { conn, .. }
            | Message::UpToDate { conn, .. } => *conn == f.conn,
            Message::Proposal { epoch, .. } | Message::Commit { epoch, .. } => {
                Some(*epoch) == f.epoch()
            }
            _ => false,
        };
        if !relevant {
            return;
        }
        f.last_heard_ms = now;
        let (conn, stage) = (f.conn, f.stage);
        match msg {
            Message::LeaderInfo { conn: c, epoch } if c == conn => {
                self.on_leader_info(stage, epoch)
            }
            Message::Diff {
                conn: c,
                epoch,
                base_zxid,
                entries,
            } if c == conn && stage == (Stage::AwaitingSync { epoch }) => {
                if self.log.last() != base_zxid {
                    self.new_handshake();
                    return;
                }
                self.append_entries(entries);
                self.synced(epoch);
            }
            Message::Trunc {
                conn: c,
                epoch,
                zxid,
                entries,
            } if c == conn && stage == (Stage::AwaitingSync { epoch }) => {
                if zxid > self.log.last() {
                    self.new_handshake();
                    return;
                }
                self.log.truncate_after(zxid);
                self.persist(vec![PersistOp::TruncateAfter(zxid)]);
                self.append_entries(entries);
                self.synced(epoch);
            }
            Message::Snap {
                conn: c,
                epoch,
                snapshot,
                entries,
                configs,
            } if c == conn && stage == (Stage::AwaitingSync { epoch }) => {
                self.install(snapshot, entries, &configs);
                self.synced(epoch);
            }
            Message::NewLeader {
                conn: c,
                epoch,
                zxid,
                configs,
            } if c == conn => self.on_new_leader(stage, epoch, zxid, &configs),
            Message::UpToDate {
                conn: c,
                epoch,
                commit_zxid,
            } if c == conn => self.on_up_to_date(stage, epoch, commit_zxid),
            Message::Proposal {
                epoch,
                prev_zxid,
                entry,
            } => self.on_proposal(stage, epoch, prev_zxid, entry),
            Message::Commit { epoch, zxid } => self.on_commit(stage, epoch, zxid),
            _ => {}
        }
    }

    fn on_leader_info(&mut self, stage: Stage, epoch: Epoch) {
        match stage {
            Stage::Discovery => {}
            Stage::AwaitingSync { epoch: e } if e == epoch => {
                // Our AckEpoch may have been lost.
                self.send_ack_epoch(epoch);
                return;
            }
            _ => return,
        }
        if epoch < self.accepted_epoch {
            tracing::warn!(
                epoch,
                accepted = self.accepted_epoch,
                "leader's epoch is behind ours"
            );
            self.start_looking();
            return;
        }
        if epoch > self.accepted_epoch {
            self.accepted_epoch = epoch;
            self.persist(vec![PersistOp::AcceptedEpoch(epoch)]);
        }
        self.set_stage(Stage::AcceptingEpoch { epoch });
        self.follower_on_durable();
    }

    fn send_ack_epoch(&mut self, epoch: Epoch) {
        let Some(f) = self.follower() else { return };
        let (leader, conn) = (f.leader, f.conn);
        let msg = Message::AckEpoch {
            conn,
            epoch,
            current_epoch: self.current_epoch,
            last_zxid: self.log.last(),
            committed_zxid: self.log.committed(),
        };
        self.send(leader, msg);
    }

    fn append_entries(&mut self, entries: Vec<LogEntry>) {
        let entries: Vec<LogEntry> = entries
            .into_iter()
            .filter(|e| Zxid(e.hdr.zxid) > self.log.last())
            .collect();
        for e in &entries {
            self.log.append(e.clone());
        }
        if !entries.is_empty() {
            self.persist(vec![PersistOp::Append(entries)]);
        }
    }

    fn install(&mut self, snapshot: Snapshot, entries: Vec<LogEntry>, configs: &[Membership]) {
        // A learner that gets SNAP has nothing committed past the snapshot.
        assert!(
            snapshot.zxid >= self.log.committed(),
            "SNAP at {} would roll back commits up to {}",
            snapshot.zxid,
            self.log.committed()
        );
        self.log.reset(snapshot.clone(), Vec::new());
        self.adopt_configs(configs, snapshot.zxid);
        self.outputs
            .push_back(Output::InstallSnapshot(snapshot.clone()));
        self.persist(vec![PersistOp::InstallSnapshot(snapshot)]);
        self.append_entries(entries);
    }

    fn adopt_configs(&mut self, configs: &[Membership], through: Zxid) {
        if self.log.adopt_configs(configs, through) {
            let list = self.configs().to_vec();
            self.persist(vec![PersistOp::Configs(list)]);
        }
    }

    fn synced(&mut self, epoch: Epoch) {
        self.set_stage(Stage::Synced {
            epoch,
            newleader: None,
            serving: false,
        });
    }

    fn on_new_leader(&mut self, stage: Stage, epoch: Epoch, zxid: Zxid, configs: &[Membership]) {
        let Stage::Synced {
            epoch: e, serving, ..
        } = stage
        else {
            return;
        };
        if e != epoch || self.log.last() < zxid {
            return;
        }
        // Our log now agrees with the leader's through `zxid`, so does our
        // list of configurations (a joiner learns the real one here).
        self.adopt_configs(configs, zxid);
        if self.current_epoch != epoch {
            self.current_epoch = epoch;
            self.persist(vec![PersistOp::CurrentEpoch(epoch)]);
        }
        if let Some(f) = self.follower() {
            f.stage = Stage::Synced {
                epoch,
                newleader: Some(zxid),
                serving,
            };
        }
        self.follower_on_durable();
    }

    fn on_up_to_date(&mut self, stage: Stage, epoch: Epoch, commit: Zxid) {
        let Stage::Synced {
            epoch: e,
            newleader: Some(n),
            serving,
        } = stage
        else {
            return;
        };
        if e != epoch {
            return;
        }
        self.on_commit(stage, epoch, commit);
        if !serving {
            let leader = match self.follower() {
                Some(f) => {
                    f.stage = Stage::Synced {
                        epoch,
                        newleader: Some(n),
                        serving: true,
                    };
                    f.leader
                }
                None => return,
            };
            self.outputs.push_back(Output::Serving { epoch, leader });
        }
    }

    fn on_proposal(&mut self, stage: Stage, epoch: Epoch, prev: Zxid, entry: LogEntry) {
        let Stage::Synced { epoch: e, .. } = stage else {
            return;
        };
        if e != epoch {
            return;
        }
        let z = Zxid(entry.hdr.zxid);
        if z <= self.log.last() {
            return; // a duplicate
        }
        if prev != self.log.last() {
            tracing::debug!(%prev, last = %self.log.last(), "gap in proposals; re-syncing");
            self.new_handshake();
            return;
        }
        self.append_entries(vec![entry]);
    }

    fn on_commit(&mut self, stage: Stage, epoch: Epoch, zxid: Zxid) {
        let Stage::Synced { epoch: e, .. } = stage else {
            return;
        };
        if e != epoch {
            return;
        }
        let now = self.now_ms;
        let last = self.log.last();
        if let Some(f) = self.follower() {
            f.leader_commit = f.leader_commit.max(zxid);
            if f.leader_commit > last {
                f.behind_since_ms.get_or_insert(now);
            } else {
                f.behind_since_ms = None;
            }
        }
        if let Some(m) = self.commit_through(zxid) {
            let leader = self.follower().map(|f| f.leader);
            if leader.is_some_and(|l| !m.contains(l)) {
                tracing::info!(version = %m.version, "the leader left the configuration; re-electing");
                self.start_looking();
            }
        }
    }

    /// A persist completed: send what was waiting for durability.
    pub(super) fn follower_on_durable(&mut self) {
        let d = self.durable;
        let Some(f) = self.follower() else { return };
        let leader = f.leader;
        match f.stage {
            Stage::AcceptingEpoch { epoch } if d.accepted_epoch >= epoch => {
                self.set_stage(Stage::AwaitingSync { epoch });
                self.send_ack_epoch(epoch);
            }
            Stage::Synced {
                epoch,
                newleader: Some(n),
                ..
            } if d.current_epoch == epoch && d.last_zxid >= n => {
                self.send(
                    leader,
                    Message::Ack {
                        epoch,
                        zxid: d.last_zxid,
                    },
                );
            }
            _ => {}
        }
    }

    pub(super) fn follower_on_tick(&mut self) {
        let now = self.now_ms;
        let init = self.ticks(self.cfg.init_limit_ticks);
        let sync = self.ticks(self.cfg.sync_limit_ticks);
        let Some(f) = self.follower() else { return };
        let silent = now.saturating_sub(f.last_heard_ms);
        let limit = if f.serving() { sync } else { init };
        let never_served = !f.serving() && now.saturating_sub(f.started_ms) > 2 * init;
        if silent > limit || never_served {
            tracing::debug!(leader = %f.leader, "lost the leader; re-electing");
            self.start_looking();
            return;
        }
        let stuck = !matches!(
            f.stage,
            Stage::Synced {
                newleader: Some(_),
                ..
            }
        ) && now.saturating_sub(f.stage_ms) > sync;
        let behind = f
            .behind_since_ms
            .is_some_and(|t| now.saturating_sub(t) > sync);
        if stuck || behind {
            self.new_handshake();
            return;
        }
        // Keep the leader hearing from us; a lost Ack is repeated here.
        let d = self.durable;
        let Some(f) = self.follower() else { return };
        let leader = f.leader;
        match f.stage {
            Stage::Synced {
                epoch,
                newleader: Some(n),
                ..
            } if d.current_epoch == epoch && d.last_zxid >= n => self.send(
                leader,
                Message::Ack {
                    epoch,
                    zxid: d.last_zxid,
                },
            ),
            Stage::Discovery => {
                // The leader may still have been LOOKING when our FollowerInfo
                // arrived (we decided first) and dropped it: say it again each
                // tick. The same `conn`, so a leader that has it ignores it.
                let (conn, accepted_epoch, last_zxid) =
                    (f.conn, self.accepted_epoch, self.log.last());
                self.send(
                    leader,
                    Message::FollowerInfo {
                        conn,
                        accepted_epoch,
                        last_zxid,
                    },
                );
            }
            stage => {
                if let Some(epoch) = match stage {
                    Stage::Discovery => None,
                    Stage::AcceptingEpoch { epoch }
                    | Stage::AwaitingSync { epoch }
                    | Stage::Synced { epoch, .. } => Some(epoch),
                } {
                    self.send(leader, Message::Ping { epoch });
                }
            }
        }
    }
}
