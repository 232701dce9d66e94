//! A simulated cluster: real cores, a faulty network, faulty disks, one clock,
//! and observers fed over simulated feed links (see `cluster/feed.rs`).

mod feed;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;

use corral_proto::{Acl, Id};
use corral_store::{DataTree, Ensemble, LogEntry, MemTxnLog, ServerSpec, Txn, TxnLog};
use corral_voter::core::members::{decode_list, encode_list};
use corral_voter::core::{
    Config, Core, Membership, Message, Output, PersistOp, Recovered, Request, Role, ServerId,
    Snapshot, Zxid,
};
use corral_voter::feed::{Hub, SubId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::checker::Checker;

pub use feed::Up;
use feed::{Heartbeat, Job, Link, ObsFaults, Observer};

const ACCEPTED_KEY: &str = "corral.voter.accepted_epoch";
const CURRENT_KEY: &str = "corral.voter.current_epoch";
const CONFIGS_KEY: &str = "corral.voter.configs";
pub const TICK_MS: u64 = 50;
pub(crate) const STEP_MS: u64 = 5;

/// The fault mix of one run, drawn per seed (swarm testing).
#[derive(Debug, Clone)]
pub struct Faults {
    pub drop: f64,
    pub dup: f64,
    pub max_delay_ms: u64,
    pub partition: f64,
    pub crash: f64,
    pub torn: f64,
    pub max_disk_ms: u64,
    pub write: f64,
    pub snapshot_every: usize,
    /// Of the random writes, the share that are reconfigs.
    pub reconfig: f64,
    /// Servers beyond the initial voters, started as joiners.
    pub spares: u64,
}

impl Faults {
    pub fn swarm(rng: &mut ChaCha8Rng) -> Faults {
        fn pick(rng: &mut ChaCha8Rng, hi: f64) -> f64 {
            let p = rng.gen_range(0.0..hi);
            if rng.gen_bool(0.6) {
                p
            } else {
                0.0
            }
        }
        Faults {
            drop: pick(rng, 0.2),
            dup: pick(rng, 0.1),
            max_delay_ms: rng.gen_range(1..120),
            partition: pick(rng, 0.01),
            crash: pick(rng, 0.003),
            torn: rng.gen_range(0.0..1.0),
            max_disk_ms: rng.gen_range(1..40),
            write: rng.gen_range(0.02..0.3),
            snapshot_every: rng.gen_range(3..30),
            reconfig: pick(rng, 0.1),
            spares: rng.gen_range(0..=2),
        }
    }

    pub fn healed(&self) -> Faults {
        Faults {
            drop: 0.0,
            dup: 0.0,
            max_delay_ms: 5,
            partition: 0.0,
            crash: 0.0,
            torn: 0.0,
            max_disk_ms: 5,
            write: self.write,
            snapshot_every: self.snapshot_every,
            reconfig: self.reconfig,
            spares: self.spares,
        }
    }
}

/// The sim's state-machine snapshot: the committed history itself, each
/// entry length-prefixed, replayed into a fresh `DataTree` on install.
fn encode_entry(out: &mut Vec<u8>, e: &LogEntry) {
    let b = e.encode();
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(&b);
}

/// An applied history, with its snapshot encoding kept alongside so that
/// taking (or serving) a snapshot is a copy, not a re-encoding of it all.
#[derive(Default)]
pub(crate) struct History {
    entries: Vec<LogEntry>,
    /// Every entry encoded as a snapshot holds it.
    bytes: Vec<u8>,
    /// Where each entry's encoding ends in `bytes`.
    ends: Vec<usize>,
}

impl History {
    pub(crate) fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The zxid after the first `len` entries (0 for none).
    pub(crate) fn zxid_at(&self, len: usize) -> i64 {
        if len == 0 {
            0
        } else {
            self.entries[len - 1].hdr.zxid
        }
    }

    pub(crate) fn last(&self) -> Zxid {
        Zxid(self.zxid_at(self.len()))
    }

    pub(crate) fn push(&mut self, e: LogEntry) {
        encode_entry(&mut self.bytes, &e);
        self.ends.push(self.bytes.len());
        self.entries.push(e);
    }

    /// The snapshot state of the first `len` entries.
    pub(crate) fn encoded(&self, len: usize) -> &[u8] {
        let end = if len == 0 { 0 } else { self.ends[len - 1] };
        &self.bytes[..end]
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        let end = if len == 0 { 0 } else { self.ends[len - 1] };
        self.entries.truncate(len);
        self.ends.truncate(len);
        self.bytes.truncate(end);
    }

    pub(crate) fn clear(&mut self) {
        self.truncate(0);
    }

    /// Becomes the history a snapshot's state holds. Returns how many
    /// entries were kept: when this history is a prefix of that one, only
    /// the entries after it are new (a tree built from this one just
    /// applies those); otherwise 0.
    pub(crate) fn install(&mut self, state: &[u8]) -> usize {
        let kept = if state.starts_with(&self.bytes) {
            self.len()
        } else {
            self.clear();
            0
        };
        let mut b = &state[self.bytes.len()..];
        while b.len() >= 4 {
            let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
            self.push(LogEntry::decode(&b[4..4 + n]).expect("sim snapshot decodes"));
            b = &b[4 + n..];
        }
        assert!(b.is_empty(), "a sim snapshot ends on an entry");
        kept
    }

    /// Brings `tree` (built from the first `from` entries) up to the whole
    /// history.
    pub(crate) fn apply_to(&self, tree: &mut DataTree, from: usize) {
        for e in &self.entries[from..] {
            tree.apply(&e.hdr, &e.txn);
        }
    }
}

struct Disk {
    log: MemTxnLog,
    snapshot: Option<Snapshot>,
    pending_snapshot: Option<Snapshot>,
}

struct Node {
    id: ServerId,
    core: Option<Core>,
    disk: Disk,
    /// Persists written but not yet synced: (id, when the fsync completes).
    fsyncs: VecDeque<(u64, u64)>,
    tree: DataTree,
    history: History,
    next_tick_ms: u64,
    incarnation: u64,
    down_until_ms: Option<u64>,
    commits_since_snapshot: usize,
    /// The observer feeds this voter serves.
    hub: Hub,
    heartbeat: Heartbeat,
}

impl Node {
    fn applied(&self) -> Zxid {
        self.history.last()
    }

    /// The state becomes the snapshot's. A restarted process rebuilds its
    /// tree from scratch; a running one that installs a snapshot its state
    /// is a prefix of only applies what is new (the same tree, sooner).
    fn restore(&mut self, s: &Snapshot, restarted: bool) {
        if restarted {
            self.history.clear();
        }
        let kept = self.history.install(&s.state);
        if kept == 0 {
            self.tree = DataTree::new();
        }
        self.history.apply_to(&mut self.tree, kept);
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at_ms: u64,
    seq: u64,
    from: u64,
    to: u64,
    msg_idx: usize,
}

/// A client write and what became of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Pending { leader: ServerId, zxid: Zxid },
    Committed,
    Maybe,
}

pub struct Cluster {
    pub seed: u64,
    pub rng: ChaCha8Rng,
    pub now_ms: u64,
    nodes: Vec<Node>,
    /// The voters of the initial configuration (the first `n` nodes; the
    /// rest are spares, which join when a reconfig adds them).
    initial: Vec<ServerId>,
    net: BinaryHeap<Reverse<InFlight>>,
    msgs: Vec<Option<Message>>,
    seq: u64,
    /// Directed links that drop everything.
    blocked: BTreeSet<(u64, u64)>,
    pub checker: Checker,
    pub faults: Faults,
    /// cxid -> fate.
    pub writes: BTreeMap<i32, Fate>,
    next_cxid: i32,
    pub stats: Stats,
    /// `CORRAL_SIM_TRACE=<id>`: print the messages a node sends and receives.
    pub trace: Option<u64>,
    /// Observers draw from their own PRNG (derived from the seed), so the
    /// voters' trajectory of a seed is the same with or without them.
    orng: ChaCha8Rng,
    pub obs_faults: ObsFaults,
    observers: Vec<Observer>,
    /// Feed connections by sub id (unique across every upstream's hub).
    links: BTreeMap<SubId, Link>,
    /// Snapshots being streamed to a feed.
    jobs: Vec<Job>,
    next_sub: SubId,
    /// A hub queued or closed something since the links were last looked at.
    feed_dirty: bool,
    /// When something in flight on a link is next due.
    next_link_ms: u64,
    /// Upstreams whose hubs may have feeds catching up.
    pumping: Vec<Up>,
}

fn brief(m: &Message) -> String {
    let s = format!("{m:?}");
    s.chars().take(160).collect()
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub committed: u64,
    pub elections: u64,
    pub crashes: u64,
    pub snaps_installed: u64,
    pub dropped: u64,
    pub observers: u64,
    /// Txns observers applied from their feeds.
    pub obs_applied: u64,
    /// Feed connections that caught up by DIFF / by SNAP.
    pub obs_diff_catchups: u64,
    pub obs_snap_catchups: u64,
    /// Snapshots observers installed.
    pub obs_snaps: u64,
    /// Snapshot streams abandoned because the upstream's snapshot changed.
    pub obs_snap_failures: u64,
    pub obs_crashes: u64,
    pub feed_cuts: u64,
    /// Feeds an upstream dropped because their queue was full.
    pub slow_disconnects: u64,
    /// The deepest observer chain (1: fed by a voter).
    pub max_chain: u64,
    /// Reconfigs committed.
    pub reconfigs: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.committed += o.committed;
        self.elections += o.elections;
        self.crashes += o.crashes;
        self.snaps_installed += o.snaps_installed;
        self.dropped += o.dropped;
        self.observers += o.observers;
        self.obs_applied += o.obs_applied;
        self.obs_diff_catchups += o.obs_diff_catchups;
        self.obs_snap_catchups += o.obs_snap_catchups;
        self.obs_snaps += o.obs_snaps;
        self.obs_snap_failures += o.obs_snap_failures;
        self.obs_crashes += o.obs_crashes;
        self.feed_cuts += o.feed_cuts;
        self.slow_disconnects += o.slow_disconnects;
        self.max_chain = self.max_chain.max(o.max_chain);
        self.reconfigs += o.reconfigs;
    }
}

