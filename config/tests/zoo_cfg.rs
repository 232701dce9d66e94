//! `load_zoo_cfg`: Apache ZooKeeper's zoo.cfg as a drop-in configuration.
//!
//! Every test runs inside `figment::Jail` (scratch cwd, serialized env).

// figment::Jail fixes the closure's error type to figment's (large) Error.
#![allow(clippy::result_large_err)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use corral_config::{load_zoo_cfg, load_zoo_cfg_with, ConfigError, ServerEntry, ZooCfg};
use figment::Jail;

fn jailed<T>(result: Result<T, ConfigError>) -> figment::Result<T> {
    result.map_err(|e| figment::Error::from(e.to_string()))
}

/// Writes `zoo.cfg` (with `{data}` replaced by an absolute data dir) and `myid`, if given.
fn write_cfg(jail: &Jail, text: &str, myid: Option<&str>) -> figment::Result<PathBuf> {
    let data = jail.directory().join("data");
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    if let Some(id) = myid {
        std::fs::write(data.join("myid"), id).map_err(|e| e.to_string())?;
    }
    let text = text.replace("{data}", &data.display().to_string());
    jail.create_file("zoo.cfg", &text)?;
    Ok(PathBuf::from("zoo.cfg"))
}

fn expect_err(result: Result<ZooCfg, ConfigError>) -> ConfigError {
    match result {
        Ok(zoo) => panic!("expected an error, loaded {zoo:?}"),
        Err(e) => e,
    }
}

