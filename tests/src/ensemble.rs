//! `EnsembleProc`: N `corral serve` voters as real processes on loopback,
//! talking QUIC with certificates made by `corral cert`, and optionally M
//! observers fed by them (directly or in chains).

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::process::four_letter_word;
use crate::server::{corral_bin, ServerBuilder, ServerProc};

/// A UDP port on 127.0.0.1 that was free a moment ago (the QUIC peer port).
pub fn pick_free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp 127.0.0.1:0");
    s.local_addr().expect("local_addr").port()
}

/// A running ensemble. Dropping it SIGKILLs every server we started.
pub struct EnsembleProc {
    pub nodes: Vec<ServerProc>,
    /// Observers (server ids `voters + 1 ..`).
    pub observers: Vec<ServerProc>,
    /// Each observer's feed address (where observers below it connect).
    pub observer_feeds: Vec<String>,
    /// Each voter's peer (QUIC) address.
    pub voter_peers: Vec<String>,
    /// Per-node keys every server got (for observers added later).
    keys: Vec<(String, String)>,
    servers: String,
    /// Server ids with certificates and no process yet.
    spare_ids: std::ops::Range<usize>,
    /// Each observer's server id.
    observer_ids: Vec<usize>,
    certs: TempDir,
}

/// An observer's upstream in [`EnsembleBuilder::observer_upstreams`].
#[derive(Clone, Debug)]
pub enum Upstream {
    /// Voter `i` (0-based).
    Voter(usize),
    /// Observer `j` (0-based).
    Observer(usize),
    /// Either, with a region label.
    InRegion(String, Box<Upstream>),
}

/// Options shared by every voter of an ensemble.
#[derive(Clone, Debug)]
pub struct EnsembleBuilder {
    voters: usize,
    keys: Vec<(String, String)>,
    observers: usize,
    observer_keys: Vec<(Option<usize>, String, String)>,
    observer_upstreams: Vec<(usize, Vec<Upstream>)>,
    spare: usize,
}

