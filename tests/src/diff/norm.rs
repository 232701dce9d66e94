//! Normalisation of results so two servers can be compared.
//!
//! - zxids: `0` stays `0`; anything else becomes `zxid - base`, where `base` is the
//!   czxid of the run's root node on that server.
//! - ephemeralOwner: `0`, container (`i64::MIN`) and TTL encodings (top byte `0xff`)
//!   stay exact; session ids map to the logical session (`s2.1` = slot 2, 2nd session).
//! - ctime/mtime: only checked per server as relations (`mtime >= ctime`; same txn
//!   ⇒ same time; a plausible wall clock), never compared across servers.
//! - child lists, getEphemerals and whoAmI are sorted.

use crate::raw::{RawError, Reply};
use corral_proto::{Acl, ClientInfo, ErrorCode, MultiResult, Response, Stat, WatcherEvent};

/// Per-server context for normalisation.
#[derive(Debug, Default)]
pub struct Ctx {
    pub base: i64,
    /// (server session id, logical name).
    pub sessions: Vec<(i64, String)>,
}

impl Ctx {
    pub fn zxid(&self, z: i64) -> String {
        if z == 0 {
            "0".into()
        } else {
            format!("{:+}", z - self.base)
        }
    }

    pub fn session(&self, id: i64) -> String {
        if id == 0 {
            return "0".into();
        }
        if id == i64::MIN {
            return "container".into();
        }
        if (id as u64) >> 56 == 0xff {
            return format!("ttl:{:#x}", id as u64);
        }
        match self.sessions.iter().rev().find(|(s, _)| *s == id) {
            Some((_, name)) => name.clone(),
            None => format!("unknown-session:{:#x}", id as u64),
        }
    }

    /// A Stat with time relations checked into `notes`.
    pub fn stat(&self, s: &Stat, notes: &mut Vec<String>) -> String {
        if s.mtime < s.ctime {
            notes.push(format!("mtime {} < ctime {} in {s:?}", s.mtime, s.ctime));
        }
        if s.mzxid == s.czxid && s.mtime != s.ctime {
            notes.push(format!("mzxid == czxid but mtime != ctime in {s:?}"));
        }
        if s.czxid != 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            if (s.ctime - now).abs() > 86_400_000 {
                notes.push(format!("ctime {} is not near now ({now})", s.ctime));
            }
        }
        format!(
            "{{cz:{} mz:{} pz:{} v:{} cv:{} av:{} owner:{} len:{} nc:{}}}",
            self.zxid(s.czxid),
            self.zxid(s.mzxid),
            self.zxid(s.pzxid),
            s.version,
            s.cversion,
            s.aversion,
            self.session(s.ephemeral_owner),
            s.data_length,
            s.num_children
        )
    }

    pub fn reply(&self, r: &Result<Reply, RawError>, notes: &mut Vec<String>) -> String {
        match r {
            Ok(rep) => match &rep.body {
                None => err_code(rep.header.err),
                Some(b) => self.response(b, notes),
            },
            Err(e) => raw_error(e),
        }
    }

    pub fn response(&self, r: &Response, notes: &mut Vec<String>) -> String {
        match r {
            Response::Empty => "ok".into(),
            Response::Path(p) => format!("path {p:?}"),
            Response::PathStat(p, s) => format!("path {p:?} {}", self.stat(s, notes)),
            Response::Stat(s) => format!("stat {}", self.stat(s, notes)),
            Response::Data(d, s) => format!("data {} {}", data(d), self.stat(s, notes)),
            Response::Acl(a, s) => format!("acl {} {}", acls(a), self.stat(s, notes)),
            Response::Children(c) => format!("children {:?}", sorted(c)),
            Response::Children2(c, s) => {
                format!("children {:?} {}", sorted(c), self.stat(s, notes))
            }
            Response::Multi(rs) => {
                let v: Vec<String> = rs.iter().map(|m| self.multi_result(m, notes)).collect();
                format!("multi [{}]", v.join(", "))
            }
            Response::Strings(v) => format!("strings {:?}", sorted(v)),
            Response::Number(n) => format!("number {n}"),
            Response::WhoAmI(v) => format!("whoami {:?}", who(v)),
        }
    }

    fn multi_result(&self, m: &MultiResult, notes: &mut Vec<String>) -> String {
        match m {
            MultiResult::Create(p) => format!("create {p:?}"),
            MultiResult::Create2(p, s) => format!("create2 {p:?} {}", self.stat(s, notes)),
            MultiResult::Delete => "delete".into(),
            MultiResult::SetData(s) => format!("setData {}", self.stat(s, notes)),
            MultiResult::Check => "check".into(),
            MultiResult::GetData(d, s) => format!("getData {} {}", data(d), self.stat(s, notes)),
            MultiResult::GetChildren(c) => format!("getChildren {:?}", sorted(c)),
            MultiResult::Error(e) => format!("error {}", err_code(*e)),
        }
    }
}

pub fn err_code(e: i32) -> String {
    match ErrorCode::from_code(e) {
        Some(c) => format!("err {}({})", c.message(), e),
        None => format!("err ?({e})"),
    }
}

pub fn raw_error(e: &RawError) -> String {
    match e {
        RawError::ConnectionLoss(_) => "connection-loss".into(),
        RawError::Timeout(w) => format!("timeout({w})"),
        RawError::Io(_) => "io-error".into(),
        RawError::SessionRefused(r) => format!(
            "session-refused(timeout={} sid={:#x} ro={})",
            r.timeout_ms, r.session_id, r.read_only
        ),
        RawError::Protocol(p) => format!("protocol-error({p})"),
    }
}

pub fn data(d: &Option<Vec<u8>>) -> String {
    match d {
        None => "null".into(),
        Some(d) => format!("{:?}", String::from_utf8_lossy(d)),
    }
}

fn acls(a: &[Acl]) -> String {
    let v: Vec<String> = a
        .iter()
        .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms))
        .collect();
    format!("[{}]", v.join(","))
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn who(v: &[ClientInfo]) -> Vec<String> {
    let mut out: Vec<String> = v
        .iter()
        .map(|c| format!("{}:{}", c.auth_scheme, c.user))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn event(e: &WatcherEvent) -> String {
    format!("{}/{}/{}", event_name(e.event_type), e.state, e.path)
}

pub fn events(evs: &[WatcherEvent]) -> String {
    let v: Vec<String> = evs.iter().map(event).collect();
    format!("[{}]", v.join(", "))
}

/// Events as a sorted multiset, for a txn whose events have no contractual order.
pub fn events_unordered(evs: &[WatcherEvent]) -> String {
    let mut v: Vec<String> = evs.iter().map(event).collect();
    v.sort();
    format!("unordered [{}]", v.join(", "))
}

fn event_name(t: i32) -> String {
    match t {
        -1 => "None".into(),
        1 => "NodeCreated".into(),
        2 => "NodeDeleted".into(),
        3 => "NodeDataChanged".into(),
        4 => "NodeChildrenChanged".into(),
        5 => "DataWatchRemoved".into(),
        6 => "ChildWatchRemoved".into(),
        7 => "PersistentWatchRemoved".into(),
        t => format!("type{t}"),
    }
}
