//! Running as an ensemble member: the peer transport (QUIC with mutual TLS)
//! and the voter role that `corral serve` starts when `servers` lists more
//! than one server.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use corral_config::{Config, ServerEntry};
use corral_observer::{ObserverOptions, ObserverRole, Upstream};
use corral_voter::certs::PeerTls;
use corral_voter::feed::link::FeedSink;
use corral_voter::feed::FeedEvent;
use corral_voter::liveness::Prober;
use corral_voter::net::{FeedAcceptor, Net, NetConfig};
use corral_voter::node::{PeerLink, VoterOptions, VoterRole};

/// The peer address of a `servers` entry (`host:quorum_port`, resolved).
pub fn peer_addr(s: &ServerEntry) -> Result<SocketAddr, String> {
    (s.host.as_str(), s.quorum_port)
        .to_socket_addrs()
        .map_err(|e| {
            format!(
                "server {}: cannot resolve {}:{}: {e}",
                s.id, s.host, s.quorum_port
            )
        })?
        .next()
        .ok_or_else(|| format!("server {}: {} has no address", s.id, s.host))
}

/// Binds the peer port and builds the voter role. Frames from peers are
/// handed to the voter thread; when its queue is full, the receiving task
/// waits, which pushes back on QUIC's flow control.
pub async fn voter_role(cfg: &Config) -> Result<VoterRole, String> {
    let [ca, cert, key] = cfg.peer_tls_files();
    let (Some(ca), Some(cert), Some(key)) = (ca, cert, key) else {
        return Err("peer TLS files are not configured (see peer_tls_dir)".into());
    };
    let tls = PeerTls::load(&ca, &cert, &key).map_err(|e| format!("peer TLS: {e}"))?;
    let own = cfg
        .own_server()
        .ok_or_else(|| format!("server_id {} is not in servers", cfg.server_id))?;
    let listen = peer_addr(own)?;
    // Observers in `servers` (zoo.cfg `:observer`) are not peers: they dial
    // in on the feed protocol, like any other observer.
    let mut peers = Vec::new();
    for s in cfg
        .servers
        .iter()
        .filter(|s| s.id != cfg.server_id && !s.observer)
    {
        peers.push((s.id, peer_addr(s)?));
    }
    // The driver exists only once the role starts; feeds accepted before
    // that wait in this slot's queue.
    let feeds = Arc::new(LateFeedSink::default());
    let mut net_cfg = NetConfig::new(cfg.server_id, listen, peers.clone(), tls);
    net_cfg.feeds = Some(FeedAcceptor(feeds.clone()));
    let (net, mut inbound) = Net::start(net_cfg).await.map_err(|e| e.to_string())?;
    tracing::info!(addr = %listen, peers = cfg.servers.len() - 1, "peer transport listening (QUIC)");
    let mut opts = VoterOptions::new(
        cfg.server_id,
        cfg.servers
            .iter()
            .filter(|s| !s.observer)
            .map(|s| s.id)
            .collect(),
    );
    opts.tick_ms = cfg.peer_tick_ms;
    opts.sync_limit_ticks = u64::from(cfg.peer_sync_limit_ticks);
    opts.init_limit_ticks = u64::from(cfg.peer_init_limit_ticks);
    let probe_every = Duration::from_millis((cfg.peer_tick_ms / 2).max(10));
    Ok(VoterRole::new(opts, move |ensemble| {
        feeds.set(ensemble.clone());
        let hint = ensemble.clone();
        // Lives as long as the process: the prober's tasks stop when dropped.
        std::mem::forget(Prober::start(peers, probe_every, move |id| {
            hint.peer_down(id)
        }));
        tokio::spawn(async move {
            while let Some(msg) = inbound.recv().await {
                let mut frame = msg.frame;
                loop {
                    match ensemble.deliver(msg.from, frame) {
                        Ok(()) => break,
                        Err(back) => {
                            frame = back;
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
            }
        });
        Arc::new(net) as Arc<dyn PeerLink>
    }))
}

/// A feed sink whose driver is plugged in once it exists; until then feeds
/// are handed back (the transport waits and retries).
#[derive(Default)]
struct LateFeedSink {
    sink: std::sync::OnceLock<Arc<dyn FeedSink>>,
}

impl LateFeedSink {
    fn set(&self, sink: Arc<dyn FeedSink>) {
        let _ = self.sink.set(sink);
    }
}

impl FeedSink for LateFeedSink {
    fn deliver(&self, ev: FeedEvent) -> Result<(), FeedEvent> {
        match self.sink.get() {
            Some(s) => s.deliver(ev),
            None => Err(ev),
        }
    }
}

fn resolve(what: &str, a: &str) -> Result<SocketAddr, String> {
    a.to_socket_addrs()
        .map_err(|e| format!("{what} {a}: {e}"))?
        .next()
        .ok_or_else(|| format!("{what} {a} has no address"))
}

/// An observer's upstreams as configured (`upstreams`, or the voters).
pub fn observer_upstreams(cfg: &Config) -> Result<Vec<Upstream>, String> {
    cfg.upstream_list()
        .into_iter()
        .map(|(region, addr)| {
            Ok(Upstream {
                addr: resolve("upstream", &addr)?,
                region,
            })
        })
        .collect()
}

/// The observer role: its feed endpoint and upstreams.
pub fn observer_role(cfg: &Config) -> Result<ObserverRole, String> {
    let [ca, cert, key] = cfg.peer_tls_files();
    let (Some(ca), Some(cert), Some(key)) = (ca, cert, key) else {
        return Err("peer TLS files are not configured (see peer_tls_dir)".into());
    };
    let tls = PeerTls::load(&ca, &cert, &key).map_err(|e| format!("peer TLS: {e}"))?;
    let mut opts = ObserverOptions::new(cfg.server_id, observer_upstreams(cfg)?);
    opts.region = cfg.region.clone();
    opts.voters = cfg
        .servers
        .iter()
        .filter(|s| !s.observer)
        .map(|s| s.id)
        .collect();
    // An observer listed in `servers` (zoo.cfg) takes feeds on its own
    // quorum port unless feed_addr says otherwise.
    opts.listen = match (&cfg.feed_addr, cfg.own_server()) {
        (Some(a), _) => Some(resolve("feed_addr", a)?),
        (None, Some(own)) => Some(peer_addr(own)?),
        (None, None) => None,
    };
    opts.tick_ms = cfg.peer_tick_ms;
    opts.upstream_grace_ms =
        (cfg.peer_tick_ms * u64::from(cfg.peer_sync_limit_ticks) * 4).max(1_000);
    Ok(ObserverRole::new(opts, tls))
}
