//! What goes into a core (configuration, recovered state, client txns) and
//! what comes out (outputs as data).

use corral_store::{LogEntry, Txn};

use super::members::Membership;
use super::message::{Message, Snapshot};
use super::types::{Epoch, Role, ServerId, Vote, Zxid};

/// Timing and bounds. Durations are in ticks of `tick_ms`.
#[derive(Clone, Debug)]
pub struct Config {
    pub id: ServerId,
    /// The voters of the initial configuration (the config file's), used
    /// when the recovered state names none (see [`Recovered::membership`]).
    pub voters: Vec<ServerId>,
    /// Length of one tick; the driver calls `handle_tick` about this often.
    pub tick_ms: u64,
    /// Ticks a new leader may spend in discovery + sync before giving up, and
    /// a learner may wait for its leader during its handshake.
    pub init_limit_ticks: u64,
    /// Ticks of silence after which a leader drops a learner, and a learner
    /// gives up on its leader.
    pub sync_limit_ticks: u64,
    /// Ticks between re-sent notifications while LOOKING (plus jitter).
    pub election_resend_ticks: u64,
    /// Ticks a LOOKING server waits, once a quorum agrees, for a better vote.
    pub finalize_wait_ticks: u64,
    /// Committed entries kept in memory beyond the latest snapshot for DIFF
    /// (ZooKeeper's `commitLogCount`).
    pub committed_log_window: usize,
    /// Proposals in flight (proposed, not committed) at most.
    pub max_in_flight: usize,
    /// Seeds the core's PRNG (election jitter).
    pub seed: u64,
}

impl Config {
    pub fn new(id: ServerId, voters: Vec<ServerId>, seed: u64) -> Config {
        Config {
            id,
            voters,
            tick_ms: 100,
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            election_resend_ticks: 2,
            finalize_wait_ticks: 1,
            committed_log_window: 500,
            max_in_flight: 1000,
            seed,
        }
    }
}

/// The durable state a core starts from (read by the driver at startup).
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    pub accepted_epoch: Epoch,
    pub current_epoch: Epoch,
    /// The latest durable snapshot, if any; the driver's state machine starts
    /// from it.
    pub snapshot: Option<Snapshot>,
    /// Logged entries after the snapshot, in zxid order. Whether they are
    /// committed is unknown until the node syncs with a leader.
    pub log: Vec<LogEntry>,
    /// The configuration in force at the snapshot (the last reconfig it
    /// holds); `None` when no reconfig ever committed, meaning
    /// [`Config::voters`] at version zero.
    pub membership: Option<Membership>,
    /// The last list of configurations persisted by [`PersistOp::Configs`]
    /// (empty if none): what this node learned from a leader.
    pub configs: Vec<Membership>,
}

/// A client write handed to the leader after prep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub session_id: i64,
    pub cxid: i32,
    pub time_ms: i64,
    pub txn: Txn,
}

/// One durable change. The driver applies the ops of a `Persist` in order,
/// makes them durable (fsync), and only then calls `handle_persisted` with
/// its id. Ids complete in the order they were issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersistOp {
    AcceptedEpoch(Epoch),
    CurrentEpoch(Epoch),
    Append(Vec<LogEntry>),
    /// Drop log entries with zxid > the given one.
    TruncateAfter(Zxid),
    /// Write the snapshot, then drop the whole log (every entry in it is older
    /// than the snapshot, so a crash between the two is harmless).
    InstallSnapshot(Snapshot),
    /// Keep this list of configurations (replacing the last one kept): a
    /// learner took it from its leader, so it survives a restart, as
    /// ZooKeeper's dynamic configuration file does. Read back into
    /// [`Recovered::configs`].
    Configs(Vec<Membership>),
}

/// Everything a core asks of its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Send {
        to: ServerId,
        msg: Message,
    },
    Persist {
        id: u64,
        ops: Vec<PersistOp>,
    },
    /// Apply this committed entry to the state machine. Emitted in strictly
    /// increasing zxid order, never twice.
    Commit(LogEntry),
    /// Replace the state machine with this snapshot; later `Commit`s follow it.
    InstallSnapshot(Snapshot),
    /// Fast leader election finished with this vote.
    Elected {
        vote: Vote,
        role: Role,
    },
    /// The role changed (including back to LOOKING).
    RoleChanged(Role),
    /// This node may serve: a leader that a quorum acked, or a learner that
    /// received UPTODATE.
    Serving {
        epoch: Epoch,
        leader: ServerId,
    },
    /// Requests this node proposed whose fate is now unknown (it stopped
    /// leading before they committed). They may still commit under the next
    /// leader, so the driver must report them as "maybe".
    Abandoned(Vec<Zxid>),
}

/// Why `handle_submit` refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<ServerId> },
    #[error("the leader is not yet established")]
    NotReady,
    #[error("{0} proposals already in flight")]
    Busy(usize),
    #[error("zxid counter exhausted in this epoch; a new election was forced")]
    Rollover,
    #[error("another reconfiguration is in progress")]
    ReconfigInProgress,
    #[error("no quorum of the new configuration is connected and synced")]
    NewConfigNoQuorum,
    #[error("the reconfig names no readable configuration with a voter")]
    BadReconfig,
}

impl SubmitError {
    /// Whether the client should get [`SubmitError::code`] as the answer;
    /// otherwise the write's fate is not its to know (the leader may be
    /// gone) and its connection closes, as ZooKeeper's does.
    pub fn definite(&self) -> bool {
        matches!(
            self,
            SubmitError::Busy(_)
                | SubmitError::ReconfigInProgress
                | SubmitError::NewConfigNoQuorum
                | SubmitError::BadReconfig
        )
    }

    /// The ZooKeeper error code a client sees.
    pub fn code(&self) -> i32 {
        match self {
            // CONNECTIONLOSS: the client retries elsewhere or later.
            SubmitError::NotLeader { .. } | SubmitError::NotReady | SubmitError::Rollover => -4,
            // THROTTLEDOP.
            SubmitError::Busy(_) => -127,
            SubmitError::ReconfigInProgress => -14,
            SubmitError::NewConfigNoQuorum => -13,
            // BADARGUMENTS.
            SubmitError::BadReconfig => -8,
        }
    }
}
