//! Deciding a connection's [`Scope`]: at connect, at `addauth`, and at the
//! first other request (the unbound policy). See the module docs of
//! [`crate::tenancy`] for the order.

use std::sync::Arc;

use corral_auth::Principal;
use corral_proto::ErrorCode;
use corral_tenant::{AuditOp, AuditResult, Binding, CertIdentity, Identity, IpDecision};

use super::audit;
use super::{is_super, Scope, TenantScope, UnboundPolicy};
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

/// Decides what can be decided at connect: super, a binding this session
/// already has on this node, the certificate, the peer IP.
pub fn at_connect(
    shared: &Shared,
    conn: &ConnHandle,
    cert: Option<&CertIdentity>,
) -> Result<(), Refused> {
    let t = &shared.tenancy;
    if t.is_inactive() || is_super(&conn.principals()) {
        conn.set_scope(Scope::Whole);
        return Ok(());
    }
    if let Some(name) = t.session_tenant(conn.session_id) {
        return bind_to(shared, conn, &name, "session").map(drop);
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
    if let Some(c) = cert {
        if let Some(tenant) = dir.registry().bind(&Identity::X509(c)) {
            return bind_to(shared, conn, &tenant.name, "x509").map(drop);
        }
    }
    if let Some(tenant) = dir.registry().bind(&Identity::Ip(conn.remote.ip())) {
        return bind_to(shared, conn, &tenant.name, "ip").map(drop);
    }
    Ok(())
}

/// After `addauth` added `added` to the connection: super widens the scope to
/// the whole tree; while undecided, a digest identity that maps binds. A
/// digest user that a tenant knows, with a wrong password, is refused.
pub async fn at_auth(
    shared: &Arc<Shared>,
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
        Some(name) => bind_to(shared, conn, &name, "digest").map(drop),
        None => Err(Refused::new(
            ErrorCode::AuthFailed,
            "wrong password for a tenant's digest user",
        )),
    }
}

/// Before a request other than ping/auth/close: settles an undecided
/// connection with the unbound policy and returns the scope to run under.
pub fn before_request(shared: &Shared, conn: &ConnHandle) -> Result<Scope, Refused> {
    let scope = conn.scope();
    if !matches!(scope, Scope::Undecided) {
        return Ok(scope);
    }
    match shared.tenancy.opts.unbound.clone() {
        UnboundPolicy::Open => {
            conn.set_scope(Scope::Whole);
            Ok(Scope::Whole)
        }
        UnboundPolicy::Refuse => Err(Refused::new(
            ErrorCode::SessionClosedRequireSaslAuth,
            "no identity of the session maps to a tenant (unbound sessions are refused)",
        )),
        UnboundPolicy::Default(name) => bind_to(shared, conn, &name, "default").map(Scope::Tenant),
    }
}

/// Binds the connection (and, if new here, its session) to tenant `name`:
/// IP rules, then a connection slot, then a session slot.
fn bind_to(
    shared: &Shared,
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
    if let Err(e) = take_session_slot(t, conn.session_id, name, tenant.quotas.max_sessions) {
        if let Ok(mut conns) = t.conns.lock() {
            conns.release_tenant(name);
        }
        return Err(e.of(name));
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

fn take_session_slot(
    t: &super::Tenancy,
    session_id: i64,
    name: &str,
    max: Option<u64>,
) -> Result<(), Refused> {
    let mut s = t.sessions.lock().map_err(|_| poisoned())?;
    if s.by_session.contains_key(&session_id) {
        return Ok(());
    }
    let count = s.counts.get(name).copied().unwrap_or(0);
    corral_tenant::quota::check_limit(corral_tenant::QuotaDimension::Sessions, max, count, 1)
        .map_err(|e| Refused::new(ErrorCode::QuotaExceeded, format!("tenant {name:?}: {e}")))?;
    s.by_session.insert(session_id, name.to_string());
    *s.counts.entry(name.to_string()).or_insert(0) += 1;
    Ok(())
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
