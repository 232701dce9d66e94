//! Deciding a connection's [`Scope`]: at connect, at `addauth`, and at the
//! first other request (the unbound policy), and recording a session's
//! tenant in the replicated session table. See the module docs of
//! [`crate::tenancy`] for the order.

use std::sync::Arc;

use corral_auth::Principal;
use corral_proto::ErrorCode;
use corral_tenant::{
    AuditOp, AuditResult, Binding, CertIdentity, Identity, IpDecision, Tenant, Usage,
};

use super::audit;
use super::{is_super, Scope, TenantScope, UnboundPolicy};
use crate::commit::{Replicator, WriteOp, WriteRequest};
use crate::state::{ConnHandle, Shared};

/// Why a connection is refused; the caller closes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: String,
    /// The ZooKeeper code for the audit record (and the reply, where one is sent).
    pub code: ErrorCode,
    /// The tenant the connection would have been bound to, if known.
    pub tenant: Option<String>,
}

impl Refused {
    fn new(code: ErrorCode, reason: impl Into<String>) -> Refused {
        Refused {
            reason: reason.into(),
            code,
            tenant: None,
        }
    }

    fn of(mut self, tenant: &str) -> Refused {
        self.tenant = Some(tenant.to_string());
        self
    }
}

/// The tenant identity of a verified client certificate, from the auth crate's form.
pub fn cert_identity(c: &corral_auth::CertIdentity) -> CertIdentity {
    CertIdentity {
        subject_dn: c.subject_dn.clone(),
        cn: c.common_names.first().cloned(),
        san_uris: c.uris.clone(),
        san_dns: c.dns_names.clone(),
        san_emails: c.emails.clone(),
    }
}

/// A certificate identity known only by its `x509` principal (the subject DN):
/// subject-DN rules can match it, SAN and CN rules cannot.
fn cert_from_principals(principals: &[Principal]) -> Option<CertIdentity> {
    principals
        .iter()
        .find(|p| p.scheme == corral_auth::Scheme::X509.name())
        .map(|p| CertIdentity {
            subject_dn: p.id.clone(),
            ..CertIdentity::default()
        })
}

/// Decides what can be decided at connect: super, then the certificate,
/// then the peer IP. An identity that maps binds (see [`bind_to`]); none
/// leaves the connection undecided, even for a session the replicated table
/// binds: only an identity of its tenant gets it back.
pub async fn at_connect(
    shared: &Shared,
    repl: &Arc<dyn Replicator>,
    conn: &ConnHandle,
    cert: Option<&CertIdentity>,
) -> Result<(), Refused> {
    let t = &shared.tenancy;
    if t.is_inactive() || is_super(&conn.principals()) {
        conn.set_scope(Scope::Whole);
        return Ok(());
    }
    let dir = t.directory();
    let from_principal;
    let cert = match cert {
        Some(c) => Some(c),
        None => {
            from_principal = cert_from_principals(&conn.principals());
            from_principal.as_ref()
        }
    };
    let mapped = cert
        .and_then(|c| dir.registry().bind(&Identity::X509(c)))
        .map(|t| (t.name.clone(), "x509"))
        .or_else(|| {
            dir.registry()
                .bind(&Identity::Ip(conn.remote.ip()))
                .map(|t| (t.name.clone(), "ip"))
        });
    match mapped {
        Some((name, how)) => bind_to(shared, repl, conn, &name, how).await.map(drop),
        None => Ok(()),
    }
}

/// After `addauth` added `added` to the connection: super widens the scope to
/// the whole tree; while undecided, a digest identity that maps binds. A
/// digest user that a tenant knows, with a wrong password, is refused.
pub async fn at_auth(
    shared: &Arc<Shared>,
    repl: &Arc<dyn Replicator>,
    conn: &Arc<ConnHandle>,
    scheme: &str,
    payload: &[u8],
    added: &[Principal],
) -> Result<(), Refused> {
    if is_super(added) {
        if conn.scope().tenant().is_some() {
            tracing::info!(
                peer = %conn.remote,
                session = format_args!("0x{:x}", conn.session_id),
                "super identity: the connection now sees the whole tree"
            );
        }
        conn.set_scope(Scope::Whole);
        return Ok(());
    }
    if scheme != corral_auth::Scheme::Digest.name() || !matches!(conn.scope(), Scope::Undecided) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(payload).into_owned();
    let Some((user, password)) = text.split_once(':') else {
        return Ok(());
    };
    let (user, password) = (user.to_string(), password.to_string());
    let dir = shared.tenancy.directory();
    let known = dir.registry().list().any(|t| {
        t.bindings
            .iter()
            .any(|b| matches!(b, Binding::Digest { user: u, .. } if *u == user))
    });
    if !known {
        return Ok(());
    }
    // argon2 is deliberately slow: keep it off the runtime's worker threads.
    let lookup = dir.clone();
    let bound = tokio::task::spawn_blocking(move || {
        lookup
            .registry()
            .bind(&Identity::Digest {
                user: &user,
                password: &password,
            })
            .map(|t| t.name.clone())
    })
    .await
    .ok()
    .flatten();
    match bound {
        Some(name) => bind_to(shared, repl, conn, &name, "digest").await.map(drop),
        None => Err(Refused::new(
            ErrorCode::AuthFailed,
            "wrong password for a tenant's digest user",
        )),
    }
}

