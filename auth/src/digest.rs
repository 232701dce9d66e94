//! The `digest` scheme: ids of the form `user:base64(sha1("user:password"))`.
//!
//! This is ZooKeeper's wire-visible form, so it has to stay SHA-1: clients compute
//! these ids themselves (kazoo's `make_digest_acl`, Curator's `DigestAuthenticationProvider`)
//! and store them in ACLs. Credentials that corral itself keeps (super users) are
//! argon2 hashes instead; see [`crate::password`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest as _, Sha1};

/// ZooKeeper's digest id for `user` with `password`: `"user:" + base64(sha1("user:password"))`.
///
/// Computed exactly as the server computes it for `addauth digest user:password`, so a
/// `user` that itself contains `:` yields the part before its first `:` as the name.
pub fn digest_id(user: &str, password: &str) -> String {
    digest_id_of_payload(&format!("{user}:{password}"))
}

/// The digest id for a raw `addauth digest` payload. ZooKeeper accepts any payload:
/// the name is everything before the first `:` (the whole payload if there is none)
/// and the hash always covers the whole payload.
pub(crate) fn digest_id_of_payload(payload: &str) -> String {
    let user = payload.split_once(':').map_or(payload, |(user, _)| user);
    let hash = Sha1::digest(payload.as_bytes());
    format!("{user}:{}", STANDARD.encode(hash))
}

/// Whether `id` is a well-formed digest ACL id, by ZooKeeper's rule: splitting on `:`,
/// with trailing empty pieces dropped (Java's `String.split`), gives exactly two pieces.
/// ZooKeeper does not check the hash half, and neither do we: clients that store a
/// malformed hash only lock themselves out.
pub(crate) fn is_valid_id(id: &str) -> bool {
    let trimmed = id.trim_end_matches(':');
    !trimmed.is_empty() && trimmed.matches(':').count() == 1
}

/// The user name of a digest id, as whoAmI reports it.
pub(crate) fn user_name(id: &str) -> &str {
    id.split_once(':').map_or(id, |(user, _)| user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_id_matches_zookeeper_golden_vector() {
        // Goal: super:test hashes to the digest kazoo's tests and ZooKeeper docs use.
        assert_eq!(
            digest_id("super", "test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
    }

    #[test]
    fn payload_without_colon_hashes_whole_payload() {
        // Goal: a colon-free addauth payload names itself and hashes as a whole, like ZooKeeper.
        let id = digest_id_of_payload("bob");
        let expected = format!("bob:{}", STANDARD.encode(Sha1::digest(b"bob")));
        assert_eq!(id, expected);
        assert_eq!(digest_id_of_payload("bob:pw"), digest_id("bob", "pw"));
    }

    #[test]
    fn user_with_colon_is_cut_at_first_colon() {
        // Goal: digest_id agrees with the addauth computation when the user contains ':'.
        assert!(digest_id("a:b", "c").starts_with("a:"));
        assert_eq!(digest_id("a:b", "c"), digest_id_of_payload("a:b:c"));
    }

    #[test]
    fn valid_ids_follow_java_split_rule() {
        // Goal: is_valid_id accepts exactly what ZooKeeper's id.split(":").length == 2 accepts.
        for ok in ["bob:abc=", ":abc", "bob:abc:", "bob:abc::"] {
            assert!(is_valid_id(ok), "{ok} should be valid");
        }
        for bad in ["", ":", "::", "bob", "bob:", "a:b:c", "a::b"] {
            assert!(!is_valid_id(bad), "{bad} should be invalid");
        }
    }

    #[test]
    fn user_name_is_part_before_colon() {
        // Goal: whoAmI shows only the user part of a digest id.
        assert_eq!(user_name("bob:xyz="), "bob");
        assert_eq!(user_name("bob"), "bob");
        assert_eq!(user_name(":xyz"), "");
    }
}
