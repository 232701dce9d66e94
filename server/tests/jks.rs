//! The JKS reader (`corral_server::jks`) and the TLS listener's JKS sources:
//! round trips through a test-side writer, wrong passwords, truncated and
//! corrupted files, and key stores made by the JDK's `keytool` when it is installed.

mod jks_writer;

use std::path::Path;
use std::process::Command;

use corral_server::jks::{self, Entry, JksError};
use corral_server::tls::{build_config, load_cas, load_identity, TlsError};
use corral_server::{CaSource, ClientAuth, KeySource, TlsOptions};
use jks_writer::Entry as W;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

const PASSWORD: &str = "apassword";

/// A CA and a leaf it signed (DER), with the leaf's PKCS#8 key.
struct Pki {
    ca_der: Vec<u8>,
    leaf_der: Vec<u8>,
    leaf_key: Vec<u8>,
}

fn pki(alg: &'static rcgen::SignatureAlgorithm) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate_for(alg).expect("leaf key");
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("sign");
    Pki {
        ca_der: ca.der().to_vec(),
        leaf_der: leaf.der().to_vec(),
        leaf_key: key.serialize_der(),
    }
}

/// A key store (key + chain, plus one trusted cert) and a trust store.
fn stores(p: &Pki, version: u32) -> (Vec<u8>, Vec<u8>) {
    let key_store = jks_writer::write(
        &[
            W::key("server cert", &p.leaf_key, &[&p.leaf_der, &p.ca_der]),
            W::cert("also trusted", &p.ca_der),
        ],
        PASSWORD,
        version,
    );
    let trust_store = jks_writer::write(&[W::cert("kazoo ca", &p.ca_der)], PASSWORD, version);
    (key_store, trust_store)
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write store");
    path
}

#[test]
fn key_chain_and_trusted_certs_round_trip() {
    // Goal: a written JKS (v1 and v2; EC, Ed25519 and P-384 keys) reads back with the same aliases, key, chain and trusted certs.
    let algs: [&'static rcgen::SignatureAlgorithm; 3] = [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ED25519,
        &rcgen::PKCS_ECDSA_P384_SHA384,
    ];
    for alg in algs {
        let p = pki(alg);
        for version in [1, 2] {
            let (key_store, trust_store) = stores(&p, version);
            let store = jks::parse(&key_store, Some(PASSWORD)).expect("parse key store");
            assert_eq!(store.version, version);
            assert!(store.integrity_checked);
            assert_eq!(store.entries.len(), 2);
            let keys: Vec<_> = store.private_keys().collect();
            assert_eq!(keys.len(), 1);
            assert_eq!(keys[0].alias, "server cert");
            assert_eq!(keys[0].timestamp_ms, 1_700_000_000_000);
            let chain: Vec<&[u8]> = keys[0].chain.iter().map(|c| c.as_ref()).collect();
            assert_eq!(chain, [p.leaf_der.as_slice(), p.ca_der.as_slice()]);
            let key = keys[0].decrypt(PASSWORD).expect("decrypt");
            assert_eq!(key.secret_pkcs8_der(), p.leaf_key.as_slice());
            let trusted: Vec<_> = store.trusted_certs().collect();
            assert_eq!(trusted.len(), 1);
            assert_eq!(trusted[0].alias, "also trusted");
            assert_eq!(trusted[0].cert.as_ref(), p.ca_der.as_slice());

            let trust = jks::parse(&trust_store, Some(PASSWORD)).expect("parse trust store");
            assert!(matches!(
                trust.entries.as_slice(),
                [Entry::TrustedCert(c)] if c.alias == "kazoo ca" && c.cert.as_ref() == p.ca_der
            ));
        }
    }
}

#[test]
fn key_protector_handles_every_length() {
    // Goal: keys of 0..=65 bytes (partial and exact 20-byte keystream blocks) decrypt to the same bytes.
    for len in 0..=65usize {
        let plain: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let bytes = jks_writer::write(&[W::key("k", &plain, &[b"cert"])], "pw", 2);
        let store = jks::parse(&bytes, Some("pw")).expect("parse");
        let entry = store.private_keys().next().expect("key entry");
        assert_eq!(
            entry.decrypt("pw").expect("decrypt").secret_pkcs8_der(),
            plain.as_slice(),
            "length {len}"
        );
    }
}

