//! The tenancy keys of the configuration, checked in full and turned into
//! the server's [`TenancyOptions`].

use corral_config::{Config, TenantEntry};
use corral_server::tenancy::{TenancyOptions, UnboundPolicy};
use corral_tenant::{AuditFormat, FileSinkConfig, Registry, Tenant};

/// The tenancy options, or a message naming the key at fault.
pub fn tenancy_options(cfg: &Config) -> Result<TenancyOptions, String> {
    let bootstrap = tenants(&cfg.tenants)?;
    let unbound = match cfg.tenant_unbound.as_str() {
        "refuse" => UnboundPolicy::Refuse,
        "default" => UnboundPolicy::Default(cfg.tenant_default.clone().unwrap_or_default()),
        _ => UnboundPolicy::Open,
    };
    let audit = cfg.audit_log_dir.as_ref().map(|dir| {
        let mut c = FileSinkConfig::new(dir);
        c.format = match cfg.audit_format.as_str() {
            "key_value" => AuditFormat::KeyValue,
            _ => AuditFormat::JsonLines,
        };
        c.max_file_bytes = cfg.audit_max_file_bytes;
        c.keep_files = cfg.audit_keep_files as usize;
        c.per_tenant = cfg.audit_per_tenant;
        c.queue_len = cfg.audit_queue_len;
        c
    });
    Ok(TenancyOptions {
        unbound,
        bootstrap,
        audit,
    })
}

/// Every `[[tenants]]` entry as a validated tenant; together they must form a
/// valid registry (disjoint roots, no identity bound twice).
pub fn tenants(entries: &[TenantEntry]) -> Result<Vec<Tenant>, String> {
    let mut registry = Registry::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let key = format!("tenants[{i}]");
        let json = serde_json::to_vec(e).map_err(|err| format!("{key}: {err}"))?;
        let t = Tenant::from_json(&json).map_err(|err| format!("{key}: {err}"))?;
        registry
            .create(t.clone())
            .map_err(|err| format!("{key}: {err}"))?;
        out.push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_config::{TenantBindingEntry, TenantQuotasEntry};

    fn entry(name: &str, root: &str) -> TenantEntry {
        TenantEntry {
            name: name.into(),
            root: root.into(),
            bindings: vec![TenantBindingEntry {
                kind: "ip".into(),
                match_kind: None,
                dn: None,
                pattern: None,
                cn: None,
                user: None,
                password_hash: None,
                cidr: Some(format!("10.0.0.{}/32", name.len())),
            }],
            quotas: TenantQuotasEntry {
                max_znodes: Some(5),
                ..TenantQuotasEntry::default()
            },
            ip_allow: Vec::new(),
            ip_deny: Vec::new(),
        }
    }

    #[test]
    fn config_entries_become_registry_tenants() {
        // Goal: a config entry turns into the same tenant the registry stores,
        // with the default root filled in and its quotas and bindings kept.
        let t = tenants(&[entry("a", "")]).expect("valid");
        assert_eq!(t[0].root, "/tenants/a");
        assert_eq!(t[0].quotas.max_znodes, Some(5));
        assert_eq!(t[0].bindings.len(), 1);
    }

    #[test]
    fn overlapping_roots_and_bad_cidrs_name_the_entry() {
        // Goal: set-level and field-level errors point at tenants[i].
        let e = tenants(&[entry("a", "/t"), entry("bb", "/t/x")]).expect_err("overlap");
        assert!(
            e.starts_with("tenants[1]:") && e.contains("overlaps"),
            "{e}"
        );
        let mut bad = entry("a", "");
        bad.bindings[0].cidr = Some("10/8".into());
        let e = tenants(&[bad]).expect_err("bad cidr");
        assert!(e.starts_with("tenants[0]:"), "{e}");
    }
}
