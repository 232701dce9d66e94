//! The znodes a tenant needs, and writing the configured tenants into the
//! registry at start.
//!
//! A tenant is its record `/zookeeper/corral/tenants/<name>` (super only) plus
//! its namespace root (created open to everyone, since the chroot is the
//! boundary; tenants set ACLs below it). Ancestors of the root that do not
//! exist are created readable by everyone and writable by no one (super
//! passes). `corral cli tenant create` makes the same nodes over the wire.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral_proto::opcode::perms;
use corral_proto::request::CreateRequest;
use corral_proto::{Acl, ErrorCode, OpCode, Request};
use corral_tenant::registry::node_path;
use corral_tenant::{Tenant, REGISTRY_ROOT};
use tokio::sync::oneshot;

use super::SYSTEM_ROOT;
use crate::commit::{Replicator, WriteOp, WriteRequest};
use crate::state::Shared;

/// ACL of corral's reserved nodes: no grants; only super passes.
pub fn system_acl() -> Vec<Acl> {
    vec![Acl::new(0, "world", "anyone")]
}

/// ACL of the ancestors of tenant roots (`/tenants`): readable, not writable.
pub fn ancestor_acl() -> Vec<Acl> {
    vec![Acl::new(perms::READ, "world", "anyone")]
}

/// One create of a tenant's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCreate {
    pub path: String,
    pub data: Vec<u8>,
    pub acl: Vec<Acl>,
    /// `NodeExists` is fine for containers that may already be there, but not
    /// for the tenant's record.
    pub may_exist: bool,
}

/// The creates that make `tenant` exist, in order: the registry's parents,
/// the record, then the root's ancestors and the root.
pub fn creation_plan(tenant: &Tenant) -> Vec<PlannedCreate> {
    let mut t = tenant.clone();
    t.normalize();
    let node = |path: &str, data: Vec<u8>, acl: Vec<Acl>, may_exist| PlannedCreate {
        path: path.to_string(),
        data,
        acl,
        may_exist,
    };
    let mut plan = vec![
        node(SYSTEM_ROOT, Vec::new(), system_acl(), true),
        node(REGISTRY_ROOT, Vec::new(), system_acl(), true),
        node(&node_path(&t.name), t.to_json(), system_acl(), false),
    ];
    let mut ancestors = Vec::new();
    let mut p = corral_store::parent(&t.root);
    while p != "/" {
        ancestors.push(p.to_string());
        p = corral_store::parent(p);
    }
    for a in ancestors.iter().rev() {
        plan.push(node(a, Vec::new(), ancestor_acl(), true));
    }
    plan.push(node(&t.root, Vec::new(), Acl::open_unsafe(), true));
    plan
}

/// A create request for one planned node.
pub fn create_request(c: &PlannedCreate) -> Request {
    Request::Create(
        OpCode::Create,
        CreateRequest {
            path: c.path.clone(),
            data: Some(c.data.clone()),
            acl: c.acl.clone(),
            flags: 0,
            ttl: -1,
        },
    )
}

/// Internal writes get their own xids, negative and apart from the special
/// ones, so their completions never pair with another internal write's.
fn next_xid() -> i32 {
    static NEXT: AtomicI32 = AtomicI32::new(-1_000_000);
    NEXT.fetch_sub(1, Ordering::Relaxed)
}

/// Submits one write as super with session 0 and waits for its error code.
async fn write_as_super(repl: &Arc<dyn Replicator>, req: Request) -> Option<i32> {
    let (tx, rx) = oneshot::channel();
    let mut w = WriteRequest {
        session_id: 0,
        xid: next_xid(),
        op: WriteOp::Client(req),
        principals: Arc::new(vec![corral_auth::super_principal()]),
        reply: Some(tx),
    };
    loop {
        match repl.submit(w) {
            Ok(()) => break,
            Err(back) => {
                w = *back;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    rx.await.ok().map(|c| c.err)
}

/// Writes the configured tenants that the registry lacks, once this node may
/// write (standalone, or leading). A tenant already in the registry is left as
/// it is: the registry, not the file, is the truth after the first start.
pub async fn run(shared: Arc<Shared>, repl: Arc<dyn Replicator>) {
    let tenants = shared.tenancy.opts.bootstrap.clone();
    if tenants.is_empty() {
        return;
    }
    loop {
        let mode = shared.mode().mode;
        if shared.is_serving() && (mode == "standalone" || mode == "leader") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for tenant in tenants {
        if let Some(existing) = shared.tenancy.directory().get(&tenant.name) {
            let mut wanted = tenant.clone();
            wanted.normalize();
            if *existing != wanted {
                tracing::info!(
                    tenant = %tenant.name,
                    "tenant in the registry differs from the configuration; keeping the registry's"
                );
            }
            continue;
        }
        match create_tenant(&repl, &tenant).await {
            Ok(()) => {
                tracing::info!(tenant = %tenant.name, root = %tenant.root, "tenant created from the configuration");
                if super::audit::enabled(&shared) {
                    use corral_tenant::{AuditOp, AuditResult};
                    let mut r =
                        super::audit::base(&shared, AuditOp::TenantCreate, AuditResult::Success);
                    r.principals = vec!["super:".into()];
                    r.path_absolute = Some(node_path(&tenant.name));
                    r.path_relative = Some(tenant.name.clone());
                    super::audit::emit(&shared, r);
                }
            }
            Err(e) => {
                tracing::error!(tenant = %tenant.name, error = %e, "cannot create a configured tenant")
            }
        }
    }
}

/// Runs `tenant`'s creation plan through the replicator.
async fn create_tenant(repl: &Arc<dyn Replicator>, tenant: &Tenant) -> Result<(), String> {
    for c in creation_plan(tenant) {
        let err = write_as_super(repl, create_request(&c))
            .await
            .ok_or_else(|| format!("{}: no answer (node stopping or leader lost)", c.path))?;
        let exists = err == ErrorCode::NodeExists.code();
        if err != 0 && !(exists && c.may_exist) {
            let what = ErrorCode::from_code(err).map_or(format!("error {err}"), |e| e.to_string());
            return Err(format!("{}: {what}", c.path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_creates_record_then_root_with_its_ancestors() {
        // Goal: the plan makes the registry parents, the record (must be new),
        // then every missing ancestor of the root outermost first, then the root.
        let mut t = Tenant::new("team-a");
        t.root = "/teams/a/ns".into();
        let plan = creation_plan(&t);
        let paths: Vec<&str> = plan.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "/zookeeper/corral",
                "/zookeeper/corral/tenants",
                "/zookeeper/corral/tenants/team-a",
                "/teams",
                "/teams/a",
                "/teams/a/ns"
            ]
        );
        assert!(!plan[2].may_exist);
        assert_eq!(
            Tenant::from_json(&plan[2].data).expect("record is the tenant's JSON"),
            t
        );
        assert_eq!(plan[5].acl, Acl::open_unsafe());
    }
}
