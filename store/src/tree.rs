//! The `DataTree`: znodes, sessions, and the deterministic `apply` of txns.
//!
//! Znodes live in an arena (`Vec<Option<Node>>`) addressed by `u32`. A node
//! stores its own name (the last path segment) but never its path, and its
//! children as a set of arena indices in name order (`ChildSet`), so a path
//! is stored once, spread over its segments. Lookups walk the path segment by
//! segment from the root.
//!
//! `apply` follows ZooKeeper 3.8's `DataTree.processTxn`, including the rules
//! that make replay over a fuzzy snapshot converge:
//! - a create that finds the node already there still raises the parent's
//!   cversion/pzxid (if the txn's value is greater) and reports `NodeExists`;
//! - a delete raises the parent's pzxid (if greater) even when the node is
//!   already gone, and reports `NoNode`;
//! - a delete that finds children (only possible in replay: the snapshot
//!   caught a later incarnation) removes the whole subtree; the later creates
//!   in the log rebuild it;
//! - a `CloseSession` deletes what the session owned *according to the log*:
//!   a snapshot records each session's ephemeral paths at its start, and
//!   paths it then missed (or caught re-created by another owner) are kept as
//!   replay-only "ghosts" so the close still deletes them / raises their
//!   parents' pzxid, as ZooKeeper's explicit `CloseSessionTxn` paths do.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use corral_proto::opcode::perms;
use corral_proto::{Acl, ErrorCode, Stat};

use crate::children::{malloc_chunk, ChildSet};
use crate::digest;
use crate::node::{AclRef, Modified, Node, NodeKind};
use crate::path::{join, name, parent, validate_path};
use crate::txn::{Txn, TxnHeader};
use crate::usage::{NamespaceUsage, UsageIndex};
use crate::zk_quota::{self, QuotaIndex, ZkQuotaUsage};

const ROOT: u32 = 0;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEntry {
    pub timeout_ms: i32,
    pub passwd: Vec<u8>,
    /// The tenant the session is bound to ([`Txn::BindSession`]); once set,
    /// it never changes while the session lives.
    pub tenant: Option<String>,
}

impl SessionEntry {
    fn digest_part(&self, id: i64) -> u64 {
        digest::session_part(id, self.timeout_ms, &self.passwd, self.tenant.as_deref())
    }
}

/// What a watch on a path should hear about. `Deleted` fires both data and
/// child watches on the path (as ZooKeeper does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TriggerKind {
    Created,
    Deleted,
    DataChanged,
    ChildrenChanged,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    pub path: String,
    pub kind: TriggerKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created {
        path: String,
        stat: Stat,
    },
    Deleted,
    SetData {
        stat: Stat,
    },
    SetAcl {
        stat: Stat,
    },
    Checked,
    SessionCreated,
    /// `BindSession` recorded the session's tenant (or found it already there).
    SessionBound,
    SessionClosed {
        deleted: Vec<String>,
    },
    /// `Txn::Error`, or a replayed txn that found the tree already changed.
    Error(i32),
    Multi(Vec<Outcome>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub outcome: Outcome,
    pub triggers: Vec<Trigger>,
}

/// The persisted fields of a znode, as snapshots carry them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PersistedStat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub owner: i64,
    pub pzxid: i64,
}

impl PersistedStat {
    pub(crate) fn of(n: &Node) -> Self {
        let m = n.modified();
        PersistedStat {
            czxid: n.czxid,
            mzxid: m.mzxid,
            ctime: n.ctime,
            mtime: m.mtime,
            version: m.version,
            cversion: n.cversion,
            aversion: n.aversion,
            owner: n.raw_owner(),
            pzxid: n.pzxid,
        }
    }

    /// A childless node with these fields.
    fn node(&self, name: &str, data: Option<&[u8]>, acl: AclRef) -> Node {
        Node::with_fields(
            name,
            data,
            acl,
            self.owner,
            self.czxid,
            self.ctime,
            self.pzxid,
            Modified {
                mzxid: self.mzxid,
                mtime: self.mtime,
                version: self.version,
            },
            self.cversion,
            self.aversion,
        )
    }
}

/// An interned ACL list, found by its contents.
struct AclKey(AclRef);

impl Borrow<[Acl]> for AclKey {
    fn borrow(&self) -> &[Acl] {
        &self.0
    }
}

impl Hash for AclKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        <[Acl]>::hash(&self.0, h)
    }
}

impl PartialEq for AclKey {
    fn eq(&self, other: &Self) -> bool {
        **self.0 == **other.0
    }
}

impl Eq for AclKey {}

pub struct DataTree {
    nodes: Vec<Option<Node>>,
    free: Vec<u32>,
    acls: HashSet<AclKey>,
    ephemerals: BTreeMap<i64, BTreeSet<String>>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    sessions: BTreeMap<i64, SessionEntry>,
    /// Live sessions bound to each tenant (derived from `sessions`; a tenant
    /// with none is absent).
    tenant_sessions: BTreeMap<String, u64>,
    /// Replay-only ownership overrides: path -> the session that owns it per
    /// the log, where the node loaded from a fuzzy snapshot is missing or is a
    /// later incarnation with another owner. A replayed `CloseSession` must
    /// delete exactly what the session owned at that zxid (ZooKeeper's
    /// `CloseSessionTxn` lists the paths for the same reason), else txns meant
    /// for the old incarnation stick to the new one. Empty outside replay and
    /// once replay has caught up; not part of the digest.
    ghosts: BTreeMap<String, i64>,
    node_count: usize,
    data_size: u64,
    last_zxid: i64,
    digest: u64,
    /// Per-namespace usage counters (derived; see [`crate::usage`]).
    usage: UsageIndex,
    /// `/zookeeper/config`'s data at the start of the snapshot this tree was
    /// loaded from, if it had one (see [`DataTree::snapshot_config`]).
    snapshot_config: Option<Vec<u8>>,
    /// ZooKeeper's path quotas and their usage (derived; see [`crate::zk_quota`]).
    zk_quota: QuotaIndex,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for DataTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataTree")
            .field("nodes", &self.node_count)
            .field("sessions", &self.sessions.len())
            .field("last_zxid", &format_args!("{:#x}", self.last_zxid))
            .field("digest", &format_args!("{:#018x}", self.digest))
            .finish()
    }
}

