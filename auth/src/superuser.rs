//! Super users: identities that bypass every ACL (ZooKeeper's `("super", "")` principal).
//!
//! A session becomes super by `addauth digest name:password` where the pair matches
//! either a configured argon2 entry (`name:$argon2id$...`) or, for drop-in
//! compatibility with ZooKeeper's `zookeeper.DigestAuthenticationProvider.superDigest`,
//! one `name:base64sha1` digest.

use std::fmt;

use argon2::{Argon2, PasswordHash, PasswordVerifier as _};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::digest::digest_id_of_payload;
use crate::password::parse_phc;
use crate::AuthError;

/// Length of a SHA-1 output, the hash half of a ZooKeeper digest id.
const SHA1_LEN: usize = 20;

/// The configured super users. `Debug` shows names only, never hashes.
#[derive(Clone, Default)]
pub struct SuperUsers {
    argon2: Vec<(String, PasswordHash)>,
    zk_digest: Option<String>,
}

impl SuperUsers {
    /// Validates and loads the configuration. Each `argon2_entries` item is
    /// `name:<argon2 PHC string>`; a plaintext password is refused. `zk_digest` is
    /// `name:base64(sha1("name:password"))`. Errors name the entry, never echo its secret.
    pub fn new(argon2_entries: &[String], zk_digest: Option<&str>) -> Result<Self, AuthError> {
        let argon2 = argon2_entries
            .iter()
            .enumerate()
            .map(|(index, entry)| parse_argon2_entry(index, entry))
            .collect::<Result<Vec<_>, _>>()?;
        let zk_digest = zk_digest.map(parse_zk_digest).transpose()?;
        Ok(SuperUsers { argon2, zk_digest })
    }

    /// No super users at all.
    pub fn empty() -> Self {
        SuperUsers::default()
    }

    pub fn is_empty(&self) -> bool {
        self.argon2.is_empty() && self.zk_digest.is_none()
    }

    /// Whether `user:password` (the `addauth digest` payload) is a super user.
    pub fn is_super(&self, user: &str, password: &str) -> bool {
        self.is_super_payload(&format!("{user}:{password}"))
    }

    /// Like [`SuperUsers::is_super`] on a raw payload, split at its first `:` as
    /// ZooKeeper splits digest payloads.
    pub(crate) fn is_super_payload(&self, payload: &str) -> bool {
        if let Some(expected) = &self.zk_digest {
            if constant_time_eq(
                digest_id_of_payload(payload).as_bytes(),
                expected.as_bytes(),
            ) {
                return true;
            }
        }
        let Some((user, password)) = payload.split_once(':') else {
            return false;
        };
        // Only entries with this name pay the argon2 cost.
        self.argon2.iter().any(|(name, hash)| {
            name == user
                && Argon2::default()
                    .verify_password(password.as_bytes(), hash)
                    .is_ok()
        })
    }
}

impl fmt::Debug for SuperUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.argon2.iter().map(|(n, _)| n.as_str()).collect();
        let zk_name = self
            .zk_digest
            .as_deref()
            .and_then(|d| d.split_once(':'))
            .map(|(n, _)| n);
        f.debug_struct("SuperUsers")
            .field("argon2", &names)
            .field("zk_digest", &zk_name)
            .finish()
    }
}

fn parse_argon2_entry(index: usize, entry: &str) -> Result<(String, PasswordHash), AuthError> {
    let Some((name, phc)) = entry.split_once(':') else {
        return Err(AuthError::InvalidSuperUser {
            name: format!("#{index}"),
            reason: "expected name:<argon2 PHC string>".into(),
        });
    };
    let invalid = |reason: String| AuthError::InvalidSuperUser {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("empty name".into()));
    }
    let hash = parse_phc(phc)
        .map_err(|reason| invalid(format!("{reason} (store an argon2 hash, not a password)")))?;
    Ok((name.to_string(), hash))
}