impl EnsembleBuilder {
    /// Sets a TOML key on every voter (`value` in TOML syntax).
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.keys.push((key.into(), value.into()));
        self
    }

    /// Adds `m` observers (ids after the voters), fed by every voter unless
    /// [`EnsembleBuilder::observer_upstreams`] says otherwise.
    pub fn observers(mut self, m: usize) -> Self {
        self.observers = m;
        self
    }

    /// Sets a TOML key on observer `j`, or on every observer when `None`.
    pub fn observer_set(mut self, j: Option<usize>, key: &str, value: &str) -> Self {
        self.observer_keys.push((j, key.into(), value.into()));
        self
    }

    /// Makes certificates for `k` more observers, for
    /// [`EnsembleProc::add_observer`].
    pub fn spare_observers(mut self, k: usize) -> Self {
        self.spare = k;
        self
    }

    /// Observer `j`'s upstreams, in order.
    pub fn observer_upstreams(mut self, j: usize, ups: Vec<Upstream>) -> Self {
        self.observer_upstreams.push((j, ups));
        self
    }

    pub fn start(self) -> Result<EnsembleProc> {
        let n = self.voters;
        let m = self.observers;
        let certs = tempfile::Builder::new().prefix("corral-certs-").tempdir()?;
        let ids: Vec<String> = (1..=n + m + self.spare).map(|i| i.to_string()).collect();
        let st = Command::new(corral_bin()?)
            .args(["cert", "--dir"])
            .arg(certs.path())
            .args(["--ids", &ids.join(",")])
            .stdout(std::process::Stdio::null())
            .status()
            .context("corral cert")?;
        if !st.success() {
            bail!("corral cert failed ({st})");
        }
        let client: Vec<u16> = (0..n).map(|_| crate::pick_free_port()).collect();
        let peer: Vec<u16> = (0..n).map(|_| pick_free_udp_port()).collect();
        let servers: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "{{ id = {}, host = \"127.0.0.1\", quorum_port = {}, election_port = {}, client = \"127.0.0.1:{}\" }}",
                    i + 1,
                    peer[i],
                    peer[i],
                    client[i]
                )
            })
            .collect();
        let servers = format!("[{}]", servers.join(", "));
        let mut nodes = Vec::with_capacity(n);
        for (i, &port) in client.iter().enumerate() {
            let mut b = ServerBuilder::default()
                .port(port)
                .set("server_id", &(i + 1).to_string())
                .set("servers", &servers)
                .set("peer_tls_dir", &format!("{:?}", certs.path()))
                .set("tick_time_ms", "200")
                .set("min_session_timeout_ms", "1000");
            for (k, v) in &self.keys {
                b = b.set(k, v);
            }
            nodes.push(b.start()?);
        }
        let voter_peers: Vec<String> = peer.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let feeds: Vec<String> = (0..m)
            .map(|_| format!("127.0.0.1:{}", pick_free_udp_port()))
            .collect();
        let render = |u: &Upstream| -> String {
            fn go(u: &Upstream, v: &[String], f: &[String]) -> String {
                match u {
                    Upstream::Voter(i) => v[*i].clone(),
                    Upstream::Observer(j) => f[*j].clone(),
                    Upstream::InRegion(r, inner) => format!("{r}={}", go(inner, v, f)),
                }
            }
            format!("{:?}", go(u, &voter_peers, &feeds))
        };
        let mut observers = Vec::with_capacity(m);
        for (j, feed) in feeds.iter().enumerate() {
            let mut b = ServerBuilder::default()
                .port(crate::pick_free_port())
                .set("server_id", &(n + j + 1).to_string())
                .set("role", "\"observer\"")
                .set("servers", &servers)
                .set("feed_addr", &format!("{feed:?}"))
                .set("peer_tls_dir", &format!("{:?}", certs.path()))
                .set("tick_time_ms", "200")
                .set("min_session_timeout_ms", "1000")
                .start_timeout(Duration::from_secs(30));
            if let Some((_, ups)) = self.observer_upstreams.iter().rev().find(|(k, _)| *k == j) {
                let list: Vec<String> = ups.iter().map(render).collect();
                b = b.set("upstreams", &format!("[{}]", list.join(", ")));
            }
            for (k, v) in &self.keys {
                b = b.set(k, v);
            }
            for (which, k, v) in &self.observer_keys {
                if which.is_none_or(|w| w == j) {
                    b = b.set(k, v);
                }
            }
            observers.push(b.start()?);
        }
        Ok(EnsembleProc {
            nodes,
            observers,
            observer_feeds: feeds,
            voter_peers,
            keys: self.keys,
            servers,
            spare_ids: n + m + 1..n + m + self.spare + 1,
            observer_ids: (n + 1..=n + m).collect(),
            certs,
        })
    }
}

impl EnsembleProc {
    pub fn builder(voters: usize) -> EnsembleBuilder {
        EnsembleBuilder {
            voters,
            keys: Vec::new(),
            observers: 0,
            observer_keys: Vec::new(),
            observer_upstreams: Vec::new(),
            spare: 0,
        }
    }

    /// Starts `voters` voters and waits until they serve under one leader.
    pub fn start(voters: usize) -> Result<EnsembleProc> {
        let e = Self::builder(voters).start()?;
        e.wait_serving(Duration::from_secs(30))?;
        Ok(e)
    }

    /// Every client address, comma-separated.
    pub fn connect_string(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.connect_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr()
    }

    /// `srvr`'s Mode line of node `i` (`leader`, `follower`, or `None` when
    /// it is down or not serving).
    pub fn mode(&self, i: usize) -> Option<String> {
        let text = four_letter_word(self.nodes[i].addr(), "srvr").ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(|m| m.trim().to_string())
    }

