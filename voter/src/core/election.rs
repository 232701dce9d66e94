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

use std::collections::BTreeMap;

use rand::Rng;

use super::follower::Follower;
use super::leader::Leader;
use super::message::{Message, Notification};
use super::types::{PeerState, Role, ServerId, Vote};
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
}

impl Core {
    pub(super) fn own_vote(&self) -> Vote {
        Vote {
            leader: self.cfg.id,
            zxid: self.log.last(),
            election_epoch: self.election_epoch,
            peer_epoch: self.current_epoch,
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
        e.recv.insert(
            me,
            Notification {
                vote,
                state: PeerState::Looking,
            },
        );
        self.broadcast_proposal();
        self.check_quorum();
    }

    fn broadcast_proposal(&mut self) {
        let Some(vote) = self.election().and_then(|e| e.proposal) else {
            return;
        };
        let n = Notification {
            vote,
            state: PeerState::Looking,
        };
        for to in self.others() {
            self.send(to, Message::Notification(n));
        }
        let jitter = self.rng.gen_range(0..=self.cfg.election_resend_ticks);
        let next = self.now_ms + self.ticks(self.cfg.election_resend_ticks + jitter);
        if let Some(e) = self.election() {
            e.next_resend_ms = next;
        }
    }

    pub(super) fn on_notification(&mut self, from: ServerId, n: Notification) {
        let Some(e) = self.election() else {
            // Not LOOKING: tell a LOOKING peer what we decided.
            if n.state == PeerState::Looking {
                let state = match self.state {
                    State::Leading(_) => PeerState::Leading,
                    _ => PeerState::Following,
                };
                let vote = self.vote;
                self.send(from, Message::Notification(Notification { vote, state }));
            }
            return;
        };
        let proposal = e.proposal.unwrap_or(n.vote);
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
            let n = Notification {
                vote: proposal,
                state: PeerState::Looking,
            };
            self.send(from, Message::Notification(n));
            return;
        }
        if round > self.election_epoch {
            self.election_epoch = round;
            if let Some(e) = self.election() {
                e.recv.clear();
            }
            let own = self.own_vote();
            let best = if n.vote.cmp_candidate(&own).is_gt() {
                n.vote
            } else {
                own
            };
            if let Some(e) = self.election() {
                e.recv.insert(from, n);
            }
            self.set_proposal(best);
            return;
        }
        if let Some(e) = self.election() {
            e.recv.insert(from, n);
        }
        if n.vote.cmp_candidate(&proposal).is_gt() {
            self.set_proposal(n.vote);
        } else {
            if n.vote.cmp_candidate(&proposal).is_lt() {
                // The sender has not heard our better vote (it may have been
                // FOLLOWING when we broadcast it): tell it now rather than at
                // our next re-send, so a failover does not wait for timers.
                let n = Notification {
                    vote: proposal,
                    state: PeerState::Looking,
                };
                self.send(from, Message::Notification(n));
            }
            self.check_quorum();
        }
    }

    fn on_decided_notification(&mut self, from: ServerId, n: Notification) {
        let round = self.election_epoch;
        let me = self.cfg.id;
        let quorum = self.cfg.quorum();
        let Some(e) = self.election() else { return };
        if n.vote.election_epoch == round {
            e.recv.insert(from, n);
            if agree_decided(&e.recv, &n.vote) >= quorum
                && leader_confirmed(&e.recv, &n.vote, me, round)
            {
                self.decide(n.vote);
                return;
            }
        }
        let Some(e) = self.election() else { return };
        e.out_of_election.insert(from, n);
        let r = n.vote.election_epoch;
        if agree_decided(&e.out_of_election, &n.vote) >= quorum
            // Ourselves only if the vote is from our current round: stale
            // FOLLOWING votes for us must not re-elect us (ZooKeeper checks
            // against its logical clock before adopting the new one).
            && leader_confirmed(&e.out_of_election, &n.vote, me, round)
        {
            self.election_epoch = r;
            self.decide(n.vote);
        }
    }

    fn check_quorum(&mut self) {
        let quorum = self.cfg.quorum();
        let wait = self.ticks(self.cfg.finalize_wait_ticks);
        let now = self.now_ms;
        let Some(e) = self.election() else { return };
        let Some(p) = e.proposal else { return };
        if agree(&e.recv, &p) >= quorum {
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

/// How many senders in `set` vote exactly `vote` (same round included).
fn agree(set: &BTreeMap<ServerId, Notification>, vote: &Vote) -> usize {
    set.values().filter(|n| n.vote == *vote).count()
}

/// Agreement with a FOLLOWING/LEADING server's vote. As in ZooKeeper's
/// `Vote.equals`, servers that already decided agree when they name the same
/// leader (their rounds and epochs drift as the leader re-establishes itself);
/// a LOOKING vote must match exactly. Election only picks whom to try: a
/// wrong pick costs a failed handshake, never safety, which rests on epochs
/// and quorum acks.
fn agree_decided(set: &BTreeMap<ServerId, Notification>, vote: &Vote) -> usize {
    set.values()
        .filter(|n| match n.state {
            PeerState::Looking => n.vote == *vote,
            _ => n.vote.leader == vote.leader,
        })
        .count()
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
