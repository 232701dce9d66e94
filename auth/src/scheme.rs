//! The ACL schemes and what each one means, in one table (ZooKeeper's provider registry).

use crate::{digest, ip};

/// `world:anyone`, the only `world` id.
pub const WORLD_ANYONE: &str = "anyone";

/// An ACL / identity scheme corral knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `world:anyone`: everybody. Not a provider; handled by name.
    World,
    /// `auth`: in a create/setACL request only, "the ids I am authenticated as".
    /// Expanded by [`crate::fixup_acl`], never stored.
    Auth,
    /// `digest:user:base64sha1`.
    Digest,
    /// `ip:addr[/prefix_len]`.
    Ip,
    /// `super:`: a principal only, never an ACL entry; bypasses every ACL.
    Super,
    /// `x509:<subject DN>`: the TLS client certificate's identity.
    X509,
}

impl Scheme {
    pub const ALL: [Scheme; 6] = [
        Scheme::World,
        Scheme::Auth,
        Scheme::Digest,
        Scheme::Ip,
        Scheme::Super,
        Scheme::X509,
    ];

    pub fn from_name(name: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Scheme::World => "world",
            Scheme::Auth => "auth",
            Scheme::Digest => "digest",
            Scheme::Ip => "ip",
            Scheme::Super => "super",
            Scheme::X509 => "x509",
        }
    }

    /// Schemes with an authentication provider: the only ones whose ACL entries can
    /// be stored and matched against a session's principals.
    pub fn is_provider(self) -> bool {
        matches!(self, Scheme::Digest | Scheme::Ip | Scheme::X509)
    }

    /// Providers whose principals prove who the client is (ZooKeeper's
    /// `isAuthenticated()`): these are what an `auth` ACL entry expands into. An IP
    /// address is where a client is, not who, so `ip` is not one.
    pub fn is_authenticated(self) -> bool {
        matches!(self, Scheme::Digest | Scheme::X509)
    }

    /// Whether `id` is a well-formed ACL id for this provider scheme.
    pub(crate) fn is_valid_id(self, id: &str) -> bool {
        match self {
            Scheme::Digest => digest::is_valid_id(id),
            Scheme::Ip => ip::is_valid_id(id),
            // Subject DNs are exact strings until RFC 2253 parsing lands; an empty DN
            // is legal X.500, so nothing is refused yet.
            Scheme::X509 => true,
            Scheme::World => id == WORLD_ANYONE,
            Scheme::Auth | Scheme::Super => false,
        }
    }

    /// Whether a principal id of this scheme satisfies an ACL id of this scheme.
    pub(crate) fn matches(self, principal_id: &str, acl_id: &str) -> bool {
        match self {
            Scheme::Digest | Scheme::X509 => principal_id == acl_id,
            Scheme::Ip => ip::matches(principal_id, acl_id),
            Scheme::World | Scheme::Auth | Scheme::Super => false,
        }
    }

    /// The user name whoAmI reports for a principal id of this scheme.
    pub(crate) fn user_name(self, id: &str) -> &str {
        match self {
            Scheme::Digest => digest::user_name(id),
            Scheme::Ip | Scheme::X509 => id,
            // ZooKeeper has no provider for these, so whoAmI shows an empty user.
            Scheme::World | Scheme::Auth | Scheme::Super => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        // Goal: every scheme parses back from its name; unknown names are None.
        for s in Scheme::ALL {
            assert_eq!(Scheme::from_name(s.name()), Some(s));
        }
        assert_eq!(Scheme::from_name("sasl"), None);
        assert_eq!(Scheme::from_name("Digest"), None);
    }

    #[test]
    fn provider_table_follows_zookeeper() {
        // Goal: only digest/ip/x509 are providers, and only digest/x509 are authenticated.
        let providers: Vec<_> = Scheme::ALL
            .into_iter()
            .filter(|s| s.is_provider())
            .collect();
        assert_eq!(providers, [Scheme::Digest, Scheme::Ip, Scheme::X509]);
        let authed: Vec<_> = Scheme::ALL
            .into_iter()
            .filter(|s| s.is_authenticated())
            .collect();
        assert_eq!(authed, [Scheme::Digest, Scheme::X509]);
    }

    #[test]
    fn user_names_follow_whoami() {
        // Goal: whoAmI user names are digest's user part, ip/x509 ids verbatim, else empty.
        assert_eq!(Scheme::Digest.user_name("bob:h="), "bob");
        assert_eq!(Scheme::Ip.user_name("10.0.0.1"), "10.0.0.1");
        assert_eq!(Scheme::X509.user_name("CN=a,O=b"), "CN=a,O=b");
        assert_eq!(Scheme::Super.user_name(""), "");
    }

    #[test]
    fn x509_matches_exact_id_only() {
        // Goal: x509 matching is exact string equality on the DN.
        assert!(Scheme::X509.matches("CN=a,O=b", "CN=a,O=b"));
        assert!(!Scheme::X509.matches("CN=a,O=b", "CN=a, O=b"));
        assert!(!Scheme::X509.matches("CN=a", "cn=a"));
    }
}
