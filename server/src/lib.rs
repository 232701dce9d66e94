//! `corral-server`: the client-facing node.
//!
//! - [`conn`]: one connection: handshake, in-order replies, watch events.
//! - [`read`]: reads against the local tree.
//! - [`commit`]: the write path of a standalone node (prep → log → fsync → apply → reply)
//!   behind the [`commit::Replicator`] trait that voters and observers will implement.
//! - [`prep`]: request → txn against the latest state (ZooKeeper's PrepRequestProcessor rules).
//! - [`apply`]: committed txn → tree, watches, replies.
//! - [`watch`], [`session`]: the watch manager and session expiry.
//! - [`fourlw`]: four-letter words.
//! - [`node`]: recovery and the listeners.
//! - [`tls`]: the TLS client listener, x509 principals, certificate reload.
//! - [`tls_v1`]: acceptance of X.509 v1 client certificates issued directly by a trusted CA.
//! - [`tenancy`]: the tenant registry as replicated state, session binding,
//!   the enforced chroot, per-tenant limits and the audit log.
//! - [`jks`]: a reader for Java KeyStore (JKS) key and trust stores.

pub mod apply;
pub mod commit;
pub mod conn;
pub mod fourlw;
pub mod jks;
pub mod node;
pub mod prep;
pub mod read;
pub mod reconfig;
pub mod session;
pub mod state;
pub mod tenancy;
pub mod tls;
pub mod tls_v1;
pub mod watch;

pub use node::{Node, NodeError, NodeRole, RoleStart, StandaloneRole};
pub use state::ServerOptions;
pub use tls::{CaSource, ClientAuth, KeySource, TlsOptions, TlsReloader};
