//! The typed `Config` and its defaults.
//!
//! Every field has a default, so an empty TOML file (or none at all) is a
//! valid standalone configuration. Field names are the TOML keys and, upper
//! cased behind `CORRAL_`, the environment variable names.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::de;
use crate::tenancy::TenantEntry;

/// Everything a corral node reads at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's id in `servers`; zoo.cfg takes it from `dataDir/myid`.
    pub server_id: u64,
    /// Address the client listener binds.
    pub client_addr: IpAddr,
    /// Port the client listener binds (1-65535).
    #[serde(deserialize_with = "de::port")]
    pub client_port: u16,
    /// Snapshots and, unless `data_log_dir` is set, the txn log.
    pub data_dir: PathBuf,
    /// Txn log directory; `None` means `data_dir`.
    pub data_log_dir: Option<PathBuf>,
    /// The basic time unit: session expiry buckets, election and sync limits.
    pub tick_time_ms: u32,
    /// Smallest session timeout granted; `None` means 2 ticks.
    pub min_session_timeout_ms: Option<u32>,
    /// Largest session timeout granted; `None` means 20 ticks.
    pub max_session_timeout_ms: Option<u32>,
    /// Concurrent connections allowed from one client IP; 0 means unlimited.
    pub max_client_cnxns: u32,
    /// Largest request or response frame (ZooKeeper's `jute.maxbuffer`).
    pub max_frame_bytes: usize,
    /// Four-letter words the server answers; `"*"` enables all of them.
    #[serde(deserialize_with = "de::comma_list")]
    pub four_letter_words: Vec<String>,
    /// Allows TTL and container create modes (ZooKeeper's `extendedTypesEnabled`).
    pub ttl_nodes_enabled: bool,
    /// How often empty containers and expired TTL nodes are looked for.
    pub container_check_interval_ms: u64,
    /// Txns logged between snapshots.
    pub snap_count: u64,
    /// Snapshots (and the logs they need) kept by a purge; at least 3.
    pub snap_retain_count: u32,
    /// Hours between purges; 0 purges only right after each new snapshot.
    pub purge_interval_hours: u32,
    /// Super users as `name:$argon2id$...` PHC hashes. Plaintext is refused.
    #[serde(deserialize_with = "de::space_list")]
    pub super_digests: Vec<String>,
    /// ZooKeeper-style `name:base64(sha1(name:password))` super digest.
    /// Weaker than `super_digests` (unsalted SHA-1); kept for drop-in compatibility.
    pub zk_super_digest: Option<String>,
    /// Most txns covered by one fsync (group commit).
    pub max_batch: usize,
    /// Requests a session may have in flight before the server stops reading it.
    pub max_outstanding_per_session: usize,
    /// Admin HTTP endpoint (`/metrics`, `/commands/<name>`); `None` disables it.
    pub admin_addr: Option<SocketAddr>,
    /// The voting core and observers (zoo.cfg `server.N`); empty means standalone.
    pub servers: Vec<ServerEntry>,
    /// Ticks a follower may take to connect and sync to the leader (zoo.cfg `initLimit`).
    pub init_limit: u32,
    /// Ticks a follower may lag the leader before it is dropped (zoo.cfg `syncLimit`).
    pub sync_limit: u32,
    /// One of trace, debug, info, warn, error.
    pub log_level: String,
    /// Port of the TLS client listener (on `client_addr`); `None` means no TLS listener.
    #[serde(deserialize_with = "de::opt_port")]
    pub secure_client_port: Option<u16>,
    /// PEM certificate chain of the TLS listener, leaf first (may also hold the key).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the TLS listener, unencrypted (PKCS#8, PKCS#1 or SEC1).
    pub tls_key_file: Option<PathBuf>,
    /// PEM bundle of the CAs whose client certificates are accepted.
    pub tls_ca_file: Option<PathBuf>,
    /// Java KeyStore (JKS) holding the TLS listener's private key and chain;
    /// instead of `tls_cert_file` and `tls_key_file`.
    pub tls_keystore_file: Option<PathBuf>,
    /// Password of `tls_keystore_file`; it also decrypts the key (as in ZooKeeper).
    pub tls_keystore_password: Option<String>,
    /// JKS trust store whose trusted certificate entries are the client CAs;
    /// instead of `tls_ca_file`.
    pub tls_truststore_file: Option<PathBuf>,
    /// Password of `tls_truststore_file`; without one its integrity is not checked.
    pub tls_truststore_password: Option<String>,
    /// `none`, `want` or `need`; `None` means `want` with a `tls_ca_file`, else `none`.
    pub tls_client_auth: Option<String>,
    /// How often the TLS files are checked for changes; 0 reloads only on SIGHUP.
    pub tls_reload_interval_ms: u64,
    /// Txn log engine: "file" (segmented files, the default) or "sled".
    pub txn_log_engine: String,
    /// Directory made by `corral cert`: `ca.pem`, `server-<id>.pem`,
    /// `server-<id>.key`. Used for the peer (QUIC) TLS files not set below.
    pub peer_tls_dir: Option<PathBuf>,
    /// PEM bundle of the cluster CA that signs every server's certificate.
    pub peer_tls_ca_file: Option<PathBuf>,
    /// PEM certificate chain of this server (leaf first); it must name
    /// `corral://server/<server_id>` as a URI SAN.
    pub peer_tls_cert_file: Option<PathBuf>,
    /// PEM private key of this server's peer certificate.
    pub peer_tls_key_file: Option<PathBuf>,
    /// The voting core's tick: leader pings and election re-sends.
    pub peer_tick_ms: u64,
    /// Peer ticks of silence after which a leader drops a follower and a
    /// follower gives up on its leader (the failover detection time).
    pub peer_sync_limit_ticks: u32,
    /// Peer ticks a new leader may spend in discovery and sync (SNAP
    /// transfers of large trees need this to be generous).
    pub peer_init_limit_ticks: u32,
    /// ZooKeeper's `readonlymode.enabled`: while a voter has no quorum, clients
    /// that ask for read-only mode may connect and read (writes fail with
    /// NOTREADONLY).
    pub read_only_mode: bool,
    /// ZooKeeper's `reconfigEnabled`: super users may change the ensemble's
    /// membership with `reconfig` (off by default, as in ZooKeeper).
    pub reconfig_enabled: bool,
    /// `voter` (default) or `observer`. A node whose own `servers` entry is
    /// marked observer (zoo.cfg `:observer` / `peerType=observer`) is one too.
    pub role: String,
    /// An observer's region label; it prefers upstreams of the same region.
    pub region: String,
    /// An observer's upstreams, each `host:port` or `region=host:port`: a
    /// voter's peer (quorum) port, or another observer's `feed_addr`. Empty:
    /// every voter in `servers`.
    pub upstreams: Vec<String>,
    /// Where an observer accepts observers below it (`host:port`, UDP);
    /// `None`: it relays to no one.
    pub feed_addr: Option<String>,
    /// Tenants written into the registry at start when it lacks them
    /// (`[[tenants]]` tables; see `docs/configuration.md`).
    pub tenants: Vec<TenantEntry>,
    /// What happens to a session no identity binds to a tenant: `open` (it
    /// sees the whole tree), `refuse`, or `default` (it joins `tenant_default`).
    pub tenant_unbound: String,
    /// The tenant unbound sessions join when `tenant_unbound = "default"`.
    pub tenant_default: Option<String>,
    /// Directory of the audit log; `None` writes no audit log.
    pub audit_log_dir: Option<PathBuf>,
    /// `json_lines` (default) or `key_value` (ZooKeeper's audit format).
    pub audit_format: String,
    /// Size at which an audit file is rotated.
    pub audit_max_file_bytes: u64,
    /// Rotated audit files kept per log.
    pub audit_keep_files: u32,
    /// Also write one audit file per tenant.
    pub audit_per_tenant: bool,
    /// Audit records buffered before the writer; beyond it they are counted as dropped.
    pub audit_queue_len: usize,
}