impl Cluster {
    pub fn new(seed: u64, n: u64) -> Cluster {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let faults = Faults::swarm(&mut rng);
        let mut orng = feed::observer_rng(seed);
        let obs_faults = ObsFaults::swarm(&mut orng);
        let count = orng.gen_range(0..=3);
        let homes = feed::draw_homes(&mut orng, n as usize, count);
        Cluster::build(seed, n, rng, faults, orng, obs_faults, &homes)
    }

    /// A cluster without faults or random writes (the caller writes), with
    /// observers fed by `homes`: for focused tests.
    pub fn calm(seed: u64, n: u64, snapshot_every: usize, homes: &[Up]) -> Cluster {
        let rng = ChaCha8Rng::seed_from_u64(seed);
        let faults = Faults {
            drop: 0.0,
            dup: 0.0,
            max_delay_ms: 5,
            partition: 0.0,
            crash: 0.0,
            torn: 0.0,
            max_disk_ms: 5,
            write: 0.0,
            snapshot_every,
            reconfig: 0.0,
            spares: 0,
        };
        let orng = feed::observer_rng(seed);
        Cluster::build(seed, n, rng, faults, orng, ObsFaults::calm(), homes)
    }

    fn build(
        seed: u64,
        n: u64,
        rng: ChaCha8Rng,
        faults: Faults,
        orng: ChaCha8Rng,
        obs_faults: ObsFaults,
        homes: &[Up],
    ) -> Cluster {
        let initial: Vec<ServerId> = (1..=n).map(ServerId).collect();
        let all: Vec<ServerId> = (1..=n + faults.spares).map(ServerId).collect();
        let mut c = Cluster {
            seed,
            rng,
            now_ms: 0,
            nodes: Vec::new(),
            initial,
            net: BinaryHeap::new(),
            msgs: Vec::new(),
            seq: 0,
            blocked: BTreeSet::new(),
            checker: Checker::new(Membership::new(Zxid::ZERO, (1..=n).map(ServerId))),
            faults,
            writes: BTreeMap::new(),
            next_cxid: 1,
            stats: Stats::default(),
            trace: std::env::var("CORRAL_SIM_TRACE")
                .ok()
                .and_then(|v| v.parse().ok()),
            orng,
            obs_faults,
            observers: Vec::new(),
            links: BTreeMap::new(),
            jobs: Vec::new(),
            next_sub: 1,
            feed_dirty: false,
            next_link_ms: u64::MAX,
            pumping: Vec::new(),
        };
        for &id in &all {
            let tick = c.rng.gen_range(0..TICK_MS);
            c.nodes.push(Node {
                id,
                core: None,
                disk: Disk {
                    log: MemTxnLog::new(),
                    snapshot: None,
                    pending_snapshot: None,
                },
                fsyncs: VecDeque::new(),
                tree: DataTree::new(),
                history: History::default(),
                next_tick_ms: tick,
                incarnation: 0,
                down_until_ms: None,
                commits_since_snapshot: 0,
                hub: Hub::new(),
                heartbeat: Heartbeat::default(),
            });
        }
        for i in 0..c.nodes.len() {
            c.start(i);
        }
        c.add_observers(homes);
        c
    }

