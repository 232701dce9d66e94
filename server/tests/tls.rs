//! The TLS client listener: x509 principals from client certificates, client auth
//! modes, refusal of expired and untrusted certificates, per-IP limits, and server
//! certificate rotation without dropping sessions, and the same listener configured
//! from Java KeyStore (JKS) files. Certificates come from an rcgen CA, SSO-style
//! (SAN URI and email); the client is tokio-rustls plus raw frames.

mod common;
mod jks_writer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use common::{code, create_req, decode, eventually, run, within, Raw, STEP, SUPER_DIGEST};
use corral_proto::opcode::perms;
use corral_proto::{
    Acl, ConnectRequest, ConnectResponse, OpCode, Reader, Record, ReplyHeader, Request,
    RequestHeader, Response, Writer,
};
use corral_server::{
    CaSource, ClientAuth, KeySource, Node, ServerOptions, TlsOptions, TlsReloader,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

// ---- PKI ----

/// A test CA that issues server and client certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate with its key, as DER and PEM.
struct Leaf {
    der: CertificateDer<'static>,
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn new(cn: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&[(DnType::CommonName, cn)]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn sign(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Leaf {
            der: cert.der().clone(),
            pem: cert.pem(),
            key,
        }
    }

    fn server(&self, cn: &str) -> Leaf {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.distinguished_name = dn(&[(DnType::CommonName, cn)]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// An SSO-style client certificate: CN/OU/O subject, SAN URI and email.
    fn client(&self, cn: &str, team: &str) -> Leaf {
        self.sign(client_params(cn, team))
    }
}

fn dn(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, value) in parts {
        dn.push(ty.clone(), *value);
    }
    dn
}

fn client_params(cn: &str, team: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(&[
        (DnType::OrganizationName, "Corp"),
        (DnType::OrganizationalUnitName, team),
        (DnType::CommonName, cn),
    ]);
    params.subject_alt_names = vec![
        SanType::URI(
            format!("spiffe://corp/{team}/{cn}")
                .try_into()
                .expect("uri"),
        ),
        SanType::Rfc822Name(format!("{cn}@{team}.corp").try_into().expect("email")),
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

/// The DN corral (and Java) prints for [`client_params`].
fn client_dn(cn: &str, team: &str) -> String {
    format!("CN={cn},OU={team},O=Corp")
}

/// Files the server reads: its cert, key, and the client CA bundle.
struct ServerFiles {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl ServerFiles {
    fn write(dir: &Path, server: &Leaf, client_ca: &Ca) -> ServerFiles {
        let files = ServerFiles {
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            ca: dir.join("clients-ca.pem"),
        };
        files.install(server);
        std::fs::write(&files.ca, client_ca.pem()).expect("write CA");
        files
    }

    /// Replaces the server cert and key (key first, then cert, as a careful operator would).
    fn install(&self, server: &Leaf) {
        std::fs::write(&self.key, server.key.serialize_pem()).expect("write key");
        std::fs::write(&self.cert, &server.pem).expect("write cert");
    }
}

// ---- node ----

/// An in-process node with a TLS listener. Dropping it stops the node.
struct TlsNode {
    plain: SocketAddr,
    secure: SocketAddr,
    reloader: Arc<TlsReloader>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TlsNode {
    fn start(files: &ServerFiles, tweak: impl FnOnce(&mut ServerOptions, &mut TlsOptions)) -> Self {
        let tls = TlsOptions::new(
            "127.0.0.1:0".parse().unwrap(),
            files.cert.clone(),
            files.key.clone(),
            Some(files.ca.clone()),
        );
        Self::start_with(tls, tweak)
    }

    /// Starts with `tls` (client auth `need`, no polling), then `tweak`.
    fn start_with(
        mut tls: TlsOptions,
        tweak: impl FnOnce(&mut ServerOptions, &mut TlsOptions),
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = common::fast_options(dir.path().join("data"));
        tls.client_auth = ClientAuth::Need;
        tls.reload_interval_ms = 0;
        tweak(&mut opts, &mut tls);
        type Ready = Result<(SocketAddr, SocketAddr, Arc<TlsReloader>), String>;
        let (ready_tx, ready_rx) = std_mpsc::channel::<Ready>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("node runtime");
            rt.block_on(async move {
                let supers = corral_auth::SuperUsers::new(&[], Some(SUPER_DIGEST)).expect("su");
                let node = match Node::start_with_tls(opts, supers, Some(tls)).await {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let ready = (
                    node.local_addr().expect("addr"),
                    node.secure_addr().expect("secure addr"),
                    node.tls_reloader().expect("reloader"),
                );
                let _ = ready_tx.send(Ok(ready));
                tokio::select! {
                    _ = node.run() => {}
                    _ = stop_rx => {}
                }
            });
            rt.shutdown_timeout(Duration::from_secs(2));
        });
        let (plain, secure, reloader) = match ready_rx.recv_timeout(STEP) {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => panic!("node failed to start: {e}"),
            Err(e) => panic!("node did not start in time: {e}"),
        };
        TlsNode {
            plain,
            secure,
            reloader,
            stop: Some(stop_tx),
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for TlsNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---- client ----

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS client that trusts `server_ca` and presents `cert`, if any.
fn connector(server_ca: &Ca, cert: Option<&Leaf>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca.issuer.der().clone()).expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match cert {
        Some(leaf) => {
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key.serialize_der()));
            builder
                .with_client_auth_cert(vec![leaf.der.clone()], key)
                .expect("client cert")
        }
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

/// A hand-driven ZooKeeper session over any stream.
struct Session<S> {
    stream: S,
    next_xid: i32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    async fn open(mut stream: S) -> std::io::Result<(Session<S>, ConnectResponse)> {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 6000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        };
        let mut w = Writer::framed();
        req.write(&mut w);
        stream.write_all(&w.finish_frame()).await?;
        stream.flush().await?;
        let body = read_body(&mut stream).await?;
        let rsp = ConnectResponse::from_bytes(&body)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        Ok((
            Session {
                stream,
                next_xid: 1,
            },
            rsp,
        ))
    }

    async fn call(&mut self, req: &Request) -> (ReplyHeader, Vec<u8>) {
        let xid = self.next_xid;
        self.next_xid += 1;
        let mut w = Writer::framed();
        RequestHeader {
            xid,
            op: req.opcode().code(),
        }
        .write(&mut w);
        req.encode(&mut w);
        self.stream
            .write_all(&w.finish_frame())
            .await
            .expect("send");
        self.stream.flush().await.expect("flush");
        loop {
            let body = within("reply", read_body(&mut self.stream))
                .await
                .expect("read reply");
            let hdr = ReplyHeader::read(&mut Reader::new(&body)).expect("header");
            if hdr.xid == xid {
                return (hdr, body[16..].to_vec());
            }
        }
    }

    async fn who_am_i(&mut self) -> Vec<(String, String)> {
        let (hdr, body) = self.call(&Request::WhoAmI).await;
        assert_eq!(hdr.err, code::OK);
        match decode(OpCode::WhoAmI, &body) {
            Response::WhoAmI(infos) => infos.into_iter().map(|i| (i.auth_scheme, i.user)).collect(),
            other => panic!("unexpected whoAmI reply {other:?}"),
        }
    }

    async fn get_data(&mut self, path: &str) -> i32 {
        let req = Request::GetData(common::path_watch(path, false));
        self.call(&req).await.0.err
    }
}

async fn read_body<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let n = usize::try_from(i32::from_be_bytes(len))
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "negative length"))?;
    let mut body = vec![0u8; n];
    s.read_exact(&mut body).await?;
    Ok(body)
}

/// TLS handshake plus ZooKeeper handshake; Err says where it failed.
async fn try_connect(
    addr: SocketAddr,
    tls: &TlsConnector,
) -> Result<Session<TlsStream<TcpStream>>, String> {
    within("TLS connect", async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("tcp: {e}"))?;
        let name = ServerName::try_from("localhost").expect("name");
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        // With TLS 1.3 the server judges the client certificate after the client
        // thinks the handshake is done, so a refusal shows up on the first read.
        let (session, rsp) = Session::open(stream)
            .await
            .map_err(|e| format!("session: {e}"))?;
        if rsp.session_id == 0 {
            return Err("session refused".to_string());
        }
        Ok(session)
    })
    .await
}

/// A session whose certificate has bound it to `tenant` (whoAmI names it).
/// Tenants given at start are written one after the other, so a session
/// opened at once may find its tenant missing, and be refused or (when a
/// less specific rule of another tenant matches too) bound elsewhere; retry
/// with a fresh connection.
async fn connect_bound(
    addr: SocketAddr,
    tls: &TlsConnector,
    tenant: &str,
) -> Session<TlsStream<TcpStream>> {
    for _ in 0..100 {
        let mut s = connect(addr, tls).await;
        let (hdr, body) = s.call(&Request::WhoAmI).await;
        if hdr.err == code::OK {
            if let Response::WhoAmI(ids) = decode(OpCode::WhoAmI, &body) {
                if ids.iter().any(|i| i.user == tenant) {
                    return s;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the certificate never bound a session to {tenant}");
}

async fn connect(addr: SocketAddr, tls: &TlsConnector) -> Session<TlsStream<TcpStream>> {
    match try_connect(addr, tls).await {
        Ok(s) => s,
        Err(e) => panic!("TLS connection failed: {e}"),
    }
}

fn server_cert_of(s: &Session<TlsStream<TcpStream>>) -> CertificateDer<'static> {
    s.stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("server certs")[0]
        .clone()
}

// ---- tests ----

#[test]
fn client_cert_dn_is_the_x509_principal_and_acl_identity() {
    // Goal: a verified client cert gives ("x509", RFC 2253 DN); an x509 ACL admits only that DN.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let files = ServerFiles::write(dir.path(), &ca.server("corral-1"), &ca);
    let node = TlsNode::start(&files, |_, _| {});
    let alice = ca.client("svc-a", "team-a");
    let bob = ca.client("svc-b", "team-b");
    run(async {
        let mut a = connect(node.secure, &connector(&ca, Some(&alice))).await;
        let dn_a = client_dn("svc-a", "team-a");
        let who = a.who_am_i().await;
        assert_eq!(
            who,
            [
                ("ip".to_string(), "127.0.0.1".to_string()),
                ("x509".to_string(), dn_a.clone()),
            ]
        );
        let mut create = create_req("/team-a", b"secret", 0);
        create.acl = vec![Acl::new(perms::ALL, "x509", &dn_a)];
        let (hdr, _) = a.call(&Request::Create(OpCode::Create, create)).await;
        assert_eq!(hdr.err, code::OK);
        assert_eq!(a.get_data("/team-a").await, code::OK);

        let mut b = connect(node.secure, &connector(&ca, Some(&bob))).await;
        assert_eq!(
            b.who_am_i().await[1],
            ("x509".to_string(), client_dn("svc-b", "team-b"))
        );
        assert_eq!(b.get_data("/team-a").await, code::NO_AUTH);

        let mut plain = Raw::connect(node.plain, 6000).await;
        let (_, hdr, _) = plain
            .call(&Request::GetData(common::path_watch("/team-a", false)))
            .await;
        assert_eq!(hdr.err, code::NO_AUTH, "plain TCP has no x509 identity");
    });
}

#[test]
fn client_cert_from_another_ca_is_refused() {
    // Goal: a client cert not issued by tls_ca_file is refused at the handshake.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let rogue = Ca::new("rogue CA");
    let files = ServerFiles::write(dir.path(), &ca.server("corral-1"), &ca);
    let node = TlsNode::start(&files, |_, _| {});
    let mallory = rogue.client("svc-a", "team-a");
    run(async {
        let err = try_connect(node.secure, &connector(&ca, Some(&mallory)))
            .await
            .err()
            .expect("refused");
        assert!(!err.starts_with("tcp"), "{err}");
        // The listener keeps serving good clients.
        connect(
            node.secure,
            &connector(&ca, Some(&ca.client("ok", "team-a"))),
        )
        .await;
    });
}

#[test]
fn expired_client_cert_is_refused() {
    // Goal: a client cert from the right CA but past its notAfter is refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let files = ServerFiles::write(dir.path(), &ca.server("corral-1"), &ca);
    let node = TlsNode::start(&files, |_, _| {});
    let mut params = client_params("old", "team-a");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let expired = ca.sign(params);
    run(async {
        let err = try_connect(node.secure, &connector(&ca, Some(&expired)))
            .await
            .err()
            .expect("refused");
        assert!(!err.starts_with("tcp"), "{err}");
    });
}

#[test]
fn need_refuses_a_client_without_a_cert() {
    // Goal: with client_auth = need, a client that presents no certificate is refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let files = ServerFiles::write(dir.path(), &ca.server("corral-1"), &ca);
    let node = TlsNode::start(&files, |_, tls| tls.client_auth = ClientAuth::Need);
    run(async {
        let err = try_connect(node.secure, &connector(&ca, None))
            .await
            .err()
            .expect("refused");
        assert!(!err.starts_with("tcp"), "{err}");
    });
}

#[test]
fn want_accepts_a_client_without_a_cert_with_no_x509_principal() {
    // Goal: with client_auth = want, a cert-less client connects with only its ip principal.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let files = ServerFiles::write(dir.path(), &ca.server("corral-1"), &ca);
    let node = TlsNode::start(&files, |_, tls| tls.client_auth = ClientAuth::Want);
    let expired = {
        let mut p = client_params("old", "team-a");
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        ca.sign(p)
    };
    run(async {
        let mut s = connect(node.secure, &connector(&ca, None)).await;
        assert_eq!(
            s.who_am_i().await,
            [("ip".to_string(), "127.0.0.1".to_string())]
        );
        // want still refuses a certificate that is presented but invalid.
        assert!(try_connect(node.secure, &connector(&ca, Some(&expired)))
            .await
            .is_err());
        let mut c = connect(node.secure, &connector(&ca, Some(&ca.client("x", "t")))).await;
        assert_eq!(c.who_am_i().await.len(), 2);
    });
}

#[test]
fn per_ip_limit_applies_to_tls_connections() {
    // Goal: max_client_cnxns counts TLS and plain connections from one IP together.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let files = ServerFiles::write(dir.path(), &ca.server("corral-1"), &ca);
    let node = TlsNode::start(&files, |opts, _| opts.max_client_cnxns = 2);
    let cert = ca.client("svc-a", "team-a");
    run(async {
        let _plain = Raw::connect(node.plain, 6000).await;
        let _one = connect(node.secure, &connector(&ca, Some(&cert))).await;
        assert!(
            try_connect(node.secure, &connector(&ca, Some(&cert)))
                .await
                .is_err(),
            "third connection from 127.0.0.1 is over the limit"
        );
    });
}

#[test]
fn server_cert_rotation_keeps_sessions() {
    // Goal: new server cert files are picked up by reload (explicit and by mtime poll); old sessions live on.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let first = ca.server("corral-1");
    let files = ServerFiles::write(dir.path(), &first, &ca);
    let node = TlsNode::start(&files, |_, tls| tls.reload_interval_ms = 100);
    let cert = ca.client("svc-a", "team-a");
    let tls = connector(&ca, Some(&cert));
    run(async {
        let mut old = connect(node.secure, &tls).await;
        assert_eq!(server_cert_of(&old), first.der);
        let (hdr, _) = old
            .call(&Request::Create(OpCode::Create, create_req("/r", b"", 0)))
            .await;
        assert_eq!(hdr.err, code::OK);

        // Rotation picked up by the mtime poll.
        let second = ca.server("corral-2");
        files.install(&second);
        let reloads = node.reloader.reloads();
        eventually("poll reload", STEP, || async {
            node.reloader.reloads() > reloads
        })
        .await;
        let fresh = connect(node.secure, &tls).await;
        assert_eq!(server_cert_of(&fresh), second.der);
        assert_eq!(
            old.get_data("/r").await,
            code::OK,
            "old session still works"
        );

        // Rotation by an explicit reload (what SIGHUP does).
        let third = ca.server("corral-3");
        files.install(&third);
        node.reloader.reload().expect("reload");
        let newest = connect(node.secure, &tls).await;
        assert_eq!(server_cert_of(&newest), third.der);
        assert_eq!(
            old.get_data("/r").await,
            code::OK,
            "old session still works"
        );

        // A broken key keeps the current certificate.
        std::fs::write(&files.key, "not a key").expect("write");
        assert!(node.reloader.reload().is_err());
        let after = connect(node.secure, &tls).await;
        assert_eq!(server_cert_of(&after), third.der);
    });
}

#[test]
fn server_cert_rotation_keeps_tenant_bound_sessions_bound() {
    // Goal: rotating the server certificate (an explicit reload, what SIGHUP
    // does) leaves tenant-bound sessions connected and bound to the same
    // tenant, each still in its own namespace; new sessions see the new
    // certificate and bind the same way.
    use corral_tenant::X509Rule;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let files = ServerFiles::write(dir.path(), &ca.server("corral-1"), &ca);
    let node = two_tenant_node(
        &files,
        X509Rule::SanUri {
            pattern: "spiffe://corp/team-a/*".into(),
        },
        X509Rule::SanEmail {
            pattern: "*@team-b.corp".into(),
        },
    );
    let alice = connector(&ca, Some(&ca.client("svc-a", "team-a")));
    let bob = connector(&ca, Some(&ca.client("svc-b", "team-b")));
    run(async {
        async fn data(s: &mut Session<TlsStream<TcpStream>>, path: &str) -> Vec<u8> {
            let (hdr, body) = s
                .call(&Request::GetData(common::path_watch(path, false)))
                .await;
            assert_eq!(hdr.err, code::OK, "getData {path}");
            match decode(OpCode::GetData, &body) {
                Response::Data(Some(d), _) => d,
                other => panic!("getData {path}: {other:?}"),
            }
        }
        let mut a = connect_bound(node.secure, &alice, "team-a").await;
        let mut b = connect_bound(node.secure, &bob, "team-b").await;
        for (s, v) in [(&mut a, b"a"), (&mut b, b"b")] {
            let (hdr, _) = s
                .call(&Request::Create(OpCode::Create, create_req("/x", v, 0)))
                .await;
            assert_eq!(hdr.err, code::OK);
        }
        let second = ca.server("corral-2");
        files.install(&second);
        node.reloader.reload().expect("reload");
        let mut fresh = connect_bound(node.secure, &alice, "team-a").await;
        assert_eq!(server_cert_of(&fresh), second.der);
        assert_eq!(data(&mut fresh, "/x").await, b"a");
        assert!(
            a.who_am_i().await.iter().any(|(_, v)| v == "team-a"),
            "still bound after the rotation"
        );
        assert_eq!(data(&mut a, "/x").await, b"a");
        assert_eq!(data(&mut b, "/x").await, b"b");
        assert!(b.who_am_i().await.iter().any(|(_, v)| v == "team-b"));
    });
}

#[test]
fn bad_tls_files_stop_the_node_from_starting() {
    // Goal: a missing cert file or need-without-CA is a start-up error naming the problem.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let files = ServerFiles::write(dir.path(), &ca.server("corral-1"), &ca);
    let mut tls = TlsOptions::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().join("missing.pem"),
        files.key.clone(),
        None,
    );
    let err = corral_server::tls::build_config(&tls).expect_err("missing file");
    assert!(err.to_string().contains("missing.pem"), "{err}");
    tls.identity = KeySource::Pem {
        cert_file: files.cert.clone(),
        key_file: files.key.clone(),
    };
    tls.client_auth = ClientAuth::Need;
    let err = corral_server::tls::build_config(&tls).expect_err("need without CA");
    assert!(err.to_string().contains("tls_ca_file"), "{err}");
    tls.client_auth = ClientAuth::None;
    assert!(corral_server::tls::build_config(&tls).is_ok());
}

// ---- JKS key and trust stores ----

const JKS_PASSWORD: &str = "apassword";

/// A JKS key store (server key, chain leaf + CA) and trust store (the client CA).
struct JksFiles {
    key_store: PathBuf,
    trust_store: PathBuf,
}

impl JksFiles {
    fn write(dir: &Path, server: &Leaf, ca: &Ca) -> JksFiles {
        let files = JksFiles {
            key_store: dir.join("keystore.jks"),
            trust_store: dir.join("truststore.jks"),
        };
        files.install(server, ca, JKS_PASSWORD);
        let trust = jks_writer::write(
            &[jks_writer::Entry::cert("kazoo ca", ca.issuer.der())],
            JKS_PASSWORD,
            2,
        );
        std::fs::write(&files.trust_store, trust).expect("write trust store");
        files
    }

    /// Rewrites the key store with `server`, sealed with `password`.
    fn install(&self, server: &Leaf, ca: &Ca, password: &str) {
        let store = jks_writer::write(
            &[jks_writer::Entry::key(
                "server cert",
                &server.key.serialize_der(),
                &[&server.der, ca.issuer.der()],
            )],
            password,
            2,
        );
        std::fs::write(&self.key_store, store).expect("write key store");
    }

    fn options(&self) -> TlsOptions {
        TlsOptions::with_sources(
            "127.0.0.1:0".parse().unwrap(),
            KeySource::Jks {
                file: self.key_store.clone(),
                password: JKS_PASSWORD.to_string(),
            },
            Some(CaSource::Jks {
                file: self.trust_store.clone(),
                password: Some(JKS_PASSWORD.to_string()),
            }),
        )
    }
}

#[test]
fn jks_configured_listener_accepts_tls_clients() {
    // Goal: a listener whose key, chain and client CAs come from JKS files serves a TLS client with its x509 identity and refuses cert-less clients under need.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let server = ca.server("corral-1");
    let files = JksFiles::write(dir.path(), &server, &ca);
    let node = TlsNode::start_with(files.options(), |_, _| {});
    let alice = ca.client("svc-a", "team-a");
    run(async {
        let mut s = connect(node.secure, &connector(&ca, Some(&alice))).await;
        assert_eq!(
            server_cert_of(&s),
            server.der,
            "the key store's leaf is served"
        );
        assert_eq!(
            s.who_am_i().await[1],
            ("x509".to_string(), client_dn("svc-a", "team-a"))
        );
        let (hdr, _) = s
            .call(&Request::Create(
                OpCode::Create,
                create_req("/jks", b"x", 0),
            ))
            .await;
        assert_eq!(hdr.err, code::OK);
        assert!(try_connect(node.secure, &connector(&ca, None))
            .await
            .is_err());
        let rogue = Ca::new("rogue CA");
        assert!(
            try_connect(node.secure, &connector(&ca, Some(&rogue.client("m", "t"))))
                .await
                .is_err(),
            "only the trust store's CA is trusted"
        );
    });
}

#[test]
fn jks_key_store_rotation_reloads_and_bad_store_keeps_the_old_one() {
    // Goal: a rewritten JKS key store is picked up by the mtime poll and by reload(); one sealed with another password fails the reload and the old certificate stays.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let first = ca.server("corral-1");
    let files = JksFiles::write(dir.path(), &first, &ca);
    let node = TlsNode::start_with(files.options(), |_, tls| tls.reload_interval_ms = 100);
    let tls = connector(&ca, Some(&ca.client("svc-a", "team-a")));
    run(async {
        let old = connect(node.secure, &tls).await;
        assert_eq!(server_cert_of(&old), first.der);

        let second = ca.server("corral-2");
        files.install(&second, &ca, JKS_PASSWORD);
        let reloads = node.reloader.reloads();
        eventually("poll reload", STEP, || async {
            node.reloader.reloads() > reloads
        })
        .await;
        assert_eq!(
            server_cert_of(&connect(node.secure, &tls).await),
            second.der
        );

        let third = ca.server("corral-3");
        files.install(&third, &ca, JKS_PASSWORD);
        node.reloader.reload().expect("reload");
        assert_eq!(server_cert_of(&connect(node.secure, &tls).await), third.der);

        files.install(&ca.server("corral-4"), &ca, "another password");
        let err = node.reloader.reload().expect_err("wrong password");
        assert!(
            err.to_string()
                .contains("keystore integrity check failed: wrong password or corrupt file"),
            "{err}"
        );
        assert_eq!(server_cert_of(&connect(node.secure, &tls).await), third.der);
        drop(old);
    });
}

// ---- X.509 v1 client certificates ----

use corral_server::jks::der_wrap;

/// The elements of a DER sequence's content: each as (tag, whole TLV).
fn der_elements(mut content: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (header, len) = match content[1] {
            n if n < 0x80 => (2, usize::from(n)),
            n => {
                let k = usize::from(n & 0x7f);
                let len = content[2..2 + k]
                    .iter()
                    .fold(0usize, |a, b| (a << 8) | usize::from(*b));
                (2 + k, len)
            }
        };
        out.push((content[0], &content[..header + len]));
        content = &content[header + len..];
    }
    out
}

/// The content of a DER element.
fn der_content(whole: &[u8]) -> &[u8] {
    let header = match whole[1] {
        n if n < 0x80 => 2,
        n => 2 + usize::from(n & 0x7f),
    };
    &whole[header..]
}

/// An X.509 v1 certificate for `params`, signed by `signer` (as kazoo's harness
/// makes them): rcgen's v3 certificate with its `[0] version` and `[3] extensions`
/// dropped, re-signed with the signer's key.
fn v1_leaf(signer: &CertifiedIssuer<'static, KeyPair>, params: CertificateParams) -> Leaf {
    v1_leaf_with_key(signer, params, KeyPair::generate().expect("key"))
}

fn v1_leaf_with_key(
    signer: &CertifiedIssuer<'static, KeyPair>,
    params: CertificateParams,
    key: KeyPair,
) -> Leaf {
    use rcgen::SigningKey;
    let v3 = params.signed_by(&key, signer).expect("sign");
    let cert = der_elements(der_content(v3.der()));
    let (tbs, sig_alg) = (cert[0].1, cert[1].1);
    let fields: Vec<u8> = der_elements(der_content(tbs))
        .into_iter()
        .filter(|(tag, _)| *tag != 0xA0 && *tag != 0xA3)
        .flat_map(|(_, whole)| whole.to_vec())
        .collect();
    let tbs = der_wrap(0x30, &fields);
    let mut bits = vec![0];
    bits.extend(signer.key().sign(&tbs).expect("signature"));
    let der = der_wrap(
        0x30,
        &[tbs, sig_alg.to_vec(), der_wrap(0x03, &bits)].concat(),
    );
    let tbs_first = der_elements(der_content(der_elements(der_content(&der))[0].1))[0].0;
    assert_eq!(
        tbs_first, 0x02,
        "the TBS starts with the serial: no version, v1"
    );
    Leaf {
        der: CertificateDer::from(der),
        key,
        // Client certificates are handed to rustls as DER, never written out.
        pem: String::new(),
    }
}

/// A v1 client certificate (CN/OU/O subject, no SANs: v1 has no extensions).
fn v1_client(signer: &CertifiedIssuer<'static, KeyPair>, cn: &str, team: &str) -> Leaf {
    v1_leaf(signer, client_params(cn, team))
}

/// A TLS client that presents `chain` (leaf first) with `key`, limited to
/// `version`. rustls' `with_client_auth_cert` would refuse a v1 leaf (it checks the
/// key against the certificate with webpki), so the key is paired up directly.
fn chain_connector(
    server_ca: &Ca,
    chain: Vec<CertificateDer<'static>>,
    key: &KeyPair,
    version: &'static rustls::SupportedProtocolVersion,
) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca.issuer.der().clone()).expect("root");
    let provider = provider();
    let signing_key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        )))
        .expect("key");
    let certified = rustls::sign::CertifiedKey::new(chain, signing_key);
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    TlsConnector::from(Arc::new(config))
}

