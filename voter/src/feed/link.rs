//! The feed's QUIC side: one connection per downstream, which the
//! downstream dials.
//!
//! - A voter accepts feeds on its peer port: [`crate::net::Net`] tells the
//!   two protocols apart by ALPN ([`FEED_ALPN`] here, the peer protocol
//!   otherwise) and hands feed connections to [`serve_downstream`].
//! - An observer runs its own [`FeedEndpoint`]: it dials its upstream from
//!   it and, when it relays to observers of its own, accepts them on it.
//!
//! Both ends present CA-signed certificates naming their server id
//! ([`crate::certs::peer_id_of`]). A downstream dials by address only, so
//! it checks that the upstream's chain leads to the cluster CA and that the
//! certificate names some server, whichever it is; the upstream checks the
//! downstream's id against its hello and refuses voters' ids.
//!
//! Each direction is one unidirectional stream of frames (`u32` big-endian
//! length, then the bytes, at most [`FEED_MAX_FRAME`]). A protocol violation
//! closes the connection; the downstream redials and resumes.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, IdleTimeout, RecvStream, SendStream, TransportConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{FeedEvent, SubId, FEED_QUEUE};
use crate::certs::{peer_id_of, PeerTls};

/// ALPN of the observer feed.
pub const FEED_ALPN: &[u8] = b"corral-feed/1";
/// Largest feed frame, either way (txn frames are cut near 1 MiB, snapshot
/// chunks are 1 MiB; one txn is at most the client packet limit).
pub const FEED_MAX_FRAME: usize = 64 << 20;
const CLOSE_DONE: u32 = 0;
const CLOSE_PROTOCOL: u32 = 3;

/// Where feed events go: the upstream's driver queue. A full queue hands the
/// event back; the transport waits and retries (backpressure onto QUIC).
pub trait FeedSink: Send + Sync + 'static {
    fn deliver(&self, ev: FeedEvent) -> Result<(), FeedEvent>;
}

