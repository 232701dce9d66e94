//! `corral-observer`: non-voting replicas that serve reads near clients.
//!
//! An observer is fed the committed txn sequence over QUIC by an upstream:
//! a voter (the leader or a follower) or another observer, so observers can
//! form trees within a region and the leader feeds only the first level.
//! The feed protocol and the upstream side live in [`corral_voter::feed`];
//! this crate is the downstream side.
//!
//! # What an observer does
//!
//! - **Syncs** by sending its last applied zxid; the upstream answers with a
//!   DIFF from its log window or a SNAP of its newest snapshot, then streams
//!   every txn it applies. Only committed txns ever arrive, so an observer
//!   never holds data from an unknown future. Each txn is checked to follow
//!   the one before it (same epoch: the next counter); a gap drops the feed
//!   and the observer resyncs.
//! - **Serves reads** from its own tree, with watches firing as txns apply.
//! - **Forwards** writes, session creation, closes, touches and revalidation
//!   *up its chain of upstreams* to the leader (each hop relays; the answer
//!   comes back down the same way). The reply to a client's write goes out
//!   when the observer applies that txn from its feed, so a client reads its
//!   own writes. The chain rather than a direct link to the leader: an
//!   observer then needs to reach only its upstream (one connection, the
//!   one it already has, often the only route out of a region), the leader
//!   holds no per-observer connection at all, and writes, which observers do
//!   not make faster anyway, pay one hop per level.
//! - **`sync`** asks the leader (through the chain) for its commit point as
//!   of the call, and answers once the observer has applied it.
//! - **Relays** its feed to observers below it.
//! - **Keeps a txn log and snapshots** like a standalone node (everything in
//!   them is committed), so a restart resumes by DIFF from where it was.
//!
//! # Losing the upstream
//!
//! While its upstream is unreachable, or reports that it is not serving
//! itself (no quorum, an election), the observer does not serve sessions:
//! it closes client connections, as a ZooKeeper observer does when it loses
//! its leader, and serves read-only clients with local sessions when
//! read-only mode is on. An upstream that stays unreachable, or not serving
//! for [`ObserverOptions::upstream_grace_ms`], is dropped for the next one
//! in preference order (same region first); an observer fed from another
//! region returns to its own as soon as an upstream there answers again
//! (tried every 5 s). A dead upstream process is
//! noticed at once by the voters' liveness probe (its port refuses a
//! one-byte UDP probe), a silent host by the QUIC idle timeout (3 s).

mod driver;
mod upstream;

use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use corral_server::commit::Replicator;
use corral_server::node::{NodeError, NodeRole, RoleStart};
use corral_server::state::{ServerOptions, Shared};
use corral_store::{DataTree, TxnLog};
use corral_voter::certs::PeerTls;
use corral_voter::feed::link::{FeedEndpoint, FeedSink, FeedTiming};
use corral_voter::feed::FeedEvent;
use corral_voter::liveness::Prober;
use corral_voter::node::waits::{ClientInput, ClientQueue};

/// Bound of the observer's input queue.
pub const QUEUE_LEN: usize = 10_000;

/// One configured upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub addr: SocketAddr,
    /// Its region label ("" when not given).
    pub region: String,
}

#[derive(Clone, Debug)]
pub struct ObserverOptions {
    /// This observer's server id (its certificate must name it).
    pub id: u64,
    pub region: String,
    /// Where to get the feed, in configured order; see
    /// [`ObserverOptions::preference`].
    pub upstreams: Vec<Upstream>,
    /// Where observers below this one connect (UDP); `None` relays to no one.
    pub listen: Option<SocketAddr>,
    /// The voters' ids (refused as downstreams, and shown in `mntr`).
    pub voters: Vec<u64>,
    /// Housekeeping tick: touches, heartbeats, lag.
    pub tick_ms: u64,
    /// How long an upstream may report "not serving" before the observer
    /// moves to the next one.
    pub upstream_grace_ms: u64,
    pub timing: FeedTiming,
}

impl ObserverOptions {
    pub fn new(id: u64, upstreams: Vec<Upstream>) -> ObserverOptions {
        ObserverOptions {
            id,
            region: String::new(),
            upstreams,
            listen: None,
            voters: Vec::new(),
            tick_ms: 100,
            upstream_grace_ms: 2_000,
            timing: FeedTiming::default(),
        }
    }