fn v1_connector(
    server_ca: &Ca,
    leaf: &Leaf,
    version: &'static rustls::SupportedProtocolVersion,
) -> TlsConnector {
    chain_connector(server_ca, vec![leaf.der.clone()], &leaf.key, version)
}

const VERSIONS: [&rustls::SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];

#[test]
fn v1_client_cert_issued_by_the_ca_is_accepted_with_its_x509_principal() {
    // Goal: an X.509 v1 client certificate signed directly by the client CA (as kazoo's harness makes them, and as Java accepts) completes the TLS 1.3 and TLS 1.2 handshakes and yields ("x509", subject DN), which x509 ACLs match; v3 clients are unaffected.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let files = ServerFiles::write(dir.path(), &ca.server("corral-1"), &ca);
    let node = TlsNode::start(&files, |_, _| {});
    let alice = v1_client(&ca.issuer, "svc-a", "team-a");
    run(async {
        for version in VERSIONS {
            let mut a = connect(node.secure, &v1_connector(&ca, &alice, version)).await;
            assert_eq!(
                a.who_am_i().await,
                [
                    ("ip".to_string(), "127.0.0.1".to_string()),
                    ("x509".to_string(), client_dn("svc-a", "team-a")),
                ],
                "{version:?}"
            );
        }
        let mut a = connect(
            node.secure,
            &v1_connector(&ca, &alice, &rustls::version::TLS13),
        )
        .await;
        let mut create = create_req("/v1", b"secret", 0);
        create.acl = vec![Acl::new(perms::ALL, "x509", &client_dn("svc-a", "team-a"))];
        let (hdr, _) = a.call(&Request::Create(OpCode::Create, create)).await;
        assert_eq!(hdr.err, code::OK);
        assert_eq!(a.get_data("/v1").await, code::OK);
        // A v3 client of another identity is still judged by webpki, and the ACL.
        let mut b = connect(
            node.secure,
            &connector(&ca, Some(&ca.client("svc-b", "team-b"))),
        )
        .await;
        assert_eq!(b.get_data("/v1").await, code::NO_AUTH);
    });
}

