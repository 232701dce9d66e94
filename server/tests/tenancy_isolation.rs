//! The isolation suite: two tenants and a super identity. For every opcode a
//! tenant tries to read, write, watch, list, count or infer the other
//! tenant's data (dotted and malformed paths, absolute server paths, multi
//! mixes, recursive watches on "/"); each attempt must be refused or see
//! nothing. Also the reserved registry subtree, registry changes at commit,
//! the unbound policies, IP binding and CVE-2024-23944.

mod common;

use common::tenants::{
    auth_req, digest_tenant, raw_tenant, super_client, tenant_client, tenant_node, A, B,
};
use common::{code, create_req, decode, ephemeral, path_watch, persistent, within, Raw, TestNode};
use corral_proto::opcode::{add_watch_mode, event_type, watcher_type};
use corral_proto::request::{
    AddWatchRequest, CheckVersionRequest, DeleteRequest, SetAclRequest, SetDataRequest, SetWatches,
    WatchesRequest,
};
use corral_proto::{Acl, MultiOp, MultiResult, OpCode, Request, Response, WatcherEvent};
use corral_server::tenancy::UnboundPolicy;
use corral_tenant::{Binding, Quotas, Tenant};
use zookeeper_client as zk;

const QUOTA_EXCEEDED: i32 = -125;
const REQUIRE_AUTH: i32 = -124;
const NOT_EMPTY: i32 = -111;

async fn two_tenants() -> TestNode {
    tenant_node(
        vec![
            digest_tenant(A, Quotas::default()),
            digest_tenant(B, Quotas::default()),
        ],
        |_| {},
    )
    .await
}

/// Team B's data: a persistent node with a child, an ephemeral and a
/// sequential node, all holding the marker "b-secret".
async fn seed_team_b(node: &TestNode) -> zk::Client {
    let b = tenant_client(node, B).await;
    b.create("/secret", b"b-secret", &persistent())
        .await
        .unwrap();
    b.create("/secret/kid", b"b-secret", &persistent())
        .await
        .unwrap();
    b.create("/eph", b"b-secret", &ephemeral()).await.unwrap();
    b
}

/// Paths a tenant-A client might try to reach team B's data with.
const PROBES: &[&str] = &[
    "/secret",
    "/secret/kid",
    "/eph",
    "/tenants/team-b/secret",
    "/tenants/team-b",
    "/tenants",
    "/zookeeper/corral/tenants/team-b",
    "/../team-b/secret",
    "/./secret",
    "/a/../../team-b",
    "secret",
    "//secret",
    "/secret/",
    "/secret\u{0}",
];

/// The reads of every opcode that takes a path.
fn reads_of(path: &str) -> Vec<Request> {
    vec![
        Request::Exists(path_watch(path, true)),
        Request::GetData(path_watch(path, true)),
        Request::GetChildren(path_watch(path, true)),
        Request::GetChildren2(path_watch(path, false)),
        Request::GetAcl(path.into()),
        Request::GetAllChildrenNumber(path.into()),
        Request::MultiRead(vec![
            MultiOp::GetData(path.into()),
            MultiOp::GetChildren(path.into()),
        ]),
        Request::AddWatch(AddWatchRequest {
            path: path.into(),
            mode: add_watch_mode::PERSISTENT_RECURSIVE,
        }),
        Request::Sync(path.into()),
    ]
}

