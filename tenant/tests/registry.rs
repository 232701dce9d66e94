//! Registry validation, serialisation and identity binding order.

use std::net::IpAddr;

use argon2::{Argon2, Params, PasswordHasher as _};
use corral_proto::ErrorCode;
use corral_tenant::{
    registry, Binding, CertIdentity, Identity, IpDecision, Quotas, Registry, Tenant, TenantError,
    X509Rule,
};

/// A cheap argon2id PHC string so tests stay fast.
fn cheap_hash(password: &str) -> String {
    let params = Params::new(Params::MIN_M_COST, 1, 1, None).expect("params");
    let argon2 = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    argon2
        .hash_password(password.as_bytes())
        .expect("hash")
        .to_string()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn x509(rule: X509Rule) -> Binding {
    Binding::X509 { rule }
}

fn tenant(name: &str, bindings: Vec<Binding>) -> Tenant {
    let mut t = Tenant::new(name);
    t.bindings = bindings;
    t
}

fn cert() -> CertIdentity {
    CertIdentity {
        subject_dn: "CN=svc,OU=team-a,O=corp".into(),
        cn: Some("svc".into()),
        san_uris: vec!["spiffe://corp/team-a/svc".into()],
        san_dns: vec!["svc.team-a.corp".into()],
        san_emails: vec!["svc@team-a.corp".into()],
    }
}

#[test]
fn create_get_list_update_delete() {
    // Goal: the CRUD operations work and report NodeExists / NoNode like znodes do.
    let mut r = Registry::new();
    r.create(Tenant::new("b")).expect("create b");
    r.create(Tenant::new("a")).expect("create a");
    let names: Vec<&str> = r.list().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "listed by name");
    assert_eq!(r.get("a").map(|t| t.root.as_str()), Some("/tenants/a"));

    let e = r.create(Tenant::new("a")).expect_err("duplicate");
    assert_eq!(e.code(), ErrorCode::NodeExists);

    let mut a = Tenant::new("a");
    a.quotas = Quotas {
        max_znodes: Some(5),
        ..Quotas::default()
    };
    let old = r.update(a.clone()).expect("update");
    assert_eq!(old.quotas, Quotas::default());
    assert_eq!(r.get("a"), Some(&a));

    let e = r.update(Tenant::new("zz")).expect_err("missing");
    assert_eq!(e.code(), ErrorCode::NoNode);
    assert_eq!(r.delete("a").expect("delete").name, "a");
    assert_eq!(r.delete("a").expect_err("gone").code(), ErrorCode::NoNode);
    assert_eq!(r.len(), 1);
}

#[test]
fn update_keeps_root_and_refuses_moving_it() {
    // Goal: an update with an empty root keeps the old one; a different root is refused.
    let mut r = Registry::new();
    let mut t = Tenant::new("a");
    t.root = "/teams/a".into();
    r.create(t).expect("create");
    let mut u = Tenant::new("a");
    u.root.clear();
    r.update(u).expect("empty root keeps it");
    assert_eq!(r.get("a").map(|t| t.root.as_str()), Some("/teams/a"));
    let e = r.update(Tenant::new("a")).expect_err("root moved");
    assert!(matches!(e, TenantError::RootChange { .. }), "{e}");
    assert_eq!(e.code(), ErrorCode::BadArguments);
}

#[test]
fn invalid_names_and_roots_are_refused() {
    // Goal: creation validates the name, the root, the reserved subtree and the CIDR lists.
    let mut r = Registry::new();
    for name in ["", "A", "a_b", "-a", &"x".repeat(64)] {
        let e = r.create(Tenant::new(name)).expect_err(name);
        assert!(matches!(e, TenantError::InvalidName { .. }), "{e}");
    }
    for root in [
        "/",
        "/zookeeper",
        "/zookeeper/corral",
        "x",
        "/a/../b",
        "/a/",
    ] {
        let mut t = Tenant::new("a");
        t.root = root.into();
        let e = r.create(t).expect_err(root);
        assert!(matches!(e, TenantError::InvalidRoot { .. }), "{root}: {e}");
    }
    let mut t = Tenant::new("a");
    t.ip_deny = vec!["300.0.0.0/8".into()];
    let e = r.create(t).expect_err("bad cidr");
    assert!(
        matches!(
            e,
            TenantError::InvalidCidr {
                list: "ip_deny",
                ..
            }
        ),
        "{e}"
    );
    assert!(r.is_empty());
}

