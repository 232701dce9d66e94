//! ZooKeeper's own per-path quotas under `/zookeeper/quota`: where the nodes
//! live and the text their data holds. The tree keeps the stats nodes current
//! on apply ([`crate::DataTree`]); `corral_tenant::zk_quota` decides whether a
//! change fits the limits.
//!
//! # Layout (facts from ZooKeeper's `Quotas`)
//!
//! For a quota on `/app`, zkCli creates `/zookeeper/quota/app/zookeeper_limits`
//! (the limits) and `/zookeeper/quota/app/zookeeper_stats` (the usage, kept by
//! the server). A path may not have a quota if an ancestor or descendant has one.
//!
//! # Format (facts from ZooKeeper's `StatsTrack`)
//!
//! `key=value` pairs of signed 64-bit integers, separated by runs of `,` or `;`.
//! Each pair splits at `=`, ignoring trailing empty parts, so `bytes=5=` reads
//! as `bytes=5`; an empty value (`count==5`) reads as -1. A missing key reads as
//! -1, meaning "no limit". Keys are `count`, `bytes` (soft limits, 3.4 onwards)
//! and `countHardLimit`, `byteHardLimit` (3.7); unknown keys are kept.
//!
//! Written form: `count=<n>,bytes=<n>` always first; if any other key is set,
//! an extra `=` follows (so pre-3.7 parsers ignore the rest), then `;key=value`
//! for each other key in sorted order. zkCli 3.7+ `setquota -n 10 /app` writes
//! `count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=-1`; older zkCli wrote
//! `count=10,bytes=-1`; the stats node reads like `count=1,bytes=0`.
//!
//! # How the tree keeps the stats nodes (facts from ZooKeeper's `DataTree`)
//!
//! A path `P` is a quota root while `/zookeeper/quota<P>/zookeeper_limits`
//! exists (ZooKeeper adds `P` to its `PathTrie` when that node is created and
//! drops it when it is deleted). Every node belongs to its longest prefix that
//! is a quota root, the root itself included (`getMaxPrefixWithQuota`); the
//! root's usage is the number of its nodes (`count`) and the sum of their data
//! lengths (`bytes`). Each create, delete (subtree, ephemeral and session-close
//! removals included) and setData moves the usage of the one root the path
//! belongs to, and the tree rewrites that root's stats node data to
//! `count=<n>,bytes=<n>`, as `updateQuotaStat` does: only the data changes,
//! never mzxid, mtime or version, and no watch fires. Creating a stats node
//! writes the current usage into it (`updateQuotaForPath` recounts), and a
//! tree loaded from a snapshot rebuilds the roots and rewrites every stats
//! node from a recount (`setupQuota`).
//!
//! Where corral is stricter, so that the stats data is a function of the tree
//! (every replica must hold the same bytes at a zxid, and a replica that
//! loaded a snapshot must agree with one that did not):
//! - a root's usage always equals a recount, even with nested roots: creating
//!   or deleting a nested root's limits node moves its nodes' usage between it
//!   and the enclosing root (ZooKeeper leaves the enclosing stats stale until a
//!   restart recounts them, then counts nested subtrees twice);
//! - a stats node always reads as the tree says: its root's usage, or
//!   `count=0,bytes=0` when its path is not a root (no limits node, or the
//!   limits node was deleted). A client's create or setData of a stats node
//!   is overwritten at once (in ZooKeeper it would be the base later changes
//!   add to), and only `count` and `bytes` are written (ZooKeeper keeps other
//!   keys). Anything that depended on the order of past writes (ZooKeeper
//!   keeps a dropped root's last stats) would make a replica that replayed
//!   the log over a fuzzy snapshot disagree with one that did not;
//! - `/zookeeper`, `/zookeeper/quota` and paths below `/zookeeper/quota` are
//!   never quota roots, so no stats rewrite is ever counted by another quota;
//!   `/` is not one either, as in ZooKeeper;
//! - the tree's approximate data size follows the rewrites (ZooKeeper's
//!   counter drifts until a restart).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use corral_proto::ErrorCode;

