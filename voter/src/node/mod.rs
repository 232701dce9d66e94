//! A voter as a running node: the driver that moves the sans-IO core's
//! outputs onto the peer network, the disk and the data tree, and the
//! [`Replicator`] that client connections submit to.
//!
//! # Threads
//! One plain thread (`corral-voter`) owns the [`Core`](crate::core::Core), the txn log and the
//! leader's prep state. Everything reaches it through one bounded channel:
//! peer frames, client writes, `sync` and session revalidation. It drains
//! what is queued, feeds the core, then works through the core's outputs:
//! persist ops are applied in order and made durable with **one fsync per
//! round** (group commit; the core learns with `handle_persisted` and only
//! then sends ACKs), commits are applied to the tree in zxid order
//! (firing watches and completing waiting clients), and messages go to the
//! [`PeerLink`].
//!
//! # Writes
//! On the leader a write is prepped against the tree plus the pending
//! overlay of proposals in flight ([`corral_server::prep`]), stamped with the
//! zxid the core will give it, and proposed. A learner forwards the write to
//! the leader; the reply goes out when the learner applies the committed
//! txn, matched by (session id, cxid), so a client always reads its own
//! write where it made it.
//!
//! # Sessions
//! createSession and closeSession are txns. The leader tracks every session's
//! deadline and expires them; learners report the sessions their clients
//! touched once per tick. A client that reconnects elsewhere is revalidated
//! by the leader, which records the new owner: a write that still arrives
//! through the old server fails with SESSIONMOVED, as in ZooKeeper.
//!
//! # Serving
//! Clients are served only while the core says so (an established leader, or
//! a learner after UPTODATE). When the node stops serving it closes every
//! client connection and drops every waiting request: the clients reconnect
//! to another server and see "connection loss" for what was in flight,
//! which may or may not have committed, as with ZooKeeper.

pub mod disk;
pub mod envelope;
pub mod waits;

mod driver;

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use corral_server::commit::Replicator;
use corral_server::node::{NodeError, NodeRole, RoleStart};
use corral_server::state::{ServerOptions, Shared};
use corral_store::{DataTree, TxnLog};

use crate::core::{Config, Recovered, ServerId};
use crate::net::Channel;

pub use driver::QUEUE_LEN;
use waits::{ClientInput, ClientQueue};

/// Where the driver sends frames: the QUIC transport, or an in-memory
/// network in tests. Sending never blocks; `false` means the frame was
/// dropped (the core tolerates loss).
pub trait PeerLink: Send + Sync + 'static {
    fn send(&self, to: u64, channel: Channel, frame: Vec<u8>) -> bool;

    /// Bytes sent and received over all peers so far (for `mntr`).
    fn bytes(&self) -> (u64, u64) {
        (0, 0)
    }

    /// A configuration names voter `id` at `addr`: reach it.
    fn add_peer(&self, _id: u64, _addr: std::net::SocketAddr) {}

    /// A committed configuration dropped voter `id`: stop talking to it.
    fn remove_peer(&self, _id: u64) {}
}

impl PeerLink for crate::net::Net {
    fn send(&self, to: u64, channel: Channel, frame: Vec<u8>) -> bool {
        crate::net::Net::send(self, to, channel, frame).is_ok()
    }

    fn bytes(&self) -> (u64, u64) {
        self.stats()
            .peers
            .values()
            .fold((0, 0), |(s, r), p| (s + p.bytes_sent, r + p.bytes_received))
    }

    fn add_peer(&self, id: u64, addr: std::net::SocketAddr) {
        crate::net::Net::add_peer(self, id, addr)
    }

    fn remove_peer(&self, id: u64) {
        crate::net::Net::remove_peer(self, id)
    }
}

/// Timing of the voting core, in wall-clock terms.
#[derive(Clone, Debug)]
pub struct VoterOptions {
    pub id: u64,
    /// Every voter's id, this one included.
    pub voters: Vec<u64>,
    /// The core's tick: pings and election re-sends.
    pub tick_ms: u64,
    /// Ticks a new leader may spend in discovery and sync.
    pub init_limit_ticks: u64,
    /// Ticks of silence after which a leader drops a learner and a learner
    /// gives up on its leader.
    pub sync_limit_ticks: u64,
    /// Seeds election jitter (varied per start so restarts differ).
    pub seed: u64,
}

impl VoterOptions {
    /// corral's defaults: 100 ms ticks, a leader is given up after 5 ticks
    /// of silence (so failover is well under a second), and 100 ticks
    /// (10 s) for a new leader to sync its learners.
    pub fn new(id: u64, voters: Vec<u64>) -> VoterOptions {
        VoterOptions {
            id,
            voters,
            tick_ms: 100,
            init_limit_ticks: 100,
            sync_limit_ticks: 5,
            seed: id
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0),
        }
    }

    fn core_config(&self) -> Config {
        let mut c = Config::new(
            ServerId(self.id),
            self.voters.iter().copied().map(ServerId).collect(),
            self.seed,
        );
        c.tick_ms = self.tick_ms;
        c.init_limit_ticks = self.init_limit_ticks;
        c.sync_limit_ticks = self.sync_limit_ticks;
        c
    }
}

