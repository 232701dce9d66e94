//! `Config::validate`: range and shape checks that serde cannot express.
//!
//! Each rule reports the first problem it finds with the key's TOML name.
//! Secrets (super digests) are never echoed back: only the user name part.

use std::collections::BTreeSet;

use crate::de::port_from_i64;
use crate::{Config, ConfigError, ServerEntry};

/// Four-letter words corral implements (ZooKeeper 3.8's set minus the
/// tracing-mask ones, which have no meaning here).
pub const FOUR_LETTER_WORDS: &[&str] = &[
    "ruok", "srvr", "stat", "mntr", "cons", "envi", "conf", "wchs", "wchc", "wchp", "dump", "isro",
    "crst", "srst", "dirs",
];

/// Accepted `tls_client_auth` values.
pub const TLS_CLIENT_AUTH_MODES: &[&str] = &["none", "want", "need"];

/// Accepted `log_level` values.
pub const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

const MAX_FRAME_BYTES_MIN: usize = 1024;
const MAX_FRAME_BYTES_MAX: usize = 256 * 1024 * 1024;
/// ZooKeeper keeps at least three snapshots so a corrupt newest one is survivable.
pub(crate) const SNAP_RETAIN_COUNT_MIN: u32 = 3;
/// ZooKeeper snapshots at a random point in [snapCount/2, snapCount], so it needs two.
pub(crate) const SNAP_COUNT_MIN: u64 = 2;

type Check = fn(&Config) -> Result<(), ConfigError>;

const CHECKS: &[Check] = &[
    check_client_port,
    check_data_dir,
    check_tick,
    check_session_timeouts,
    check_max_frame_bytes,
    check_snapshots,
    check_four_letter_words,
    check_super_digests,
    check_zk_super_digest,
    check_positive_limits,
    check_admin_addr,
    check_servers,
    check_log_level,
    check_tls,
    check_txn_log_engine,
    check_peers,
    check_role,
    crate::tenancy::check_tenancy,
];

impl Config {
    /// Checks every rule; the error names the offending key and the fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        CHECKS.iter().try_for_each(|check| check(self))
    }
}

fn check_client_port(c: &Config) -> Result<(), ConfigError> {
    port_from_i64(i64::from(c.client_port))
        .map(drop)
        .map_err(|p| ConfigError::invalid("client_port", p))
}

fn check_data_dir(c: &Config) -> Result<(), ConfigError> {
    if c.data_dir.as_os_str().is_empty() {
        return Err(ConfigError::invalid(
            "data_dir",
            "must not be empty; name a directory for snapshots and the txn log",
        ));
    }
    Ok(())
}

fn check_tick(c: &Config) -> Result<(), ConfigError> {
    if c.tick_time_ms == 0 {
        return Err(ConfigError::invalid(
            "tick_time_ms",
            "must be > 0 (ZooKeeper's usual value is 2000)",
        ));
    }
    Ok(())
}

fn check_session_timeouts(c: &Config) -> Result<(), ConfigError> {
    for (key, value) in [
        ("min_session_timeout_ms", c.min_session_timeout_ms),
        ("max_session_timeout_ms", c.max_session_timeout_ms),
    ] {
        if value == Some(0) {
            return Err(ConfigError::invalid(
                key,
                "must be > 0; remove the key to use the tick-based default",
            ));
        }
    }
    let (min, max) = (c.min_session_timeout(), c.max_session_timeout());
    // ZooKeeper allows min == max (a fixed timeout) but not min > max.
    if min > max {
        return Err(ConfigError::invalid(
            "min_session_timeout_ms",
            format!(
                "{min} is larger than max_session_timeout_ms ({max}); lower it or raise the maximum"
            ),
        ));
    }
    Ok(())
}

fn check_max_frame_bytes(c: &Config) -> Result<(), ConfigError> {
    if !(MAX_FRAME_BYTES_MIN..=MAX_FRAME_BYTES_MAX).contains(&c.max_frame_bytes) {
        return Err(ConfigError::invalid(
            "max_frame_bytes",
            format!(
                "{} is out of range; use 1024 (1 KiB) to 268435456 (256 MiB), default 1048576",
                c.max_frame_bytes
            ),
        ));
    }
    Ok(())
}

