//! The audit record and its two line encodings.
//!
//! # JSON lines (default)
//!
//! One [`AuditRecord`] per line as a JSON object with the field names below.
//! Absent optional fields are omitted. `session` and `zxid` are hex strings
//! (`"0x1000000000a"`) because session ids do not fit a JSON double.
//!
//! # ZooKeeper `key=value` (for existing parsers)
//!
//! The format of ZooKeeper's `AuditEvent.toString()` (facts from Apache
//! ZooKeeper 3.8): tab-separated `key=value` pairs in the order `session`,
//! `user`, `ip`, `operation`, `znode`, `znode_type`, `acl`, each omitted when
//! absent, then `result=success|failure|invoked` last. `session` is `0x` plus
//! lowercase hex; `user` is the comma-joined principal names (the id, with a
//! digest id cut at its `:`), `ip` as Java's `getHostAddress()` prints it,
//! `znode` the absolute server path. corral adds its own keys after ZooKeeper's
//! and before `result`: `tenant`, `znode_relative`, `zxid`, `error_code` (when
//! not 0), `server`, `time_ms`, so a parser that looks up keys keeps working.
//!
//! Values never contain a raw tab, newline or carriage return (they are
//! written `\t`, `\n`, `\r`), so one record is always one line and a crafted
//! principal or path cannot forge another record.

use std::net::IpAddr;

use corral_proto::{Acl, CreateMode};
use serde::{Deserialize, Serialize};

/// What happened, named as ZooKeeper's `AuditConstants` where it has a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuditOp {
    ServerStart,
    ServerStop,
    Create,
    Delete,
    SetData,
    SetAcl,
    #[serde(rename = "multiOperation")]
    Multi,
    Reconfig,
    /// An ephemeral deleted because its session closed or expired.
    #[serde(rename = "ephemeralZNodeDeletionOnSessionCloseOrExpire")]
    EphemeralDeletion,
    Connect,
    /// A connection closed at accept (per-IP limit, tenant IP rules or quota).
    ConnectionRefused,
    Auth,
    TenantBind,
    SessionClose,
    SessionExpire,
    /// A request refused by a quota (`QuotaExceeded`).
    QuotaRejected,
    /// A request refused by the rate limit (`ThrottledOp`).
    Throttled,
    TenantCreate,
    TenantUpdate,
    TenantDelete,
}

impl AuditOp {
    /// The `operation` value as written in both formats.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOp::ServerStart => "serverStart",
            AuditOp::ServerStop => "serverStop",
            AuditOp::Create => "create",
            AuditOp::Delete => "delete",
            AuditOp::SetData => "setData",
            AuditOp::SetAcl => "setAcl",
            AuditOp::Multi => "multiOperation",
            AuditOp::Reconfig => "reconfig",
            AuditOp::EphemeralDeletion => "ephemeralZNodeDeletionOnSessionCloseOrExpire",
            AuditOp::Connect => "connect",
            AuditOp::ConnectionRefused => "connectionRefused",
            AuditOp::Auth => "auth",
            AuditOp::TenantBind => "tenantBind",
            AuditOp::SessionClose => "sessionClose",
            AuditOp::SessionExpire => "sessionExpire",
            AuditOp::QuotaRejected => "quotaRejected",
            AuditOp::Throttled => "throttled",
            AuditOp::TenantCreate => "tenantCreate",
            AuditOp::TenantUpdate => "tenantUpdate",
            AuditOp::TenantDelete => "tenantDelete",
        }
    }
}

/// ZooKeeper's `AuditEvent.Result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditResult {
    Success,
    Failure,
    Invoked,
}

impl AuditResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditResult::Success => "success",
            AuditResult::Failure => "failure",
            AuditResult::Invoked => "invoked",
        }
    }
}

/// Line encoding of a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditFormat {
    #[default]
    JsonLines,
    KeyValue,
}

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Wall-clock milliseconds since the Unix epoch, given by the caller.
    pub time_ms: u64,
    /// The serving node (its server id or name).
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_i64")]
    pub session: Option<i64>,
    /// `scheme:id` per principal; digest ids carry only the user
    /// ([`principal_for_audit`]).
    #[serde(default)]
    pub principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<IpAddr>,
    pub operation: AuditOp,
    /// The path as the tenant-bound client named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_relative: Option<String>,
    /// The server path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_absolute: Option<String>,
    /// ZooKeeper's lowercased `CreateMode` name ([`znode_type`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub znode_type: Option<String>,
    /// ZooKeeper's `ZKUtil.aclToString` form ([`acl_string`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_i64")]
    pub zxid: Option<i64>,
    pub result: AuditResult,
    /// The ZooKeeper error code; 0 on success.
    #[serde(default)]
    pub error_code: i32,
}

impl AuditRecord {
    /// A record with only the required fields; fill the rest by field.
    pub fn new(
        time_ms: u64,
        server: impl Into<String>,
        operation: AuditOp,
        result: AuditResult,
    ) -> Self {
        AuditRecord {
            time_ms,
            server: server.into(),
            tenant: None,
            session: None,
            principals: Vec::new(),
            client_ip: None,
            operation,
            path_relative: None,
            path_absolute: None,
            znode_type: None,
            acl: None,
            zxid: None,
            result,
            error_code: 0,
        }
    }

