//! X.509 **v1** client certificates, accepted the way Java (and so Apache ZooKeeper)
//! accepts them.
//!
//! webpki, which rustls uses to verify client certificates, parses only X.509 v3
//! certificates. Some tools still issue v1 client certificates, signed directly by a
//! CA with no extensions at all: kazoo's test harness does, and Java's
//! `PKIXValidator` accepts them. [`V1CompatVerifier`] wraps rustls'
//! `WebPkiClientVerifier` so corral accepts them too. This is always on, as in Java.
//!
//! **What is accepted.** Every certificate goes to webpki first; only when webpki
//! refuses it *and* the end-entity certificate is v1 (no `[0] version` field, or
//! version 0, as read by `x509-parser`) is this fallback tried. It accepts the
//! certificate only if all of these hold:
//!
//! - it is a well-formed v1 certificate: no issuer/subject unique IDs, no extensions,
//!   and the signature algorithm inside the TBS certificate is the outer one;
//! - its issuer DN is, byte for byte, the subject DN of one of the configured trust
//!   anchors (`tls_ca_file` / `tls_truststore_file`), that anchor has no name
//!   constraints, and the anchor's public key verifies the signature over the TBS
//!   certificate (RSA PKCS#1 and PSS with SHA-256/384/512, ECDSA P-256/P-384 with
//!   SHA-256/384, Ed25519: rustls' ring algorithms, with webpki's key-size limits);
//! - the current time lies within notBefore..=notAfter.
//!
//! Intermediate certificates the client sends are ignored on this path: a v1 leaf
//! must be issued **directly** by a trust anchor. Anything else keeps webpki's
//! verdict (v2 certificates, v3 certificates with v1 intermediates, ...).
//!
//! **Why this is safe.** A v1 certificate has no basicConstraints, keyUsage or
//! extendedKeyUsage extensions, so it can never act as a CA here: the fallback uses a
//! v1 certificate only as the leaf and never as an issuer, and only a configured
//! trust anchor's key can vouch for it. What is lost compared with a v3 leaf is the
//! CA's ability to restrict the leaf's key usage or purpose, which a CA that issues
//! v1 certificates has not expressed anyway. Anchors with name constraints are not
//! used for v1 leaves, since those constraints would not be checked.
//!
//! **The handshake signature** (CertificateVerify) of a v1 leaf is checked with the
//! leaf's public key and the same algorithm tables rustls uses (webpki would again
//! refuse to parse the certificate); for v3 leaves it goes to webpki unchanged. Root
//! hint subjects, supported schemes and whether a certificate is mandatory are
//! webpki's.
//!
//! A refused v1 certificate fails the handshake with a [`V1Refusal`], which the
//! listener logs as the reason of its "TLS handshake refused" line.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, PeerMisbehaved,
    RootCertStore, SignatureScheme,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Version;

/// A client certificate verifier that is webpki's, plus directly-issued X.509 v1 leaves.
#[derive(Debug)]
pub struct V1CompatVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    roots: Arc<RootCertStore>,
    algs: WebPkiSupportedAlgorithms,
}

impl V1CompatVerifier {
    /// `inner` must verify against `roots` (it is what v3 certificates go through);
    /// `algs` are the provider's signature verification algorithms.
    pub fn new(
        inner: Arc<dyn ClientCertVerifier>,
        roots: Arc<RootCertStore>,
        algs: WebPkiSupportedAlgorithms,
    ) -> V1CompatVerifier {
        V1CompatVerifier { inner, roots, algs }
    }