/// The client crate's permission for ZooKeeper's permission bits.
fn perm(bits: i32) -> zk::Permission {
    [
        zk::Permission::READ,
        zk::Permission::WRITE,
        zk::Permission::CREATE,
        zk::Permission::DELETE,
        zk::Permission::ADMIN,
    ]
    .into_iter()
    .enumerate()
    .filter(|(i, _)| bits & (1 << i) != 0)
    .fold(zk::Permission::NONE, |acc, (_, p)| acc | p)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn every_read_of_another_tenants_data_is_refused_or_empty() {
    // Goal: for each read opcode and each probe path (relative, dotted,
    // absolute server paths, the registry, malformed), tenant A gets NoNode,
    // BadArguments or an answer about its own namespace, never B's data.
    common::run(async {
        let node = two_tenants().await;
        let _b = seed_team_b(&node).await;
        let mut a = raw_tenant(&node, A).await;
        for probe in PROBES {
            for req in reads_of(probe) {
                let op = req.opcode();
                let (events, h, body) = a.call(&req).await;
                assert!(events.is_empty(), "{op:?} {probe:?}: events {events:?}");
                // (A probe naming team-b may be echoed back, as sync does.)
                let named = probe.contains("team-b");
                assert!(
                    !contains(&body, b"b-secret") && (named || !contains(&body, b"team-b")),
                    "{op:?} {probe:?} leaked: {body:?}"
                );
                let allowed_ok = matches!(op, OpCode::MultiRead | OpCode::AddWatch | OpCode::Sync);
                match h.err {
                    code::NO_NODE | code::BAD_ARGUMENTS => {}
                    0 if allowed_ok => {
                        if op == OpCode::MultiRead {
                            let Response::Multi(rs) = decode(op, &body) else {
                                panic!("multiRead reply")
                            };
                            for r in rs {
                                assert_eq!(r, MultiResult::Error(code::NO_NODE), "{probe:?}");
                            }
                        }
                    }
                    e => panic!("{op:?} {probe:?}: unexpected {e}"),
                }
            }
        }
        // The tenant's own root is all it sees, and it counts only itself.
        let (_, h, body) = a.call(&Request::GetChildren(path_watch("/", false))).await;
        assert_eq!(h.err, 0);
        assert_eq!(
            decode(OpCode::GetChildren, &body),
            Response::Children(vec![])
        );
        let (_, h, body) = a.call(&Request::GetAllChildrenNumber("/".into())).await;
        assert_eq!(h.err, 0);
        assert_eq!(
            decode(OpCode::GetAllChildrenNumber, &body),
            Response::Number(0)
        );
        let (_, h, body) = a.call(&Request::GetEphemerals("/".into())).await;
        assert_eq!(h.err, 0);
        assert_eq!(
            decode(OpCode::GetEphemerals, &body),
            Response::Strings(vec![])
        );
        // The same questions after A writes its own data: answers in A's terms.
        let (_, h, _) = a
            .call(&Request::Create(
                OpCode::Create,
                create_req("/mine", b"a", 1),
            ))
            .await;
        assert_eq!(h.err, 0);
        let (_, _, body) = a.call(&Request::GetChildren(path_watch("", false))).await;
        assert_eq!(
            decode(OpCode::GetChildren, &body),
            Response::Children(vec!["mine".into()])
        );
        let (_, _, body) = a.call(&Request::GetAllChildrenNumber("/".into())).await;
        assert_eq!(
            decode(OpCode::GetAllChildrenNumber, &body),
            Response::Number(1)
        );
        let (_, _, body) = a.call(&Request::GetEphemerals("".into())).await;
        assert_eq!(
            decode(OpCode::GetEphemerals, &body),
            Response::Strings(vec!["/mine".into()])
        );
        let (_, _, body) = a.call(&Request::GetEphemerals("/m".into())).await;
        assert_eq!(
            decode(OpCode::GetEphemerals, &body),
            Response::Strings(vec!["/mine".into()])
        );
        let (_, _, body) = a.call(&Request::Sync("/mine".into())).await;
        assert_eq!(decode(OpCode::Sync, &body), Response::Path("/mine".into()));
        let (_, _, body) = a.call(&Request::WhoAmI).await;
        let Response::WhoAmI(ids) = decode(OpCode::WhoAmI, &body) else {
            panic!("whoAmI reply")
        };
        assert!(
            ids.iter()
                .any(|i| i.auth_scheme == "tenant" && i.user == "team-a"),
            "{ids:?}"
        );
    });
}

#[test]
fn every_write_stays_inside_the_namespace() {
    // Goal: creates, deletes, setData, setACL, check and multi mixes aimed at
    // B (or at the root, or malformed) are refused or land inside A's own
    // namespace; B's data and the tree outside A's root are exactly as before.
    common::run(async {
        let node = two_tenants().await;
        let _b = seed_team_b(&node).await;
        let root = super_client(&node).await;
        let before_b = root.get_data("/tenants/team-b/secret").await.unwrap();
        let outside = || async {
            let all = root.count_descendants_number("/").await.unwrap();
            let mine = root
                .count_descendants_number("/tenants/team-a")
                .await
                .unwrap();
            all - mine
        };
        let before_outside = outside().await;
        let mut a = raw_tenant(&node, A).await;
        for probe in PROBES {
            let child = format!("{probe}/x");
            let writes = vec![
                Request::Create(OpCode::Create, create_req(probe, b"a", 0)),
                Request::Create(OpCode::Create2, create_req(&child, b"a", 0)),
                Request::Create(OpCode::Create, create_req(&child, b"a", 2)),
                Request::Delete(DeleteRequest {
                    path: probe.to_string(),
                    version: -1,
                }),
                Request::SetData(SetDataRequest {
                    path: probe.to_string(),
                    data: Some(b"owned".to_vec()),
                    version: -1,
                }),
                Request::SetAcl(SetAclRequest {
                    path: probe.to_string(),
                    acl: Acl::open_unsafe(),
                    version: -1,
                }),
                Request::Check(CheckVersionRequest {
                    path: probe.to_string(),
                    version: -1,
                }),
            ];
            for req in writes {
                let op = req.opcode();
                let (_, h, body) = a.call(&req).await;
                assert!(
                    [
                        0,
                        code::NO_NODE,
                        code::BAD_ARGUMENTS,
                        code::NODE_EXISTS,
                        NOT_EMPTY
                    ]
                    .contains(&h.err),
                    "{op:?} {probe:?}: {}",
                    h.err
                );
                assert!(
                    !contains(&body, b"tenants/team-a"),
                    "{op:?} {probe:?}: {body:?}"
                );
            }
        }
        // Deleting "/" (the tenant root) is refused like deleting ZooKeeper's "/".
        let (_, h, _) = a
            .call(&Request::Delete(DeleteRequest {
                path: "/".into(),
                version: -1,
            }))
            .await;
        assert_eq!(h.err, code::BAD_ARGUMENTS);
        // A multi with one escaping op fails as a whole, at that op.
        let multi = Request::Multi(vec![
            MultiOp::Create(OpCode::Create, create_req("/ok", b"a", 0)),
            MultiOp::Delete(DeleteRequest {
                path: "/../team-b/secret".into(),
                version: -1,
            }),
            MultiOp::SetData(SetDataRequest {
                path: "/tenants/team-b/secret".into(),
                data: None,
                version: -1,
            }),
        ]);
        let (_, h, body) = a.call(&multi).await;
        assert_eq!(h.err, 0);
        let Response::Multi(rs) = decode(OpCode::Multi, &body) else {
            panic!("multi reply")
        };
        assert_eq!(
            rs,
            vec![
                MultiResult::Error(0),
                MultiResult::Error(code::BAD_ARGUMENTS),
                MultiResult::Error(code::RUNTIME_INCONSISTENCY),
            ]
        );
        assert_eq!(
            root.get_data("/tenants/team-b/secret").await.unwrap(),
            before_b
        );
        assert_eq!(outside().await, before_outside);
        assert!(root
            .check_stat("/tenants/team-a/ok")
            .await
            .unwrap()
            .is_none());
        let b = tenant_client(&node, B).await;
        assert_eq!(b.count_descendants_number("/").await.unwrap(), 3);
    });
}

/// Events on `raw` until the reply to a fresh getData of `/`, which every
/// event for a change made before it precedes.
async fn drain_events(raw: &mut Raw) -> Vec<WatcherEvent> {
    let (events, _, _) = raw.call(&Request::Exists(path_watch("/", false))).await;
    events
}

#[test]
fn watches_never_hear_about_another_tenant() {
    // Goal: recursive, persistent, data, exist and child watches of A (set by
    // request or by setWatches) hear nothing of B's changes; A's own changes
    // arrive with A's paths; super's recursive watch on "/" sees server paths.
    common::run(async {
        let node = two_tenants().await;
        let b = seed_team_b(&node).await;
        let sup = super_client(&node).await;
        let mut sup_watch = sup
            .watch("/", zk::AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        let mut a = raw_tenant(&node, A).await;
        for (path, mode) in [
            ("/", add_watch_mode::PERSISTENT_RECURSIVE),
            ("/secret", add_watch_mode::PERSISTENT),
        ] {
            let (_, h, _) = a
                .call(&Request::AddWatch(AddWatchRequest {
                    path: path.into(),
                    mode,
                }))
                .await;
            assert_eq!(h.err, 0);
        }
        a.call(&Request::Exists(path_watch("/secret", true))).await;
        a.call(&Request::GetChildren(path_watch("/", true))).await;
        let sw = SetWatches {
            relative_zxid: 0,
            data_watches: vec![],
            exist_watches: vec!["/eph".into(), "/x".into()],
            child_watches: vec![],
            persistent_watches: vec![],
            persistent_recursive_watches: vec!["/tenants".into()],
        };
        let (events, h, _) = a.call(&Request::SetWatches2(sw)).await;
        assert_eq!(h.err, 0);
        assert!(
            events.is_empty(),
            "A's exist watches see only A: {events:?}"
        );
        let bad = SetWatches {
            exist_watches: vec!["/../team-b/eph".into()],
            ..SetWatches::default()
        };
        let (_, h, _) = a.call(&Request::SetWatches2(bad)).await;
        assert_eq!(h.err, code::BAD_ARGUMENTS);
        // B changes everything it has.
        b.set_data("/secret", b"b-secret-2", None).await.unwrap();
        b.create("/x", b"b-secret", &persistent()).await.unwrap();
        b.delete("/secret/kid", None).await.unwrap();
        b.create("/tenants", b"", &persistent()).await.unwrap();
        let ev = within("super hears B", sup_watch.changed()).await;
        assert!(ev.path.starts_with("/tenants/team-b/"), "{ev:?}");
        let events = drain_events(&mut a).await;
        assert!(events.is_empty(), "A heard B: {events:?}");
        // A's own change reaches A's watches, in A's paths.
        let (events, h, _) = a
            .call(&Request::Create(
                OpCode::Create,
                create_req("/secret", b"a", 0),
            ))
            .await;
        assert_eq!(h.err, 0);
        let mut events = [events, drain_events(&mut a).await].concat();
        events.sort_by_key(|e| (e.path.clone(), e.event_type));
        let seen: Vec<(i32, &str)> = events
            .iter()
            .map(|e| (e.event_type, e.path.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (event_type::NODE_CHILDREN_CHANGED, "/"),
                (event_type::NODE_CREATED, "/secret"),
            ],
            "{events:?}"
        );
        // removeWatches/checkWatches name A's paths only; escapes are refused.
        for (path, want) in [
            ("/secret", 0),
            ("/nowatch", code::NO_WATCHER),
            ("../x", code::BAD_ARGUMENTS),
        ] {
            let (_, h, _) = a
                .call(&Request::CheckWatches(WatchesRequest {
                    path: path.into(),
                    watcher_type: watcher_type::ANY,
                }))
                .await;
            assert_eq!(h.err, want, "checkWatches {path}");
        }
    });
}

#[test]
fn recursive_watch_does_not_leak_unreadable_children_cve_2024_23944() {
    // Goal: a persistent recursive watch on "/" (inside a tenant, and from
    // super-less sessions of another tenant) gets no event for nodes its
    // session may not READ, so child paths under a protected node stay hidden.
    common::run(async {
        let node = two_tenants().await;
        let owner = tenant_client(&node, A).await;
        within("second identity", owner.auth("digest", b"owner:x"))
            .await
            .unwrap();
        let mut peer = raw_tenant(&node, A).await;
        let mut other = raw_tenant(&node, B).await;
        for raw in [&mut peer, &mut other] {
            let (_, h, _) = raw
                .call(&Request::AddWatch(AddWatchRequest {
                    path: "/".into(),
                    mode: add_watch_mode::PERSISTENT_RECURSIVE,
                }))
                .await;
            assert_eq!(h.err, 0);
        }
        let only_owner = [zk::Acl::new(
            zk::Permission::ALL,
            zk::AuthId::new("digest", &corral_auth::digest_id("owner", "x")),
        )];
        let private = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&only_owner));
        owner.create("/private", b"p", &private).await.unwrap();
        owner
            .create("/private/hidden-child", b"p", &private)
            .await
            .unwrap();
        owner
            .set_data("/private/hidden-child", b"q", None)
            .await
            .unwrap();
        owner.create("/public", b"p", &persistent()).await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..50 {
            seen.extend(drain_events(&mut peer).await);
            if seen.iter().any(|e| e.path == "/public") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(seen.iter().any(|e| e.path == "/public"), "{seen:?}");
        assert!(
            seen.iter().all(|e| !e.path.starts_with("/private")),
            "leaked: {seen:?}"
        );
        assert!(drain_events(&mut other).await.is_empty());
    });
}

#[test]
fn create_replies_and_sequences_read_in_the_client_view() {
    // Goal: create, create2, sequential creates under "/" and multi creates
    // return the client's paths, never the server's.
    common::run(async {
        let node = two_tenants().await;
        let mut a = raw_tenant(&node, A).await;
        let (_, h, body) = a
            .call(&Request::Create(OpCode::Create, create_req("/", b"", 2)))
            .await;
        assert_eq!(h.err, 0);
        assert_eq!(
            decode(OpCode::Create, &body),
            Response::Path("/0000000000".into())
        );
        let (_, _, body) = a
            .call(&Request::Create(OpCode::Create2, create_req("/n", b"", 0)))
            .await;
        let Response::PathStat(p, _) = decode(OpCode::Create2, &body) else {
            panic!("create2 reply")
        };
        assert_eq!(p, "/n");
        let (_, _, body) = a
            .call(&Request::Multi(vec![
                MultiOp::Create(OpCode::Create, create_req("/n/s-", b"", 2)),
                MultiOp::Create(OpCode::Create2, create_req("/n/t", b"", 0)),
            ]))
            .await;
        let Response::Multi(rs) = decode(OpCode::Multi, &body) else {
            panic!("multi reply")
        };
        assert_eq!(rs[0], MultiResult::Create("/n/s-0000000000".into()));
        // Inside a multi, create2 answers as create (ZooKeeper re-reads flags).
        assert_eq!(rs[1], MultiResult::Create("/n/t".into()));
        let sup = super_client(&node).await;
        assert!(sup
            .check_stat("/tenants/team-a/n/s-0000000000")
            .await
            .unwrap()
            .is_some());
    });
}

#[test]
fn the_registry_subtree_is_super_only() {
    // Goal: a session that sees the whole tree (open policy) but is not super
    // can neither read, write nor watch /zookeeper/corral, and hears no event
    // from it; super reads the records.
    common::run(async {
        let node = tenant_node(vec![digest_tenant(A, Quotas::default())], |o| {
            o.tenancy.unbound = UnboundPolicy::Open;
        })
        .await;
        let mut open = Raw::connect(node.addr, 6000).await;
        let record = "/zookeeper/corral/tenants/team-a";
        for path in ["/zookeeper/corral", "/zookeeper/corral/tenants", record] {
            for req in reads_of(path) {
                let op = req.opcode();
                if op == OpCode::Sync {
                    continue;
                }
                let (_, h, body) = open.call(&req).await;
                if op == OpCode::MultiRead {
                    let Response::Multi(rs) = decode(op, &body) else {
                        panic!("multiRead reply")
                    };
                    assert!(rs.iter().all(|r| *r == MultiResult::Error(code::NO_AUTH)));
                } else {
                    assert_eq!(h.err, code::NO_AUTH, "{op:?} {path}");
                }
            }
        }
        for req in [
            Request::Create(OpCode::Create, create_req("/zookeeper/corral/x", b"", 0)),
            Request::SetData(SetDataRequest {
                path: record.into(),
                data: Some(b"{}".to_vec()),
                version: -1,
            }),
            Request::Delete(DeleteRequest {
                path: record.into(),
                version: -1,
            }),
        ] {
            let (_, h, _) = open.call(&req).await;
            assert_eq!(h.err, code::NO_AUTH, "{:?}", req.opcode());
        }
        let (_, h, _) = open
            .call(&Request::AddWatch(AddWatchRequest {
                path: "/".into(),
                mode: add_watch_mode::PERSISTENT_RECURSIVE,
            }))
            .await;
        assert_eq!(h.err, 0);
        let sup = super_client(&node).await;
        let (data, stat) = sup.get_data(record).await.unwrap();
        let mut t = Tenant::from_json(&data).expect("record");
        t.quotas.max_znodes = Some(7);
        sup.set_data(record, &t.to_json(), Some(stat.version))
            .await
            .unwrap();
        let events = drain_events(&mut open).await;
        assert!(
            events.iter().all(|e| !e.path.starts_with("/zookeeper")),
            "{events:?}"
        );
    });
}

#[test]
fn invalid_registry_writes_are_refused_and_change_nothing() {
    // Goal: super's malformed, misnamed, overlapping, conflicting or
    // root-moving records, deeper nodes and non-persistent records are
    // BadArguments; the registry keeps exactly its two tenants.
    common::run(async {
        let node = two_tenants().await;
        let sup = super_client(&node).await;
        let reg = "/zookeeper/corral/tenants";
        let acl = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        let mut overlapping = Tenant::new("team-c");
        overlapping.root = "/tenants/team-a/inner".into();
        let mut conflicting = digest_tenant(("team-c", "alice", "zz"), Quotas::default());
        conflicting.root = "/elsewhere".into();
        let cases: Vec<(String, Vec<u8>)> = vec![
            (format!("{reg}/team-c"), b"not json".to_vec()),
            (format!("{reg}/team-c"), Tenant::new("team-d").to_json()),
            (format!("{reg}/team-c"), overlapping.to_json()),
            (format!("{reg}/team-c"), conflicting.to_json()),
            (format!("{reg}/Team-C"), Tenant::new("Team-C").to_json()),
            (format!("{reg}/team-a/deeper"), b"".to_vec()),
        ];
        for (path, data) in cases {
            let e = sup.create(&path, &data, &acl).await.unwrap_err();
            assert!(matches!(e, zk::Error::BadArguments(_)), "{path}: {e:?}");
        }
        let e = sup
            .create(
                &format!("{reg}/team-c"),
                &Tenant::new("team-c").to_json(),
                &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, zk::Error::BadArguments(_)), "{e:?}");
        let mut moved = Tenant::new("team-a");
        moved.root = "/moved".into();
        let e = sup
            .set_data(&format!("{reg}/team-a"), &moved.to_json(), None)
            .await
            .unwrap_err();
        assert!(matches!(e, zk::Error::BadArguments(_)), "{e:?}");
        let names = sup.list_children(reg).await.unwrap();
        assert_eq!(names, vec!["team-a", "team-b"]);
        let dir = node.shared().tenancy.directory();
        assert_eq!(dir.registry().len(), 2);
        assert!(dir
            .get("team-a")
            .is_some_and(|t| t.root == "/tenants/team-a"));
        // The bound tenants still work.
        let a = tenant_client(&node, A).await;
        a.create("/still", b"", &persistent()).await.unwrap();
    });
}