/// A limits or stats text that ZooKeeper's parser would throw on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid zookeeper quota string {text:?}: {reason}")]
pub struct ZkQuotaFormatError {
    pub text: String,
    pub reason: &'static str,
}

impl ZkQuotaFormatError {
    /// What a client sees: `BadArguments`.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::BadArguments
    }
}

/// `/zookeeper/quota`.
pub const QUOTA_ROOT: &str = "/zookeeper/quota";
/// Name of the limits node under a quota path.
pub const LIMIT_NODE: &str = "zookeeper_limits";
/// Name of the stats node under a quota path.
pub const STAT_NODE: &str = "zookeeper_stats";

const COUNT: &str = "count";
const BYTES: &str = "bytes";
const COUNT_HARD: &str = "countHardLimit";
const BYTES_HARD: &str = "byteHardLimit";

/// The data of a `zookeeper_limits` or `zookeeper_stats` node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTrack {
    stats: BTreeMap<String, i64>,
}

impl StatsTrack {
    /// Parses node data; empty data is an empty track (every value -1).
    pub fn parse(text: &str) -> Result<StatsTrack, ZkQuotaFormatError> {
        let bad = |reason| ZkQuotaFormatError {
            text: text.to_string(),
            reason,
        };
        let mut stats = BTreeMap::new();
        if text.is_empty() {
            return Ok(StatsTrack { stats });
        }
        let mut pairs: Vec<&str> = text.split([',', ';']).collect();
        // A run of separators is one separator; trailing ones vanish (Java's split).
        while pairs.last() == Some(&"") {
            pairs.pop();
        }
        for (i, pair) in pairs.iter().enumerate() {
            if pair.is_empty() {
                if i == 0 {
                    return Err(bad("leading separator"));
                }
                continue;
            }
            let mut parts: Vec<&str> = pair.split('=').collect();
            while parts.last() == Some(&"") {
                parts.pop();
            }
            let (key, value) = match parts.as_slice() {
                [key, value, ..] => (*key, *value),
                _ => return Err(bad("a pair lacks '=value'")),
            };
            let value = if value.is_empty() {
                -1
            } else {
                parse_long(value).ok_or_else(|| bad("a value is not a 64-bit integer"))?
            };
            stats.insert(key.to_string(), value);
        }
        Ok(StatsTrack { stats })
    }

    /// Parses node data bytes (UTF-8).
    pub fn parse_bytes(data: &[u8]) -> Result<StatsTrack, ZkQuotaFormatError> {
        match std::str::from_utf8(data) {
            Ok(s) => StatsTrack::parse(s),
            Err(_) => Err(ZkQuotaFormatError {
                text: String::from_utf8_lossy(data).into_owned(),
                reason: "not UTF-8",
            }),
        }
    }

    /// A stats-node value: `count=<count>,bytes=<bytes>`.
    pub fn stats(count: i64, bytes: i64) -> StatsTrack {
        let mut t = StatsTrack::default();
        t.set_count(count);
        t.set_bytes(bytes);
        t
    }

    /// What zkCli 3.7+ `setquota` writes: all four keys, -1 unless given.
    pub fn limits(
        count: Option<i64>,
        bytes: Option<i64>,
        count_hard: Option<i64>,
        bytes_hard: Option<i64>,
    ) -> StatsTrack {
        let mut t = StatsTrack::default();
        t.set_count(count.unwrap_or(-1));
        t.set_bytes(bytes.unwrap_or(-1));
        t.set_count_hard_limit(count_hard.unwrap_or(-1));
        t.set_byte_hard_limit(bytes_hard.unwrap_or(-1));
        t
    }

    pub fn count(&self) -> i64 {
        self.get(COUNT)
    }
    pub fn bytes(&self) -> i64 {
        self.get(BYTES)
    }
    pub fn count_hard_limit(&self) -> i64 {
        self.get(COUNT_HARD)
    }
    pub fn byte_hard_limit(&self) -> i64 {
        self.get(BYTES_HARD)
    }
    pub fn set_count(&mut self, v: i64) {
        self.stats.insert(COUNT.into(), v);
    }
    pub fn set_bytes(&mut self, v: i64) {
        self.stats.insert(BYTES.into(), v);
    }
    pub fn set_count_hard_limit(&mut self, v: i64) {
        self.stats.insert(COUNT_HARD.into(), v);
    }
    pub fn set_byte_hard_limit(&mut self, v: i64) {
        self.stats.insert(BYTES_HARD.into(), v);
    }

