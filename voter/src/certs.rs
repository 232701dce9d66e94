//! Peer identity: the dev PKI (`corral cert`) and the rule that ties a
//! certificate to a server id.
//!
//! # The identity rule
//!
//! A voter's certificate names its server id in exactly one URI SAN,
//! `corral://server/<id>` ([`peer_uri`]); [`peer_id_of`] reads it back. The
//! certificate also carries the DNS SAN `server-<id>.corral`
//! ([`peer_dns_name`]), which is the TLS server name a dialer asks for, so
//! ordinary hostname verification already binds a dialed connection to the
//! id (no custom rustls verifier is needed); the transport then checks the
//! URI SAN on both sides as well ([`crate::net`]). Whoever holds a
//! CA-signed certificate for id `n` *is* server `n`: the CA is the trust
//! root of the cluster.
//!
//! # Dev PKI layout
//!
//! [`generate_dev_pki`] fills a directory with
//!
//! - `ca.pem`, `ca.key`: the cluster CA (made once; reused to sign later
//!   node certificates, so nodes can be added without re-keying the others);
//! - `server-<id>.pem`: the node certificate followed by the CA certificate;
//! - `server-<id>.key`: the node key, PKCS#8 PEM, mode 0600.
//!
//! Node certificates are valid for both server and client auth (every peer
//! connection is mutual TLS), for ten years. That is a dev convenience;
//! production clusters bring certificates from their own CA with the same
//! SANs.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

/// The CA certificate file in a dev PKI directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA key file in a dev PKI directory.
pub const CA_KEY_FILE: &str = "ca.key";

const PEER_URI_PREFIX: &str = "corral://server/";
const CA_COMMON_NAME: &str = "corral dev CA";
const VALIDITY_YEARS: i32 = 10;

/// Everything that can go wrong making, loading or reading certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot read PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{}: no CERTIFICATE in the file", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error(
        "{} exists but {} does not; refusing to pair a new key or certificate with it \
         (remove it, or ask to overwrite)",
        present.display(),
        missing.display()
    )]
    HalfPair { present: PathBuf, missing: PathBuf },
    #[error("host {host:?} cannot go in a certificate: {reason}")]
    BadHost { host: String, reason: String },
    #[error("subject {subject:?}: {reason}")]
    BadSubject { subject: String, reason: String },
    #[error(
        "client name {0:?}: use 1-64 letters, digits, '.', '_' or '-', not starting with '.' or '-' (it names the files client-<NAME>.pem and .key)"
    )]
    BadClientName(String),
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("peer certificate: {0}")]
    BadPeerCert(String),
}

/// The URI SAN that names server `id`.
pub fn peer_uri(id: u64) -> String {
    format!("{PEER_URI_PREFIX}{id}")
}

/// The DNS SAN (and TLS server name) of server `id`.
pub fn peer_dns_name(id: u64) -> String {
    format!("server-{id}.corral")
}

/// `server-<id>.pem`.
pub fn node_cert_file(id: u64) -> String {
    format!("server-{id}.pem")
}

/// `server-<id>.key`.
pub fn node_key_file(id: u64) -> String {
    format!("server-{id}.key")
}

/// The server id a peer certificate (DER) names: the `<id>` of its single
/// `corral://server/<id>` URI SAN. Zero such SANs, more than one, or an id
/// that is not a canonical decimal `u64` is an error: a certificate that
/// could be read as two servers must not be read as either.
pub fn peer_id_of(cert_der: &[u8]) -> Result<u64, CertError> {
    let bad = |m: String| CertError::BadPeerCert(m);
    let (rest, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(bad(format!("{} bytes after the certificate", rest.len())));
    }
    let san = cert
        .subject_alternative_name()
        .map_err(|e| bad(format!("unreadable subjectAltName: {e}")))?;
    let ids: Vec<&str> = san
        .iter()
        .flat_map(|s| s.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::URI(u) => u.strip_prefix(PEER_URI_PREFIX),
            _ => None,
        })
        .collect();
    match ids.as_slice() {
        [] => Err(bad(format!("no {PEER_URI_PREFIX}<id> URI SAN"))),
        [one] => parse_id(one).ok_or_else(|| bad(format!("bad server id {one:?} in URI SAN"))),
        many => Err(bad(format!(
            "{} {PEER_URI_PREFIX}<id> URI SANs; exactly one is allowed",
            many.len()
        ))),
    }
}