/// One `server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    pub id: u64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    /// Non-voting observer rather than a participant.
    #[serde(default)]
    pub observer: bool,
    /// Client listener as `host:port`, when the line names one.
    #[serde(default)]
    pub client: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server_id: 1,
            client_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            client_port: 2181,
            data_dir: PathBuf::from("./corral-data"),
            data_log_dir: None,
            tick_time_ms: 2000,
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
            max_client_cnxns: 60,
            max_frame_bytes: 1024 * 1024,
            // ZooKeeper 3.5+ answers only srvr unless told otherwise.
            four_letter_words: ["ruok", "srvr", "mntr", "envi", "isro"]
                .map(String::from)
                .to_vec(),
            ttl_nodes_enabled: true,
            container_check_interval_ms: 60_000,
            snap_count: 100_000,
            snap_retain_count: 3,
            purge_interval_hours: 0,
            super_digests: Vec::new(),
            zk_super_digest: None,
            max_batch: 1000,
            max_outstanding_per_session: 1000,
            admin_addr: None,
            servers: Vec::new(),
            init_limit: 10,
            sync_limit: 5,
            log_level: "info".to_string(),
            secure_client_port: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_file: None,
            tls_keystore_file: None,
            tls_keystore_password: None,
            tls_truststore_file: None,
            tls_truststore_password: None,
            tls_client_auth: None,
            tls_reload_interval_ms: 5000,
            txn_log_engine: "file".to_string(),
            peer_tls_dir: None,
            peer_tls_ca_file: None,
            peer_tls_cert_file: None,
            peer_tls_key_file: None,
            peer_tick_ms: 100,
            peer_sync_limit_ticks: 5,
            peer_init_limit_ticks: 100,
            read_only_mode: false,
            reconfig_enabled: false,
            role: "voter".to_string(),
            region: String::new(),
            upstreams: Vec::new(),
            feed_addr: None,
            tenants: Vec::new(),
            tenant_unbound: "open".to_string(),
            tenant_default: None,
            audit_log_dir: None,
            audit_format: "json_lines".to_string(),
            audit_max_file_bytes: 100 * 1024 * 1024,
            audit_keep_files: 10,
            audit_per_tenant: false,
            audit_queue_len: 65536,
        }
    }
}

