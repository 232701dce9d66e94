//! `corral-store`: the replicated state machine and its durable storage.
//!
//! - [`ensemble`]: the ensemble's membership in ZooKeeper's dynamic
//!   configuration text (`/zookeeper/config`, reconfig txns).
//! - [`path`]: ZooKeeper's path rules (`validate_path`, `parent`, `name`).
//! - [`node`]: a znode ([`Node`]) and the kind encoded in `ephemeralOwner`
//!   ([`NodeKind`]: persistent, ephemeral, container, TTL). A node is 56
//!   bytes plus one heap block for its name, data and rarely-set fields; its
//!   client `Stat` is computed by [`Node::stat`].
//! - `children` (private): a znode's children as arena indices in name
//!   order, with 16-bit name tags for lookups; chunked past 128 children.
//! - [`txn`]: [`Txn`]s, the deterministic state changes prep produces, and the
//!   [`LogEntry`] encoding used by the log.
//! - [`tree`]: the [`DataTree`] and its [`DataTree::apply`], which follows
//!   ZooKeeper 3.8's `DataTree.processTxn` and reports [`Outcome`]s and watch
//!   [`Trigger`]s. It keeps an incremental digest so replicas can compare state
//!   at a zxid in O(1), and the session table, where [`Txn::BindSession`]
//!   records a session's tenant once, with live sessions counted per tenant
//!   (the tenants' cluster-wide `max_sessions`).
//! - [`disk`]: the narrow durable [`TxnLog`] trait, with sled ([`SledTxnLog`])
//!   and an in-memory fault-injecting implementation ([`MemTxnLog`]).
//! - [`file_log`]: [`FileTxnLog`], segmented append-only files with one
//!   fdatasync per batch: the server's default log, chosen over sled on the
//!   numbers in docs/benchmarks.md.
//! - [`snapshot`]: fuzzy, checksummed snapshot files and [`recover`].
//! - [`zk_quota`]: ZooKeeper's `/zookeeper/quota` limits and stats text.
//! - [`usage`]: znode, data-byte and ephemeral counters per namespace root
//!   (the tenants' tree quotas), kept exact by every apply.
//!
//! # Absolute values make replay idempotent
//!
//! Snapshots are fuzzy, as in ZooKeeper: the writer records the tree's
//! `last_zxid` at the start, then walks the tree in chunks while writers keep
//! applying. The file therefore holds each node in some state at or after the
//! start zxid. Recovery replays every logged txn after the start zxid over it.
//! That converges only because every txn carries absolute values — the new
//! version, the new aversion, the parent's new cversion, the final path with
//! its sequence suffix — never deltas, and because `apply` absorbs the two
//! collisions a fuzzy snapshot can cause: a create of a node that exists still
//! raises the parent's cversion/pzxid when the txn's value is larger, and a
//! delete of a missing node still raises the parent's pzxid. Prep (the leader)
//! must therefore always compute absolute values from its view of the tree.
//!
//! Only [`disk`] and [`snapshot`] do I/O.

mod children;
mod digest;
pub mod disk;
pub mod ensemble;
pub mod error;
pub mod file_log;
pub mod node;
pub mod path;
pub mod snapshot;
pub mod tree;
pub mod txn;
pub mod usage;
pub mod zk_quota;

pub use disk::{MemTxnLog, SledTxnLog, TxnLog};
pub use ensemble::{Ensemble, EnsembleError, MemberRole, ServerSpec};
pub use error::StoreError;
pub use file_log::FileTxnLog;
pub use node::{ttl_owner, Node, NodeKind, CONTAINER_OWNER, MAX_TTL_MS};
pub use path::{name, parent, validate_path};
pub use snapshot::{load_latest_snapshot, purge_snapshots, recover, write_fuzzy_snapshot};
pub use tree::{Applied, DataTree, Outcome, SessionEntry, Trigger, TriggerKind};
pub use txn::{LogEntry, Txn, TxnHeader};
pub use usage::NamespaceUsage;
