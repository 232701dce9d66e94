//! ZooKeeper's own per-path quotas under `/zookeeper/quota`, with 3.7's
//! hard-limit semantics: the decision whether a change fits. The node layout
//! and the text format ([`StatsTrack`]) are `corral_store::zk_quota`'s
//! (re-exported here), since the tree keeps the stats nodes.
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

use crate::quota::{QuotaDimension, QuotaError};

pub use corral_store::zk_quota::{
    limit_path, quota_prefixes, stat_path, StatsTrack, ZkQuotaFormatError, LIMIT_NODE, QUOTA_ROOT,
    STAT_NODE,
};

/// Outcome of checking one change against a ZooKeeper path quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZkQuotaOutcome {
    Ok,
    /// Over a soft limit: ZooKeeper logs a warning and lets the write through.
    SoftExceeded {
        dimension: QuotaDimension,
        limit: i64,
        would_be: i64,
    },
}

/// Checks a change of `count_diff` znodes and `bytes_diff` bytes under the
/// quota whose limits node holds `limits` and stats node `stats`. Hard limits
/// refuse with [`QuotaError`] (code `QuotaExceeded`); soft ones only report.
pub fn check_zk_quota(
    limits: &StatsTrack,
    stats: &StatsTrack,
    count_diff: i64,
    bytes_diff: i64,
) -> Result<ZkQuotaOutcome, QuotaError> {
    let count = check_one(
        QuotaDimension::ZkCount,
        limits.count(),
        limits.count_hard_limit(),
        stats.count(),
        count_diff,
    )?;
    let bytes = check_one(
        QuotaDimension::ZkBytes,
        limits.bytes(),
        limits.byte_hard_limit(),
        stats.bytes(),
        bytes_diff,
    )?;
    Ok(if count != ZkQuotaOutcome::Ok {
        count
    } else {
        bytes
    })
}

fn check_one(
    dimension: QuotaDimension,
    soft: i64,
    hard: i64,
    current: i64,
    diff: i64,
) -> Result<ZkQuotaOutcome, QuotaError> {
    if diff == 0 || (soft < 0 && hard < 0) {
        return Ok(ZkQuotaOutcome::Ok);
    }
    let would_be = current.saturating_add(diff);
    let (limit, is_hard) = if hard > -1 {
        (hard, true)
    } else {
        (soft, false)
    };
    if would_be <= limit {
        return Ok(ZkQuotaOutcome::Ok);
    }
    if is_hard {
        Err(QuotaError {
            dimension,
            limit: limit.max(0) as u64,
            would_be: would_be.max(0) as u64,
        })
    } else {
        Ok(ZkQuotaOutcome::SoftExceeded {
            dimension,
            limit,
            would_be,
        })
    }
}
