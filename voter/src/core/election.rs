//! Fast leader election (ZooKeeper's FLE), as handlers on [`Core`].
//!
//! - Each round (`election_epoch`, the logical clock) a LOOKING server
//!   proposes the best candidate it has heard of, by peer epoch, then zxid,
//!   then id, and tells every voter.
//! - A notification from a later round moves the server to that round and
//!   drops what it heard in its old one; one from an earlier round is
//!   ignored, except that the sender is told the current vote so it catches
//!   up.
//! - When a quorum's votes in this round equal the proposal, the server waits
//!   `finalize_wait_ticks` more for a better vote, then decides.
//! - A server that is FOLLOWING or LEADING answers a LOOKING peer with the
//!   vote it decided. A joiner accepts that leader once a quorum reports the
//!   same vote and the leader itself reports LEADING.
//! - With reconfiguration (see `members`): "a quorum" is a quorum of every
//!   configuration in the view; notifications from servers that vote in
//!   none are ignored while LOOKING; a candidate that is not a voter of the
//!   configuration in force at the commit point is never adopted or decided
//!   on, and a server in that position proposes a null vote and adopts the
//!   best leadable one (its vote still counts where it votes).

use std::collections::BTreeMap;

use rand::Rng;

use super::follower::Follower;
use super::leader::Leader;
use super::message::{Message, Notification};
use super::types::{PeerState, Role, ServerId, Vote, Zxid};
use super::{Core, Output, State};

#[derive(Debug, Default)]
pub(crate) struct Election {
    proposal: Option<Vote>,
    /// Notifications of this round, by sender (including our own vote).
    recv: BTreeMap<ServerId, Notification>,
    /// Notifications from servers that are FOLLOWING or LEADING, any round.
    out_of_election: BTreeMap<ServerId, Notification>,
    finalize_at_ms: Option<u64>,
    next_resend_ms: u64,
    /// Voters of configurations peers reported pending (newer than ours):
    /// they may lead too, so servers with and without a pending reconfig
    /// agree on candidates (see `Core::may_lead`).
    pub(crate) heard: std::collections::BTreeSet<ServerId>,
}

impl Core {
    /// Our own candidacy; a server that may not lead proposes a null vote
    /// (ZooKeeper's non-participants do the same), which any leadable
    /// candidate beats, so its vote goes to the best of those.
    pub(super) fn own_vote(&self) -> Vote {
        let (zxid, peer_epoch) = if self.may_lead(self.cfg.id) {
            (self.log.last(), self.current_epoch)
        } else {
            (Zxid::ZERO, 0)
        };
        Vote {
            leader: self.cfg.id,
            zxid,
            election_epoch: self.election_epoch,
            peer_epoch,
        }
    }

    fn notification(&self, vote: Vote, state: PeerState) -> Notification {
        Notification {
            vote,
            state,
            configs: self.view().into_iter().cloned().collect(),
        }
    }

    fn election(&mut self) -> Option<&mut Election> {
        match &mut self.state {
            State::Looking(e) => Some(e),
            _ => None,
        }
    }

    /// Enters a new round proposing ourselves.
    pub(super) fn election_start(&mut self) {
        self.election_epoch += 1;
        let own = self.own_vote();
        self.set_proposal(own);
    }

    fn set_proposal(&mut self, mut vote: Vote) {
        vote.election_epoch = self.election_epoch;
        let me = self.cfg.id;
        let Some(e) = self.election() else { return };
        e.proposal = Some(vote);
        e.finalize_at_ms = None;
        let n = self.notification(vote, PeerState::Looking);
        let Some(e) = self.election() else { return };
        e.recv.insert(me, n);
        self.broadcast_proposal();
        self.check_quorum();
    }