fn check_snapshots(c: &Config) -> Result<(), ConfigError> {
    if c.snap_retain_count < SNAP_RETAIN_COUNT_MIN {
        return Err(ConfigError::invalid(
            "snap_retain_count",
            format!(
                "{} is too small; keep at least {SNAP_RETAIN_COUNT_MIN} snapshots",
                c.snap_retain_count
            ),
        ));
    }
    if c.snap_count < SNAP_COUNT_MIN {
        return Err(ConfigError::invalid(
            "snap_count",
            format!(
                "{} is too small; use at least {SNAP_COUNT_MIN}",
                c.snap_count
            ),
        ));
    }
    Ok(())
}

fn check_four_letter_words(c: &Config) -> Result<(), ConfigError> {
    match c
        .four_letter_words
        .iter()
        .find(|w| *w != "*" && !FOUR_LETTER_WORDS.contains(&w.as_str()))
    {
        Some(word) => Err(ConfigError::invalid(
            "four_letter_words",
            format!(
                "'{word}' is not a four-letter word corral knows; use some of {} or \"*\" for all",
                FOUR_LETTER_WORDS.join(" ")
            ),
        )),
        None => Ok(()),
    }
}

fn check_super_digests(c: &Config) -> Result<(), ConfigError> {
    for (index, entry) in c.super_digests.iter().enumerate() {
        if !is_argon2_entry(entry) {
            // Name the entry by position and user only: it may be a plaintext password.
            let user = entry.split_once(':').map(|(u, _)| u).unwrap_or("?");
            return Err(ConfigError::invalid(
                "super_digests",
                format!(
                    "entry {} (user '{user}') is not 'name:$argon2id$...'; plaintext passwords \
                     are not accepted, generate a hash with `corral hash-password`",
                    index + 1
                ),
            ));
        }
    }
    Ok(())
}

fn is_argon2_entry(entry: &str) -> bool {
    let Some((user, hash)) = entry.split_once(':') else {
        return false;
    };
    let variant_ok = ["$argon2id$", "$argon2i$", "$argon2d$"]
        .iter()
        .any(|prefix| hash.starts_with(prefix));
    // PHC: $alg$v=..$params$salt$hash, so at least five '$'-separated parts.
    !user.is_empty() && variant_ok && hash.split('$').count() >= 5
}

fn check_zk_super_digest(c: &Config) -> Result<(), ConfigError> {
    match &c.zk_super_digest {
        Some(digest) if !is_zk_digest(digest) => Err(ConfigError::invalid(
            "zk_super_digest",
            "expected 'name:base64(sha1(name:password))', 28 base64 characters after the colon, \
             e.g. super:D/InIHSb7yEEbrWz8b9l71RjZJU= (prefer super_digests: argon2 is stronger)",
        )),
        _ => Ok(()),
    }
}

fn is_zk_digest(digest: &str) -> bool {
    let Some((user, hash)) = digest.split_once(':') else {
        return false;
    };
    let base64_char = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    // A SHA-1 is 20 bytes: 27 base64 characters and one '=' of padding.
    !user.is_empty()
        && hash.len() == 28
        && hash.ends_with('=')
        && hash.bytes().take(27).all(base64_char)
}

fn check_positive_limits(c: &Config) -> Result<(), ConfigError> {
    let limits: [(&str, u64); 5] = [
        ("max_batch", c.max_batch as u64),
        (
            "max_outstanding_per_session",
            c.max_outstanding_per_session as u64,
        ),
        ("container_check_interval_ms", c.container_check_interval_ms),
        ("init_limit", u64::from(c.init_limit)),
        ("sync_limit", u64::from(c.sync_limit)),
    ];
    match limits.iter().find(|(_, value)| *value == 0) {
        Some((key, _)) => Err(ConfigError::invalid(
            key,
            "must be > 0; remove the key to use the default",
        )),
        None => Ok(()),
    }
}

fn check_admin_addr(c: &Config) -> Result<(), ConfigError> {
    match c.admin_addr {
        Some(addr) if addr.port() == 0 => Err(ConfigError::invalid(
            "admin_addr",
            format!("{addr}: 0 is not a valid port (1-65535)"),
        )),
        _ => Ok(()),
    }
}

