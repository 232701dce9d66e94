//! Identity bindings: the rules that map who a client is to a tenant.
//!
//! A session presents up to three kinds of identity, each an [`Identity`]:
//!
//! - **x509**: the TLS client certificate, reduced by the server to a
//!   [`CertIdentity`] (subject DN in RFC 2253 form as Java's
//!   `X500Principal.getName()` prints it, the CN, and the SAN URIs, DNS names and
//!   emails). Keeping this abstract keeps certificate parsing out of this crate.
//! - **digest**: `addauth digest user:password`. The tenant stores an argon2 PHC
//!   hash of the password, checked with [`corral_auth::verify_password`].
//! - **ip**: the peer address, matched against a CIDR range.
//!
//! # Matching rules
//!
//! - Subject DN and CN: exact, case-sensitive string equality. DN normalisation
//!   is the server's job (it fills [`CertIdentity::subject_dn`] in one form).
//! - SAN patterns: `*` matches any run of characters, including none and
//!   including `/` and `.`; every other character matches itself. There is no
//!   escape, so a pattern cannot match a literal `*` only. SAN DNS names compare
//!   ASCII case-insensitively (DNS is); URIs and emails compare exactly.
//!   `spiffe://corp/team-a/*` matches every SPIFFE id under `team-a/`, and
//!   `*@team-a.corp` every mailbox at that domain.
//! - IP: [`corral_auth::IpRange::contains`] (IPv4 never matches IPv6).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// How one x509 certificate field must look for the binding to apply.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "match", rename_all = "snake_case")]
pub enum X509Rule {
    /// The full subject DN, exactly (`CN=svc,OU=team-a,O=corp`).
    SubjectDn { dn: String },
    /// A SAN URI glob (`spiffe://corp/team-a/*`).
    SanUri { pattern: String },
    /// A SAN DNS-name glob (`*.team-a.corp`), case-insensitive.
    SanDns { pattern: String },
    /// A SAN email glob (`*@team-a.corp`).
    SanEmail { pattern: String },
    /// The subject's common name, exactly.
    Cn { cn: String },
}

impl X509Rule {
    /// Rank in the x509 binding order: the more specific a rule kind, the earlier.
    pub(crate) fn rank(&self) -> u8 {
        match self {
            X509Rule::SubjectDn { .. } => 0,
            X509Rule::SanUri { .. } => 1,
            X509Rule::SanDns { .. } => 2,
            X509Rule::SanEmail { .. } => 3,
            X509Rule::Cn { .. } => 4,
        }
    }

    /// Whether `cert` satisfies this rule.
    pub fn matches(&self, cert: &CertIdentity) -> bool {
        match self {
            X509Rule::SubjectDn { dn } => cert.subject_dn == *dn,
            X509Rule::SanUri { pattern } => cert.san_uris.iter().any(|u| glob_match(pattern, u)),
            X509Rule::SanDns { pattern } => {
                let pattern = pattern.to_ascii_lowercase();
                cert.san_dns
                    .iter()
                    .any(|d| glob_match(&pattern, &d.to_ascii_lowercase()))
            }
            X509Rule::SanEmail { pattern } => {
                cert.san_emails.iter().any(|e| glob_match(pattern, e))
            }
            X509Rule::Cn { cn } => cert.cn.as_deref() == Some(cn.as_str()),
        }
    }

    /// The rule's text (DN, pattern or CN), for validation messages.
    pub(crate) fn text(&self) -> &str {
        match self {
            X509Rule::SubjectDn { dn } => dn,
            X509Rule::SanUri { pattern }
            | X509Rule::SanDns { pattern }
            | X509Rule::SanEmail { pattern } => pattern,
            X509Rule::Cn { cn } => cn,
        }
    }
}

/// One way a session can come to belong to a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Binding {
    /// A TLS client certificate rule.
    X509 {
        #[serde(flatten)]
        rule: X509Rule,
    },
    /// A digest user; `password_hash` is an argon2 PHC string.
    Digest { user: String, password_hash: String },
    /// A peer address range, `addr` or `addr/prefix_len` (IPv4 or IPv6).
    Ip { cidr: String },
}

impl fmt::Display for Binding {
    /// A short human form that never prints the password hash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Binding::X509 { rule } => {
                let kind = match rule {
                    X509Rule::SubjectDn { .. } => "subject_dn",
                    X509Rule::SanUri { .. } => "san_uri",
                    X509Rule::SanDns { .. } => "san_dns",
                    X509Rule::SanEmail { .. } => "san_email",
                    X509Rule::Cn { .. } => "cn",
                };
                write!(f, "x509 {kind} {:?}", rule.text())
            }
            Binding::Digest { user, .. } => write!(f, "digest user {user:?}"),
            Binding::Ip { cidr } => write!(f, "ip {cidr}"),
        }
    }
}

