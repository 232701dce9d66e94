//! ACLs through the `zookeeper-client` crate: digest auth and NoAuth, the
//! `auth` scheme, getACL masking, setACL with aversion, world/ip ACLs, super
//! users, whoAmI, invalid ACLs and failed auth.

mod common;

use common::{client, persistent, within, TestNode};
use zk::{Acl, Acls, AuthId, Permission};
use zookeeper_client as zk;

fn digest(user: &str, password: &str) -> AuthId {
    AuthId::new("digest", &corral_auth::digest_id(user, password))
}

fn only(perm: Permission, id: AuthId) -> Vec<Acl> {
    vec![Acl::new(perm, id)]
}

fn with_acl(acl: &[Acl]) -> zk::CreateOptions<'_> {
    zk::CreateMode::Persistent.with_acls(Acls::new(acl))
}

#[test]
fn digest_acl_refuses_others_with_no_auth() {
    // Goal: a creator_all node created after digest auth admits only that digest identity.
    common::run(async {
        let node = TestNode::start();
        let alice = client(&node).await;
        within("auth", alice.auth("digest", b"alice:pw"))
            .await
            .unwrap();
        let opts = zk::CreateMode::Persistent.with_acls(Acls::creator_all());
        alice.create("/secret", b"s", &opts).await.unwrap();
        let (acl, _) = alice.get_acl("/secret").await.unwrap();
        assert_eq!(acl, only(Permission::ALL, digest("alice", "pw")));

        let anon = client(&node).await;
        assert_eq!(
            anon.get_data("/secret").await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            anon.set_data("/secret", b"x", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            anon.list_children("/secret").await.unwrap_err(),
            zk::Error::NoAuth
        );
        // exists checks no ACL in ZooKeeper 3.8: the Stat is visible.
        assert!(anon.check_stat("/secret").await.unwrap().is_some());
        assert_eq!(
            anon.create("/secret/kid", b"", &persistent())
                .await
                .unwrap_err(),
            zk::Error::NoAuth
        );
        within("auth bob", anon.auth("digest", b"bob:pw"))
            .await
            .unwrap();
        assert_eq!(
            anon.get_data("/secret").await.unwrap_err(),
            zk::Error::NoAuth
        );
        within("auth alice", anon.auth("digest", b"alice:pw"))
            .await
            .unwrap();
        assert_eq!(anon.get_data("/secret").await.unwrap().0, b"s");
        anon.set_data("/secret", b"t", None).await.unwrap();
    });
}

#[test]
fn auth_scheme_without_identities_is_an_invalid_acl() {
    // Goal: creator_all ("auth" scheme) from an unauthenticated session, or a bogus ACL, gives InvalidAcl.
    common::run(async {
        let node = TestNode::start();
        let anon = client(&node).await;
        let opts = zk::CreateMode::Persistent.with_acls(Acls::creator_all());
        assert_eq!(
            anon.create("/x", b"", &opts).await.unwrap_err(),
            zk::Error::InvalidAcl
        );
        for bad in [
            only(Permission::ALL, AuthId::new("nosuchscheme", "id")),
            only(Permission::ALL, AuthId::new("ip", "not-an-ip")),
            only(Permission::ALL, AuthId::new("digest", "no-colon")),
        ] {
            let opts = zk::CreateMode::Persistent.with_acls(Acls::new(&bad));
            assert_eq!(
                anon.create("/x", b"", &opts).await.unwrap_err(),
                zk::Error::InvalidAcl,
                "acl {bad:?}"
            );
        }
        assert_eq!(anon.check_stat("/x").await.unwrap(), None);
    });
}

#[test]
fn get_acl_masks_digests_without_admin() {
    // Goal: getACL needs READ or ADMIN; without ADMIN the digest hash is replaced by "x".
    common::run(async {
        let node = TestNode::start();
        let alice = client(&node).await;
        within("auth", alice.auth("digest", b"alice:pw"))
            .await
            .unwrap();
        let full = digest("alice", "pw");
        let acl = vec![
            Acl::new(Permission::READ, AuthId::anyone()),
            Acl::new(Permission::ALL, full.clone()),
        ];
        alice
            .create(
                "/masked",
                b"",
                &zk::CreateMode::Persistent.with_acls(Acls::new(&acl)),
            )
            .await
            .unwrap();
        alice
            .create(
                "/hidden",
                b"",
                &zk::CreateMode::Persistent.with_acls(Acls::new(&only(Permission::ALL, full))),
            )
            .await
            .unwrap();
        assert_eq!(alice.get_acl("/masked").await.unwrap().0, acl);
        let anon = client(&node).await;
        let (seen, stat) = anon.get_acl("/masked").await.unwrap();
        assert_eq!(
            seen,
            vec![
                Acl::new(Permission::READ, AuthId::anyone()),
                Acl::new(Permission::ALL, AuthId::new("digest", "alice:x")),
            ]
        );
        assert_eq!(stat.aversion, 0);
        assert_eq!(
            anon.get_acl("/hidden").await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            anon.get_acl("/nowhere").await.unwrap_err(),
            zk::Error::NoNode
        );
    });
}

#[test]
fn set_acl_checks_aversion_and_admin() {
    // Goal: setACL bumps aversion, refuses a stale aversion (BadVersion) and callers without ADMIN (NoAuth).
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        c.create("/acl", b"", &persistent()).await.unwrap();
        let read_admin = vec![Acl::new(
            Permission::READ | Permission::ADMIN | Permission::WRITE,
            AuthId::anyone(),
        )];
        let st = c.set_acl("/acl", &read_admin, Some(0)).await.unwrap();
        assert_eq!(st.aversion, 1);
        assert_eq!(st.version, 0, "setACL leaves the data version alone");
        assert_eq!(
            c.set_acl("/acl", &read_admin, Some(0)).await.unwrap_err(),
            zk::Error::BadVersion
        );
        let read_only = vec![Acl::new(Permission::READ, AuthId::anyone())];
        let st = c.set_acl("/acl", &read_only, None).await.unwrap();
        assert_eq!(st.aversion, 2);
        let (acl, st) = c.get_acl("/acl").await.unwrap();
        assert_eq!(acl, read_only);
        assert_eq!(st.aversion, 2);
        assert_eq!(
            c.set_acl("/acl", &read_admin, None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            c.set_data("/acl", b"x", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(c.get_data("/acl").await.unwrap().0, b"");
        assert_eq!(
            c.set_acl("/none", &read_only, None).await.unwrap_err(),
            zk::Error::NoNode
        );
    });
}

#[test]
fn world_and_ip_acls() {
    // Goal: world:anyone READ allows reads only; ip ACLs match the client's loopback address by CIDR.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        c.create(
            "/ro",
            b"r",
            &with_acl(&only(Permission::READ, AuthId::anyone())),
        )
        .await
        .unwrap();
        assert_eq!(c.get_data("/ro").await.unwrap().0, b"r");
        assert_eq!(
            c.set_data("/ro", b"w", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        c.create(
            "/ip-exact",
            b"",
            &with_acl(&only(Permission::ALL, AuthId::new("ip", "127.0.0.1"))),
        )
        .await
        .unwrap();
        c.set_data("/ip-exact", b"ok", None).await.unwrap();
        c.create(
            "/ip-net",
            b"",
            &with_acl(&only(Permission::READ, AuthId::new("ip", "127.0.0.0/8"))),
        )
        .await
        .unwrap();
        c.get_data("/ip-net").await.unwrap();
        assert_eq!(
            c.set_data("/ip-net", b"x", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        c.create(
            "/ip-other",
            b"",
            &with_acl(&only(Permission::ALL, AuthId::new("ip", "10.0.0.0/8"))),
        )
        .await
        .unwrap();
        assert_eq!(
            c.get_data("/ip-other").await.unwrap_err(),
            zk::Error::NoAuth
        );
        // Deleting needs DELETE on the parent, not on the node itself (ZooKeeper's rule).
        c.delete("/ip-other", None).await.unwrap();
    });
}

#[test]
fn super_user_bypasses_acls() {
    // Goal: digest auth as the configured super user passes every ACL; a wrong super password does not.
    common::run(async {
        let node = TestNode::start();
        let alice = client(&node).await;
        within("auth", alice.auth("digest", b"alice:pw"))
            .await
            .unwrap();
        alice
            .create(
                "/vault",
                b"gold",
                &zk::CreateMode::Persistent.with_acls(Acls::creator_all()),
            )
            .await
            .unwrap();
        let impostor = client(&node).await;
        within("auth", impostor.auth("digest", b"super:wrong"))
            .await
            .unwrap();
        assert_eq!(
            impostor.get_data("/vault").await.unwrap_err(),
            zk::Error::NoAuth
        );
        let root = client(&node).await;
        within("auth", root.auth("digest", b"super:test"))
            .await
            .unwrap();
        assert_eq!(root.get_data("/vault").await.unwrap().0, b"gold");
        let (acl, _) = root.get_acl("/vault").await.unwrap();
        assert_eq!(acl, only(Permission::ALL, digest("alice", "pw")));
        let open = vec![Acl::new(Permission::ALL, AuthId::anyone())];
        root.set_acl("/vault", &open, None).await.unwrap();
        assert_eq!(impostor.get_data("/vault").await.unwrap().0, b"gold");
    });
}

#[test]
fn who_am_i_lists_the_session_identities() {
    // Goal: whoAmI reports the ip identity at connect, then each digest user added.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        let users = c.list_auth_users().await.unwrap();
        assert_eq!(users, vec![zk::AuthUser::new("ip", "127.0.0.1")]);
        within("auth", c.auth("digest", b"alice:pw")).await.unwrap();
        let users = c.list_auth_users().await.unwrap();
        assert!(users.contains(&zk::AuthUser::new("ip", "127.0.0.1")));
        assert!(
            users.contains(&zk::AuthUser::new("digest", "alice")),
            "{users:?}"
        );
        assert_eq!(users.len(), 2);
    });
}

#[test]
fn unknown_auth_scheme_fails_the_session() {
    // Goal: addauth with an unknown scheme gets AuthFailed and the session ends in AUTH_FAILED.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        let mut state = c.state_watcher();
        let r = within("auth", c.auth("nosuchscheme", b"whatever")).await;
        assert_eq!(r.unwrap_err(), zk::Error::AuthFailed);
        within("auth failed state", async {
            while state.peek_state() != zk::SessionState::AuthFailed {
                state.changed().await;
            }
        })
        .await;
        assert_eq!(c.get_data("/").await.unwrap_err(), zk::Error::AuthFailed);
        // Other sessions are unaffected.
        let other = client(&node).await;
        other.get_data("/").await.unwrap();
    });
}