impl Config {
    /// The smallest session timeout granted, with the 2-tick default resolved.
    pub fn min_session_timeout(&self) -> u32 {
        self.min_session_timeout_ms
            .unwrap_or_else(|| self.tick_time_ms.saturating_mul(2))
    }

    /// The largest session timeout granted, with the 20-tick default resolved.
    pub fn max_session_timeout(&self) -> u32 {
        self.max_session_timeout_ms
            .unwrap_or_else(|| self.tick_time_ms.saturating_mul(20))
    }

    /// Where the txn log lives.
    pub fn log_dir(&self) -> PathBuf {
        self.data_log_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.clone())
    }

    /// True when `four_letter_words` enables `word`.
    pub fn four_letter_word_enabled(&self, word: &str) -> bool {
        self.four_letter_words.iter().any(|w| w == "*" || w == word)
    }

    /// `tls_client_auth` with its default resolved: `want` when a CA bundle or
    /// trust store is configured (clients may present a certificate), `none` otherwise.
    pub fn tls_client_auth(&self) -> String {
        match &self.tls_client_auth {
            Some(mode) => mode.to_ascii_lowercase(),
            None if self.tls_ca_file.is_some() || self.tls_truststore_file.is_some() => {
                "want".to_string()
            }
            None => "none".to_string(),
        }
    }

    /// Whether this node is part of an ensemble (more than one server
    /// listed, or an observer).
    pub fn is_cluster(&self) -> bool {
        self.servers.len() > 1 || self.is_observer()
    }

    /// Whether this node runs as an observer: `role = "observer"`, or its own
    /// `servers` entry is marked observer.
    pub fn is_observer(&self) -> bool {
        self.role == "observer" || self.own_server().is_some_and(|s| s.observer)
    }

    /// An observer's upstreams as (region, `host:port`), in configured order:
    /// `upstreams`, or else every voter in `servers` (its peer port, no
    /// region).
    pub fn upstream_list(&self) -> Vec<(String, String)> {
        if self.upstreams.is_empty() {
            return self
                .servers
                .iter()
                .filter(|s| !s.observer && s.id != self.server_id)
                .map(|s| (String::new(), host_port(&s.host, s.quorum_port)))
                .collect();
        }
        self.upstreams
            .iter()
            .map(|u| match u.split_once('=') {
                Some((region, addr)) => (region.trim().to_string(), addr.trim().to_string()),
                None => (String::new(), u.trim().to_string()),
            })
            .collect()
    }

    /// The peer TLS files (CA, certificate, key), each from its own key or
    /// else from `peer_tls_dir`; `None` for a file neither names.
    pub fn peer_tls_files(&self) -> [Option<PathBuf>; 3] {
        let dir = |name: String| self.peer_tls_dir.as_ref().map(|d| d.join(name));
        [
            self.peer_tls_ca_file
                .clone()
                .or_else(|| dir("ca.pem".into())),
            self.peer_tls_cert_file
                .clone()
                .or_else(|| dir(format!("server-{}.pem", self.server_id))),
            self.peer_tls_key_file
                .clone()
                .or_else(|| dir(format!("server-{}.key", self.server_id))),
        ]
    }

    /// This node's own `servers` entry, if it runs in a cluster.
    pub fn own_server(&self) -> Option<&ServerEntry> {
        self.servers.iter().find(|s| s.id == self.server_id)
    }
}