    /// The v1 path: the leaf must be issued directly by a trust anchor.
    fn verify_v1(
        &self,
        cert: &X509Certificate<'_>,
        der: &[u8],
        intermediates: usize,
        now: UnixTime,
    ) -> Result<(), V1Refusal> {
        let tbs = &cert.tbs_certificate;
        if tbs.issuer_uid.is_some() || tbs.subject_uid.is_some() || !tbs.extensions().is_empty() {
            return Err(V1Refusal::Malformed(
                "it carries unique IDs or extensions, which v1 does not have".to_string(),
            ));
        }
        let parts = CertParts::parse(der)
            .ok_or_else(|| V1Refusal::Malformed("not a DER certificate".to_string()))?;
        if parts.tbs_sig_alg != parts.sig_alg {
            return Err(V1Refusal::Malformed(
                "its inner and outer signature algorithms differ".to_string(),
            ));
        }
        let issuer_raw = cert.issuer().as_raw();
        let issuer = corral_auth::x509::rfc2253_from_name_der(issuer_raw)
            .unwrap_or_else(|_| cert.issuer().to_string());
        let issuer_value = tlv(issuer_raw)
            .filter(|t| t.tag == TAG_SEQUENCE && t.rest.is_empty())
            .map(|t| t.content)
            .ok_or_else(|| V1Refusal::Malformed("bad issuer name".to_string()))?;

        let anchors: Vec<&TrustAnchor<'_>> = self
            .roots
            .roots
            .iter()
            .filter(|a| a.subject.as_ref() == issuer_value)
            .collect();
        if anchors.is_empty() {
            return Err(V1Refusal::NotDirectlyIssued {
                issuer,
                intermediates,
            });
        }
        // Several anchors may share a DN (a CA rollover): any one of them may vouch.
        let mut refusal: Option<AnchorMismatch> = None;
        for anchor in anchors {
            match self.signed_by(anchor, &parts) {
                Ok(()) => {
                    refusal = None;
                    break;
                }
                Err(e) => {
                    // Report the most specific reason.
                    if refusal.is_none_or(|r| r.rank() < e.rank()) {
                        refusal = Some(e);
                    }
                }
            }
        }
        match refusal {
            None => {}
            Some(AnchorMismatch::NameConstrained) => {
                return Err(V1Refusal::NameConstrainedAnchor { issuer })
            }
            Some(AnchorMismatch::UnsupportedAlgorithm) => {
                return Err(V1Refusal::UnsupportedAlgorithm { issuer })
            }
            Some(AnchorMismatch::BadSignature) => return Err(V1Refusal::BadSignature { issuer }),
        }

        let validity = cert.validity();
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now_secs < validity.not_before.timestamp() {
            return Err(V1Refusal::NotValidYet {
                not_before: validity.not_before.to_string(),
            });
        }
        if now_secs > validity.not_after.timestamp() {
            return Err(V1Refusal::Expired {
                not_after: validity.not_after.to_string(),
            });
        }
        Ok(())
    }

    /// Whether `anchor`'s key signed the certificate.
    fn signed_by(
        &self,
        anchor: &TrustAnchor<'_>,
        parts: &CertParts<'_>,
    ) -> Result<(), AnchorMismatch> {
        if anchor.name_constraints.is_some() {
            return Err(AnchorMismatch::NameConstrained);
        }
        let (key_alg, key) = spki_parts(anchor.subject_public_key_info.as_ref())
            .ok_or(AnchorMismatch::UnsupportedAlgorithm)?;
        let mut found = false;
        for alg in self.algs.all.iter().filter(|alg| {
            alg.signature_alg_id().as_ref() == parts.sig_alg
                && alg.public_key_alg_id().as_ref() == key_alg
        }) {
            found = true;
            if alg
                .verify_signature(key, parts.tbs, parts.signature)
                .is_ok()
            {
                return Ok(());
            }
        }
        Err(if found {
            AnchorMismatch::BadSignature
        } else {
            AnchorMismatch::UnsupportedAlgorithm
        })
    }