/// ZooKeeper's `approximateDataSize` term for one node. The root is in
/// ZooKeeper's map twice (as "" and "/"), hence `1 + 2 * data`.
fn size_term(path: &str, data_len: usize) -> u64 {
    if path == "/" {
        1 + 2 * data_len as u64
    } else {
        path.encode_utf16().count() as u64 + data_len as u64
    }
}

fn err(code: ErrorCode) -> Outcome {
    Outcome::Error(code.code())
}

impl DataTree {
    /// A fresh tree as standalone ZooKeeper 3.8 starts: `/`, `/zookeeper`,
    /// `/zookeeper/quota` (world:anyone ALL) and `/zookeeper/config`
    /// (world:anyone READ, aversion -1), all with zero stats. The client
    /// cversion of `/` is -1 and of `/zookeeper` -2 (ZooKeeper's
    /// `2 * cversion - numChildren` with no recorded creates).
    pub fn new() -> Self {
        let mut t = Self::empty_root();
        let open = t.intern(&Acl::open_unsafe());
        let read = t.intern(&[Acl::new(perms::READ, "world", "anyone")]);
        let zk = t.attach(
            ROOT,
            Node::new("zookeeper", Some(&[]), open.clone(), 0, 0, 0),
        );
        t.attach(zk, Node::new("quota", Some(&[]), open, 0, 0, 0));
        let config = t.attach(zk, Node::new("config", Some(&[]), read, 0, 0, 0));
        t.node_mut(config).aversion = -1;
        t.finish_load(0);
        t
    }

    /// Only the root, with zero stats and an open ACL; for snapshot loading.
    pub(crate) fn empty_root() -> Self {
        let mut t = DataTree {
            nodes: Vec::new(),
            free: Vec::new(),
            acls: HashSet::new(),
            ephemerals: BTreeMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            sessions: BTreeMap::new(),
            tenant_sessions: BTreeMap::new(),
            ghosts: BTreeMap::new(),
            node_count: 1,
            data_size: 0,
            last_zxid: 0,
            digest: 0,
            usage: UsageIndex::default(),
            snapshot_config: None,
            zk_quota: QuotaIndex::default(),
        };
        let open = t.intern(&Acl::open_unsafe());
        t.nodes.push(Some(Node::new("", Some(&[]), open, 0, 0, 0)));
        t
    }