/// Canonical decimal only ("7", not "07" or "+7"), so one id has one spelling.
fn parse_id(s: &str) -> Option<u64> {
    let id: u64 = s.parse().ok()?;
    (id.to_string() == s).then_some(id)
}

/// What [`generate_dev_pki`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevPki {
    /// Files written by this call.
    pub written: Vec<PathBuf>,
    /// Files that already existed and were kept (the CA, and node files when
    /// not overwriting).
    pub kept: Vec<PathBuf>,
}

/// Makes (or extends) a dev PKI in `dir`; see the module docs for the layout.
///
/// The CA is created only if `ca.pem` and `ca.key` are both absent; if both
/// exist they sign the new node certificates. A node whose two files exist is
/// left alone unless `overwrite`. Half a pair (one file of two) is an error
/// unless `overwrite`, since pairing a fresh key with an old certificate, or
/// the reverse, gives files that cannot work. `hosts` (names or IP
/// addresses, usually `["localhost", "127.0.0.1"]`) become extra DNS/IP SANs
/// of every node certificate.
pub fn generate_dev_pki(
    dir: &Path,
    ids: &[u64],
    hosts: &[String],
    overwrite: bool,
) -> Result<DevPki, CertError> {
    let (mut report, ca) = DevCa::open(dir)?;
    for &id in ids {
        let cert_path = dir.join(node_cert_file(id));
        let key_path = dir.join(node_key_file(id));
        if !overwrite && pair_exists(&cert_path, &key_path)? {
            report.kept.push(cert_path);
            report.kept.push(key_path);
            continue;
        }
        let (cert_pem, key_pem) = ca.issue(id, id, hosts)?;
        // Key first: a crash between the two leaves a key without a
        // certificate, which the next run reports instead of silently using.
        write_private(&key_path, key_pem.as_bytes())?;
        write_file(&cert_path, cert_pem.as_bytes(), 0o644)?;
        report.written.push(cert_path);
        report.written.push(key_path);
    }
    Ok(report)
}

/// What a client certificate made by [`issue_client_cert`] says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSubject {
    /// Subject attributes as written, most specific first (`CN=svc,OU=…`),
    /// as `("CN", "svc")`; the CN defaults to the certificate's name.
    pub dn: Vec<(String, String)>,
    /// URI SANs (e.g. SPIFFE ids).
    pub uris: Vec<String>,
    /// Email SANs.
    pub emails: Vec<String>,
}

impl ClientSubject {
    /// Parses `CN=svc,OU=team-b,O=corp` (attributes CN, OU, O, L, ST, C;
    /// values without commas or escapes).
    pub fn parse_dn(text: &str) -> Result<Vec<(String, String)>, CertError> {
        let bad = |reason: String| CertError::BadSubject {
            subject: text.to_string(),
            reason,
        };
        split_dn(text)
            .map_err(|e| bad(e.to_string()))?
            .into_iter()
            .filter(|(k, v)| !(k.trim().is_empty() && v.is_none()))
            .map(|(k, v)| {
                let v = v.ok_or_else(|| bad(format!("{:?} is not ATTRIBUTE=value", k.trim())))?;
                let k = k.trim().to_ascii_uppercase();
                if !["CN", "OU", "O", "L", "ST", "C"].contains(&k.as_str()) {
                    return Err(bad(format!(
                        "unsupported attribute {k} (CN, OU, O, L, ST or C)"
                    )));
                }
                Ok((k, v.trim().to_string()))
            })
            .collect()
    }
}