#[test]
fn v1_client_cert_with_a_jks_trust_store_is_accepted() {
    // Goal: the v1 path works when the client CA comes from a JKS trust store (kazoo's configuration).
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let files = JksFiles::write(dir.path(), &ca.server("corral-1"), &ca);
    let node = TlsNode::start_with(files.options(), |_, _| {});
    let alice = v1_client(&ca.issuer, "svc-a", "team-a");
    run(async {
        let mut a = connect(
            node.secure,
            &v1_connector(&ca, &alice, &rustls::version::TLS13),
        )
        .await;
        assert_eq!(
            a.who_am_i().await[1],
            ("x509".to_string(), client_dn("svc-a", "team-a"))
        );
    });
}

#[test]
fn v1_client_certs_failing_a_check_are_refused() {
    // Goal: v1 client certificates are refused when signed by another CA (even one with the trusted CA's DN), expired, carrying a tampered signature, issued by an intermediate (even one the client sends and that chains to the CA), or presented by a client without its private key; the listener keeps serving good v1 clients.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let files = ServerFiles::write(dir.path(), &ca.server("corral-1"), &ca);
    let node = TlsNode::start(&files, |_, tls| tls.client_auth = ClientAuth::Want);

    let rogue = Ca::new("rogue CA");
    let impostor = Ca::new("corral test CA");
    let expired = {
        let mut p = client_params("old", "team-a");
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        v1_leaf(&ca.issuer, p)
    };
    let tampered = {
        let mut leaf = v1_client(&ca.issuer, "svc-a", "team-a");
        let mut der = leaf.der.to_vec();
        let last = der.len() - 1;
        der[last] ^= 0x01;
        leaf.der = CertificateDer::from(der);
        leaf
    };
    let intermediate = {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&[(DnType::CommonName, "corral intermediate")]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        CertifiedIssuer::signed_by(params, KeyPair::generate().expect("key"), &ca.issuer)
            .expect("intermediate")
    };
    let via_intermediate = v1_client(&intermediate, "svc-i", "team-a");
    run(async {
        for version in VERSIONS {
            let refused = [
                (
                    "other CA",
                    v1_connector(&ca, &v1_client(&rogue.issuer, "svc-a", "team-a"), version),
                ),
                (
                    "same-DN impostor CA",
                    v1_connector(
                        &ca,
                        &v1_client(&impostor.issuer, "svc-a", "team-a"),
                        version,
                    ),
                ),
                ("expired", v1_connector(&ca, &expired, version)),
                ("tampered signature", v1_connector(&ca, &tampered, version)),
                (
                    "issued by an intermediate",
                    chain_connector(
                        &ca,
                        vec![via_intermediate.der.clone(), intermediate.der().clone()],
                        &via_intermediate.key,
                        version,
                    ),
                ),
            ];
            // The certificate is fine but the client does not hold its key: the
            // handshake signature (CertificateVerify) of a v1 leaf is checked too.
            let stolen = v1_client(&ca.issuer, "svc-a", "team-a");
            let wrong_key = KeyPair::generate().expect("key");
            let refused = refused.into_iter().chain([(
                "someone else's key",
                chain_connector(&ca, vec![stolen.der.clone()], &wrong_key, version),
            )]);
            for (what, tls) in refused {
                let err = try_connect(node.secure, &tls)
                    .await
                    .err()
                    .unwrap_or_else(|| panic!("{what} ({version:?}): v1 cert accepted"));
                assert!(!err.starts_with("tcp"), "{what}: {err}");
            }
            let good = v1_client(&ca.issuer, "ok", "team-a");
            connect(node.secure, &v1_connector(&ca, &good, version)).await;
        }
    });
}

