//! x509 identities: the `x509` principal of a TLS client certificate and the rules
//! that map a certificate to a tenant.
//!
//! **The principal** is `("x509", <subject DN>)`, the DN written exactly as Java's
//! `X500Principal.getName()` writes it (RFC 2253 format), so ACLs written for Apache
//! ZooKeeper's `X509AuthenticationProvider` keep working:
//!
//! - RDNs in reverse order of the encoding, joined by `,`; the attributes of a
//!   multi-valued RDN joined by `+`, in encoded order.
//! - Keywords only for `CN C L ST O OU STREET DC UID`; every other type is its dotted
//!   OID, e.g. `emailAddress` is `1.2.840.113549.1.9.1`.
//! - A value whose type has no keyword, or whose encoding is not one of the six
//!   string types Java accepts here (UTF8String, PrintableString, TeletexString,
//!   IA5String, GeneralString, BMPString; *not* UniversalString), is `#` and the
//!   lowercase hex of its whole DER encoding (`1.2.840.113549.1.9.1=#1611...`).
//! - Other values are their content bytes **decoded as UTF-8 whatever the string
//!   type** (Java 17 does this, so a BMPString `h` prints as `\00h` and a Latin-1
//!   TeletexString byte as U+FFFD; invalid bytes become U+FFFD), with each of
//!   `, = + < > # ; " \` preceded by a backslash (anywhere, not only where RFC 2253
//!   requires it, as Java does), NUL as `\00`, and every leading and trailing space
//!   or CR preceded by a backslash. Non-ASCII characters are written as they are.
//!
//! `tests/x509_java.rs` checks all of this against a real JVM.
//!
//! **Rules** ([`X509Rule`]) say which certificates a tenant binding covers: the exact
//! subject DN, a CN, or a glob over the URI, DNS or email subject alternative names.
//!
//! Nothing here checks a certificate's signature, validity period or issuer: the TLS
//! layer has done that before a certificate reaches this module.

use std::fmt;
use std::str::FromStr;

use crate::scheme::Scheme;
use crate::{AuthError, Principal};

/// What corral reads from a verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The subject DN in RFC 2253 form, as Java's `X500Principal.getName()`.
    pub subject_dn: String,
    /// Every CN of the subject, decoded (not escaped), most specific first.
    pub common_names: Vec<String>,
    /// SAN URIs (`spiffe://corp/team-a/svc`).
    pub uris: Vec<String>,
    /// SAN DNS names.
    pub dns_names: Vec<String>,
    /// SAN rfc822 names (email addresses).
    pub emails: Vec<String>,
}

impl CertIdentity {
    /// Reads the identity of a DER certificate.
    pub fn from_der(cert_der: &[u8]) -> Result<CertIdentity, AuthError> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
            .map_err(|e| bad_cert(format!("not an X.509 certificate: {e}")))?;
        let subject = cert.tbs_certificate.subject.as_raw();
        let rdns = parse_name(subject)?;
        let subject_dn = format_rdns(&rdns);
        let mut common_names: Vec<String> = rdns
            .iter()
            .flatten()
            .filter(|ava| ava.oid == OID_CN)
            .filter_map(|ava| decode_string(ava.tag, ava.content))
            .map(|(s, _)| s)
            .collect();
        common_names.reverse();
        let mut id = CertIdentity {
            subject_dn,
            common_names,
            uris: Vec::new(),
            dns_names: Vec::new(),
            emails: Vec::new(),
        };
        let san = cert
            .subject_alternative_name()
            .map_err(|e| bad_cert(format!("bad subjectAltName extension: {e}")))?;
        for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
            match name {
                GeneralName::URI(u) => id.uris.push(u.to_string()),
                GeneralName::DNSName(d) => id.dns_names.push(d.to_string()),
                GeneralName::RFC822Name(e) => id.emails.push(e.to_string()),
                _ => {}
            }
        }
        Ok(id)
    }

    /// The session principal: `("x509", subject DN)`.
    pub fn principal(&self) -> Principal {
        Principal::new(Scheme::X509.name(), self.subject_dn.clone())
    }
}

