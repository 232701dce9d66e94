//! The TLS client listener (rustls, ring).
//!
//! A TLS connection is served exactly like a plain one ([`crate::conn::serve`]) once
//! the handshake is done; the only difference is its identities: besides the `ip`
//! principal it gets `("x509", <subject DN>)` from a verified client certificate
//! (the DN in Java's RFC 2253 form, see [`corral_auth::x509`]).
//!
//! - **Client authentication** ([`ClientAuth`]): `none` never asks for a certificate,
//!   `want` asks and accepts a client without one (no `x509` principal), `need`
//!   refuses a client without one. `want` and `need` verify the chain against the CA
//!   bundle; an expired, not-yet-valid or untrusted certificate is refused at the
//!   handshake in every mode, with one log line naming the peer and the reason.
//! - **X.509 v1 client certificates** (no extensions; webpki cannot parse them) are
//!   accepted as Java accepts them, but only when issued directly by one of the CAs:
//!   see [`crate::tls_v1`]. This is always on.
//! - **Per-IP limits** are taken before the handshake, so a flood of handshakes from
//!   one address is bounded like plain connections.
//! - **Files**: the certificate chain and key come from PEM files or from a Java
//!   KeyStore ([`KeySource`]); the client CAs from a PEM bundle or from the trusted
//!   certificate entries of a JKS trust store ([`CaSource`]). JKS is read by
//!   [`crate::jks`]; the key is decrypted with the store password, as ZooKeeper does.
//! - **Reload**: [`TlsReloader`] holds the current `ServerConfig`; each handshake
//!   takes the one current at accept. [`TlsReloader::reload`] re-reads the cert, key
//!   and CA files (or stores) and swaps the config; sessions already up keep their
//!   connection.
//!   The node polls the files' mtimes every `reload_interval_ms`, and `corral serve`
//!   reloads on SIGHUP. A reload that fails (half-written files, key not matching the
//!   cert) keeps the old config and logs why; the next change is tried again.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use std::{fmt, net::SocketAddr};

use corral_auth::{CertIdentity, Principal};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::commit::Replicator;
use crate::node::IpSlot;
use crate::state::Shared;
use crate::tls_v1::{V1CompatVerifier, V1Refusal};

/// Longest a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is requested.
    None,
    /// A certificate is requested; clients without one connect with no x509 identity.
    Want,
    /// Clients without a valid certificate are refused.
    Need,
}

impl FromStr for ClientAuth {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(ClientAuth::None),
            "want" => Ok(ClientAuth::Want),
            "need" => Ok(ClientAuth::Need),
            _ => Err(format!("'{s}' is not none, want or need")),
        }
    }
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientAuth::None => "none",
            ClientAuth::Want => "want",
            ClientAuth::Need => "need",
        })
    }
}

/// Where the listener's certificate chain and private key come from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `cert_file`: PEM chain, leaf first (it may also hold the key).
    /// `key_file`: PEM private key (PKCS#8, PKCS#1 or SEC1), unencrypted.
    Pem {
        cert_file: PathBuf,
        key_file: PathBuf,
    },
    /// A JKS key store; its first private key entry and that entry's chain are
    /// used. The password checks the store and decrypts the key.
    Jks { file: PathBuf, password: String },
}