#[test]
fn rsa_v1_client_cert_like_kazoos_is_accepted() {
    // Goal: kazoo's exact shape (RSA-2048 CA, RSA-2048 v1 client cert, SHA-256) works over TLS 1.3 (RSA-PSS handshake signature) and TLS 1.2; skipped when openssl is not available to make RSA keys.
    let rsa = || -> Option<KeyPair> {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let pem = String::from_utf8(out.stdout).ok()?;
        KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).ok()
    };
    let (Some(ca_key), Some(client_key)) = (rsa(), rsa()) else {
        eprintln!("openssl cannot make RSA keys here: RSA v1 test skipped");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(&[(DnType::CommonName, "ca.kazoo.org")]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = Ca {
        issuer: CertifiedIssuer::self_signed(params, ca_key).expect("CA"),
    };
    let files = ServerFiles::write(dir.path(), &ca.server("localhost"), &ca);
    let node = TlsNode::start(&files, |_, _| {});
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(&[(DnType::CommonName, "client")]);
    let client = v1_leaf_with_key(&ca.issuer, params, client_key);
    run(async {
        for version in VERSIONS {
            let mut s = connect(node.secure, &v1_connector(&ca, &client, version)).await;
            assert_eq!(
                s.who_am_i().await[1],
                ("x509".to_string(), "CN=client".to_string()),
                "{version:?}"
            );
        }
    });
}

/// A TLS node with tenants team-a and team-b, each bound by one x509 rule,
/// refusing sessions no tenant claims.
fn two_tenant_node(
    files: &ServerFiles,
    rule_a: corral_tenant::X509Rule,
    rule_b: corral_tenant::X509Rule,
) -> TlsNode {
    use corral_server::tenancy::UnboundPolicy;
    use corral_tenant::{Binding, Tenant};
    TlsNode::start(files, move |o, _| {
        let mut tenants = Vec::new();
        for (name, rule) in [("team-a", rule_a.clone()), ("team-b", rule_b.clone())] {
            let mut t = Tenant::new(name);
            t.bindings.push(Binding::X509 { rule });
            tenants.push(t);
        }
        o.tenancy.bootstrap = tenants;
        o.tenancy.unbound = UnboundPolicy::Refuse;
    })
}

#[test]
fn client_certificates_bind_sessions_to_tenants_by_subject_dn_and_cn() {
    // Goal: through TLS, a session binds by the subject DN in RFC 2253 form
    // (as Java's X500Principal.getName() prints it) or by the CN; a DN rule
    // beats a CN rule when one certificate matches both (the more specific
    // rule kind first); a certificate matching neither is refused under the
    // `refuse` policy; whoAmI names the tenant.
    use corral_tenant::X509Rule;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let files = ServerFiles::write(dir.path(), &ca.server("corral-1"), &ca);
    let node = two_tenant_node(
        &files,
        X509Rule::SubjectDn {
            dn: client_dn("svc-b", "team-a"),
        },
        X509Rule::Cn { cn: "svc-b".into() },
    );
    // Same CN, different OU: the first matches team-a's DN (and team-b's
    // CN), the second only team-b's CN.
    let by_dn = ca.client("svc-b", "team-a");
    let by_cn = ca.client("svc-b", "team-z");
    let neither = ca.client("svc-q", "team-q");
    run(async {
        let mut a = connect_bound(node.secure, &connector(&ca, Some(&by_dn)), "team-a").await;
        let (hdr, _) = a
            .call(&Request::Create(OpCode::Create, create_req("/x", b"a", 0)))
            .await;
        assert_eq!(hdr.err, code::OK);
        let who = a.who_am_i().await;
        assert!(
            who.iter().any(|(_, v)| v == "team-a"),
            "DN beats CN: {who:?}"
        );
        let mut b = connect_bound(node.secure, &connector(&ca, Some(&by_cn)), "team-b").await;
        let who = b.who_am_i().await;
        assert!(who.iter().any(|(_, v)| v == "team-b"), "CN rule: {who:?}");
        assert_eq!(
            b.get_data("/x").await,
            code::NO_NODE,
            "team-a's /x is not team-b's"
        );
        let mut c = connect(node.secure, &connector(&ca, Some(&neither))).await;
        let (hdr, _) = c
            .call(&Request::GetData(common::path_watch("/", false)))
            .await;
        assert_ne!(
            hdr.err,
            code::OK,
            "a certificate no tenant claims is refused"
        );
    });
}

#[test]
fn client_certificates_bind_sessions_to_tenants_by_san() {
    // Goal: on the TLS listener a session binds to the tenant whose x509 rule
    // its certificate matches (SAN URI glob for team-a, SAN email glob for
    // team-b), each sees only its own namespace under the same client paths,
    // whoAmI names the tenant, and a certificate no tenant claims is refused
    // under the `refuse` policy.
    use corral_tenant::X509Rule;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("corral test CA");
    let files = ServerFiles::write(dir.path(), &ca.server("corral-1"), &ca);
    let node = two_tenant_node(
        &files,
        X509Rule::SanUri {
            pattern: "spiffe://corp/team-a/*".into(),
        },
        X509Rule::SanEmail {
            pattern: "*@team-b.corp".into(),
        },
    );
    let alice = ca.client("svc-a", "team-a");
    let bob = ca.client("svc-b", "team-b");
    let carol = ca.client("svc-c", "team-c");
    run(async {
        let mut a = connect_bound(node.secure, &connector(&ca, Some(&alice)), "team-a").await;
        let (hdr, _) = a
            .call(&Request::Create(OpCode::Create, create_req("/x", b"a", 0)))
            .await;
        assert_eq!(hdr.err, code::OK);
        assert!(
            a.who_am_i().await.iter().any(|(_, v)| v == "team-a"),
            "whoAmI names the tenant"
        );
        let mut b = connect_bound(node.secure, &connector(&ca, Some(&bob)), "team-b").await;
        assert_eq!(
            b.get_data("/x").await,
            code::NO_NODE,
            "team-a's /x is not team-b's"
        );
        let (hdr, _) = b
            .call(&Request::Create(OpCode::Create, create_req("/x", b"b", 0)))
            .await;
        assert_eq!(hdr.err, code::OK);
        let (hdr, body) = a
            .call(&Request::GetData(common::path_watch("/x", false)))
            .await;
        assert_eq!(hdr.err, code::OK);
        match decode(OpCode::GetData, &body) {
            Response::Data(Some(d), _) => assert_eq!(d, b"a"),
            other => panic!("getData: {other:?}"),
        }
        let mut c = connect(node.secure, &connector(&ca, Some(&carol))).await;
        let (hdr, _) = c
            .call(&Request::GetData(common::path_watch("/", false)))
            .await;
        assert_ne!(
            hdr.err,
            code::OK,
            "a certificate no tenant claims is refused"
        );
    });
}