/// The RFC 2253 form (as Java's `X500Principal.getName()`) of a DER `Name`.
pub fn rfc2253_from_name_der(name_der: &[u8]) -> Result<String, AuthError> {
    Ok(format_rdns(&parse_name(name_der)?))
}

fn bad_cert(reason: impl Into<String>) -> AuthError {
    AuthError::BadCertificate {
        reason: reason.into(),
    }
}

// ---- DER, just enough for a Name ----

const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_OID: u8 = 0x06;

const OID_CN: &str = "2.5.4.3";

/// One attribute type and value: the dotted OID, the value's identifier octets and content.
struct Ava<'a> {
    oid: String,
    tag: &'a [u8],
    content: &'a [u8],
}

/// One TLV: identifier octets, content, and the bytes after it.
struct Tlv<'a> {
    tag: &'a [u8],
    content: &'a [u8],
    rest: &'a [u8],
}

fn read_tlv(input: &[u8]) -> Result<Tlv<'_>, AuthError> {
    let truncated = || bad_cert("truncated DER in the subject name");
    let first = *input.first().ok_or_else(truncated)?;
    let mut pos = 1;
    if first & 0x1f == 0x1f {
        // High tag number: base-128 continuation bytes.
        loop {
            let b = *input.get(pos).ok_or_else(truncated)?;
            pos += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let tag = &input[..pos];
    let len_byte = *input.get(pos).ok_or_else(truncated)?;
    pos += 1;
    let len = if len_byte & 0x80 == 0 {
        usize::from(len_byte)
    } else {
        let n = usize::from(len_byte & 0x7f);
        if n == 0 || n > 4 {
            return Err(bad_cert("unsupported DER length in the subject name"));
        }
        let bytes = input.get(pos..pos + n).ok_or_else(truncated)?;
        pos += n;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let end = pos.checked_add(len).ok_or_else(truncated)?;
    let content = input.get(pos..end).ok_or_else(truncated)?;
    Ok(Tlv {
        tag,
        content,
        rest: &input[end..],
    })
}

/// Reads the elements of a constructed value, each of which must have tag `want`.
fn elements<'a>(mut content: &'a [u8], want: u8, what: &str) -> Result<Vec<Tlv<'a>>, AuthError> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let tlv = read_tlv(content)?;
        if tlv.tag != [want] {
            return Err(bad_cert(format!("subject name: expected {what}")));
        }
        content = tlv.rest;
        out.push(tlv);
    }
    Ok(out)
}

/// Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }, in encoded order.
fn parse_name(der: &[u8]) -> Result<Vec<Vec<Ava<'_>>>, AuthError> {
    let name = read_tlv(der)?;
    if name.tag != [TAG_SEQUENCE] || !name.rest.is_empty() {
        return Err(bad_cert("subject name is not one DER SEQUENCE"));
    }
    let mut rdns = Vec::new();
    for set in elements(name.content, TAG_SET, "a SET (RDN)")? {
        let mut avas = Vec::new();
        for seq in elements(set.content, TAG_SEQUENCE, "a SEQUENCE (attribute)")? {
            let oid = read_tlv(seq.content)?;
            if oid.tag != [TAG_OID] {
                return Err(bad_cert("subject name: attribute type is not an OID"));
            }
            let value = read_tlv(oid.rest)?;
            if !value.rest.is_empty() {
                return Err(bad_cert("subject name: trailing bytes in an attribute"));
            }
            avas.push(Ava {
                oid: dotted_oid(oid.content)?,
                tag: value.tag,
                content: value.content,
            });
        }
        if avas.is_empty() {
            return Err(bad_cert("subject name: empty RDN"));
        }
        rdns.push(avas);
    }
    Ok(rdns)
}

