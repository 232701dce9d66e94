//! A tenant: a name, a namespace root, identity bindings, quotas and IP rules.
//!
//! The JSON form (see [`Tenant::to_json`]) is what the registry replicates, one
//! node per tenant. An empty `root` means the default, `/tenants/<name>`, and is
//! filled in by [`Tenant::normalize`] (the registry does it on create/update).

use std::net::IpAddr;

use corral_auth::IpRange;
use serde::{Deserialize, Serialize};

use crate::binding::{Binding, Identity};
use crate::quota::Quotas;
use crate::TenantError;

/// Parent of the default namespace roots.
pub const DEFAULT_ROOTS_PARENT: &str = "/tenants";
/// Longest tenant name, in bytes (a DNS label's limit).
pub const NAME_LEN_MAX: usize = 63;
/// Most bindings one tenant may have.
pub const BINDINGS_MAX: usize = 256;
/// Most entries in each of a tenant's `ip_allow` and `ip_deny` lists.
pub const CIDRS_MAX: usize = 256;

/// ZooKeeper's reserved subtree; tenant roots may not be in it.
const ZOOKEEPER_ROOT: &str = "/zookeeper";

/// One tenant, as stored in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub name: String,
    /// Absolute server path of the namespace; empty means `/tenants/<name>`.
    #[serde(default)]
    pub root: String,
    #[serde(default)]
    pub bindings: Vec<Binding>,
    #[serde(default)]
    pub quotas: Quotas,
    /// CIDR ranges a bound session's peer must be in; empty allows every address.
    #[serde(default)]
    pub ip_allow: Vec<String>,
    /// CIDR ranges refused even when `ip_allow` would admit them.
    #[serde(default)]
    pub ip_deny: Vec<String>,
}

/// Outcome of a tenant's IP rules for one peer address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpDecision {
    Allowed,
    Denied,
}

impl Tenant {
    /// A tenant with the default root and no bindings, quotas or IP rules.
    pub fn new(name: impl Into<String>) -> Tenant {
        let name = name.into();
        Tenant {
            root: default_root(&name),
            name,
            bindings: Vec::new(),
            quotas: Quotas::default(),
            ip_allow: Vec::new(),
            ip_deny: Vec::new(),
        }
    }

    /// Fills an empty root with the default one.
    pub fn normalize(&mut self) {
        if self.root.is_empty() {
            self.root = default_root(&self.name);
        }
    }

    /// Checks everything that can be checked on this tenant alone: name, root,
    /// bindings, CIDR lists and their bounds. Cross-tenant rules (disjoint roots,
    /// unique bindings) are the registry's.
    pub fn validate(&self) -> Result<(), TenantError> {
        validate_name(&self.name)?;
        validate_root(&self.name, &self.root)?;
        if self.bindings.len() > BINDINGS_MAX {
            return Err(TenantError::TooMany {
                what: "bindings in one tenant",
                max: BINDINGS_MAX,
            });
        }
        for (i, b) in self.bindings.iter().enumerate() {
            validate_binding(&self.name, b)?;
            if self.bindings[..i].contains(b) {
                return Err(self.binding_error(format!("duplicate binding {b}")));
            }
        }
        self.validate_cidrs("ip_allow", &self.ip_allow)?;
        self.validate_cidrs("ip_deny", &self.ip_deny)?;
        Ok(())
    }

    /// Whether any of this tenant's bindings accepts `identity`. Digest bindings
    /// run argon2, so this costs a hash per matching user name.
    pub fn matches(&self, identity: &Identity<'_>) -> bool {
        self.bindings.iter().any(|b| binding_matches(b, identity))
    }

    /// Applies the IP rules: deny wins over allow, and an empty allow list admits
    /// every address. An entry that does not parse (only possible if the registry
    /// was not validated) denies when in `ip_deny` and admits nothing in `ip_allow`:
    /// the rules fail closed.
    pub fn check_ip(&self, ip: IpAddr) -> IpDecision {
        let denied = self
            .ip_deny
            .iter()
            .any(|c| IpRange::parse(c).is_none_or(|r| r.contains(ip)));
        if denied {
            return IpDecision::Denied;
        }
        let allowed = self.ip_allow.is_empty()
            || self
                .ip_allow
                .iter()
                .any(|c| IpRange::parse(c).is_some_and(|r| r.contains(ip)));
        if allowed {
            IpDecision::Allowed
        } else {
            IpDecision::Denied
        }
    }

    /// The JSON stored at the tenant's registry node.
    pub fn to_json(&self) -> Vec<u8> {
        // A Tenant holds only strings, numbers and enums: encoding cannot fail.
        serde_json::to_vec(self).expect("tenant encodes as JSON")
    }