    /// A TLS 1.2 handshake signature by a v1 leaf: of the algorithms the scheme maps
    /// to, the first for the leaf's key type decides, as rustls does for v3 leaves.
    fn verify_tls12_with_spki(
        &self,
        message: &[u8],
        spki: &[u8],
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        if !usable_in_tls12(dss.scheme) {
            return Err(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into());
        }
        let candidates = self
            .algs
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
        let (key_alg, key) = tlv(spki)
            .filter(|t| t.tag == TAG_SEQUENCE && t.rest.is_empty())
            .and_then(|t| spki_parts(t.content))
            .ok_or(CertificateError::BadEncoding)?;
        // As rustls does for v3 leaves: the first algorithm for the leaf's key type decides.
        match candidates
            .iter()
            .find(|alg| alg.public_key_alg_id().as_ref() == key_alg)
        {
            Some(alg) => alg
                .verify_signature(key, message, dss.signature())
                .map(|()| HandshakeSignatureValid::assertion())
                .map_err(|_| CertificateError::BadSignature.into()),
            None => Err(
                CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
                    signature_algorithm_id: candidates
                        .first()
                        .map(|a| a.signature_alg_id().as_ref().to_vec())
                        .unwrap_or_default(),
                    public_key_algorithm_id: key_alg.to_vec(),
                }
                .into(),
            ),
        }
    }
}

/// Schemes with a TLS 1.2 signature algorithm (RSA, ECDSA, EdDSA), as rustls allows.
fn usable_in_tls12(scheme: SignatureScheme) -> bool {
    use SignatureScheme as S;
    matches!(
        scheme,
        S::RSA_PKCS1_SHA1
            | S::RSA_PKCS1_SHA256
            | S::RSA_PKCS1_SHA384
            | S::RSA_PKCS1_SHA512
            | S::RSA_PSS_SHA256
            | S::RSA_PSS_SHA384
            | S::RSA_PSS_SHA512
            | S::ECDSA_SHA1_Legacy
            | S::ECDSA_NISTP256_SHA256
            | S::ECDSA_NISTP384_SHA384
            | S::ECDSA_NISTP521_SHA512
            | S::ED25519
            | S::ED448
    )
}

/// The parsed certificate, if it is an X.509 v1 certificate.
fn parse_v1(der: &[u8]) -> Option<X509Certificate<'_>> {
    match X509Certificate::from_der(der) {
        Ok((rest, cert)) if rest.is_empty() && cert.version() == X509Version::V1 => Some(cert),
        _ => None,
    }
}

impl ClientCertVerifier for V1CompatVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let webpki_error = match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(verified) => return Ok(verified),
            Err(e) => e,
        };
        // Only a v1 leaf, which webpki cannot parse at all, gets a second opinion.
        let Some(cert) = parse_v1(end_entity) else {
            return Err(webpki_error);
        };
        match self.verify_v1(&cert, end_entity, intermediates.len(), now) {
            Ok(()) => {
                tracing::debug!(
                    subject = %cert.subject(),
                    "X.509 v1 client certificate accepted: issued directly by a trusted CA"
                );
                Ok(ClientCertVerified::assertion())
            }
            Err(refusal) => Err(refusal.into()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        match parse_v1(cert) {
            Some(v1) => self.verify_tls12_with_spki(message, v1.public_key().raw, dss),
            None => self.inner.verify_tls12_signature(message, cert, dss),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        match parse_v1(cert) {
            Some(v1) => rustls::crypto::verify_tls13_signature_with_raw_key(
                message,
                &SubjectPublicKeyInfoDer::from(v1.public_key().raw),
                dss,
                &self.algs,
            ),
            None => self.inner.verify_tls13_signature(message, cert, dss),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

/// Why a v1 client certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V1Refusal {
    /// Not a well-formed v1 certificate.
    Malformed(String),
    /// The issuer is not a trust anchor (perhaps an intermediate CA, which v1 leaves may not use).
    NotDirectlyIssued {
        issuer: String,
        intermediates: usize,
    },
    /// The issuing anchor has name constraints, which are not checked for v1 leaves.
    NameConstrainedAnchor {
        issuer: String,
    },
    /// The signature algorithm is not one rustls verifies with the anchor's key.
    UnsupportedAlgorithm {
        issuer: String,
    },
    /// The anchor's key does not verify the signature.
    BadSignature {
        issuer: String,
    },
    NotValidYet {
        not_before: String,
    },
    Expired {
        not_after: String,
    },
}

impl fmt::Display for V1Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("client certificate is X.509 v1 and ")?;
        match self {
            V1Refusal::Malformed(why) => write!(f, "malformed: {why}"),
            V1Refusal::NotDirectlyIssued {
                issuer,
                intermediates,
            } => {
                write!(
                    f,
                    "its issuer '{issuer}' is not a CA in tls_ca_file / tls_truststore_file \
                     (v1 certificates must be issued directly by a trusted CA"
                )?;
                if *intermediates > 0 {
                    write!(f, "; the {intermediates} intermediate(s) sent are not used")?;
                }
                f.write_str(")")
            }
            V1Refusal::NameConstrainedAnchor { issuer } => write!(
                f,
                "its issuer '{issuer}' has name constraints, which v1 certificates cannot be \
                 checked against"
            ),
            V1Refusal::UnsupportedAlgorithm { issuer } => write!(
                f,
                "its signature algorithm is not supported with the key of trusted CA '{issuer}'"
            ),
            V1Refusal::BadSignature { issuer } => write!(
                f,
                "its signature does not verify with the key of trusted CA '{issuer}'"
            ),
            V1Refusal::NotValidYet { not_before } => {
                write!(f, "not valid yet (notBefore {not_before})")
            }
            V1Refusal::Expired { not_after } => write!(f, "has expired (notAfter {not_after})"),
        }
    }
}

impl std::error::Error for V1Refusal {}

impl From<V1Refusal> for Error {
    fn from(refusal: V1Refusal) -> Error {
        Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(refusal))))
    }
}