    /// Any key's value, -1 if absent.
    pub fn get(&self, key: &str) -> i64 {
        self.stats.get(key).copied().unwrap_or(-1)
    }

    /// The node data as ZooKeeper writes it.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for StatsTrack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{COUNT}={},{BYTES}={}", self.count(), self.bytes())?;
        let mut rest = self
            .stats
            .iter()
            .filter(|(k, _)| k.as_str() != COUNT && k.as_str() != BYTES)
            .peekable();
        if rest.peek().is_some() {
            f.write_str("=")?;
        }
        // BTreeMap iterates in sorted key order, as ZooKeeper sorts them.
        for (k, v) in rest {
            write!(f, ";{k}={v}")?;
        }
        Ok(())
    }
}

/// `/zookeeper/quota<path>/zookeeper_limits`.
pub fn limit_path(path: &str) -> String {
    format!("{QUOTA_ROOT}{path}/{LIMIT_NODE}")
}

/// `/zookeeper/quota<path>/zookeeper_stats`.
pub fn stat_path(path: &str) -> String {
    format!("{QUOTA_ROOT}{path}/{STAT_NODE}")
}

/// The quota path candidates for `path`, longest first: the path itself, then
/// each ancestor, excluding `/`. The first with a limits node is the one that
/// applies (ZooKeeper's `getMaxPrefixWithQuota`).
pub fn quota_prefixes(path: &str) -> impl Iterator<Item = &str> {
    let mut next = (path != "/" && path.starts_with('/')).then_some(path);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current.rfind('/') {
            Some(0) | None => None,
            Some(i) => Some(&current[..i]),
        };
        Some(current)
    })
}

/// Whether `path` may carry a quota: an absolute path other than `/` that is
/// neither an ancestor of `/zookeeper/quota` nor inside it (see the module
/// docs).
pub fn is_quota_path(path: &str) -> bool {
    let within = |root: &str, p: &str| {
        p.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    path.starts_with('/') && path != "/" && !within(path, QUOTA_ROOT) && !within(QUOTA_ROOT, path)
}

/// The quota root whose limits node `path` is, if it is one.
pub fn limits_owner(path: &str) -> Option<&str> {
    owner_of(path, LIMIT_NODE)
}

/// The quota path whose stats node `path` is, if it is one.
pub fn stats_owner(path: &str) -> Option<&str> {
    owner_of(path, STAT_NODE)
}

fn owner_of<'a>(path: &'a str, node: &str) -> Option<&'a str> {
    let p = path
        .strip_prefix(QUOTA_ROOT)?
        .strip_suffix(node)?
        .strip_suffix('/')?;
    is_quota_path(p).then_some(p)
}

/// What the nodes of one quota root use: ZooKeeper's stats `count` and `bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZkQuotaUsage {
    pub count: u64,
    pub bytes: u64,
}

impl ZkQuotaUsage {
    pub(crate) fn add(&mut self, o: ZkQuotaUsage) {
        self.count += o.count;
        self.bytes += o.bytes;
    }

    /// Going below zero means a node left that was never counted: a
    /// bookkeeping bug that would let writes past a hard limit. Crash.
    pub(crate) fn sub(&mut self, o: ZkQuotaUsage) {
        self.count = self
            .count
            .checked_sub(o.count)
            .expect("quota count below 0");
        self.bytes = self
            .bytes
            .checked_sub(o.bytes)
            .expect("quota bytes below 0");
    }

    pub(crate) fn node(data_len: usize) -> ZkQuotaUsage {
        ZkQuotaUsage {
            count: 1,
            bytes: data_len as u64,
        }
    }