fn check_servers(c: &Config) -> Result<(), ConfigError> {
    if c.servers.is_empty() {
        return Ok(());
    }
    let mut seen = BTreeSet::new();
    for server in &c.servers {
        check_server_entry(server)?;
        if !seen.insert(server.id) {
            return Err(ConfigError::invalid(
                "servers",
                format!(
                    "server id {} is listed twice; ids must be unique",
                    server.id
                ),
            ));
        }
    }
    if !seen.contains(&c.server_id) && c.role != "observer" {
        let ids: Vec<String> = seen.iter().map(u64::to_string).collect();
        return Err(ConfigError::invalid(
            "server_id",
            format!(
                "{} is not one of the configured servers ({}); set it with server_id, \
                 CORRAL_SERVER_ID or, for zoo.cfg, the dataDir/myid file",
                c.server_id,
                ids.join(", ")
            ),
        ));
    }
    Ok(())
}

fn check_server_entry(s: &ServerEntry) -> Result<(), ConfigError> {
    if s.host.trim().is_empty() {
        return Err(ConfigError::invalid(
            "servers",
            format!("server {}: host must not be empty", s.id),
        ));
    }
    for (name, port) in [
        ("quorum_port", s.quorum_port),
        ("election_port", s.election_port),
    ] {
        if port == 0 {
            return Err(ConfigError::invalid(
                "servers",
                format!("server {}: {name} 0 is not a valid port (1-65535)", s.id),
            ));
        }
    }
    Ok(())
}

fn check_role(c: &Config) -> Result<(), ConfigError> {
    if c.role != "voter" && c.role != "observer" {
        return Err(ConfigError::invalid(
            "role",
            format!("'{}' is not 'voter' or 'observer'", c.role),
        ));
    }
    let explicit = if c.upstreams.is_empty() {
        Vec::new()
    } else {
        c.upstream_list()
    };
    for (region, addr) in explicit {
        if !host_port_ok(&addr) {
            return Err(ConfigError::invalid(
                "upstreams",
                format!("'{addr}' is not host:port"),
            ));
        }
        if region.contains(char::is_whitespace) {
            return Err(ConfigError::invalid(
                "upstreams",
                format!("region '{region}' must not contain spaces"),
            ));
        }
    }
    if let Some(a) = &c.feed_addr {
        if !host_port_ok(a) {
            return Err(ConfigError::invalid(
                "feed_addr",
                format!("'{a}' is not host:port"),
            ));
        }
    }
    Ok(())
}

/// `host:port` with a host and a non-zero port (the host is resolved at
/// start).
fn host_port_ok(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.trim_matches(['[', ']']).is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
        }
        None => false,
    }
}

fn check_peers(c: &Config) -> Result<(), ConfigError> {
    for (key, v) in [
        ("peer_tick_ms", c.peer_tick_ms),
        ("peer_sync_limit_ticks", u64::from(c.peer_sync_limit_ticks)),
        ("peer_init_limit_ticks", u64::from(c.peer_init_limit_ticks)),
    ] {
        if v == 0 {
            return Err(ConfigError::invalid(key, "must be > 0"));
        }
    }
    Ok(())
}

impl Config {
    /// What running this config as an ensemble member needs beyond
    /// [`Config::validate`]: the peer TLS files, and voters only (observers
    /// come later). Loading a config does not require these, so tools can
    /// read any zoo.cfg; `corral serve` checks them before it starts.
    pub fn check_cluster(&self) -> Result<(), ConfigError> {
        check_cluster(self)
    }
}

