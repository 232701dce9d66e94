//! The node's in-memory view of the tenant registry, rebuilt from the
//! replicated registry subtree whenever a committed txn changes it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use corral_store::DataTree;
use corral_tenant::{Registry, Tenant, REGISTRY_ROOT};

/// The registry plus an index from namespace root to tenant name.
#[derive(Debug, Default)]
pub struct Directory {
    registry: Registry,
    by_root: HashMap<String, String>,
}

/// The directory shared by the connections, prep and apply; replaced whole
/// (never edited) so a reader holds one consistent version.
pub type DirectoryHandle = Arc<RwLock<Arc<Directory>>>;

impl Directory {
    pub fn new(registry: Registry) -> Directory {
        let by_root = registry
            .list()
            .map(|t| (t.root.clone(), t.name.clone()))
            .collect();
        Directory { registry, by_root }
    }

    /// Reads `/zookeeper/corral/tenants/*` in name order. A record that does
    /// not parse, or that conflicts with one read before it, is skipped with an
    /// error log; prep refuses such writes, so this only happens to records
    /// written around it (two conflicting records prepped in one batch). Every
    /// node skips the same ones, since the order is the tree's.
    pub fn from_tree(tree: &DataTree) -> Directory {
        let mut registry = Registry::new();
        for name in tree.children(REGISTRY_ROOT).unwrap_or_default() {
            let path = corral_tenant::registry::node_path(&name);
            let Some(node) = tree.get(&path) else {
                continue;
            };
            let parsed = Tenant::from_json(node.data().unwrap_or_default()).and_then(|t| {
                if t.name != name {
                    return Err(corral_tenant::TenantError::InvalidName {
                        name: t.name,
                        reason: "differs from the name of its registry node",
                    });
                }
                registry.create(t).map(|_| ())
            });
            if let Err(e) = parsed {
                tracing::error!(node = %path, error = %e, "ignoring an invalid tenant record");
            }
        }
        Directory::new(registry)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn is_empty(&self) -> bool {
        self.registry.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Tenant> {
        self.registry.get(name)
    }

    /// The tenant whose namespace root is `path` or one of its ancestors.
    pub fn owner_of(&self, path: &str) -> Option<&Tenant> {
        if self.by_root.is_empty() {
            return None;
        }
        let mut p = path;
        loop {
            if let Some(name) = self.by_root.get(p) {
                return self.registry.get(name);
            }
            if p == "/" || p.is_empty() {
                return None;
            }
            p = corral_store::parent(p);
        }
    }

    /// The tenant whose namespace `path` lies strictly below (so the root
    /// itself, which belongs to the operator, is not counted as usage).
    pub fn namespace_of(&self, path: &str) -> Option<&Tenant> {
        self.owner_of(path).filter(|t| t.root != path)
    }

    /// Every namespace root.
    pub fn roots(&self) -> impl Iterator<Item = &str> {
        self.by_root.keys().map(String::as_str)
    }
}