    fn broadcast_proposal(&mut self) {
        let Some(vote) = self.election().and_then(|e| e.proposal) else {
            return;
        };
        let n = self.notification(vote, PeerState::Looking);
        for to in self.others() {
            self.send(to, Message::Notification(n.clone()));
        }
        let jitter = self.rng.gen_range(0..=self.cfg.election_resend_ticks);
        let next = self.now_ms + self.ticks(self.cfg.election_resend_ticks + jitter);
        if let Some(e) = self.election() {
            e.next_resend_ms = next;
        }
    }

    pub(super) fn on_notification(&mut self, from: ServerId, n: Notification) {
        let active = self.active_config().version;
        let pending: Vec<ServerId> = n
            .configs
            .iter()
            .skip(1)
            .filter(|m| m.version > active)
            .flat_map(|m| m.voters.iter().copied())
            .collect();
        if let Some(e) = self.election() {
            e.heard.extend(pending);
        }
        let learned = n.configs.first().is_some_and(|m| self.log.learn_config(m));
        if learned {
            tracing::info!(%from, version = %self.active_config().version, "a peer reports a newer configuration in force");
            // Who may lead changed: drop a proposal for someone who may not.
            let stale = self
                .election_ref()
                .and_then(|e| e.proposal)
                .is_some_and(|p| !self.may_lead(p.leader));
            if stale {
                let own = self.own_vote();
                self.set_proposal(own);
            } else {
                // Whose votes count changed too.
                self.check_quorum();
            }
        }
        // A voter of a pending configuration a peer reported counts too:
        // without its vote that configuration has no quorum.
        let votes = self.in_view(from)
            || matches!(&self.state, State::Looking(e) if e.heard.contains(&from));
        let Some(e) = self.election() else {
            // Not LOOKING: tell a LOOKING peer what we decided (a joiner
            // outside our configuration finds the leader this way).
            if n.state == PeerState::Looking {
                let state = match self.state {
                    State::Leading(_) => PeerState::Leading,
                    _ => PeerState::Following,
                };
                let n = self.notification(self.vote, state);
                self.send(from, Message::Notification(n));
            }
            return;
        };
        let proposal = e.proposal.unwrap_or(n.vote);
        if !votes {
            return;
        }
        match n.state {
            PeerState::Looking => self.on_looking_notification(from, n, proposal),
            PeerState::Following | PeerState::Leading => self.on_decided_notification(from, n),
            // Observers never vote.
            PeerState::Observing => {}
        }
    }

    fn on_looking_notification(&mut self, from: ServerId, n: Notification, proposal: Vote) {
        let round = n.vote.election_epoch;
        if round < self.election_epoch {
            let n = self.notification(proposal, PeerState::Looking);
            self.send(from, Message::Notification(n));
            return;
        }
        if round > self.election_epoch {
            self.election_epoch = round;
            if let Some(e) = self.election() {
                e.recv.clear();
            }
            let own = self.own_vote();
            let best = if n.vote.cmp_candidate(&own).is_gt() && self.may_lead(n.vote.leader) {
                n.vote
            } else {
                own
            };
            if let Some(e) = self.election() {
                e.recv.insert(from, n.clone());
            }
            self.set_proposal(best);
            return;
        }
        if let Some(e) = self.election() {
            e.recv.insert(from, n.clone());
        }
        if n.vote.cmp_candidate(&proposal).is_gt() && self.may_lead(n.vote.leader) {
            self.set_proposal(n.vote);
        } else {
            if n.vote.cmp_candidate(&proposal).is_lt() {
                // The sender has not heard our better vote (it may have been
                // FOLLOWING when we broadcast it): tell it now rather than at
                // our next re-send, so a failover does not wait for timers.
                let n = self.notification(proposal, PeerState::Looking);
                self.send(from, Message::Notification(n));
            }
            self.check_quorum();
        }
    }