    // ---- reads ----

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.lookup(path).map(|i| self.node(i))
    }

    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.get(path).map(Node::stat)
    }

    /// Child names in byte order.
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        self.get(path).map(|n| {
            n.children
                .as_ref()
                .map(|c| c.iter().map(|i| self.node(i).name().to_string()).collect())
                .unwrap_or_default()
        })
    }

    pub fn child_count(&self, path: &str) -> Option<usize> {
        self.get(path).map(Node::num_children)
    }

    /// ZooKeeper's `getAllChildrenNumber`: every node below `path` (for `/`
    /// that includes the `/zookeeper` subtree), not counting `path`.
    pub fn descendant_count(&self, path: &str) -> Option<usize> {
        let idx = self.lookup(path)?;
        if idx == ROOT {
            return Some(self.node_count - 1);
        }
        let mut count = 0;
        let mut stack = vec![idx];
        while let Some(i) = stack.pop() {
            if let Some(c) = &self.node(i).children {
                count += c.len();
                stack.extend(c.iter());
            }
        }
        Some(count)
    }

    /// The session's ephemeral paths, sorted.
    pub fn ephemerals(&self, session_id: i64) -> Vec<String> {
        self.ephemerals
            .get(&session_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn all_ephemerals(&self) -> BTreeMap<i64, Vec<String>> {
        self.ephemerals
            .iter()
            .map(|(k, v)| (*k, v.iter().cloned().collect()))
            .collect()
    }

    /// ZooKeeper's `ContainerManager` rule: containers with no children that
    /// have had at least one (persisted cversion > 0). Sorted.
    pub fn container_candidates(&self) -> Vec<String> {
        self.containers
            .iter()
            .filter(|p| {
                self.get(p)
                    .is_some_and(|n| n.num_children() == 0 && n.cversion > 0)
            })
            .cloned()
            .collect()
    }

    /// TTL nodes with no children whose `now - mtime > ttl` (ZooKeeper rule). Sorted.
    pub fn ttl_candidates(&self, now_ms: i64) -> Vec<String> {
        self.ttls
            .iter()
            .filter(|p| {
                self.get(p).is_some_and(|n| match n.kind() {
                    NodeKind::Ttl(ttl) => {
                        n.num_children() == 0
                            && ttl != 0
                            && now_ms.saturating_sub(n.modified().mtime) > ttl
                    }
                    _ => false,
                })
            })
            .cloned()
            .collect()
    }

    pub fn sessions(&self) -> &BTreeMap<i64, SessionEntry> {
        &self.sessions
    }

    /// The tenant `session_id` is bound to, if it is live and bound.
    pub fn session_tenant(&self, session_id: i64) -> Option<&str> {
        self.sessions.get(&session_id)?.tenant.as_deref()
    }

    /// Live sessions bound to `tenant`: maintained by every apply and load,
    /// always equal to [`count_tenant_sessions`](Self::count_tenant_sessions).
    pub fn tenant_session_count(&self, tenant: &str) -> u64 {
        self.tenant_sessions.get(tenant).copied().unwrap_or(0)
    }

    /// The maintained per-tenant session counts (tenants with none absent).
    pub fn tenant_session_counts(&self) -> &BTreeMap<String, u64> {
        &self.tenant_sessions
    }

    /// Counts the bound sessions per tenant by walking the session table:
    /// the recount the maintained counts must always equal.
    pub fn count_tenant_sessions(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for t in self.sessions.values().filter_map(|s| s.tenant.as_ref()) {
            *counts.entry(t.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Number of znodes including `/`. ZooKeeper's `zk_znode_count` (mntr) is
    /// one more: its map holds the root under both "" and "/".
    pub fn node_count(&self) -> usize {
        self.node_count
    }

    /// ZooKeeper's `approximateDataSize`: path lengths (UTF-16 units) plus data
    /// lengths over its node map (where the root appears as "" and "/").
    pub fn approximate_data_size(&self) -> u64 {
        self.data_size
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Order-independent digest of every node's path, data, ACL and persisted
    /// stat, plus the session table. Maintained incrementally; O(1).
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The digest computed from scratch (for tests and consistency checks).
    pub fn recompute_digest(&self) -> u64 {
        let mut d = 0u64;
        self.for_each_node(|path, n| d = d.wrapping_add(Self::node_digest(path, n)));
        for (id, s) in &self.sessions {
            d = d.wrapping_add(s.digest_part(*id));
        }
        d
    }

    /// Visits every node depth-first, parents before children, siblings in
    /// byte order.
    pub fn for_each_node(&self, mut f: impl FnMut(&str, &Node)) {
        let mut stack = vec![("/".to_string(), ROOT)];
        while let Some((path, idx)) = stack.pop() {
            let n = self.node(idx);
            f(&path, n);
            if let Some(c) = &n.children {
                for ci in c.iter().rev() {
                    stack.push((join(&path, self.node(ci).name()), ci));
                }
            }
        }
    }

    // ---- ensemble configuration ----

    /// The data of `/zookeeper/config` (empty until a reconfig commits).
    pub fn config_data(&self) -> Option<&[u8]> {
        self.get(crate::ensemble::CONFIG_NODE)
            .and_then(|n| n.data())
    }

    /// `/zookeeper/config`'s data as of the start zxid of the snapshot this
    /// tree was loaded from, when a reconfig had committed by then. Unlike
    /// the node itself, which a fuzzy snapshot may show newer, this is exact.
    pub fn snapshot_config(&self) -> Option<&[u8]> {
        self.snapshot_config.as_deref()
    }

    // ---- usage per namespace root ----

    /// Makes `roots` the namespace roots whose usage is counted (see
    /// [`crate::usage`]). Roots already registered keep their counters; new
    /// ones are counted once from the tree, dropped ones forgotten. Roots must
    /// be pairwise disjoint and must not be `/`.
    pub fn set_usage_roots<I, S>(&mut self, roots: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut next = std::collections::HashMap::new();
        for root in roots {
            let root: String = root.into();
            assert!(root != "/", "the whole tree is not a usage root");
            let usage = match self.usage.roots.remove(&root) {
                Some(u) => u,
                None => self.count_usage(&root),
            };
            next.insert(root, usage);
        }
        self.usage.roots = next;
    }

    /// The maintained counters of a registered root.
    pub fn usage(&self, root: &str) -> Option<NamespaceUsage> {
        self.usage.roots.get(root).copied()
    }

    /// The registered roots, in no particular order.
    pub fn usage_roots(&self) -> Vec<String> {
        self.usage.roots.keys().cloned().collect()
    }

    /// Counts what the nodes strictly below `root` use, by walking them: the
    /// recount that [`usage`](Self::usage) must always equal. Zero when `root`
    /// does not exist.
    pub fn count_usage(&self, root: &str) -> NamespaceUsage {
        let mut u = NamespaceUsage::default();
        let Some(idx) = self.lookup(root) else {
            return u;
        };
        let mut stack: Vec<u32> = Vec::new();
        if let Some(c) = &self.node(idx).children {
            stack.extend(c.iter());
        }
        while let Some(i) = stack.pop() {
            let n = self.node(i);
            u.add(n.data_len(), matches!(n.kind(), NodeKind::Ephemeral(_)));
            if let Some(c) = &n.children {
                stack.extend(c.iter());
            }
        }
        u
    }

    // ---- ZooKeeper path quotas ----

    /// The quota roots (paths with a `zookeeper_limits` node), sorted.
    pub fn zk_quota_roots(&self) -> Vec<String> {
        let mut v: Vec<String> = self.zk_quota.roots.keys().cloned().collect();
        v.sort_unstable();
        v
    }

    /// The maintained usage of a quota root, which its stats node shows.
    pub fn zk_quota_usage(&self, root: &str) -> Option<ZkQuotaUsage> {
        self.zk_quota.roots.get(root).copied()
    }

    /// The quota root `path` belongs to: its longest prefix (itself
    /// included) with a limits node (ZooKeeper's `getMaxPrefixWithQuota`).
    pub fn zk_quota_root_of<'p>(&self, path: &'p str) -> Option<&'p str> {
        self.zk_quota.root_of(path)
    }

    /// Counts what the nodes of `root` use by walking them: its subtree, the
    /// root node included, minus the subtrees of other roots below it. The
    /// recount [`zk_quota_usage`](Self::zk_quota_usage) must always equal.
    pub fn count_zk_quota(&self, root: &str) -> ZkQuotaUsage {
        let mut u = ZkQuotaUsage::default();
        let Some(idx) = self.lookup(root) else {
            return u;
        };
        let nested = self.zk_quota.roots.keys().any(|r| {
            r.len() > root.len() && r.starts_with(root) && r[root.len()..].starts_with('/')
        });
        let mut stack = vec![(root.to_string(), idx)];
        while let Some((path, i)) = stack.pop() {
            if path != root && nested && self.zk_quota.roots.contains_key(&path) {
                continue;
            }
            let n = self.node(i);
            u.add(ZkQuotaUsage::node(n.data_len()));
            if let Some(c) = &n.children {
                for ci in c.iter() {
                    // Paths are only needed to recognise nested roots.
                    let p = if nested {
                        join(&path, self.node(ci).name())
                    } else {
                        String::new()
                    };
                    stack.push((p, ci));
                }
            }
        }
        u
    }

    /// A node was created: a limits node makes a root, a stats node gets its
    /// root's usage (zero without a root), any other node counts for its root.
    fn quota_created(&mut self, path: &str, data_len: usize) {
        if let Some(root) = zk_quota::limits_owner(path) {
            self.add_quota_root(root);
        } else if let Some(root) = zk_quota::stats_owner(path) {
            self.zk_quota.mark(root.to_string());
        } else {
            self.zk_quota
                .charge(path, ZkQuotaUsage::node(data_len), true);
        }
    }

    /// A setData: the bytes move, and a client's write to a stats node is
    /// replaced by what the tree says (see [`crate::zk_quota`]).
    fn quota_data_changed(&mut self, path: &str, old_len: usize, new_len: usize) {
        if let Some(root) = zk_quota::stats_owner(path) {
            self.zk_quota.mark(root.to_string());
            return;
        }
        let bytes = |b: usize| ZkQuotaUsage {
            count: 0,
            bytes: b as u64,
        };
        self.zk_quota.charge(path, bytes(new_len), true);
        self.zk_quota.charge(path, bytes(old_len), false);
    }

    /// `root` gets a limits node: its nodes stop counting for the enclosing
    /// root, if any.
    fn add_quota_root(&mut self, root: &str) {
        let enclosing = self.enclosing_quota_root(root);
        let usage = self.count_zk_quota(root);
        self.zk_quota.roots.insert(root.to_string(), usage);
        self.zk_quota.mark(root.to_string());
        if let Some(e) = enclosing {
            if let Some(u) = self.zk_quota.roots.get_mut(&e) {
                u.sub(usage);
            }
            self.zk_quota.mark(e);
        }
    }

    /// `root` lost its limits node: its nodes count for the enclosing root,
    /// if any, and its stats node, if still there, reads zero.
    fn drop_quota_root(&mut self, root: &str) {
        let Some(usage) = self.zk_quota.roots.remove(root) else {
            return;
        };
        self.zk_quota.mark(root.to_string());
        if let Some(e) = self.enclosing_quota_root(root) {
            if let Some(u) = self.zk_quota.roots.get_mut(&e) {
                u.add(usage);
            }
            self.zk_quota.mark(e);
        }
    }

    /// The longest proper prefix of `root` that is a root.
    fn enclosing_quota_root(&self, root: &str) -> Option<String> {
        zk_quota::quota_prefixes(root)
            .skip(1)
            .find(|p| self.zk_quota.roots.contains_key(*p))
            .map(str::to_string)
    }

    /// Rewrites the stats nodes of the quota paths the current apply
    /// touched: a root's usage, or zero for a path that is not a root.
    fn write_quota_stats(&mut self) {
        if self.zk_quota.dirty.is_empty() {
            return;
        }
        for root in std::mem::take(&mut self.zk_quota.dirty) {
            let usage = self.zk_quota.roots.get(&root).copied().unwrap_or_default();
            let path = zk_quota::stat_path(&root);
            if let Some(idx) = self.lookup(&path) {
                self.rewrite_data(idx, &path, &usage.to_stats().to_bytes());
            }
        }
    }

    /// Replaces a node's data as the server itself does it: no new mzxid,
    /// mtime or version, no watch.
    fn rewrite_data(&mut self, idx: u32, path: &str, data: &[u8]) {
        if self.node(idx).data() == Some(data) {
            return;
        }
        let old = digest::data_part(path, self.node(idx).data());
        let new = digest::data_part(path, Some(data));
        self.digest = self.digest.wrapping_sub(old).wrapping_add(new);
        let old_len = self.node(idx).data_len();
        self.data_size = self.data_size - size_term(path, old_len) + size_term(path, data.len());
        if let Some(u) = self.usage.for_path(path) {
            u.data_bytes = (u.data_bytes + data.len() as u64)
                .checked_sub(old_len as u64)
                .expect("usage: data bytes below 0");
        }
        let modified = self.node(idx).modified();
        self.node_mut(idx).set_data(Some(data), modified);
    }

    /// Finds every root from the limits nodes under `/zookeeper/quota` and
    /// rewrites every stats node from a recount, as ZooKeeper's
    /// `setupQuota` does after loading a snapshot.
    pub(crate) fn rebuild_zk_quotas(&mut self) {
        let mut roots = Vec::new();
        let mut stats = Vec::new();
        if let Some(q) = self.lookup(zk_quota::QUOTA_ROOT) {
            let mut stack = vec![(zk_quota::QUOTA_ROOT.to_string(), q)];
            while let Some((path, i)) = stack.pop() {
                if let Some(root) = zk_quota::limits_owner(&path) {
                    roots.push(root.to_string());
                } else if let Some(root) = zk_quota::stats_owner(&path) {
                    stats.push(root.to_string());
                }
                if let Some(c) = &self.node(i).children {
                    stack.extend(c.iter().map(|ci| (join(&path, self.node(ci).name()), ci)));
                }
            }
        }
        self.zk_quota = QuotaIndex::default();
        for root in &roots {
            self.zk_quota
                .roots
                .insert(root.clone(), ZkQuotaUsage::default());
        }
        for root in roots {
            let usage = self.count_zk_quota(&root);
            self.zk_quota.roots.insert(root, usage);
        }
        for root in stats {
            self.zk_quota.mark(root);
        }
        self.write_quota_stats();
    }

    // ---- apply ----

    /// Applies one txn deterministically and sets `last_zxid = hdr.zxid`.
    ///
    /// Panics unless `hdr.zxid > last_zxid()`: applying out of order is a
    /// programmer error. Replay after loading a snapshot needs no exception,
    /// because a loaded tree's `last_zxid` is the snapshot's start zxid and
    /// replay starts after it; txns the fuzzy snapshot already contains are
    /// absorbed by the idempotent rules (see the module docs).
    pub fn apply(&mut self, hdr: &TxnHeader, txn: &Txn) -> Applied {
        assert!(
            hdr.zxid > self.last_zxid,
            "txn zxid {:#x} applied after {:#x}",
            hdr.zxid,
            self.last_zxid
        );
        let mut triggers = Vec::new();
        let outcome = match txn {
            Txn::Multi(subs) => self.apply_multi(hdr, subs, &mut triggers),
            t => self.apply_one(hdr, t, &mut triggers),
        };
        self.write_quota_stats();
        self.last_zxid = hdr.zxid;
        Applied { outcome, triggers }
    }

    fn apply_multi(
        &mut self,
        hdr: &TxnHeader,
        subs: &[Txn],
        triggers: &mut Vec<Trigger>,
    ) -> Outcome {
        let failed = subs
            .iter()
            .any(|t| matches!(t, Txn::Error(_) | Txn::Multi(_)));
        if !failed {
            return Outcome::Multi(
                subs.iter()
                    .map(|t| self.apply_one(hdr, t, triggers))
                    .collect(),
            );
        }
        // ZooKeeper: ops before the first error report 0, error ops their own
        // code, later ops RuntimeInconsistency; nothing is applied.
        let mut seen = false;
        Outcome::Multi(
            subs.iter()
                .map(|t| match t {
                    Txn::Error(code) => {
                        seen = true;
                        Outcome::Error(*code)
                    }
                    Txn::Multi(_) => {
                        seen = true;
                        err(ErrorCode::RuntimeInconsistency)
                    }
                    _ if seen => err(ErrorCode::RuntimeInconsistency),
                    _ => err(ErrorCode::Ok),
                })
                .collect(),
        )
    }

    fn apply_one(&mut self, hdr: &TxnHeader, txn: &Txn, triggers: &mut Vec<Trigger>) -> Outcome {
        match txn {
            Txn::CreateSession { timeout_ms, passwd } => {
                self.put_session(
                    hdr.session_id,
                    SessionEntry {
                        timeout_ms: *timeout_ms,
                        passwd: passwd.clone(),
                        tenant: None,
                    },
                );
                Outcome::SessionCreated
            }
            Txn::BindSession { tenant } => self.bind_session(hdr.session_id, tenant),
            Txn::CloseSession => {
                let mut deleted = Vec::new();
                let mut paths = self.ephemerals(hdr.session_id);
                if !self.ghosts.is_empty() {
                    let sid = hdr.session_id;
                    paths.extend(
                        self.ghosts
                            .iter()
                            .filter(|g| *g.1 == sid)
                            .map(|g| g.0.clone()),
                    );
                    paths.sort_unstable();
                    paths.dedup();
                }
                for path in paths {
                    if self.delete(hdr.zxid, &path, triggers) == Outcome::Deleted {
                        deleted.push(path);
                    }
                }
                self.remove_session(hdr.session_id);
                Outcome::SessionClosed { deleted }
            }
            Txn::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
            } => self.create(
                hdr,
                path,
                data.as_deref(),
                acl,
                *ephemeral_owner,
                *parent_cversion,
                triggers,
            ),
            Txn::Delete { path } => self.delete(hdr.zxid, path, triggers),
            Txn::SetData {
                path,
                data,
                version,
            } => self.set_data(hdr, path, data.as_deref(), *version, triggers),
            Txn::SetAcl { path, acl, version } => self.set_acl(path, acl, *version),
            Txn::Check { .. } => Outcome::Checked,
            Txn::Reconfig { data } => {
                self.set_data(hdr, crate::ensemble::CONFIG_NODE, Some(data), -1, triggers)
            }
            Txn::Error(code) => Outcome::Error(*code),
            Txn::Multi(_) => err(ErrorCode::RuntimeInconsistency),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        hdr: &TxnHeader,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        owner: i64,
        parent_cversion: i32,
        triggers: &mut Vec<Trigger>,
    ) -> Outcome {
        if path == "/" || validate_path(path, false).is_err() {
            return err(ErrorCode::BadArguments);
        }
        let (ppath, cname) = (parent(path), name(path));
        let Some(pidx) = self.lookup(ppath) else {
            return err(ErrorCode::NoNode);
        };
        let zxid = hdr.zxid;
        if let Some(existing) = self.child_of(pidx, cname) {
            if let NodeKind::Ephemeral(sid) = NodeKind::from_owner(owner) {
                if self.node(existing).raw_owner() != owner {
                    self.ghosts.insert(path.to_string(), sid);
                }
            }
            self.update_meta(pidx, ppath, |p| raise_cversion(p, parent_cversion, zxid));
            return err(ErrorCode::NodeExists);
        }
        if !self.ghosts.is_empty() {
            self.ghosts.remove(path);
        }
        let acl = self.intern(acl);
        let node = Node::new(cname, data, acl, owner, zxid, hdr.time_ms);
        let stat = node.stat();
        self.digest = self.digest.wrapping_add(Self::node_digest(path, &node));
        self.data_size += size_term(path, data.map_or(0, |d| d.len()));
        let ephemeral = matches!(NodeKind::from_owner(owner), NodeKind::Ephemeral(_));
        if let Some(u) = self.usage.for_path(path) {
            u.add(data.map_or(0, |d| d.len()), ephemeral);
        }
        let cidx = self.alloc(node);
        let before = digest::meta_part(ppath, self.node(pidx));
        raise_cversion(self.node_mut(pidx), parent_cversion, zxid);
        let linked = self.link(pidx, cidx);
        debug_assert!(linked, "{path} was absent");
        let after = digest::meta_part(ppath, self.node(pidx));
        self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
        self.register(path, owner);
        self.quota_created(path, data.map_or(0, |d| d.len()));
        triggers.push(Trigger {
            path: path.to_string(),
            kind: TriggerKind::Created,
        });
        triggers.push(Trigger {
            path: ppath.to_string(),
            kind: TriggerKind::ChildrenChanged,
        });
        Outcome::Created {
            path: path.to_string(),
            stat,
        }
    }

    fn delete(&mut self, zxid: i64, path: &str, triggers: &mut Vec<Trigger>) -> Outcome {
        if path == "/" || validate_path(path, false).is_err() {
            return err(ErrorCode::BadArguments);
        }
        if !self.ghosts.is_empty() {
            self.ghosts.remove(path);
        }
        let (ppath, cname) = (parent(path), name(path));
        let Some(pidx) = self.lookup(ppath) else {
            return err(ErrorCode::NoNode);
        };
        // ZooKeeper raises the parent's pzxid even if the child is already gone.
        let before = digest::meta_part(ppath, self.node(pidx));
        let removed = self.unlink(pidx, cname);
        let p = self.node_mut(pidx);
        if zxid > p.pzxid {
            p.pzxid = zxid;
        }
        let after = digest::meta_part(ppath, self.node(pidx));
        self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
        let Some(cidx) = removed else {
            return err(ErrorCode::NoNode);
        };
        self.remove_subtree(path, cidx, triggers);
        triggers.push(Trigger {
            path: ppath.to_string(),
            kind: TriggerKind::ChildrenChanged,
        });
        Outcome::Deleted
    }

    /// Frees `idx` and everything below it (already unlinked from its parent).
    fn remove_subtree(&mut self, path: &str, idx: u32, triggers: &mut Vec<Trigger>) {
        // Quota roots whose limits node goes; dropped once every node removed
        // has been taken from the usage of the root it belonged to.
        let mut dropped_roots = Vec::new();
        let mut stack = vec![(path.to_string(), idx)];
        while let Some((p, i)) = stack.pop() {
            let node = self.nodes[i as usize].take().expect("live znode slot");
            self.free.push(i);
            self.node_count -= 1;
            self.digest = self.digest.wrapping_sub(Self::node_digest(&p, &node));
            self.data_size -= size_term(&p, node.data_len());
            let ephemeral = matches!(node.kind(), NodeKind::Ephemeral(_));
            if let Some(u) = self.usage.for_path(&p) {
                u.sub(node.data_len(), ephemeral);
            }
            match zk_quota::limits_owner(&p) {
                Some(root) => dropped_roots.push(root.to_string()),
                None => self
                    .zk_quota
                    .charge(&p, ZkQuotaUsage::node(node.data_len()), false),
            }
            self.unregister(&p, node.raw_owner());
            if let Some(c) = &node.children {
                for ci in c.iter() {
                    stack.push((join(&p, self.node(ci).name()), ci));
                }
            }
            self.release(node.acl);
            triggers.push(Trigger {
                path: p,
                kind: TriggerKind::Deleted,
            });
        }
        for root in dropped_roots {
            self.drop_quota_root(&root);
        }
    }

    fn set_data(
        &mut self,
        hdr: &TxnHeader,
        path: &str,
        data: Option<&[u8]>,
        version: i32,
        triggers: &mut Vec<Trigger>,
    ) -> Outcome {
        let Some(idx) = self.lookup(path) else {
            return err(ErrorCode::NoNode);
        };
        let old = digest::data_part(path, self.node(idx).data());
        let new = digest::data_part(path, data);
        self.digest = self.digest.wrapping_sub(old).wrapping_add(new);
        let old_len = self.node(idx).data_len();
        let new_len = data.map_or(0, |d| d.len());
        self.data_size = self.data_size - size_term(path, old_len) + size_term(path, new_len);
        if let Some(u) = self.usage.for_path(path) {
            u.data_bytes = (u.data_bytes + new_len as u64)
                .checked_sub(old_len as u64)
                .expect("usage: data bytes below 0");
        }
        self.quota_data_changed(path, old_len, new_len);
        self.update_meta(idx, path, |n| {
            n.set_data(
                data,
                Modified {
                    mzxid: hdr.zxid,
                    mtime: hdr.time_ms,
                    version,
                },
            )
        });
        triggers.push(Trigger {
            path: path.to_string(),
            kind: TriggerKind::DataChanged,
        });
        Outcome::SetData {
            stat: self.node(idx).stat(),
        }
    }

    fn set_acl(&mut self, path: &str, acl: &[Acl], version: i32) -> Outcome {
        let Some(idx) = self.lookup(path) else {
            return err(ErrorCode::NoNode);
        };
        let new = self.intern(acl);
        let old = std::mem::replace(&mut self.node_mut(idx).acl, new);
        self.digest = self
            .digest
            .wrapping_sub(digest::acl_part(path, &old))
            .wrapping_add(digest::acl_part(path, acl));
        self.release(old);
        self.update_meta(idx, path, |n| n.aversion = version);
        Outcome::SetAcl {
            stat: self.node(idx).stat(),
        }
    }

    fn put_session(&mut self, id: i64, entry: SessionEntry) {
        self.digest = self.digest.wrapping_add(entry.digest_part(id));
        self.count_tenant_session(entry.tenant.as_deref(), true);
        if let Some(old) = self.sessions.insert(id, entry) {
            self.forget_session(id, &old);
        }
    }

    fn remove_session(&mut self, id: i64) {
        if let Some(old) = self.sessions.remove(&id) {
            self.forget_session(id, &old);
        }
    }

    /// Takes a session that left the table out of the digest and counts.
    fn forget_session(&mut self, id: i64, old: &SessionEntry) {
        self.digest = self.digest.wrapping_sub(old.digest_part(id));
        self.count_tenant_session(old.tenant.as_deref(), false);
    }

    fn count_tenant_session(&mut self, tenant: Option<&str>, add: bool) {
        let Some(t) = tenant else {
            return;
        };
        if add {
            *self.tenant_sessions.entry(t.to_string()).or_insert(0) += 1;
            return;
        }
        let n = self
            .tenant_sessions
            .get_mut(t)
            .expect("tenant sessions: count below 0");
        *n -= 1;
        if *n == 0 {
            self.tenant_sessions.remove(t);
        }
    }

    /// Records `id`'s tenant. A missing session is `SessionExpired` and a
    /// session bound to another tenant `AuthFailed`, changing nothing (prep
    /// refuses both first; apply must still decide the same on every replica).
    fn bind_session(&mut self, id: i64, tenant: &str) -> Outcome {
        let Some(entry) = self.sessions.get(&id) else {
            return err(ErrorCode::SessionExpired);
        };
        match entry.tenant.as_deref() {
            Some(t) if t == tenant => Outcome::SessionBound,
            Some(_) => err(ErrorCode::AuthFailed),
            None => {
                let mut bound = entry.clone();
                bound.tenant = Some(tenant.to_string());
                self.put_session(id, bound);
                Outcome::SessionBound
            }
        }
    }

    // ---- internals ----

    pub(crate) fn lookup(&self, path: &str) -> Option<u32> {
        if path == "/" {
            return Some(ROOT);
        }
        let rest = path.strip_prefix('/')?;
        let mut idx = ROOT;
        for seg in rest.split('/') {
            idx = self.child_of(idx, seg)?;
        }
        Some(idx)
    }

    /// The arena, for name lookups in child sets.
    pub(crate) fn arena(&self) -> &[Option<Node>] {
        &self.nodes
    }

    pub(crate) fn node(&self, idx: u32) -> &Node {
        self.nodes[idx as usize].as_ref().expect("live znode slot")
    }

    fn node_mut(&mut self, idx: u32) -> &mut Node {
        self.nodes[idx as usize].as_mut().expect("live znode slot")
    }

    pub(crate) fn child_of(&self, idx: u32, name: &str) -> Option<u32> {
        self.node(idx)
            .children
            .as_ref()?
            .get(name.as_bytes(), self.nodes.as_slice())
    }

    /// Adds `child` (already in the arena) to `parent`'s children; false if
    /// a child of that name is there already.
    fn link(&mut self, parent: u32, child: u32) -> bool {
        let mut set = self.node_mut(parent).children.take().unwrap_or_default();
        let linked = set.insert(child, self.nodes.as_slice());
        self.node_mut(parent).children = Some(set);
        linked
    }

    /// Removes the child called `name` from `parent`'s children.
    fn unlink(&mut self, parent: u32, name: &str) -> Option<u32> {
        let mut set = self.node_mut(parent).children.take()?;
        let removed = set.remove(name.as_bytes(), self.nodes.as_slice());
        if !set.is_empty() {
            self.node_mut(parent).children = Some(set);
        }
        removed
    }

    fn node_digest(path: &str, n: &Node) -> u64 {
        Self::node_data_acl_digest(path, n).wrapping_add(digest::meta_part(path, n))
    }

    /// The digest parts of a node that do not depend on its children.
    fn node_data_acl_digest(path: &str, n: &Node) -> u64 {
        digest::data_part(path, n.data()).wrapping_add(digest::acl_part(path, n.acl()))
    }

    /// Mutates a node, keeping the digest's meta part in step.
    fn update_meta(&mut self, idx: u32, path: &str, f: impl FnOnce(&mut Node)) {
        let before = digest::meta_part(path, self.node(idx));
        f(self.node_mut(idx));
        let after = digest::meta_part(path, self.node(idx));
        self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
    }

    fn alloc(&mut self, node: Node) -> u32 {
        self.node_count += 1;
        match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = Some(node);
                i
            }
            None => {
                let i = u32::try_from(self.nodes.len()).expect("more than 2^32 znodes");
                self.nodes.push(Some(node));
                i
            }
        }
    }

    /// Links a node under `parent` without digest bookkeeping (construction;
    /// `finish_load` recomputes).
    fn attach(&mut self, parent: u32, node: Node) -> u32 {
        let idx = self.alloc(node);
        let linked = self.link(parent, idx);
        assert!(linked, "duplicate child");
        idx
    }

    /// The shared handle for this ACL list.
    pub(crate) fn intern(&mut self, acl: &[Acl]) -> AclRef {
        if let Some(a) = self.acls.get(acl) {
            return a.0.clone();
        }
        let a: AclRef = Arc::new(acl.into());
        self.acls.insert(AclKey(a.clone()));
        a
    }

    /// Drops a node's ACL handle, forgetting the list once nothing uses it.
    fn release(&mut self, acl: AclRef) {
        if Arc::strong_count(&acl) <= 2 {
            self.acls.remove(&**acl);
        }
    }

    fn register(&mut self, path: &str, owner: i64) {
        match NodeKind::from_owner(owner) {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral(s) => {
                self.ephemerals
                    .entry(s)
                    .or_default()
                    .insert(path.to_string());
            }
            NodeKind::Container => {
                self.containers.insert(path.to_string());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(path.to_string());
            }
        }
    }

    fn unregister(&mut self, path: &str, owner: i64) {
        match NodeKind::from_owner(owner) {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral(s) => {
                if let Some(set) = self.ephemerals.get_mut(&s) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&s);
                    }
                }
            }
            NodeKind::Container => {
                self.containers.remove(path);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(path);
            }
        }
    }

    // ---- snapshot loading ----

    /// Ghost ephemerals still awaiting their delete in replay (see `ghosts`).
    #[doc(hidden)]
    pub fn pending_ghosts(&self) -> usize {
        self.ghosts.len()
    }

    /// Rebuilds everything derived (indexes, sizes, digest) after
    /// construction, or after a load that met nodes out of depth-first order.
    pub(crate) fn finish_load(&mut self, last_zxid: i64) {
        let mut kinds = Vec::new();
        let mut size = 0u64;
        self.for_each_node(|path, n| {
            size += size_term(path, n.data_len());
            if n.raw_owner() != 0 {
                kinds.push((path.to_string(), n.raw_owner()));
            }
        });
        for (path, owner) in kinds {
            self.register(&path, owner);
        }
        self.data_size = size;
        self.finish_common(last_zxid);
        self.digest = self.recompute_digest();
        self.rebuild_zk_quotas();
    }

    /// Keeps the ghosts that the loaded tree does not already account for.
    fn finish_common(&mut self, last_zxid: i64) {
        let ghosts = std::mem::take(&mut self.ghosts);
        self.ghosts = ghosts
            .into_iter()
            .filter(|(path, sid)| self.get(path).is_none_or(|n| n.raw_owner() != *sid))
            .collect();
        self.tenant_sessions = self.count_tenant_sessions();
        self.last_zxid = last_zxid;
    }

    /// Estimated heap and arena bytes by part (glibc rounding), for
    /// measuring memory per znode (`examples/footprint.rs`).
    #[doc(hidden)]
    pub fn memory_breakdown(&self) -> Vec<(&'static str, usize)> {
        let mut blobs = 0;
        let mut sets = 0;
        for n in self.nodes.iter().flatten() {
            blobs += n.blob_heap_bytes();
            if let Some(c) = &n.children {
                sets += malloc_chunk(std::mem::size_of::<ChildSet>()) + c.heap_bytes();
            }
        }
        let acls = self
            .acls
            .iter()
            .map(|a| malloc_chunk(16 + a.0.len() * std::mem::size_of::<Acl>()) + 32)
            .sum();
        vec![
            (
                "arena (nodes.capacity() x size_of::<Option<Node>>())",
                self.nodes.capacity() * std::mem::size_of::<Option<Node>>(),
            ),
            ("name+data+owner blocks", blobs),
            ("children sets", sets),
            (
                "free list",
                self.free.capacity() * std::mem::size_of::<u32>(),
            ),
            ("interned ACL lists (structs only)", acls),
        ]
    }
}