/// What reaches the driver thread.
pub(crate) enum Input {
    Peer {
        from: u64,
        frame: Vec<u8>,
    },
    /// A client's write, `sync` or session revalidation.
    Client(ClientInput),
    SnapshotDone {
        zxid: i64,
        path: std::path::PathBuf,
    },
    PeerDown(u64),
    /// An observer feed's connection, frame or close.
    Feed(crate::feed::FeedEvent),
    /// A feed's snapshot has been streamed (or failed to).
    FeedSnapSent {
        sub: crate::feed::SubId,
        zxid: i64,
        ok: bool,
    },
}

fn client_input(i: Input) -> Option<ClientInput> {
    match i {
        Input::Client(c) => Some(c),
        _ => None,
    }
}

/// The voter's inbound side: peer frames, liveness hints and observer feeds
/// into the driver thread's bounded queue. Clients reach the driver through
/// a [`ClientQueue`] on the same queue.
pub struct Ensemble {
    tx: SyncSender<Input>,
}

impl Ensemble {
    /// Hands a peer frame to the driver. Returns `false` when the queue is
    /// full (the caller waits and retries: backpressure onto the transport).
    pub fn deliver(&self, from: u64, frame: Vec<u8>) -> Result<(), Vec<u8>> {
        match self.tx.try_send(Input::Peer { from, frame }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Input::Peer { frame, .. }))
            | Err(TrySendError::Disconnected(Input::Peer { frame, .. })) => Err(frame),
            Err(_) => Ok(()),
        }
    }
}

impl Ensemble {
    /// A hint that `peer`'s process is gone (see [`crate::liveness`]).
    pub fn peer_down(&self, peer: u64) {
        let _ = self.tx.try_send(Input::PeerDown(peer));
    }
}

impl crate::feed::link::FeedSink for Ensemble {
    fn deliver(&self, ev: crate::feed::FeedEvent) -> Result<(), crate::feed::FeedEvent> {
        match self.tx.try_send(Input::Feed(ev)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Input::Feed(ev))) => Err(ev),
            // The driver is gone: nothing will take the event.
            Err(_) => Ok(()),
        }
    }
}

/// The voter role for [`corral_server::Node::start_role`]. `link` is called
/// once the driver exists, with the [`Ensemble`] that inbound frames go to;
/// it returns the outbound link.
pub struct VoterRole {
    opts: VoterOptions,
    recovered: Option<Recovered>,
    link: Box<dyn FnOnce(Arc<Ensemble>) -> Arc<dyn PeerLink> + Send>,
}

impl VoterRole {
    pub fn new(
        opts: VoterOptions,
        link: impl FnOnce(Arc<Ensemble>) -> Arc<dyn PeerLink> + Send + 'static,
    ) -> VoterRole {
        VoterRole {
            opts,
            recovered: None,
            link: Box::new(link),
        }
    }
}

impl NodeRole for VoterRole {
    fn recover(&mut self, opts: &ServerOptions, log: &dyn TxnLog) -> Result<DataTree, NodeError> {
        let dirs = disk::Dirs::new(&opts.data_dir);
        let (recovered, tree) = disk::recover(&dirs, log)?;
        tracing::info!(
            accepted_epoch = recovered.accepted_epoch,
            current_epoch = recovered.current_epoch,
            snapshot = format_args!("{:#x}", recovered.snapshot.as_ref().map_or(0, |s| s.zxid.0)),
            logged = recovered.log.len(),
            "voter state recovered; logged txns apply once synced with a leader"
        );
        self.recovered = Some(recovered);
        Ok(tree)
    }

    fn start(self: Box<Self>, shared: Arc<Shared>, log: Box<dyn TxnLog>) -> RoleStart {
        let VoterRole {
            opts,
            recovered,
            link,
        } = *self;
        Box::pin(async move {
            let recovered =
                recovered.ok_or_else(|| NodeError::Role("recover was not called".into()))?;
            let (tx, rx): (SyncSender<Input>, Receiver<Input>) =
                std::sync::mpsc::sync_channel(QUEUE_LEN);
            let ensemble = Arc::new(Ensemble { tx: tx.clone() });
            let link = link(ensemble);
            let repl: Arc<dyn Replicator> =
                Arc::new(ClientQueue::new(tx.clone(), Input::Client, client_input));
            driver::spawn(opts, recovered, shared, log, link, rx, tx)
                .map_err(|e| NodeError::Role(format!("starting the voter thread: {e}")))?;
            Ok(repl)
        })
    }
}
