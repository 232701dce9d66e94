//! The ensemble's membership in ZooKeeper's dynamic configuration format: the
//! data of `/zookeeper/config` and of a reconfig txn.
//!
//! # Format (facts from ZooKeeper's `QuorumPeer.QuorumServer` and `QuorumMaj`)
//!
//! One `server.<id>=<spec>` line per member, in id order, then
//! `version=<hex>` (the zxid of the reconfig that made it, `0` before any).
//! A spec is `host:quorumPort:electionPort[:role][;[clientHost:]clientPort]`,
//! role `participant` (the default, a voter) or `observer`. A client part that
//! is only a port means host `0.0.0.0`. The written form always names the
//! role, and the client host when there is a client part, so
//! `server.5=h:1:2;3456` is written back as `server.5=h:1:2:participant;0.0.0.0:3456`.
//!
//! In corral the quorum port is the peer (QUIC) port; the election port is
//! kept for compatibility and unused (election shares the peer connection),
//! so it may equal the quorum port.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The path that holds the ensemble's configuration.
pub const CONFIG_NODE: &str = "/zookeeper/config";

/// Why a configuration text or server spec is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EnsembleError(pub String);

fn bad(msg: impl Into<String>) -> EnsembleError {
    EnsembleError(msg.into())
}

/// A member's role: a voter or a non-voting observer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRole {
    Participant,
    Observer,
}

/// One `server.<id>` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub id: u64,
    pub host: String,
    /// The peer (QUIC) port.
    pub quorum_port: u16,
    /// Kept as written; corral does not use it.
    pub election_port: u16,
    pub role: MemberRole,
    /// The client listener as `host:port`, when the entry names one.
    pub client: Option<String>,
}

fn port(s: &str, what: &str) -> Result<u16, EnsembleError> {
    s.trim()
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| bad(format!("{what} port {s:?} is not a port number")))
}

/// Splits `host:port` (IPv6 hosts in brackets) into its parts.
fn host_parts(s: &str) -> Vec<&str> {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let host = &rest[..end];
            let tail = &rest[end + 1..];
            let mut v = vec![host];
            if let Some(t) = tail.strip_prefix(':') {
                v.extend(t.split(':'));
            } else if !tail.is_empty() {
                v.push(tail);
            }
            return v;
        }
    }
    s.split(':').collect()
}

fn delimited(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

impl ServerSpec {
    /// Parses the value of a `server.<id>=` entry.
    pub fn parse(id: u64, spec: &str) -> Result<ServerSpec, EnsembleError> {
        let mut parts = spec.trim().split(';');
        let server = parts.next().unwrap_or_default();
        let client = parts.next().unwrap_or_default().trim();
        if parts.any(|p| !p.trim().is_empty()) {
            return Err(bad(format!(
                "server.{id}: secure client ports are not supported in {spec:?}"
            )));
        }
        if server.contains('|') {
            return Err(bad(format!(
                "server.{id}: multiple addresses are not supported in {spec:?}"
            )));
        }
        let p = host_parts(server.trim());
        if !(3..=4).contains(&p.len()) || p[0].is_empty() {
            return Err(bad(format!(
                "server.{id}: {spec:?} does not have the form host:port:port[:role][;[host:]port]"
            )));
        }
        let quorum_port = port(p[1], "quorum")?;
        // Equal ports are fine for corral (election shares the peer port);
        // reconfig refuses them in what clients send, as ZooKeeper does.
        let election_port = port(p[2], "election")?;
        let role = match p.get(3).map(|r| r.trim().to_ascii_lowercase()).as_deref() {
            None | Some("participant") => MemberRole::Participant,
            Some("observer") => MemberRole::Observer,
            Some(r) => return Err(bad(format!("server.{id}: unknown role {r:?}"))),
        };
        let client = if client.is_empty() {
            None
        } else {
            let c = host_parts(client);
            let (host, p) = match c.as_slice() {
                [p] => ("0.0.0.0", *p),
                [h, p] if !h.is_empty() => (*h, *p),
                _ => return Err(bad(format!("server.{id}: bad client address {client:?}"))),
            };
            Some(format!("{}:{}", delimited(host), port(p, "client")?))
        };
        Ok(ServerSpec {
            id,
            host: p[0].trim().to_string(),
            quorum_port,
            election_port,
            role,
            client,
        })
    }

    /// Parses one `server.<id>=<spec>` line (as reconfig's joining list has).
    pub fn parse_line(line: &str) -> Result<ServerSpec, EnsembleError> {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| bad(format!("{line:?} is not server.<id>=<spec>")))?;
        let id = parse_server_key(key.trim())
            .ok_or_else(|| bad(format!("{key:?} is not server.<id>")))?;
        ServerSpec::parse(id, value)
    }

    pub fn is_voter(&self) -> bool {
        self.role == MemberRole::Participant
    }
}

fn parse_server_key(key: &str) -> Option<u64> {
    key.strip_prefix("server.")?.parse().ok()
}