#[test]
fn registry_changes_take_effect_at_commit_without_restart() {
    // Goal: a tenant created through znode writes binds the next session at
    // once, a quota update applies to the next write, and deleting the
    // tenant closes its connections and stops new binds.
    common::run(async {
        let node = two_tenants().await;
        let sup = super_client(&node).await;
        let c = ("team-c", "carol", "pc");
        let tenant = digest_tenant(c, Quotas::default());
        for step in corral_server::tenancy::bootstrap::creation_plan(&tenant) {
            let acl: Vec<zk::Acl> = step
                .acl
                .iter()
                .map(|a| zk::Acl::new(perm(a.perms), zk::AuthId::new(&a.id.scheme, &a.id.id)))
                .collect();
            let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acl));
            match sup.create(&step.path, &step.data, &opts).await {
                Ok(_) | Err(zk::Error::NodeExists) if step.may_exist => {}
                r => {
                    r.unwrap();
                }
            }
        }
        let mut carol = raw_tenant(&node, c).await;
        let (_, h, _) = carol
            .call(&Request::Create(OpCode::Create, create_req("/one", b"", 0)))
            .await;
        assert_eq!(h.err, 0);
        assert!(sup
            .check_stat("/tenants/team-c/one")
            .await
            .unwrap()
            .is_some());
        let record = "/zookeeper/corral/tenants/team-c";
        let (data, stat) = sup.get_data(record).await.unwrap();
        let mut t = Tenant::from_json(&data).unwrap();
        t.quotas.max_znodes = Some(1);
        sup.set_data(record, &t.to_json(), Some(stat.version))
            .await
            .unwrap();
        let (_, h, _) = carol
            .call(&Request::Create(OpCode::Create, create_req("/two", b"", 0)))
            .await;
        assert_eq!(h.err, QUOTA_EXCEEDED);
        sup.delete(record, None).await.unwrap();
        assert!(
            carol.closed_by_server().await,
            "connection of a deleted tenant"
        );
        let mut again = Raw::connect(node.addr, 6000).await;
        let (_, h, _) = again.call(&auth_req("carol:pc")).await;
        assert_eq!(h.err, 0, "carol is a plain digest user now");
        let (_, h, _) = again.call(&Request::Exists(path_watch("/", false))).await;
        assert_eq!(h.err, REQUIRE_AUTH, "unbound sessions are refused");
        assert!(again.closed_by_server().await);
    });
}