#[test]
fn full_mapping_with_servers_and_myid() {
    // Goal: every mapped zoo.cfg key, the server.N lines and dataDir/myid land in Config.
    Jail::expect_with(|jail| {
        let path = write_cfg(
            jail,
            "# a comment\n\
             ! another comment\n\
             \n\
             tickTime=1000\n\
             initLimit=7\n\
             syncLimit=3\n\
             dataDir={data}\n\
             dataLogDir=/fast/log\n\
             clientPort=2281\n\
             clientPortAddress=127.0.0.2\n\
             maxClientCnxns=0\n\
             minSessionTimeout=3000\n\
             maxSessionTimeout=30000\n\
             autopurge.snapRetainCount=5\n\
             autopurge.purgeInterval=24\n\
             4lw.commands.whitelist=srvr, ruok ,mntr\n\
             snapCount=5000\n\
             jute.maxbuffer=0x200000\n\
             extendedTypesEnabled=false\n\
             znode.container.checkIntervalMs=5000\n\
             DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n\
             server.1=zk1.example:2888:3888\n\
             server.2 = zk2.example:2888:3888:participant;2182\n\
             server.3=[::1]:2888:3888:observer;127.0.0.1:2183\n",
            Some("2\n"),
        )?;
        let ZooCfg { config, warnings } = jailed(load_zoo_cfg(&path))?;
        assert_eq!(warnings, Vec::<String>::new());
        assert_eq!(config.server_id, 2);
        assert_eq!(config.tick_time_ms, 1000);
        assert_eq!((config.init_limit, config.sync_limit), (7, 3));
        assert_eq!(config.data_dir, jail.directory().join("data"));
        assert_eq!(config.log_dir(), PathBuf::from("/fast/log"));
        assert_eq!(config.client_port, 2281);
        assert_eq!(config.client_addr, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(config.max_client_cnxns, 0);
        assert_eq!(
            (config.min_session_timeout(), config.max_session_timeout()),
            (3000, 30_000)
        );
        assert_eq!(config.snap_retain_count, 5);
        assert_eq!(config.purge_interval_hours, 24);
        assert_eq!(config.four_letter_words, vec!["srvr", "ruok", "mntr"]);
        assert_eq!(config.snap_count, 5000);
        assert_eq!(config.max_frame_bytes, 0x20_0000);
        assert!(!config.ttl_nodes_enabled);
        assert_eq!(config.container_check_interval_ms, 5000);
        assert_eq!(
            config.zk_super_digest.as_deref(),
            Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
        );
        let entry = |id: u64, host: &str, observer: bool, client: Option<&str>| ServerEntry {
            id,
            host: host.into(),
            quorum_port: 2888,
            election_port: 3888,
            observer,
            client: client.map(String::from),
        };
        assert_eq!(
            config.servers,
            vec![
                entry(1, "zk1.example", false, None),
                entry(2, "zk2.example", false, Some("0.0.0.0:2182")),
                entry(3, "::1", true, Some("127.0.0.1:2183")),
            ]
        );
        Ok(())
    });
}

#[test]
fn defaults_follow_zookeeper_for_a_minimal_file() {
    // Goal: with only dataDir/clientPort, ZooKeeper's defaults apply (bind 0.0.0.0, id 1).
    Jail::expect_with(|jail| {
        let path = write_cfg(jail, "dataDir={data}\nclientPort=2181\n", None)?;
        let ZooCfg { config, warnings } = jailed(load_zoo_cfg(&path))?;
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.client_addr, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(config.server_id, 1);
        assert_eq!(config.tick_time_ms, 2000);
        assert!(config.servers.is_empty());
        Ok(())
    });
}

#[test]
fn unknown_keys_warn_once_each_and_loading_continues() {
    // Goal: each key with no equivalent gives exactly one warning, even when repeated.
    Jail::expect_with(|jail| {
        let path = write_cfg(
            jail,
            "dataDir={data}\n\
             admin.serverPort=8080\n\
             preAllocSize=65536\n\
             ssl.keyStore.password=s3cret\n\
             madeUpKey=1\n\
             madeUpKey=2\n\
             clientPort=2222\n",
            None,
        )?;
        let ZooCfg { config, warnings } = jailed(load_zoo_cfg(&path))?;
        assert_eq!(
            config.client_port, 2222,
            "keys after ignored ones still load"
        );
        assert_eq!(
            warnings,
            vec![
                "zoo.cfg:2: key 'admin.serverPort' has no corral equivalent; ignored",
                "zoo.cfg:3: key 'preAllocSize' has no corral equivalent; ignored",
                "zoo.cfg:5: key 'madeUpKey' has no corral equivalent; ignored",
                // Read with the other ssl.* keys once the file is done; no JKS store uses it.
                "zoo.cfg:4: ssl.keyStore.password is only used with a JKS \
                 ssl.keyStore.location (PEM keys must be unencrypted); ignored",
            ]
        );
        assert!(
            !warnings.concat().contains("s3cret"),
            "values are never echoed"
        );
        Ok(())
    });
}

#[test]
fn kazoo_standalone_harness_file_loads() {
    // Goal: the zoo.cfg kazoo's test harness writes for one server loads with one warning per unmapped key.
    Jail::expect_with(|jail| {
        let path = write_cfg(
            jail,
            "\n\
             tickTime=2000\n\
             dataDir={data}\n\
             clientPort=20000\n\
             secureClientPort=20001\n\
             maxClientCnxns=0\n\
             admin.serverPort=20002\n\
             serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
             authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n\
             ssl.keyStore.location=/tmp/keystore.jks\n\
             ssl.keyStore.password=apassword\n\
             ssl.trustStore.location=/tmp/truststore.jks\n\
             ssl.trustStore.password=apassword\n\
             4lw.commands.whitelist=*\n\
             reconfigEnabled=true\n\
             localSessionsEnabled=true\n\
             localSessionsUpgradingEnabled=true\n\
             extendedTypesEnabled=true\n",
            Some("0"),
        )?;
        let ZooCfg { config, warnings } = jailed(load_zoo_cfg(&path))?;
        assert_eq!(config.client_port, 20000);
        assert_eq!(config.max_client_cnxns, 0);
        assert!(config.four_letter_word_enabled("mntr"));
        assert!(config.ttl_nodes_enabled);
        assert_eq!(config.server_id, 0, "kazoo may number servers from 0");
        // admin.serverPort, serverCnxnFactory, authProvider.1 and the two
        // localSessions keys; the JKS stores and their passwords are all used.
        assert_eq!(warnings.len(), 5, "{warnings:#?}");
        assert!(!warnings.concat().contains("ssl."), "{warnings:#?}");
        assert_eq!(config.secure_client_port, Some(20001));
        assert_eq!(
            config.tls_keystore_file.as_deref(),
            Some("/tmp/keystore.jks".as_ref())
        );
        assert_eq!(config.tls_keystore_password.as_deref(), Some("apassword"));
        assert_eq!(
            config.tls_truststore_file.as_deref(),
            Some("/tmp/truststore.jks".as_ref())
        );
        assert_eq!(config.tls_truststore_password.as_deref(), Some("apassword"));
        assert_eq!(config.tls_client_auth(), "need");
        Ok(())
    });
}

#[test]
fn kazoo_cluster_harness_file_loads() {
    // Goal: kazoo's cluster additions (limits, participant/observer lines, peerType) load.
    Jail::expect_with(|jail| {
        let path = write_cfg(
            jail,
            "tickTime=2000\n\
             dataDir={data}\n\
             clientPort=20010\n\
             maxClientCnxns=0\n\
             admin.serverPort=20013\n\
             4lw.commands.whitelist=*\n\
             reconfigEnabled=true\n\
             \n\
             initLimit=4\n\
             syncLimit=2\n\
             server.1=localhost:20011:20012:participant\n\
             server.2=localhost:20021:20022:participant\n\
             server.3=localhost:20031:20032:observer\n\
             peerType=observer\n",
            Some("3"),
        )?;
        let ZooCfg { config, warnings } = jailed(load_zoo_cfg(&path))?;
        // admin.serverPort only: reconfigEnabled maps to reconfig_enabled.
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(config.reconfig_enabled);
        assert_eq!((config.init_limit, config.sync_limit), (4, 2));
        assert_eq!(config.servers.len(), 3);
        let own = config.own_server().cloned();
        assert_eq!(
            own.map(|s| (s.id, s.observer, s.quorum_port)),
            Some((3, true, 20031))
        );
        Ok(())
    });
}

#[test]
fn malformed_line_names_line_and_key() {
    // Goal: a line without '=' is an error giving the file, the line number and the text.
    Jail::expect_with(|jail| {
        let path = write_cfg(jail, "dataDir={data}\n\ntickTime 2000\n", None)?;
        let err = expect_err(load_zoo_cfg(&path));
        assert!(matches!(err, ConfigError::ZooCfg { line: 3, .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("zoo.cfg:3: tickTime 2000: expected 'key=value'"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn bad_number_names_key_and_line() {
    // Goal: a non-numeric or out-of-range value names the zoo.cfg key and its line.
    Jail::expect_with(|jail| {
        let path = write_cfg(jail, "dataDir={data}\ntickTime=fast\n", None)?;
        let err = expect_err(load_zoo_cfg(&path));
        assert_eq!(
            err.to_string(),
            "zoo.cfg:2: tickTime: 'fast' is not a whole number"
        );

        let path = write_cfg(jail, "dataDir={data}\nclientPort=70000\n", None)?;
        let err = expect_err(load_zoo_cfg(&path));
        assert_eq!(
            err.to_string(),
            "zoo.cfg:2: clientPort: 70000 is not a valid port (1-65535)"
        );
        Ok(())
    });
}

#[test]
fn bad_server_lines_are_errors() {
    // Goal: a server.N line with a bad id, role or port fails naming the key and line.
    Jail::expect_with(|jail| {
        for (line, needle) in [
            ("server.x=h:1:2", "server id number"),
            ("server.1=h:1:2:leader", "role 'leader'"),
            ("server.1=h:1", "host:quorumPort:electionPort"),
            ("server.1=h:1:0", "election port: 0 is not a valid port"),
            (
                "server.1=h:1:2;99999",
                "client port: 99999 is not a valid port",
            ),
        ] {
            let path = write_cfg(jail, &format!("dataDir={{data}}\n{line}\n"), None)?;
            let text = expect_err(load_zoo_cfg(&path)).to_string();
            assert!(text.starts_with("zoo.cfg:2: server."), "{text}");
            assert!(text.contains(needle), "{line}: {text}");
        }
        Ok(())
    });
}

#[test]
fn missing_data_dir_is_an_error() {
    // Goal: like ZooKeeper, a zoo.cfg without dataDir is refused, naming the key.
    Jail::expect_with(|jail| {
        jail.create_file("zoo.cfg", "clientPort=2181\n")?;
        let err = expect_err(load_zoo_cfg(Path::new("zoo.cfg")));
        assert_eq!(err.key(), Some("dataDir"));
        Ok(())
    });
}

#[test]
fn env_overrides_zoo_cfg() {
    // Goal: CORRAL_* variables beat zoo.cfg and myid; explicit overrides beat both.
    Jail::expect_with(|jail| {
        let path = write_cfg(
            jail,
            "dataDir={data}\nclientPort=2181\nserver.1=a:1:2\nserver.2=b:1:2\n",
            Some("1"),
        )?;
        jail.set_env("CORRAL_CLIENT_PORT", 2999);
        jail.set_env("CORRAL_SERVER_ID", 2);
        let zoo = jailed(load_zoo_cfg(&path))?;
        assert_eq!((zoo.config.client_port, zoo.config.server_id), (2999, 2));
        let zoo = jailed(load_zoo_cfg_with(&path, &[("client_port", "3001")]))?;
        assert_eq!(zoo.config.client_port, 3001);
        Ok(())
    });
}

#[test]
fn small_retain_and_snap_counts_are_raised_with_a_warning() {
    // Goal: as ZooKeeper does, snapRetainCount < 3 and snapCount < 2 are raised and warned about.
    Jail::expect_with(|jail| {
        let path = write_cfg(
            jail,
            "dataDir={data}\nautopurge.snapRetainCount=1\nsnapCount=1\n",
            None,
        )?;
        let ZooCfg { config, warnings } = jailed(load_zoo_cfg(&path))?;
        assert_eq!((config.snap_retain_count, config.snap_count), (3, 2));
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        assert!(
            warnings[0].starts_with("zoo.cfg:2: autopurge.snapRetainCount=1"),
            "{warnings:?}"
        );
        Ok(())
    });
}

#[test]
fn minus_one_session_timeouts_mean_default() {
    // Goal: ZooKeeper's -1 for min/maxSessionTimeout resolves to the tick-based default.
    Jail::expect_with(|jail| {
        let path = write_cfg(
            jail,
            "dataDir={data}\ntickTime=500\nminSessionTimeout=-1\nmaxSessionTimeout=-1\n",
            None,
        )?;
        let config = jailed(load_zoo_cfg(&path))?.config;
        assert_eq!(
            (config.min_session_timeout_ms, config.max_session_timeout_ms),
            (None, None)
        );
        assert_eq!(
            (config.min_session_timeout(), config.max_session_timeout()),
            (1000, 10_000)
        );
        Ok(())
    });
}

#[test]
fn unknown_four_letter_words_are_dropped_with_a_warning() {
    // Goal: whitelist words corral lacks (stmk, gtmk) are skipped with one warning each.
    Jail::expect_with(|jail| {
        let path = write_cfg(
            jail,
            "dataDir={data}\n4lw.commands.whitelist=srvr,stmk,gtmk\n",
            None,
        )?;
        let ZooCfg { config, warnings } = jailed(load_zoo_cfg(&path))?;
        assert_eq!(config.four_letter_words, vec!["srvr"]);
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        Ok(())
    });
}

#[test]
fn peer_type_mismatch_warns_and_server_line_wins() {
    // Goal: peerType disagreeing with this node's server.N line warns; the line decides.
    Jail::expect_with(|jail| {
        let path = write_cfg(
            jail,
            "dataDir={data}\nserver.1=a:1:2:participant\npeerType=observer\n",
            Some("1"),
        )?;
        let ZooCfg { config, warnings } = jailed(load_zoo_cfg(&path))?;
        assert_eq!(config.own_server().map(|s| s.observer), Some(false));
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(
            warnings[0].contains("peerType disagrees with server.1"),
            "{warnings:?}"
        );
        Ok(())
    });
}

#[test]
fn client_port_can_come_from_own_server_line() {
    // Goal: with no clientPort, ZooKeeper 3.5's `server.N=...;host:port` supplies it.
    Jail::expect_with(|jail| {
        let path = write_cfg(
            jail,
            "dataDir={data}\nserver.4=a:1:2;127.0.0.1:2185\n",
            Some("4"),
        )?;
        let config = jailed(load_zoo_cfg(&path))?.config;
        assert_eq!(config.client_port, 2185);
        assert_eq!(config.client_addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        Ok(())
    });
}

#[test]
fn validation_errors_name_the_zoo_cfg_key_too() {
    // Goal: a cross-key rule broken by zoo.cfg names both the corral key and the zoo.cfg key.
    Jail::expect_with(|jail| {
        let path = write_cfg(
            jail,
            "dataDir={data}\nminSessionTimeout=9000\nmaxSessionTimeout=5000\n",
            None,
        )?;
        let text = expect_err(load_zoo_cfg(&path)).to_string();
        assert!(
            text.starts_with("min_session_timeout_ms: 9000 is larger than"),
            "{text}"
        );
        assert!(
            text.contains("zoo.cfg 'minSessionTimeout' in zoo.cfg, or CORRAL_MIN"),
            "{text}"
        );
        Ok(())
    });
}

#[test]
fn bad_myid_and_missing_cluster_myid() {
    // Goal: a non-numeric myid is an error naming server_id; a missing one in a cluster fails validation with the fix.
    Jail::expect_with(|jail| {
        let path = write_cfg(jail, "dataDir={data}\n", Some("two"))?;
        let err = expect_err(load_zoo_cfg(&path));
        assert_eq!(err.key(), Some("server_id"));
        assert!(err.to_string().contains("myid"), "{err}");

        std::fs::remove_file(jail.directory().join("data/myid")).map_err(|e| e.to_string())?;
        let path = write_cfg(jail, "dataDir={data}\nserver.5=a:1:2\n", None)?;
        let text = expect_err(load_zoo_cfg(&path)).to_string();
        assert!(
            text.starts_with("server_id: 1 is not one of the configured servers (5)"),
            "{text}"
        );
        assert!(text.contains("myid"), "{text}");
        Ok(())
    });
}

#[test]
fn missing_zoo_cfg_is_a_read_error() {
    // Goal: a zoo.cfg path that does not exist fails with the path in the message.
    Jail::expect_with(|_| {
        let err = expect_err(load_zoo_cfg(Path::new("absent.cfg")));
        assert!(
            err.to_string().starts_with("absent.cfg: cannot read file"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn pem_ssl_keys_map_to_the_tls_listener() {
    // Goal: secureClientPort + PEM key/trust stores map to tls_*, and clientAuth defaults to need.
    Jail::expect_with(|jail| {
        let path = write_cfg(
            jail,
            "dataDir={data}\n\
             secureClientPort=2281\n\
             ssl.keyStore.location=/etc/zk/server.pem\n\
             ssl.trustStore.location=/etc/zk/ca\n\
             ssl.trustStore.type=PEM\n",
            None,
        )?;
        let ZooCfg { config, warnings } = jailed(load_zoo_cfg(&path))?;
        assert!(warnings.is_empty(), "{warnings:#?}");
        assert_eq!(config.secure_client_port, Some(2281));
        assert_eq!(
            config.tls_cert_file.as_deref(),
            Some("/etc/zk/server.pem".as_ref())
        );
        assert_eq!(config.tls_key_file, config.tls_cert_file);
        assert_eq!(config.tls_ca_file.as_deref(), Some("/etc/zk/ca".as_ref()));
        assert_eq!(config.tls_client_auth(), "need");
        Ok(())
    });
}

#[test]
fn jks_ssl_keys_map_to_the_keystore_keys() {
    // Goal: JKS stores (by .jks name, by type key, or by magic bytes) map to tls_keystore_*/tls_truststore_* with their passwords, PEM keys stay unset.
    Jail::expect_with(|jail| {
        // No extension and no type: the first bytes say JKS.
        jail.create_binary("trust", &[0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2, 0, 0, 0, 0])?;
        let path = write_cfg(
            jail,
            "dataDir={data}\n\
             secureClientPort=2281\n\
             ssl.keyStore.location=/etc/zk/server-keys\n\
             ssl.keyStore.password=s3cret\n\
             ssl.keyStore.type=jks\n\
             ssl.trustStore.location=trust\n\
             ssl.clientAuth=want\n",
            None,
        )?;
        let ZooCfg { config, warnings } = jailed(load_zoo_cfg(&path))?;
        assert!(warnings.is_empty(), "{warnings:#?}");
        assert_eq!(config.secure_client_port, Some(2281));
        assert_eq!(
            config.tls_keystore_file.as_deref(),
            Some("/etc/zk/server-keys".as_ref())
        );
        assert_eq!(config.tls_keystore_password.as_deref(), Some("s3cret"));
        assert_eq!(
            config.tls_truststore_file.as_deref(),
            Some("trust".as_ref())
        );
        assert_eq!(config.tls_truststore_password, None, "optional, as in Java");
        assert_eq!(config.tls_cert_file, None);
        assert_eq!(config.tls_key_file, None);
        assert_eq!(config.tls_ca_file, None);
        assert_eq!(config.tls_client_auth(), "want");

        // A JKS key store with a PEM trust store: each maps to its own kind.
        let path = write_cfg(
            jail,
            "dataDir={data}\n\
             secureClientPort=2281\n\
             ssl.keyStore.location=/etc/zk/keystore.jks\n\
             ssl.keyStore.password=s3cret\n\
             ssl.trustStore.location=/etc/zk/ca.pem\n\
             ssl.trustStore.password=unused\n",
            None,
        )?;
        let ZooCfg { config, warnings } = jailed(load_zoo_cfg(&path))?;
        assert_eq!(
            config.tls_ca_file.as_deref(),
            Some("/etc/zk/ca.pem".as_ref())
        );
        assert_eq!(config.tls_truststore_file, None);
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(
            warnings[0].contains(":6: ssl.trustStore.password is only used with a JKS"),
            "{warnings:#?}"
        );
        assert!(
            !warnings.concat().contains("unused"),
            "values are never echoed"
        );
        assert_eq!(config.tls_client_auth(), "need");
        Ok(())
    });
}

#[test]
fn unusable_key_stores_drop_the_tls_listener_with_warnings() {
    // Goal: PKCS#12 stores, and a JKS key store without its password, are refused with a warning and secureClientPort is dropped, not fatal.
    Jail::expect_with(|jail| {
        let path = write_cfg(
            jail,
            "dataDir={data}\n\
             secureClientPort=2281\n\
             ssl.keyStore.location=/etc/zk/keystore.p12\n\
             ssl.keyStore.password=s3cret\n\
             ssl.clientAuth=want\n",
            None,
        )?;
        let ZooCfg { config, warnings } = jailed(load_zoo_cfg(&path))?;
        assert_eq!(config.secure_client_port, None);
        assert_eq!(warnings.len(), 3, "{warnings:#?}");
        assert!(
            warnings[0].contains(":3: ssl.keyStore.location: only PEM and JKS"),
            "{warnings:#?}"
        );
        assert!(
            warnings[1].contains(":4: ssl.keyStore.password"),
            "{warnings:#?}"
        );
        assert!(warnings[2].contains("secureClientPort"), "{warnings:#?}");

        let path = write_cfg(
            jail,
            "dataDir={data}\n\
             secureClientPort=2281\n\
             ssl.keyStore.location=/etc/zk/keystore.jks\n",
            None,
        )?;
        let ZooCfg { config, warnings } = jailed(load_zoo_cfg(&path))?;
        assert_eq!(config.secure_client_port, None);
        assert_eq!(config.tls_keystore_file, None);
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        assert!(
            warnings[0].contains("ssl.keyStore.password is not set"),
            "{warnings:#?}"
        );
        assert!(warnings[1].contains("secureClientPort"), "{warnings:#?}");

        // An unknown file name whose file cannot be read: set the type.
        let path = write_cfg(
            jail,
            "dataDir={data}\n\
             secureClientPort=2281\n\
             ssl.keyStore.location=/nonexistent/store\n",
            None,
        )?;
        let ZooCfg { config, warnings } = jailed(load_zoo_cfg(&path))?;
        assert_eq!(config.secure_client_port, None);
        assert!(
            warnings[0].contains("set ssl.keyStore.type"),
            "{warnings:#?}"
        );
        Ok(())
    });
}