    fn config(&self, i: usize) -> Config {
        let node = &self.nodes[i];
        let seed = self
            .seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(node.id.0 << 20)
            .wrapping_add(node.incarnation);
        // A spare starts as ZooKeeper's joiners do: configured with the
        // ensemble plus itself. It learns the real configuration when it
        // first syncs with a leader.
        let mut voters = self.initial.clone();
        if !voters.contains(&node.id) {
            voters.push(node.id);
        }
        let mut cfg = Config::new(node.id, voters, seed);
        cfg.tick_ms = TICK_MS;
        cfg.committed_log_window = 8;
        cfg.max_in_flight = 64;
        cfg
    }

    fn start(&mut self, i: usize) {
        let cfg = self.config(i);
        let node = &mut self.nodes[i];
        let meta = |k| {
            node.disk
                .log
                .get_meta(k)
                .expect("mem meta")
                .map(|v| u32::from_be_bytes(v.try_into().expect("4-byte epoch")))
                .unwrap_or(0)
        };
        let snapshot = node.disk.snapshot.clone();
        let snap_zxid = snapshot.as_ref().map(|s| s.zxid).unwrap_or(Zxid::ZERO);
        let (accepted_epoch, current_epoch) = (meta(ACCEPTED_KEY), meta(CURRENT_KEY));
        match &snapshot {
            Some(s) => node.restore(s, true),
            None => {
                node.tree = DataTree::new();
                node.history.clear();
            }
        }
        // As the driver reads it from the snapshot: the configuration the
        // last reconfig in the snapshot made.
        let membership = node
            .history
            .entries()
            .iter()
            .rev()
            .find_map(Membership::of_entry);
        let recovered = Recovered {
            accepted_epoch,
            current_epoch,
            log: node
                .disk
                .log
                .read_after(snap_zxid.0)
                .expect("mem log reads"),
            snapshot: snapshot.clone(),
            membership,
            configs: node
                .disk
                .log
                .get_meta(CONFIGS_KEY)
                .expect("mem meta")
                .map(|b| decode_list(&b).expect("sim configs decode"))
                .unwrap_or_default(),
        };
        node.core = Some(Core::new(cfg, recovered, self.now_ms));
        node.down_until_ms = None;
        self.drain(i);
    }