#[test]
fn unbound_sessions_follow_the_policy() {
    // Goal: refuse closes an unbound session at its first request (after
    // letting it authenticate); default places it in the default tenant;
    // open shows it the whole tree; a wrong password of a tenant user is
    // AuthFailed.
    common::run(async {
        let node = two_tenants().await;
        let mut raw = Raw::connect(node.addr, 6000).await;
        let (_, h, _) = raw.call(&Request::GetData(path_watch("/", false))).await;
        assert_eq!(h.err, REQUIRE_AUTH);
        assert!(raw.closed_by_server().await);
        let mut wrong = Raw::connect(node.addr, 6000).await;
        let (_, h, _) = wrong.call(&auth_req("alice:nope")).await;
        assert_eq!(h.err, -115);
        assert!(wrong.closed_by_server().await);
        drop(node);

        let node = tenant_node(vec![digest_tenant(A, Quotas::default())], |o| {
            o.tenancy.unbound = UnboundPolicy::Default("team-a".into());
        })
        .await;
        let mut raw = Raw::connect(node.addr, 6000).await;
        let (_, h, body) = raw
            .call(&Request::Create(OpCode::Create, create_req("/d", b"", 0)))
            .await;
        assert_eq!(h.err, 0);
        assert_eq!(decode(OpCode::Create, &body), Response::Path("/d".into()));
        let sup = super_client(&node).await;
        assert!(sup.check_stat("/tenants/team-a/d").await.unwrap().is_some());
        drop(node);

        let node = tenant_node(vec![digest_tenant(A, Quotas::default())], |o| {
            o.tenancy.unbound = UnboundPolicy::Open;
        })
        .await;
        let mut raw = Raw::connect(node.addr, 6000).await;
        let (_, h, body) = raw
            .call(&Request::GetChildren(path_watch("/", false)))
            .await;
        assert_eq!(h.err, 0);
        let Response::Children(mut c) = decode(OpCode::GetChildren, &body) else {
            panic!("children")
        };
        c.sort();
        assert_eq!(c, vec!["tenants", "zookeeper"]);
    });
}

