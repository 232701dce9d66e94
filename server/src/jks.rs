//! A reader for Java KeyStore (JKS) files, the key and trust store format that
//! Apache ZooKeeper deployments (and kazoo's test harness) configure with
//! `ssl.keyStore.location` / `ssl.trustStore.location`.
//!
//! The format (big-endian throughout):
//!
//! ```text
//! u32 magic 0xFEEDFEED, u32 version (1 or 2), u32 entry count, then per entry:
//!   u32 tag 1 (private key): UTF alias, u64 timestamp (ms),
//!        u32 length + protected key (an EncryptedPrivateKeyInfo, DER),
//!        u32 chain length, per certificate: [UTF type "X.509" if version 2], u32 length + DER
//!   u32 tag 2 (trusted certificate): UTF alias, u64 timestamp,
//!        [UTF type if version 2], u32 length + DER
//! 20 bytes SHA-1(password as UTF-16BE || "Mighty Aphrodite" || every byte before it)
//! ```
//!
//! `UTF` is Java's `DataOutput.writeUTF`: a u16 byte length and modified UTF-8.
//!
//! A private key is protected with Sun's "JavaSoft key protector" (OID
//! 1.3.6.1.4.1.42.2.17.1.1): the encrypted data is a 20-byte salt, the key XORed
//! with a keystream of chained digests `d1 = SHA-1(pw || salt)`,
//! `dn = SHA-1(pw || dn-1)`, and a 20-byte check `SHA-1(pw || plaintext)`. The
//! plaintext is the key as PKCS#8 DER. As ZooKeeper does, the key is decrypted
//! with the store password.
//!
//! Java writes EC private keys without the optional public key in `ECPrivateKey`,
//! which ring requires; [`complete_ec_pkcs8`] adds it back from the certificate.
//!
//! Only JKS is read: JCEKS and PKCS#12 stores are recognised and refused with an
//! error saying so. Malformed input never panics: every length is checked against
//! what is left of the file before anything is allocated or sliced.

use std::fmt;
use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use sha1::{Digest, Sha1};

/// First four bytes of a JKS file.
pub const MAGIC: u32 = 0xFEED_FEED;
/// First four bytes of a JCEKS file (not supported).
const JCEKS_MAGIC: u32 = 0xCECE_CECE;
/// Mixed into the integrity digest after the password.
const INTEGRITY_SALT: &[u8] = b"Mighty Aphrodite";
/// DER content of OID 1.3.6.1.4.1.42.2.17.1.1, the JKS key protector.
const KEY_PROTECTOR_OID: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x2A, 0x02, 0x11, 0x01, 0x01];
const DIGEST_LEN: usize = 20;
/// Key stores are a few kilobytes; anything this large is not one.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Why a key store could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JksError {
    #[error("cannot read the key store: {0}")]
    Io(String),
    #[error("key store is larger than {MAX_FILE_BYTES} bytes; not a JKS file")]
    TooLarge,
    #[error("not a JKS key store: {0}")]
    NotJks(&'static str),
    #[error("JKS version {0} is not supported (only 1 and 2)")]
    UnsupportedVersion(u32),
    #[error("truncated or corrupt key store: {0} runs past the end of the file")]
    Truncated(&'static str),
    #[error("corrupt key store: entry {index} has unknown tag {tag} (1 = private key, 2 = trusted certificate)")]
    UnknownTag { index: u32, tag: u32 },
    #[error("entry '{alias}': certificate type '{kind}' is not supported (only X.509)")]
    UnsupportedCertType { alias: String, kind: String },
    #[error("corrupt key store: {0} bytes after the integrity digest")]
    TrailingBytes(usize),
    #[error("keystore integrity check failed: wrong password or corrupt file")]
    IntegrityCheckFailed,
    #[error("private key '{alias}': {reason}")]
    BadProtectedKey { alias: String, reason: String },
    #[error(
        "private key '{alias}' cannot be decrypted with the key store password \
         (ZooKeeper and corral need the key password to equal the store password)"
    )]
    WrongKeyPassword { alias: String },
}

/// One entry of a key store.
#[derive(Clone, PartialEq, Eq)]
pub enum Entry {
    PrivateKey(PrivateKeyEntry),
    TrustedCert(TrustedCertEntry),
}

