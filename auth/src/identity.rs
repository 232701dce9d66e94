//! A session's identities: the ones it has at connect, the ones `addauth` adds, and
//! how whoAmI reports them.

use std::net::IpAddr;

use corral_proto::ClientInfo;

use crate::digest::digest_id_of_payload;
use crate::ip::host_address;
use crate::scheme::Scheme;
use crate::{Principal, SuperUsers};

/// The result of `addauth scheme payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The principals to add to the session (the caller skips ones it already has,
    /// as ZooKeeper's `addAuthInfo` does).
    Added(Vec<Principal>),
    /// Reply `AuthFailed` and move the session to `AUTH_FAILED`, as ZooKeeper does.
    Failed,
}

/// Handles `addauth`, following ZooKeeper's providers:
///
/// - `digest`: any payload succeeds (ZooKeeper never refuses one). It adds the digest
///   id of the payload, preceded by `("super", "")` when the payload is a super user.
///   Bytes that are not UTF-8 are replaced with U+FFFD first, as Java's `new String` does.
/// - `ip`: ignores the payload and adds the client's own `ip` principal again.
/// - anything else (`world`, `auth`, `super`, `sasl`, unknown): fails. So does `x509`:
///   its principal comes from the TLS handshake at connect, which the server adds.
pub fn add_auth(
    scheme: &str,
    payload: &[u8],
    client_ip: IpAddr,
    supers: &SuperUsers,
) -> AuthOutcome {
    match Scheme::from_name(scheme) {
        Some(Scheme::Digest) => {
            let payload = String::from_utf8_lossy(payload);
            let digest = Principal::new(Scheme::Digest.name(), digest_id_of_payload(&payload));
            if supers.is_super_payload(&payload) {
                AuthOutcome::Added(vec![super_principal(), digest])
            } else {
                AuthOutcome::Added(vec![digest])
            }
        }
        Some(Scheme::Ip) => AuthOutcome::Added(vec![ip_principal(client_ip)]),
        _ => AuthOutcome::Failed,
    }
}

/// The identities every session has at connect: its `ip` principal, formatted as
/// ZooKeeper formats it (see [`crate::ip::host_address`]).
pub fn connect_principals(client_ip: IpAddr) -> Vec<Principal> {
    vec![ip_principal(client_ip)]
}

/// whoAmI's answer for a session's principals: each scheme with its user name
/// (digest's user part, ip/x509 ids verbatim, empty for `super` and unknown schemes).
pub fn client_info(principals: &[Principal]) -> Vec<ClientInfo> {
    principals
        .iter()
        .map(|p| ClientInfo {
            auth_scheme: p.scheme.clone(),
            user: Scheme::from_name(&p.scheme)
                .map_or("", |s| s.user_name(&p.id))
                .to_string(),
        })
        .collect()
}

/// The principal that bypasses every ACL.
pub fn super_principal() -> Principal {
    Principal::new(Scheme::Super.name(), "")
}

fn ip_principal(ip: IpAddr) -> Principal {
    Principal::new(Scheme::Ip.name(), host_address(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::hash_password_cheap;
    use crate::{check, digest_id};
    use corral_proto::opcode::perms::READ;
    use corral_proto::Acl;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn kazoo_supers() -> SuperUsers {
        SuperUsers::new(&[], Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")).expect("valid")
    }

    #[test]
    fn digest_addauth_adds_digest_id() {
        // Goal: addauth digest user:pw adds exactly the digest principal for a normal user.
        let out = add_auth("digest", b"bob:pw", LOCAL, &kazoo_supers());
        let expected = Principal::new("digest", digest_id("bob", "pw"));
        assert_eq!(out, AuthOutcome::Added(vec![expected]));
    }

    #[test]
    fn digest_addauth_as_super_adds_super_first() {
        // Goal: super credentials add ("super","") before the digest id, as ZooKeeper orders them.
        let out = add_auth("digest", b"super:test", LOCAL, &kazoo_supers());
        let digest = Principal::new("digest", "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
        assert_eq!(out, AuthOutcome::Added(vec![super_principal(), digest]));
    }

    #[test]
    fn digest_addauth_with_argon2_super() {
        // Goal: an argon2-configured super user becomes super through addauth digest.
        let supers =
            SuperUsers::new(&[format!("root:{}", hash_password_cheap("pw"))], None).expect("valid");
        let AuthOutcome::Added(ids) = add_auth("digest", b"root:pw", LOCAL, &supers) else {
            panic!("addauth failed");
        };
        assert_eq!(ids[0], super_principal());
        let wrong = add_auth("digest", b"root:nope", LOCAL, &supers);
        assert!(matches!(wrong, AuthOutcome::Added(ids) if ids.len() == 1));
    }

    #[test]
    fn digest_addauth_accepts_odd_payloads_like_zookeeper() {
        // Goal: colon-free, empty and non-UTF-8 payloads succeed as they do in ZooKeeper.
        for payload in [&b"bob"[..], b"", b"\xff\xfe:x"] {
            let out = add_auth("digest", payload, LOCAL, &SuperUsers::empty());
            assert!(matches!(out, AuthOutcome::Added(ids) if ids.len() == 1));
        }
    }

    #[test]
    fn ip_addauth_adds_client_ip() {
        // Goal: addauth ip ignores its payload and adds the session's own address.
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let out = add_auth("ip", b"10.0.0.1", v6, &SuperUsers::empty());
        let expected = Principal::new("ip", "0:0:0:0:0:0:0:1");
        assert_eq!(out, AuthOutcome::Added(vec![expected]));
    }

    #[test]
    fn other_schemes_fail() {
        // Goal: addauth with a scheme that has no addauth provider fails.
        for scheme in ["world", "auth", "super", "x509", "sasl", "", "DIGEST"] {
            let out = add_auth(scheme, b"super:test", LOCAL, &kazoo_supers());
            assert_eq!(out, AuthOutcome::Failed, "{scheme}");
        }
    }

    #[test]
    fn connect_principal_is_java_formatted_ip() {
        // Goal: every session starts with its ip principal, formatted as ZooKeeper's Java does.
        assert_eq!(
            connect_principals(LOCAL),
            vec![Principal::new("ip", "127.0.0.1")]
        );
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 7).to_ipv6_mapped());
        assert_eq!(
            connect_principals(mapped),
            vec![Principal::new("ip", "10.0.0.7")]
        );
        let v6 = connect_principals(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert!(check(&[Acl::new(READ, "ip", "::1")], READ, &v6));
    }

    #[test]
    fn client_info_reports_user_names() {
        // Goal: whoAmI lists each principal's scheme with ZooKeeper's user name for it.
        let principals = [
            Principal::new("ip", "127.0.0.1"),
            super_principal(),
            Principal::new("digest", digest_id("bob", "pw")),
            Principal::new("x509", "CN=app"),
        ];
        let info = client_info(&principals);
        let pairs: Vec<(&str, &str)> = info
            .iter()
            .map(|c| (c.auth_scheme.as_str(), c.user.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("ip", "127.0.0.1"),
                ("super", ""),
                ("digest", "bob"),
                ("x509", "CN=app"),
            ]
        );
    }
}
