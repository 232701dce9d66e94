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
//! - **Per-IP limits** are taken before the handshake, so a flood of handshakes from
//!   one address is bounded like plain connections.
//! - **Reload**: [`TlsReloader`] holds the current `ServerConfig`; each handshake
//!   takes the one current at accept. [`TlsReloader::reload`] re-reads the cert, key
//!   and CA files and swaps the config; sessions already up keep their connection.
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
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::commit::Replicator;
use crate::node::IpSlot;
use crate::state::Shared;

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

/// The TLS listener's settings, already validated by the caller.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first. May also hold the key.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1), unencrypted.
    pub key_file: PathBuf,
    /// PEM bundle of the CAs that issue client certificates.
    pub ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// How often the files' mtimes are checked; 0 turns polling off.
    pub reload_interval_ms: u64,
}

impl TlsOptions {
    /// `none`/`want`/`need` defaults: `want` when a CA bundle is given, else `none`.
    pub fn new(
        listen: SocketAddr,
        cert_file: PathBuf,
        key_file: PathBuf,
        ca_file: Option<PathBuf>,
    ) -> TlsOptions {
        let client_auth = if ca_file.is_some() {
            ClientAuth::Want
        } else {
            ClientAuth::None
        };
        TlsOptions {
            listen,
            cert_file,
            key_file,
            ca_file,
            client_auth,
            reload_interval_ms: 5000,
        }
    }

    fn files(&self) -> Vec<&Path> {
        let mut v = vec![self.cert_file.as_path(), self.key_file.as_path()];
        v.extend(self.ca_file.as_deref());
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
    #[error("client_auth = {0} needs a CA bundle (tls_ca_file) to verify client certificates")]
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

/// Builds the rustls server config from the files named in `opts`.
pub fn build_config(opts: &TlsOptions) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs(&opts.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&opts.key_file).map_err(|e| TlsError::Pem {
        path: opts.key_file.clone(),
        reason: format!("no usable private key ({e}); encrypted keys are not supported"),
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match (opts.client_auth, &opts.ca_file) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (mode, None) => return Err(TlsError::NeedsCa(mode)),
        (mode, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(|e| TlsError::BadCa {
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = if mode == ClientAuth::Want {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| TlsError::BadCa {
                path: ca.clone(),
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("certificate and key do not fit: {e}")))
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
                tracing::info!(cert = %self.opts.cert_file.display(), "TLS certificates reloaded");
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
            let principals = match peer_principals(stream.get_ref().1.peer_certificates()) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(peer = %remote, reason = %e, "TLS connection refused");
                    return;
                }
            };
            if let Some(p) = principals.first() {
                tracing::debug!(peer = %remote, dn = %p.id, "TLS client authenticated");
            }
            crate::conn::serve_with(shared, repl, stream, remote, principals).await;
            drop(guard);
        });
    }
}

/// The x509 principal of the verified leaf certificate, if the client sent one.
fn peer_principals(
    certs: Option<&[CertificateDer<'static>]>,
) -> Result<Vec<Principal>, corral_auth::AuthError> {
    match certs.and_then(|c| c.first()) {
        Some(leaf) => Ok(vec![CertIdentity::from_der(leaf)?.principal()]),
        None => Ok(Vec::new()),
    }
}

/// A log-friendly reason for a failed handshake.
fn handshake_reason(e: &std::io::Error) -> String {
    use rustls::{CertificateError, Error};
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) else {
        return e.to_string();
    };
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
            "client certificate is not issued by a trusted CA (tls_ca_file)".to_string()
        }
        Error::NoCertificatesPresented => {
            "no client certificate presented, and tls_client_auth = need".to_string()
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
    }
}