/// A private key (still encrypted) with its certificate chain, leaf first.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyEntry {
    pub alias: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The protected key: an `EncryptedPrivateKeyInfo` in DER.
    pub protected_key: Vec<u8>,
    pub chain: Vec<CertificateDer<'static>>,
}

/// A certificate trusted as an issuer (`keytool -importcert`).
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedCertEntry {
    pub alias: String,
    pub timestamp_ms: u64,
    pub cert: CertificateDer<'static>,
}

impl fmt::Debug for PrivateKeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKeyEntry")
            .field("alias", &self.alias)
            .field("timestamp_ms", &self.timestamp_ms)
            .field("protected_key_len", &self.protected_key.len())
            .field("chain_len", &self.chain.len())
            .finish()
    }
}

impl fmt::Debug for TrustedCertEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedCertEntry")
            .field("alias", &self.alias)
            .field("timestamp_ms", &self.timestamp_ms)
            .field("cert_len", &self.cert.len())
            .finish()
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::PrivateKey(e) => e.fmt(f),
            Entry::TrustedCert(e) => e.fmt(f),
        }
    }
}

/// A parsed key store, entries in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStore {
    pub version: u32,
    pub entries: Vec<Entry>,
    /// Whether the trailing digest was checked (a password was given).
    pub integrity_checked: bool,
}

impl KeyStore {
    /// The private key entries, in file order.
    pub fn private_keys(&self) -> impl Iterator<Item = &PrivateKeyEntry> {
        self.entries.iter().filter_map(|e| match e {
            Entry::PrivateKey(k) => Some(k),
            Entry::TrustedCert(_) => None,
        })
    }

    /// The trusted certificate entries, in file order.
    pub fn trusted_certs(&self) -> impl Iterator<Item = &TrustedCertEntry> {
        self.entries.iter().filter_map(|e| match e {
            Entry::TrustedCert(c) => Some(c),
            Entry::PrivateKey(_) => None,
        })
    }
}

/// Reads and parses the key store at `path`; see [`parse`].
pub fn read_file(path: &Path, password: Option<&str>) -> Result<KeyStore, JksError> {
    let meta = std::fs::metadata(path).map_err(|e| JksError::Io(e.to_string()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(JksError::TooLarge);
    }
    let bytes = std::fs::read(path).map_err(|e| JksError::Io(e.to_string()))?;
    parse(&bytes, password)
}

/// Parses a JKS file. With a password the trailing integrity digest is checked
/// (as Java's `KeyStore.load` does); without one it is skipped, which is enough
/// for a trust store (its certificates are not secret) but leaves private keys
/// undecryptable.
pub fn parse(bytes: &[u8], password: Option<&str>) -> Result<KeyStore, JksError> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(JksError::TooLarge);
    }
    sniff(bytes)?;
    let mut r = Cursor { bytes, pos: 4 };
    let version = r.u32("version")?;
    if version != 1 && version != 2 {
        return Err(JksError::UnsupportedVersion(version));
    }
    let count = r.u32("entry count")?;
    // No allocation from the count: each entry takes at least a few bytes, so a
    // bogus count runs out of file long before it runs out of memory.
    let mut entries = Vec::new();
    for index in 0..count {
        let tag = r.u32("entry tag")?;
        let alias = r.utf("entry alias")?;
        let timestamp_ms = r.u64("entry timestamp")?;
        let entry = match tag {
            1 => {
                let len = r.u32("protected key length")?;
                let protected_key = r.take(len, "protected key")?.to_vec();
                let n = r.u32("certificate chain length")?;
                let mut chain = Vec::new();
                for _ in 0..n {
                    chain.push(r.cert(version, &alias)?);
                }
                Entry::PrivateKey(PrivateKeyEntry {
                    alias,
                    timestamp_ms,
                    protected_key,
                    chain,
                })
            }
            2 => {
                let cert = r.cert(version, &alias)?;
                Entry::TrustedCert(TrustedCertEntry {
                    alias,
                    timestamp_ms,
                    cert,
                })
            }
            tag => return Err(JksError::UnknownTag { index, tag }),
        };
        entries.push(entry);
    }
    let body_len = r.pos;
    let stored = r.take(DIGEST_LEN as u32, "integrity digest")?;
    if r.pos != bytes.len() {
        return Err(JksError::TrailingBytes(bytes.len() - r.pos));
    }
    let integrity_checked = match password {
        Some(pw) => {
            let mut h = Sha1::new();
            h.update(utf16be(pw));
            h.update(INTEGRITY_SALT);
            h.update(&bytes[..body_len]);
            if !same(&h.finalize(), stored) {
                return Err(JksError::IntegrityCheckFailed);
            }
            true
        }
        None => false,
    };
    Ok(KeyStore {
        version,
        entries,
        integrity_checked,
    })
}