#[test]
fn roots_must_be_disjoint_but_prefix_siblings_are_fine() {
    // Goal: "/tenants/a" and "/tenants/ab" coexist, while nested or equal roots are refused.
    let mut r = Registry::new();
    r.create(Tenant::new("a")).expect("a");
    r.create(Tenant::new("ab"))
        .expect("ab is a sibling, not a child");
    for (name, root) in [
        ("c", "/tenants/a"),
        ("d", "/tenants/a/x"),
        ("e", "/tenants"),
    ] {
        let mut t = Tenant::new(name);
        t.root = root.into();
        let e = r.create(t).expect_err(root);
        assert!(
            matches!(e, TenantError::OverlappingRoot { .. }),
            "{root}: {e}"
        );
    }
}

#[test]
fn conflicting_bindings_are_refused() {
    // Goal: an identical binding or the same digest user cannot belong to two tenants.
    let mut r = Registry::new();
    let dn = x509(X509Rule::SubjectDn { dn: "CN=x".into() });
    let bob = Binding::Digest {
        user: "bob".into(),
        password_hash: cheap_hash("one"),
    };
    r.create(tenant("a", vec![dn.clone(), bob])).expect("a");
    let e = r.create(tenant("b", vec![dn])).expect_err("same DN");
    assert!(matches!(e, TenantError::ConflictingBinding { .. }), "{e}");
    let bob2 = Binding::Digest {
        user: "bob".into(),
        password_hash: cheap_hash("two"),
    };
    let e = r.create(tenant("b", vec![bob2])).expect_err("same user");
    assert!(!e.to_string().contains("argon2"), "no hash in: {e}");
    // Overlapping (not identical) IP ranges are allowed: longest prefix decides.
    r.create(tenant(
        "b",
        vec![Binding::Ip {
            cidr: "10.0.0.0/8".into(),
        }],
    ))
    .expect("b");
    r.create(tenant(
        "c",
        vec![Binding::Ip {
            cidr: "10.1.0.0/16".into(),
        }],
    ))
    .expect("c");
}

#[test]
fn x509_binding_prefers_specific_rule_kinds() {
    // Goal: subject DN beats SAN URI beats SAN DNS beats SAN email beats CN, regardless of tenant names.
    let c = cert();
    let rules = [
        (
            "e-dn",
            X509Rule::SubjectDn {
                dn: c.subject_dn.clone(),
            },
        ),
        (
            "d-uri",
            X509Rule::SanUri {
                pattern: "spiffe://corp/team-a/*".into(),
            },
        ),
        (
            "c-dns",
            X509Rule::SanDns {
                pattern: "*.team-a.corp".into(),
            },
        ),
        (
            "b-email",
            X509Rule::SanEmail {
                pattern: "*@team-a.corp".into(),
            },
        ),
        ("a-cn", X509Rule::Cn { cn: "svc".into() }),
    ];
    let mut r = Registry::new();
    for (name, rule) in &rules {
        r.create(tenant(name, vec![x509(rule.clone())]))
            .expect(name);
    }
    // Remove the winner each time: the next kind in order takes over.
    for (name, _) in &rules {
        let bound = r.bind(&Identity::X509(&c)).map(|t| t.name.clone());
        assert_eq!(bound.as_deref(), Some(*name));
        r.delete(name).expect("delete");
    }
    assert!(r.bind(&Identity::X509(&c)).is_none());
}

#[test]
fn x509_ties_go_to_first_tenant_by_name() {
    // Goal: two tenants with same-kind rules matching one cert bind deterministically by name.
    let c = cert();
    let mut r = Registry::new();
    r.create(tenant(
        "zeta",
        vec![x509(X509Rule::SanUri {
            pattern: "spiffe://corp/*".into(),
        })],
    ))
    .expect("zeta");
    r.create(tenant(
        "alpha",
        vec![x509(X509Rule::SanUri {
            pattern: "spiffe://corp/team-a/*".into(),
        })],
    ))
    .expect("alpha");
    assert_eq!(
        r.bind(&Identity::X509(&c)).map(|t| t.name.as_str()),
        Some("alpha")
    );
}