#[test]
fn ip_binding_binds_at_connect_and_super_widens() {
    // Goal: a tenant bound to 127.0.0.1/32 takes every loopback session at
    // connect; addauth as super then shows that connection the whole tree.
    common::run(async {
        let mut t = Tenant::new("local");
        t.bindings.push(Binding::Ip {
            cidr: "127.0.0.1/32".into(),
        });
        let node = tenant_node(vec![t], |_| {}).await;
        let mut raw = Raw::connect(node.addr, 6000).await;
        let (_, h, body) = raw
            .call(&Request::Create(OpCode::Create, create_req("/x", b"", 0)))
            .await;
        assert_eq!(h.err, 0);
        assert_eq!(decode(OpCode::Create, &body), Response::Path("/x".into()));
        let (_, h, _) = raw.call(&auth_req("super:test")).await;
        assert_eq!(h.err, 0);
        let (_, h, _) = raw
            .call(&Request::Exists(path_watch("/tenants/local/x", false)))
            .await;
        assert_eq!(h.err, 0, "super sees server paths");
    });
}

#[test]
fn a_binding_never_changes_and_ip_rules_hold_at_bind() {
    // Goal: a session bound to A stays in A after authenticating as B's user;
    // a tenant whose ip_deny covers the client refuses the bind (AuthFailed).
    common::run(async {
        let mut denied = digest_tenant(("team-d", "dan", "pd"), Quotas::default());
        denied.ip_deny = vec!["127.0.0.0/8".into()];
        let node = tenant_node(
            vec![
                digest_tenant(A, Quotas::default()),
                digest_tenant(B, Quotas::default()),
                denied,
            ],
            |_| {},
        )
        .await;
        let mut a = raw_tenant(&node, A).await;
        let (_, h, _) = a.call(&auth_req("bob:pb")).await;
        assert_eq!(h.err, 0, "the identity is added");
        let (_, h, body) = a
            .call(&Request::Create(
                OpCode::Create,
                create_req("/still-a", b"", 0),
            ))
            .await;
        assert_eq!(h.err, 0);
        assert_eq!(
            decode(OpCode::Create, &body),
            Response::Path("/still-a".into())
        );
        let sup = super_client(&node).await;
        assert!(sup
            .check_stat("/tenants/team-a/still-a")
            .await
            .unwrap()
            .is_some());
        assert!(sup
            .check_stat("/tenants/team-b/still-a")
            .await
            .unwrap()
            .is_none());
        let mut d = Raw::connect(node.addr, 6000).await;
        let (_, h, _) = d.call(&auth_req("dan:pd")).await;
        assert_eq!(h.err, -115);
        assert!(d.closed_by_server().await);
    });
}