    fn on_decided_notification(&mut self, from: ServerId, n: Notification) {
        let round = self.election_epoch;
        let me = self.cfg.id;
        let Some(e) = self.election() else { return };
        if n.vote.election_epoch == round {
            e.recv.insert(from, n.clone());
        }
        e.out_of_election.insert(from, n.clone());
        let Some(e) = self.election_ref() else { return };
        if n.vote.election_epoch == round
            && self.view_quorum(|s| agrees_decided(&e.recv, s, &n.vote))
            && leader_confirmed(&e.recv, &n.vote, me, round)
            && (n.vote.leader != me || self.may_lead(me))
        {
            self.decide(n.vote);
            return;
        }
        let r = n.vote.election_epoch;
        if self.view_quorum(|s| agrees_decided(&e.out_of_election, s, &n.vote))
            // Ourselves only if the vote is from our current round: stale
            // FOLLOWING votes for us must not re-elect us (ZooKeeper checks
            // against its logical clock before adopting the new one).
            && leader_confirmed(&e.out_of_election, &n.vote, me, round)
            && (n.vote.leader != me || self.may_lead(me))
        {
            self.election_epoch = r;
            self.decide(n.vote);
        }
    }

    fn election_ref(&self) -> Option<&Election> {
        match &self.state {
            State::Looking(e) => Some(e),
            _ => None,
        }
    }

    fn check_quorum(&mut self) {
        let wait = self.ticks(self.cfg.finalize_wait_ticks);
        let now = self.now_ms;
        let Some(e) = self.election_ref() else { return };
        let Some(p) = e.proposal else { return };
        let reached = self.may_lead(p.leader)
            && self.view_quorum(|s| e.recv.get(&s).is_some_and(|n| n.vote == p));
        let Some(e) = self.election() else { return };
        if reached {
            e.finalize_at_ms.get_or_insert(now + wait);
        } else {
            e.finalize_at_ms = None;
        }
    }

    pub(super) fn election_on_tick(&mut self) {
        let now = self.now_ms;
        let Some(e) = self.election() else { return };
        if let (Some(at), Some(p)) = (e.finalize_at_ms, e.proposal) {
            if now >= at {
                self.decide(p);
                return;
            }
        }
        if now >= e.next_resend_ms {
            self.broadcast_proposal();
        }
    }

    fn decide(&mut self, vote: Vote) {
        self.vote = vote;
        let role = if vote.leader == self.cfg.id {
            Role::Leading
        } else {
            Role::Following {
                leader: vote.leader,
            }
        };
        tracing::debug!(id = %self.cfg.id, leader = %vote.leader, round = vote.election_epoch, "elected");
        self.outputs.push_back(Output::Elected { vote, role });
        self.outputs.push_back(Output::RoleChanged(role));
        match role {
            Role::Leading => {
                self.state = State::Leading(Leader::new(self.now_ms));
                self.leader_start();
            }
            Role::Following { leader } => {
                self.state = State::Following(Follower::new(leader, self.now_ms));
                self.follower_start();
            }
            Role::Looking => unreachable!("decide never yields LOOKING"),
        }
    }
}

/// Whether `s` agrees with a FOLLOWING/LEADING server's vote. As in
/// ZooKeeper's `Vote.equals`, servers that already decided agree when they
/// name the same leader (their rounds and epochs drift as the leader
/// re-establishes itself); a LOOKING vote must match exactly. Election only
/// picks whom to try: a wrong pick costs a failed handshake, never safety,
/// which rests on epochs and quorum acks.
fn agrees_decided(set: &BTreeMap<ServerId, Notification>, s: ServerId, vote: &Vote) -> bool {
    set.get(&s).is_some_and(|n| match n.state {
        PeerState::Looking => n.vote == *vote,
        _ => n.vote.leader == vote.leader,
    })
}

/// ZooKeeper's `checkLeader`: another server is accepted as leader only if it
/// says itself it is LEADING; ourselves only if the vote is from our round.
fn leader_confirmed(
    set: &BTreeMap<ServerId, Notification>,
    vote: &Vote,
    me: ServerId,
    round: u64,
) -> bool {
    if vote.leader == me {
        return vote.election_epoch == round;
    }
    set.get(&vote.leader)
        .is_some_and(|n| n.state == PeerState::Leading)
}