async fn deliver(sink: &dyn FeedSink, mut ev: FeedEvent) -> bool {
    let mut waited = 0u32;
    loop {
        match sink.deliver(ev) {
            Ok(()) => return true,
            Err(back) => {
                ev = back;
                waited += 1;
                // A driver that has been gone this long is not coming back.
                if waited > 60_000 {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

static NEXT_SUB: AtomicU64 = AtomicU64::new(1);

/// A fresh feed number, unique in this process.
pub fn next_sub() -> SubId {
    NEXT_SUB.fetch_add(1, Ordering::Relaxed)
}

/// Runs one accepted feed connection until it ends: announces it to the
/// driver, delivers its frames, writes what the driver queues, and reports
/// the close. `observer` is the id its certificate names.
pub fn serve_downstream(conn: Connection, observer: u64, sink: Arc<dyn FeedSink>) {
    tokio::spawn(async move {
        let sub = next_sub();
        let (out, rx) = mpsc::channel(FEED_QUEUE);
        if !deliver(sink.as_ref(), FeedEvent::Open { sub, observer, out }).await {
            conn.close(CLOSE_DONE.into(), b"upstream shutting down");
            return;
        }
        let reader = {
            let (conn, sink) = (conn.clone(), sink.clone());
            async move {
                let Ok(mut recv) = conn.accept_uni().await else {
                    return;
                };
                while let Some(frame) = read_frame(&conn, &mut recv).await {
                    if !deliver(sink.as_ref(), FeedEvent::Frame { sub, frame }).await {
                        return;
                    }
                }
            }
        };
        tokio::select! {
            _ = reader => {}
            _ = write_frames(conn.clone(), rx) => {}
        }
        conn.close(CLOSE_DONE.into(), b"feed closed");
        deliver(sink.as_ref(), FeedEvent::Closed { sub }).await;
    });
}

/// Reads one frame; `None` at the end of the stream or on a violation
/// (which closes the connection).
pub async fn read_frame(conn: &Connection, recv: &mut RecvStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.ok()?;
    let len = u32::from_be_bytes(len) as usize;
    if len > FEED_MAX_FRAME {
        warn!(remote = %conn.remote_address(), len, "feed frame over {FEED_MAX_FRAME} bytes; closing");
        conn.close(CLOSE_PROTOCOL.into(), b"frame too large");
        return None;
    }
    let mut frame = Vec::with_capacity(len.min(1 << 20));
    while frame.len() < len {
        match recv.read_chunk(len - frame.len(), true).await {
            Ok(Some(chunk)) => frame.extend_from_slice(&chunk.bytes),
            _ => return None,
        }
    }
    Some(frame)
}

/// Writes queued frames onto one stream until the queue's senders are all
/// gone (the driver dropped the feed) or the connection fails.
pub async fn write_frames(conn: Connection, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut stream: Option<SendStream> = None;
    while let Some(frame) = rx.recv().await {
        if stream.is_none() {
            stream = conn.open_uni().await.ok();
        }
        let Some(s) = stream.as_mut() else { return };
        let ok = async {
            s.write_all(&(frame.len() as u32).to_be_bytes()).await?;
            s.write_all(&frame).await
        }
        .await;
        if let Err(e) = ok {
            debug!(remote = %conn.remote_address(), "feed write failed: {e}");
            return;
        }
    }
    if let Some(mut s) = stream {
        let _ = s.finish();
        let _ = tokio::time::timeout(Duration::from_secs(1), s.stopped()).await;
    }
}

/// The feed's QUIC endpoint of an observer: it dials upstreams and, when
/// given an accept callback, takes feeds from observers below it.
#[derive(Clone)]
pub struct FeedEndpoint {
    endpoint: Endpoint,
    id: u64,
}

/// Feed transport timing: keep-alives and the idle timeout after which a
/// silent upstream counts as gone.
#[derive(Clone, Copy, Debug)]
pub struct FeedTiming {
    pub keep_alive: Duration,
    pub idle_timeout: Duration,
}

impl Default for FeedTiming {
    fn default() -> Self {
        FeedTiming {
            keep_alive: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(3),
        }
    }
}

impl FeedEndpoint {
    /// Binds `listen` (UDP). With `accept`, downstream feeds are accepted
    /// and handed over with the id their certificate names; ids in `refuse`
    /// (the voters) are turned away.
    pub fn bind(
        listen: SocketAddr,
        tls: &PeerTls,
        timing: FeedTiming,
        accept: Option<(Vec<u64>, Arc<dyn FeedSink>)>,
    ) -> Result<FeedEndpoint, String> {
        let id = tls
            .id()
            .map_err(|e| format!("this node's certificate: {e}"))?;
        let socket = UdpSocket::bind(listen)
            .map_err(|e| format!("cannot bind the feed port {listen}: {e}"))?;
        let (server, client) = feed_configs(tls, timing)?;
        let mut endpoint = Endpoint::new(
            quinn::EndpointConfig::default(),
            accept.is_some().then_some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|e| format!("feed endpoint on {listen}: {e}"))?;
        endpoint.set_default_client_config(client);
        if let Some((refuse, sink)) = accept {
            let ep = endpoint.clone();
            tokio::spawn(async move {
                while let Some(incoming) = ep.accept().await {
                    let (refuse, sink) = (refuse.clone(), sink.clone());
                    tokio::spawn(async move {
                        let remote = incoming.remote_address();
                        let conn = match incoming.await {
                            Ok(c) => c,
                            Err(e) => {
                                warn!(%remote, "feed handshake failed: {e}");
                                return;
                            }
                        };
                        match crate::net::identity_of(&conn) {
                            Ok(peer) if peer != id && !refuse.contains(&peer) => {
                                serve_downstream(conn, peer, sink)
                            }
                            Ok(peer) => {
                                warn!(%remote, peer, "refusing a feed from a voter or from this node's own id");
                                conn.close(CLOSE_PROTOCOL.into(), b"not an observer");
                            }
                            Err(e) => {
                                warn!(%remote, "refusing a feed: {e}");
                                conn.close(CLOSE_PROTOCOL.into(), b"bad certificate");
                            }
                        }
                    });
                }
            });
        }
        Ok(FeedEndpoint { endpoint, id })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }

    /// This node's server id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Dials an upstream; returns the server id its certificate names.
    pub async fn dial(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<(u64, Connection), String> {
        let connecting = self
            .endpoint
            .connect(addr, "corral-upstream")
            .map_err(|e| e.to_string())?;
        let conn = match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(format!("{addr}: {e}")),
            Err(_) => return Err(format!("{addr}: no answer within {timeout:?}")),
        };
        let id = crate::net::identity_of(&conn).map_err(|e| format!("{addr}: {e}"))?;
        if id == self.id {
            conn.close(CLOSE_PROTOCOL.into(), b"dialed self");
            return Err(format!("{addr} is this node itself"));
        }
        Ok((id, conn))
    }

    pub fn close(&self) {
        self.endpoint.close(CLOSE_DONE.into(), b"shutdown");
    }
}

/// The ALPN a connection agreed on.
pub fn alpn_of(conn: &Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

/// The QUIC transport settings of peer and feed connections: keep-alives,
/// the idle timeout, a low first RTT guess (peers are usually close), and
/// at most three unidirectional streams.
pub(crate) fn transport(timing: FeedTiming) -> Result<Arc<TransportConfig>, String> {
    let mut t = TransportConfig::default();
    t.keep_alive_interval(Some(timing.keep_alive))
        .initial_rtt(crate::net::INITIAL_RTT)
        .max_idle_timeout(Some(
            IdleTimeout::try_from(timing.idle_timeout).map_err(|e| e.to_string())?,
        ))
        .max_concurrent_bidi_streams(0u32.into())
        .max_concurrent_uni_streams((crate::net::Channel::ALL.len() as u32).into());
    Ok(Arc::new(t))
}

fn feed_configs(
    tls: &PeerTls,
    timing: FeedTiming,
) -> Result<(quinn::ServerConfig, quinn::ClientConfig), String> {
    let err = |what: &str, e: &dyn std::fmt::Display| format!("feed TLS {what}: {e}");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in tls.ca() {
        roots
            .add(ca.clone())
            .map_err(|e| err("bad CA certificate", &e))?;
    }
    let roots = Arc::new(roots);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| err("client verifier", &e))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err("versions", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(tls.chain().to_vec(), tls.key().clone_key())
        .map_err(|e| err("certificate and key", &e))?;
    server.alpn_protocols = vec![FEED_ALPN.to_vec()];
    let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err("versions", &e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyClusterServer { roots, provider }))
        .with_client_auth_cert(tls.chain().to_vec(), tls.key().clone_key())
        .map_err(|e| err("certificate and key", &e))?;
    client.alpn_protocols = vec![FEED_ALPN.to_vec()];
    let transport = transport(timing)?;
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::try_from(server).map_err(|e| err("QUIC server", &e))?,
    ));
    sc.transport_config(transport.clone());
    let mut cc = quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(client).map_err(|e| err("QUIC client", &e))?,
    ));
    cc.transport_config(transport);
    info!("feed TLS ready");
    Ok((sc, cc))
}

/// Accepts a server certificate that chains to the cluster CA and names a
/// corral server (`corral://server/<id>`), whatever its DNS names: an
/// observer is configured with upstream *addresses*, and any member of the
/// cluster may feed it. The usual WebPKI chain, validity and signature
/// checks all apply.
#[derive(Debug)]
struct AnyClusterServer {
    roots: Arc<RootCertStore>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for AnyClusterServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        peer_id_of(end_entity).map_err(|e| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(e),
            )))
        })?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