    /// Upstreams in the order they are tried: those in this observer's
    /// region first, then the rest, each group in configured order.
    pub fn preference(&self) -> Vec<Upstream> {
        upstream::Plan::new(&self.region, &self.upstreams).upstreams
    }
}

/// What reaches the observer thread.
pub(crate) enum Input {
    /// A client's write, `sync` or session revalidation.
    Client(ClientInput),
    Up(upstream::UpEvent),
    /// The liveness probe found nothing listening at this upstream address
    /// (its process is gone): stop waiting for the idle timeout.
    UpstreamGone(SocketAddr),
    /// Feeds of observers below this one.
    Feed(FeedEvent),
    FeedSnapSent {
        sub: u64,
        zxid: i64,
        ok: bool,
    },
    SnapshotDone {
        zxid: i64,
        path: std::path::PathBuf,
    },
}

fn client_input(i: Input) -> Option<ClientInput> {
    match i {
        Input::Client(c) => Some(c),
        _ => None,
    }
}

/// Feeds of observers below this one, into the observer thread's queue.
struct Below {
    tx: SyncSender<Input>,
}

impl FeedSink for Below {
    fn deliver(&self, ev: FeedEvent) -> Result<(), FeedEvent> {
        match self.tx.try_send(Input::Feed(ev)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Input::Feed(ev))) => Err(ev),
            Err(_) => Ok(()),
        }
    }
}

/// The observer role for [`corral_server::Node::start_role`].
pub struct ObserverRole {
    opts: ObserverOptions,
    tls: PeerTls,
    plan: tokio::sync::watch::Sender<upstream::Plan>,
}

impl ObserverRole {
    pub fn new(opts: ObserverOptions, tls: PeerTls) -> ObserverRole {
        let (plan, _) =
            tokio::sync::watch::channel(upstream::Plan::new(&opts.region, &opts.upstreams));
        ObserverRole { opts, tls, plan }
    }

    /// A handle that changes the upstreams and region while the observer
    /// runs (a configuration reload).
    pub fn reloader(&self) -> UpstreamReloader {
        UpstreamReloader(self.plan.clone())
    }
}

/// Changes a running observer's upstreams and region: its current feed
/// ends and it dials the new list in the new preference order.
#[derive(Clone)]
pub struct UpstreamReloader(tokio::sync::watch::Sender<upstream::Plan>);

impl UpstreamReloader {
    /// Returns whether anything changed.
    pub fn set(&self, region: &str, upstreams: &[Upstream]) -> bool {
        let next = upstream::Plan::new(region, upstreams);
        self.0.send_if_modified(|p| {
            let changed = *p != next;
            *p = next;
            changed
        })
    }
}

impl NodeRole for ObserverRole {
    /// Everything an observer logged was committed: recover like a
    /// standalone node (newest snapshot, then the whole log after it).
    fn recover(&mut self, opts: &ServerOptions, log: &dyn TxnLog) -> Result<DataTree, NodeError> {
        let tree = corral_store::recover(&opts.data_dir.join("snapshots"), log)?;
        tracing::info!(
            zxid = format_args!("{:#x}", tree.last_zxid()),
            "observer state recovered; resuming the feed from here"
        );
        Ok(tree)
    }