impl V1Refusal {
    /// The refusal inside a handshake error, if that is what it is.
    pub fn from_error(e: &Error) -> Option<&V1Refusal> {
        match e {
            Error::InvalidCertificate(CertificateError::Other(other)) => {
                other.0.downcast_ref::<V1Refusal>()
            }
            _ => None,
        }
    }
}

/// Why one anchor did not vouch for a v1 leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnchorMismatch {
    NameConstrained,
    UnsupportedAlgorithm,
    BadSignature,
}

impl AnchorMismatch {
    /// Which reason to report when several same-named anchors refuse: the most specific.
    fn rank(self) -> u8 {
        match self {
            AnchorMismatch::NameConstrained => 0,
            AnchorMismatch::UnsupportedAlgorithm => 1,
            AnchorMismatch::BadSignature => 2,
        }
    }
}

// ---- DER, just enough to find what a signature covers ----

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_VERSION: u8 = 0xA0;

/// One DER element with a one-byte tag.
struct Tlv<'a> {
    tag: u8,
    /// Tag, length and content.
    whole: &'a [u8],
    content: &'a [u8],
    rest: &'a [u8],
}

fn tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let tag = *input.first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = input.get(2..2 + n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some(Tlv {
        tag,
        whole: input.get(..end)?,
        content: input.get(header..end)?,
        rest: &input[end..],
    })
}

fn expect(input: &[u8], tag: u8) -> Option<Tlv<'_>> {
    tlv(input).filter(|t| t.tag == tag)
}

/// The content of a BIT STRING with no unused bits.
fn bits<'a>(t: &Tlv<'a>) -> Option<&'a [u8]> {
    match t.content.split_first() {
        Some((0, bits)) if t.tag == TAG_BIT_STRING => Some(bits),
        _ => None,
    }
}

/// The pieces of `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`.
struct CertParts<'a> {
    /// The whole TBS certificate (what is signed).
    tbs: &'a [u8],
    /// The content of the TBS certificate's `signature` AlgorithmIdentifier.
    tbs_sig_alg: &'a [u8],
    /// The content of the outer `signatureAlgorithm`.
    sig_alg: &'a [u8],
    signature: &'a [u8],
}