fn check_cluster(c: &Config) -> Result<(), ConfigError> {
    if !c.is_cluster() {
        return Ok(());
    }
    let names = [
        "peer_tls_ca_file",
        "peer_tls_cert_file",
        "peer_tls_key_file",
    ];
    for (name, file) in names.iter().zip(c.peer_tls_files()) {
        if file.is_none() {
            return Err(ConfigError::invalid(
                name,
                "an ensemble talks over mutual TLS: set peer_tls_dir to a directory made by \
                 `corral cert --dir DIR --ids 1,2,3`, or set peer_tls_ca_file, \
                 peer_tls_cert_file and peer_tls_key_file",
            ));
        }
    }
    if c.is_observer() {
        if c.upstream_list().is_empty() {
            return Err(ConfigError::invalid(
                "upstreams",
                "an observer needs an upstream: list voters in servers, or set upstreams",
            ));
        }
    } else if !c.servers.iter().any(|s| s.id == c.server_id && !s.observer) {
        return Err(ConfigError::invalid(
            "server_id",
            format!(
                "server {} is not a voter in servers; list it, or set role = \"observer\"",
                c.server_id
            ),
        ));
    }
    Ok(())
}

/// Accepted `txn_log_engine` values.
pub const TXN_LOG_ENGINES: &[&str] = &["file", "sled"];

fn check_txn_log_engine(c: &Config) -> Result<(), ConfigError> {
    if !TXN_LOG_ENGINES.contains(&c.txn_log_engine.as_str()) {
        return Err(ConfigError::invalid(
            "txn_log_engine",
            format!(
                "'{}' is not an engine; use one of {}",
                c.txn_log_engine,
                TXN_LOG_ENGINES.join(", ")
            ),
        ));
    }
    Ok(())
}

fn check_log_level(c: &Config) -> Result<(), ConfigError> {
    if !LOG_LEVELS.contains(&c.log_level.as_str()) {
        return Err(ConfigError::invalid(
            "log_level",
            format!(
                "'{}' is not a level; use one of {}",
                c.log_level,
                LOG_LEVELS.join(", ")
            ),
        ));
    }
    Ok(())
}

fn check_tls(c: &Config) -> Result<(), ConfigError> {
    if let Some(mode) = &c.tls_client_auth {
        if !TLS_CLIENT_AUTH_MODES.contains(&mode.to_ascii_lowercase().as_str()) {
            return Err(ConfigError::invalid(
                "tls_client_auth",
                format!("'{mode}' is not one of none, want, need"),
            ));
        }
    }
    let Some(port) = c.secure_client_port else {
        let set = [
            ("tls_cert_file", c.tls_cert_file.is_some()),
            ("tls_key_file", c.tls_key_file.is_some()),
            ("tls_ca_file", c.tls_ca_file.is_some()),
            ("tls_keystore_file", c.tls_keystore_file.is_some()),
            ("tls_keystore_password", c.tls_keystore_password.is_some()),
            ("tls_truststore_file", c.tls_truststore_file.is_some()),
            (
                "tls_truststore_password",
                c.tls_truststore_password.is_some(),
            ),
            ("tls_client_auth", c.tls_client_auth.is_some()),
        ];
        return match set.iter().find(|(_, is_set)| *is_set) {
            Some((key, _)) => Err(ConfigError::invalid(
                key,
                "is set but secure_client_port is not; set secure_client_port to start the \
                 TLS listener, or remove the key",
            )),
            None => Ok(()),
        };
    };
    if port == c.client_port {
        return Err(ConfigError::invalid(
            "secure_client_port",
            format!("{port} is also client_port; the TLS listener needs a port of its own"),
        ));
    }
    check_tls_key_source(c)?;
    check_tls_ca_source(c)?;
    let mode = c.tls_client_auth();
    if mode != "none" && c.tls_ca_file.is_none() && c.tls_truststore_file.is_none() {
        return Err(ConfigError::invalid(
            "tls_client_auth",
            format!(
                "'{mode}' needs tls_ca_file (or tls_truststore_file), the CA bundle client \
                 certificates are checked against"
            ),
        ));
    }
    Ok(())
}