/// Before a request other than ping/auth/close: settles an undecided
/// connection with the unbound policy and returns the scope to run under. A
/// session the replicated table binds never falls back to the whole tree:
/// with no identity of its tenant it is refused.
pub async fn before_request(
    shared: &Shared,
    repl: &Arc<dyn Replicator>,
    conn: &ConnHandle,
) -> Result<Scope, Refused> {
    let scope = conn.scope();
    if !matches!(scope, Scope::Undecided) {
        return Ok(scope);
    }
    match shared.tenancy.opts.unbound.clone() {
        UnboundPolicy::Open => match settled_tenant(shared, repl, conn).await? {
            Some(bound) => Err(Refused::new(
                ErrorCode::AuthFailed,
                format!(
                    "the session is bound to tenant {bound:?} and no identity of this connection maps to it"
                ),
            )
            .of(&bound)),
            None => {
                conn.set_scope(Scope::Whole);
                Ok(Scope::Whole)
            }
        },
        UnboundPolicy::Refuse => Err(Refused::new(
            ErrorCode::SessionClosedRequireSaslAuth,
            "no identity of the session maps to a tenant (unbound sessions are refused)",
        )),
        UnboundPolicy::Default(name) => bind_to(shared, repl, conn, &name, "default")
            .await
            .map(Scope::Tenant),
    }
}

/// The tenant the replicated session table binds `session_id` to.
fn replicated_tenant(shared: &Shared, session_id: i64) -> Option<String> {
    let tree = shared.tree.read().ok()?;
    tree.session_tenant(session_id).map(str::to_string)
}

/// The tenant the table binds the connection's session to, for a session
/// the table shows unbound only once this node has caught up with the
/// ensemble (`sync`): a resumed session may have been bound through another
/// node a moment ago, and a lagging table must not hand it the whole tree.
/// A session this connection created, or a local read-only one, needs no
/// catching up.
async fn settled_tenant(
    shared: &Shared,
    repl: &Arc<dyn Replicator>,
    conn: &ConnHandle,
) -> Result<Option<String>, Refused> {
    let bound = replicated_tenant(shared, conn.session_id);
    if bound.is_some() || !conn.resumed || conn.read_only {
        return Ok(bound);
    }
    if !repl.sync().await.unwrap_or(false) {
        return Err(Refused::new(
            ErrorCode::ConnectionLoss,
            "cannot catch up with the ensemble now to check the resumed session's tenant",
        ));
    }
    Ok(replicated_tenant(shared, conn.session_id))
}

/// Binds the connection (and, if not yet bound, its session) to tenant
/// `name`: a session bound to another tenant is refused, then the IP rules,
/// then a connection slot on this node, then the session's binding is
/// recorded in the replicated session table (where prep decides the
/// cluster-wide `max_sessions`).
async fn bind_to(
    shared: &Shared,
    repl: &Arc<dyn Replicator>,
    conn: &ConnHandle,
    name: &str,
    how: &'static str,
) -> Result<Arc<TenantScope>, Refused> {
    let t = &shared.tenancy;
    let dir = t.directory();
    let Some(tenant) = dir.get(name) else {
        return Err(Refused::new(
            ErrorCode::AuthFailed,
            format!("tenant {name:?} does not exist"),
        ));
    };
    let bound = replicated_tenant(shared, conn.session_id);
    if let Some(b) = bound.as_deref().filter(|b| *b != name) {
        return Err(Refused::new(
            ErrorCode::AuthFailed,
            format!("the session is bound to tenant {b:?}; this {how} identity maps to {name:?}"),
        )
        .of(b));
    }
    if tenant.check_ip(conn.remote.ip()) == IpDecision::Denied {
        return Err(Refused::new(
            ErrorCode::AuthFailed,
            format!("tenant {name:?} does not admit this address"),
        )
        .of(name));
    }
    {
        let mut conns = t.conns.lock().map_err(|_| poisoned())?;
        conns
            .acquire_tenant(name, tenant.quotas.max_connections)
            .map_err(|e| {
                Refused::new(ErrorCode::QuotaExceeded, format!("tenant {name:?}: {e}")).of(name)
            })?;
    }
    if bound.is_none() {
        if let Err(e) = record_binding(shared, repl, conn, tenant).await {
            if let Ok(mut conns) = t.conns.lock() {
                conns.release_tenant(name);
            }
            return Err(e.of(name));
        }
    }
    if let Ok(mut c) = conn.counted_tenant.lock() {
        *c = Some(name.to_string());
    }
    let scope = Arc::new(TenantScope {
        name: tenant.name.clone(),
        root: tenant.root.clone(),
    });
    conn.set_scope(Scope::Tenant(scope.clone()));
    if let Ok(mut w) = shared.watches.lock() {
        w.set_group(conn.conn_id, Some(Arc::from(name)));
    }
    tracing::debug!(
        peer = %conn.remote,
        session = format_args!("0x{:x}", conn.session_id),
        tenant = name,
        by = how,
        "session bound to tenant"
    );
    if audit::enabled(shared) {
        let mut r = audit::for_conn(shared, conn, AuditOp::TenantBind, AuditResult::Success);
        r.path_absolute = Some(tenant.root.clone());
        audit::emit(shared, r);
    }
    Ok(scope)
}

