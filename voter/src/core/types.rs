//! Identifiers, zxids and votes.

use std::cmp::Ordering;
use std::fmt;

/// A voter's configured id (ZooKeeper's `myid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerId(pub u64);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// A ZAB epoch: the high 32 bits of a zxid.
pub type Epoch = u32;

/// A transaction id: `(epoch << 32) | counter`. Zero means "nothing logged".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Zxid(pub i64);

impl Zxid {
    pub const ZERO: Zxid = Zxid(0);

    pub fn new(epoch: Epoch, counter: u32) -> Zxid {
        Zxid(((u64::from(epoch) << 32) | u64::from(counter)) as i64)
    }

    pub fn epoch(self) -> Epoch {
        ((self.0 as u64) >> 32) as Epoch
    }

    pub fn counter(self) -> u32 {
        (self.0 as u64 & 0xffff_ffff) as u32
    }

    /// The next zxid in the same epoch, or `None` when the counter would roll
    /// over (the leader must then force a new election; see the crate docs).
    pub fn next(self) -> Option<Zxid> {
        self.counter()
            .checked_add(1)
            .map(|c| Zxid::new(self.epoch(), c))
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// What a server is doing, as carried in election notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerState {
    Looking,
    Following,
    Leading,
    Observing,
}

/// A vote in fast leader election.
///
/// `peer_epoch` is the proposed leader's current epoch and `zxid` its last
/// logged zxid; `election_epoch` is the logical clock (round) it was cast in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Vote {
    pub leader: ServerId,
    pub zxid: Zxid,
    pub election_epoch: u64,
    pub peer_epoch: Epoch,
}

impl Vote {
    /// FLE's total order on candidates: peer epoch, then zxid, then server id.
    /// The round is not part of the order.
    pub fn cmp_candidate(&self, other: &Vote) -> Ordering {
        (self.peer_epoch, self.zxid, self.leader).cmp(&(other.peer_epoch, other.zxid, other.leader))
    }

    /// Whether `self` names the same candidate (round aside).
    pub fn same_candidate(&self, other: &Vote) -> bool {
        self.cmp_candidate(other) == Ordering::Equal
    }
}

/// The role a core plays after an election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Looking,
    Following { leader: ServerId },
    Leading,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_packs_epoch_and_counter() {
        // Goal: zxid = epoch << 32 | counter, and next() refuses to roll over.
        let z = Zxid::new(3, 7);
        assert_eq!(z.0, (3 << 32) | 7);
        assert_eq!((z.epoch(), z.counter()), (3, 7));
        assert_eq!(z.next(), Some(Zxid::new(3, 8)));
        assert_eq!(Zxid::new(3, u32::MAX).next(), None);
        assert!(Zxid::new(4, 0) > Zxid::new(3, u32::MAX));
        assert_eq!(Zxid::new(u32::MAX, u32::MAX).epoch(), u32::MAX);
    }

    #[test]
    fn votes_order_by_epoch_then_zxid_then_id() {
        // Goal: the FLE order puts peer epoch first, then zxid, then id.
        let v = |id, e, z| Vote {
            leader: ServerId(id),
            zxid: Zxid(z),
            election_epoch: 1,
            peer_epoch: e,
        };
        assert_eq!(v(1, 2, 0).cmp_candidate(&v(9, 1, 99)), Ordering::Greater);
        assert_eq!(v(1, 1, 5).cmp_candidate(&v(9, 1, 4)), Ordering::Greater);
        assert_eq!(v(2, 1, 5).cmp_candidate(&v(1, 1, 5)), Ordering::Greater);
        let mut other_round = v(2, 1, 5);
        other_round.election_epoch = 9;
        assert!(v(2, 1, 5).same_candidate(&other_round));
    }
}
