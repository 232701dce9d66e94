//! Apache ZooKeeper `zoo.cfg` as a drop-in configuration.
//!
//! The file is Java properties (`key=value`, `#`/`!` comments, blank lines).
//! Keys with a corral equivalent map onto [`Config`]; every other key yields one
//! warning and is skipped, so a stock zoo.cfg (or a test harness's) loads.
//! Values are never echoed in warnings: ssl.* keys carry passwords.
//!
//! TLS: `secureClientPort` and the `ssl.*` client keys map onto the `tls_*` keys.
//! A store's kind comes from `ssl.keyStore.type` / `ssl.trustStore.type`, else
//! from the file name (`.pem`/`.crt`/`.key`, `.jks`, `.p12`/`.pfx`), else from the
//! file's first bytes. A PEM key store maps to `tls_cert_file` + `tls_key_file`, a
//! JKS one to `tls_keystore_file` + `tls_keystore_password`; a PEM trust store to
//! `tls_ca_file`, a JKS one to `tls_truststore_file` (+ `tls_truststore_password`).
//! PKCS#12 (and any other kind) gives a warning, and without a usable key store
//! `secureClientPort` is dropped with a warning rather than failing the load. As in
//! ZooKeeper, `ssl.clientAuth` defaults to `need`. A password that no JKS store
//! uses is ignored with a warning: PEM keys must be unencrypted.
//!
//! ZooKeeper semantics kept on purpose: the last duplicate wins, `-1` session
//! timeouts mean "tick-based default", `maxClientCnxns=0` is unlimited, an
//! absent `clientPortAddress` binds all interfaces, and a too small
//! `autopurge.snapRetainCount` or `snapCount` is raised with a warning.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use crate::de::port_from_i64;
use crate::load::{finish, zoo_cfg_layer, ENV_PREFIX};
use crate::validate::{FOUR_LETTER_WORDS, SNAP_COUNT_MIN, SNAP_RETAIN_COUNT_MIN};
use crate::{Config, ConfigError, ServerEntry};

/// A loaded zoo.cfg: the configuration plus what was ignored or adjusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooCfg {
    pub config: Config,
    /// One human-readable line per ignored key or adjusted value.
    pub warnings: Vec<String>,
}

/// TOML key -> zoo.cfg key, for docs and for naming both in validation errors.
pub const ZOO_CFG_KEYS: &[(&str, &str)] = &[
    ("server_id", "dataDir/myid"),
    ("client_addr", "clientPortAddress"),
    ("client_port", "clientPort"),
    ("data_dir", "dataDir"),
    ("data_log_dir", "dataLogDir"),
    ("tick_time_ms", "tickTime"),
    ("min_session_timeout_ms", "minSessionTimeout"),
    ("max_session_timeout_ms", "maxSessionTimeout"),
    ("max_client_cnxns", "maxClientCnxns"),
    ("max_frame_bytes", "jute.maxbuffer"),
    ("four_letter_words", "4lw.commands.whitelist"),
    ("ttl_nodes_enabled", "extendedTypesEnabled"),
    ("read_only_mode", "readonlymode.enabled"),
    ("reconfig_enabled", "reconfigEnabled"),
    (
        "container_check_interval_ms",
        "znode.container.checkIntervalMs",
    ),
    ("snap_count", "snapCount"),
    ("snap_retain_count", "autopurge.snapRetainCount"),
    ("purge_interval_hours", "autopurge.purgeInterval"),
    (
        "zk_super_digest",
        "DigestAuthenticationProvider.superDigest",
    ),
    ("servers", "server.N"),
    ("init_limit", "initLimit"),
    ("sync_limit", "syncLimit"),
    ("secure_client_port", "secureClientPort"),
    ("tls_cert_file", "ssl.keyStore.location"),
    ("tls_key_file", "ssl.keyStore.location"),
    ("tls_ca_file", "ssl.trustStore.location"),
    ("tls_keystore_file", "ssl.keyStore.location"),
    ("tls_keystore_password", "ssl.keyStore.password"),
    ("tls_truststore_file", "ssl.trustStore.location"),
    ("tls_truststore_password", "ssl.trustStore.password"),
    ("tls_client_auth", "ssl.clientAuth"),
];

