//! The tenant registry: every tenant, validated as a set.
//!
//! # Where it lives
//!
//! The registry is replicated state, so every node agrees on it at every zxid.
//! Each tenant is one persistent znode, `/zookeeper/corral/tenants/<name>`
//! ([`REGISTRY_ROOT`], [`node_path`]), whose data is the tenant's JSON
//! ([`Tenant::to_json`]). The ACL of `/zookeeper/corral` and everything below is
//! empty of grants for anyone but super (super passes every ACL), and the server
//! must additionally refuse those paths to any non-super session whatever their
//! ACL says. Tenant roots can never be under `/zookeeper`, so no namespace
//! contains the registry. Changes are ordinary txns: they take effect on every
//! node when applied, without restarts; the server rebuilds its in-memory
//! `Registry` from the subtree (or applies the one changed tenant) on apply.
//!
//! # Invariants (checked by every mutation and by [`Registry::from_tenants`])
//!
//! - Names are unique and valid; roots are valid and pairwise disjoint by
//!   whole segments (`/tenants/a` and `/tenants/ab` are fine, `/t` and `/t/x` not).
//! - No identical binding appears twice, and a digest user name belongs to at
//!   most one tenant.
//!
//! # Binding order
//!
//! [`Registry::bind`] is deterministic, so every node binds a session alike:
//!
//! - x509: by rule kind, most specific first (subject DN, SAN URI, SAN DNS, SAN
//!   email, CN); within a kind, tenants by name, then each tenant's bindings in
//!   their declared order.
//! - digest: the one tenant holding that user name, if the password verifies.
//! - ip: the longest matching prefix; ties go to the first tenant by name.

use std::collections::BTreeMap;
use std::net::IpAddr;

use corral_auth::IpRange;

use crate::binding::{Binding, Identity};
use crate::tenant::{binding_matches, roots_overlap, IpDecision, Tenant};
use crate::TenantError;

/// Parent znode of the replicated tenant records.
pub const REGISTRY_ROOT: &str = "/zookeeper/corral/tenants";
/// Most tenants one registry may hold.
pub const TENANTS_MAX: usize = 4096;

/// The znode holding tenant `name`'s record.
pub fn node_path(name: &str) -> String {
    format!("{REGISTRY_ROOT}/{name}")
}