    /// A server with spare id `id` on client port `port`, with the
    /// ensemble's certificates, timings and keys.
    fn spare_builder(&self, id: usize, port: u16) -> ServerBuilder {
        let mut b = ServerBuilder::default()
            .port(port)
            .set("server_id", &id.to_string())
            .set("peer_tls_dir", &format!("{:?}", self.certs.path()))
            .set("tick_time_ms", "200")
            .set("min_session_timeout_ms", "1000")
            .start_timeout(Duration::from_secs(30));
        for (k, v) in &self.keys {
            b = b.set(k, v);
        }
        b
    }

    /// Starts one more voter process with a spare id (see
    /// [`EnsembleBuilder::spare_observers`], which makes the certificates),
    /// configured as ZooKeeper's joiners are: the ensemble plus itself. It
    /// follows the leader as a non-voting learner until a reconfig adds it.
    /// Returns its index in `nodes` and its `server.N=…` entry for reconfig.
    pub fn add_voter(&mut self) -> Result<(usize, String)> {
        let Some(id) = self.spare_ids.next() else {
            bail!("no spare certificates left");
        };
        let client = crate::pick_free_port();
        let peer = pick_free_udp_port();
        let own = format!(
            "{{ id = {id}, host = \"127.0.0.1\", quorum_port = {peer}, election_port = {peer}, client = \"127.0.0.1:{client}\" }}"
        );
        // As an operator would: the current configuration, plus itself.
        let current = self
            .current_servers()
            .unwrap_or_else(|_| self.servers.clone());
        let servers = format!("{}, {own}]", current.strip_suffix(']').unwrap_or(&current));
        let b = self.spare_builder(id, client).set("servers", &servers);
        self.nodes.push(b.start()?);
        self.voter_peers.push(format!("127.0.0.1:{peer}"));
        // ZooKeeper's spec: distinct quorum and election ports (corral uses
        // the first; the second only has to differ).
        let spec = format!(
            "server.{id}=127.0.0.1:{peer}:{}:participant;127.0.0.1:{client}",
            pick_free_udp_port()
        );
        Ok((self.nodes.len() - 1, spec))
    }

    /// The voters of the configuration node 0 reports, as a TOML `servers`
    /// list.
    fn current_servers(&self) -> Result<String> {
        let text = crate::req::rt().block_on(async {
            let c = crate::reconfig::connect(self.addr(0)).await?;
            c.sync("/").await?;
            let (d, _) = c.get_config().await?;
            Ok::<_, anyhow::Error>(d)
        })?;
        let ens = crate::reconfig::parse(&text)?;
        let entries: Vec<String> = ens
            .servers
            .values()
            .filter(|s| s.is_voter())
            .map(|s| {
                format!(
                    "{{ id = {}, host = {:?}, quorum_port = {}, election_port = {}, client = {:?} }}",
                    s.id,
                    s.host,
                    s.quorum_port,
                    s.election_port,
                    s.client.clone().unwrap_or_default()
                )
            })
            .collect();
        Ok(format!("[{}]", entries.join(", ")))
    }

    /// Hands observer `j` over to `nodes`, for a reconfig that makes it a
    /// voter (it restarts itself in that role, same process and client
    /// port); returns its index in `nodes` and its `server.N=…` entry as a
    /// participant on a fresh peer port. Later observers' indices shift down.
    pub fn promote_observer(&mut self, j: usize) -> (usize, String) {
        let id = self.observer_ids.remove(j);
        let client = self.observers[j].addr();
        let peer = pick_free_udp_port();
        let spec = format!(
            "server.{id}=127.0.0.1:{peer}:{}:participant;{client}",
            pick_free_udp_port()
        );
        let p = self.observers.remove(j);
        self.observer_feeds.remove(j);
        self.nodes.push(p);
        self.voter_peers.push(format!("127.0.0.1:{peer}"));
        (self.nodes.len() - 1, spec)
    }