/// Where the CAs that issue client certificates come from.
#[derive(Clone, PartialEq, Eq)]
pub enum CaSource {
    /// A PEM bundle.
    Pem(PathBuf),
    /// The trusted certificate entries of a JKS trust store. Without a password
    /// the store's integrity digest is not checked (as in Java).
    Jks {
        file: PathBuf,
        password: Option<String>,
    },
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Pem {
                cert_file,
                key_file,
            } => f
                .debug_struct("Pem")
                .field("cert_file", cert_file)
                .field("key_file", key_file)
                .finish(),
            KeySource::Jks { file, .. } => f
                .debug_struct("Jks")
                .field("file", file)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

impl fmt::Debug for CaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaSource::Pem(path) => f.debug_tuple("Pem").field(path).finish(),
            CaSource::Jks { file, password } => f
                .debug_struct("Jks")
                .field("file", file)
                .field("password", &password.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

impl KeySource {
    /// The file the chain comes from, for logs.
    pub fn cert_path(&self) -> &Path {
        match self {
            KeySource::Pem { cert_file, .. } => cert_file,
            KeySource::Jks { file, .. } => file,
        }
    }

    fn files(&self) -> Vec<&Path> {
        match self {
            KeySource::Pem {
                cert_file,
                key_file,
            } => vec![cert_file, key_file],
            KeySource::Jks { file, .. } => vec![file],
        }
    }
}

impl CaSource {
    fn path(&self) -> &Path {
        match self {
            CaSource::Pem(path) => path,
            CaSource::Jks { file, .. } => file,
        }
    }
}

/// The TLS listener's settings, already validated by the caller.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub listen: SocketAddr,
    /// The listener's certificate chain and private key.
    pub identity: KeySource,
    /// The CAs that issue client certificates.
    pub client_ca: Option<CaSource>,
    pub client_auth: ClientAuth,
    /// How often the files' mtimes are checked; 0 turns polling off.
    pub reload_interval_ms: u64,
}

impl TlsOptions {
    /// PEM files. `none`/`want`/`need` defaults: `want` when a CA bundle is given, else `none`.
    pub fn new(
        listen: SocketAddr,
        cert_file: PathBuf,
        key_file: PathBuf,
        ca_file: Option<PathBuf>,
    ) -> TlsOptions {
        TlsOptions::with_sources(
            listen,
            KeySource::Pem {
                cert_file,
                key_file,
            },
            ca_file.map(CaSource::Pem),
        )
    }

    /// Any sources; client auth defaults as in [`TlsOptions::new`].
    pub fn with_sources(
        listen: SocketAddr,
        identity: KeySource,
        client_ca: Option<CaSource>,
    ) -> TlsOptions {
        let client_auth = if client_ca.is_some() {
            ClientAuth::Want
        } else {
            ClientAuth::None
        };
        TlsOptions {
            listen,
            identity,
            client_ca,
            client_auth,
            reload_interval_ms: 5000,
        }
    }

    fn files(&self) -> Vec<&Path> {
        let mut v = self.identity.files();
        v.extend(self.client_ca.as_ref().map(CaSource::path));
        v
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{}: no CERTIFICATE in the file", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: bad CA certificate: {reason}", path.display())]
    BadCa { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Jks {
        path: PathBuf,
        source: crate::jks::JksError,
    },
    #[error("{}: {reason}", path.display())]
    KeyStore { path: PathBuf, reason: String },
    #[error(
        "client_auth = {0} needs a CA bundle (tls_ca_file or tls_truststore_file) to verify \
         client certificates"
    )]
    NeedsCa(ClientAuth),
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn pem_error(path: &Path, e: impl fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

type Chain = Vec<CertificateDer<'static>>;

fn read_jks(path: &Path, password: Option<&str>) -> Result<crate::jks::KeyStore, TlsError> {
    crate::jks::read_file(path, password).map_err(|source| TlsError::Jks {
        path: path.to_path_buf(),
        source,
    })
}

/// The certificate chain and private key named by `source`.
pub fn load_identity(source: &KeySource) -> Result<(Chain, PrivateKeyDer<'static>), TlsError> {
    match source {
        KeySource::Pem {
            cert_file,
            key_file,
        } => {
            let chain = read_certs(cert_file)?;
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Pem {
                path: key_file.clone(),
                reason: format!("no usable private key ({e}); encrypted keys are not supported"),
            })?;
            Ok((chain, key))
        }
        KeySource::Jks { file, password } => {
            let store = read_jks(file, Some(password))?;
            let mut keys = store.private_keys();
            let Some(entry) = keys.next() else {
                return Err(TlsError::KeyStore {
                    path: file.clone(),
                    reason: "no private key entry in the key store (it holds only trusted \
                             certificates: is this the trust store?)"
                        .to_string(),
                });
            };
            if keys.next().is_some() {
                tracing::warn!(
                    path = %file.display(),
                    alias = %entry.alias,
                    "the key store has several private keys; using the first"
                );
            }
            if entry.chain.is_empty() {
                return Err(TlsError::KeyStore {
                    path: file.clone(),
                    reason: format!("private key '{}' has no certificate chain", entry.alias),
                });
            }
            let key = entry.decrypt(password).map_err(|source| TlsError::Jks {
                path: file.clone(),
                source,
            })?;
            // Java's EC keys leave out the public key, which ring needs.
            let key = match crate::jks::complete_ec_pkcs8(key.secret_pkcs8_der(), &entry.chain[0]) {
                Some(completed) => PrivatePkcs8KeyDer::from(completed),
                None => key,
            };
            Ok((entry.chain.clone(), PrivateKeyDer::Pkcs8(key)))
        }
    }
}

