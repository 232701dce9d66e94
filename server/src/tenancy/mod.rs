//! Tenancy in the server: the replicated registry, session binding, the
//! enforced chroot, per-tenant limits on the serving node, and the audit log.
//! The decisions themselves are `corral-tenant`'s; this module calls them at
//! the right points of the pipeline.
//!
//! # Where the registry lives
//!
//! Each tenant is one persistent znode `/zookeeper/corral/tenants/<name>`
//! whose data is the tenant's JSON ([`corral_tenant::Tenant::to_json`]). The
//! subtree `/zookeeper/corral` is reserved: only a super identity may read,
//! write or watch anything in it, whatever its ACL says (its nodes carry
//! `world:anyone` with no permissions, so ACL checks refuse everyone else
//! too). Prep validates every write of a record against the registry, so a
//! malformed or conflicting tenant is refused with `BadArguments` and nothing
//! changes. Every node rebuilds its [`Directory`] when a committed txn touches
//! a record, so a change takes effect cluster-wide at commit, without
//! restarts. Tenants declared in the configuration ([`TenancyOptions::bootstrap`])
//! are written by the leader (or standalone node) at start when absent.
//!
//! # Binding and scope
//!
//! A session's tenant is replicated state: the tree's session table records
//! it ([`corral_store::SessionEntry::tenant`], set once by a
//! `BindSession` txn), so every node knows it and it survives restarts and
//! moves between nodes. A connection's [`Scope`] is decided by the first
//! identity that maps:
//!
//! 1. At connect: a super principal (x509 mapped to super) sees the whole
//!    tree; otherwise the client certificate, then the peer IP, are looked up
//!    with [`corral_tenant::Registry::bind`].
//! 2. At `addauth`: super upgrades the connection to the whole tree; while
//!    undecided, a digest identity that maps binds (a known tenant user with a
//!    wrong password is `AuthFailed`).
//! 3. At the first other request, an undecided connection gets the
//!    [`UnboundPolicy`]: the whole tree (`Open`, the default and today's
//!    behaviour), a default tenant, or refusal (`SessionClosedRequireSaslAuth`,
//!    then close). A session the table binds never gets the whole tree this
//!    way: under `Open` it is refused (`AuthFailed`). A resumed session this
//!    node's table shows unbound is looked up again after a `sync`, since
//!    it may have been bound through another node a moment ago.
//!
//! Binding to tenant T (`bind::bind_to`) refuses a session the table binds
//! to another tenant (`AuthFailed`: the binding never changes, only super can
//! widen a connection), checks T's IP rules, takes a connection slot on this
//! node (`max_connections`), and, for a session the table does not bind yet,
//! submits the binding through the node's write path (standalone: the commit
//! thread; follower: forwarded to the leader; observer: relayed up its
//! chain) and waits for it. The leader's prep decides it against T's
//! `max_sessions`, counting the table's bound sessions plus pending binds,
//! so the quota holds across the ensemble (see [`crate::prep`]). A resumed
//! session with an identity of its tenant writes nothing. A refusal closes
//! the connection with a log line and an audit record. A session frees its
//! slot when its close or expiry removes it from the table. With tenancy
//! inactive nothing is looked up or written.
//!
//! Connections, watches and the request rate are counted on the serving
//! node; sessions and the tree quotas (znodes, data bytes, ephemerals, bytes
//! per znode) are decided in the leader's prep (see [`crate::prep`]) against
//! counters the tree keeps ([`corral_store::usage`] per root, and bound
//! sessions per tenant).

pub mod audit;
pub mod bind;
pub mod bootstrap;
pub mod directory;
pub mod translate;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use corral_auth::Principal;
use corral_store::DataTree;
use corral_tenant::{AuditSink, ConnectionCounter, FileSinkConfig, RateLimiter, Tenant};

pub use directory::{Directory, DirectoryHandle};

/// corral's reserved subtree: the registry and anything else corral keeps.
pub const SYSTEM_ROOT: &str = "/zookeeper/corral";

/// Whether `path` is in the reserved subtree (only super may touch it).
pub fn is_reserved(path: &str) -> bool {
    corral_tenant::is_within(SYSTEM_ROOT, path)
}

/// Whether the principals include the super identity.
pub fn is_super(principals: &[Principal]) -> bool {
    principals
        .iter()
        .any(|p| p.scheme == corral_auth::Scheme::Super.name())
}

/// What happens to a session no identity binds to a tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum UnboundPolicy {
    /// It sees the whole tree, as without tenancy (the default).
    #[default]
    Open,
    /// Its first request is refused and the connection closed.
    Refuse,
    /// It is bound to this tenant.
    Default(String),
}

/// Tenancy settings of a node.
#[derive(Debug, Clone, Default)]
pub struct TenancyOptions {
    pub unbound: UnboundPolicy,
    /// Tenants to write into the registry at start when absent (from the config).
    pub bootstrap: Vec<Tenant>,
    /// The audit file sink; `None` writes no audit log.
    pub audit: Option<FileSinkConfig>,
}

/// A connection's view of the tree.
#[derive(Debug, Clone, Default)]
pub enum Scope {
    /// No identity has mapped yet and no request beyond auth has run.
    #[default]
    Undecided,
    /// The whole tree: no tenancy, the open policy, or a super identity.
    Whole,
    /// Confined to one tenant's namespace.
    Tenant(Arc<TenantScope>),
}

/// The tenant a connection is confined to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    pub name: String,
    pub root: String,
}

impl Scope {
    /// The namespace root paths are translated under, if confined.
    pub fn root(&self) -> Option<&str> {
        match self {
            Scope::Tenant(t) => Some(&t.root),
            _ => None,
        }
    }