/// Refuses files that are not JKS, naming what they look like.
fn sniff(bytes: &[u8]) -> Result<(), JksError> {
    let Some(head) = bytes.get(..4) else {
        return Err(if bytes.is_empty() {
            JksError::NotJks("the file is empty")
        } else {
            JksError::Truncated("magic number")
        });
    };
    let magic = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    if magic == MAGIC {
        return Ok(());
    }
    if magic == JCEKS_MAGIC {
        return Err(JksError::NotJks(
            "it is a JCEKS store, which is not supported; convert it with \
             `keytool -importkeystore -deststoretype JKS`",
        ));
    }
    if head[0] == 0x30 {
        return Err(JksError::NotJks(
            "it looks like PKCS#12, which is not supported; convert it with \
             `keytool -importkeystore -deststoretype JKS`, or to PEM with openssl",
        ));
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]);
    if text.trim_start().starts_with("-----BEGIN") {
        return Err(JksError::NotJks(
            "it is a PEM file; use tls_cert_file/tls_key_file/tls_ca_file for PEM",
        ));
    }
    Err(JksError::NotJks("the magic number is not 0xFEEDFEED"))
}

impl PrivateKeyEntry {
    /// Decrypts the key with `password` (the store password), giving PKCS#8 DER.
    pub fn decrypt(&self, password: &str) -> Result<PrivatePkcs8KeyDer<'static>, JksError> {
        let bad = |reason: String| JksError::BadProtectedKey {
            alias: self.alias.clone(),
            reason,
        };
        let encrypted = encrypted_data(&self.protected_key).map_err(bad)?;
        let plain = unprotect(encrypted, password).ok_or_else(|| JksError::WrongKeyPassword {
            alias: self.alias.clone(),
        })?;
        Ok(PrivatePkcs8KeyDer::from(plain))
    }
}

/// The JKS key protector: `salt || key XOR keystream || SHA-1(pw || key)`.
/// `None` when the check digest does not match (wrong password).
fn unprotect(encrypted: &[u8], password: &str) -> Option<Vec<u8>> {
    if encrypted.len() < 2 * DIGEST_LEN {
        return None;
    }
    let pw = utf16be(password);
    let (salt, rest) = encrypted.split_at(DIGEST_LEN);
    let (body, check) = rest.split_at(rest.len() - DIGEST_LEN);
    let mut plain = Vec::with_capacity(body.len());
    let mut digest: [u8; DIGEST_LEN] = salt.try_into().ok()?;
    for chunk in body.chunks(DIGEST_LEN) {
        let mut h = Sha1::new();
        h.update(&pw);
        h.update(digest);
        digest = h.finalize().into();
        plain.extend(chunk.iter().zip(digest.iter()).map(|(c, k)| c ^ k));
    }
    let mut h = Sha1::new();
    h.update(&pw);
    h.update(&plain);
    same(&h.finalize(), check).then_some(plain)
}