/// The CA certificates named by `source`.
pub fn load_cas(source: &CaSource) -> Result<Chain, TlsError> {
    match source {
        CaSource::Pem(path) => read_certs(path),
        CaSource::Jks { file, password } => {
            let store = read_jks(file, password.as_deref())?;
            let certs: Chain = store.trusted_certs().map(|c| c.cert.clone()).collect();
            if certs.is_empty() {
                return Err(TlsError::KeyStore {
                    path: file.clone(),
                    reason: "no trusted certificate entries in the trust store (add the client \
                             CA with keytool -importcert)"
                        .to_string(),
                });
            }
            Ok(certs)
        }
    }
}

/// Builds the rustls server config from the files named in `opts`.
pub fn build_config(opts: &TlsOptions) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (chain, key) = load_identity(&opts.identity)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match (opts.client_auth, &opts.client_ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (mode, None) => return Err(TlsError::NeedsCa(mode)),
        (mode, Some(source)) => {
            let ca = source.path().to_path_buf();
            let mut roots = RootCertStore::empty();
            for cert in load_cas(source)? {
                roots.add(cert).map_err(|e| TlsError::BadCa {
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
            }
            let roots = Arc::new(roots);
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
            let verifier = if mode == ClientAuth::Want {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| TlsError::BadCa {
                path: ca.clone(),
                reason: e.to_string(),
            })?;
            // webpki, plus X.509 v1 leaves issued directly by one of the CAs (as Java).
            let verifier =
                V1CompatVerifier::new(verifier, roots, provider.signature_verification_algorithms);
            builder.with_client_cert_verifier(Arc::new(verifier))
        }
    };
    let certified = certified_key(chain, key, &provider)?;
    Ok(builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified))))
}

/// The chain and key as rustls serves them, after checking they belong together.
///
/// rustls checks that with webpki, which cannot parse X.509 v1 certificates (still
/// made by some tools, e.g. kazoo's test harness). For those the public key of the
/// certificate is compared with the key's directly.
fn certified_key(
    chain: Chain,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    use rustls::{Error, InconsistentKeys};
    let misfit = |e: Error| TlsError::Config(format!("certificate and key do not fit: {e}"));
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(misfit)?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(e @ Error::InconsistentKeys(_)) => Err(misfit(e)),
        Err(parse_error) => {
            let from_key = certified.key.public_key();
            let from_cert = certified
                .end_entity_cert()
                .ok()
                .and_then(|c| crate::jks::leaf_spki(c));
            match (from_key, from_cert) {
                (Some(k), Some(c)) if k.as_ref() == c => Ok(certified),
                (Some(_), Some(_)) => Err(misfit(InconsistentKeys::KeyMismatch.into())),
                _ => Err(misfit(parse_error)),
            }
        }
    }
}

/// What a file looked like when it was last loaded (mtime and length).
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The current TLS config, swapped on reload without touching live connections.
pub struct TlsReloader {
    opts: TlsOptions,
    current: RwLock<Arc<ServerConfig>>,
    stamps: Mutex<Vec<Stamp>>,
    reloads: AtomicU64,
}