/// Splits `ATTR=value,ATTR=value` on the commas and equals signs that are
/// not escaped with a backslash (RFC 2253: `CN=Doe\, John`), and drops the
/// escapes. Each item is the attribute and, if it had one, its value.
fn split_dn(text: &str) -> Result<Vec<(String, Option<String>)>, &'static str> {
    let mut out = Vec::new();
    let (mut key, mut value) = (String::new(), None::<String>);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let c = match c {
            '\\' => chars
                .next()
                .ok_or("a backslash at the end escapes nothing")?,
            ',' => {
                out.push((std::mem::take(&mut key), value.take()));
                continue;
            }
            '=' if value.is_none() => {
                value = Some(String::new());
                continue;
            }
            c => c,
        };
        match &mut value {
            Some(v) => v.push(c),
            None => key.push(c),
        }
    }
    out.push((key, value));
    Ok(out)
}

/// The client certificate and key files for `name` in a dev PKI directory.
pub fn client_files(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("client-{name}.pem")),
        dir.join(format!("client-{name}.key")),
    )
}

/// Issues a client certificate (client-auth only) for `name` from the dev
/// CA in `dir` (made if absent): `client-<name>.pem` (the certificate, then
/// the CA) and `client-<name>.key`. For trying tenant bindings by subject
/// DN, SAN URI, email or CN on the TLS client listener; production clients
/// bring certificates from their own CA.
pub fn issue_client_cert(
    dir: &Path,
    name: &str,
    subject: &ClientSubject,
    overwrite: bool,
) -> Result<DevPki, CertError> {
    check_client_name(name)?;
    let (mut report, ca) = DevCa::open(dir)?;
    let (cert_path, key_path) = client_files(dir, name);
    if !overwrite && pair_exists(&cert_path, &key_path)? {
        report.kept.push(cert_path);
        report.kept.push(key_path);
        return Ok(report);
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    // Written most specific first (as RFC 2253 and Java's getName() print
    // it), encoded least specific first.
    let mut dn = subject.dn.clone();
    if !dn.iter().any(|(k, _)| k == "CN") {
        dn.insert(0, ("CN".to_string(), name.to_string()));
    }
    for (k, v) in dn.iter().rev() {
        let t = match k.as_str() {
            "CN" => DnType::CommonName,
            "OU" => DnType::OrganizationalUnitName,
            "O" => DnType::OrganizationName,
            "L" => DnType::LocalityName,
            "ST" => DnType::StateOrProvinceName,
            _ => DnType::CountryName,
        };
        params.distinguished_name.push(t, v.as_str());
    }
    let mut sans = Vec::new();
    for u in &subject.uris {
        sans.push(SanType::URI(ia5(u)?));
    }
    for e in &subject.emails {
        sans.push(SanType::Rfc822Name(ia5(e)?));
    }
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params);
    let cert = params.signed_by(&key, &ca.issuer)?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    let chain = format!("{}{}", cert.pem(), ca.cert_pem);
    write_file(&cert_path, chain.as_bytes(), 0o644)?;
    report.written.push(cert_path);
    report.written.push(key_path);
    Ok(report)
}

/// A client name becomes part of two file names in the PKI directory: keep
/// it to a plain name, so it cannot point elsewhere (`../x`, `/etc/x`).
fn check_client_name(name: &str) -> Result<(), CertError> {
    let plain = (1..=64).contains(&name.len())
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if plain {
        Ok(())
    } else {
        Err(CertError::BadClientName(name.to_string()))
    }
}

/// Whether both files of a pair exist; one without the other is an error.
fn pair_exists(a: &Path, b: &Path) -> Result<bool, CertError> {
    match (a.exists(), b.exists()) {
        (true, true) => Ok(true),
        (false, false) => Ok(false),
        (true, false) => Err(CertError::HalfPair {
            present: a.to_path_buf(),
            missing: b.to_path_buf(),
        }),
        (false, true) => Err(CertError::HalfPair {
            present: b.to_path_buf(),
            missing: a.to_path_buf(),
        }),
    }
}

