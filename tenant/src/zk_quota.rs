//! ZooKeeper's per-path quotas (`/zookeeper/quota`), checked: whether a
//! change fits a quota's hard limits (3.7 semantics, always enforced in
//! corral). The text format and paths live in [`corral_store::zk_quota`],
//! re-exported here; the tree keeps the stats nodes current.

pub use corral_store::zk_quota::*;

use crate::quota::{QuotaDimension, QuotaError};

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