/// PEM `tls_cert_file` + `tls_key_file`, or a JKS `tls_keystore_file` with its password.
fn check_tls_key_source(c: &Config) -> Result<(), ConfigError> {
    let empty =
        |p: &Option<std::path::PathBuf>| p.as_ref().is_none_or(|p| p.as_os_str().is_empty());
    if c.tls_keystore_file.is_none() {
        if c.tls_keystore_password.is_some() {
            return Err(ConfigError::invalid(
                "tls_keystore_password",
                "is set but tls_keystore_file is not; name the JKS key store, or remove the key",
            ));
        }
        for (key, value) in [
            ("tls_cert_file", &c.tls_cert_file),
            ("tls_key_file", &c.tls_key_file),
        ] {
            if empty(value) {
                return Err(ConfigError::invalid(
                    key,
                    "is required with secure_client_port: name a PEM file (or set \
                     tls_keystore_file to use a JKS key store instead)",
                ));
            }
        }
        return Ok(());
    }
    if let Some((key, _)) = [
        ("tls_cert_file", &c.tls_cert_file),
        ("tls_key_file", &c.tls_key_file),
    ]
    .into_iter()
    .find(|(_, v)| v.is_some())
    {
        return Err(ConfigError::invalid(
            "tls_keystore_file",
            format!(
                "is set together with {key}; use either a JKS key store (tls_keystore_file) or \
                 PEM files (tls_cert_file and tls_key_file), not both"
            ),
        ));
    }
    if empty(&c.tls_keystore_file) {
        return Err(ConfigError::invalid(
            "tls_keystore_file",
            "is empty; name a JKS key store",
        ));
    }
    if c.tls_keystore_password.is_none() {
        return Err(ConfigError::invalid(
            "tls_keystore_password",
            "is required with tls_keystore_file: it checks the key store and decrypts the \
             private key (set it in CORRAL_TLS_KEYSTORE_PASSWORD to keep it out of the file)",
        ));
    }
    Ok(())
}