/// A CA able to sign node certificates.
pub(crate) struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate as PEM, appended to every node chain.
    cert_pem: String,
}

impl DevCa {
    /// The CA of the dev PKI in `dir`, made (with the directory) if absent.
    fn open(dir: &Path) -> Result<(DevPki, DevCa), CertError> {
        fs::create_dir_all(dir).map_err(|source| CertError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut report = DevPki::default();
        let ca = DevCa::load_or_create(dir, &mut report)?;
        Ok((report, ca))
    }

    fn load_or_create(dir: &Path, report: &mut DevPki) -> Result<DevCa, CertError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        if pair_exists(&cert_path, &key_path)? {
            let ca = DevCa::load(&cert_path, &key_path)?;
            report.kept.push(cert_path);
            report.kept.push(key_path);
            return Ok(ca);
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, CA_COMMON_NAME);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "corral");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params);
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        write_file(&cert_path, cert_pem.as_bytes(), 0o644)?;
        report.written.push(cert_path);
        report.written.push(key_path);
        Ok(DevCa {
            issuer: Issuer::new(params, key),
            cert_pem,
        })
    }

    /// Loads a CA pair, checking that the key belongs to the certificate
    /// (a mismatched pair would sign certificates nobody can verify).
    pub(crate) fn load(cert_path: &Path, key_path: &Path) -> Result<DevCa, CertError> {
        let cert_pem = read_text(cert_path)?;
        let key_pem = read_text(key_path)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| CertError::BadFile {
            path: key_path.to_path_buf(),
            reason: format!("not a usable private key: {e}"),
        })?;
        let first = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .next()
            .ok_or_else(|| CertError::NoCertificate {
                path: cert_path.to_path_buf(),
            })?
            .map_err(|e| CertError::Pem {
                path: cert_path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let bad_cert = |reason: String| CertError::BadFile {
            path: cert_path.to_path_buf(),
            reason,
        };
        let (_, parsed) = x509_parser::parse_x509_certificate(&first)
            .map_err(|e| bad_cert(format!("not an X.509 certificate: {e}")))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(bad_cert(format!(
                "its public key does not match {}",
                key_path.display()
            )));
        }
        let issuer = Issuer::from_ca_cert_der(&first, key)
            .map_err(|e| bad_cert(format!("cannot sign with this CA: {e}")))?;
        // Only the first certificate goes into node chains: it is the one
        // that signs them.
        let cert_pem = pem_of(&first);
        Ok(DevCa { issuer, cert_pem })
    }

    /// A node certificate and key (both PEM). `uri_id` goes in the URI SAN,
    /// `dns_id` in the `server-<id>.corral` DNS SAN and the CN; they differ
    /// only in tests that forge a confused identity.
    pub(crate) fn issue(
        &self,
        uri_id: u64,
        dns_id: u64,
        hosts: &[String],
    ) -> Result<(String, String), CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("corral-server-{dns_id}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "corral");
        let mut sans = vec![
            SanType::URI(ia5(&peer_uri(uri_id))?),
            SanType::DnsName(ia5(&peer_dns_name(dns_id))?),
        ];
        for host in hosts {
            let san = match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(ia5(host)?),
            };
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params);
        let cert = params.signed_by(&key, &self.issuer)?;
        let chain = format!("{}{}", cert.pem(), self.cert_pem);
        Ok((chain, key.serialize_pem()))
    }
}