/// Parses `path`, reads `dataDir/myid`, applies `CORRAL_*` variables, validates.
pub fn load_zoo_cfg(path: &Path) -> Result<ZooCfg, ConfigError> {
    load_zoo_cfg_with(path, &[])
}

/// As [`load_zoo_cfg`], with explicit `(key, value)` overrides (TOML key names) applied last.
pub fn load_zoo_cfg_with(path: &Path, overrides: &[(&str, &str)]) -> Result<ZooCfg, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut parsed = Parser::new(path).parse(&text)?;
    parsed.apply_myid()?;
    parsed.reconcile_own_server_line();
    let config = finish(zoo_cfg_layer(path, &parsed.config)?, overrides)
        .map_err(|e| name_zoo_key(e, path))?;
    Ok(ZooCfg {
        config,
        warnings: parsed.warnings,
    })
}

/// What the line-by-line pass produced, before myid and cross-line fixes.
struct Parsed {
    path: PathBuf,
    config: Config,
    warnings: Vec<String>,
    client_port_set: bool,
    client_addr_set: bool,
    /// `peerType=observer|participant` and its line.
    peer_observer: Option<(bool, usize)>,
    /// The TLS keys, resolved together once every line is read.
    ssl: SslKeys,
}

/// A zoo.cfg value and the line it came from.
type Sourced = Option<(String, usize)>;

/// `secureClientPort` and the `ssl.*` client keys, as read.
#[derive(Default)]
struct SslKeys {
    secure_client_port: Option<(u16, usize)>,
    key_store: Sourced,
    key_store_type: Sourced,
    key_store_password: Sourced,
    trust_store: Sourced,
    trust_store_type: Sourced,
    trust_store_password: Sourced,
    client_auth: Sourced,
}

/// The store formats the TLS listener reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    Pem,
    Jks,
}

/// What a store's first bytes say it is.
enum Sniffed {
    Kind(StoreKind),
    Pkcs12,
    Unknown,
    Unreadable,
}

/// Looks at the start of the file: JKS magic, PEM armour, or a DER SEQUENCE (PKCS#12).
fn sniff_store(path: &Path) -> Sniffed {
    use std::io::Read;
    let mut head = [0u8; 64];
    let n = match std::fs::File::open(path).and_then(|mut f| f.read(&mut head)) {
        Ok(n) => n,
        Err(_) => return Sniffed::Unreadable,
    };
    let head = &head[..n];
    if head.starts_with(&[0xFE, 0xED, 0xFE, 0xED]) {
        Sniffed::Kind(StoreKind::Jks)
    } else if String::from_utf8_lossy(head)
        .trim_start()
        .starts_with("-----BEGIN")
    {
        Sniffed::Kind(StoreKind::Pem)
    } else if head.first() == Some(&0x30) {
        Sniffed::Pkcs12
    } else {
        Sniffed::Unknown
    }
}

struct Parser {
    parsed: Parsed,
    /// Line each mapped key was last seen on, to report duplicates.
    seen: HashMap<String, usize>,
    data_dir_set: bool,
}

impl Parser {
    fn new(path: &Path) -> Parser {
        let config = Config {
            // ZooKeeper binds every interface when clientPortAddress is absent.
            client_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ..Config::default()
        };
        Parser {
            parsed: Parsed {
                path: path.to_path_buf(),
                config,
                warnings: Vec::new(),
                client_port_set: false,
                client_addr_set: false,
                peer_observer: None,
                ssl: SslKeys::default(),
            },
            seen: HashMap::new(),
            data_dir_set: false,
        }
    }

