//! Shared helpers: headers, txn builders, and a miniature prep that turns
//! random abstract operations into valid txns against the current tree.
#![allow(dead_code)]

use corral_proto::{Acl, ErrorCode};
use corral_store::{DataTree, NodeKind, Txn, TxnHeader, CONTAINER_OWNER};
use proptest::prelude::*;

pub fn hdr(session_id: i64, zxid: i64, time_ms: i64) -> TxnHeader {
    TxnHeader {
        session_id,
        cxid: zxid as i32,
        zxid,
        time_ms,
    }
}

pub fn create(path: &str, data: &[u8], owner: i64, parent_cversion: i32) -> Txn {
    Txn::Create {
        path: path.into(),
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        ephemeral_owner: owner,
        parent_cversion,
    }
}

/// Builds a create the way prep would: parent_cversion = persisted + 1, and
/// for sequential creates the `%010d` suffix from the parent's persisted cversion.
pub fn prep_create(tree: &DataTree, path: &str, data: &[u8], owner: i64, sequential: bool) -> Txn {
    let parent = tree.get(corral_store::parent(path)).expect("parent exists");
    let cv = parent.persisted_cversion();
    let path = if sequential {
        format!("{path}{cv:010}")
    } else {
        path.to_string()
    };
    create(&path, data, owner, cv + 1)
}

/// A tree plus a zxid counter.
pub struct Driver {
    pub tree: DataTree,
    pub zxid: i64,
    pub time: i64,
}

impl Driver {
    pub fn new() -> Self {
        Driver {
            tree: DataTree::new(),
            zxid: 0x1_0000_0000,
            time: 1_000,
        }
    }

    pub fn next_hdr(&mut self, session: i64) -> TxnHeader {
        self.zxid += 1;
        self.time += 10;
        hdr(session, self.zxid, self.time)
    }

    pub fn apply(&mut self, session: i64, txn: Txn) -> corral_store::Applied {
        let h = self.next_hdr(session);
        self.tree.apply(&h, &txn)
    }
}

/// An abstract operation; [`prep`] makes it concrete against a tree.
#[derive(Clone, Debug)]
pub enum Op {
    Create {
        parent: usize,
        name: u8,
        data: Vec<u8>,
        kind: u8,
        seq: bool,
    },
    Delete {
        pick: usize,
    },
    SetData {
        pick: usize,
        data: Vec<u8>,
    },
    SetAcl {
        pick: usize,
        read_only: bool,
    },
    OpenSession {
        id: u8,
    },
    CloseSession {
        id: u8,
    },
    /// Binds a session to tenant `t<tenant>`, whatever its state: apply
    /// refuses a missing or otherwise-bound session.
    BindSession {
        id: u8,
        tenant: u8,
    },
    Multi {
        pick: usize,
        name: u8,
        fail: bool,
    },
    Error,
}

pub fn op_strategy() -> impl Strategy<Value = Op> {
    let data = proptest::collection::vec(any::<u8>(), 0..8);
    prop_oneof![
        4 => (any::<usize>(), 0u8..6, data.clone(), 0u8..4, any::<bool>())
            .prop_map(|(parent, name, data, kind, seq)| Op::Create { parent, name, data, kind, seq }),
        2 => any::<usize>().prop_map(|pick| Op::Delete { pick }),
        2 => (any::<usize>(), data).prop_map(|(pick, data)| Op::SetData { pick, data }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(pick, read_only)| Op::SetAcl { pick, read_only }),
        1 => (0u8..3).prop_map(|id| Op::OpenSession { id }),
        1 => (0u8..3).prop_map(|id| Op::CloseSession { id }),
        1 => (0u8..3, 0u8..2).prop_map(|(id, tenant)| Op::BindSession { id, tenant }),
        1 => (any::<usize>(), 0u8..6, any::<bool>()).prop_map(|(pick, name, fail)| Op::Multi { pick, name, fail }),
        1 => Just(Op::Error),
    ]
}

fn paths(tree: &DataTree) -> Vec<String> {
    let mut v = Vec::new();
    tree.for_each_node(|p, _| v.push(p.to_string()));
    v
}

pub fn session_id(id: u8) -> i64 {
    0x100_0000_0000 + i64::from(id)
}