impl<'a> CertParts<'a> {
    fn parse(der: &'a [u8]) -> Option<CertParts<'a>> {
        let cert = expect(der, TAG_SEQUENCE).filter(|t| t.rest.is_empty())?;
        let tbs = expect(cert.content, TAG_SEQUENCE)?;
        let sig_alg = expect(tbs.rest, TAG_SEQUENCE)?;
        let signature = expect(sig_alg.rest, TAG_BIT_STRING).filter(|t| t.rest.is_empty())?;
        let mut fields = tbs.content;
        if fields.first() == Some(&TAG_VERSION) {
            fields = tlv(fields)?.rest;
        }
        let serial = expect(fields, TAG_INTEGER)?;
        let tbs_sig_alg = expect(serial.rest, TAG_SEQUENCE)?;
        Some(CertParts {
            tbs: tbs.whole,
            tbs_sig_alg: tbs_sig_alg.content,
            sig_alg: sig_alg.content,
            signature: bits(&signature)?,
        })
    }
}

/// `(algorithm content, key bits)` of the content of a SubjectPublicKeyInfo.
fn spki_parts(spki_value: &[u8]) -> Option<(&[u8], &[u8])> {
    let alg = expect(spki_value, TAG_SEQUENCE)?;
    let key = expect(alg.rest, TAG_BIT_STRING).filter(|t| t.rest.is_empty())?;
    Some((alg.content, bits(&key)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        SignatureAlgorithm, SigningKey,
    };
    use rustls::server::WebPkiClientVerifier;

    use crate::jks::der_wrap;

    struct Ca(CertifiedIssuer<'static, KeyPair>);

    impl Ca {
        fn new(cn: &str, alg: &'static SignatureAlgorithm) -> Ca {
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let key = KeyPair::generate_for(alg).expect("key");
            Ca(CertifiedIssuer::self_signed(params, key).expect("CA"))
        }

        /// A v3 leaf made v1 (version and extensions dropped), re-signed by `signer`.
        fn v1_leaf(&self, cn: &str, tweak: impl FnOnce(&mut CertificateParams)) -> Vec<u8> {
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, cn);
            tweak(&mut params);
            let key = KeyPair::generate().expect("key");
            let v3 = params.signed_by(&key, &self.0).expect("leaf");
            let parts = CertParts::parse(v3.der()).expect("parts");
            let tbs = tlv(parts.tbs).expect("tbs");
            let mut fields = tbs.content;
            let mut kept = Vec::new();
            while let Some(t) = tlv(fields) {
                if t.tag != TAG_VERSION && t.tag != 0xA3 {
                    kept.extend(t.whole);
                }
                fields = t.rest;
            }
            let tbs = der_wrap(TAG_SEQUENCE, &kept);
            let sig = self.0.key().sign(&tbs).expect("sign");
            let mut bits = vec![0];
            bits.extend(sig);
            let body = [
                tbs,
                der_wrap(TAG_SEQUENCE, parts.sig_alg),
                der_wrap(TAG_BIT_STRING, &bits),
            ]
            .concat();
            der_wrap(TAG_SEQUENCE, &body)
        }
    }

    fn verifier(cas: &[&Ca]) -> V1CompatVerifier {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in cas {
            roots.add(ca.0.der().clone()).expect("root");
        }
        let roots = Arc::new(roots);
        let inner = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .expect("verifier");
        V1CompatVerifier::new(inner, roots, provider.signature_verification_algorithms)
    }

    fn now() -> UnixTime {
        UnixTime::now()
    }

    fn check(v: &V1CompatVerifier, der: &[u8], at: UnixTime) -> Result<(), Error> {
        v.verify_client_cert(&CertificateDer::from(der.to_vec()), &[], at)
            .map(|_| ())
    }

    fn refusal(v: &V1CompatVerifier, der: &[u8], at: UnixTime) -> V1Refusal {
        let err = check(v, der, at).expect_err("refused");
        V1Refusal::from_error(&err)
            .unwrap_or_else(|| panic!("not a v1 refusal: {err:?}"))
            .clone()
    }

    #[test]
    fn directly_issued_v1_leaves_verify_for_each_key_type() {
        // Goal: a v1 leaf signed by a trust anchor verifies for ECDSA P-256/P-384 and Ed25519 CAs; webpki itself still refuses it, and the principal is readable.
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            let ca = Ca::new("v1 CA", alg);
            let v = verifier(&[&ca]);
            let leaf = ca.v1_leaf("client", |_| {});
            assert!(parse_v1(&leaf).is_some(), "really v1");
            assert!(
                v.inner
                    .verify_client_cert(&CertificateDer::from(leaf.clone()), &[], now())
                    .is_err(),
                "webpki alone refuses v1"
            );
            check(&v, &leaf, now()).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
            let id = corral_auth::CertIdentity::from_der(&leaf).expect("identity");
            assert_eq!(id.subject_dn, "CN=client");
        }
    }

    #[test]
    fn rsa_v1_leaf_verifies_when_openssl_can_make_a_key() {
        // Goal: RSA PKCS#1 SHA-256 (kazoo's harness) verifies on the v1 path; skipped without openssl.
        let Ok(out) = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
        else {
            eprintln!("openssl not found: RSA v1 test skipped");
            return;
        };
        if !out.status.success() {
            eprintln!("openssl genpkey failed: RSA v1 test skipped");
            return;
        }
        let pem = String::from_utf8(out.stdout).expect("pem");
        let key = KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).expect("rsa");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "rsa CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = Ca(CertifiedIssuer::self_signed(params, key).expect("CA"));
        let v = verifier(&[&ca]);
        check(&v, &ca.v1_leaf("client", |_| {}), now()).expect("RSA v1 accepted");
    }