fn dotted_oid(content: &[u8]) -> Result<String, AuthError> {
    let mut arcs: Vec<u128> = Vec::new();
    let mut acc: u128 = 0;
    for (i, b) in content.iter().enumerate() {
        acc = acc
            .checked_mul(128)
            .ok_or_else(|| bad_cert("OID arc too large"))?
            | u128::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(acc);
            acc = 0;
        } else if i + 1 == content.len() {
            return Err(bad_cert("truncated OID"));
        }
    }
    let Some(&first) = arcs.first() else {
        return Err(bad_cert("empty OID"));
    };
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut s = format!("{a}.{b}");
    for arc in &arcs[1..] {
        s.push('.');
        s.push_str(&arc.to_string());
    }
    Ok(s)
}

// ---- Java's RFC 2253 formatting ----

/// The keywords Java's `AVAKeyword` marks RFC 2253 compliant.
fn rfc2253_keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn format_rdns(rdns: &[Vec<Ava<'_>>]) -> String {
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, ava) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            format_ava(ava, &mut out);
        }
    }
    out
}

fn format_ava(ava: &Ava<'_>, out: &mut String) {
    let keyword = rfc2253_keyword(&ava.oid);
    out.push_str(keyword.unwrap_or(&ava.oid));
    out.push('=');
    match keyword.and_then(|_| decode_string(ava.tag, ava.content)) {
        Some((_, true)) => escape_value(&String::from_utf8_lossy(ava.content), out),
        _ => hex_der(ava.tag, ava.content, out),
    }
}

/// `#` and the lowercase hex of the value's DER (identifier, minimal length, content).
fn hex_der(tag: &[u8], content: &[u8], out: &mut String) {
    use std::fmt::Write;
    let mut der = tag.to_vec();
    let len = content.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        der.push(0x80 | bytes.len() as u8);
        der.extend(bytes);
    }
    der.extend_from_slice(content);
    out.push('#');
    for b in der {
        let _ = write!(out, "{b:02x}");
    }
}

/// The string of a value encoded as one of the seven ASN.1 string types, decoded
/// with that type's charset (undecodable bytes become U+FFFD), and whether Java's
/// RFC 2253 writer prints the type as a string (true) or as hex (UniversalString).
/// None for any other encoding.
fn decode_string(tag: &[u8], content: &[u8]) -> Option<(String, bool)> {
    const REPLACEMENT: char = '\u{fffd}';
    let ascii = || {
        content
            .iter()
            .map(|&b| if b < 0x80 { char::from(b) } else { REPLACEMENT })
            .collect()
    };
    let java_prints = tag != [0x1c];
    let s = match tag {
        // UTF8String
        [0x0c] => String::from_utf8_lossy(content).into_owned(),
        // PrintableString, IA5String, GeneralString
        [0x13] | [0x16] | [0x1b] => ascii(),
        // TeletexString (T61String)
        [0x14] => content.iter().map(|&b| char::from(b)).collect(),
        // BMPString
        [0x1e] => {
            let units = content
                .chunks(2)
                .map(|c| match c {
                    [hi, lo] => Ok(u16::from_be_bytes([*hi, *lo])),
                    _ => Err(()),
                })
                .collect::<Vec<_>>();
            let mut s: String = char::decode_utf16(units.iter().filter_map(|u| u.ok()))
                .map(|r| r.unwrap_or(REPLACEMENT))
                .collect();
            if units.iter().any(|u| u.is_err()) {
                s.push(REPLACEMENT);
            }
            s
        }
        // UniversalString
        [0x1c] => content
            .chunks(4)
            .map(|c| match c {
                [a, b, c, d] => {
                    char::from_u32(u32::from_be_bytes([*a, *b, *c, *d])).unwrap_or(REPLACEMENT)
                }
                _ => REPLACEMENT,
            })
            .collect(),
        _ => return None,
    };
    Some((s, java_prints))
}

