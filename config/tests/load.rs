//! `load` / `load_with`: defaults, TOML file, `CORRAL_*` environment, overrides.
//!
//! Every test runs inside `figment::Jail`, which serializes tests that touch
//! the environment and gives each a scratch working directory.

// figment::Jail fixes the closure's error type to figment's (large) Error.
#![allow(clippy::result_large_err)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use corral_config::{load, load_with, Config, ConfigError, ServerEntry};
use figment::Jail;

const ARGON2: &str = "admin:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

/// Turns our error into the Jail's so `?` works inside a jail.
fn jailed<T>(result: Result<T, ConfigError>) -> figment::Result<T> {
    result.map_err(|e| figment::Error::from(e.to_string()))
}

fn expect_err(result: Result<Config, ConfigError>) -> ConfigError {
    match result {
        Ok(config) => panic!("expected an error, loaded {config:?}"),
        Err(e) => e,
    }
}

#[test]
fn defaults_with_no_file() {
    // Goal: with no file and no environment the built-in defaults come back, valid.
    Jail::expect_with(|_| {
        let config = jailed(load(None))?;
        assert_eq!(config, Config::default());
        assert_eq!(config.client_addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(config.client_port, 2181);
        assert_eq!(config.data_dir, PathBuf::from("./corral-data"));
        assert_eq!(
            config.four_letter_words,
            vec!["ruok", "srvr", "mntr", "envi", "isro"]
        );
        assert_eq!(config.max_frame_bytes, 1_048_576);
        assert_eq!(
            (config.min_session_timeout(), config.max_session_timeout()),
            (4000, 40_000)
        );
        assert!(config.servers.is_empty());
        Ok(())
    });
}

#[test]
fn toml_file_overrides_defaults() {
    // Goal: every kind of TOML value (scalars, options, lists, tables) lands in Config.
    Jail::expect_with(|jail| {
        jail.create_file(
            "corral.toml",
            &format!(
                r#"
                server_id = 2
                client_addr = "0.0.0.0"
                client_port = 2281
                data_dir = "/var/lib/corral"
                data_log_dir = "/fast/corral-log"
                tick_time_ms = 1000
                min_session_timeout_ms = 3000
                max_session_timeout_ms = 60000
                max_client_cnxns = 0
                four_letter_words = ["ruok", "mntr"]
                ttl_nodes_enabled = false
                super_digests = ['{ARGON2}']
                zk_super_digest = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
                admin_addr = "127.0.0.1:8080"
                log_level = "debug"

                [[servers]]
                id = 1
                host = "a.example"
                quorum_port = 2888
                election_port = 3888

                [[servers]]
                id = 2
                host = "b.example"
                quorum_port = 2888
                election_port = 3888
                observer = true
                client = "0.0.0.0:2281"
                "#
            ),
        )?;
        let config = jailed(load(Some(Path::new("corral.toml"))))?;
        assert_eq!(config.server_id, 2);
        assert_eq!(config.client_addr, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(config.client_port, 2281);
        assert_eq!(config.log_dir(), PathBuf::from("/fast/corral-log"));
        assert_eq!(config.min_session_timeout(), 3000);
        assert_eq!(config.max_session_timeout(), 60_000);
        assert_eq!(config.max_client_cnxns, 0);
        assert_eq!(config.four_letter_words, vec!["ruok", "mntr"]);
        assert!(!config.ttl_nodes_enabled);
        assert_eq!(config.super_digests, vec![ARGON2.to_string()]);
        assert_eq!(
            config.admin_addr,
            Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
        );
        assert_eq!(config.log_level, "debug");
        assert_eq!(config.servers.len(), 2);
        assert_eq!(
            config.own_server(),
            Some(&ServerEntry {
                id: 2,
                host: "b.example".into(),
                quorum_port: 2888,
                election_port: 3888,
                observer: true,
                client: Some("0.0.0.0:2281".into()),
            })
        );
        // Untouched keys keep their defaults.
        assert_eq!(config.snap_count, 100_000);
        Ok(())
    });
}

#[test]
fn env_overrides_toml() {
    // Goal: CORRAL_* variables beat the TOML file, including list-valued keys.
    Jail::expect_with(|jail| {
        jail.create_file("corral.toml", "client_port = 3000\ntick_time_ms = 1000\n")?;
        jail.set_env("CORRAL_CLIENT_PORT", 2281);
        jail.set_env("CORRAL_CLIENT_ADDR", "::1");
        jail.set_env("CORRAL_FOUR_LETTER_WORDS", "srvr, ruok,mntr");
        jail.set_env("CORRAL_SUPER_DIGESTS", ARGON2);
        jail.set_env(
            "CORRAL_ZK_SUPER_DIGEST",
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU=",
        );
        jail.set_env("CORRAL_ADMIN_ADDR", "127.0.0.1:9000");
        jail.set_env("CORRAL_DATA_LOG_DIR", "/log");
        let config = jailed(load(Some(Path::new("corral.toml"))))?;
        assert_eq!(config.client_port, 2281);
        assert_eq!(
            config.tick_time_ms, 1000,
            "keys absent from env keep the file's value"
        );
        assert_eq!(
            config.client_addr,
            "::1".parse::<IpAddr>().map_err(|e| e.to_string())?
        );
        assert_eq!(config.four_letter_words, vec!["srvr", "ruok", "mntr"]);
        // The PHC string's commas must not split it.
        assert_eq!(config.super_digests, vec![ARGON2.to_string()]);
        assert_eq!(
            config.zk_super_digest.as_deref(),
            Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
        );
        assert_eq!(
            config.admin_addr,
            Some(SocketAddr::from(([127, 0, 0, 1], 9000)))
        );
        assert_eq!(config.log_dir(), PathBuf::from("/log"));
        Ok(())
    });
}

#[test]
fn overrides_beat_env() {
    // Goal: the caller's explicit overrides (command-line flags) are applied last.
    Jail::expect_with(|jail| {
        jail.set_env("CORRAL_CLIENT_PORT", 2281);
        jail.set_env("CORRAL_LOG_LEVEL", "warn");
        let config = jailed(load_with(None, &[("client_port", "2381")]))?;
        assert_eq!(config.client_port, 2381);
        assert_eq!(config.log_level, "warn");
        Ok(())
    });
}

#[test]
fn unrelated_corral_env_vars_are_ignored() {
    // Goal: a CORRAL_* variable that names no key (a harness's own) does not fail loading.
    Jail::expect_with(|jail| {
        jail.set_env("CORRAL_BIN", "/usr/bin/corral");
        jail.set_env("CORRAL_TEST_SEED", 42);
        assert_eq!(jailed(load(None))?, Config::default());
        Ok(())
    });
}

#[test]
fn unknown_toml_key_is_rejected() {
    // Goal: a misspelt key fails and the error names the key and the file.
    Jail::expect_with(|jail| {
        jail.create_file("corral.toml", "client_prot = 2181\n")?;
        let err = expect_err(load(Some(Path::new("corral.toml"))));
        let text = err.to_string();
        assert!(matches!(err, ConfigError::UnknownKey { .. }), "{text}");
        assert_eq!(err.key(), Some("client_prot"));
        assert!(
            text.starts_with("client_prot: unknown configuration key"),
            "{text}"
        );
        assert!(text.contains("corral.toml"), "{text}");
        Ok(())
    });
}

#[test]
fn unknown_key_in_a_server_table_is_rejected() {
    // Goal: deny_unknown_fields also covers [[servers]] entries, with the nested key named.
    Jail::expect_with(|jail| {
        jail.create_file(
            "corral.toml",
            "[[servers]]\nid = 1\nhost = \"a\"\nquorum_port = 1\nelection_port = 2\nrole = \"x\"\n",
        )?;
        let err = expect_err(load(Some(Path::new("corral.toml"))));
        let key = err.key().unwrap_or_default().to_string();
        assert!(key.starts_with("servers") && key.ends_with("role"), "{err}");
        Ok(())
    });
}

#[test]
fn unknown_override_key_is_rejected() {
    // Goal: an override naming no key fails rather than being silently dropped.
    Jail::expect_with(|_| {
        let err = expect_err(load_with(None, &[("clientport", "1")]));
        assert_eq!(err.key(), Some("clientport"));
        assert!(err.to_string().contains("command-line override"), "{err}");
        Ok(())
    });
}

#[test]
fn bad_toml_names_file_and_line() {
    // Goal: a TOML syntax error names the file and the line it is on.
    Jail::expect_with(|jail| {
        jail.create_file("corral.toml", "client_port = 2181\ntick_time_ms = = 5\n")?;
        let err = expect_err(load(Some(Path::new("corral.toml"))));
        let text = err.to_string();
        assert!(matches!(err, ConfigError::Toml { .. }), "{text}");
        assert!(text.contains("corral.toml"), "{text}");
        assert!(text.contains("line 2"), "{text}");
        Ok(())
    });
}

#[test]
fn missing_toml_file_is_an_error() {
    // Goal: a TOML path the operator named must exist; figment alone would ignore it.
    Jail::expect_with(|_| {
        let err = expect_err(load(Some(Path::new("nope.toml"))));
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
        assert!(
            err.to_string().starts_with("nope.toml: cannot read file"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn wrong_type_in_toml_names_key_and_file() {
    // Goal: a type error says which key, what was found, and which file it came from.
    Jail::expect_with(|jail| {
        jail.create_file("corral.toml", "tick_time_ms = \"fast\"\n")?;
        let err = expect_err(load(Some(Path::new("corral.toml"))));
        let text = err.to_string();
        assert_eq!(err.key(), Some("tick_time_ms"));
        assert!(
            text.contains("fast") && text.contains("corral.toml"),
            "{text}"
        );
        Ok(())
    });
}

#[test]
fn out_of_range_port_from_env_names_the_variable() {
    // Goal: 70000 in CORRAL_CLIENT_PORT reads as a port problem and names the variable.
    Jail::expect_with(|jail| {
        jail.set_env("CORRAL_CLIENT_PORT", 70000);
        let err = expect_err(load(None));
        assert_eq!(
            err.to_string(),
            "client_port: 70000 is not a valid port (1-65535) \
             (from environment variable CORRAL_CLIENT_PORT)"
        );
        Ok(())
    });
}

#[test]
fn zero_port_in_toml_is_rejected() {
    // Goal: client_port 0 (ask the OS for any port) is refused for a server.
    Jail::expect_with(|jail| {
        jail.create_file("corral.toml", "client_port = 0\n")?;
        let err = expect_err(load(Some(Path::new("corral.toml"))));
        assert!(
            err.to_string()
                .starts_with("client_port: 0 is not a valid port (1-65535)"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn load_validates_the_merged_result() {
    // Goal: cross-key rules run after layering, so env can break (or fix) a file's values.
    Jail::expect_with(|jail| {
        jail.create_file("corral.toml", "snap_retain_count = 2\n")?;
        let err = expect_err(load(Some(Path::new("corral.toml"))));
        assert_eq!(err.key(), Some("snap_retain_count"));
        jail.set_env("CORRAL_SNAP_RETAIN_COUNT", 5);
        assert_eq!(
            jailed(load(Some(Path::new("corral.toml"))))?.snap_retain_count,
            5
        );
        Ok(())
    });
}