    fn crash(&mut self, i: usize, down_ms: u64) {
        let torn = self.rng.gen_bool(self.faults.torn);
        let node = &mut self.nodes[i];
        if node.core.is_none() {
            return;
        }
        if torn {
            node.disk.log.tear_last();
        }
        node.disk.log.crash();
        node.disk.pending_snapshot = None;
        node.fsyncs.clear();
        node.core = None;
        node.incarnation += 1;
        node.down_until_ms = Some(self.now_ms + down_ms);
        let dead = node.id;
        self.stats.crashes += 1;
        // Its feeds end with the process.
        self.upstream_lost(Up::Voter(i));
        for f in self.writes.values_mut() {
            if matches!(f, Fate::Pending { leader, .. } if *leader == dead) {
                *f = Fate::Maybe;
            }
        }
        // A crashed process's port refuses packets, and a real driver tells
        // the others (sometimes, late, or never: the hint is only a hint).
        for j in 0..self.nodes.len() {
            if j != i && self.rng.gen_bool(0.5) {
                let now = self.now_ms;
                if let Some(c) = self.nodes[j].core.as_mut() {
                    c.handle_peer_down(now, dead);
                }
                self.drain(j);
            }
        }
    }

    /// Drains a node's outputs, checking invariants as they appear.
    fn drain(&mut self, i: usize) {
        loop {
            let Some(out) = self.nodes[i].core.as_mut().and_then(|c| c.poll_output()) else {
                return;
            };
            if let Err(e) = self.on_output(i, out) {
                panic!(
                    "seed {}: invariant broken at {} ms: {e}",
                    self.seed, self.now_ms
                );
            }
        }
    }