#[test]
fn wrong_password_fails_the_integrity_check() {
    // Goal: a wrong store password is "keystore integrity check failed: wrong password or corrupt file".
    let p = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (key_store, _) = stores(&p, 2);
    let err = jks::parse(&key_store, Some("wrong")).expect_err("wrong password");
    assert_eq!(err, JksError::IntegrityCheckFailed);
    assert_eq!(
        err.to_string(),
        "keystore integrity check failed: wrong password or corrupt file"
    );
    // Passwords are compared as UTF-16: a different case or a suffix fails too.
    for pw in ["APASSWORD", "apassword ", ""] {
        assert_eq!(
            jks::parse(&key_store, Some(pw)),
            Err(JksError::IntegrityCheckFailed)
        );
    }
    // Without a password the digest is skipped, but the key still needs the right one.
    let store = jks::parse(&key_store, None).expect("no password");
    assert!(!store.integrity_checked);
    let entry = store.private_keys().next().expect("key");
    assert!(matches!(
        entry.decrypt("wrong"),
        Err(JksError::WrongKeyPassword { .. })
    ));
}

#[test]
fn non_ascii_password_is_hashed_as_utf16() {
    // Goal: a password outside ASCII and the BMP seals and opens the store (Java char[] semantics).
    let p = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let pw = "pässwörd-\u{1F511}";
    let bytes = jks_writer::write(&[W::key("k", &p.leaf_key, &[&p.leaf_der])], pw, 2);
    let store = jks::parse(&bytes, Some(pw)).expect("parse");
    let key = store.private_keys().next().expect("key").decrypt(pw);
    assert_eq!(
        key.expect("decrypt").secret_pkcs8_der(),
        p.leaf_key.as_slice()
    );
    assert_eq!(
        jks::parse(&bytes, Some("passwort")),
        Err(JksError::IntegrityCheckFailed)
    );
}

#[test]
fn key_password_different_from_store_password_is_explained() {
    // Goal: a key sealed with its own password (keytool -keypass) fails naming the alias and the rule.
    let p = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let bytes = jks_writer::write(
        &[W::Key {
            alias: "server".into(),
            pkcs8: p.leaf_key.clone(),
            chain: vec![p.leaf_der.clone()],
            key_password: Some("other".into()),
        }],
        PASSWORD,
        2,
    );
    let store = jks::parse(&bytes, Some(PASSWORD)).expect("store opens");
    let err = store
        .private_keys()
        .next()
        .expect("key")
        .decrypt(PASSWORD)
        .expect_err("key password differs");
    let text = err.to_string();
    assert!(
        text.contains("'server'") && text.contains("store password"),
        "{text}"
    );
}

#[test]
fn every_truncation_fails_cleanly() {
    // Goal: each proper prefix of a valid store is an error (never a panic or a partial store), with or without a password.
    let p = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (key_store, _) = stores(&p, 2);
    for len in 0..key_store.len() {
        let prefix = &key_store[..len];
        for password in [Some(PASSWORD), None] {
            let err = jks::parse(prefix, password).expect_err("truncated store");
            assert!(
                matches!(err, JksError::Truncated(_) | JksError::NotJks(_)),
                "length {len}: {err}"
            );
        }
    }
    // One byte too many is refused as well.
    let mut longer = key_store.clone();
    longer.push(0);
    assert_eq!(
        jks::parse(&longer, Some(PASSWORD)),
        Err(JksError::TrailingBytes(1))
    );
}

#[test]
fn every_corrupted_byte_fails_cleanly() {
    // Goal: flipping any single byte is detected with the password, and never panics without it.
    let p = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (key_store, _) = stores(&p, 2);
    for i in 0..key_store.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut bad = key_store.clone();
            bad[i] ^= mask;
            assert!(
                jks::parse(&bad, Some(PASSWORD)).is_err(),
                "byte {i} ^ {mask:#x} went unnoticed"
            );
            // Without the digest check the store may parse; decrypting must not panic.
            if let Ok(store) = jks::parse(&bad, None) {
                for key in store.private_keys() {
                    let _ = key.decrypt(PASSWORD);
                }
            }
        }
    }
}

