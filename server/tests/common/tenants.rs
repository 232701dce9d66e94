//! Tenancy fixtures: tenants bound by digest users, nodes that bootstrap
//! them, clients bound to them, and the exact-usage check.

use std::time::Duration;

use corral_proto::request::AuthPacket;
use corral_proto::Request;
use corral_server::tenancy::UnboundPolicy;
use corral_server::ServerOptions;
use corral_store::NamespaceUsage;
use corral_tenant::{Binding, Quotas, Tenant};
use zookeeper_client as zk;

use super::{connect_with, eventually, Raw, TestNode, STEP};

/// (tenant, digest user, password) of the two tenants most tests use.
pub const A: (&str, &str, &str) = ("team-a", "alice", "pa");
pub const B: (&str, &str, &str) = ("team-b", "bob", "pb");

/// An argon2id hash with the cheapest parameters, so binds stay fast in tests.
pub fn cheap_hash(password: &str) -> String {
    use argon2::PasswordHasher as _;
    let params = argon2::Params::new(argon2::Params::MIN_M_COST, 1, 1, None).expect("params");
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    a.hash_password(password.as_bytes())
        .expect("hash")
        .to_string()
}

/// A tenant at `/tenants/<name>` bound to digest `user:password`.
pub fn digest_tenant((name, user, password): (&str, &str, &str), quotas: Quotas) -> Tenant {
    let mut t = Tenant::new(name);
    t.bindings.push(Binding::Digest {
        user: user.into(),
        password_hash: cheap_hash(password),
    });
    t.quotas = quotas;
    t
}

/// A node with `tenants` bootstrapped from its options and unbound sessions
/// refused; `tweak` runs last. Returns once every tenant is live.
pub async fn tenant_node(tenants: Vec<Tenant>, tweak: impl FnOnce(&mut ServerOptions)) -> TestNode {
    let names: Vec<String> = tenants.iter().map(|t| t.name.clone()).collect();
    let node = TestNode::start_with(|o| {
        o.tenancy.bootstrap = tenants;
        o.tenancy.unbound = UnboundPolicy::Refuse;
        tweak(o);
    });
    wait_tenants(&node, &names).await;
    node
}

/// Waits until every named tenant is in the node's registry with its root.
pub async fn wait_tenants(node: &TestNode, names: &[String]) {
    let shared = node.shared();
    eventually("tenants bootstrapped", STEP, || {
        let dir = shared.tenancy.directory();
        let tree = shared.tree.read().expect("tree");
        let ready = names
            .iter()
            .all(|n| dir.get(n).is_some_and(|t| tree.get(&t.root).is_some()));
        async move { ready }
    })
    .await;
}

/// A `zookeeper-client` session authenticated (and so bound) as `user:password`.
pub async fn tenant_client(node: &TestNode, (_, user, password): (&str, &str, &str)) -> zk::Client {
    connect_with(
        node,
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(6))
            .with_auth("digest", format!("{user}:{password}").as_bytes()),
    )
    .await
}

/// A super session (`super:test`, the harness's super user).
pub async fn super_client(node: &TestNode) -> zk::Client {
    connect_with(
        node,
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(6))
            .with_auth("digest", b"super:test"),
    )
    .await
}

/// The addauth request for `user:password`.
pub fn auth_req(user_password: &str) -> Request {
    Request::Auth(AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: user_password.as_bytes().to_vec(),
    })
}

/// A raw session bound to a tenant as `user:password` (the auth must succeed).
pub async fn raw_tenant(node: &TestNode, (_, user, password): (&str, &str, &str)) -> Raw {
    let mut raw = Raw::connect(node.addr, 6000).await;
    let (_, h, _) = raw.call(&auth_req(&format!("{user}:{password}"))).await;
    assert_eq!(h.err, 0, "auth as {user}");
    raw
}

/// The node's maintained usage of `tenant`'s namespace, after asserting it
/// equals a full recount of the tree.
pub fn exact_usage(node: &TestNode, tenant: &str) -> NamespaceUsage {
    let shared = node.shared();
    let root = shared
        .tenancy
        .directory()
        .get(tenant)
        .map(|t| t.root.clone())
        .expect("tenant exists");
    let tree = shared.tree.read().expect("tree");
    let maintained = tree.usage(&root).expect("root is counted");
    assert_eq!(
        maintained,
        tree.count_usage(&root),
        "maintained usage of {tenant} differs from a recount"
    );
    maintained
}

/// Sessions the node's replicated session table binds to `tenant`, after
/// asserting the maintained per-tenant counts equal a recount.
pub fn bound_sessions(node: &TestNode, tenant: &str) -> u64 {
    let shared = node.shared();
    let tree = shared.tree.read().expect("tree");
    assert_eq!(tree.tenant_session_counts(), &tree.count_tenant_sessions());
    tree.tenant_session_count(tenant)
}