    #[test]
    fn v1_leaves_failing_a_check_are_refused_with_the_reason() {
        // Goal: wrong issuer, same-DN impostor CA, bad signature, expiry, not-yet-valid and v1-with-extensions are each refused with their own reason.
        let ca = Ca::new("v1 CA", &rcgen::PKCS_ECDSA_P256_SHA256);
        let v = verifier(&[&ca]);

        let other = Ca::new("other CA", &rcgen::PKCS_ECDSA_P256_SHA256);
        let r = refusal(&v, &other.v1_leaf("client", |_| {}), now());
        assert!(
            matches!(&r, V1Refusal::NotDirectlyIssued { issuer, .. } if issuer == "CN=other CA"),
            "{r}"
        );

        let impostor = Ca::new("v1 CA", &rcgen::PKCS_ECDSA_P256_SHA256);
        let r = refusal(&v, &impostor.v1_leaf("client", |_| {}), now());
        assert_eq!(
            r,
            V1Refusal::BadSignature {
                issuer: "CN=v1 CA".into()
            }
        );

        let mut tampered = ca.v1_leaf("client", |_| {});
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let r = refusal(&v, &tampered, now());
        assert_eq!(
            r,
            V1Refusal::BadSignature {
                issuer: "CN=v1 CA".into()
            }
        );

        // A changed TBS (the subject) with the old signature does not verify either.
        let good = ca.v1_leaf("client", |_| {});
        let at = good
            .windows(6)
            .position(|w| w == b"client")
            .expect("subject CN");
        let mut renamed = good.clone();
        renamed[at..at + 6].copy_from_slice(b"admin!");
        assert!(matches!(
            refusal(&v, &renamed, now()),
            V1Refusal::BadSignature { .. }
        ));

        let expired = ca.v1_leaf("old", |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        });
        assert!(matches!(
            refusal(&v, &expired, now()),
            V1Refusal::Expired { .. }
        ));
        let r = refusal(&v, &expired, now());
        assert!(r.to_string().contains("has expired"), "{r}");