/// Records the session's binding to `tenant` through the node's write path
/// and waits for the answer: prep refuses a session bound elsewhere in the
/// meantime (`AuthFailed`) and a tenant at `max_sessions` (`QuotaExceeded`).
/// A read-only session is local to this node and never replicated: it is
/// only checked against the last known count.
async fn record_binding(
    shared: &Shared,
    repl: &Arc<dyn Replicator>,
    conn: &ConnHandle,
    tenant: &Tenant,
) -> Result<(), Refused> {
    let name = &tenant.name;
    if conn.read_only {
        let sessions = shared
            .tree
            .read()
            .map_err(|_| poisoned())?
            .tenant_session_count(name);
        let usage = Usage {
            sessions,
            ..Usage::default()
        };
        return corral_tenant::quota::check_session(&tenant.quotas, &usage)
            .map_err(|e| Refused::new(ErrorCode::QuotaExceeded, format!("tenant {name:?}: {e}")));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let w = WriteRequest {
        session_id: conn.session_id,
        xid: corral_proto::opcode::xid::AUTH,
        op: WriteOp::BindSession {
            tenant: name.clone(),
        },
        principals: conn.principals(),
        reply: Some(tx),
    };
    crate::conn::submit(repl, w).await;
    let err = match rx.await {
        Ok(c) if c.err == 0 => return Ok(()),
        Ok(c) => c.err,
        Err(_) => {
            return Err(Refused::new(
                ErrorCode::ConnectionLoss,
                "the session's tenant binding could not be recorded now",
            ))
        }
    };
    let code = ErrorCode::from_code(err).unwrap_or(ErrorCode::SystemError);
    let reason = match code {
        ErrorCode::QuotaExceeded => format!(
            "tenant {name:?}: sessions quota of {} reached across the ensemble",
            tenant.quotas.max_sessions.unwrap_or(0)
        ),
        ErrorCode::AuthFailed => {
            format!("the session is already bound to another tenant, or tenant {name:?} is gone")
        }
        other => format!("recording the session's binding to tenant {name:?} failed: {other}"),
    };
    Err(Refused::new(code, reason))
}

fn poisoned() -> Refused {
    Refused::new(ErrorCode::SystemError, "tenancy state lock poisoned")
}

/// At connection end: gives back its tenant connection slot.
pub fn release(shared: &Shared, conn: &ConnHandle) {
    let name = conn.counted_tenant.lock().ok().and_then(|mut c| c.take());
    if let Some(name) = name {
        if let Ok(mut conns) = shared.tenancy.conns.lock() {
            conns.release_tenant(&name);
        }
    }
}

/// Logs and audits a refused connection.
pub fn refused(shared: &Shared, conn: &ConnHandle, r: &Refused) {
    shared
        .stats
        .connections_refused
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(
        peer = %conn.remote,
        session = format_args!("0x{:x}", conn.session_id),
        reason = %r.reason,
        "refusing connection"
    );
    if audit::enabled(shared) {
        let record = |op| {
            let mut rec = audit::with_code(
                audit::for_conn(shared, conn, op, AuditResult::Failure),
                r.code.code(),
            );
            rec.tenant = rec.tenant.or_else(|| r.tenant.clone());
            rec
        };
        audit::emit(shared, record(AuditOp::ConnectionRefused));
        if r.code == ErrorCode::QuotaExceeded {
            audit::emit(shared, record(AuditOp::QuotaRejected));
        }
    }
}