#[test]
fn huge_counts_and_lengths_are_bounded() {
    // Goal: absurd entry counts, chain lengths and field lengths fail as truncation without allocating them.
    let header = |count: u32| {
        let mut v = 0xFEED_FEEDu32.to_be_bytes().to_vec();
        v.extend(2u32.to_be_bytes());
        v.extend(count.to_be_bytes());
        v
    };
    assert!(matches!(
        jks::parse(&header(u32::MAX), None),
        Err(JksError::Truncated("entry tag"))
    ));
    let mut entry = header(1);
    entry.extend(1u32.to_be_bytes());
    entry.extend(1u16.to_be_bytes());
    entry.push(b'a');
    entry.extend(0u64.to_be_bytes());
    let mut huge_key = entry.clone();
    huge_key.extend(u32::MAX.to_be_bytes());
    assert_eq!(
        jks::parse(&huge_key, None),
        Err(JksError::Truncated("protected key"))
    );
    let mut huge_chain = entry.clone();
    huge_chain.extend(0u32.to_be_bytes());
    huge_chain.extend(u32::MAX.to_be_bytes());
    assert!(matches!(
        jks::parse(&huge_chain, None),
        Err(JksError::Truncated(_))
    ));
    let mut bad_tag = header(1);
    bad_tag.extend(7u32.to_be_bytes());
    bad_tag.extend(0u16.to_be_bytes());
    bad_tag.extend(0u64.to_be_bytes());
    assert_eq!(
        jks::parse(&bad_tag, None),
        Err(JksError::UnknownTag { index: 0, tag: 7 })
    );
    let mut v3 = header(0);
    v3[7] = 3;
    assert_eq!(jks::parse(&v3, None), Err(JksError::UnsupportedVersion(3)));
}

#[test]
fn listener_config_loads_from_jks_and_names_bad_stores() {
    // Goal: build_config accepts a JKS key store + trust store; swapped, PEM, PKCS#12-like or wrong-password stores fail naming the file.
    let dir = tempfile::tempdir().expect("tempdir");
    let p = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (key_store, trust_store) = stores(&p, 2);
    let ks = write_file(dir.path(), "keystore.jks", &key_store);
    let ts = write_file(dir.path(), "truststore.jks", &trust_store);
    let jks_key = |file: &Path, password: &str| KeySource::Jks {
        file: file.to_path_buf(),
        password: password.to_string(),
    };
    let jks_ca = |file: &Path, password: Option<&str>| CaSource::Jks {
        file: file.to_path_buf(),
        password: password.map(str::to_string),
    };
    let mut opts = TlsOptions::with_sources(
        "127.0.0.1:0".parse().unwrap(),
        jks_key(&ks, PASSWORD),
        Some(jks_ca(&ts, Some(PASSWORD))),
    );
    opts.client_auth = ClientAuth::Need;
    build_config(&opts).expect("JKS listener config");
    let (chain, _) = load_identity(&opts.identity).expect("identity");
    assert_eq!(chain.len(), 2);
    assert_eq!(load_cas(&jks_ca(&ts, None)).expect("no password").len(), 1);

    let expect_err = |opts: &TlsOptions, words: &[&str]| {
        let err = build_config(opts).expect_err("bad store").to_string();
        for w in words {
            assert!(err.contains(w), "'{w}' not in: {err}");
        }
    };
    let mut bad = opts.clone();
    bad.identity = jks_key(&ts, PASSWORD);
    expect_err(&bad, &["truststore.jks", "no private key entry"]);
    let key_only = jks_writer::write(&[W::key("k", &p.leaf_key, &[&p.leaf_der])], PASSWORD, 2);
    let key_only = write_file(dir.path(), "key-only.jks", &key_only);
    let mut bad = opts.clone();
    bad.client_ca = Some(jks_ca(&key_only, Some(PASSWORD)));
    expect_err(&bad, &["key-only.jks", "no trusted certificate"]);
    let mut bad = opts.clone();
    bad.identity = jks_key(&ks, "nope");
    expect_err(&bad, &["keystore.jks", "integrity check failed"]);
    let pem = write_file(dir.path(), "server.pem", b"-----BEGIN CERTIFICATE-----\n");
    bad.identity = jks_key(&pem, PASSWORD);
    expect_err(&bad, &["server.pem", "PEM"]);
    let p12 = write_file(dir.path(), "server.p12", &[0x30, 0x82, 0x01, 0x00, 0x02]);
    bad.identity = jks_key(&p12, PASSWORD);
    expect_err(&bad, &["server.p12", "PKCS#12"]);
    bad.identity = jks_key(&dir.path().join("missing.jks"), PASSWORD);
    expect_err(&bad, &["missing.jks"]);
    // A JKS trust store with client_auth none is not even read.
    let mut none = opts.clone();
    none.client_ca = Some(jks_ca(&dir.path().join("missing.jks"), None));
    none.client_auth = ClientAuth::None;
    assert!(build_config(&none).is_ok());
    assert!(matches!(
        load_identity(&jks_key(&ks, "nope")),
        Err(TlsError::Jks {
            source: JksError::IntegrityCheckFailed,
            ..
        })
    ));
}

