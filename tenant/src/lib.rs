//! `corral-tenant`: tenants as a server-enforced boundary.
//!
//! A tenant is a team's namespace on shared infrastructure: a name, a root
//! znode (default `/tenants/<name>`), the identities that bind a session to it,
//! hard quotas, and IP allow/deny rules. This crate holds the decisions; the
//! server calls them at the right points (see "Where the server calls what").
//!
//! - [`tenant`]: the [`Tenant`] model, name and root validation, IP rules.
//! - [`binding`]: [`Binding`]s (x509 rule, digest user, IP range), the
//!   [`CertIdentity`] the server extracts from a client certificate, and the
//!   [`Identity`] a session presents.
//! - [`registry`]: the [`Registry`] of tenants, its invariants (disjoint roots,
//!   unambiguous bindings), deterministic [`Registry::bind`], and where it is
//!   replicated (`/zookeeper/corral/tenants/<name>`, super only).
//! - [`chroot`]: path translation in ([`to_inner`]) and out ([`to_outer`]) of a
//!   namespace, and the helpers for sequential creates, watch events, errors and
//!   path lists. A client can never name or see a path outside its root.
//! - [`quota`]: [`Quotas`], [`Usage`] and the `check_*` decisions returning
//!   [`QuotaError`] (`QuotaExceeded`, -125).
//! - [`rate`]: the sans-IO token bucket [`RateLimiter`] (`ThrottledOp`, -127).
//! - [`conn`]: [`ConnectionCounter`], per client IP and per tenant.
//! - [`zk_quota`]: ZooKeeper's own `/zookeeper/quota` path quotas: the
//!   hard/soft limit check ([`check_zk_quota`]), plus the text format
//!   ([`StatsTrack`]) and paths re-exported from `corral_store::zk_quota`
//!   (the tree keeps the stats nodes).
//! - [`audit`]: the [`AuditRecord`] and its JSON-lines and ZooKeeper
//!   `key=value` encodings.
//! - [`audit_sink`]: the [`AuditSink`] trait, the bounded [`QueuedSink`] that
//!   counts and logs what it drops, and [`MemorySink`].
//! - [`audit_file`]: [`FileSink`], size-rotated files, optionally per tenant.
//!
//! Nothing here does network I/O or reads the clock, except the audit file sink,
//! which writes files from its own thread and times its drop warnings.
//! Everything else takes `now_ms` as an argument.
//!
//! # Where the server calls what
//!
//! - **Accept**: [`ConnectionCounter::acquire_ip`] (per-IP bound), refused
//!   connections closed with a log line and an [`AuditOp::ConnectionRefused`]
//!   record.
//! - **Bind** (TLS handshake done, then at each `addauth` while unbound):
//!   [`Registry::bind`] with the certificate, then the peer IP, then digest
//!   credentials; once bound, never again. Then [`Tenant::check_ip`],
//!   [`ConnectionCounter::acquire_tenant`], and, for a session not yet
//!   bound, in the leader's prep of the session's bind (the replicated
//!   session table records each session's tenant) [`quota::check_session`]
//!   against the ensemble's bound sessions plus pending binds.
//! - **Every request**: [`RateLimiter::acquire`] for the session's tenant on the
//!   serving node, then [`to_inner`] for each path (every op in a multi too).
//! - **Leader prep**: [`quota::check_create`] / [`quota::check_set_data`]
//!   against usage plus the not-yet-applied txns; for a multi, thread
//!   [`Usage::after_create`] etc. through the sub-ops. Also
//!   [`zk_quota::check_zk_quota`] for `/zookeeper/quota` path quotas, with
//!   the quota of the path's longest prefix
//!   (`corral_store::DataTree::zk_quota_root_of`) and its usage plus the
//!   pending txns'.
//! - **Reads and replies**: [`to_outer`] for create's path, [`event_path`] for
//!   watch events (drop on `None`), [`ephemerals_to_outer`] for getEphemerals,
//!   [`paths_to_inner`] for setWatches.
//! - **Audit**: one [`AuditRecord`] per audited event to the [`AuditSink`];
//!   export [`AuditSink::dropped`] as a metric.

pub mod audit;
pub mod audit_file;
pub mod audit_sink;
pub mod binding;
pub mod chroot;
pub mod conn;
pub mod error;
pub mod quota;
pub mod rate;
pub mod registry;
pub mod tenant;
pub mod zk_quota;

pub use audit::{
    acl_string, principal_for_audit, znode_type, AuditFormat, AuditOp, AuditRecord, AuditResult,
};
pub use audit_file::{FileSink, FileSinkConfig, RotatingFileWriter};
pub use audit_sink::{AuditSink, AuditWriter, MemorySink, QueuedSink};
pub use binding::{glob_match, Binding, CertIdentity, Identity, X509Rule};
pub use chroot::{
    ephemerals_to_outer, error_path, event_path, is_within, paths_to_inner, paths_to_outer,
    to_inner, to_inner_sequential, to_outer,
};
pub use conn::{ConnectionCounter, ConnectionRefused};
pub use error::TenantError;
pub use quota::{QuotaDimension, QuotaError, Quotas, Usage};
pub use rate::RateLimiter;
pub use registry::{check_ip, Registry, REGISTRY_ROOT};
pub use tenant::{IpDecision, Tenant};
pub use zk_quota::{check_zk_quota, StatsTrack, ZkQuotaOutcome};