    fn parse(mut self, text: &str) -> Result<Parsed, ConfigError> {
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
                continue;
            }
            let Some((key, value)) = trimmed.split_once('=') else {
                return Err(self.error(
                    line,
                    trimmed,
                    "expected 'key=value' (no '=' on this line)",
                ));
            };
            self.apply(line, key.trim(), value.trim())?;
        }
        if !self.data_dir_set {
            return Err(ConfigError::Invalid {
                key: "dataDir".to_string(),
                problem: "is not set; ZooKeeper and corral both require it in zoo.cfg".to_string(),
                origin: Some(format!("zoo.cfg file {}", self.parsed.path.display())),
            });
        }
        self.resolve_ssl();
        Ok(self.parsed)
    }

    fn apply(&mut self, line: usize, key: &str, value: &str) -> Result<(), ConfigError> {
        // ZooKeeper turns unknown zoo.cfg keys into `zookeeper.`-prefixed system
        // properties, so both spellings of a system property name mean the same.
        let name = key.strip_prefix("zookeeper.").unwrap_or(key);
        if let Some(id) = name.strip_prefix("server.") {
            return self.apply_server(line, key, id, value);
        }
        if !self.apply_known(line, name, value)? {
            self.warn_ignored(line, key);
            return Ok(());
        }
        if let Some(previous) = self.seen.insert(name.to_string(), line) {
            self.warn(
                line,
                format!("key '{key}' was already set on line {previous}; the later value wins"),
            );
        }
        Ok(())
    }

    /// Applies a key with a corral equivalent; false when there is none.
    fn apply_known(&mut self, line: usize, name: &str, value: &str) -> Result<bool, ConfigError> {
        match name {
            "tickTime" => self.parsed.config.tick_time_ms = self.number(line, name, value)?,
            "dataDir" => {
                self.parsed.config.data_dir = self.path_value(line, name, value)?;
                self.data_dir_set = true;
            }
            "dataLogDir" => {
                self.parsed.config.data_log_dir = Some(self.path_value(line, name, value)?)
            }
            "clientPort" => {
                self.parsed.config.client_port = self.port(line, name, value)?;
                self.parsed.client_port_set = true;
            }
            "clientPortAddress" => {
                self.parsed.config.client_addr = self.ip(line, name, value)?;
                self.parsed.client_addr_set = true;
            }
            "maxClientCnxns" => {
                self.parsed.config.max_client_cnxns = self.number(line, name, value)?
            }
            "minSessionTimeout" => {
                self.parsed.config.min_session_timeout_ms = self.timeout(line, name, value)?
            }
            "maxSessionTimeout" => {
                self.parsed.config.max_session_timeout_ms = self.timeout(line, name, value)?
            }
            "autopurge.snapRetainCount" => self.apply_snap_retain_count(line, name, value)?,
            "autopurge.purgeInterval" => {
                self.parsed.config.purge_interval_hours = self.number(line, name, value)?
            }
            "4lw.commands.whitelist" => self.apply_four_letter_words(line, value),
            "snapCount" => self.apply_snap_count(line, name, value)?,
            "jute.maxbuffer" => {
                self.parsed.config.max_frame_bytes = self.java_int(line, name, value)?
            }
            "extendedTypesEnabled" => {
                self.parsed.config.ttl_nodes_enabled = self.boolean(line, name, value)?
            }
            "readonlymode.enabled" => {
                self.parsed.config.read_only_mode = self.boolean(line, name, value)?
            }
            "reconfigEnabled" => {
                self.parsed.config.reconfig_enabled = self.boolean(line, name, value)?
            }
            "znode.container.checkIntervalMs" => {
                self.parsed.config.container_check_interval_ms = self.number(line, name, value)?
            }
            "DigestAuthenticationProvider.superDigest" => {
                self.parsed.config.zk_super_digest = Some(value.to_string())
            }
            "initLimit" => self.parsed.config.init_limit = self.number(line, name, value)?,
            "syncLimit" => self.parsed.config.sync_limit = self.number(line, name, value)?,
            "peerType" => self.parsed.peer_observer = Some((self.role(line, name, value)?, line)),
            "secureClientPort" => {
                self.parsed.ssl.secure_client_port = Some((self.port(line, name, value)?, line))
            }
            "ssl.clientAuth" => {
                let mode = value.to_ascii_lowercase();
                if !crate::TLS_CLIENT_AUTH_MODES.contains(&mode.as_str()) {
                    return Err(self.error(
                        line,
                        name,
                        format!("'{value}' is not none, want or need"),
                    ));
                }
                self.parsed.ssl.client_auth = Some((mode, line));
            }
            _ => return self.apply_ssl_store_key(line, name, value),
        }
        Ok(true)
    }

    /// The `ssl.keyStore.*` / `ssl.trustStore.*` keys; false for any other key.
    fn apply_ssl_store_key(
        &mut self,
        line: usize,
        name: &str,
        value: &str,
    ) -> Result<bool, ConfigError> {
        let ssl = &mut self.parsed.ssl;
        let slot = match name {
            "ssl.keyStore.location" => &mut ssl.key_store,
            "ssl.keyStore.type" => &mut ssl.key_store_type,
            "ssl.keyStore.password" => &mut ssl.key_store_password,
            "ssl.trustStore.location" => &mut ssl.trust_store,
            "ssl.trustStore.type" => &mut ssl.trust_store_type,
            "ssl.trustStore.password" => &mut ssl.trust_store_password,
            _ => return Ok(false),
        };
        *slot = Some((value.to_string(), line));
        Ok(true)
    }

    /// Maps the TLS keys once all lines are known (types may follow locations).
    fn resolve_ssl(&mut self) {
        let ssl = std::mem::take(&mut self.parsed.ssl);
        let mut key_store = self.store("ssl.keyStore", &ssl.key_store, &ssl.key_store_type);
        let trust_store = self.store("ssl.trustStore", &ssl.trust_store, &ssl.trust_store_type);
        // A JKS key store cannot be opened without its password (it decrypts the key).
        if let (Some((_, StoreKind::Jks)), None, Some((_, line))) =
            (&key_store, &ssl.key_store_password, &ssl.key_store)
        {
            self.warn(
                *line,
                "ssl.keyStore.location is a JKS key store but ssl.keyStore.password is not \
                 set; it is needed to decrypt the key; ignored"
                    .to_string(),
            );
            key_store = None;
        }
        self.warn_unused_password("ssl.keyStore", &ssl.key_store_password, &key_store);
        self.warn_unused_password("ssl.trustStore", &ssl.trust_store_password, &trust_store);
        let Some((port, port_line)) = ssl.secure_client_port else {
            if let (Some(_), Some((_, line))) = (&key_store, &ssl.key_store) {
                self.warn(
                    *line,
                    "ssl.keyStore.location is set but secureClientPort is not; no TLS listener"
                        .to_string(),
                );
            }
            return;
        };
        let Some((key_path, key_kind)) = key_store else {
            self.warn(
                port_line,
                "secureClientPort: no usable PEM or JKS ssl.keyStore.location, so the TLS \
                 listener is not started"
                    .to_string(),
            );
            return;
        };
        let client_auth = match ssl.client_auth {
            Some((mode, _)) => mode,
            // ZooKeeper's default is need, checked against the JVM's trust store;
            // corral has no default trust store, so without one it cannot ask.
            None if trust_store.is_some() => "need".to_string(),
            None => {
                self.warn(
                    port_line,
                    "ssl.trustStore.location is not set: ZooKeeper would require client \
                     certificates (checked against the JVM trust store); corral does not ask \
                     for them"
                        .to_string(),
                );
                "none".to_string()
            }
        };
        let password = |p: Sourced| p.map(|(value, _)| value);
        let config = &mut self.parsed.config;
        config.secure_client_port = Some(port);
        match key_kind {
            StoreKind::Pem => {
                config.tls_cert_file = Some(key_path.clone());
                config.tls_key_file = Some(key_path);
            }
            StoreKind::Jks => {
                config.tls_keystore_file = Some(key_path);
                config.tls_keystore_password = password(ssl.key_store_password);
            }
        }
        match trust_store {
            Some((path, StoreKind::Pem)) => config.tls_ca_file = Some(path),
            Some((path, StoreKind::Jks)) => {
                config.tls_truststore_file = Some(path);
                config.tls_truststore_password = password(ssl.trust_store_password);
            }
            None => {}
        }
        config.tls_client_auth = Some(client_auth);
    }

    /// A store password is only read for a JKS store; otherwise say it is ignored.
    fn warn_unused_password(
        &mut self,
        prefix: &str,
        password: &Sourced,
        store: &Option<(PathBuf, StoreKind)>,
    ) {
        let Some((_, line)) = password else {
            return;
        };
        if !matches!(store, Some((_, StoreKind::Jks))) {
            self.warn(
                *line,
                format!(
                    "{prefix}.password is only used with a JKS {prefix}.location (PEM keys \
                     must be unencrypted); ignored"
                ),
            );
        }
    }

    /// The path and kind of a PEM or JKS store, or None (with a warning when the
    /// store is of another kind). The kind comes from `{prefix}.type`, else the
    /// file name (as ZooKeeper infers it), else the file's first bytes.
    fn store(
        &mut self,
        prefix: &str,
        location: &Sourced,
        kind: &Sourced,
    ) -> Option<(PathBuf, StoreKind)> {
        let (path, line) = location.as_ref()?;
        let path = PathBuf::from(path);
        let found = match kind {
            Some((kind, _)) if kind.eq_ignore_ascii_case("pem") => Some(StoreKind::Pem),
            Some((kind, _)) if kind.eq_ignore_ascii_case("jks") => Some(StoreKind::Jks),
            Some(_) => None,
            None => {
                let lower = path.to_string_lossy().to_ascii_lowercase();
                if [".pem", ".crt", ".key"].iter().any(|e| lower.ends_with(e)) {
                    Some(StoreKind::Pem)
                } else if lower.ends_with(".jks") {
                    Some(StoreKind::Jks)
                } else if lower.ends_with(".p12") || lower.ends_with(".pfx") {
                    None
                } else {
                    match sniff_store(&path) {
                        Sniffed::Kind(k) => Some(k),
                        Sniffed::Pkcs12 | Sniffed::Unknown => None,
                        Sniffed::Unreadable => {
                            self.warn(
                                *line,
                                format!(
                                    "{prefix}.location: the store type cannot be told from the \
                                     file name and the file cannot be read; set {prefix}.type \
                                     to PEM or JKS; ignored"
                                ),
                            );
                            return None;
                        }
                    }
                }
            }
        };
        match found {
            Some(k) => Some((path, k)),
            None => {
                self.warn(
                    *line,
                    format!(
                        "{prefix}.location: only PEM and JKS stores are supported (not PKCS#12); \
                         convert it (keytool -importkeystore -deststoretype JKS) and set \
                         {prefix}.type; ignored"
                    ),
                );
                None
            }
        }
    }

    fn apply_server(
        &mut self,
        line: usize,
        key: &str,
        id: &str,
        value: &str,
    ) -> Result<(), ConfigError> {
        let id: u64 = id.parse().map_err(|_| {
            self.error(
                line,
                key,
                "the part after 'server.' must be a server id number",
            )
        })?;
        let entry =
            parse_server_line(id, value).map_err(|problem| self.error(line, key, problem))?;
        let servers = &mut self.parsed.config.servers;
        // Java properties: a repeated key replaces the earlier value.
        match servers.iter_mut().find(|s| s.id == id) {
            Some(existing) => *existing = entry,
            None => servers.push(entry),
        }
        Ok(())
    }

    fn apply_snap_retain_count(
        &mut self,
        line: usize,
        name: &str,
        value: &str,
    ) -> Result<(), ConfigError> {
        let count: u32 = self.number(line, name, value)?;
        if count < SNAP_RETAIN_COUNT_MIN {
            self.warn(
                line,
                format!("{name}={count} is below {SNAP_RETAIN_COUNT_MIN}; using {SNAP_RETAIN_COUNT_MIN}, as ZooKeeper does"),
            );
        }
        self.parsed.config.snap_retain_count = count.max(SNAP_RETAIN_COUNT_MIN);
        Ok(())
    }

    fn apply_snap_count(
        &mut self,
        line: usize,
        name: &str,
        value: &str,
    ) -> Result<(), ConfigError> {
        let count: u64 = self.number(line, name, value)?;
        if count < SNAP_COUNT_MIN {
            self.warn(
                line,
                format!("{name}={count} is below {SNAP_COUNT_MIN}; using {SNAP_COUNT_MIN}, as ZooKeeper does"),
            );
        }
        self.parsed.config.snap_count = count.max(SNAP_COUNT_MIN);
        Ok(())
    }

    fn apply_four_letter_words(&mut self, line: usize, value: &str) {
        let mut words = Vec::new();
        for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word == "*" || FOUR_LETTER_WORDS.contains(&word) {
                words.push(word.to_string());
            } else {
                // ZooKeeper also drops words it does not know from the whitelist.
                self.warn(
                    line,
                    format!(
                        "4lw.commands.whitelist: '{word}' is not implemented by corral; ignored"
                    ),
                );
            }
        }
        self.parsed.config.four_letter_words = words;
    }

    fn number<T: TryFrom<i64>>(
        &self,
        line: usize,
        key: &str,
        value: &str,
    ) -> Result<T, ConfigError> {
        let wide: i64 = value
            .parse()
            .map_err(|_| self.error(line, key, format!("'{value}' is not a whole number")))?;
        T::try_from(wide).map_err(|_| self.error(line, key, format!("{wide} is out of range")))
    }

    /// Java's `Integer.decode`, which ZooKeeper uses for `jute.maxbuffer`: decimal or 0x hex.
    fn java_int(&self, line: usize, key: &str, value: &str) -> Result<usize, ConfigError> {
        let hex = value
            .strip_prefix("0x")
            .or_else(|| value.strip_prefix("0X"));
        let parsed = match hex {
            Some(digits) => usize::from_str_radix(digits, 16),
            None => value.parse(),
        };
        parsed.map_err(|_| {
            self.error(
                line,
                key,
                format!("'{value}' is not a number (decimal or 0x hex)"),
            )
        })
    }

    fn port(&self, line: usize, key: &str, value: &str) -> Result<u16, ConfigError> {
        let wide: i64 = self.number(line, key, value)?;
        port_from_i64(wide).map_err(|problem| self.error(line, key, problem))
    }

    /// `-1` (or any negative) means "use the tick-based default", as in ZooKeeper.
    fn timeout(&self, line: usize, key: &str, value: &str) -> Result<Option<u32>, ConfigError> {
        let wide: i64 = self.number(line, key, value)?;
        if wide < 0 {
            return Ok(None);
        }
        u32::try_from(wide)
            .map(Some)
            .map_err(|_| self.error(line, key, format!("{wide} ms is out of range")))
    }

    fn ip(&self, line: usize, key: &str, value: &str) -> Result<IpAddr, ConfigError> {
        if value.eq_ignore_ascii_case("localhost") {
            return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        value.trim_matches(['[', ']']).parse().map_err(|_| {
            self.error(
                line,
                key,
                format!("'{value}' is not an IP address (host names are not resolved)"),
            )
        })
    }

    fn boolean(&self, line: usize, key: &str, value: &str) -> Result<bool, ConfigError> {
        match value.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(self.error(line, key, format!("'{value}' is not true or false"))),
        }
    }

    fn path_value(&self, line: usize, key: &str, value: &str) -> Result<PathBuf, ConfigError> {
        if value.is_empty() {
            return Err(self.error(line, key, "must name a directory"));
        }
        Ok(PathBuf::from(value))
    }

    /// `peerType`: true for observer.
    fn role(&self, line: usize, key: &str, value: &str) -> Result<bool, ConfigError> {
        match value {
            "observer" => Ok(true),
            "participant" => Ok(false),
            _ => Err(self.error(
                line,
                key,
                format!("'{value}' is not 'participant' or 'observer'"),
            )),
        }
    }

    fn warn_ignored(&mut self, line: usize, key: &str) {
        // One warning per key, however often it repeats.
        if self.seen.insert(format!("ignored:{key}"), line).is_none() {
            self.warn(
                line,
                format!("key '{key}' has no corral equivalent; ignored"),
            );
        }
    }

    fn warn(&mut self, line: usize, message: String) {
        let path = self.parsed.path.display();
        self.parsed
            .warnings
            .push(format!("{path}:{line}: {message}"));
    }

    fn error(&self, line: usize, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::ZooCfg {
            path: self.parsed.path.clone(),
            line,
            key: key.to_string(),
            problem: problem.into(),
        }
    }
}