        let future = ca.v1_leaf("new", |p| {
            p.not_before = rcgen::date_time_ymd(2090, 1, 1);
            p.not_after = rcgen::date_time_ymd(2091, 1, 1);
        });
        assert!(matches!(
            refusal(&v, &future, now()),
            V1Refusal::NotValidYet { .. }
        ));
        // The same certificates are fine at a time inside their validity.
        let in_2020 = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_590_000_000));
        check(&v, &expired, in_2020).expect("valid in 2020");

        // v1 with an extension (version field dropped, extensions kept) is malformed.
        let v3 = {
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, "x");
            params.subject_alt_names = vec![rcgen::SanType::DnsName("x".try_into().unwrap())];
            let key = KeyPair::generate().expect("key");
            params.signed_by(&key, &ca.0).expect("leaf").der().to_vec()
        };
        let parts = CertParts::parse(&v3).expect("parts");
        let tbs = tlv(parts.tbs).expect("tbs");
        let fields = tlv(tbs.content).expect("version").rest;
        let tbs = der_wrap(TAG_SEQUENCE, fields);
        let mut bits = vec![0];
        bits.extend(ca.0.key().sign(&tbs).expect("sign"));
        let odd = der_wrap(
            TAG_SEQUENCE,
            &[
                tbs,
                der_wrap(TAG_SEQUENCE, parts.sig_alg),
                der_wrap(TAG_BIT_STRING, &bits),
            ]
            .concat(),
        );
        assert!(matches!(refusal(&v, &odd, now()), V1Refusal::Malformed(_)));
    }

    #[test]
    fn v1_leaves_of_an_intermediate_are_refused_even_with_the_chain() {
        // Goal: intermediates are not used for v1 leaves, even a valid v3 intermediate under a trusted root.
        let root = Ca::new("root", &rcgen::PKCS_ECDSA_P256_SHA256);
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "intermediate");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let inter =
            Ca(
                CertifiedIssuer::signed_by(params, KeyPair::generate().expect("key"), &root.0)
                    .expect("intermediate"),
            );
        let v = verifier(&[&root]);
        let leaf = inter.v1_leaf("client", |_| {});
        let chain = [inter.0.der().clone()];
        let err = v
            .verify_client_cert(&CertificateDer::from(leaf), &chain, now())
            .expect_err("refused");
        let r = V1Refusal::from_error(&err).expect("v1 refusal");
        assert!(
            matches!(
                r,
                V1Refusal::NotDirectlyIssued {
                    intermediates: 1,
                    ..
                }
            ),
            "{r}"
        );
        assert!(r.to_string().contains("intermediate"), "{r}");
    }

    #[test]
    fn v3_certificates_keep_webpkis_verdict() {
        // Goal: a v3 leaf is judged by webpki alone: good ones pass, a v3 leaf from another CA keeps webpki's UnknownIssuer.
        let ca = Ca::new("CA", &rcgen::PKCS_ECDSA_P256_SHA256);
        let other = Ca::new("other", &rcgen::PKCS_ECDSA_P256_SHA256);
        let v = verifier(&[&ca]);
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "v3");
        let good = params.signed_by(&key, &ca.0).expect("leaf");
        check(&v, good.der(), now()).expect("v3 accepted");
        let bad = params.signed_by(&key, &other.0).expect("leaf");
        let err = check(&v, bad.der(), now()).expect_err("refused");
        assert_eq!(
            err,
            Error::InvalidCertificate(CertificateError::UnknownIssuer)
        );
        assert!(parse_v1(good.der()).is_none());
    }

    #[test]
    fn der_reader_refuses_truncated_input() {
        // Goal: the DER helpers return None on truncation, indefinite lengths and trailing bytes rather than panicking.
        assert!(tlv(&[]).is_none());
        assert!(tlv(&[0x30]).is_none());
        assert!(tlv(&[0x30, 0x05, 0x00]).is_none());
        assert!(tlv(&[0x30, 0x80, 0x00, 0x00]).is_none());
        assert!(tlv(&[0x30, 0x85, 1, 0, 0, 0, 0]).is_none());
        assert!(CertParts::parse(&[0x30, 0x00]).is_none());
        assert!(
            spki_parts(&[0x30, 0x00, 0x03, 0x01, 0x01]).is_none(),
            "unused bits"
        );
    }
}