/// Turns `op` into (session, txn) as a leader's prep would.
pub fn prep(tree: &DataTree, op: &Op) -> (i64, Txn) {
    let all = paths(tree);
    let pick = |i: usize| &all[i % all.len()];
    match op {
        Op::Create {
            parent,
            name,
            data,
            kind,
            seq,
        } => {
            let parents: Vec<&String> = all
                .iter()
                .filter(|p| !matches!(tree.get(p).map(|n| n.kind()), Some(NodeKind::Ephemeral(_))))
                .collect();
            let parent = parents[parent % parents.len()];
            let session = tree.sessions().keys().next().copied();
            let owner = match (kind, session) {
                (1, Some(s)) => s,
                (2, _) => CONTAINER_OWNER,
                (3, _) => corral_store::ttl_owner(5_000).unwrap(),
                _ => 0,
            };
            let path = corral_store::path::join(parent, &format!("n{name}"));
            if !seq && tree.get(&path).is_some() {
                return (
                    session.unwrap_or(0),
                    Txn::Error(ErrorCode::NodeExists.code()),
                );
            }
            (
                session.unwrap_or(0),
                prep_create(tree, &path, data, owner, *seq),
            )
        }
        Op::Delete { pick: i } => {
            let p = pick(*i);
            if p == "/" || tree.child_count(p) != Some(0) {
                return (0, Txn::Error(ErrorCode::NotEmpty.code()));
            }
            (0, Txn::Delete { path: p.clone() })
        }
        Op::SetData { pick: i, data } => {
            let p = pick(*i);
            let v = tree.stat(p).unwrap().version + 1;
            (
                0,
                Txn::SetData {
                    path: p.clone(),
                    data: Some(data.clone()),
                    version: v,
                },
            )
        }
        Op::SetAcl { pick: i, read_only } => {
            let p = pick(*i);
            let v = tree.stat(p).unwrap().aversion + 1;
            let acl = if *read_only {
                vec![Acl::new(1, "world", "anyone")]
            } else {
                Acl::open_unsafe()
            };
            (
                0,
                Txn::SetAcl {
                    path: p.clone(),
                    acl,
                    version: v,
                },
            )
        }
        Op::OpenSession { id } => (
            session_id(*id),
            Txn::CreateSession {
                timeout_ms: 30_000,
                passwd: vec![*id; 16],
            },
        ),
        Op::CloseSession { id } => (session_id(*id), Txn::CloseSession),
        Op::BindSession { id, tenant } => (
            session_id(*id),
            Txn::BindSession {
                tenant: format!("t{tenant}"),
            },
        ),
        Op::Multi {
            pick: i,
            name,
            fail,
        } => {
            let p = pick(*i);
            let st = tree.stat(p).unwrap();
            let path = format!("/m{name}");
            let mut subs = vec![
                Txn::Check {
                    path: p.clone(),
                    version: st.version,
                },
                Txn::SetData {
                    path: p.clone(),
                    data: Some(b"multi".to_vec()),
                    version: st.version + 1,
                },
            ];
            if *fail || tree.get(&path).is_some() {
                subs.push(Txn::Error(ErrorCode::NodeExists.code()));
            } else {
                let cv = tree.get("/").unwrap().persisted_cversion();
                subs.push(create(&path, b"", 0, cv + 1));
            }
            (0, Txn::Multi(subs))
        }
        Op::Error => (0, Txn::Error(ErrorCode::BadVersion.code())),
    }
}

/// Every node's path, stat, data and ACL, for readable equality failures.
/// One node of a dump: path, stat, data, ACL.
pub type DumpRow = (String, corral_proto::Stat, Option<Vec<u8>>, Vec<Acl>);

pub fn dump(tree: &DataTree) -> Vec<DumpRow> {
    let mut v = Vec::new();
    tree.for_each_node(|p, n| {
        v.push((
            p.to_string(),
            n.stat(),
            n.data().map(<[u8]>::to_vec),
            n.acl().to_vec(),
        ))
    });
    v
}

/// The entries on which two dumps differ, for readable failures.
pub fn diff(a: &DataTree, b: &DataTree) -> String {
    let (da, db) = (dump(a), dump(b));
    let mut out = String::new();
    for x in &da {
        if !db.contains(x) {
            out += &format!("left only:  {x:?}\n");
        }
    }
    for x in &db {
        if !da.contains(x) {
            out += &format!("right only: {x:?}\n");
        }
    }
    out
}