    /// Parses a tenant's registry node and validates it on its own.
    pub fn from_json(bytes: &[u8]) -> Result<Tenant, TenantError> {
        let mut t: Tenant = serde_json::from_slice(bytes).map_err(|source| TenantError::Json {
            what: "tenant".into(),
            source,
        })?;
        t.normalize();
        t.validate()?;
        Ok(t)
    }

    fn validate_cidrs(&self, list: &'static str, cidrs: &[String]) -> Result<(), TenantError> {
        if cidrs.len() > CIDRS_MAX {
            return Err(TenantError::TooMany {
                what: "CIDR entries in one list",
                max: CIDRS_MAX,
            });
        }
        match cidrs.iter().find(|c| IpRange::parse(c).is_none()) {
            Some(bad) => Err(TenantError::InvalidCidr {
                tenant: self.name.clone(),
                list,
                cidr: bad.clone(),
            }),
            None => Ok(()),
        }
    }

    fn binding_error(&self, reason: String) -> TenantError {
        TenantError::InvalidBinding {
            tenant: self.name.clone(),
            reason,
        }
    }
}

/// `/tenants/<name>`.
pub fn default_root(name: &str) -> String {
    format!("{DEFAULT_ROOTS_PARENT}/{name}")
}

/// A tenant name is 1..=63 bytes of `[a-z0-9-]`, not starting or ending with
/// `-` (a DNS label, so it is safe in file names, metrics labels and CLI args).
pub fn validate_name(name: &str) -> Result<(), TenantError> {
    let bad = |reason| {
        Err(TenantError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > NAME_LEN_MAX {
        return bad("must be 1 to 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("only lowercase letters, digits and '-' are allowed");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return bad("must not start or end with '-'");
    }
    Ok(())
}

/// Whether `name` passes [`validate_name`].
pub fn is_valid_name(name: &str) -> bool {
    validate_name(name).is_ok()
}

/// A root is a valid ZooKeeper path other than `/`, outside `/zookeeper`.
pub fn validate_root(tenant: &str, root: &str) -> Result<(), TenantError> {
    let bad = |reason: String| {
        Err(TenantError::InvalidRoot {
            tenant: tenant.to_string(),
            root: root.to_string(),
            reason,
        })
    };
    if let Err(e) = corral_store::validate_path(root, false) {
        return bad(e.to_string());
    }
    if root == "/" {
        return bad("a tenant cannot own the whole tree".into());
    }
    if root == ZOOKEEPER_ROOT || root.starts_with("/zookeeper/") {
        return bad("the /zookeeper subtree is reserved".into());
    }
    Ok(())
}

/// Whether two roots overlap: equal, or one is an ancestor of the other. Compared
/// by whole segments, so `/tenants/a` and `/tenants/ab` do not overlap.
pub fn roots_overlap(a: &str, b: &str) -> bool {
    crate::chroot::is_within(a, b) || crate::chroot::is_within(b, a)
}

fn validate_binding(tenant: &str, b: &Binding) -> Result<(), TenantError> {
    let bad = |reason: String| {
        Err(TenantError::InvalidBinding {
            tenant: tenant.to_string(),
            reason,
        })
    };
    match b {
        Binding::X509 { rule } => {
            if rule.text().is_empty() {
                return bad(format!("{b}: empty"));
            }
        }
        Binding::Digest {
            user,
            password_hash,
        } => {
            // addauth splits "user:password" at the first ':', so a user with ':' could never log in.
            if user.is_empty() || user.contains(':') {
                return bad(format!("{b}: user must be non-empty and without ':'"));
            }
            // Cheap shape check; the full PHC parse happens at verify time and fails closed.
            let argon2 = ["$argon2id$", "$argon2i$", "$argon2d$"];
            if !argon2.iter().any(|p| password_hash.starts_with(p)) {
                return bad(format!("{b}: password_hash must be an argon2 PHC string"));
            }
        }
        Binding::Ip { cidr } => {
            if IpRange::parse(cidr).is_none() {
                return bad(format!("{b}: not an address or CIDR range"));
            }
        }
    }
    Ok(())
}

pub(crate) fn binding_matches(b: &Binding, identity: &Identity<'_>) -> bool {
    match (b, identity) {
        (Binding::X509 { rule }, Identity::X509(cert)) => rule.matches(cert),
        (
            Binding::Digest {
                user,
                password_hash,
            },
            Identity::Digest {
                user: u,
                password: p,
            },
        ) => user == u && corral_auth::verify_password(password_hash, p),
        (Binding::Ip { cidr }, Identity::Ip(ip)) => {
            IpRange::parse(cidr).is_some_and(|r| r.contains(*ip))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        // Goal: names are DNS-label-like: [a-z0-9-], 1..=63, no edge hyphen.
        for good in ["a", "team-a", "0", "a1-b2", &"x".repeat(63)] {
            assert!(is_valid_name(good), "{good:?}");
        }
        for bad in [
            "",
            "Team",
            "team_a",
            "team.a",
            "-a",
            "a-",
            "a/b",
            "ä",
            " a",
            &"x".repeat(64),
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn root_rules() {
        // Goal: roots are valid paths, not "/", and never inside /zookeeper.
        for good in ["/tenants/a", "/a", "/zookeeperx", "/x/zookeeper"] {
            assert!(validate_root("a", good).is_ok(), "{good:?}");
        }
        for bad in [
            "/",
            "",
            "tenants/a",
            "/tenants/a/",
            "/tenants/../x",
            "/tenants/./a",
            "/zookeeper",
            "/zookeeper/quota",
            "/zookeeper/corral/tenants/a",
            "/a//b",
        ] {
            let e = validate_root("a", bad).expect_err(bad);
            assert_eq!(e.code(), corral_proto::ErrorCode::BadArguments);
        }
    }

    #[test]
    fn overlap_is_by_segment() {
        // Goal: prefix siblings are disjoint; ancestors and equal roots overlap.
        assert!(!roots_overlap("/tenants/a", "/tenants/ab"));
        assert!(roots_overlap("/tenants/a", "/tenants/a"));
        assert!(roots_overlap("/tenants/a", "/tenants/a/b"));
        assert!(roots_overlap("/tenants/a/b", "/tenants/a"));
        assert!(!roots_overlap("/x", "/y"));
    }

    #[test]
    fn ip_rules_deny_wins_and_empty_allow_admits_all() {
        // Goal: deny beats allow, empty allow admits all, and a non-empty allow is a whitelist.
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let mut t = Tenant::new("a");
        assert_eq!(t.check_ip(ip("1.2.3.4")), IpDecision::Allowed);
        t.ip_allow = vec!["10.0.0.0/8".into()];
        assert_eq!(t.check_ip(ip("10.1.1.1")), IpDecision::Allowed);
        assert_eq!(t.check_ip(ip("11.1.1.1")), IpDecision::Denied);
        assert_eq!(t.check_ip(ip("::1")), IpDecision::Denied);
        t.ip_deny = vec!["10.9.0.0/16".into()];
        assert_eq!(t.check_ip(ip("10.9.1.1")), IpDecision::Denied);
        assert_eq!(t.check_ip(ip("10.8.1.1")), IpDecision::Allowed);
        t.ip_allow.clear();
        assert_eq!(t.check_ip(ip("10.9.1.1")), IpDecision::Denied);
        assert_eq!(t.check_ip(ip("8.8.8.8")), IpDecision::Allowed);
    }

    #[test]
    fn unparsable_ip_rules_fail_closed() {
        // Goal: a corrupt deny entry denies everyone; a corrupt allow entry admits no one.
        let ip = "1.2.3.4".parse::<IpAddr>().expect("ip");
        let mut t = Tenant::new("a");
        t.ip_deny = vec!["junk".into()];
        assert_eq!(t.check_ip(ip), IpDecision::Denied);
        t.ip_deny.clear();
        t.ip_allow = vec!["junk".into()];
        assert_eq!(t.check_ip(ip), IpDecision::Denied);
        assert!(t.validate().is_err());
    }

    #[test]
    fn json_defaults_root_and_empty_lists() {
        // Goal: a minimal JSON tenant gets the default root and empty rules.
        let t = Tenant::from_json(br#"{"name":"team-a"}"#).expect("parse");
        assert_eq!(t, Tenant::new("team-a"));
        assert_eq!(t.root, "/tenants/team-a");
        let back = Tenant::from_json(&t.to_json()).expect("round trip");
        assert_eq!(back, t);
        let e = Tenant::from_json(b"{").expect_err("bad json");
        assert_eq!(e.code(), corral_proto::ErrorCode::MarshallingError);
    }

    #[test]
    fn binding_validation() {
        // Goal: malformed bindings are refused with BadArguments before they can match anything.
        let mut t = Tenant::new("a");
        let bads = [
            Binding::Ip {
                cidr: "10/8".into(),
            },
            Binding::Digest {
                user: "a:b".into(),
                password_hash: "$argon2id$x".into(),
            },
            Binding::Digest {
                user: "bob".into(),
                password_hash: "plaintext".into(),
            },
            Binding::X509 {
                rule: crate::X509Rule::Cn { cn: String::new() },
            },
        ];
        for b in bads {
            t.bindings = vec![b.clone()];
            let e = t.validate().expect_err("invalid binding");
            assert_eq!(e.code(), corral_proto::ErrorCode::BadArguments, "{b:?}");
        }
        let ok = Binding::Ip {
            cidr: "10.0.0.0/8".into(),
        };
        t.bindings = vec![ok.clone(), ok];
        assert!(matches!(
            t.validate(),
            Err(TenantError::InvalidBinding { .. })
        ));
    }
}