impl TlsReloader {
    /// Loads the files once; an error here stops the node from starting.
    pub fn load(opts: TlsOptions) -> Result<Arc<TlsReloader>, TlsError> {
        let stamps = opts.files().into_iter().map(stamp).collect();
        let config = build_config(&opts)?;
        Ok(Arc::new(TlsReloader {
            opts,
            current: RwLock::new(Arc::new(config)),
            stamps: Mutex::new(stamps),
            reloads: AtomicU64::new(0),
        }))
    }

    pub fn options(&self) -> &TlsOptions {
        &self.opts
    }

    /// The config new handshakes use.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Successful reloads since start.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Re-reads the files and swaps the config; on error the old one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps: Vec<Stamp> = self.opts.files().into_iter().map(stamp).collect();
        if let Ok(mut s) = self.stamps.lock() {
            // Remember the attempt even if it fails: the next change is retried,
            // the same broken files are not re-read (and logged) every poll.
            *s = stamps;
        }
        match build_config(&self.opts) {
            Ok(config) => {
                match self.current.write() {
                    Ok(mut c) => *c = Arc::new(config),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(config),
                }
                self.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(cert = %self.opts.identity.cert_path().display(), "TLS certificates reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS reload failed; keeping the previous certificates");
                Err(e)
            }
        }
    }

    /// Reloads when a file's mtime or length changed since the last attempt.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now: Vec<Stamp> = self.opts.files().into_iter().map(stamp).collect();
        let changed = self.stamps.lock().map(|s| *s != now).unwrap_or(true);
        if !changed {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    /// Polls the files every `reload_interval_ms` (forever; 0 = never).
    pub async fn watch_files(self: Arc<Self>) {
        if self.opts.reload_interval_ms == 0 {
            return std::future::pending().await;
        }
        let mut tick = tokio::time::interval(Duration::from_millis(self.opts.reload_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let _ = self.reload_if_changed();
        }
    }
}

/// Accepts TLS connections until the future is dropped.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Arc<TlsReloader>,
    shared: Arc<Shared>,
    repl: Arc<dyn Replicator>,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "TLS accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(guard) = IpSlot::admit(&shared, remote) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = TlsAcceptor::from(tls.current());
        let shared = shared.clone();
        let repl = repl.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::warn!(peer = %remote, reason = %handshake_reason(&e), "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::warn!(peer = %remote, reason = "handshake timed out", "TLS handshake refused");
                    return;
                }
            };
            let identity = match peer_identity(stream.get_ref().1.peer_certificates()) {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(peer = %remote, reason = %e, "TLS connection refused");
                    return;
                }
            };
            let principals: Vec<Principal> = identity.iter().map(|i| i.principal()).collect();
            if let Some(p) = principals.first() {
                tracing::debug!(peer = %remote, dn = %p.id, "TLS client authenticated");
            }
            // The whole identity (SANs, CN) goes along, for tenant bindings.
            crate::conn::serve_with_identity(shared, repl, stream, remote, principals, identity)
                .await;
            drop(guard);
        });
    }
}