/// Java's `AVA.toRFC2253String` escaping of a string value.
fn escape_value(value: &str, out: &mut String) {
    const ESCAPEES: &str = ",=+<>#;\"\\";
    let mut escaped: Vec<char> = Vec::with_capacity(value.len());
    for c in value.chars() {
        if ESCAPEES.contains(c) {
            escaped.push('\\');
            escaped.push(c);
        } else if c == '\0' {
            escaped.extend(['\\', '0', '0']);
        } else {
            escaped.push(c);
        }
    }
    let is_space = |c: &char| *c == ' ' || *c == '\r';
    let lead = escaped.iter().take_while(|c| is_space(c)).count();
    let trail_start = escaped.len() - escaped.iter().rev().take_while(|c| is_space(c)).count();
    for (i, c) in escaped.iter().enumerate() {
        if i < lead || i >= trail_start {
            out.push('\\');
        }
        out.push(*c);
    }
}

// ---- Mapping rules ----

/// Which certificates a tenant binding covers.
///
/// Written as `kind:pattern`:
///
/// | form | matches when |
/// |---|---|
/// | `dn:CN=svc,OU=team-a,O=corp` | the subject DN (RFC 2253, as [`CertIdentity::subject_dn`]) equals it exactly |
/// | `cn:svc-*` | some CN of the subject matches the glob |
/// | `uri:spiffe://corp/team-a/*` | some SAN URI matches the glob |
/// | `dns:*.team-a.corp` | some SAN DNS name matches the glob, ignoring ASCII case |
/// | `email:*@team-a.corp` | some SAN email matches the glob |
///
/// In a glob, `*` matches any run of characters, `/`, `.` and `@` included, and every
/// other character matches itself. There is no escape: a pattern cannot match a
/// literal `*` more narrowly than `*` itself does. `dn` is never a glob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum X509Rule {
    SubjectDn(String),
    Cn(String),
    SanUri(String),
    SanDns(String),
    SanEmail(String),
}

impl X509Rule {
    /// Whether a certificate with this identity is covered by the rule.
    pub fn matches(&self, id: &CertIdentity) -> bool {
        match self {
            X509Rule::SubjectDn(dn) => id.subject_dn == *dn,
            X509Rule::Cn(p) => id.common_names.iter().any(|v| glob(p, v)),
            X509Rule::SanUri(p) => id.uris.iter().any(|v| glob(p, v)),
            X509Rule::SanDns(p) => {
                let p = p.to_ascii_lowercase();
                id.dns_names
                    .iter()
                    .any(|v| glob(&p, &v.to_ascii_lowercase()))
            }
            X509Rule::SanEmail(p) => id.emails.iter().any(|v| glob(p, v)),
        }
    }

    fn parts(&self) -> (&'static str, &str) {
        match self {
            X509Rule::SubjectDn(v) => ("dn", v),
            X509Rule::Cn(v) => ("cn", v),
            X509Rule::SanUri(v) => ("uri", v),
            X509Rule::SanDns(v) => ("dns", v),
            X509Rule::SanEmail(v) => ("email", v),
        }
    }
}

impl FromStr for X509Rule {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| AuthError::InvalidX509Rule {
            rule: s.to_string(),
            reason: reason.to_string(),
        };
        let (kind, pattern) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected kind:pattern with kind dn, cn, uri, dns or email"))?;
        if pattern.is_empty() {
            return Err(invalid("the pattern is empty"));
        }
        let pattern = pattern.to_string();
        Ok(match kind {
            "dn" => X509Rule::SubjectDn(pattern),
            "cn" => X509Rule::Cn(pattern),
            "uri" => X509Rule::SanUri(pattern),
            "dns" => X509Rule::SanDns(pattern),
            "email" => X509Rule::SanEmail(pattern),
            _ => return Err(invalid("unknown kind; use dn, cn, uri, dns or email")),
        })
    }
}