/// At most one of PEM `tls_ca_file` and JKS `tls_truststore_file`.
fn check_tls_ca_source(c: &Config) -> Result<(), ConfigError> {
    match (&c.tls_ca_file, &c.tls_truststore_file) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            "tls_truststore_file",
            "is set together with tls_ca_file; use either a JKS trust store or a PEM CA bundle, \
             not both",
        )),
        (_, Some(p)) if p.as_os_str().is_empty() => Err(ConfigError::invalid(
            "tls_truststore_file",
            "is empty; name a JKS trust store",
        )),
        (_, None) if c.tls_truststore_password.is_some() => Err(ConfigError::invalid(
            "tls_truststore_password",
            "is set but tls_truststore_file is not; name the JKS trust store, or remove the key",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARGON2: &str = "root:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

    fn server(id: u64) -> ServerEntry {
        ServerEntry {
            id,
            host: "localhost".into(),
            quorum_port: 2888,
            election_port: 3888,
            observer: false,
            client: None,
        }
    }

    fn broken(edit: impl FnOnce(&mut Config)) -> ConfigError {
        let mut config = Config::default();
        edit(&mut config);
        match config.validate() {
            Ok(()) => panic!("expected a validation error for {config:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn defaults_are_valid() {
        // Goal: the built-in defaults pass every rule.
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn every_rule_names_its_key() {
        // Goal: each failing rule reports the key it is about, first in the message.
        type Edit = Box<dyn FnOnce(&mut Config)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("client_port", Box::new(|c| c.client_port = 0)),
            ("data_dir", Box::new(|c| c.data_dir = "".into())),
            ("tick_time_ms", Box::new(|c| c.tick_time_ms = 0)),
            (
                "min_session_timeout_ms",
                Box::new(|c| c.min_session_timeout_ms = Some(0)),
            ),
            (
                "max_session_timeout_ms",
                Box::new(|c| c.max_session_timeout_ms = Some(0)),
            ),
            (
                "min_session_timeout_ms",
                Box::new(|c| c.min_session_timeout_ms = Some(50_000)),
            ),
            ("max_frame_bytes", Box::new(|c| c.max_frame_bytes = 1023)),
            (
                "max_frame_bytes",
                Box::new(|c| c.max_frame_bytes = 256 * 1024 * 1024 + 1),
            ),
            ("snap_retain_count", Box::new(|c| c.snap_retain_count = 2)),
            ("snap_count", Box::new(|c| c.snap_count = 1)),
            (
                "four_letter_words",
                Box::new(|c| c.four_letter_words = vec!["kill".into()]),
            ),
            (
                "super_digests",
                Box::new(|c| c.super_digests = vec!["root:hunter2".into()]),
            ),
            (
                "zk_super_digest",
                Box::new(|c| c.zk_super_digest = Some("super:abc".into())),
            ),
            ("max_batch", Box::new(|c| c.max_batch = 0)),
            (
                "max_outstanding_per_session",
                Box::new(|c| c.max_outstanding_per_session = 0),
            ),
            (
                "container_check_interval_ms",
                Box::new(|c| c.container_check_interval_ms = 0),
            ),
            ("init_limit", Box::new(|c| c.init_limit = 0)),
            ("sync_limit", Box::new(|c| c.sync_limit = 0)),
            (
                "admin_addr",
                Box::new(|c| c.admin_addr = Some(([127, 0, 0, 1], 0).into())),
            ),
            (
                "servers",
                Box::new(|c| c.servers = vec![server(1), server(1)]),
            ),
            (
                "servers",
                Box::new(|c| {
                    c.servers = vec![ServerEntry {
                        quorum_port: 0,
                        ..server(1)
                    }]
                }),
            ),
            (
                "servers",
                Box::new(|c| {
                    c.servers = vec![ServerEntry {
                        host: " ".into(),
                        ..server(1)
                    }]
                }),
            ),
            (
                "server_id",
                Box::new(|c| c.servers = vec![server(2), server(3)]),
            ),
            ("log_level", Box::new(|c| c.log_level = "loud".into())),
            (
                "tls_client_auth",
                Box::new(|c| c.tls_client_auth = Some("required".into())),
            ),
            (
                "tls_cert_file",
                Box::new(|c| c.tls_cert_file = Some("server.pem".into())),
            ),
            (
                "tls_cert_file",
                Box::new(|c| c.secure_client_port = Some(2281)),
            ),
            (
                "secure_client_port",
                Box::new(|c| {
                    c.secure_client_port = Some(c.client_port);
                    c.tls_cert_file = Some("s.pem".into());
                    c.tls_key_file = Some("k.pem".into());
                }),
            ),
            (
                "tls_client_auth",
                Box::new(|c| {
                    c.secure_client_port = Some(2281);
                    c.tls_cert_file = Some("s.pem".into());
                    c.tls_key_file = Some("k.pem".into());
                    c.tls_client_auth = Some("need".into());
                }),
            ),
        ];
        for (key, edit) in cases {
            let err = broken(edit);
            assert_eq!(err.key(), Some(key), "{err}");
            assert!(err.to_string().starts_with(&format!("{key}: ")), "{err}");
        }
    }

    #[test]
    fn messages_match_the_documented_wording() {
        // Goal: the two messages quoted in the docs read exactly as written there.
        assert_eq!(
            broken(|c| c.client_port = 0).to_string(),
            "client_port: 0 is not a valid port (1-65535)"
        );
        assert!(broken(|c| c.tick_time_ms = 0)
            .to_string()
            .starts_with("tick_time_ms: must be > 0"));
    }

    #[test]
    fn plaintext_super_password_is_refused_without_echoing_it() {
        // Goal: a plaintext password is rejected, the fix is named, and the secret is not printed.
        let text =
            broken(|c| c.super_digests = vec![ARGON2.into(), "root:hunter2".into()]).to_string();
        assert!(text.contains("entry 2 (user 'root')"), "{text}");
        assert!(
            text.contains("plaintext") && text.contains("corral hash-password"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn argon2_super_digests_are_accepted() {
        // Goal: PHC argon2 entries (id, i, d) pass; a bare hash without a user does not.
        let mut config = Config {
            super_digests: vec![ARGON2.into(), ARGON2.replace("argon2id", "argon2i")],
            ..Config::default()
        };
        assert!(config.validate().is_ok());
        config.super_digests = vec![ARGON2.trim_start_matches("root:").into()];
        assert!(config.validate().is_err());
    }

    #[test]
    fn zookeeper_super_digest_shape_is_checked() {
        // Goal: kazoo's `super:D/InIHSb7yEEbrWz8b9l71RjZJU=` passes; a plaintext one fails unechoed.
        let mut config = Config {
            zk_super_digest: Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=".into()),
            ..Config::default()
        };
        assert!(config.validate().is_ok());
        config.zk_super_digest = Some("super:test".into());
        let text = config
            .validate()
            .map_err(|e| e.to_string())
            .err()
            .unwrap_or_default();
        assert!(
            text.starts_with("zk_super_digest: ") && !text.contains("test"),
            "{text}"
        );
    }

    #[test]
    fn equal_session_timeouts_and_star_are_allowed() {
        // Goal: min == max (a fixed timeout, allowed by ZooKeeper) and "*" for all words pass.
        let config = Config {
            min_session_timeout_ms: Some(10_000),
            max_session_timeout_ms: Some(10_000),
            four_letter_words: vec!["*".into()],
            ..Config::default()
        };
        assert!(config.validate().is_ok());
    }

    #[test]
    fn tls_listener_config_is_valid_and_defaults_client_auth() {
        // Goal: port + cert + key is valid; client auth defaults to want with a CA, none without.
        let mut config = Config {
            secure_client_port: Some(2281),
            tls_cert_file: Some("server.pem".into()),
            tls_key_file: Some("server.key".into()),
            ..Config::default()
        };
        assert!(config.validate().is_ok());
        assert_eq!(config.tls_client_auth(), "none");
        config.tls_ca_file = Some("ca.pem".into());
        assert!(config.validate().is_ok());
        assert_eq!(config.tls_client_auth(), "want");
        config.tls_client_auth = Some("NEED".into());
        assert!(config.validate().is_ok());
        assert_eq!(config.tls_client_auth(), "need");
    }

    #[test]
    fn jks_stores_are_valid_instead_of_pem_files() {
        // Goal: a JKS key store with its password replaces cert+key; a trust store replaces the CA bundle and defaults auth to want.
        let mut config = Config {
            secure_client_port: Some(2281),
            tls_keystore_file: Some("keystore.jks".into()),
            tls_keystore_password: Some("apassword".into()),
            ..Config::default()
        };
        assert!(config.validate().is_ok());
        assert_eq!(config.tls_client_auth(), "none");
        config.tls_truststore_file = Some("truststore.jks".into());
        assert!(config.validate().is_ok());
        assert_eq!(config.tls_client_auth(), "want");
        config.tls_truststore_password = Some("apassword".into());
        config.tls_client_auth = Some("need".into());
        assert!(config.validate().is_ok());
        // A JKS key store with a PEM CA bundle is fine too.
        config.tls_truststore_file = None;
        config.tls_truststore_password = None;
        config.tls_ca_file = Some("ca.pem".into());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn jks_key_mistakes_name_the_key() {
        // Goal: missing/extra JKS passwords, JKS mixed with PEM, and JKS keys without a port each fail naming the key.
        let jks = |c: &mut Config| {
            c.secure_client_port = Some(2281);
            c.tls_keystore_file = Some("keystore.jks".into());
            c.tls_keystore_password = Some("apassword".into());
        };
        type Edit = Box<dyn FnOnce(&mut Config)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "tls_keystore_password",
                Box::new(move |c| {
                    jks(c);
                    c.tls_keystore_password = None;
                }),
            ),
            (
                "tls_keystore_file",
                Box::new(move |c| {
                    jks(c);
                    c.tls_cert_file = Some("server.pem".into());
                }),
            ),
            (
                "tls_keystore_file",
                Box::new(move |c| {
                    jks(c);
                    c.tls_keystore_file = Some("".into());
                }),
            ),
            (
                "tls_keystore_password",
                Box::new(|c| {
                    c.secure_client_port = Some(2281);
                    c.tls_cert_file = Some("s.pem".into());
                    c.tls_key_file = Some("k.pem".into());
                    c.tls_keystore_password = Some("x".into());
                }),
            ),
            (
                "tls_truststore_file",
                Box::new(move |c| {
                    jks(c);
                    c.tls_ca_file = Some("ca.pem".into());
                    c.tls_truststore_file = Some("truststore.jks".into());
                }),
            ),
            (
                "tls_truststore_password",
                Box::new(move |c| {
                    jks(c);
                    c.tls_truststore_password = Some("x".into());
                }),
            ),
            (
                "tls_client_auth",
                Box::new(move |c| {
                    jks(c);
                    c.tls_client_auth = Some("need".into());
                }),
            ),
            (
                "tls_keystore_file",
                Box::new(|c| c.tls_keystore_file = Some("keystore.jks".into())),
            ),
            (
                "tls_truststore_password",
                Box::new(|c| c.tls_truststore_password = Some("x".into())),
            ),
        ];
        for (key, edit) in cases {
            let err = broken(edit);
            assert_eq!(err.key(), Some(key), "{err}");
            let text = err.to_string();
            assert!(
                !text.contains("apassword"),
                "passwords are not echoed: {text}"
            );
        }
    }

    #[test]
    fn observer_role_needs_upstreams_and_checks_their_form() {
        // Goal: role = observer with its own id outside servers is valid and
        // fed by the voters, or by explicit `[region=]host:port` upstreams;
        // a bad role, a bad upstream or a bad feed_addr names its key; a
        // voter id missing from servers is refused unless it observes.
        let mut c = Config {
            server_id: 7,
            role: "observer".into(),
            servers: vec![server(1), server(2)],
            peer_tls_dir: Some("certs".into()),
            ..Config::default()
        };
        assert!(c.validate().is_ok() && c.check_cluster().is_ok());
        assert!(c.is_observer() && c.is_cluster());
        assert_eq!(c.upstream_list().len(), 2);
        c.upstreams = vec!["eu=10.0.0.5:2890".into(), "[::1]:2891".into()];
        c.region = "eu".into();
        assert!(c.validate().is_ok());
        assert_eq!(
            c.upstream_list(),
            vec![
                ("eu".to_string(), "10.0.0.5:2890".to_string()),
                (String::new(), "[::1]:2891".to_string())
            ]
        );
        for bad in ["nohost", "h:0", ":12", "h:port", "my region=h:1"] {
            c.upstreams = vec![bad.into()];
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("upstreams"), "{bad}: {e}");
        }
        c.upstreams.clear();
        c.feed_addr = Some("x".into());
        assert!(c.validate().unwrap_err().to_string().contains("feed_addr"));
        c.feed_addr = Some("127.0.0.1:3000".into());
        assert!(c.validate().is_ok());
        c.servers.clear();
        let e = c.check_cluster().unwrap_err().to_string();
        assert!(e.contains("upstreams"), "{e}");
        c.role = "learner".into();
        assert!(c.validate().unwrap_err().to_string().contains("role"));
        c.role = "voter".into();
        c.servers = vec![server(1), server(2)];
        assert!(c.validate().unwrap_err().to_string().contains("server_id"));
    }

    #[test]
    fn cluster_config_with_own_id_and_peer_tls_is_valid() {
        // Goal: a voters list that contains server_id, with peer TLS files,
        // passes; without them the error names the key to fix; a server
        // marked observer runs as one.
        let mut config = Config {
            server_id: 3,
            servers: vec![server(1), server(2), server(3)],
            peer_tls_dir: Some("certs".into()),
            ..Config::default()
        };
        assert!(config.validate().is_ok() && config.check_cluster().is_ok());
        assert_eq!(
            config.peer_tls_files()[1].as_deref(),
            Some(std::path::Path::new("certs/server-3.pem"))
        );
        config.peer_tls_cert_file = Some("mine.pem".into());
        assert_eq!(
            config.peer_tls_files()[1].as_deref(),
            Some(std::path::Path::new("mine.pem"))
        );
        config.peer_tls_dir = None;
        assert!(config.validate().is_ok(), "loading does not need peer TLS");
        let e = config.check_cluster().unwrap_err().to_string();
        assert!(
            e.contains("peer_tls_ca_file") && e.contains("corral cert"),
            "{e}"
        );
        config.peer_tls_dir = Some("certs".into());
        // Marked observer in servers (zoo.cfg style): an observer fed by the
        // voters listed there.
        config.servers[2].observer = true;
        assert!(config.is_observer() && config.check_cluster().is_ok());
        assert_eq!(
            config.upstream_list(),
            vec![
                (String::new(), "localhost:2888".to_string()),
                (String::new(), "localhost:2888".to_string())
            ]
        );
        config.servers[2].observer = false;
        config.peer_tick_ms = 0;
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("peer_tick_ms"));
    }
}