/// The `encryptedData` of an `EncryptedPrivateKeyInfo` protected with the JKS
/// key protector:
/// `SEQUENCE { SEQUENCE { OID, params ANY OPTIONAL }, OCTET STRING }`.
fn encrypted_data(der: &[u8]) -> Result<&[u8], String> {
    let (outer, rest) = der_tlv(der, 0x30).map_err(|e| format!("EncryptedPrivateKeyInfo: {e}"))?;
    if !rest.is_empty() {
        return Err("EncryptedPrivateKeyInfo: bytes after the DER structure".to_string());
    }
    let (alg, rest) = der_tlv(outer, 0x30).map_err(|e| format!("algorithm identifier: {e}"))?;
    let (oid, _params) = der_tlv(alg, 0x06).map_err(|e| format!("algorithm OID: {e}"))?;
    if oid != KEY_PROTECTOR_OID {
        return Err(format!(
            "protected with algorithm {}, not the JKS key protector \
             (1.3.6.1.4.1.42.2.17.1.1); JCEKS and PKCS#12 keys are not supported",
            oid_string(oid)
        ));
    }
    let (data, rest) = der_tlv(rest, 0x04).map_err(|e| format!("encrypted data: {e}"))?;
    if !rest.is_empty() {
        return Err("EncryptedPrivateKeyInfo: unexpected field after the encrypted data".into());
    }
    if data.len() < 2 * DIGEST_LEN {
        return Err(format!(
            "encrypted data is {} bytes, shorter than the salt and check digest",
            data.len()
        ));
    }
    Ok(data)
}

/// One DER TLV with the expected (single-byte) tag: its content and what follows.
fn der_tlv(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), String> {
    let (t, _, content, rest) = der_any(input)?;
    if t != tag {
        return Err(format!("expected DER tag 0x{tag:02x}, found 0x{t:02x}"));
    }
    Ok((content, rest))
}

/// A DER element: tag, whole TLV, content, and what follows it.
type DerElement<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// One DER element of any (single-byte) tag: tag, whole TLV, content, what follows.
fn der_any(input: &[u8]) -> Result<DerElement<'_>, String> {
    let (&tag, after_tag) = input.split_first().ok_or("missing")?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte DER tags are not supported".to_string());
    }
    let (&first, mut rest) = after_tag.split_first().ok_or("missing length")?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err("unsupported DER length encoding".to_string());
        }
        if rest.len() < n {
            return Err("truncated length".to_string());
        }
        let (len_bytes, after) = rest.split_at(n);
        rest = after;
        len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return Err(format!(
            "length {len} runs past the end ({} bytes left)",
            rest.len()
        ));
    }
    let header = input.len() - rest.len();
    let (content, after) = rest.split_at(len);
    Ok((tag, &input[..header + len], content, after))
}

/// A DER TLV around `content` (also used by the TLS tests to build
/// certificates rcgen cannot make).
pub fn der_wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend(&bytes[skip..]);
    }
    out.extend(content);
    out
}

/// The whole `SubjectPublicKeyInfo` TLV of an X.509 certificate (v1 or v3).
pub fn leaf_spki(cert: &[u8]) -> Option<&[u8]> {
    let (cert, _) = der_tlv(cert, 0x30).ok()?;
    let (tbs, _) = der_tlv(cert, 0x30).ok()?;
    let mut rest = tbs;
    // [0] version is absent in v1 certificates.
    if rest.first() == Some(&0xA0) {
        rest = der_any(rest).ok()?.3;
    }
    // serial, signature algorithm, issuer, validity, subject.
    for tag in [0x02, 0x30, 0x30, 0x30, 0x30] {
        rest = der_tlv(rest, tag).ok()?.1;
    }
    let (tag, spki, _, _) = der_any(rest).ok()?;
    (tag == 0x30).then_some(spki)
}

/// DER content of OID 1.2.840.10045.2.1 (id-ecPublicKey).
const EC_PUBLIC_KEY_OID: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];

/// Bytes of a private scalar for the named curves ring supports.
fn ec_scalar_len(curve_oid: &[u8]) -> Option<usize> {
    match curve_oid {
        [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07] => Some(32), // P-256
        [0x2B, 0x81, 0x04, 0x00, 0x22] => Some(48),                   // P-384
        _ => None,
    }
}