/// What the server extracted from a verified TLS client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertIdentity {
    /// RFC 2253 subject DN, as Java's `X500Principal.getName()` prints it.
    pub subject_dn: String,
    pub cn: Option<String>,
    #[serde(default)]
    pub san_uris: Vec<String>,
    #[serde(default)]
    pub san_dns: Vec<String>,
    #[serde(default)]
    pub san_emails: Vec<String>,
}

/// An identity a session presents, to be mapped to a tenant.
#[derive(Debug, Clone, Copy)]
pub enum Identity<'a> {
    X509(&'a CertIdentity),
    /// `addauth digest user:password`, the password in clear as the client sent it.
    Digest {
        user: &'a str,
        password: &'a str,
    },
    Ip(IpAddr),
}

/// Glob match where `*` matches any run of characters (none included).
///
/// Iterative with one backtrack point, so it runs in O(len(pattern) × len(text))
/// at worst and never recurses: patterns come from operators, texts from certs.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Position after the last '*' seen, and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi + 1, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((after_star, tried_at)) = star {
            // Let the last '*' swallow one more character and retry.
            pi = after_star;
            ti = tried_at + 1;
            star = Some((after_star, tried_at + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        // Goal: '*' matches any run (empty included) and everything else is literal.
        let cases = [
            ("spiffe://corp/team-a/*", "spiffe://corp/team-a/svc", true),
            ("spiffe://corp/team-a/*", "spiffe://corp/team-a/x/y", true),
            ("spiffe://corp/team-a/*", "spiffe://corp/team-ab/svc", false),
            ("spiffe://corp/team-a/*", "spiffe://corp/team-a", false),
            ("*@team-a.corp", "alice@team-a.corp", true),
            ("*@team-a.corp", "alice@team-a.corp.evil", false),
            ("*@team-a.corp", "alice@evil-team-a.corp", false),
            ("*.team-a.corp", "db.team-a.corp", true),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("**", "anything", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("ü*", "üñ", true),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob_match(p, t), want, "{p:?} vs {t:?}");
        }
    }

    #[test]
    fn x509_rules_match_their_own_field_only() {
        // Goal: each rule kind looks only at its field; DNS is case-insensitive, URI is not.
        let cert = CertIdentity {
            subject_dn: "CN=svc,OU=team-a,O=corp".into(),
            cn: Some("svc".into()),
            san_uris: vec!["spiffe://corp/team-a/svc".into()],
            san_dns: vec!["DB.Team-A.corp".into()],
            san_emails: vec!["bot@team-a.corp".into()],
        };
        let yes = [
            X509Rule::SubjectDn {
                dn: "CN=svc,OU=team-a,O=corp".into(),
            },
            X509Rule::SanUri {
                pattern: "spiffe://corp/team-a/*".into(),
            },
            X509Rule::SanDns {
                pattern: "*.team-a.CORP".into(),
            },
            X509Rule::SanEmail {
                pattern: "*@team-a.corp".into(),
            },
            X509Rule::Cn { cn: "svc".into() },
        ];
        for r in &yes {
            assert!(r.matches(&cert), "{r:?}");
        }
        let no = [
            X509Rule::SubjectDn {
                dn: "cn=svc,ou=team-a,o=corp".into(),
            },
            X509Rule::SanUri {
                pattern: "SPIFFE://corp/team-a/*".into(),
            },
            X509Rule::SanEmail {
                pattern: "*@TEAM-A.corp".into(),
            },
            X509Rule::Cn { cn: "sv".into() },
            // A CN rule never matches the DN text, nor a SAN rule the CN.
            X509Rule::SanDns {
                pattern: "svc".into(),
            },
        ];
        for r in &no {
            assert!(!r.matches(&cert), "{r:?}");
        }
    }

    #[test]
    fn binding_json_shape_is_stable() {
        // Goal: the replicated JSON form of each binding kind is flat and tagged.
        let b = Binding::X509 {
            rule: X509Rule::SanUri {
                pattern: "spiffe://corp/a/*".into(),
            },
        };
        let json = serde_json::to_string(&b).expect("encode");
        assert_eq!(
            json,
            r#"{"kind":"x509","match":"san_uri","pattern":"spiffe://corp/a/*"}"#
        );
        assert_eq!(serde_json::from_str::<Binding>(&json).expect("decode"), b);
        let b = Binding::Ip {
            cidr: "10.0.0.0/8".into(),
        };
        let json = serde_json::to_string(&b).expect("encode");
        assert_eq!(json, r#"{"kind":"ip","cidr":"10.0.0.0/8"}"#);
    }

    #[test]
    fn display_hides_password_hash() {
        // Goal: a binding printed in an error message never shows the stored hash.
        let b = Binding::Digest {
            user: "bob".into(),
            password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        };
        let s = b.to_string();
        assert_eq!(s, "digest user \"bob\"");
    }
}