fn ia5(s: &str) -> Result<rcgen::string::Ia5String, CertError> {
    s.try_into().map_err(|e: rcgen::Error| CertError::BadHost {
        host: s.to_string(),
        reason: e.to_string(),
    })
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    // base64 output is ASCII, so 64-byte chunks are whole characters.
    for line in b64.as_bytes().chunks(64) {
        out.extend(line.iter().map(|&c| char::from(c)));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// From yesterday (so a peer whose clock runs a little behind accepts the
/// certificate at once) to ten years from today, at midnight UTC.
fn set_validity(params: &mut CertificateParams) {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        / 86_400;
    let (y, m, d) = civil_from_days(days as i64 - 1);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    // Feb 29 has no twin ten years on.
    params.not_after = rcgen::date_time_ymd(y + VALIDITY_YEARS, m, d.min(28));
}

/// The proleptic Gregorian (year, month, day) of a count of days since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m as u8, d as u8)
}

fn read_text(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), CertError> {
    write_file(path, contents, 0o600)
}

/// Writes through a temporary file and a rename, so a reader never sees half
/// a file; the temporary file is created with `mode`, so a key is never
/// readable by others, not even for a moment.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertError> {
    let io = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp).map_err(io)?;
    #[cfg(unix)]
    {
        // A leftover temporary file keeps its old mode; set it explicitly.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io)?;
    }
    f.write_all(contents).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    fs::rename(&tmp, path).map_err(io)
}

/// A node's TLS material for peer connections: the cluster CA bundle it
/// trusts, its own certificate chain (leaf first) and its private key.
pub struct PeerTls {
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl PeerTls {
    /// Reads the CA bundle, the certificate chain and the key (PKCS#8,
    /// PKCS#1 or SEC1 PEM, unencrypted). Errors name the file.
    pub fn load(ca_file: &Path, cert_file: &Path, key_file: &Path) -> Result<PeerTls, CertError> {
        let ca = read_certs(ca_file)?;
        let chain = read_certs(cert_file)?;
        let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| CertError::Pem {
            path: key_file.to_path_buf(),
            reason: format!("no usable private key ({e}); encrypted keys are not supported"),
        })?;
        Ok(PeerTls { ca, chain, key })
    }

    /// Loads server `id`'s files from a directory laid out as
    /// [`generate_dev_pki`] makes it.
    pub fn from_dir(dir: &Path, id: u64) -> Result<PeerTls, CertError> {
        PeerTls::load(
            &dir.join(CA_CERT_FILE),
            &dir.join(node_cert_file(id)),
            &dir.join(node_key_file(id)),
        )
    }

    /// Builds from parts already in memory.
    pub fn new(
        ca: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> PeerTls {
        PeerTls { ca, chain, key }
    }

    /// The server id this node's own certificate names.
    pub fn id(&self) -> Result<u64, CertError> {
        let leaf = self
            .chain
            .first()
            .ok_or_else(|| CertError::BadPeerCert("empty certificate chain".into()))?;
        peer_id_of(leaf)
    }

    pub fn ca(&self) -> &[CertificateDer<'static>] {
        &self.ca
    }

    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }
}

