//! ACL decisions: may these principals do `perm` on a znode (`check`), and turning a
//! create/setACL request's ACL into the one that is stored (`fixup_acl`).

use std::collections::HashSet;

use corral_proto::Acl;

use crate::scheme::{Scheme, WORLD_ANYONE};
use crate::{AuthError, Principal};

/// Whether `principals` hold permission `perm` (one of `opcode::perms`) on a znode
/// whose ACL is `acl`, with ZooKeeper's `checkACL` rules: an empty ACL allows all, a
/// `super` principal passes everything, `world:anyone` grants to all, and otherwise an
/// entry granting `perm` must match a principal of the same provider scheme.
/// Entries of unknown schemes (including a stored `auth`) match nobody.
pub fn check(acl: &[Acl], perm: i32, principals: &[Principal]) -> bool {
    if acl.is_empty() || principals.iter().any(is_super) {
        return true;
    }
    acl.iter()
        .filter(|entry| entry.perms & perm != 0)
        .any(|entry| entry_matches(entry, principals))
}

/// [`check`] as a `Result`, refusing with [`AuthError::NoAuth`].
pub fn require(acl: &[Acl], perm: i32, principals: &[Principal]) -> Result<(), AuthError> {
    if check(acl, perm, principals) {
        Ok(())
    } else {
        Err(AuthError::NoAuth)
    }
}

/// Validates the ACL of a create/setACL request and expands `auth` entries, as
/// ZooKeeper's `PrepRequestProcessor.fixupACL`:
///
/// - exact duplicates are dropped first, keeping the first occurrence;
/// - an empty list is refused;
/// - `world` must be `world:anyone`;
/// - `auth:<anything>` becomes one entry with its perms per authenticated principal
///   (digest, x509), and is refused when there is none (an `ip` identity does not count);
/// - any other entry must be of a provider scheme (digest, ip, x509) with a valid id.
///
/// Expanded entries are not deduplicated again, as in ZooKeeper.
pub fn fixup_acl(acl: &[Acl], principals: &[Principal]) -> Result<Vec<Acl>, AuthError> {
    let unique = dedup(acl);
    if unique.is_empty() {
        return Err(AuthError::invalid_acl("empty ACL list"));
    }
    let mut fixed = Vec::with_capacity(unique.len());
    for entry in unique {
        let scheme = Scheme::from_name(&entry.id.scheme);
        match scheme {
            Some(Scheme::World) if entry.id.id == WORLD_ANYONE => fixed.push(entry.clone()),
            Some(Scheme::Auth) => expand_auth(entry.perms, principals, &mut fixed)?,
            Some(s) if s.is_provider() => {
                if !s.is_valid_id(&entry.id.id) {
                    return Err(AuthError::invalid_acl(format!("malformed {} id", s.name())));
                }
                fixed.push(entry.clone());
            }
            Some(Scheme::World) => {
                return Err(AuthError::invalid_acl("world id must be \"anyone\""));
            }
            _ => return Err(AuthError::invalid_acl("unknown or non-ACL scheme")),
        }
    }
    Ok(fixed)
}

fn is_super(p: &Principal) -> bool {
    p.scheme == Scheme::Super.name()
}

fn entry_matches(entry: &Acl, principals: &[Principal]) -> bool {
    let id = &entry.id;
    if id.scheme == Scheme::World.name() && id.id == WORLD_ANYONE {
        return true;
    }
    let Some(scheme) = Scheme::from_name(&id.scheme).filter(|s| s.is_provider()) else {
        return false;
    };
    principals
        .iter()
        .any(|p| p.scheme == id.scheme && scheme.matches(&p.id, &id.id))
}

fn expand_auth(perms: i32, principals: &[Principal], out: &mut Vec<Acl>) -> Result<(), AuthError> {
    let before = out.len();
    out.extend(
        principals
            .iter()
            .filter(|p| Scheme::from_name(&p.scheme).is_some_and(Scheme::is_authenticated))
            .map(|p| Acl {
                perms,
                id: p.clone(),
            }),
    );
    if out.len() == before {
        return Err(AuthError::invalid_acl(
            "auth scheme used but the session has no authenticated identity",
        ));
    }
    Ok(())
}