/// The x509 principal of the verified leaf certificate, if the client sent one.
fn peer_identity(
    certs: Option<&[CertificateDer<'static>]>,
) -> Result<Option<CertIdentity>, corral_auth::AuthError> {
    match certs.and_then(|c| c.first()) {
        Some(leaf) => Ok(Some(CertIdentity::from_der(leaf)?)),
        None => Ok(None),
    }
}

/// A log-friendly reason for a failed handshake.
fn handshake_reason(e: &std::io::Error) -> String {
    use rustls::{CertificateError, Error};
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) else {
        return e.to_string();
    };
    if let Some(refusal) = V1Refusal::from_error(err) {
        return refusal.to_string();
    }
    match err {
        Error::InvalidCertificate(CertificateError::Expired)
        | Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "client certificate has expired".to_string()
        }
        Error::InvalidCertificate(CertificateError::NotValidYet)
        | Error::InvalidCertificate(CertificateError::NotValidYetContext { .. }) => {
            "client certificate is not valid yet".to_string()
        }
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "client certificate is not issued by a trusted CA (tls_ca_file / tls_truststore_file)"
                .to_string()
        }
        Error::NoCertificatesPresented => {
            "no client certificate presented, and tls_client_auth = need".to_string()
        }
        // webpki parses only X.509 v3. A v1 leaf issued directly by a CA is accepted
        // (crate::tls_v1) and others are refused with a V1Refusal, so this is a v2
        // leaf or an older certificate somewhere in the chain.
        other if other.to_string().contains("UnsupportedCertVersion") => {
            "a certificate in the client's chain is X.509 v1 or v2; only v3 certificates, \
             and v1 certificates issued directly by a trusted CA, can be verified"
                .to_string()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_parses_and_prints() {
        // Goal: none/want/need round-trip, case-insensitively; other words are refused.
        for mode in [ClientAuth::None, ClientAuth::Want, ClientAuth::Need] {
            assert_eq!(mode.to_string().parse::<ClientAuth>(), Ok(mode));
        }
        assert_eq!("NEED".parse::<ClientAuth>(), Ok(ClientAuth::Need));
        assert!("required".parse::<ClientAuth>().is_err());
    }

    #[test]
    fn default_client_auth_follows_ca_file() {
        // Goal: a CA bundle makes the default `want`; without one it is `none`.
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let with = TlsOptions::new(addr, "c".into(), "k".into(), Some("ca".into()));
        assert_eq!(with.client_auth, ClientAuth::Want);
        let without = TlsOptions::new(addr, "c".into(), "k".into(), None);
        assert_eq!(without.client_auth, ClientAuth::None);
        let jks = TlsOptions::with_sources(
            addr,
            KeySource::Jks {
                file: "k.jks".into(),
                password: "pw".into(),
            },
            Some(CaSource::Jks {
                file: "t.jks".into(),
                password: None,
            }),
        );
        assert_eq!(jks.client_auth, ClientAuth::Want);
        assert_eq!(jks.files(), [Path::new("k.jks"), Path::new("t.jks")]);
    }

    #[test]
    fn v1_server_certificate_is_served_when_the_key_fits() {
        // Goal: an X.509 v1 leaf (which webpki cannot parse) is accepted when its public key is the key's, and refused when it is not.
        let provider = rustls::crypto::ring::default_provider();
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let v1 = CertificateDer::from(crate::jks::to_v1(cert.der()));
        let der =
            |k: &rcgen::KeyPair| PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.serialize_der()));
        assert!(certified_key(vec![v1.clone()], der(&key), &provider).is_ok());
        let other = rcgen::KeyPair::generate().expect("key");
        let err = certified_key(vec![v1], der(&other), &provider).expect_err("mismatch");
        assert!(err.to_string().contains("do not fit"), "{err}");
        // v3 certificates still go through rustls' own check.
        assert!(certified_key(vec![cert.der().clone()], der(&key), &provider).is_ok());
        assert!(certified_key(vec![cert.der().clone()], der(&other), &provider).is_err());
    }

    #[test]
    fn refused_v1_client_certificates_are_logged_with_their_reason() {
        // Goal: the "TLS handshake refused" reason of a refused v1 client certificate is the v1 check that failed, not rustls' generic "Other(...)".
        let refusal = crate::tls_v1::V1Refusal::NotDirectlyIssued {
            issuer: "CN=rogue".to_string(),
            intermediates: 0,
        };
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::from(refusal),
        );
        let reason = handshake_reason(&io);
        assert_eq!(
            reason,
            "client certificate is X.509 v1 and its issuer 'CN=rogue' is not a CA in \
             tls_ca_file / tls_truststore_file (v1 certificates must be issued directly by a \
             trusted CA)"
        );
    }

    #[test]
    fn debug_output_hides_store_passwords() {
        // Goal: logging TlsOptions never prints a key or trust store password.
        let opts = TlsOptions::with_sources(
            "127.0.0.1:0".parse().unwrap(),
            KeySource::Jks {
                file: "k.jks".into(),
                password: "s3cret-key".into(),
            },
            Some(CaSource::Jks {
                file: "t.jks".into(),
                password: Some("s3cret-trust".into()),
            }),
        );
        let text = format!("{opts:?}");
        assert!(text.contains("k.jks") && text.contains("t.jks"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