    fn on_output(&mut self, i: usize, out: Output) -> Result<(), String> {
        let id = self.nodes[i].id;
        match out {
            Output::Send { to, msg } => self.transmit(id, to, msg),
            Output::Persist { id: pid, ops } => {
                let disk = &mut self.nodes[i].disk;
                for op in ops {
                    match op {
                        PersistOp::AcceptedEpoch(e) => {
                            disk.log.put_meta(ACCEPTED_KEY, &e.to_be_bytes())
                        }
                        PersistOp::CurrentEpoch(e) => {
                            disk.log.put_meta(CURRENT_KEY, &e.to_be_bytes())
                        }
                        PersistOp::Configs(list) => {
                            disk.log.put_meta(CONFIGS_KEY, &encode_list(&list))
                        }
                        PersistOp::Append(es) => disk.log.append(&es),
                        PersistOp::TruncateAfter(z) => disk.log.truncate_after(z.0),
                        PersistOp::InstallSnapshot(s) => {
                            disk.pending_snapshot = Some(s);
                            disk.log.truncate_after(-1)
                        }
                    }
                    .map_err(|e| format!("{id} disk: {e}"))?;
                }
                let lat = self.rng.gen_range(0..=self.faults.max_disk_ms);
                let node = &mut self.nodes[i];
                let at = node
                    .fsyncs
                    .back()
                    .map(|f| f.1)
                    .unwrap_or(0)
                    .max(self.now_ms + lat);
                node.fsyncs.push_back((pid, at));
            }
            Output::Commit(e) => {
                let node = &mut self.nodes[i];
                let prev = node.applied();
                node.tree.apply(&e.hdr, &e.txn);
                node.history.push(e.clone());
                let digest = node.tree.digest();
                self.checker.commit(id, prev, &e, digest)?;
                // As the driver does: feeds get what this node applied.
                if !node.hub.is_empty() {
                    node.hub.publish(std::slice::from_ref(&e));
                    self.feed_dirty = true;
                }
                if let Some(f) = self.writes.get_mut(&e.hdr.cxid) {
                    *f = Fate::Committed;
                }
                node.commits_since_snapshot += 1;
                if node.commits_since_snapshot >= self.faults.snapshot_every {
                    node.commits_since_snapshot = 0;
                    let s = Snapshot {
                        zxid: node.applied(),
                        state: Arc::from(node.history.encoded(node.history.len())),
                    };
                    // The sim's snapshots are durable at once (a written file).
                    node.disk.snapshot = Some(s.clone());
                    let now = self.now_ms;
                    if let Some(c) = node.core.as_mut() {
                        c.handle_snapshot(now, s);
                    }
                }
            }
            Output::InstallSnapshot(s) => {
                self.stats.snaps_installed += 1;
                let node = &mut self.nodes[i];
                node.restore(&s, false);
                node.commits_since_snapshot = 0;
                // The state jumped: every feed resyncs.
                if !node.hub.is_empty() {
                    node.hub.reset_all();
                    self.feed_dirty = true;
                }
                self.checker.snapshot(id, s.zxid, node.tree.digest())?;
            }
            Output::Serving { epoch, leader } => {
                if leader == id {
                    self.checker.leader(epoch, id)?;
                }
            }
            Output::Elected { .. } => self.stats.elections += 1,
            Output::RoleChanged(_) => {}
            Output::Abandoned(zs) => {
                for f in self.writes.values_mut() {
                    if matches!(f, Fate::Pending { leader, zxid } if *leader == id && zs.contains(zxid))
                    {
                        *f = Fate::Maybe;
                    }
                }
            }
        }
        Ok(())
    }

    fn transmit(&mut self, from: ServerId, to: ServerId, msg: Message) {
        if self.blocked.contains(&(from.0, to.0)) || self.rng.gen_bool(self.faults.drop) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if self.rng.gen_bool(self.faults.dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.rng.gen_range(1..=self.faults.max_delay_ms);
            self.seq += 1;
            self.msgs.push(Some(msg.clone()));
            self.net.push(Reverse(InFlight {
                at_ms: self.now_ms + delay,
                seq: self.seq,
                from: from.0,
                to: to.0,
                msg_idx: self.msgs.len() - 1,
            }));
        }
    }

    fn index(&self, id: u64) -> usize {
        (id - 1) as usize
    }

