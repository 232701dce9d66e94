//! A small Java KeyStore (JKS) writer for tests: the inverse of `corral_server::jks`,
//! written from the format description (magic 0xFEEDFEED, version, entries, trailing
//! SHA-1 of password || "Mighty Aphrodite" || body; keys under the JKS key protector).

#![allow(dead_code)]

use sha1::{Digest, Sha1};

/// One entry to write.
pub enum Entry {
    /// A private key (PKCS#8 DER) with its chain (DER, leaf first).
    Key {
        alias: String,
        pkcs8: Vec<u8>,
        chain: Vec<Vec<u8>>,
        /// The key password; `None` means the store password.
        key_password: Option<String>,
    },
    /// A trusted certificate (DER).
    Cert { alias: String, der: Vec<u8> },
}

impl Entry {
    pub fn key(alias: &str, pkcs8: &[u8], chain: &[&[u8]]) -> Entry {
        Entry::Key {
            alias: alias.to_string(),
            pkcs8: pkcs8.to_vec(),
            chain: chain.iter().map(|c| c.to_vec()).collect(),
            key_password: None,
        }
    }

    pub fn cert(alias: &str, der: &[u8]) -> Entry {
        Entry::Cert {
            alias: alias.to_string(),
            der: der.to_vec(),
        }
    }
}

/// The password as Java hashes it: UTF-16 code units, big-endian.
pub fn utf16be(password: &str) -> Vec<u8> {
    password
        .encode_utf16()
        .flat_map(|u| u.to_be_bytes())
        .collect()
}

/// A JKS file (version 1 or 2) holding `entries`, sealed with `password`.
pub fn write(entries: &[Entry], password: &str, version: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(0xFEED_FEEDu32.to_be_bytes());
    out.extend(version.to_be_bytes());
    out.extend((entries.len() as u32).to_be_bytes());
    for (i, entry) in entries.iter().enumerate() {
        let timestamp = 1_700_000_000_000u64 + i as u64;
        match entry {
            Entry::Key {
                alias,
                pkcs8,
                chain,
                key_password,
            } => {
                out.extend(1u32.to_be_bytes());
                write_utf(&mut out, alias);
                out.extend(timestamp.to_be_bytes());
                let salt = salt_for(alias);
                let protected = protect(pkcs8, key_password.as_deref().unwrap_or(password), salt);
                out.extend((protected.len() as u32).to_be_bytes());
                out.extend(protected);
                out.extend((chain.len() as u32).to_be_bytes());
                for cert in chain {
                    write_cert(&mut out, version, cert);
                }
            }
            Entry::Cert { alias, der } => {
                out.extend(2u32.to_be_bytes());
                write_utf(&mut out, alias);
                out.extend(timestamp.to_be_bytes());
                write_cert(&mut out, version, der);
            }
        }
    }
    let mut h = Sha1::new();
    h.update(utf16be(password));
    h.update(b"Mighty Aphrodite");
    h.update(&out);
    out.extend(h.finalize());
    out
}

/// Deterministic 20-byte salt (Java uses a random one; any salt decrypts).
fn salt_for(alias: &str) -> [u8; 20] {
    Sha1::digest(format!("salt:{alias}").as_bytes()).into()
}

/// `EncryptedPrivateKeyInfo` DER under the JKS key protector
/// (OID 1.3.6.1.4.1.42.2.17.1.1, NULL parameters).
pub fn protect(plain: &[u8], password: &str, salt: [u8; 20]) -> Vec<u8> {
    let pw = utf16be(password);
    let mut data = salt.to_vec();
    let mut digest = salt;
    for chunk in plain.chunks(20) {
        let mut h = Sha1::new();
        h.update(&pw);
        h.update(digest);
        digest = h.finalize().into();
        data.extend(chunk.iter().zip(digest.iter()).map(|(p, k)| p ^ k));
    }
    let mut h = Sha1::new();
    h.update(&pw);
    h.update(plain);
    data.extend(h.finalize());
    let oid = [0x2B, 0x06, 0x01, 0x04, 0x01, 0x2A, 0x02, 0x11, 0x01, 0x01];
    let alg = der(0x30, &[der(0x06, &oid), der(0x05, &[])].concat());
    der(0x30, &[alg, der(0x04, &data)].concat())
}

/// One DER TLV with a definite length.
pub fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = (len as u32)
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend(content);
    out
}

/// Java's `writeUTF` for ASCII/BMP text without NULs (standard UTF-8 there).
fn write_utf(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u16).to_be_bytes());
    out.extend(s.as_bytes());
}

fn write_cert(out: &mut Vec<u8>, version: u32, der: &[u8]) {
    if version == 2 {
        write_utf(out, "X.509");
    }
    out.extend((der.len() as u32).to_be_bytes());
    out.extend(der);
}