impl Parsed {
    /// ZooKeeper reads this node's id from `dataDir/myid`.
    fn apply_myid(&mut self) -> Result<(), ConfigError> {
        let myid_path = self.config.data_dir.join("myid");
        let text = match std::fs::read_to_string(&myid_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.warn_missing_myid(&myid_path);
                return Ok(());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: myid_path,
                    source,
                })
            }
        };
        self.config.server_id = text.trim().parse().map_err(|_| ConfigError::Invalid {
            key: "server_id".to_string(),
            problem: format!("'{}' is not a server id number", text.trim()),
            origin: Some(format!("myid file {}", myid_path.display())),
        })?;
        Ok(())
    }

    fn warn_missing_myid(&mut self, myid_path: &Path) {
        if !self.config.servers.is_empty() {
            self.warnings.push(format!(
                "{}: no such file; server_id stays {} unless {ENV_PREFIX}SERVER_ID is set",
                myid_path.display(),
                self.config.server_id
            ));
        }
    }

    /// Fixes that need both myid and the server.N lines.
    fn reconcile_own_server_line(&mut self) {
        let Some(own) = self.config.own_server().cloned() else {
            return;
        };
        if let Some((observer, line)) = self.peer_observer {
            if observer != own.observer {
                // ZooKeeper logs the same mismatch and trusts the server list.
                self.warnings.push(format!(
                    "{}:{line}: peerType disagrees with server.{}; the server.{} line wins",
                    self.path.display(),
                    own.id,
                    own.id
                ));
            }
        }
        if !self.client_port_set {
            self.take_client_from_server_line(&own);
        }
    }

    /// ZooKeeper 3.5+ lets `server.N=...;[host:]port` stand in for clientPort.
    fn take_client_from_server_line(&mut self, own: &ServerEntry) {
        let Some((host, port)) = own.client.as_deref().and_then(|c| c.rsplit_once(':')) else {
            return;
        };
        let (Ok(port), Ok(ip)) = (port.parse::<u16>(), host.trim_matches(['[', ']']).parse())
        else {
            return;
        };
        self.config.client_port = port;
        if !self.client_addr_set {
            self.config.client_addr = ip;
        }
    }
}

