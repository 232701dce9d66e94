//! The crate's error type and its mapping to ZooKeeper error codes.

use corral_proto::ErrorCode;
use thiserror::Error;

use crate::quota::QuotaError;

/// Why a tenant-admin change, a registry load, or a tenant decision was refused.
///
/// Messages name the tenant and the offending value so `corral cli tenant …` can
/// print them as is. They never carry password hashes, and they are meant for the
/// operator: the server must not forward them to a tenant-bound client, since they
/// may name another tenant's root.
#[derive(Debug, Error)]
pub enum TenantError {
    #[error("invalid tenant name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid root {root:?} for tenant {tenant:?}: {reason}")]
    InvalidRoot {
        tenant: String,
        root: String,
        reason: String,
    },
    /// Namespaces must be disjoint, or one tenant could see into another.
    #[error("root {root:?} of tenant {tenant:?} overlaps root {other_root:?} of tenant {other:?}")]
    OverlappingRoot {
        tenant: String,
        root: String,
        other: String,
        other_root: String,
    },
    #[error("invalid binding in tenant {tenant:?}: {reason}")]
    InvalidBinding { tenant: String, reason: String },
    /// The same identity would bind to two tenants (or twice to one).
    #[error("binding {binding} of tenant {tenant:?} is already used by tenant {other:?}")]
    ConflictingBinding {
        tenant: String,
        other: String,
        binding: String,
    },
    #[error("invalid {list} entry {cidr:?} in tenant {tenant:?}: not an address or CIDR range")]
    InvalidCidr {
        tenant: String,
        list: &'static str,
        cidr: String,
    },
    /// A named bound (tenants, bindings, CIDRs) would be exceeded.
    #[error("too many {what} (at most {max})")]
    TooMany { what: &'static str, max: usize },
    #[error("tenant {0:?} already exists")]
    Exists(String),
    #[error("no tenant {0:?}")]
    NoSuchTenant(String),
    /// The namespace root of an existing tenant cannot move: its data lives there.
    #[error("tenant {tenant:?}: root cannot change from {old:?} to {new:?}; delete and recreate")]
    RootChange {
        tenant: String,
        old: String,
        new: String,
    },
    #[error("tenant record {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Quota(#[from] QuotaError),
    #[error("request rate limit reached")]
    Throttled,
}

impl TenantError {
    /// The ZooKeeper error code a client (or the admin CLI) sees for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            TenantError::Exists(_) => ErrorCode::NodeExists,
            TenantError::NoSuchTenant(_) => ErrorCode::NoNode,
            TenantError::Json { .. } => ErrorCode::MarshallingError,
            TenantError::Quota(_) => ErrorCode::QuotaExceeded,
            TenantError::Throttled => ErrorCode::ThrottledOp,
            TenantError::InvalidName { .. }
            | TenantError::InvalidRoot { .. }
            | TenantError::OverlappingRoot { .. }
            | TenantError::InvalidBinding { .. }
            | TenantError::ConflictingBinding { .. }
            | TenantError::InvalidCidr { .. }
            | TenantError::TooMany { .. }
            | TenantError::RootChange { .. } => ErrorCode::BadArguments,
        }
    }
}