#[test]
fn x509_sso_patterns_do_not_cross_teams() {
    // Goal: a team-b certificate never binds to team-a through a glob.
    let mut r = Registry::new();
    r.create(tenant(
        "team-a",
        vec![
            x509(X509Rule::SanUri {
                pattern: "spiffe://corp/team-a/*".into(),
            }),
            x509(X509Rule::SanEmail {
                pattern: "*@team-a.corp".into(),
            }),
        ],
    ))
    .expect("a");
    let b = CertIdentity {
        subject_dn: "CN=x,OU=team-b".into(),
        cn: Some("x".into()),
        san_uris: vec![
            "spiffe://corp/team-ab/x".into(),
            "spiffe://corp/team-b/team-a/x".into(),
        ],
        san_dns: vec![],
        san_emails: vec!["x@team-a.corp.evil".into(), "x@b.team-a.corpx".into()],
    };
    assert!(r.bind(&Identity::X509(&b)).is_none());
}

#[test]
fn digest_binding_verifies_the_password() {
    // Goal: the digest user binds only with the right password, checked against the argon2 hash.
    let mut r = Registry::new();
    r.create(tenant(
        "a",
        vec![Binding::Digest {
            user: "bob".into(),
            password_hash: cheap_hash("s3cret"),
        }],
    ))
    .expect("a");
    let ok = Identity::Digest {
        user: "bob",
        password: "s3cret",
    };
    assert_eq!(r.bind(&ok).map(|t| t.name.as_str()), Some("a"));
    for (user, password) in [
        ("bob", "wrong"),
        ("bob", ""),
        ("alice", "s3cret"),
        ("Bob", "s3cret"),
    ] {
        assert!(
            r.bind(&Identity::Digest { user, password }).is_none(),
            "{user}:{password}"
        );
    }
    assert!(registry::tenant_accepts(r.get("a").expect("a"), &ok));
}

#[test]
fn ip_binding_takes_longest_prefix_then_name() {
    // Goal: the most specific range wins; equal prefixes go to the first tenant by name.
    let mut r = Registry::new();
    r.create(tenant(
        "wide",
        vec![Binding::Ip {
            cidr: "10.0.0.0/8".into(),
        }],
    ))
    .expect("wide");
    r.create(tenant(
        "narrow",
        vec![Binding::Ip {
            cidr: "10.1.0.0/16".into(),
        }],
    ))
    .expect("narrow");
    r.create(tenant(
        "b-v6",
        vec![Binding::Ip {
            cidr: "fd00::/8".into(),
        }],
    ))
    .expect("v6");
    r.create(tenant(
        "a-v6",
        vec![Binding::Ip {
            cidr: "fd00::1/8".into(),
        }],
    ))
    .expect("v6 twin");
    let bind = |s: &str| r.bind(&Identity::Ip(ip(s))).map(|t| t.name.clone());
    assert_eq!(bind("10.1.2.3").as_deref(), Some("narrow"));
    assert_eq!(bind("10.2.0.1").as_deref(), Some("wide"));
    assert_eq!(bind("11.0.0.1"), None);
    assert_eq!(bind("fd12::5").as_deref(), Some("a-v6"));
}

#[test]
fn identity_kinds_never_cross() {
    // Goal: an IP identity never matches an x509 or digest binding, and so on.
    let mut r = Registry::new();
    r.create(tenant(
        "a",
        vec![x509(X509Rule::Cn {
            cn: "10.0.0.1".into(),
        })],
    ))
    .expect("a");
    assert!(r.bind(&Identity::Ip(ip("10.0.0.1"))).is_none());
    assert!(r
        .bind(&Identity::Digest {
            user: "10.0.0.1",
            password: ""
        })
        .is_none());
}