    /// The stats node data: `count=<n>,bytes=<n>`.
    pub fn to_stats(self) -> StatsTrack {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        StatsTrack::stats(clamp(self.count), clamp(self.bytes))
    }
}

/// The quota roots and their usage, plus the quota paths whose stats node
/// the current apply must rewrite. Derived from the tree; not in snapshots.
#[derive(Debug, Default)]
pub(crate) struct QuotaIndex {
    pub(crate) roots: HashMap<String, ZkQuotaUsage>,
    pub(crate) dirty: Vec<String>,
}

impl QuotaIndex {
    /// The longest prefix of `path` (itself included) that is a root.
    pub(crate) fn root_of<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.roots.is_empty() {
            return None;
        }
        quota_prefixes(path).find(|p| self.roots.contains_key(*p))
    }

    /// Adds `delta` (or takes it away) from the root `path` belongs to.
    pub(crate) fn charge(&mut self, path: &str, delta: ZkQuotaUsage, add: bool) {
        let Some(root) = self.root_of(path) else {
            return;
        };
        let root = root.to_string();
        if let Some(u) = self.roots.get_mut(&root) {
            if add {
                u.add(delta);
            } else {
                u.sub(delta);
            }
        }
        self.mark(root);
    }

    pub(crate) fn mark(&mut self, root: String) {
        if !self.dirty.contains(&root) {
            self.dirty.push(root);
        }
    }
}

/// Java's `Long.parseLong`: optional sign, then ASCII digits, in range.
fn parse_long(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_stats_nodes_name_their_quota_path() {
        // Goal: only /zookeeper/quota<P>/zookeeper_{limits,stats} with an eligible P name a quota.
        assert_eq!(
            limits_owner("/zookeeper/quota/app/zookeeper_limits"),
            Some("/app")
        );
        assert_eq!(
            stats_owner("/zookeeper/quota/a/b/zookeeper_stats"),
            Some("/a/b")
        );
        assert_eq!(limits_owner("/zookeeper/quota/app/zookeeper_stats"), None);
        assert_eq!(
            limits_owner("/zookeeper/quota/zookeeper_limits"),
            None,
            "not /"
        );
        assert_eq!(limits_owner("/zookeeper/quotax/a/zookeeper_limits"), None);
        assert_eq!(limits_owner("/zookeeper/quota/appzookeeper_limits"), None);
        assert_eq!(
            limits_owner("/zookeeper/quota/zookeeper/zookeeper_limits"),
            None
        );
        assert_eq!(
            limits_owner("/zookeeper/quota/zookeeper/quota/x/zookeeper_limits"),
            None
        );
        assert_eq!(
            limits_owner("/zookeeper/quota/zookeeper/config/zookeeper_limits"),
            Some("/zookeeper/config")
        );
        for bad in [
            "",
            "/",
            "/zookeeper",
            "/zookeeper/quota",
            "/zookeeper/quota/a",
            "a",
        ] {
            assert!(!is_quota_path(bad), "{bad:?}");
        }
        for good in [
            "/a",
            "/zookeeperx",
            "/zookeeper/quotax",
            "/zookeeper/config",
        ] {
            assert!(is_quota_path(good), "{good:?}");
        }
    }

    #[test]
    fn quota_prefixes_longest_first() {
        // Goal: candidates run from the path up to its top segment, never "/".
        let v: Vec<&str> = quota_prefixes("/a/b/c").collect();
        assert_eq!(v, ["/a/b/c", "/a/b", "/a"]);
        assert_eq!(quota_prefixes("/").count(), 0);
        assert_eq!(quota_prefixes("").count(), 0);
    }

    #[test]
    fn parse_long_like_java() {
        // Goal: signs are accepted, junk and overflow are not.
        assert_eq!(parse_long("+5"), Some(5));
        assert_eq!(parse_long("-1"), Some(-1));
        assert_eq!(parse_long("9223372036854775807"), Some(i64::MAX));
        for bad in ["", "+", "-", "1.0", " 1", "9223372036854775808", "0x10"] {
            assert_eq!(parse_long(bad), None, "{bad:?}");
        }
    }
}
