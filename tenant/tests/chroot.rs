//! The chroot translation table, escape attempts and prefix-sibling confusion.

use corral_proto::ErrorCode;
use corral_tenant::chroot::{self, HIDDEN_PATH};

const ROOT: &str = "/tenants/a";

#[test]
fn translation_table_in_and_out() {
    // Goal: valid client paths map under the root and back to themselves.
    let table = [
        ("/", "/tenants/a"),
        ("/x", "/tenants/a/x"),
        ("/x/y/z", "/tenants/a/x/y/z"),
        ("/zookeeper", "/tenants/a/zookeeper"),
        ("/zookeeper/quota", "/tenants/a/zookeeper/quota"),
        ("/tenants/b", "/tenants/a/tenants/b"),
        ("/...", "/tenants/a/..."),
        ("/a..b", "/tenants/a/a..b"),
        ("/.hidden", "/tenants/a/.hidden"),
        ("/ü", "/tenants/a/ü"),
    ];
    for (client, server) in table {
        assert_eq!(
            chroot::to_inner(ROOT, client).as_deref(),
            Ok(server),
            "in {client}"
        );
        assert_eq!(
            chroot::to_outer(ROOT, server).as_deref(),
            Some(client),
            "out {server}"
        );
    }
}

#[test]
fn escape_attempts_are_bad_arguments() {
    // Goal: no client path, however malformed, lands outside the root; all are BadArguments.
    let attempts = [
        "",
        "..",
        "/..",
        "/../b",
        "/../../",
        "/./..",
        "/x/../../b",
        "/x/..",
        "/.",
        "b",
        "../b",
        "tenants/b",
        "//",
        "//tenants/b",
        "/x//y",
        "/x/",
        "/x\0/../b",
        "/\u{1}",
        "/x/./y",
    ];
    for p in attempts {
        assert_eq!(
            chroot::to_inner(ROOT, p),
            Err(ErrorCode::BadArguments),
            "{p:?}"
        );
    }
    for p in ["/../b/", "/../", "/x/../"] {
        assert_eq!(
            chroot::to_inner_sequential(ROOT, p),
            Err(ErrorCode::BadArguments),
            "{p:?}"
        );
    }
}