#[test]
fn check_ip_deny_wins() {
    // Goal: the registry-level check applies deny over allow and empty-allow-means-all.
    let mut t = Tenant::new("a");
    t.ip_allow = vec!["192.168.0.0/16".into()];
    t.ip_deny = vec!["192.168.7.0/24".into()];
    assert_eq!(
        registry::check_ip(&t, ip("192.168.1.1")),
        IpDecision::Allowed
    );
    assert_eq!(
        registry::check_ip(&t, ip("192.168.7.1")),
        IpDecision::Denied
    );
    assert_eq!(registry::check_ip(&t, ip("10.0.0.1")), IpDecision::Denied);
}

#[test]
fn owner_of_uses_whole_segments() {
    // Goal: usage attribution never confuses "/tenants/a" with "/tenants/ab".
    let r = Registry::from_tenants([Tenant::new("a"), Tenant::new("ab")]).expect("registry");
    let owner = |p: &str| r.owner_of(p).map(|t| t.name.clone());
    assert_eq!(owner("/tenants/a").as_deref(), Some("a"));
    assert_eq!(owner("/tenants/a/x").as_deref(), Some("a"));
    assert_eq!(owner("/tenants/ab/x").as_deref(), Some("ab"));
    assert_eq!(owner("/tenants/abc"), None);
    assert_eq!(owner("/tenants"), None);
}

#[test]
fn registry_json_round_trip_and_validation() {
    // Goal: the registry survives JSON, and a JSON document that breaks an invariant is refused.
    let mut a = tenant(
        "a",
        vec![
            x509(X509Rule::SanUri {
                pattern: "spiffe://corp/a/*".into(),
            }),
            Binding::Ip {
                cidr: "10.0.0.0/8".into(),
            },
            Binding::Digest {
                user: "bob".into(),
                password_hash: cheap_hash("pw"),
            },
        ],
    );
    a.quotas.max_znodes = Some(100);
    a.ip_allow = vec!["10.0.0.0/8".into()];
    let r = Registry::from_tenants([a, Tenant::new("b")]).expect("registry");
    let back = Registry::from_json(&r.to_json()).expect("round trip");
    assert_eq!(back, r);

    let overlapping = br#"{"tenants":[{"name":"a","root":"/t"},{"name":"b","root":"/t/b"}]}"#;
    let e = Registry::from_json(overlapping).expect_err("overlap");
    assert!(matches!(e, TenantError::OverlappingRoot { .. }), "{e}");
    let e = Registry::from_json(b"[]").expect_err("shape");
    assert_eq!(e.code(), ErrorCode::MarshallingError);
}

#[test]
fn registry_rebuilds_from_system_subtree_nodes() {
    // Goal: the registry loads from /zookeeper/corral/tenants/<name> nodes and checks name agreement.
    assert_eq!(registry::node_path("a"), "/zookeeper/corral/tenants/a");
    assert!(registry::node_path("a").starts_with(corral_tenant::REGISTRY_ROOT));
    let a = Tenant::new("a").to_json();
    let b = Tenant::new("b").to_json();
    let r = Registry::from_nodes([("a", a.as_slice()), ("b", b.as_slice())]).expect("load");
    assert_eq!(r.len(), 2);
    let e = Registry::from_nodes([("x", a.as_slice())]).expect_err("mismatch");
    assert!(matches!(e, TenantError::InvalidName { .. }), "{e}");
}

#[test]
fn tenant_json_is_readable() {
    // Goal: the stored record has the documented, flat shape an operator can edit.
    let mut t = tenant(
        "team-a",
        vec![x509(X509Rule::SanEmail {
            pattern: "*@team-a.corp".into(),
        })],
    );
    t.quotas.max_znodes = Some(10);
    t.ip_deny = vec!["10.9.0.0/16".into()];
    let json = String::from_utf8(t.to_json()).expect("utf8");
    assert_eq!(
        json,
        r#"{"name":"team-a","root":"/tenants/team-a","bindings":[{"kind":"x509","match":"san_email","pattern":"*@team-a.corp"}],"quotas":{"max_znodes":10},"ip_allow":[],"ip_deny":["10.9.0.0/16"]}"#
    );
}