/// Parses `host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]`.
pub(crate) fn parse_server_line(id: u64, value: &str) -> Result<ServerEntry, String> {
    if value.contains('|') {
        return Err("multiple addresses ('|') per server are not supported".to_string());
    }
    let (peer, client) = match value.split_once(';') {
        Some((peer, client)) => (peer.trim(), Some(parse_client(client.trim())?)),
        None => (value.trim(), None),
    };
    let (host, rest) = split_host(peer)?;
    let parts: Vec<&str> = rest.split(':').map(str::trim).collect();
    let (quorum, election, role) = match parts.as_slice() {
        [q, e] => (*q, *e, None),
        [q, e, r] => (*q, *e, Some(*r)),
        _ => {
            return Err(format!(
                "expected host:quorumPort:electionPort[:participant|:observer], got '{value}'"
            ))
        }
    };
    let observer = match role {
        None | Some("participant") => false,
        Some("observer") => true,
        Some(other) => return Err(format!("role '{other}' is not 'participant' or 'observer'")),
    };
    Ok(ServerEntry {
        id,
        host,
        quorum_port: server_port("quorum port", quorum)?,
        election_port: server_port("election port", election)?,
        observer,
        client,
    })
}

/// Splits the host (bracketed for IPv6) from the `:port:port[:role]` rest.
fn split_host(peer: &str) -> Result<(String, &str), String> {
    let (host, rest) = match peer.strip_prefix('[') {
        Some(v6) => v6
            .split_once("]:")
            .ok_or_else(|| format!("'{peer}': unterminated [IPv6] host"))?,
        None => peer
            .split_once(':')
            .ok_or_else(|| format!("'{peer}': expected host:quorumPort:electionPort"))?,
    };
    if host.is_empty() {
        return Err("host must not be empty".to_string());
    }
    Ok((host.to_string(), rest))
}