/// An EC PKCS#8 key as Java writes it lacks `[1] publicKey` in its
/// `ECPrivateKey` (and old JDKs drop leading zeros of the scalar); ring needs
/// both. Returns the key with the public key copied from `leaf_cert` (whose
/// algorithm must match) and the scalar padded, or `None` when the key is not
/// EC, already complete, or does not fit this shape. ring still checks that the
/// public key belongs to the private key.
pub fn complete_ec_pkcs8(pkcs8: &[u8], leaf_cert: &[u8]) -> Option<Vec<u8>> {
    let (body, _) = der_tlv(pkcs8, 0x30).ok()?;
    let (tag, version, _, rest) = der_any(body).ok()?;
    if tag != 0x02 {
        return None;
    }
    let (tag, alg, alg_content, rest) = der_any(rest).ok()?;
    if tag != 0x30 {
        return None;
    }
    let (oid, params) = der_tlv(alg_content, 0x06).ok()?;
    if oid != EC_PUBLIC_KEY_OID {
        return None;
    }
    let (curve, _) = der_tlv(params, 0x06).ok()?;
    let (ec_key, attributes) = der_tlv(rest, 0x04).ok()?;
    let (ec_body, _) = der_tlv(ec_key, 0x30).ok()?;
    let (tag, ec_version, _, rest) = der_any(ec_body).ok()?;
    if tag != 0x02 {
        return None;
    }
    let (scalar, mut rest) = der_tlv(rest, 0x04).ok()?;
    let mut params_field: &[u8] = &[];
    if rest.first() == Some(&0xA0) {
        let (_, whole, _, after) = der_any(rest).ok()?;
        params_field = whole;
        rest = after;
    }
    if !rest.is_empty() {
        return None; // [1] publicKey already there (or something unexpected).
    }
    let (spki_body, _) = der_tlv(leaf_spki(leaf_cert)?, 0x30).ok()?;
    let (tag, cert_alg, _, rest) = der_any(spki_body).ok()?;
    if tag != 0x30 || cert_alg != alg {
        return None;
    }
    let (tag, public_key, _, _) = der_any(rest).ok()?;
    if tag != 0x03 {
        return None;
    }
    let mut padded = scalar.to_vec();
    if let Some(n) = ec_scalar_len(curve) {
        if padded.len() < n {
            padded.splice(0..0, std::iter::repeat_n(0u8, n - padded.len()));
        }
    }
    let ec_private_key = der_wrap(
        0x30,
        &[
            ec_version,
            &der_wrap(0x04, &padded),
            params_field,
            &der_wrap(0xA1, public_key),
        ]
        .concat(),
    );
    Some(der_wrap(
        0x30,
        &[version, alg, &der_wrap(0x04, &ec_private_key), attributes].concat(),
    ))
}