impl Clone for PeerTls {
    fn clone(&self) -> Self {
        PeerTls {
            ca: self.ca.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls")
            .field("ca", &self.ca.len())
            .field("chain", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let pem = |reason: String| CertError::Pem {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| match e {
            rustls_pki_types::pem::Error::Io(source) => CertError::Io {
                path: path.to_path_buf(),
                source,
            },
            other => pem(other.to_string()),
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;

    fn hosts() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into()]
    }

    #[test]
    fn subjects_take_rfc2253_escapes() {
        // Goal: a value with a comma (or an equals sign) can be written
        // escaped, lands in the certificate as one attribute, and prints back
        // escaped as Java's getName() does; malformed subjects are refused.
        let dn = ClientSubject::parse_dn(r"CN=Doe\, John, OU=a\=b,O=corp").unwrap();
        assert_eq!(
            dn,
            vec![
                ("CN".to_string(), "Doe, John".to_string()),
                ("OU".to_string(), "a=b".to_string()),
                ("O".to_string(), "corp".to_string()),
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let subject = ClientSubject {
            dn,
            uris: Vec::new(),
            emails: Vec::new(),
        };
        issue_client_cert(dir.path(), "doe", &subject, false).unwrap();
        let pem = fs::read(client_files(dir.path(), "doe").0).unwrap();
        let leaf = CertificateDer::pem_slice_iter(&pem)
            .next()
            .unwrap()
            .unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf).unwrap();
        let printed = corral_auth::x509::rfc2253_from_name_der(leaf.subject().as_raw()).unwrap();
        assert_eq!(printed, r"CN=Doe\, John,OU=a\=b,O=corp");
        for bad in [r"CN=x\", "CN", "CN=a,OU", "XX=a"] {
            assert!(
                matches!(
                    ClientSubject::parse_dn(bad),
                    Err(CertError::BadSubject { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(ClientSubject::parse_dn("").unwrap(), Vec::new());
        assert_eq!(ClientSubject::parse_dn("CN=a,").unwrap().len(), 1);
    }

    #[test]
    fn client_names_that_are_not_plain_file_names_are_refused() {
        // Goal: a client name cannot write outside the PKI directory or make
        // hidden or option-like files; nothing is written when it is refused.
        let dir = tempfile::tempdir().unwrap();
        let subject = ClientSubject {
            dn: Vec::new(),
            uris: Vec::new(),
            emails: Vec::new(),
        };
        for bad in [
            "",
            "../x",
            "a/b",
            "/etc/x",
            ".hidden",
            "-rf",
            "sp ace",
            &"x".repeat(65),
        ] {
            let e = issue_client_cert(dir.path(), bad, &subject, false).unwrap_err();
            assert!(matches!(e, CertError::BadClientName(_)), "{bad:?}: {e}");
        }
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing written"
        );
        issue_client_cert(dir.path(), "team-a.api_1", &subject, false).unwrap();
    }

    #[test]
    fn client_certificates_carry_the_dn_and_sans_asked_for() {
        // Goal: `corral cert --client` certificates chain to the dev CA, print
        // their subject as written (Java's getName() order), carry the URI
        // and email SANs, and are for client auth only.
        let dir = tempfile::tempdir().unwrap();
        let subject = ClientSubject {
            dn: ClientSubject::parse_dn("CN=svc, OU=team-b,O=corp").unwrap(),
            uris: vec!["spiffe://corp/team-b/api".into()],
            emails: vec!["svc@team-b.corp".into()],
        };
        let report = issue_client_cert(dir.path(), "b", &subject, false).unwrap();
        assert_eq!(report.written.len(), 4, "the CA, then the pair");
        let (cert, key) = client_files(dir.path(), "b");
        assert!(key.exists());
        let pem = fs::read(&cert).unwrap();
        let chain: Vec<_> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(chain.len(), 2, "leaf then CA");
        let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        let dn = corral_auth::x509::rfc2253_from_name_der(leaf.subject().as_raw()).unwrap();
        assert_eq!(dn, "CN=svc,OU=team-b,O=corp");
        let sans = leaf.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = sans
            .value
            .general_names
            .iter()
            .map(|g| format!("{g}"))
            .collect();
        assert!(
            names.iter().any(|n| n.contains("spiffe://corp/team-b/api")),
            "{names:?}"
        );
        assert!(
            names.iter().any(|n| n.contains("svc@team-b.corp")),
            "{names:?}"
        );
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let again = issue_client_cert(dir.path(), "b", &subject, false).unwrap();
        assert!(again.written.is_empty(), "an existing pair is kept");
        let default_cn =
            issue_client_cert(dir.path(), "a", &ClientSubject::default(), false).unwrap();
        assert_eq!(default_cn.written.len(), 2);
        assert!(ClientSubject::parse_dn("CN=x,XX=y").is_err());
        assert!(ClientSubject::parse_dn("nonsense").is_err());
    }

    fn roots(tls: &PeerTls) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        for c in tls.ca() {
            roots.add(c.clone()).expect("CA parses");
        }
        Arc::new(roots)
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// Verifies `leaf` both as a TLS server named `name` and as a TLS client
    /// against the CA bundle of `trust`.
    fn verify(trust: &PeerTls, node: &PeerTls, name: &str) -> Result<(), rustls::Error> {
        let leaf = &node.chain()[0];
        let rest = &node.chain()[1..];
        let server = WebPkiServerVerifier::builder_with_provider(roots(trust), provider())
            .build()
            .expect("verifier");
        server.verify_server_cert(
            leaf,
            rest,
            &ServerName::try_from(name.to_string()).expect("server name"),
            &[],
            UnixTime::now(),
        )?;
        let client = WebPkiClientVerifier::builder_with_provider(roots(trust), provider())
            .build()
            .expect("verifier");
        client.verify_client_cert(leaf, rest, UnixTime::now())?;
        Ok(())
    }

    #[test]
    fn dev_pki_round_trip() {
        // Goal: generated files load, name the right ids, verify as server and client under the CA with every SAN, and keys are 0600.
        let dir = tempfile::tempdir().unwrap();
        let report = generate_dev_pki(dir.path(), &[1, 2, 3], &hosts(), false).unwrap();
        assert_eq!(report.written.len(), 2 + 3 * 2);
        assert!(report.kept.is_empty());
        for id in [1, 2, 3] {
            let tls = PeerTls::from_dir(dir.path(), id).unwrap();
            assert_eq!(tls.chain().len(), 2, "leaf then CA");
            assert_eq!(tls.id().unwrap(), id);
            assert_eq!(peer_id_of(&tls.chain()[0]).unwrap(), id);
            for name in [peer_dns_name(id), "localhost".into(), "127.0.0.1".into()] {
                verify(&tls, &tls, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            assert!(verify(&tls, &tls, &peer_dns_name(id + 1)).is_err());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = fs::metadata(dir.path().join(node_key_file(id)))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600);
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(CA_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn existing_ca_signs_new_nodes_and_nodes_are_kept() {
        // Goal: a second run reuses the CA (new nodes verify under the old CA file), keeps existing node files, and overwrite replaces them.
        let dir = tempfile::tempdir().unwrap();
        generate_dev_pki(dir.path(), &[1], &hosts(), false).unwrap();
        let ca_before = fs::read(dir.path().join(CA_CERT_FILE)).unwrap();
        let node1_before = fs::read(dir.path().join(node_cert_file(1))).unwrap();

        let report = generate_dev_pki(dir.path(), &[1, 4], &hosts(), false).unwrap();
        assert_eq!(fs::read(dir.path().join(CA_CERT_FILE)).unwrap(), ca_before);
        assert_eq!(
            fs::read(dir.path().join(node_cert_file(1))).unwrap(),
            node1_before
        );
        assert!(report.kept.contains(&dir.path().join(node_cert_file(1))));
        assert!(report.written.contains(&dir.path().join(node_cert_file(4))));
        let one = PeerTls::from_dir(dir.path(), 1).unwrap();
        let four = PeerTls::from_dir(dir.path(), 4).unwrap();
        verify(&one, &four, &peer_dns_name(4)).unwrap();

        generate_dev_pki(dir.path(), &[1], &hosts(), true).unwrap();
        assert_ne!(
            fs::read(dir.path().join(node_cert_file(1))).unwrap(),
            node1_before
        );
        verify(
            &four,
            &PeerTls::from_dir(dir.path(), 1).unwrap(),
            "localhost",
        )
        .unwrap();
    }

    #[test]
    fn other_ca_does_not_verify() {
        // Goal: a node certificate from another dev CA is refused by this CA's verifiers.
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        generate_dev_pki(a.path(), &[1], &hosts(), false).unwrap();
        generate_dev_pki(b.path(), &[1], &hosts(), false).unwrap();
        let ours = PeerTls::from_dir(a.path(), 1).unwrap();
        let theirs = PeerTls::from_dir(b.path(), 1).unwrap();
        assert!(verify(&ours, &theirs, &peer_dns_name(1)).is_err());
        assert!(verify(&ours, &ours, &peer_dns_name(1)).is_ok());
    }

    #[test]
    fn half_pairs_and_mismatched_ca_key_are_refused() {
        // Goal: one file of a pair, or a CA key that is not the CA cert's, is an error naming the file; nothing is overwritten.
        let dir = tempfile::tempdir().unwrap();
        generate_dev_pki(dir.path(), &[1], &hosts(), false).unwrap();
        fs::remove_file(dir.path().join(node_key_file(1))).unwrap();
        let err = generate_dev_pki(dir.path(), &[1], &hosts(), false).unwrap_err();
        assert!(matches!(err, CertError::HalfPair { .. }), "{err}");
        assert!(err.to_string().contains("server-1.pem"), "{err}");
        generate_dev_pki(dir.path(), &[1], &hosts(), true).unwrap();
        PeerTls::from_dir(dir.path(), 1).unwrap();

        let other = tempfile::tempdir().unwrap();
        generate_dev_pki(other.path(), &[], &hosts(), false).unwrap();
        fs::copy(other.path().join(CA_KEY_FILE), dir.path().join(CA_KEY_FILE)).unwrap();
        let err = generate_dev_pki(dir.path(), &[2], &hosts(), false).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(!dir.path().join(node_cert_file(2)).exists());
    }

    #[test]
    fn load_errors_name_the_file() {
        // Goal: a missing file, a file with no certificate and a file with no key each give an error naming that file.
        let dir = tempfile::tempdir().unwrap();
        let err = PeerTls::from_dir(dir.path(), 1).unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
        generate_dev_pki(dir.path(), &[1], &hosts(), false).unwrap();
        let junk = dir.path().join("junk.pem");
        fs::write(&junk, "nothing here\n").unwrap();
        let err = PeerTls::load(&junk, &dir.path().join("server-1.pem"), &junk).unwrap_err();
        assert!(matches!(err, CertError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("junk.pem"), "{err}");
        let err = PeerTls::load(
            &dir.path().join(CA_CERT_FILE),
            &dir.path().join("server-1.pem"),
            &junk,
        )
        .unwrap_err();
        assert!(err.to_string().contains("junk.pem"), "{err}");
        assert!(err.to_string().contains("private key"), "{err}");
    }

    #[test]
    fn peer_id_needs_exactly_one_canonical_uri() {
        // Goal: peer_id_of refuses certs with no corral URI, two of them, or a non-canonical id, and ignores other URIs.
        let key = KeyPair::generate().unwrap();
        let cert_with = |uris: &[&str]| {
            let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            for u in uris {
                p.subject_alt_names.push(SanType::URI(ia5(u).unwrap()));
            }
            p.self_signed(&key).unwrap().der().to_vec()
        };
        assert_eq!(
            peer_id_of(&cert_with(&["spiffe://x/y", "corral://server/42"])).unwrap(),
            42
        );
        for bad in [
            &[][..],
            &["spiffe://x/y"][..],
            &["corral://server/1", "corral://server/2"][..],
            &["corral://server/1", "corral://server/1"][..],
            &["corral://server/07"][..],
            &["corral://server/+7"][..],
            &["corral://server/"][..],
            &["corral://server/18446744073709551616"][..],
        ] {
            assert!(peer_id_of(&cert_with(bad)).is_err(), "{bad:?} accepted");
        }
        assert!(peer_id_of(b"not a certificate").is_err());
        let mut der = cert_with(&["corral://server/3"]);
        der.push(0);
        assert!(peer_id_of(&der).is_err());
    }

    #[test]
    fn civil_dates() {
        // Goal: the day-count to date conversion used for validity is right across leap years and eras.
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }

    #[test]
    fn reemitted_ca_pem_matches_rcgen() {
        // Goal: the PEM written for a reused CA is byte-for-byte the PEM rcgen wrote for it, so node chains look the same either way.
        let dir = tempfile::tempdir().unwrap();
        generate_dev_pki(dir.path(), &[], &hosts(), false).unwrap();
        let pem = read_text(&dir.path().join(CA_CERT_FILE)).unwrap();
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(pem_of(&der), pem);
    }
}