    pub fn tenant(&self) -> Option<&Arc<TenantScope>> {
        match self {
            Scope::Tenant(t) => Some(t),
            _ => None,
        }
    }
}

/// The node's tenancy state, in [`crate::state::Shared`].
pub struct Tenancy {
    pub opts: TenancyOptions,
    directory: DirectoryHandle,
    conns: Mutex<ConnectionCounter>,
    rates: Mutex<HashMap<String, RateLimiter>>,
    audit: Option<Arc<dyn AuditSink>>,
    /// Sessions the leader is expiring, so apply can tell expiry from close.
    expiring: Mutex<HashSet<i64>>,
    server: String,
}

impl Tenancy {
    /// Opens the audit sink, if configured; the directory starts empty until
    /// [`Tenancy::load`].
    pub fn new(opts: TenancyOptions, server_id: u64) -> std::io::Result<Tenancy> {
        let audit: Option<Arc<dyn AuditSink>> = match &opts.audit {
            Some(c) => Some(Arc::new(corral_tenant::FileSink::open(c.clone())?)),
            None => None,
        };
        Ok(Tenancy {
            opts,
            directory: Arc::new(RwLock::new(Arc::new(Directory::default()))),
            conns: Mutex::new(ConnectionCounter::new(None)),
            rates: Mutex::new(HashMap::new()),
            audit,
            expiring: Mutex::new(HashSet::new()),
            server: server_id.to_string(),
        })
    }

    /// The current registry view.
    pub fn directory(&self) -> Arc<Directory> {
        self.directory.read().map(|d| d.clone()).unwrap_or_default()
    }

    /// The handle prep reads the registry through.
    pub fn directory_handle(&self) -> DirectoryHandle {
        self.directory.clone()
    }

    /// Rebuilds the directory from `tree`'s registry subtree and points the
    /// tree's usage counters at the namespace roots. Call with the tree write
    /// lock held: after recovery, after a txn touching the registry, after a
    /// snapshot replaced the tree. Returns the new directory.
    pub fn load(&self, tree: &mut DataTree) -> Arc<Directory> {
        let dir = Arc::new(Directory::from_tree(tree));
        tree.set_usage_roots(dir.roots().map(str::to_string));
        if let Ok(mut d) = self.directory.write() {
            *d = dir.clone();
        }
        if let Ok(mut rates) = self.rates.lock() {
            rates.retain(|name, limiter| {
                match dir.get(name).and_then(|t| t.quotas.max_request_rate) {
                    Some(rate) => {
                        limiter.set_rate(rate, limiter_now());
                        true
                    }
                    None => false,
                }
            });
        }
        dir
    }

    /// Whether no tenant exists and unbound sessions see the whole tree: the
    /// node then behaves exactly as without tenancy.
    pub fn is_inactive(&self) -> bool {
        self.opts.unbound == UnboundPolicy::Open && self.directory().is_empty()
    }

    /// Takes one token of `tenant`'s request rate; false means throttle.
    pub fn take_request_token(&self, tenant: &str) -> bool {
        let Some(rate) = self
            .directory()
            .get(tenant)
            .and_then(|t| t.quotas.max_request_rate)
        else {
            return true;
        };
        let Ok(mut rates) = self.rates.lock() else {
            return true;
        };
        let now = limiter_now();
        rates
            .entry(tenant.to_string())
            .or_insert_with(|| RateLimiter::new(rate, now))
            .try_acquire(now)
    }

    /// Remembers that the leader is expiring `session_id` (see [`Tenancy::take_expiring`]).
    pub fn note_expiring(&self, session_id: i64) {
        if let Ok(mut e) = self.expiring.lock() {
            e.insert(session_id);
        }
    }

    /// Whether `session_id`'s close is an expiry this node decided.
    pub fn take_expiring(&self, session_id: i64) -> bool {
        self.expiring
            .lock()
            .map(|mut e| e.remove(&session_id))
            .unwrap_or(false)
    }

    /// Connections bound to `tenant` on this node.
    pub fn connection_count(&self, tenant: &str) -> u64 {
        self.conns
            .lock()
            .map(|c| c.tenant_count(tenant))
            .unwrap_or(0)
    }

    /// The audit sink, when one is configured.
    pub fn audit_sink(&self) -> Option<&Arc<dyn AuditSink>> {
        self.audit.as_ref()
    }

    /// Audit records lost so far (queue full or write failed).
    pub fn audit_dropped(&self) -> u64 {
        self.audit.as_ref().map_or(0, |a| a.dropped())
    }

    /// This node's name in audit records.
    pub fn server_name(&self) -> &str {
        &self.server
    }
}

/// The rate limiter's clock: milliseconds on a process-wide monotonic clock.
fn limiter_now() -> u64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// Reloads the directory after a committed change (tree write lock held) and
/// closes the connections of tenants that no longer exist: their namespace is
/// no longer theirs to use.
pub fn registry_changed(shared: &crate::state::Shared, tree: &mut DataTree) {
    let dir = shared.tenancy.load(tree);
    tracing::info!(tenants = dir.registry().len(), "tenant registry changed");
    let conns: Vec<_> = match shared.conns.lock() {
        Ok(c) => c.values().cloned().collect(),
        Err(_) => return,
    };
    for c in conns {
        let gone = c
            .scope()
            .tenant()
            .is_some_and(|t| dir.get(&t.name).is_none());
        if gone {
            tracing::info!(
                peer = %c.remote,
                session = format_args!("0x{:x}", c.session_id),
                "closing a connection of a deleted tenant"
            );
            let _ = c.tx.try_send(crate::state::Outbound::Close);
        }
    }
}