#[test]
fn every_translated_path_stays_inside() {
    // Goal: for a grid of odd client paths, any accepted translation lies within the root.
    let pieces = [
        "", "/", ".", "..", "a", "/..", "/.", "b/", "ab", "\u{0}", "%2e%2e", "\\..",
    ];
    let (mut accepted, mut refused) = (0, 0);
    for x in pieces {
        for y in pieces {
            for z in pieces {
                let client = format!("/{x}{y}{z}");
                let results = [
                    chroot::to_inner(ROOT, &client),
                    chroot::to_inner_sequential(ROOT, &client),
                ];
                refused += results.iter().filter(|r| r.is_err()).count();
                for inner in results.into_iter().flatten() {
                    accepted += 1;
                    assert!(chroot::is_within(ROOT, &inner), "{client:?} -> {inner:?}");
                    let rest = &inner[ROOT.len()..];
                    assert!(rest.is_empty() || rest.starts_with('/'), "{inner:?}");
                }
            }
        }
    }
    assert!(
        accepted > 100 && refused > 100,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn prefix_sibling_is_outside() {
    // Goal: "/tenants/ab" is not inside "/tenants/a", in either direction.
    for outside in [
        "/tenants/ab",
        "/tenants/ab/x",
        "/tenants/a-b",
        "/tenants",
        "/",
        "/tenants/",
        "/zookeeper",
    ] {
        assert_eq!(chroot::to_outer(ROOT, outside), None, "{outside}");
        assert!(!chroot::is_within(ROOT, outside), "{outside}");
    }
    assert_eq!(chroot::to_outer("/tenants/ab", "/tenants/a/x"), None);
    assert!(chroot::is_within(ROOT, "/tenants/a"));
    assert!(chroot::is_within(ROOT, "/tenants/a/b"));
}

#[test]
fn sequential_create_paths() {
    // Goal: sequential creates keep ZooKeeper's trailing-slash rule and the returned path reads back.
    assert_eq!(
        chroot::to_inner_sequential(ROOT, "/").as_deref(),
        Ok("/tenants/a/")
    );
    assert_eq!(
        chroot::to_inner_sequential(ROOT, "/lock-").as_deref(),
        Ok("/tenants/a/lock-")
    );
    assert_eq!(
        chroot::to_inner_sequential(ROOT, "/q/").as_deref(),
        Ok("/tenants/a/q/")
    );
    // The server appends the counter; the client gets its own view back.
    assert_eq!(
        chroot::to_outer(ROOT, "/tenants/a/0000000007").as_deref(),
        Some("/0000000007")
    );
    assert_eq!(
        chroot::to_outer(ROOT, "/tenants/a/q/0000000007").as_deref(),
        Some("/q/0000000007")
    );
}

#[test]
fn watch_event_paths() {
    // Goal: events inside read as client paths (root as "/"), events outside are suppressed.
    assert_eq!(chroot::event_path(ROOT, "/tenants/a").as_deref(), Some("/"));
    assert_eq!(
        chroot::event_path(ROOT, "/tenants/a/x/y").as_deref(),
        Some("/x/y")
    );
    // A recursive watch on "/" by tenant a must not see tenant ab's or the parent's events.
    assert_eq!(chroot::event_path(ROOT, "/tenants/ab/x"), None);
    assert_eq!(chroot::event_path(ROOT, "/tenants"), None);
}

#[test]
fn error_paths_never_name_outside() {
    // Goal: a server path in an error message is either the client's view or a placeholder.
    assert_eq!(chroot::error_path(ROOT, "/tenants/a/x"), "/x");
    assert_eq!(chroot::error_path(ROOT, "/tenants/ab/secret"), HIDDEN_PATH);
    assert!(!HIDDEN_PATH.contains('/'));
}

#[test]
fn path_lists() {
    // Goal: outgoing lists drop outside paths; incoming lists fail as a whole on one bad path.
    let server = [
        "/tenants/a/e1",
        "/tenants/ab/e2",
        "/other",
        "/tenants/a",
        "/tenants/a/q/e3",
    ];
    assert_eq!(chroot::paths_to_outer(ROOT, server), ["/e1", "/", "/q/e3"]);
    assert_eq!(
        chroot::paths_to_inner(ROOT, ["/x", "/"]),
        Ok(vec!["/tenants/a/x".to_string(), "/tenants/a".to_string()])
    );
    assert_eq!(
        chroot::paths_to_inner(ROOT, ["/x", "/../b"]),
        Err(ErrorCode::BadArguments)
    );
}

#[test]
fn get_ephemerals_filters_on_client_paths() {
    // Goal: getEphemerals("/") and string prefixes see only this namespace, never a prefix sibling.
    let server = [
        "/tenants/a/e1",
        "/tenants/a/lock/e2",
        "/tenants/ab/e3",
        "/tenants/a-x/e4",
        "/e5",
    ];
    assert_eq!(
        chroot::ephemerals_to_outer(ROOT, "/", server),
        ["/e1", "/lock/e2"]
    );
    assert_eq!(
        chroot::ephemerals_to_outer(ROOT, "", server),
        ["/e1", "/lock/e2"]
    );
    assert_eq!(
        chroot::ephemerals_to_outer(ROOT, " / ", server),
        ["/e1", "/lock/e2"]
    );
    // ZooKeeper's prefix is a plain string prefix: "/l" matches "/lock/e2".
    assert_eq!(
        chroot::ephemerals_to_outer(ROOT, "/l", server),
        ["/lock/e2"]
    );
    assert_eq!(chroot::ephemerals_to_outer(ROOT, "/e", server), ["/e1"]);
}

#[test]
fn super_root_is_identity() {
    // Goal: root "/" (super users) sees the whole tree unchanged but still gets path validation.
    assert_eq!(
        chroot::to_inner("/", "/tenants/b/x").as_deref(),
        Ok("/tenants/b/x")
    );
    assert_eq!(
        chroot::to_outer("/", "/tenants/b/x").as_deref(),
        Some("/tenants/b/x")
    );
    assert_eq!(
        chroot::to_inner("/", "/tenants/../x"),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(chroot::paths_to_outer("/", ["/a", "b"]), ["/a"]);
}

#[test]
fn deep_roots_translate() {
    // Goal: a non-default, deeper root works the same way.
    let root = "/org/eu/team-x";
    assert_eq!(
        chroot::to_inner(root, "/a").as_deref(),
        Ok("/org/eu/team-x/a")
    );
    assert_eq!(
        chroot::to_outer(root, "/org/eu/team-x/a").as_deref(),
        Some("/a")
    );
    assert_eq!(chroot::to_outer(root, "/org/eu/team-xy"), None);
    assert_eq!(chroot::to_outer(root, "/org/eu"), None);
}