/// Every top-level key, in declaration order. Environment variables are
/// matched against this list, so an unrelated `CORRAL_*` variable (one a test
/// harness or the `corral` binary uses for itself) is never mistaken for config.
pub const KEYS: &[&str] = &[
    "server_id",
    "client_addr",
    "client_port",
    "data_dir",
    "data_log_dir",
    "tick_time_ms",
    "min_session_timeout_ms",
    "max_session_timeout_ms",
    "max_client_cnxns",
    "max_frame_bytes",
    "four_letter_words",
    "ttl_nodes_enabled",
    "container_check_interval_ms",
    "snap_count",
    "snap_retain_count",
    "purge_interval_hours",
    "super_digests",
    "zk_super_digest",
    "max_batch",
    "max_outstanding_per_session",
    "admin_addr",
    "servers",
    "init_limit",
    "sync_limit",
    "log_level",
    "secure_client_port",
    "tls_cert_file",
    "tls_key_file",
    "tls_ca_file",
    "tls_keystore_file",
    "tls_keystore_password",
    "tls_truststore_file",
    "tls_truststore_password",
    "tls_client_auth",
    "tls_reload_interval_ms",
    "txn_log_engine",
    "peer_tls_dir",
    "peer_tls_ca_file",
    "peer_tls_cert_file",
    "peer_tls_key_file",
    "peer_tick_ms",
    "peer_sync_limit_ticks",
    "peer_init_limit_ticks",
    "read_only_mode",
    "reconfig_enabled",
    "role",
    "region",
    "upstreams",
    "feed_addr",
    "tenants",
    "tenant_unbound",
    "tenant_default",
    "audit_log_dir",
    "audit_format",
    "audit_max_file_bytes",
    "audit_keep_files",
    "audit_per_tenant",
    "audit_queue_len",
];

/// `host:port`, bracketing an IPv6 literal.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_timeouts_default_to_tick_multiples() {
        // Goal: unset timeouts resolve to 2 and 20 ticks, as in ZooKeeper.
        let config = Config {
            tick_time_ms: 1000,
            ..Config::default()
        };
        assert_eq!(config.min_session_timeout(), 2000);
        assert_eq!(config.max_session_timeout(), 20_000);
    }

    #[test]
    fn log_dir_falls_back_to_data_dir() {
        // Goal: the txn log sits in data_dir unless data_log_dir is set.
        let mut config = Config::default();
        assert_eq!(config.log_dir(), PathBuf::from("./corral-data"));
        config.data_log_dir = Some(PathBuf::from("/fast/log"));
        assert_eq!(config.log_dir(), PathBuf::from("/fast/log"));
    }

    #[test]
    fn keys_list_matches_the_struct() {
        // Goal: KEYS (used to pick environment variables) names every field.
        let value = figment::value::Value::serialize(Config::default());
        let dict = value.ok().and_then(|v| v.into_dict()).unwrap_or_default();
        let mut fields: Vec<&str> = dict.keys().map(String::as_str).collect();
        let mut keys = KEYS.to_vec();
        fields.sort_unstable();
        keys.sort_unstable();
        // Option fields that are None serialize too, so the sets must be equal.
        assert_eq!(fields, keys);
    }
}