    /// Advances the clock one step.
    pub fn step(&mut self) {
        self.now_ms += STEP_MS;
        let now = self.now_ms;
        while self.net.peek().is_some_and(|m| m.0.at_ms <= now) {
            let Some(Reverse(m)) = self.net.pop() else {
                break;
            };
            let Some(msg) = self.msgs[m.msg_idx].take() else {
                continue;
            };
            let i = self.index(m.to);
            if self.trace == Some(m.to) || self.trace == Some(m.from) {
                eprintln!("{now} {} -> {}: {}", m.from, m.to, brief(&msg));
            }
            if let Some(c) = self.nodes[i].core.as_mut() {
                c.handle_message(now, ServerId(m.from), msg);
                self.drain(i);
            }
        }
        if self.net.is_empty() {
            self.msgs.clear();
        }
        for i in 0..self.nodes.len() {
            self.step_node(i);
        }
        self.check_configs();
        self.feed_step();
        self.faults_step();
        if self.rng.gen_bool(self.faults.write) {
            self.client_write();
        }
    }

    fn step_node(&mut self, i: usize) {
        let now = self.now_ms;
        if let Some(t) = self.nodes[i].down_until_ms {
            if now >= t {
                self.start(i);
            }
            return;
        }
        while let Some(&(pid, at)) = self.nodes[i].fsyncs.front() {
            if at > now {
                break;
            }
            let node = &mut self.nodes[i];
            node.fsyncs.pop_front();
            node.disk.log.sync().expect("mem sync");
            if let Some(s) = node.disk.pending_snapshot.take() {
                node.disk.snapshot = Some(s);
            }
            if let Some(c) = node.core.as_mut() {
                c.handle_persisted(now, pid);
            }
            self.drain(i);
        }
        if now >= self.nodes[i].next_tick_ms {
            self.nodes[i].next_tick_ms = now + TICK_MS;
            if let Some(c) = self.nodes[i].core.as_mut() {
                c.handle_tick(now);
            }
            self.drain(i);
            self.voter_heartbeat(i);
        }
    }

    fn check_configs(&self) {
        for n in &self.nodes {
            let Some(c) = n.core.as_ref().filter(|c| c.serving_epoch().is_some()) else {
                continue;
            };
            if let Err(e) = self
                .checker
                .config(n.id, c.committed_zxid(), c.active_config())
            {
                panic!(
                    "seed {}: invariant broken at {} ms: {e}",
                    self.seed, self.now_ms
                );
            }
        }
    }

    fn faults_step(&mut self) {
        if self.rng.gen_bool(self.faults.partition) {
            self.blocked.clear();
            let n = self.nodes.len() as u64;
            match self.rng.gen_range(0..3) {
                0 => {}
                1 => {
                    // Symmetric: cut the cluster in two.
                    let side: Vec<bool> = (0..n).map(|_| self.rng.gen_bool(0.5)).collect();
                    for a in 1..=n {
                        for b in 1..=n {
                            if side[(a - 1) as usize] != side[(b - 1) as usize] {
                                self.blocked.insert((a, b));
                            }
                        }
                    }
                }
                _ => {
                    // Asymmetric: some one-way links fail.
                    for a in 1..=n {
                        for b in 1..=n {
                            if a != b && self.rng.gen_bool(0.3) {
                                self.blocked.insert((a, b));
                            }
                        }
                    }
                }
            }
        }
        if self.rng.gen_bool(self.faults.crash) {
            let i = self.rng.gen_range(0..self.nodes.len());
            let down = self.rng.gen_range(0..2000);
            self.crash(i, down);
        }
    }

