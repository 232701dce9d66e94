//! Tenancy keys: tenants declared for bootstrap, the unbound-session policy
//! and the audit log.
//!
//! A `[[tenants]]` table has the shape of a registry record (the JSON that
//! `corral cli tenant show` prints): `name`, optional `root` (default
//! `/tenants/<name>`), `bindings`, `quotas`, `ip_allow`, `ip_deny`. This crate
//! checks the shape and the simple rules; `corral serve` then checks each
//! tenant fully (argon2 hashes, CIDRs, overlapping roots, conflicting
//! bindings) and refuses to start, naming `tenants[i]`, when one is wrong.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{Config, ConfigError};

/// Accepted `tenant_unbound` values.
pub const TENANT_UNBOUND_POLICIES: &[&str] = &["open", "refuse", "default"];

/// Accepted `audit_format` values.
pub const AUDIT_FORMATS: &[&str] = &["json_lines", "key_value"];

/// Accepted binding kinds and x509 match kinds of a `[[tenants]]` binding.
pub const BINDING_KINDS: &[&str] = &["x509", "digest", "ip"];
pub const X509_MATCHES: &[&str] = &["subject_dn", "san_uri", "san_dns", "san_email", "cn"];

/// One tenant to create at start if the registry lacks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantEntry {
    pub name: String,
    /// Namespace root; empty means `/tenants/<name>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub root: String,
    #[serde(default)]
    pub bindings: Vec<TenantBindingEntry>,
    #[serde(default)]
    pub quotas: TenantQuotasEntry,
    #[serde(default)]
    pub ip_allow: Vec<String>,
    #[serde(default)]
    pub ip_deny: Vec<String>,
}

/// One identity binding, flat: `kind` is `x509`, `digest` or `ip`; an x509
/// binding names its `match` (`subject_dn` with `dn`, `san_uri`/`san_dns`/
/// `san_email` with `pattern`, `cn` with `cn`); a digest binding has `user`
/// and `password_hash` (argon2, from `corral hash-password`); an ip binding
/// has `cidr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantBindingEntry {
    pub kind: String,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
}

/// A tenant's hard quotas; an absent one is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantQuotasEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_znodes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_data_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ephemerals: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_watches: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_rate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes_per_znode: Option<u64>,
}

pub(crate) fn check_tenancy(c: &Config) -> Result<(), ConfigError> {
    if !TENANT_UNBOUND_POLICIES.contains(&c.tenant_unbound.as_str()) {
        return Err(ConfigError::invalid(
            "tenant_unbound",
            format!(
                "'{}' is not a policy; use one of {}",
                c.tenant_unbound,
                TENANT_UNBOUND_POLICIES.join(", ")
            ),
        ));
    }
    match (c.tenant_unbound.as_str(), &c.tenant_default) {
        ("default", None) => {
            return Err(ConfigError::invalid(
                "tenant_default",
                "is required with tenant_unbound = \"default\": name the tenant unbound sessions join",
            ))
        }
        ("default", Some(_)) | (_, None) => {}
        (_, Some(_)) => {
            return Err(ConfigError::invalid(
                "tenant_default",
                "is set but tenant_unbound is not \"default\"; set tenant_unbound = \"default\" or remove the key",
            ))
        }
    }
    let mut names = BTreeSet::new();
    for (i, t) in c.tenants.iter().enumerate() {
        let key = format!("tenants[{i}]");
        if t.name.trim().is_empty() {
            return Err(ConfigError::invalid(&key, "name must not be empty"));
        }
        if !names.insert(t.name.as_str()) {
            return Err(ConfigError::invalid(
                &key,
                format!("tenant '{}' is declared twice", t.name),
            ));
        }
        for (j, b) in t.bindings.iter().enumerate() {
            check_binding(&format!("{key}.bindings[{j}]"), b)?;
        }
    }
    if !AUDIT_FORMATS.contains(&c.audit_format.as_str()) {
        return Err(ConfigError::invalid(
            "audit_format",
            format!(
                "'{}' is not a format; use one of {}",
                c.audit_format,
                AUDIT_FORMATS.join(", ")
            ),
        ));
    }
    for (key, v) in [
        ("audit_max_file_bytes", c.audit_max_file_bytes),
        ("audit_queue_len", c.audit_queue_len as u64),
    ] {
        if v == 0 {
            return Err(ConfigError::invalid(key, "must be > 0"));
        }
    }
    Ok(())
}

