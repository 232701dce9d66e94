//! Per-tenant hard quotas and the decisions prep and the connection layer take.
//!
//! All limits are hard: a request that would take usage over a limit is refused
//! with `QuotaExceeded` (-125); reaching a limit exactly is allowed. `None`
//! means unlimited. Deletes and closes are never refused.
//!
//! Tree quotas (znodes, data bytes, ephemerals, bytes per znode) must be decided
//! in the leader's prep against its latest state plus the txns already prepped
//! but not yet applied, so two racing creators can never both take the last slot.
//! For a multi, prep threads a scratch [`Usage`] through the sub-ops with
//! [`Usage::after_create`] and friends, checking each step.
//!
//! Usage counts data bytes as the sum of znode data lengths (as ZooKeeper's
//! `bytes` quota does), not names or metadata.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use corral_proto::ErrorCode;

/// A tenant's limits. Every field is optional; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quotas {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_znodes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_data_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ephemerals: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_watches: Option<u64>,
    /// Requests per second, per serving node (a token bucket each).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_rate: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes_per_znode: Option<u64>,
}

/// What a tenant currently uses. Tree counters come from the `DataTree`,
/// sessions from the replicated session table (bound sessions, plus the
/// leader's pending binds), connections and watches from the serving node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub znodes: u64,
    pub data_bytes: u64,
    pub ephemerals: u64,
    pub sessions: u64,
    pub connections: u64,
    pub watches: u64,
}

/// The quota a refused request would have exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaDimension {
    Znodes,
    DataBytes,
    Ephemerals,
    Sessions,
    Connections,
    Watches,
    BytesPerZnode,
    /// A ZooKeeper `/zookeeper/quota` count hard limit.
    ZkCount,
    /// A ZooKeeper `/zookeeper/quota` byte hard limit.
    ZkBytes,
}

impl QuotaDimension {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaDimension::Znodes => "znodes",
            QuotaDimension::DataBytes => "data_bytes",
            QuotaDimension::Ephemerals => "ephemerals",
            QuotaDimension::Sessions => "sessions",
            QuotaDimension::Connections => "connections",
            QuotaDimension::Watches => "watches",
            QuotaDimension::BytesPerZnode => "bytes_per_znode",
            QuotaDimension::ZkCount => "zookeeper_count",
            QuotaDimension::ZkBytes => "zookeeper_bytes",
        }
    }
}

/// A refused request: which quota, its limit, and the usage it would have reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("quota exceeded: {} would be {would_be}, limit {limit}", dimension.as_str())]
pub struct QuotaError {
    pub dimension: QuotaDimension,
    pub limit: u64,
    pub would_be: u64,
}

impl QuotaError {
    /// Always `QuotaExceeded` (-125).
    pub fn code(&self) -> ErrorCode {
        ErrorCode::QuotaExceeded
    }
}

/// Checks that `current + add` stays within `limit`.
pub fn check_limit(
    dimension: QuotaDimension,
    limit: Option<u64>,
    current: u64,
    add: u64,
) -> Result<(), QuotaError> {
    let Some(limit) = limit else { return Ok(()) };
    let would_be = current.saturating_add(add);
    if would_be > limit {
        Err(QuotaError {
            dimension,
            limit,
            would_be,
        })
    } else {
        Ok(())
    }
}

/// A create of a znode with `data_len` bytes, ephemeral or not.
pub fn check_create(
    quotas: &Quotas,
    usage: &Usage,
    data_len: u64,
    ephemeral: bool,
) -> Result<(), QuotaError> {
    check_limit(
        QuotaDimension::BytesPerZnode,
        quotas.max_bytes_per_znode,
        0,
        data_len,
    )?;
    check_limit(QuotaDimension::Znodes, quotas.max_znodes, usage.znodes, 1)?;
    check_limit(
        QuotaDimension::DataBytes,
        quotas.max_data_bytes,
        usage.data_bytes,
        data_len,
    )?;
    if ephemeral {
        check_limit(
            QuotaDimension::Ephemerals,
            quotas.max_ephemerals,
            usage.ephemerals,
            1,
        )?;
    }
    Ok(())
}

/// A setData replacing `old_len` bytes with `new_len`. Shrinking is always fine,
/// even when usage is already over a limit that was lowered afterwards.
pub fn check_set_data(
    quotas: &Quotas,
    usage: &Usage,
    old_len: u64,
    new_len: u64,
) -> Result<(), QuotaError> {
    check_limit(
        QuotaDimension::BytesPerZnode,
        quotas.max_bytes_per_znode,
        0,
        new_len,
    )?;
    if new_len <= old_len {
        return Ok(());
    }
    check_limit(
        QuotaDimension::DataBytes,
        quotas.max_data_bytes,
        usage.data_bytes,
        new_len - old_len,
    )
}