fn server_port(what: &str, text: &str) -> Result<u16, String> {
    let wide: i64 = text
        .parse()
        .map_err(|_| format!("{what} '{text}' is not a number"))?;
    port_from_i64(wide).map_err(|p| format!("{what}: {p}"))
}

/// `[clientHost:]clientPort`, normalized to `host:port` (0.0.0.0 when no host, as ZooKeeper).
fn parse_client(client: &str) -> Result<String, String> {
    let (host, port) = match client.rsplit_once(':') {
        Some((host, port)) => (host, port),
        None => ("0.0.0.0", client),
    };
    let port = server_port("client port", port)?;
    Ok(format!("{host}:{port}"))
}

/// Adds the zoo.cfg spelling of a key to a validation error.
fn name_zoo_key(error: ConfigError, path: &Path) -> ConfigError {
    match error {
        ConfigError::Invalid {
            key,
            problem,
            origin: None,
        } => {
            let zoo = ZOO_CFG_KEYS.iter().find(|(toml, _)| *toml == key);
            let origin = zoo.map(|(_, zoo)| {
                format!(
                    "zoo.cfg '{zoo}' in {}, or {ENV_PREFIX}{}",
                    path.display(),
                    key.to_ascii_uppercase()
                )
            });
            ConfigError::Invalid {
                key,
                problem,
                origin,
            }
        }
        other => other,
    }
}