/// Dotted form of a DER OID's content, for error messages.
fn oid_string(content: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for &b in content {
        acc = acc.saturating_mul(128).saturating_add(u64::from(b & 0x7f));
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
    }
    if arcs.is_empty() {
        return "(empty OID)".to_string();
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// A password as Java's `char[]`, big-endian: the bytes JKS hashes.
pub fn utf16be(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// Equal digests, without an early exit.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decodes Java's modified UTF-8 (CESU-8 surrogates, `C0 80` for NUL) leniently:
/// a malformed sequence becomes U+FFFD, since an alias is only a label.
fn modified_utf8(bytes: &[u8]) -> String {
    let mut units: Vec<u16> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let cont = |b: Option<&u8>| b.filter(|b| *b & 0xC0 == 0x80).map(|b| u16::from(b & 0x3F));
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            units.push(u16::from(b));
            i += 1;
        } else if b & 0xE0 == 0xC0 {
            match cont(bytes.get(i + 1)) {
                Some(c) => {
                    units.push((u16::from(b & 0x1F) << 6) | c);
                    i += 2;
                }
                None => {
                    units.push(0xFFFD);
                    i += 1;
                }
            }
        } else if b & 0xF0 == 0xE0 {
            match (cont(bytes.get(i + 1)), cont(bytes.get(i + 2))) {
                (Some(c1), Some(c2)) => {
                    units.push((u16::from(b & 0x0F) << 12) | (c1 << 6) | c2);
                    i += 3;
                }
                _ => {
                    units.push(0xFFFD);
                    i += 1;
                }
            }
        } else {
            units.push(0xFFFD);
            i += 1;
        }
    }
    String::from_utf16_lossy(&units)
}

/// Bounds-checked big-endian reads; `what` names the field in errors.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: u32, what: &'static str) -> Result<&'a [u8], JksError> {
        let len = usize::try_from(len).map_err(|_| JksError::Truncated(what))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(JksError::Truncated(what))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], JksError> {
        let s = self.take(N as u32, what)?;
        s.try_into().map_err(|_| JksError::Truncated(what))
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, JksError> {
        self.array(what).map(u16::from_be_bytes)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, JksError> {
        self.array(what).map(u32::from_be_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, JksError> {
        self.array(what).map(u64::from_be_bytes)
    }

    fn utf(&mut self, what: &'static str) -> Result<String, JksError> {
        let len = self.u16(what)?;
        self.take(u32::from(len), what).map(modified_utf8)
    }

    /// `[UTF type]` (version 2) then `u32 length + DER`.
    fn cert(&mut self, version: u32, alias: &str) -> Result<CertificateDer<'static>, JksError> {
        if version == 2 {
            let kind = self.utf("certificate type")?;
            if kind != "X.509" {
                return Err(JksError::UnsupportedCertType {
                    alias: alias.to_string(),
                    kind,
                });
            }
        }
        let len = self.u32("certificate length")?;
        let der = self.take(len, "certificate")?;
        Ok(CertificateDer::from(der.to_vec()))
    }
}

/// The certificate with its `[0] version` removed: an X.509 v1 certificate as
/// far as parsers go (the signature no longer verifies). Tests only.
#[cfg(test)]
pub(crate) fn to_v1(cert: &[u8]) -> Vec<u8> {
    let (body, _) = der_tlv(cert, 0x30).expect("certificate");
    let (_, tbs_whole, tbs, rest) = der_any(body).expect("tbs");
    assert!(!tbs_whole.is_empty());
    let (_, _, _, after_version) = der_any(tbs).expect("version");
    der_wrap(0x30, &[&der_wrap(0x30, after_version), rest].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An rcgen P-256 key (ring's PKCS#8, public key included) and its self-signed cert.
    fn p256() -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        (key.serialize_der(), cert.der().to_vec())
    }

    /// The PKCS#8 key as Java writes it: `ECPrivateKey` without `[1] publicKey`.
    fn javaish(pkcs8: &[u8], trim_scalar: bool) -> Vec<u8> {
        let (body, _) = der_tlv(pkcs8, 0x30).unwrap();
        let (_, version, _, rest) = der_any(body).unwrap();
        let (_, alg, _, rest) = der_any(rest).unwrap();
        let (ec_key, _) = der_tlv(rest, 0x04).unwrap();
        let (ec_body, _) = der_tlv(ec_key, 0x30).unwrap();
        let (_, ec_version, _, rest) = der_any(ec_body).unwrap();
        let (scalar, rest) = der_tlv(rest, 0x04).unwrap();
        assert_eq!(rest.first(), Some(&0xA1), "ring writes the public key");
        let scalar = if trim_scalar { &scalar[1..] } else { scalar };
        let ec = der_wrap(0x30, &[ec_version, &der_wrap(0x04, scalar)].concat());
        der_wrap(0x30, &[version, alg, &der_wrap(0x04, &ec)].concat())
    }

    #[test]
    fn java_ec_keys_get_their_public_key_back() {
        // Goal: an EC PKCS#8 key without [1] publicKey is rebuilt from the cert to exactly ring's form; complete keys, RSA-like input and mismatched certs are left alone.
        let (full, cert) = p256();
        assert_eq!(
            complete_ec_pkcs8(&javaish(&full, false), &cert),
            Some(full.clone())
        );
        assert_eq!(complete_ec_pkcs8(&full, &cert), None, "already complete");
        assert_eq!(complete_ec_pkcs8(b"junk", &cert), None);
        assert_eq!(complete_ec_pkcs8(&javaish(&full, false), b"junk"), None);
        // A scalar with its leading byte dropped (old JDKs trim zeros) is padded back to 32 bytes.
        let padded = complete_ec_pkcs8(&javaish(&full, true), &cert).expect("completed");
        assert_eq!(padded.len(), full.len());
        // A P-384 certificate does not lend its key to a P-256 key.
        let k384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
        let c384 = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .self_signed(&k384)
            .expect("cert");
        assert_eq!(complete_ec_pkcs8(&javaish(&full, false), c384.der()), None);
    }

    #[test]
    fn spki_is_found_in_v3_and_v1_certificates() {
        // Goal: the SubjectPublicKeyInfo is located with and without the [0] version field, and junk gives None.
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["x".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        assert_eq!(leaf_spki(cert.der()), Some(spki.as_slice()));
        let v1 = to_v1(cert.der());
        assert_eq!(leaf_spki(&v1), Some(spki.as_slice()));
        for len in 0..v1.len() {
            let _ = leaf_spki(&v1[..len]);
        }
        assert_eq!(leaf_spki(b"\x30\x00"), None);
    }

    #[test]
    fn modified_utf8_decodes_java_aliases() {
        // Goal: ASCII, 2- and 3-byte forms, Java's C0 80 NUL and CESU-8 surrogate pairs decode; junk becomes U+FFFD.
        assert_eq!(modified_utf8(b"server cert"), "server cert");
        assert_eq!(modified_utf8("schlüssel".as_bytes()), "schlüssel");
        assert_eq!(modified_utf8(&[0x61, 0xC0, 0x80, 0x62]), "a\u{0}b");
        // U+1F511 as a CESU-8 surrogate pair (ED A0 BD, ED B4 91).
        assert_eq!(
            modified_utf8(&[0xED, 0xA0, 0xBD, 0xED, 0xB4, 0x91]),
            "\u{1F511}"
        );
        assert_eq!(modified_utf8(&[0x61, 0xFF, 0xC3]), "a\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn password_bytes_are_utf16_big_endian() {
        // Goal: the hashed password bytes match Java's char[] big-endian, including non-ASCII.
        assert_eq!(utf16be("ab"), [0, b'a', 0, b'b']);
        assert_eq!(utf16be("é"), [0x00, 0xE9]);
        assert_eq!(utf16be("\u{1F511}"), [0xD8, 0x3D, 0xDD, 0x11]);
    }

    #[test]
    fn der_reader_is_bounded() {
        // Goal: short/long DER lengths parse; wrong tags, oversized and truncated lengths are errors, not panics.
        assert_eq!(
            der_tlv(&[0x04, 0x02, 1, 2, 9], 0x04),
            Ok((&[1u8, 2][..], &[9u8][..]))
        );
        let long = [&[0x04, 0x81, 0x03][..], &[7, 8, 9]].concat();
        assert_eq!(der_tlv(&long, 0x04), Ok((&[7u8, 8, 9][..], &[][..])));
        assert!(der_tlv(&[0x30, 0x01], 0x04).is_err());
        assert!(der_tlv(&[0x04, 0x84, 0xFF, 0xFF, 0xFF, 0xFF], 0x04).is_err());
        assert!(der_tlv(&[0x04, 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 1], 0x04).is_err());
        assert!(der_tlv(&[0x04, 0x82, 0x01], 0x04).is_err());
        assert!(der_tlv(&[], 0x04).is_err());
    }

    #[test]
    fn foreign_key_protection_is_named() {
        // Goal: a key protected with another algorithm (JCEKS's OID) is refused naming the OID.
        let oid = [0x2B, 0x06, 0x01, 0x04, 0x01, 0x2A, 0x02, 0x13, 0x01];
        let mut alg = vec![0x06, oid.len() as u8];
        alg.extend(oid);
        alg.extend([0x05, 0x00]);
        let mut inner = vec![0x30, alg.len() as u8];
        inner.extend(alg);
        inner.extend([0x04, 40]);
        inner.extend([0u8; 40]);
        let mut der = vec![0x30, inner.len() as u8];
        der.extend(inner);
        let err = encrypted_data(&der).unwrap_err();
        assert!(err.contains("1.3.6.1.4.1.42.2.19.1"), "{err}");
    }

    #[test]
    fn other_store_formats_are_recognised() {
        // Goal: empty, JCEKS, PKCS#12 and PEM inputs are refused with an error that says what they are.
        let cases: [(&[u8], &str); 5] = [
            (b"", "empty"),
            (&[0xFE, 0xED], "truncated"),
            (&[0xCE, 0xCE, 0xCE, 0xCE, 0, 0, 0, 2], "JCEKS"),
            (&[0x30, 0x82, 0x0A, 0x00, 0x02, 0x01], "PKCS#12"),
            (b"-----BEGIN CERTIFICATE-----\n", "PEM"),
        ];
        for (bytes, word) in cases {
            let err = parse(bytes, Some("pw")).unwrap_err().to_string();
            assert!(err.contains(word), "{word}: {err}");
        }
    }
}