/// All tenants, keyed and iterated by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    tenants: BTreeMap<String, Tenant>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Builds a registry from tenants, validating each and the set as a whole.
    pub fn from_tenants(
        tenants: impl IntoIterator<Item = Tenant>,
    ) -> Result<Registry, TenantError> {
        let mut r = Registry::new();
        for t in tenants {
            r.create(t)?;
        }
        Ok(r)
    }

    /// Rebuilds the registry from the registry subtree's `(child name, data)`
    /// pairs. A child whose name differs from the record's is refused.
    pub fn from_nodes<'a>(
        nodes: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Registry, TenantError> {
        let mut r = Registry::new();
        for (name, data) in nodes {
            let t = Tenant::from_json(data)?;
            if t.name != name {
                return Err(TenantError::InvalidName {
                    name: t.name,
                    reason: "differs from the name of its registry node",
                });
            }
            r.create(t)?;
        }
        Ok(r)
    }

    /// Adds a tenant (an empty root becomes the default).
    pub fn create(&mut self, mut tenant: Tenant) -> Result<&Tenant, TenantError> {
        tenant.normalize();
        tenant.validate()?;
        if self.tenants.contains_key(&tenant.name) {
            return Err(TenantError::Exists(tenant.name));
        }
        if self.tenants.len() >= TENANTS_MAX {
            return Err(TenantError::TooMany {
                what: "tenants",
                max: TENANTS_MAX,
            });
        }
        self.check_against_others(&tenant)?;
        let name = tenant.name.clone();
        Ok(self.tenants.entry(name).or_insert(tenant))
    }

    /// Replaces an existing tenant's bindings, quotas and IP rules; returns the
    /// previous record. The root cannot change (an empty root keeps it).
    pub fn update(&mut self, mut tenant: Tenant) -> Result<Tenant, TenantError> {
        let Some(old) = self.tenants.get(&tenant.name) else {
            return Err(TenantError::NoSuchTenant(tenant.name));
        };
        if tenant.root.is_empty() {
            tenant.root = old.root.clone();
        }
        if tenant.root != old.root {
            return Err(TenantError::RootChange {
                old: old.root.clone(),
                new: tenant.root,
                tenant: tenant.name,
            });
        }
        tenant.validate()?;
        self.check_against_others(&tenant)?;
        let name = tenant.name.clone();
        Ok(std::mem::replace(
            self.tenants.get_mut(&name).expect("checked above"),
            tenant,
        ))
    }

    /// Removes a tenant and returns it. Its data under the root is untouched.
    pub fn delete(&mut self, name: &str) -> Result<Tenant, TenantError> {
        self.tenants
            .remove(name)
            .ok_or_else(|| TenantError::NoSuchTenant(name.to_string()))
    }

    pub fn get(&self, name: &str) -> Option<&Tenant> {
        self.tenants.get(name)
    }

    /// Every tenant, by name.
    pub fn list(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.values()
    }

    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    /// The tenant whose namespace contains `server_path`, if any (at most one,
    /// since roots are disjoint). Used to attribute usage to a tenant.
    pub fn owner_of(&self, server_path: &str) -> Option<&Tenant> {
        self.list()
            .find(|t| crate::chroot::is_within(&t.root, server_path))
    }

    /// The tenant `identity` binds to, in the order documented on the module.
    pub fn bind(&self, identity: &Identity<'_>) -> Option<&Tenant> {
        match identity {
            Identity::X509(cert) => self.bind_x509(cert),
            Identity::Digest { .. } => self.list().find(|t| t.matches(identity)),
            Identity::Ip(ip) => self.bind_ip(*ip),
        }
    }

    /// The registry as JSON (`{"tenants":[…]}` by name), for admin output and
    /// config bootstrap files.
    pub fn to_json(&self) -> Vec<u8> {
        let doc = serde_json::json!({ "tenants": self.tenants.values().collect::<Vec<_>>() });
        serde_json::to_vec(&doc).expect("registry encodes as JSON")
    }

    /// Parses [`to_json`](Self::to_json) output and validates it as a set.
    pub fn from_json(bytes: &[u8]) -> Result<Registry, TenantError> {
        #[derive(serde::Deserialize)]
        struct Doc {
            tenants: Vec<Tenant>,
        }
        let doc: Doc = serde_json::from_slice(bytes).map_err(|source| TenantError::Json {
            what: "registry".into(),
            source,
        })?;
        Registry::from_tenants(doc.tenants)
    }

    fn bind_x509(&self, cert: &crate::CertIdentity) -> Option<&Tenant> {
        (0..=4u8).find_map(|rank| {
            self.list().find(|t| {
                t.bindings.iter().any(|b| match b {
                    Binding::X509 { rule } => rule.rank() == rank && rule.matches(cert),
                    _ => false,
                })
            })
        })
    }

    fn bind_ip(&self, ip: IpAddr) -> Option<&Tenant> {
        let mut best: Option<(u8, &Tenant)> = None;
        for t in self.list() {
            for b in &t.bindings {
                let Binding::Ip { cidr } = b else { continue };
                let Some(range) = IpRange::parse(cidr) else {
                    continue;
                };
                let better = best.is_none_or(|(len, _)| range.prefix_len() > len);
                if range.contains(ip) && better {
                    best = Some((range.prefix_len(), t));
                }
            }
        }
        best.map(|(_, t)| t)
    }

    fn check_against_others(&self, tenant: &Tenant) -> Result<(), TenantError> {
        for other in self.list().filter(|o| o.name != tenant.name) {
            if roots_overlap(&tenant.root, &other.root) {
                return Err(TenantError::OverlappingRoot {
                    tenant: tenant.name.clone(),
                    root: tenant.root.clone(),
                    other: other.name.clone(),
                    other_root: other.root.clone(),
                });
            }
            for b in &tenant.bindings {
                if other.bindings.iter().any(|ob| same_identity(b, ob)) {
                    return Err(TenantError::ConflictingBinding {
                        tenant: tenant.name.clone(),
                        other: other.name.clone(),
                        binding: b.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Checks `tenant`'s IP rules for `ip`: deny wins over allow, empty allow admits all.
pub fn check_ip(tenant: &Tenant, ip: IpAddr) -> IpDecision {
    tenant.check_ip(ip)
}

/// Whether `identity` matches any binding of `tenant` (re-checks on addauth).
pub fn tenant_accepts(tenant: &Tenant, identity: &Identity<'_>) -> bool {
    tenant.bindings.iter().any(|b| binding_matches(b, identity))
}

/// Two bindings that would claim the same identity: identical, or the same
/// digest user name (whatever the hashes).
fn same_identity(a: &Binding, b: &Binding) -> bool {
    match (a, b) {
        (Binding::Digest { user: ua, .. }, Binding::Digest { user: ub, .. }) => ua == ub,
        _ => a == b,
    }
}