/// Order-preserving removal of exact duplicates; a set keeps it linear even for the
/// ~80k entries a maximal packet can carry.
fn dedup(acl: &[Acl]) -> Vec<&Acl> {
    let mut seen = HashSet::with_capacity(acl.len());
    acl.iter().filter(|entry| seen.insert(*entry)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest_id;
    use corral_proto::opcode::perms::{ADMIN, ALL, CREATE, DELETE, READ, WRITE};
    use corral_proto::{ErrorCode, Id};

    const EVERY_PERM: [i32; 5] = [READ, WRITE, CREATE, DELETE, ADMIN];

    fn p(scheme: &str, id: &str) -> Principal {
        Id::new(scheme, id)
    }

    fn ip_session() -> Vec<Principal> {
        vec![p("ip", "10.1.2.3")]
    }

    #[test]
    fn empty_acl_allows_everything() {
        // Goal: a node with no ACL entries lets anyone do anything, as ZooKeeper.
        for perm in EVERY_PERM {
            assert!(check(&[], perm, &[]));
        }
    }

    #[test]
    fn world_anyone_grants_exactly_its_bits() {
        // Goal: world:anyone grants each perm bit it has and no other, to any session.
        for granted in EVERY_PERM {
            let acl = [Acl::new(granted, "world", "anyone")];
            for asked in EVERY_PERM {
                assert_eq!(
                    check(&acl, asked, &[]),
                    granted == asked,
                    "{granted} {asked}"
                );
            }
        }
        assert!(!check(&[Acl::new(ALL, "world", "someone")], READ, &[]));
    }

    #[test]
    fn super_bypasses_every_acl() {
        // Goal: a super principal passes even ACLs that grant nothing to anyone.
        let supers = [p("super", "")];
        let acl = [Acl::new(READ, "digest", "bob:x=")];
        for perm in EVERY_PERM {
            assert!(check(&acl, perm, &supers));
        }
        assert!(check(&[Acl::new(0, "world", "anyone")], ADMIN, &supers));
    }

    #[test]
    fn digest_matches_exact_id_per_bit() {
        // Goal: a digest entry grants its bits only to the identical digest principal.
        let bob = digest_id("bob", "pw");
        let acl = [Acl::new(READ | WRITE, "digest", &bob)];
        let session = [p("ip", "127.0.0.1"), p("digest", &bob)];
        assert!(check(&acl, READ, &session));
        assert!(check(&acl, WRITE, &session));
        assert!(!check(&acl, DELETE, &session));
        assert!(!check(
            &acl,
            READ,
            &[p("digest", &digest_id("bob", "other"))]
        ));
        // Same id string under another scheme does not count.
        assert!(!check(&acl, READ, &[p("x509", &bob)]));
    }

    #[test]
    fn ip_entries_match_by_range_v4_and_v6() {
        // Goal: ip entries match a session's address by CIDR or exact value, both families.
        let acl = [
            Acl::new(READ, "ip", "10.0.0.0/8"),
            Acl::new(WRITE, "ip", "::1"),
            Acl::new(CREATE, "ip", "fe80::/10"),
        ];
        assert!(check(&acl, READ, &ip_session()));
        assert!(!check(&acl, WRITE, &ip_session()));
        let v6 = [p("ip", "0:0:0:0:0:0:0:1")];
        assert!(check(&acl, WRITE, &v6));
        assert!(!check(&acl, READ, &v6));
        assert!(check(&acl, CREATE, &[p("ip", "fe80:0:0:0:0:0:0:9")]));
        assert!(!check(&acl, READ, &[p("ip", "11.0.0.1")]));
    }

    #[test]
    fn x509_matches_exact_dn() {
        // Goal: an x509 entry grants to the principal with exactly that DN.
        let acl = [Acl::new(ALL, "x509", "CN=app,O=corp")];
        assert!(check(&acl, DELETE, &[p("x509", "CN=app,O=corp")]));
        assert!(!check(&acl, DELETE, &[p("x509", "CN=other,O=corp")]));
    }

    #[test]
    fn stored_auth_and_unknown_schemes_match_nobody() {
        // Goal: entries whose scheme has no provider never grant anything.
        let acl = [
            Acl::new(ALL, "auth", ""),
            Acl::new(ALL, "sasl", "bob"),
            Acl::new(ALL, "super", ""),
        ];
        let session = [p("auth", ""), p("sasl", "bob"), p("ip", "1.2.3.4")];
        for perm in EVERY_PERM {
            assert!(!check(&acl, perm, &session));
        }
    }

    #[test]
    fn zero_perm_is_never_granted_without_super() {
        // Goal: asking for no bit at all fails on a non-empty ACL (ZooKeeper's bit test).
        assert!(!check(&[Acl::new(ALL, "world", "anyone")], 0, &[]));
    }

    #[test]
    fn require_maps_denial_to_no_auth() {
        // Goal: require() is check() with NoAuth as the refusal.
        let acl = [Acl::new(READ, "world", "anyone")];
        assert_eq!(require(&acl, READ, &[]), Ok(()));
        let err = require(&acl, WRITE, &[]).expect_err("denied");
        assert_eq!(err.code(), ErrorCode::NoAuth);
    }

    #[test]
    fn fixup_expands_auth_into_authenticated_ids() {
        // Goal: auth entries become one entry per digest/x509 principal, skipping ip and super.
        let bob = digest_id("bob", "pw");
        let session = [
            p("ip", "10.1.2.3"),
            p("super", ""),
            p("digest", &bob),
            p("x509", "CN=a"),
        ];
        let acl = [
            Acl::new(READ, "world", "anyone"),
            Acl::new(ALL, "auth", "ignored"),
        ];
        let fixed = fixup_acl(&acl, &session).expect("valid");
        assert_eq!(
            fixed,
            vec![
                Acl::new(READ, "world", "anyone"),
                Acl::new(ALL, "digest", &bob),
                Acl::new(ALL, "x509", "CN=a"),
            ]
        );
    }

    #[test]
    fn fixup_refuses_auth_without_authenticated_ids() {
        // Goal: an auth entry from a session with only an ip identity is InvalidAcl.
        let err = fixup_acl(&[Acl::new(ALL, "auth", "")], &ip_session()).expect_err("no ids");
        assert_eq!(err.code(), ErrorCode::InvalidAcl);
        assert!(fixup_acl(&[Acl::new(ALL, "auth", "")], &[p("super", "")]).is_err());
    }

    #[test]
    fn fixup_refuses_empty_list() {
        // Goal: an empty ACL list is InvalidAcl.
        let err = fixup_acl(&[], &ip_session()).expect_err("empty");
        assert_eq!(err.code(), ErrorCode::InvalidAcl);
    }

    #[test]
    fn fixup_refuses_unknown_and_non_acl_schemes() {
        // Goal: schemes without a provider, and world ids other than anyone, are InvalidAcl.
        for (scheme, id) in [
            ("sasl", "bob"),
            ("super", ""),
            ("", ""),
            ("Digest", "bob:x="),
            ("world", "everyone"),
        ] {
            let err = fixup_acl(&[Acl::new(ALL, scheme, id)], &ip_session()).expect_err(scheme);
            assert_eq!(err.code(), ErrorCode::InvalidAcl, "{scheme}:{id}");
        }
    }

    #[test]
    fn fixup_refuses_malformed_ids() {
        // Goal: bad digest forms and bad ip ranges are InvalidAcl, good ones pass through.
        for (scheme, id) in [
            ("digest", "bob"),
            ("digest", "a:b:c"),
            ("ip", "10.0.0.0/33"),
        ] {
            assert!(
                fixup_acl(&[Acl::new(ALL, scheme, id)], &[]).is_err(),
                "{id}"
            );
        }
        let good = [
            Acl::new(ALL, "digest", &digest_id("bob", "pw")),
            Acl::new(READ, "ip", "10.0.0.0/8"),
            Acl::new(READ, "ip", "fe80::/10"),
            Acl::new(READ, "x509", "CN=a"),
        ];
        assert_eq!(fixup_acl(&good, &[]).expect("valid"), good.to_vec());
    }

    #[test]
    fn fixup_dedups_input_keeping_first() {
        // Goal: exact duplicate entries collapse to the first, order otherwise kept.
        let a = Acl::new(READ, "ip", "1.2.3.4");
        let b = Acl::new(ALL, "world", "anyone");
        let fixed = fixup_acl(&[a.clone(), b.clone(), a.clone()], &[]).expect("valid");
        assert_eq!(fixed, vec![a, b]);
    }

    #[test]
    fn fixup_does_not_dedup_after_expansion() {
        // Goal: an explicit digest entry plus auth for the same id yields both, as ZooKeeper.
        let bob = digest_id("bob", "pw");
        let acl = [Acl::new(ALL, "digest", &bob), Acl::new(ALL, "auth", "")];
        let fixed = fixup_acl(&acl, &[p("digest", &bob)]).expect("valid");
        assert_eq!(fixed.len(), 2);
    }
}