/// A new session bound to the tenant (its bind, in the leader's prep).
pub fn check_session(quotas: &Quotas, usage: &Usage) -> Result<(), QuotaError> {
    check_limit(
        QuotaDimension::Sessions,
        quotas.max_sessions,
        usage.sessions,
        1,
    )
}

/// A new connection bound to the tenant, on the serving node.
pub fn check_connection(quotas: &Quotas, usage: &Usage) -> Result<(), QuotaError> {
    check_limit(
        QuotaDimension::Connections,
        quotas.max_connections,
        usage.connections,
        1,
    )
}

/// Registering `added` new watches (a setWatches may bring many at once). A
/// re-registration of an existing watch adds none.
pub fn check_watches(quotas: &Quotas, usage: &Usage, added: u64) -> Result<(), QuotaError> {
    check_limit(
        QuotaDimension::Watches,
        quotas.max_watches,
        usage.watches,
        added,
    )
}

impl Usage {
    /// Usage after a create, for threading through a multi.
    pub fn after_create(mut self, data_len: u64, ephemeral: bool) -> Usage {
        self.znodes = self.znodes.saturating_add(1);
        self.data_bytes = self.data_bytes.saturating_add(data_len);
        if ephemeral {
            self.ephemerals = self.ephemerals.saturating_add(1);
        }
        self
    }

    /// Usage after a delete. Going below zero is a counting bug: it panics.
    pub fn after_delete(mut self, data_len: u64, ephemeral: bool) -> Usage {
        self.znodes = sub_or_panic(self.znodes, 1, "znodes");
        self.data_bytes = sub_or_panic(self.data_bytes, data_len, "data_bytes");
        if ephemeral {
            self.ephemerals = sub_or_panic(self.ephemerals, 1, "ephemerals");
        }
        self
    }

    /// Usage after a setData from `old_len` to `new_len` bytes.
    pub fn after_set_data(mut self, old_len: u64, new_len: u64) -> Usage {
        self.data_bytes = sub_or_panic(self.data_bytes, old_len, "data_bytes");
        self.data_bytes = self.data_bytes.saturating_add(new_len);
        self
    }
}

fn sub_or_panic(current: u64, sub: u64, what: &str) -> u64 {
    match current.checked_sub(sub) {
        Some(v) => v,
        None => panic!("tenant usage {what} would go negative ({current} - {sub})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_by_default() {
        // Goal: default quotas refuse nothing, even at u64::MAX usage.
        let q = Quotas::default();
        let u = Usage {
            znodes: u64::MAX,
            data_bytes: u64::MAX,
            ephemerals: u64::MAX,
            sessions: u64::MAX,
            connections: u64::MAX,
            watches: u64::MAX,
        };
        assert!(check_create(&q, &u, u64::MAX, true).is_ok());
        assert!(check_set_data(&q, &u, 0, u64::MAX).is_ok());
        assert!(check_session(&q, &u).is_ok());
        assert!(check_connection(&q, &u).is_ok());
        assert!(check_watches(&q, &u, u64::MAX).is_ok());
    }

    #[test]
    fn saturating_never_wraps_into_ok() {
        // Goal: an overflowing sum is still over the limit, never wrapped below it.
        let e = check_limit(QuotaDimension::DataBytes, Some(10), u64::MAX, 2).expect_err("over");
        assert_eq!(e.would_be, u64::MAX);
        assert_eq!(e.code(), ErrorCode::QuotaExceeded);
    }

    #[test]
    fn usage_threads_through_a_multi() {
        // Goal: after_* helpers move usage exactly as the ops would.
        let u = Usage::default()
            .after_create(5, true)
            .after_create(3, false)
            .after_set_data(3, 10)
            .after_delete(5, true);
        assert_eq!(
            u,
            Usage {
                znodes: 1,
                data_bytes: 10,
                ..Usage::default()
            }
        );
    }

    #[test]
    #[should_panic(expected = "would go negative")]
    fn negative_usage_is_a_bug() {
        // Goal: deleting from empty usage crashes loudly instead of wrapping.
        let _ = Usage::default().after_delete(0, false);
    }

    #[test]
    fn quotas_json_omits_unset_limits() {
        // Goal: only set limits are written, and missing ones read back as None.
        let q = Quotas {
            max_znodes: Some(10),
            ..Quotas::default()
        };
        let json = serde_json::to_string(&q).expect("encode");
        assert_eq!(json, r#"{"max_znodes":10}"#);
        assert_eq!(serde_json::from_str::<Quotas>(&json).expect("decode"), q);
        assert_eq!(
            serde_json::from_str::<Quotas>("{}").expect("decode"),
            Quotas::default()
        );
    }
}