fn parse_zk_digest(digest: &str) -> Result<String, AuthError> {
    let invalid = |name: &str, reason: &str| AuthError::InvalidSuperUser {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let Some((name, hash)) = digest.split_once(':') else {
        return Err(invalid(
            "zk digest",
            "expected name:base64(sha1(name:password))",
        ));
    };
    if name.is_empty() {
        return Err(invalid("zk digest", "empty name"));
    }
    match STANDARD.decode(hash) {
        Ok(bytes) if bytes.len() == SHA1_LEN => Ok(digest.to_string()),
        _ => Err(invalid(
            name,
            "hash is not base64 of a 20-byte SHA-1 digest",
        )),
    }
}

/// Equality whose time does not depend on where the inputs first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::hash_password_cheap;

    const KAZOO_SUPER_DIGEST: &str = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";

    #[test]
    fn zk_digest_super_matches_kazoo_credentials() {
        // Goal: the ZooKeeper-style super digest accepts super:test and nothing else.
        let supers = SuperUsers::new(&[], Some(KAZOO_SUPER_DIGEST)).expect("valid");
        assert!(supers.is_super("super", "test"));
        assert!(!supers.is_super("super", "wrong"));
        assert!(!supers.is_super("bob", "test"));
    }

    #[test]
    fn argon2_entry_super_matches_name_and_password() {
        // Goal: an argon2 entry makes exactly its name with its password super.
        let entries = vec![format!("admin:{}", hash_password_cheap("hunter2"))];
        let supers = SuperUsers::new(&entries, None).expect("valid");
        assert!(supers.is_super("admin", "hunter2"));
        assert!(!supers.is_super("admin", "hunter3"));
        assert!(!supers.is_super("root", "hunter2"));
        assert!(!supers.is_super_payload("admin"));
    }

    #[test]
    fn several_entries_and_digest_coexist() {
        // Goal: every configured entry works alongside the ZooKeeper digest.
        let entries = vec![
            format!("a:{}", hash_password_cheap("pa")),
            format!("b:{}", hash_password_cheap("pb")),
        ];
        let supers = SuperUsers::new(&entries, Some(KAZOO_SUPER_DIGEST)).expect("valid");
        assert!(supers.is_super("a", "pa"));
        assert!(supers.is_super("b", "pb"));
        assert!(supers.is_super("super", "test"));
        assert!(!supers.is_super("a", "pb"));
        assert!(!supers.is_empty());
    }

    #[test]
    fn plaintext_entries_are_rejected_without_echoing_them() {
        // Goal: a password where a hash belongs is a config error that does not leak the password.
        for entry in ["admin:hunter2", "admin:", "hunter2", ":$argon2id$x"] {
            let err = SuperUsers::new(&[entry.to_string()], None).expect_err(entry);
            assert_eq!(err.code(), corral_proto::ErrorCode::BadArguments);
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn malformed_zk_digest_is_rejected() {
        // Goal: the ZooKeeper-style digest must be name:base64 of 20 bytes.
        for bad in [
            "super",
            ":D/InIHSb7yEEbrWz8b9l71RjZJU=",
            "super:test",
            "super:AAAA",
        ] {
            assert!(SuperUsers::new(&[], Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_has_no_super_users() {
        // Goal: the empty configuration makes nobody super.
        let supers = SuperUsers::empty();
        assert!(supers.is_empty());
        assert!(!supers.is_super("super", "test"));
        assert!(!supers.is_super("", ""));
    }

    #[test]
    fn debug_hides_hashes() {
        // Goal: logging the configuration shows names but no hash material.
        let phc = hash_password_cheap("pw");
        let supers =
            SuperUsers::new(&[format!("admin:{phc}")], Some(KAZOO_SUPER_DIGEST)).expect("valid");
        let shown = format!("{supers:?}");
        assert!(
            shown.contains("admin") && shown.contains("super"),
            "{shown}"
        );
        assert!(
            !shown.contains(&phc) && !shown.contains("$argon2"),
            "{shown}"
        );
        assert!(!shown.contains("D/InIHSb7yEEbrWz8b9l71RjZJU="), "{shown}");
    }
}