impl fmt::Display for ServerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role {
            MemberRole::Participant => "participant",
            MemberRole::Observer => "observer",
        };
        write!(
            f,
            "{}:{}:{}:{role}",
            delimited(&self.host),
            self.quorum_port,
            self.election_port
        )?;
        if let Some(c) = &self.client {
            write!(f, ";{c}")?;
        }
        Ok(())
    }
}

/// A whole configuration: its members and version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ensemble {
    pub servers: BTreeMap<u64, ServerSpec>,
    /// The zxid of the reconfig txn that made it; 0 for the initial one.
    pub version: i64,
}

impl Ensemble {
    /// Parses `server.<id>=` lines and an optional `version=<hex>`; lines may
    /// also be separated by commas (as reconfig's new member list is). Blank
    /// lines and `#` comments are skipped; other keys are refused.
    pub fn parse(text: &str) -> Result<Ensemble, EnsembleError> {
        let mut e = Ensemble::default();
        for line in text.split(['\n', ',']).map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(v) = line.strip_prefix("version=") {
                e.version = i64::from_str_radix(v.trim(), 16)
                    .map_err(|_| bad(format!("version {v:?} is not hexadecimal")))?;
                continue;
            }
            let s = ServerSpec::parse_line(line)?;
            if e.servers.insert(s.id, s).is_some() {
                return Err(bad(format!("{line:?} repeats a server id")));
            }
        }
        Ok(e)
    }

    /// The voters' ids.
    pub fn voters(&self) -> BTreeSet<u64> {
        self.servers
            .values()
            .filter(|s| s.is_voter())
            .map(|s| s.id)
            .collect()
    }

    /// Refuses two members on one peer address (ZooKeeper's
    /// `checkAddressDuplicate`).
    pub fn check_addresses(&self) -> Result<(), EnsembleError> {
        let mut seen = BTreeMap::new();
        for s in self.servers.values() {
            for p in [s.quorum_port, s.election_port] {
                if let Some(other) = seen.insert((s.host.as_str(), p), s.id) {
                    if other != s.id {
                        return Err(bad(format!(
                            "server.{} and server.{other} share the address {}:{p}",
                            s.id, s.host
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The text stored in `/zookeeper/config`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for s in self.servers.values() {
            out.push_str(&format!("server.{}={s}\n", s.id));
        }
        out.push_str(&format!("version={:x}", self.version));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_in_zookeepers_written_form() {
        // Goal: specs parse as ZooKeeper's QuorumServer does and print as its toString.
        let s =
            ServerSpec::parse_line("server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456").unwrap();
        assert_eq!(s.role, MemberRole::Observer);
        assert_eq!(
            format!("server.{}={s}", s.id),
            "server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456"
        );
        let s = ServerSpec::parse(5, "h:1:2;3456").unwrap();
        assert_eq!(s.to_string(), "h:1:2:participant;0.0.0.0:3456");
        let s = ServerSpec::parse(6, "[::1]:7:8:participant;[::1]:9").unwrap();
        assert_eq!((s.host.as_str(), s.quorum_port), ("::1", 7));
        assert_eq!(s.to_string(), "[::1]:7:8:participant;[::1]:9");
        assert_eq!(ServerSpec::parse(7, "h:1:2").unwrap().client, None);
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        // Goal: malformed entries fail with a message naming the server.
        for (line, want) in [
            ("some thing", "server.<id>"),
            ("server.x=h:1:2", "server.<id>"),
            ("server.1=h:1", "does not have the form"),
            ("server.1=h:a:2", "not a port"),
            ("server.1=h:1:2:leader", "unknown role"),
            ("server.1=h:1:2;h:x", "not a port"),
            ("server.1=h:1:2;;5", "secure client"),
            ("server.1=a:1:2|b:1:2", "multiple addresses"),
        ] {
            let e = ServerSpec::parse_line(line).unwrap_err();
            assert!(e.0.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn an_ensemble_prints_in_id_order_with_a_hex_version() {
        // Goal: the /zookeeper/config text matches ZooKeeper's QuorumMaj.toString.
        let e = Ensemble::parse(
            "server.3=h:5:6:participant;h:3,server.1=h:1:2;h:1\n\
             server.9=h:7:8:observer;9\nversion=100000003",
        )
        .unwrap();
        assert_eq!(e.version, 0x1_0000_0003);
        assert_eq!(e.voters(), BTreeSet::from([1, 3]));
        assert_eq!(
            e.to_text(),
            "server.1=h:1:2:participant;h:1\nserver.3=h:5:6:participant;h:3\n\
             server.9=h:7:8:observer;0.0.0.0:9\nversion=100000003"
        );
        assert_eq!(Ensemble::parse(&e.to_text()).unwrap(), e);
        assert!(Ensemble::parse("server.1=h:1:2\nserver.1=h:3:4").is_err());
        assert!(Ensemble::parse("version=xyz").is_err());
        let dup = Ensemble::parse("server.1=h:1:2\nserver.2=h:2:3").unwrap();
        assert!(dup.check_addresses().unwrap_err().0.contains("share"));
    }
}