    /// Starts one more observer (a spare id, see
    /// [`EnsembleBuilder::spare_observers`]) fed by `upstreams` (peer or
    /// feed addresses); returns its index in `observers`.
    pub fn add_observer(&mut self, upstreams: &[String]) -> Result<usize> {
        let Some(id) = self.spare_ids.next() else {
            bail!("no spare observer certificates left");
        };
        let feed = format!("127.0.0.1:{}", pick_free_udp_port());
        let ups: Vec<String> = upstreams.iter().map(|u| format!("{u:?}")).collect();
        let b = self
            .spare_builder(id, crate::pick_free_port())
            .set("role", "\"observer\"")
            .set("servers", &self.servers)
            .set("upstreams", &format!("[{}]", ups.join(", ")))
            .set("feed_addr", &format!("{feed:?}"));
        self.observers.push(b.start()?);
        self.observer_feeds.push(feed);
        self.observer_ids.push(id);
        Ok(self.observers.len() - 1)
    }

    pub fn observer_addr(&self, j: usize) -> SocketAddr {
        self.observers[j].addr()
    }

    /// `mntr` of observer `j` as key → value (`None` when it is down or not
    /// serving).
    pub fn observer_mntr(&self, j: usize) -> Option<std::collections::BTreeMap<String, String>> {
        let text = four_letter_word(self.observers[j].addr(), "mntr").ok()?;
        let rows: std::collections::BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (!rows.is_empty()).then_some(rows)
    }

    /// The server id of observer `j`'s current upstream, while it serves.
    pub fn observer_upstream(&self, j: usize) -> Option<u64> {
        let m = self.observer_mntr(j)?;
        (m.get("zk_server_state").map(String::as_str) == Some("observer"))
            .then(|| m.get("corral_observer_upstream")?.parse().ok())
            .flatten()
            .filter(|&id: &u64| id > 0)
    }

    /// Waits until every running observer serves.
    pub fn wait_observers(&self, limit: Duration) -> Result<()> {
        let t0 = Instant::now();
        loop {
            let ups: Vec<Option<u64>> = (0..self.observers.len())
                .map(|j| self.observer_upstream(j))
                .collect();
            if ups.iter().all(Option::is_some) {
                return Ok(());
            }
            if t0.elapsed() > limit {
                let logs: Vec<String> = (0..self.observers.len())
                    .map(|j| format!("--- observer {j} ---\n{}", self.observers[j].log_tail(20)))
                    .collect();
                bail!(
                    "observers not serving within {limit:?}: {ups:?}\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The index of the node that says it leads, if exactly one does.
    pub fn leader(&self) -> Option<usize> {
        let leaders: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.mode(i).as_deref() == Some("leader"))
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    /// Waits until every running node serves (one leader, the rest following).
    pub fn wait_serving(&self, limit: Duration) -> Result<usize> {
        self.wait_serving_among(&(0..self.nodes.len()).collect::<Vec<_>>(), limit)
    }

    /// Waits until the nodes `among` serve, one of them leading.
    pub fn wait_serving_among(&self, among: &[usize], limit: Duration) -> Result<usize> {
        let t0 = Instant::now();
        loop {
            let modes: Vec<Option<String>> = among.iter().map(|&i| self.mode(i)).collect();
            let leaders: Vec<usize> = among
                .iter()
                .zip(&modes)
                .filter(|(_, m)| m.as_deref() == Some("leader"))
                .map(|(i, _)| *i)
                .collect();
            let all = modes
                .iter()
                .all(|m| matches!(m.as_deref(), Some("leader") | Some("follower")));
            if all && leaders.len() == 1 {
                return Ok(leaders[0]);
            }
            if t0.elapsed() > limit {
                let logs: Vec<String> = among
                    .iter()
                    .map(|&i| format!("--- node {} ---\n{}", i + 1, self.nodes[i].log_tail(15)))
                    .collect();
                bail!(
                    "not serving within {limit:?}: {modes:?}\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