    fn start(self: Box<Self>, shared: Arc<Shared>, log: Box<dyn TxnLog>) -> RoleStart {
        let ObserverRole { opts, tls, plan } = *self;
        Box::pin(async move {
            if opts.upstreams.is_empty() {
                return Err(NodeError::Role(
                    "an observer needs at least one upstream".into(),
                ));
            }
            match tls.id() {
                Ok(id) if id == opts.id => {}
                Ok(id) => {
                    return Err(NodeError::Role(format!(
                        "this observer is server {} but its certificate names server {id}",
                        opts.id
                    )))
                }
                Err(e) => return Err(NodeError::Role(format!("observer certificate: {e}"))),
            }
            let (tx, rx): (SyncSender<Input>, Receiver<Input>) =
                std::sync::mpsc::sync_channel(QUEUE_LEN);
            let below: Arc<dyn FeedSink> = Arc::new(Below { tx: tx.clone() });
            let listen = opts.listen.unwrap_or_else(|| {
                let v6 = opts.upstreams.iter().all(|u| u.addr.is_ipv6());
                if v6 {
                    "[::]:0".parse().expect("literal")
                } else {
                    "0.0.0.0:0".parse().expect("literal")
                }
            });
            let accept = opts.listen.map(|_| (opts.voters.clone(), below));
            let endpoint =
                FeedEndpoint::bind(listen, &tls, opts.timing, accept).map_err(NodeError::Role)?;
            if let Some(a) = opts.listen {
                tracing::info!(addr = %a, "observer accepting feeds of observers below it (QUIC)");
            }
            let window = driver::recovered_window(&shared, log.as_ref())
                .map_err(|e| NodeError::Role(format!("reading the txn log: {e}")))?;
            // One-byte UDP probes: a dead upstream's port answers with ICMP
            // "unreachable" (see corral_voter::liveness), and the observer
            // moves on at once rather than after the QUIC idle timeout.
            let interval = std::time::Duration::from_millis((opts.tick_ms / 2).max(10));
            tokio::spawn(probe_upstreams(plan.subscribe(), tx.clone(), interval));
            upstream::spawn(endpoint, plan.subscribe(), tx.clone());
            driver::spawn(opts, shared, log, window, rx, tx.clone(), plan.subscribe())
                .map_err(|e| NodeError::Role(format!("starting the observer thread: {e}")))?;
            let repl: Arc<dyn Replicator> =
                Arc::new(ClientQueue::new(tx, Input::Client, client_input));
            Ok(repl)
        })
    }
}

/// Probes the upstreams of the plan in force, and the new ones after a
/// reload; ends with the plan's senders (the observer's lifetime).
async fn probe_upstreams(
    mut plan: tokio::sync::watch::Receiver<upstream::Plan>,
    tx: SyncSender<Input>,
    interval: std::time::Duration,
) {
    let start = |plan: &upstream::Plan| {
        let addrs: Vec<SocketAddr> = plan.upstreams.iter().map(|u| u.addr).collect();
        let tx = tx.clone();
        Prober::start(
            addrs
                .iter()
                .copied()
                .enumerate()
                .map(|(i, a)| (i as u64, a))
                .collect(),
            interval,
            move |i| {
                if let Some(&a) = addrs.get(i as usize) {
                    let _ = tx.try_send(Input::UpstreamGone(a));
                }
            },
        )
    };
    let mut _prober = start(&plan.borrow_and_update());
    while plan.changed().await.is_ok() {
        // The old probes stop when their prober is dropped.
        _prober = start(&plan.borrow_and_update());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback UDP port with nothing bound to it (bound, then released).
    fn closed_port() -> SocketAddr {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    }

    fn gone(rx: &Receiver<Input>, limit: std::time::Duration) -> Option<SocketAddr> {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < limit {
            if let Ok(Input::UpstreamGone(a)) = rx.recv_timeout(limit - t0.elapsed()) {
                return Some(a);
            }
        }
        None
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn probes_follow_the_upstreams_of_a_reloaded_plan() {
        // Goal: after a reload names new upstreams, a dead one among them is
        // reported by the probes (not only the upstreams given at start).
        let first = closed_port();
        let up = |addr| Upstream {
            addr,
            region: String::new(),
        };
        let (plan, watch_rx) = tokio::sync::watch::channel(upstream::Plan::new("", &[up(first)]));
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let task = tokio::spawn(probe_upstreams(
            watch_rx,
            tx,
            std::time::Duration::from_millis(20),
        ));
        let wait = std::time::Duration::from_secs(5);
        let seen = tokio::task::block_in_place(|| gone(&rx, wait));
        assert_eq!(seen, Some(first), "the starting upstream is probed");
        let second = closed_port();
        plan.send(upstream::Plan::new("", &[up(second)])).unwrap();
        let seen = tokio::task::block_in_place(|| {
            let t0 = std::time::Instant::now();
            loop {
                match gone(&rx, wait.saturating_sub(t0.elapsed())) {
                    Some(a) if a == second => return Some(a),
                    Some(_) => continue,
                    None => return None,
                }
            }
        });
        assert_eq!(seen, Some(second), "the reloaded upstream is probed");
        drop(plan);
        tokio::time::timeout(wait, task)
            .await
            .expect("the probe task ends with the plan")
            .unwrap();
    }
}