// ---- interop with the JDK's keytool ----

fn keytool(dir: &Path, args: &[&str]) -> bool {
    match Command::new("keytool").current_dir(dir).args(args).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => panic!(
            "keytool {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => false,
    }
}

fn have_keytool() -> bool {
    let found = Command::new("keytool")
        .arg("-help")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        println!("note: keytool is not installed; skipping the JDK interop check");
    }
    found
}

#[test]
fn keytool_made_stores_are_read() {
    // Goal: JKS key and trust stores written by the JDK's keytool (EC and RSA keys) parse, decrypt and make a working listener config.
    if !have_keytool() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cases: [(&str, &[&str]); 2] = [
        ("ec", &["-keyalg", "EC", "-groupname", "secp256r1"]),
        ("rsa", &["-keyalg", "RSA", "-keysize", "2048"]),
    ];
    for (name, alg) in cases {
        let ks = format!("{name}-keystore.jks");
        let ts = format!("{name}-truststore.jks");
        let der = format!("{name}.der");
        let mut gen = vec![
            "-genkeypair",
            "-alias",
            "server",
            "-dname",
            "CN=localhost, OU=corral, O=Test",
            "-validity",
            "2",
            "-storetype",
            "JKS",
            "-keystore",
            &ks,
            "-storepass",
            PASSWORD,
            "-keypass",
            PASSWORD,
            "-noprompt",
        ];
        gen.extend_from_slice(alg);
        assert!(keytool(d, &gen));
        assert!(keytool(
            d,
            &[
                "-exportcert",
                "-alias",
                "server",
                "-keystore",
                &ks,
                "-storepass",
                PASSWORD,
                "-file",
                &der,
            ],
        ));
        assert!(keytool(
            d,
            &[
                "-importcert",
                "-noprompt",
                "-alias",
                "corral ca",
                "-file",
                &der,
                "-storetype",
                "JKS",
                "-keystore",
                &ts,
                "-storepass",
                PASSWORD,
            ],
        ));
        let exported = std::fs::read(d.join(&der)).expect("exported cert");

        let store = jks::read_file(&d.join(&ks), Some(PASSWORD)).expect("keytool key store");
        assert_eq!(store.version, 2);
        let entry = store.private_keys().next().expect("private key entry");
        assert_eq!(entry.alias, "server", "keytool lower-cases aliases");
        assert_eq!(entry.chain.len(), 1);
        assert_eq!(entry.chain[0].as_ref(), exported.as_slice());
        let key = entry.decrypt(PASSWORD).expect("decrypt keytool key");
        assert_eq!(key.secret_pkcs8_der()[0], 0x30, "PKCS#8 is a DER SEQUENCE");
        assert_eq!(
            jks::read_file(&d.join(&ks), Some("wrong")),
            Err(JksError::IntegrityCheckFailed)
        );

        let trust = jks::read_file(&d.join(&ts), Some(PASSWORD)).expect("keytool trust store");
        let certs: Vec<_> = trust.trusted_certs().collect();
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].alias, "corral ca");
        assert_eq!(certs[0].cert.as_ref(), exported.as_slice());

        // rustls checks that the decrypted key matches the certificate.
        let mut opts = TlsOptions::with_sources(
            "127.0.0.1:0".parse().unwrap(),
            KeySource::Jks {
                file: d.join(&ks),
                password: PASSWORD.to_string(),
            },
            Some(CaSource::Jks {
                file: d.join(&ts),
                password: Some(PASSWORD.to_string()),
            }),
        );
        opts.client_auth = ClientAuth::Need;
        if let Err(e) = build_config(&opts) {
            panic!("{name}: listener config from keytool stores: {e}");
        }
    }
}