    /// Submits one random write to a leader, if there is one; false when
    /// none took it.
    pub fn client_write(&mut self) -> bool {
        let leaders: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i]
                    .core
                    .as_ref()
                    .is_some_and(|c| c.role() == Role::Leading)
            })
            .collect();
        if leaders.is_empty() {
            return false;
        }
        let i = leaders[self.rng.gen_range(0..leaders.len())];
        let cxid = self.next_cxid;
        let txn = self.random_txn(i, cxid);
        let req = Request {
            session_id: 0,
            cxid,
            time_ms: self.now_ms as i64,
            txn,
        };
        let now = self.now_ms;
        let Some(c) = self.nodes[i].core.as_mut() else {
            return false;
        };
        let took = match c.handle_submit(now, req) {
            Ok(zxid) => {
                self.next_cxid += 1;
                let leader = self.nodes[i].id;
                self.writes.insert(cxid, Fate::Pending { leader, zxid });
                true
            }
            Err(_) => false,
        };
        self.drain(i);
        took
    }

    /// A reconfig to a random non-empty set of the cluster's servers.
    fn random_reconfig(&mut self) -> Txn {
        let ids: Vec<u64> = loop {
            let v: Vec<u64> = self
                .nodes
                .iter()
                .map(|n| n.id.0)
                .filter(|_| self.rng.gen_bool(0.6))
                .collect();
            if !v.is_empty() {
                break v;
            }
        };
        let mut ens = Ensemble::default();
        for id in ids {
            let line = format!("server.{id}=h:{}:{};{}", 1000 + id, 2000 + id, 3000 + id);
            let s = ServerSpec::parse_line(&line).expect("sim spec parses");
            ens.servers.insert(id, s);
        }
        Txn::Reconfig {
            data: ens.to_text().into_bytes(),
        }
    }

    fn random_txn(&mut self, i: usize, cxid: i32) -> Txn {
        if self.rng.gen_bool(self.faults.reconfig) {
            return self.random_reconfig();
        }
        let path = format!("/n{}", self.rng.gen_range(0..16));
        let tree = &self.nodes[i].tree;
        match self.rng.gen_range(0..3) {
            0 => Txn::Create {
                parent_cversion: tree.stat("/").map(|s| s.cversion).unwrap_or(0) + 1,
                path,
                data: Some(cxid.to_be_bytes().to_vec()),
                acl: vec![Acl {
                    perms: corral_proto::opcode::perms::ALL,
                    id: Id {
                        scheme: "world".into(),
                        id: "anyone".into(),
                    },
                }],
                ephemeral_owner: 0,
            },
            1 => Txn::SetData {
                version: tree.stat(&path).map(|s| s.version).unwrap_or(0) + 1,
                path,
                data: Some(cxid.to_be_bytes().to_vec()),
            },
            _ => Txn::Delete { path },
        }
    }

    /// Phase 2: no more faults; every node restarts.
    pub fn heal(&mut self) {
        self.faults = self.faults.healed();
        self.blocked.clear();
        for i in 0..self.nodes.len() {
            if self.nodes[i].core.is_none() {
                self.start(i);
            }
        }
        self.heal_observers();
    }

    /// The established leader a quorum serves under, if any. (As in
    /// ZooKeeper, a learner whose accepted epoch is past the leader's cannot
    /// join until the next election, so liveness is demanded of a quorum.)
    pub fn settled(&self) -> Option<usize> {
        let li = self.nodes.iter().position(|n| {
            n.core
                .as_ref()
                .is_some_and(|c| c.role() == Role::Leading && c.serving_epoch().is_some())
        })?;
        let leader = self.nodes[li].core.as_ref()?;
        let epoch = leader.serving_epoch();
        let config = leader.active_config();
        config
            .has_quorum(|s| {
                self.nodes[self.index(s.0)]
                    .core
                    .as_ref()
                    .and_then(|c| c.serving_epoch())
                    == epoch
            })
            .then_some(li)
    }

    pub fn unresolved(&self) -> usize {
        self.writes
            .values()
            .filter(|f| matches!(f, Fate::Pending { .. }))
            .count()
    }

    /// Every serving node has applied everything committed.
    pub fn converged(&self) -> bool {
        let max = self.checker.max_committed();
        self.nodes
            .iter()
            .filter(|n| n.core.as_ref().and_then(|c| c.serving_epoch()).is_some())
            .all(|n| n.applied() == max)
    }

    pub fn describe(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match &n.core {
                Some(c) => format!(
                    "{}:{:?} e{} last {} committed {} applied {} vote {:?} round {} configs {:?}",
                    n.id,
                    c.role(),
                    c.current_epoch(),
                    c.last_zxid(),
                    c.committed_zxid(),
                    n.applied(),
                    c.vote(),
                    c.election_epoch(),
                    c.configs()
                        .iter()
                        .map(|m| (m.version, m.voters.iter().map(|s| s.0).collect::<Vec<_>>()))
                        .collect::<Vec<_>>()
                ),
                None => format!("{}:down", n.id),
            })
            .collect();
        format!("{nodes:?} observers {}", self.describe_observers())
    }
}
