//! Usage counters per namespace root (the tenants' quotas).
//!
//! The server registers the namespace roots it accounts for
//! ([`DataTree::set_usage_roots`](crate::DataTree::set_usage_roots)); the tree
//! then keeps, for each root, the number of znodes strictly below it, the sum
//! of their data lengths and how many of them are ephemeral. The counters move
//! with every node the tree creates, deletes (subtree removals in replay
//! included) or rewrites, so they always equal a full recount
//! ([`DataTree::count_usage`](crate::DataTree::count_usage)).
//!
//! The counters are derived state: not in snapshots, not in the digest. A tree
//! loaded from disk has no roots until the server registers them, which counts
//! each root's subtree once. Roots must be pairwise disjoint (the tenant
//! registry guarantees it); a path is attributed to the one root that is its
//! proper ancestor.

use std::collections::HashMap;

/// What the znodes strictly below one namespace root use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NamespaceUsage {
    pub znodes: u64,
    /// Sum of data lengths (names and metadata are not counted).
    pub data_bytes: u64,
    pub ephemerals: u64,
}

impl NamespaceUsage {
    pub(crate) fn add(&mut self, data_len: usize, ephemeral: bool) {
        self.znodes += 1;
        self.data_bytes += data_len as u64;
        if ephemeral {
            self.ephemerals += 1;
        }
    }

    pub(crate) fn sub(&mut self, data_len: usize, ephemeral: bool) {
        // Going below zero means a node was removed that was never counted: a
        // bookkeeping bug that would let a tenant exceed its quota. Crash.
        self.znodes = self.znodes.checked_sub(1).expect("usage: znodes below 0");
        self.data_bytes = self
            .data_bytes
            .checked_sub(data_len as u64)
            .expect("usage: data bytes below 0");
        if ephemeral {
            self.ephemerals = self
                .ephemerals
                .checked_sub(1)
                .expect("usage: ephemerals below 0");
        }
    }
}

/// The registered roots and their counters.
#[derive(Debug, Default)]
pub(crate) struct UsageIndex {
    pub(crate) roots: HashMap<String, NamespaceUsage>,
}

impl UsageIndex {
    /// The counters of the root `path` lies strictly below, if any.
    pub(crate) fn for_path(&mut self, path: &str) -> Option<&mut NamespaceUsage> {
        if self.roots.is_empty() {
            return None;
        }
        let root = owning_root(&self.roots, path)?;
        self.roots.get_mut(root)
    }
}

/// The proper ancestor of `path` that is a key of `roots`.
fn owning_root<'a, V>(roots: &HashMap<String, V>, path: &'a str) -> Option<&'a str> {
    let mut p = path;
    while p != "/" && !p.is_empty() {
        p = crate::path::parent(p);
        if roots.contains_key(p) {
            return Some(p);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataTree, Txn, TxnHeader};
    use corral_proto::Acl;
    use rand::{Rng, SeedableRng};

    fn hdr(tree: &DataTree, session_id: i64) -> TxnHeader {
        TxnHeader {
            session_id,
            cxid: 0,
            zxid: tree.last_zxid() + 1,
            time_ms: 1,
        }
    }

    fn create(tree: &mut DataTree, path: &str, len: usize, owner: i64) {
        let t = Txn::Create {
            path: path.into(),
            data: Some(vec![7; len]),
            acl: Acl::open_unsafe(),
            ephemeral_owner: owner,
            parent_cversion: 1,
        };
        let h = hdr(tree, owner);
        tree.apply(&h, &t);
    }

    fn assert_exact(tree: &DataTree) {
        for root in tree.usage_roots() {
            assert_eq!(
                tree.usage(&root),
                Some(tree.count_usage(&root)),
                "maintained usage of {root} differs from a recount"
            );
        }
    }

    #[test]
    fn counts_only_below_registered_disjoint_roots() {
        // Goal: nodes strictly below a root count for it; the root itself,
        // siblings sharing a string prefix and nodes elsewhere do not.
        let mut t = DataTree::new();
        create(&mut t, "/t", 0, 0);
        create(&mut t, "/t/a", 3, 0);
        create(&mut t, "/t/ab", 5, 0);
        t.set_usage_roots(["/t/a", "/t/ab"]);
        create(&mut t, "/t/a/x", 10, 0);
        create(&mut t, "/t/a/e", 1, 42);
        create(&mut t, "/t/ab/y", 4, 0);
        create(&mut t, "/other", 100, 0);
        let a = t.usage("/t/a").expect("registered");
        assert_eq!(
            a,
            NamespaceUsage {
                znodes: 2,
                data_bytes: 11,
                ephemerals: 1
            }
        );
        assert_eq!(t.usage("/t/ab").expect("registered").znodes, 1);
        assert_exact(&t);
        // Closing the session deletes its ephemeral and its count.
        let h = hdr(&t, 42);
        t.apply(&h, &Txn::CloseSession);
        assert_eq!(t.usage("/t/a").expect("registered").ephemerals, 0);
        assert_exact(&t);
    }

    #[test]
    fn random_ops_keep_counters_equal_to_a_recount() {
        // Goal: over random creates, deletes (whole subtrees included, as replay
        // does), setData, session closes and root changes, the maintained
        // counters always equal a full recount.
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut t = DataTree::new();
        for r in ["/r1", "/r2", "/r3"] {
            create(&mut t, r, 0, 0);
        }
        t.set_usage_roots(["/r1", "/r2"]);
        let mut paths: Vec<String> = vec!["/r1".into(), "/r2".into(), "/r3".into()];
        for step in 0..2000 {
            let pick = paths[rng.gen_range(0..paths.len())].clone();
            match rng.gen_range(0..10) {
                0..=4 => {
                    let p = format!("{pick}/n{step}");
                    let owner = if rng.gen_bool(0.2) {
                        rng.gen_range(1..4)
                    } else {
                        0
                    };
                    create(&mut t, &p, rng.gen_range(0..50), owner);
                    if t.get(&p).is_some() {
                        paths.push(p);
                    }
                }
                5 | 6 if pick.matches('/').count() > 1 => {
                    let h = hdr(&t, 0);
                    t.apply(&h, &Txn::Delete { path: pick.clone() });
                    paths.retain(|p| t.get(p).is_some());
                }
                7 => {
                    let h = hdr(&t, 0);
                    let data = Some(vec![1; rng.gen_range(0..80)]);
                    t.apply(
                        &h,
                        &Txn::SetData {
                            path: pick,
                            data,
                            version: 1,
                        },
                    );
                }
                8 => {
                    let h = hdr(&t, rng.gen_range(1..4));
                    t.apply(&h, &Txn::CloseSession);
                    paths.retain(|p| t.get(p).is_some());
                }
                _ if step % 100 == 0 => {
                    let roots = match rng.gen_range(0..3) {
                        0 => vec!["/r1"],
                        1 => vec!["/r2", "/r3"],
                        _ => vec!["/r1", "/r2", "/r3"],
                    };
                    t.set_usage_roots(roots);
                }
                _ => {}
            }
            assert_exact(&t);
        }
    }
}