impl fmt::Display for X509Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, pattern) = self.parts();
        write!(f, "{kind}:{pattern}")
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    // Greedy match with backtracking to the last star: linear for one star, O(n*m) worst.
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if pi < p.len() && p[pi] == v[vi] {
            pi += 1;
            vi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER of one TLV with a short or long length.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if content.len() < 0x80 {
            out.push(content.len() as u8);
        } else {
            out.extend([0x82, (content.len() >> 8) as u8, content.len() as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    fn oid(bytes: &[u8]) -> Vec<u8> {
        tlv(0x06, bytes)
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    const EMAIL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];

    fn ava(oid_bytes: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        let mut body = oid(oid_bytes);
        body.extend(tlv(tag, value));
        tlv(0x30, &body)
    }

    fn name(rdns: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let mut body = Vec::new();
        for rdn in rdns {
            body.extend(tlv(0x31, &rdn.concat()));
        }
        tlv(0x30, &body)
    }

    fn fmt(rdns: &[Vec<Vec<u8>>]) -> String {
        rfc2253_from_name_der(&name(rdns)).expect("valid name")
    }

    #[test]
    fn rdns_are_reversed_and_multi_valued_joined_by_plus() {
        // Goal: encoded order O, (CN+O) prints as CN=..+O=..,O=.. (reverse RDNs, encoded AVAs).
        let dn = fmt(&[
            vec![ava(O, 0x0c, b"corp")],
            vec![ava(CN, 0x0c, b"svc"), ava(O, 0x13, b"x")],
        ]);
        assert_eq!(dn, "CN=svc+O=x,O=corp");
    }

    #[test]
    fn special_characters_are_escaped_like_java() {
        // Goal: ,=+<>#;"\ escaped anywhere, NUL as \00, leading/trailing spaces escaped.
        assert_eq!(
            fmt(&[vec![ava(CN, 0x0c, b"a,b=c+d<e>f#g;h\"i\\j")]]),
            r#"CN=a\,b\=c\+d\<e\>f\#g\;h\"i\\j"#
        );
        assert_eq!(fmt(&[vec![ava(CN, 0x0c, b"  x y  ")]]), r"CN=\ \ x y\ \ ");
        assert_eq!(fmt(&[vec![ava(CN, 0x0c, b"a\0b")]]), r"CN=a\00b");
        assert_eq!(
            fmt(&[vec![ava(CN, 0x0c, "é 日本".as_bytes())]]),
            "CN=é 日本"
        );
    }

    #[test]
    fn unknown_types_and_non_strings_are_hex() {
        // Goal: emailAddress prints as its OID with #hex DER; a non-string CN prints as hex too.
        assert_eq!(
            fmt(&[vec![ava(EMAIL, 0x16, b"a@b")]]),
            "1.2.840.113549.1.9.1=#1603614062"
        );
        assert_eq!(fmt(&[vec![ava(CN, 0x02, &[1])]]), "CN=#020101");
    }

    #[test]
    fn string_types_print_their_bytes_as_utf8_like_java() {
        // Goal: Java decodes every string type's bytes as UTF-8 and prints UniversalString as hex.
        let bmp = fmt(&[vec![ava(CN, 0x1e, &[0, b'h', 0x65, 0xe5])]]);
        assert_eq!(bmp, "CN=\\00he\u{fffd}");
        assert_eq!(fmt(&[vec![ava(CN, 0x14, &[0xe9])]]), "CN=\u{fffd}");
        assert_eq!(fmt(&[vec![ava(CN, 0x13, &[b'a', 0xe9])]]), "CN=a\u{fffd}");
        let universal = fmt(&[vec![ava(CN, 0x1c, &[0, 0, 0, b'z'])]]);
        assert_eq!(universal, "CN=#1c040000007a");
    }

    #[test]
    fn common_names_decode_each_string_type_properly() {
        // Goal: for CN rules, BMP is UTF-16BE, T61 Latin-1, Universal UTF-32BE.
        let d = |tag: u8, bytes: &[u8]| decode_string(&[tag], bytes).map(|(s, _)| s);
        assert_eq!(d(0x1e, &[0, b'h', 0x65, 0xe5]).as_deref(), Some("h日"));
        assert_eq!(d(0x14, &[0xe9]).as_deref(), Some("é"));
        assert_eq!(d(0x1c, &[0, 0, 0, b'z']).as_deref(), Some("z"));
        assert_eq!(d(0x13, &[b'a', 0xe9]).as_deref(), Some("a\u{fffd}"));
        assert_eq!(d(0x04, b"x"), None);
    }

    #[test]
    fn long_values_and_empty_names() {
        // Goal: long-form lengths parse, hex output uses the minimal length form, empty DN is "".
        let long = vec![b'a'; 200];
        assert_eq!(
            fmt(&[vec![ava(CN, 0x0c, &long)]]),
            format!("CN={}", "a".repeat(200))
        );
        let hex = fmt(&[vec![ava(EMAIL, 0x16, &long)]]);
        assert!(
            hex.starts_with("1.2.840.113549.1.9.1=#1681c8616161"),
            "{hex}"
        );
        assert_eq!(fmt(&[]), "");
    }

    #[test]
    fn malformed_names_are_refused() {
        // Goal: truncated or mis-shaped DER is an error, never a panic.
        let good = name(&[vec![ava(CN, 0x0c, b"svc")]]);
        for cut in 0..good.len() {
            assert!(rfc2253_from_name_der(&good[..cut]).is_err(), "cut {cut}");
        }
        assert!(rfc2253_from_name_der(&tlv(0x31, &[])).is_err());
        assert!(rfc2253_from_name_der(&tlv(0x30, &tlv(0x31, &[]))).is_err());
    }

    fn identity() -> CertIdentity {
        CertIdentity {
            subject_dn: "CN=svc,OU=team-a,O=corp".into(),
            common_names: vec!["svc".into()],
            uris: vec!["spiffe://corp/team-a/svc".into()],
            dns_names: vec!["svc.Team-A.corp".into()],
            emails: vec!["svc@team-a.corp".into()],
        }
    }

    #[test]
    fn rules_match_dn_cn_and_san_globs() {
        // Goal: each rule kind matches the right field; dn is exact, dns ignores case.
        let id = identity();
        for rule in [
            "dn:CN=svc,OU=team-a,O=corp",
            "cn:svc",
            "cn:s*",
            "uri:spiffe://corp/team-a/*",
            "uri:spiffe://corp/*/svc",
            "dns:*.team-a.corp",
            "email:*@team-a.corp",
            "email:svc@team-a.corp",
        ] {
            let r: X509Rule = rule.parse().expect("valid rule");
            assert!(r.matches(&id), "{rule}");
            assert_eq!(r.to_string(), rule);
        }
        for rule in [
            "dn:CN=svc, OU=team-a,O=corp",
            "dn:CN=svc*",
            "cn:sv",
            "uri:spiffe://corp/team-b/*",
            "uri:spiffe://corp/team-a",
            "dns:*.team-b.corp",
            "email:*@team-a.corp.evil",
            "email:*@Team-A.corp",
        ] {
            let r: X509Rule = rule.parse().expect("valid rule");
            assert!(!r.matches(&id), "{rule}");
        }
    }

    #[test]
    fn bad_rules_are_refused() {
        // Goal: a rule without a known kind or with an empty pattern does not parse.
        for rule in ["", "svc", "san:x", "uri:", "CN=svc"] {
            assert!(rule.parse::<X509Rule>().is_err(), "{rule}");
        }
    }

    #[test]
    fn glob_semantics() {
        // Goal: * matches any run including empty; several stars backtrack correctly.
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(glob("a*b*c", "abbc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("**", "x"));
        assert!(!glob("", "x"));
        assert!(glob("", ""));
    }
}
