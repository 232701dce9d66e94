//! ZooKeeper's own per-path quotas under `/zookeeper/quota`: the text
//! format of the `zookeeper_limits` and `zookeeper_stats` nodes (zkCli and the
//! server write them) and their paths. The tree keeps each quota's stats node
//! current on apply ([`crate::DataTree`]); `corral_tenant::zk_quota` decides
//! whether a change fits the limits.
//!
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
//! # Enforcement (facts from ZooKeeper's `ZooKeeperServer.checkQuota`)
//!
//! The quota that applies to a path is that of its longest prefix with a limits
//! node. A create adds count 1 and its data length in bytes; a setData adds the
//! length difference. When the new total is above the limit, a hard limit
//! (`countHardLimit`/`byteHardLimit` > -1, taking precedence over the soft one)
//! refuses with `QuotaExceeded`; a soft limit only warns. A change of zero is
//! never checked, but any other change is judged on the new total, so a setData
//! that shrinks data while the path is still over a hard byte limit is refused
//! too (ZooKeeper's behaviour; deletes are not checked). corral always enforces
//! hard limits (ZooKeeper needs `zookeeper.enforceQuota=true`).

use std::collections::BTreeMap;
use std::fmt;

use corral_proto::ErrorCode;

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

/// A limits or stats text that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid zookeeper quota string {text:?}: {reason}")]
pub struct ZkQuotaFormatError {
    pub text: String,
    pub reason: &'static str,
}

impl ZkQuotaFormatError {
    /// The ZooKeeper error code a client sees.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::BadArguments
    }
}

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