#[cfg(test)]
thread_local! {
    /// Whether this thread's last `Loader::finish` took the slow path.
    pub(crate) static LAST_LOAD_SLOW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Builds a tree from snapshot records.
///
/// `write_fuzzy_snapshot` writes nodes depth-first, parents first, siblings
/// in byte order, so the loader keeps the path from the root to the last
/// node on a stack: a node's parent is found by popping, never by a lookup
/// from the root, and it joins its siblings with one comparison (an
/// append). Digest, data size and the kind indexes are accumulated on the
/// way; a node's meta part is added when it leaves the stack, once all its
/// children are in. A file in any other parents-first order still loads,
/// through lookups and a full recount at the end.
pub(crate) struct Loader {
    tree: DataTree,
    /// (index, path length) of the last node loaded and its ancestors; each
    /// path is a prefix of `path`. The root stays at the bottom.
    stack: Vec<(u32, usize)>,
    path: String,
    /// Digest parts so far: data and ACL parts as `add_digest` brings them,
    /// meta parts of non-root nodes as they pop.
    digest: u64,
    size: u64,
    /// Set once a node came out of depth-first order: `finish` recounts.
    slow: bool,
    /// Whether a root record replaced the default root.
    root_loaded: bool,
}

impl Loader {
    pub(crate) fn new() -> Loader {
        Loader {
            tree: DataTree::empty_root(),
            stack: vec![(ROOT, 1)],
            path: "/".to_string(),
            digest: 0,
            size: 0,
            slow: false,
            root_loaded: false,
        }
    }

    /// Adds digest parts computed elsewhere: the data and ACL parts of the
    /// nodes loaded (see `load_snapshot`), which `node` does not compute.
    pub(crate) fn add_digest(&mut self, parts: u64) {
        self.digest = self.digest.wrapping_add(parts);
    }

    /// Makes `finish` recompute the digest, sizes and indexes from scratch.
    pub(crate) fn recount(&mut self) {
        self.slow = true;
    }

    pub(crate) fn intern(&mut self, acl: &[Acl]) -> AclRef {
        self.tree.intern(acl)
    }

    pub(crate) fn session(&mut self, id: i64, entry: SessionEntry) {
        self.tree.sessions.insert(id, entry);
    }

    /// Records the tenant of a session already loaded.
    pub(crate) fn session_tenant(&mut self, id: i64, tenant: String) -> Result<(), String> {
        let entry = self
            .tree
            .sessions
            .get_mut(&id)
            .ok_or_else(|| format!("tenant of unknown session {id:#x}"))?;
        if entry.tenant.is_some() {
            return Err(format!("second tenant for session {id:#x}"));
        }
        entry.tenant = Some(tenant);
        Ok(())
    }

    /// Records that `session` owned the ephemeral `path` when the snapshot
    /// started; `finish` keeps it as a ghost unless the loaded node is
    /// still that session's.
    pub(crate) fn start_ephemeral(&mut self, session: i64, path: String) {
        self.tree.ghosts.insert(path, session);
    }

    pub(crate) fn start_config(&mut self, data: Vec<u8>) {
        self.tree.snapshot_config = Some(data);
    }

    /// The path of the top of the stack.
    fn top_path(&self) -> &str {
        &self.path[..self.stack[self.stack.len() - 1].1]
    }

    fn pop(&mut self) {
        if let Some((idx, len)) = self.stack.pop() {
            let part = digest::meta_part(&self.path[..len], self.tree.node(idx));
            self.digest = self.digest.wrapping_add(part);
        }
    }

    /// Adds a node; its parent must already be loaded.
    pub(crate) fn node(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: AclRef,
        ps: &PersistedStat,
    ) -> Result<(), String> {
        let t = &mut self.tree;
        if path == "/" {
            let node = ps.node("", data, acl);
            let old = std::mem::replace(t.node_mut(ROOT), node);
            t.node_mut(ROOT).children = old.children;
            t.release(old.acl);
            // A second root record would count twice in the digest parts.
            self.slow |= self.root_loaded;
            self.root_loaded = true;
            return Ok(());
        }
        let invalid = || format!("invalid path {path:?}");
        let cut = path.rfind('/').ok_or_else(invalid)?;
        let (ppath, cname) = (if cut == 0 { "/" } else { &path[..cut] }, &path[cut + 1..]);
        // "/a/" and "//a" would otherwise pass as a child of "/a" and "/".
        if cname.is_empty() || (cut != 0 && ppath == "/") {
            return Err(invalid());
        }
        while self.stack.len() > 1 && self.top_path() != ppath {
            self.pop();
        }
        let pidx = if self.top_path() == ppath {
            // The parent's path is valid (it is loaded): checking the last
            // segment checks the whole path.
            validate_path(&path[cut..], false).map_err(|_| invalid())?;
            self.stack[self.stack.len() - 1].0
        } else {
            self.slow = true;
            validate_path(path, false).map_err(|_| invalid())?;
            self.tree
                .lookup(ppath)
                .ok_or_else(|| format!("{path:?} precedes its parent"))?
        };
        let t = &mut self.tree;
        let cidx = t.alloc(ps.node(cname, data, acl));
        if !t.link(pidx, cidx) {
            return Err(format!("duplicate node {path:?}"));
        }
        self.size += size_term(path, data.map_or(0, <[u8]>::len));
        if ps.owner != 0 {
            t.register(path, ps.owner);
        }
        self.path.clear();
        self.path.push_str(path);
        self.stack.push((cidx, path.len()));
        Ok(())
    }

    /// The loaded tree at `last_zxid`, with its digest and indexes.
    pub(crate) fn finish(mut self, last_zxid: i64) -> DataTree {
        while self.stack.len() > 1 {
            self.pop();
        }
        #[cfg(test)]
        LAST_LOAD_SLOW.with(|c| c.set(self.slow));
        let mut t = self.tree;
        if self.slow {
            t.finish_load(last_zxid);
            return t;
        }
        let root = t.node(ROOT);
        let mut d = self.digest.wrapping_add(digest::meta_part("/", root));
        if !self.root_loaded {
            d = d.wrapping_add(DataTree::node_data_acl_digest("/", root));
        }
        for (id, s) in &t.sessions {
            d = d.wrapping_add(s.digest_part(*id));
        }
        t.data_size = self.size + size_term("/", root.data_len());
        t.digest = d;
        t.finish_common(last_zxid);
        debug_assert_eq!(t.digest, t.recompute_digest());
        t.rebuild_zk_quotas();
        t
    }
}

/// ZooKeeper's `setCversionPzxid` rule: `-1` means "one more"; only a larger
/// value moves cversion, and pzxid moves with it.
fn raise_cversion(p: &mut Node, parent_cversion: i32, zxid: i64) {
    let cv = if parent_cversion == -1 {
        p.cversion.wrapping_add(1)
    } else {
        parent_cversion
    };
    if cv > p.cversion {
        p.cversion = cv;
        p.pzxid = zxid;
    }
}