fn check_binding(key: &str, b: &TenantBindingEntry) -> Result<(), ConfigError> {
    let need = |field: &str, v: &Option<String>| match v {
        Some(s) if !s.is_empty() => Ok(()),
        _ => Err(ConfigError::invalid(
            key,
            format!("a {} binding needs '{field}'", b.kind),
        )),
    };
    match b.kind.as_str() {
        "x509" => {
            let m = b.match_kind.as_deref().unwrap_or("");
            match m {
                "subject_dn" => need("dn", &b.dn),
                "san_uri" | "san_dns" | "san_email" => need("pattern", &b.pattern),
                "cn" => need("cn", &b.cn),
                _ => Err(ConfigError::invalid(
                    key,
                    format!(
                        "an x509 binding needs 'match', one of {}",
                        X509_MATCHES.join(", ")
                    ),
                )),
            }
        }
        "digest" => {
            need("user", &b.user)?;
            need("password_hash", &b.password_hash)
        }
        "ip" => need("cidr", &b.cidr),
        other => Err(ConfigError::invalid(
            key,
            format!(
                "'{other}' is not a binding kind; use one of {}",
                BINDING_KINDS.join(", ")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> TenantEntry {
        TenantEntry {
            name: name.into(),
            root: String::new(),
            bindings: Vec::new(),
            quotas: TenantQuotasEntry::default(),
            ip_allow: Vec::new(),
            ip_deny: Vec::new(),
        }
    }

    #[test]
    fn policy_and_default_tenant_go_together() {
        // Goal: "default" needs tenant_default, and tenant_default needs "default".
        let mut c = Config {
            tenant_unbound: "default".into(),
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().key(), Some("tenant_default"));
        c.tenant_default = Some("a".into());
        assert!(c.validate().is_ok());
        c.tenant_unbound = "refuse".into();
        assert_eq!(c.validate().unwrap_err().key(), Some("tenant_default"));
        c.tenant_default = None;
        assert!(c.validate().is_ok());
        c.tenant_unbound = "closed".into();
        assert_eq!(c.validate().unwrap_err().key(), Some("tenant_unbound"));
    }

    #[test]
    fn tenant_entries_name_the_offending_index() {
        // Goal: duplicate names and incomplete bindings are refused with the
        // entry's index in the key.
        let mut c = Config {
            tenants: vec![entry("a"), entry("a")],
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().key(), Some("tenants[1]"));
        let mut t = entry("b");
        t.bindings.push(TenantBindingEntry {
            kind: "x509".into(),
            match_kind: Some("san_uri".into()),
            dn: None,
            pattern: None,
            cn: None,
            user: None,
            password_hash: None,
            cidr: None,
        });
        c.tenants = vec![entry("a"), t];
        let e = c.validate().unwrap_err();
        assert_eq!(e.key(), Some("tenants[1].bindings[0]"));
        assert!(e.to_string().contains("'pattern'"), "{e}");
    }

    #[test]
    fn toml_tenants_read_as_registry_records() {
        // Goal: a [[tenants]] table deserializes, and serializes back to the
        // registry's JSON shape (flat tagged bindings, absent fields omitted).
        let text = r#"
            [[tenants]]
            name = "team-a"
            quotas = { max_znodes = 100 }
            bindings = [
              { kind = "x509", match = "san_uri", pattern = "spiffe://corp/team-a/*" },
              { kind = "ip", cidr = "10.0.0.0/8" },
            ]
        "#;
        let c: Config = toml_from_str(text);
        c.validate().expect("valid");
        let t = &c.tenants[0];
        let json = serde_json_like(t);
        assert!(json.contains(r#""match":"san_uri""#), "{json}");
        assert!(!json.contains("password_hash"), "{json}");
    }

    fn toml_from_str(text: &str) -> Config {
        use figment::providers::{Format, Toml};
        figment::Figment::from(figment::providers::Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .expect("parse")
    }

    fn serde_json_like(t: &TenantEntry) -> String {
        serde_json::to_string(t).expect("encode")
    }
}