    /// The record as one line, without the trailing newline.
    pub fn encode(&self, format: AuditFormat) -> String {
        match format {
            AuditFormat::JsonLines => self.to_json_line(),
            AuditFormat::KeyValue => self.to_key_value_line(),
        }
    }

    pub fn to_json_line(&self) -> String {
        // serde_json escapes control characters, so the line has no raw newline.
        serde_json::to_string(self).expect("audit record encodes as JSON")
    }

    /// Parses one JSON line back (for tests and log tooling).
    pub fn from_json_line(line: &str) -> Result<AuditRecord, serde_json::Error> {
        serde_json::from_str(line)
    }

    pub fn to_key_value_line(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::with_capacity(14);
        if let Some(s) = self.session {
            pairs.push(("session", hex(s)));
        }
        let users: Vec<&str> = self
            .principals
            .iter()
            .map(|p| p.split_once(':').map_or(p.as_str(), |(_, id)| id))
            .filter(|u| !u.trim().is_empty())
            .collect();
        if !users.is_empty() {
            pairs.push(("user", users.join(",")));
        }
        if let Some(ip) = self.client_ip {
            pairs.push(("ip", corral_auth::ip::host_address(ip)));
        }
        pairs.push(("operation", self.operation.as_str().to_string()));
        push_opt(&mut pairs, "znode", &self.path_absolute);
        push_opt(&mut pairs, "znode_type", &self.znode_type);
        push_opt(&mut pairs, "acl", &self.acl);
        push_opt(&mut pairs, "tenant", &self.tenant);
        push_opt(&mut pairs, "znode_relative", &self.path_relative);
        if let Some(z) = self.zxid {
            pairs.push(("zxid", hex(z)));
        }
        if self.error_code != 0 {
            pairs.push(("error_code", self.error_code.to_string()));
        }
        pairs.push(("server", self.server.clone()));
        pairs.push(("time_ms", self.time_ms.to_string()));
        pairs.push(("result", self.result.as_str().to_string()));
        let mut line = String::new();
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                line.push('\t');
            }
            line.push_str(k);
            line.push('=');
            push_escaped(&mut line, v);
        }
        line
    }
}

/// A principal as the audit log shows it: `scheme:id`, except that a digest id
/// (`user:base64(sha1)`) is cut to its user, as ZooKeeper's audit `user` field
/// does, so password hashes never reach the log.
pub fn principal_for_audit(p: &corral_proto::Id) -> String {
    let id = match p.scheme.as_str() {
        "digest" => p.id.split(':').next().unwrap_or(""),
        _ => p.id.as_str(),
    };
    format!("{}:{}", p.scheme, id)
}

/// ZooKeeper's `ZKUtil.aclToString`: `scheme:id:perms` per entry with perms in
/// `cdrwa` order, entries concatenated with no separator (ZooKeeper's quirk).
pub fn acl_string(acl: &[Acl]) -> String {
    use corral_proto::opcode::perms;
    let mut s = String::new();
    for a in acl {
        s.push_str(&a.id.scheme);
        s.push(':');
        s.push_str(&a.id.id);
        s.push(':');
        for (bit, c) in [
            (perms::CREATE, 'c'),
            (perms::DELETE, 'd'),
            (perms::READ, 'r'),
            (perms::WRITE, 'w'),
            (perms::ADMIN, 'a'),
        ] {
            if a.perms & bit != 0 {
                s.push(c);
            }
        }
    }
    s
}

/// ZooKeeper's `CreateMode.toString().toLowerCase()`.
pub fn znode_type(mode: CreateMode) -> &'static str {
    match mode {
        CreateMode::Persistent => "persistent",
        CreateMode::PersistentSequential => "persistent_sequential",
        CreateMode::Ephemeral => "ephemeral",
        CreateMode::EphemeralSequential => "ephemeral_sequential",
        CreateMode::Container => "container",
        CreateMode::PersistentWithTtl => "persistent_with_ttl",
        CreateMode::PersistentSequentialWithTtl => "persistent_sequential_with_ttl",
    }
}

fn push_opt(pairs: &mut Vec<(&'static str, String)>, key: &'static str, v: &Option<String>) {
    if let Some(v) = v {
        pairs.push((key, v.clone()));
    }
}

/// Java's `"0x" + Long.toHexString(v)`: two's complement for negatives.
fn hex(v: i64) -> String {
    format!("0x{:x}", v as u64)
}

fn push_escaped(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Serde for `Option<i64>` as a `0x…` hex string.
mod hex_i64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&super::hex(*v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let digits = text
            .strip_prefix("0x")
            .ok_or_else(|| serde::de::Error::custom("expected a 0x-prefixed hex number"))?;
        u64::from_str_radix(digits, 16)
            .map(|v| Some(v as i64))
            .map_err(serde::de::Error::custom)
    }
}
