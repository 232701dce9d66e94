//! Peer messages as plain data. Encoding onto the wire comes with the driver.
//!
//! The core tolerates a network that drops, duplicates, delays and reorders
//! messages; it does not rely on FIFO delivery. The fields that make that
//! possible:
//! - every ZAB message carries the leader's `epoch`; a message from another
//!   epoch is ignored;
//! - a learner's handshake carries a `conn` number the learner chose; the
//!   leader echoes it in every sync-phase message, so a stale sync from an
//!   earlier handshake is never applied;
//! - a `Proposal` names the zxid it follows (`prev_zxid`); a learner logs it
//!   only if that is its last logged zxid, else it starts a new handshake;
//! - `Ack` and `Commit` are cumulative ("everything up to `zxid`").

use std::sync::Arc;

use corral_store::LogEntry;

use super::members::Membership;
use super::types::{Epoch, PeerState, Vote, Zxid};

/// An opaque, already-committed state at `zxid` (a serialized `DataTree` in a
/// real node). The core only carries it; the driver makes and installs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub zxid: Zxid,
    pub state: Arc<[u8]>,
}

impl Snapshot {
    /// The state before any txn.
    pub fn empty() -> Snapshot {
        Snapshot {
            zxid: Zxid::ZERO,
            state: Arc::from(Vec::new()),
        }
    }
}

/// A fast-leader-election notification: the sender's current vote and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub vote: Vote,
    pub state: PeerState,
    /// The sender's view (see `members`): the configuration in force at the
    /// sender, then any pending ones. ZooKeeper's notifications carry the
    /// configuration too: a server that missed a reconfig learns who votes
    /// and who may lead.
    pub configs: Vec<Membership>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Election (FLE).
    Notification(Notification),

    /// Discovery, learner → leader: opens handshake `conn`.
    FollowerInfo {
        conn: u64,
        accepted_epoch: Epoch,
        last_zxid: Zxid,
    },
    /// Discovery, leader → learner: the new epoch.
    LeaderInfo { conn: u64, epoch: Epoch },
    /// Discovery, learner → leader: `epoch` accepted (durably). The learner's
    /// log up to `committed_zxid` is committed history, so the leader may
    /// always truncate it back to there (a corral addition to ZooKeeper's
    /// ACKEPOCH, used where ZooKeeper would send a SNAP or a cross-epoch TRUNC).
    AckEpoch {
        conn: u64,
        epoch: Epoch,
        current_epoch: Epoch,
        last_zxid: Zxid,
        committed_zxid: Zxid,
    },

    /// Sync: keep the log (it ends at `base_zxid`) and append `entries`.
    Diff {
        conn: u64,
        epoch: Epoch,
        base_zxid: Zxid,
        entries: Vec<LogEntry>,
    },
    /// Sync: drop the log after `zxid`, then append `entries` (TRUNC when
    /// empty, TRUNC+DIFF otherwise).
    Trunc {
        conn: u64,
        epoch: Epoch,
        zxid: Zxid,
        entries: Vec<LogEntry>,
    },
    /// Sync: replace the state with `snapshot` and the log with `entries`.
    /// `configs` is the leader's list of configurations (see `members`); the
    /// learner takes it as the truth through the snapshot.
    Snap {
        conn: u64,
        epoch: Epoch,
        snapshot: Snapshot,
        entries: Vec<LogEntry>,
        configs: Vec<Membership>,
    },
    /// Sync: the learner's log now ends at `zxid`; ACK it with `Ack{zxid}`
    /// once `epoch` is durably the current epoch and the log is durable.
    /// `configs` is the leader's list of configurations (see `members`); the
    /// learner takes it as the truth through `zxid`.
    NewLeader {
        conn: u64,
        epoch: Epoch,
        zxid: Zxid,
        configs: Vec<Membership>,
    },
    /// Sync: a quorum acked NEWLEADER; everything up to `commit_zxid` is
    /// committed and the learner may serve.
    UpToDate {
        conn: u64,
        epoch: Epoch,
        commit_zxid: Zxid,
    },

    /// Broadcast, leader → learner.
    Proposal {
        epoch: Epoch,
        prev_zxid: Zxid,
        entry: LogEntry,
    },
    /// Broadcast, learner → leader: everything up to `zxid` is durable.
    Ack { epoch: Epoch, zxid: Zxid },
    /// Broadcast, leader → learner: everything up to `zxid` is committed.
    Commit { epoch: Epoch, zxid: Zxid },
    /// Liveness, both ways within an epoch.
    Ping { epoch: Epoch },
}

impl Message {
    /// The ZAB epoch the message belongs to (`None` for election and the
    /// learner's opening `FollowerInfo`).
    pub fn epoch(&self) -> Option<Epoch> {
        match self {
            Message::Notification(_) | Message::FollowerInfo { .. } => None,
            Message::LeaderInfo { epoch, .. }
            | Message::AckEpoch { epoch, .. }
            | Message::Diff { epoch, .. }
            | Message::Trunc { epoch, .. }
            | Message::Snap { epoch, .. }
            | Message::NewLeader { epoch, .. }
            | Message::UpToDate { epoch, .. }
            | Message::Proposal { epoch, .. }
            | Message::Ack { epoch, .. }
            | Message::Commit { epoch, .. }
            | Message::Ping { epoch } => Some(*epoch),
        }
    }
}
