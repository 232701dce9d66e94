//! Membership: which servers vote, as the log says at each zxid.
//!
//! A configuration ([`Membership`]) is named by its version, the zxid of the
//! reconfig txn that made it (zero for the initial one, from the config file
//! or the snapshot). A node knows the configuration in force at its log start
//! plus one per reconfig entry in its log window ([`Configs`]).
//!
//! # The rule
//!
//! A node's *view* is the configuration in force at its commit point plus
//! every later one in its log (at most one on a leader, which proposes a
//! reconfig only when none is pending; more on a learner that kept stale
//! entries). Every quorum a node needs — to finish an election, to decide
//! an epoch, to sync, to be established, to stay leader — is a quorum of
//! *each* configuration in its view. A txn commits when it is durable on a
//! quorum of the configuration in force at the commit point and of every
//! pending configuration at or before it; once a reconfig commits, the old
//! configuration stops counting. So a reconfig, and everything after it
//! until it commits, is acknowledged by a quorum of the old and of the new
//! configuration (joint consensus, as ZooKeeper's reconfig).
//!
//! Why that is safe: a leader that lacks a committed reconfig `r` can only
//! be established by a quorum of the old configuration, which meets `r`'s
//! old-configuration acks, so discovery finds a learner ahead of it and it
//! gives up. A leader that has `r` counts the new configuration and meets
//! every quorum that committed anything after `r`. A configuration becomes
//! active at commit; a leader that is not in the configuration it committed
//! steps down, and a learner of such a leader re-elects at once.
//!
//! Servers outside every configuration in a leader's view may still follow
//! it as non-voting learners (a joiner catching up before the reconfig that
//! adds it, a removed voter); their acks count for nothing. A server that is
//! not a voter of the newest configuration it knows never proposes itself
//! in an election.

use std::collections::BTreeSet;

use corral_proto::{DecodeError, Reader, Writer};
use corral_store::{Ensemble, LogEntry, Txn};

use super::types::{ServerId, Zxid};

/// One voting configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// The zxid of the reconfig that made it; zero for the initial one.
    pub version: Zxid,
    pub voters: BTreeSet<ServerId>,
}

impl Membership {
    pub fn new(version: Zxid, voters: impl IntoIterator<Item = ServerId>) -> Membership {
        Membership {
            version,
            voters: voters.into_iter().collect(),
        }
    }

    /// The configuration a reconfig entry installs, if `e` is one. An entry
    /// whose text does not parse changes nothing (prep never makes one;
    /// every node reads the same bytes, so every node agrees).
    pub fn of_entry(e: &LogEntry) -> Option<Membership> {
        let Txn::Reconfig { data } = &e.txn else {
            return None;
        };
        let parsed = std::str::from_utf8(data)
            .map_err(|e| e.to_string())
            .and_then(|t| Ensemble::parse(t).map_err(|e| e.0));
        match parsed {
            Ok(ens) if !ens.voters().is_empty() => Some(Membership::new(
                Zxid(e.hdr.zxid),
                ens.voters().into_iter().map(ServerId),
            )),
            Ok(_) => {
                tracing::error!(zxid = %Zxid(e.hdr.zxid), "reconfig with no voters ignored");
                None
            }
            Err(err) => {
                tracing::error!(zxid = %Zxid(e.hdr.zxid), %err, "unreadable reconfig ignored");
                None
            }
        }
    }

    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub fn contains(&self, s: ServerId) -> bool {
        self.voters.contains(&s)
    }

    /// Whether the servers for which `yes` holds include a quorum.
    pub fn has_quorum(&self, yes: impl Fn(ServerId) -> bool) -> bool {
        self.voters.iter().filter(|&&s| yes(s)).count() >= self.quorum()
    }

    /// The highest zxid that a quorum of this configuration has reached,
    /// given each server's reached zxid.
    pub fn quorum_zxid(&self, reached: impl Fn(ServerId) -> Zxid) -> Zxid {
        let mut z: Vec<Zxid> = self.voters.iter().map(|&s| reached(s)).collect();
        z.sort_unstable_by(|a, b| b.cmp(a));
        z.get(self.quorum() - 1).copied().unwrap_or(Zxid::ZERO)
    }
}

/// Writes a configuration: its version, then its voters as a jute vector of
/// `i64` ids (the peer wire and the persisted list share it).
pub fn write_membership(w: &mut Writer, m: &Membership) {
    w.write_i64(m.version.0);
    w.write_vec(&m.voters.iter().collect::<Vec<_>>(), |w, s| {
        w.write_i64(s.0 as i64)
    });
}

pub fn read_membership(r: &mut Reader<'_>) -> Result<Membership, DecodeError> {
    let version = Zxid(r.read_i64()?);
    let voters = r.read_vec(8, |r| Ok(ServerId(r.read_i64()? as u64)))?;
    Ok(Membership::new(version, voters))
}

/// A list of configurations as persisted (a jute vector).
pub fn encode_list(list: &[Membership]) -> Vec<u8> {
    let mut w = Writer::with_capacity(64);
    w.write_vec(list, write_membership);
    w.into_inner()
}

pub fn decode_list(b: &[u8]) -> Result<Vec<Membership>, DecodeError> {
    let mut r = Reader::new(b);
    let list = r.read_vec(12, read_membership)?;
    r.finish()?;
    Ok(list)
}

/// The configurations a node knows, by increasing version: the one in force
/// at its log start, then one per reconfig entry of its log window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Configs {
    list: Vec<Membership>,
    /// A configuration peers reported in force (committed), which may be
    /// past this node's own commit point (see [`Configs::learn`]).
    floor: Option<Membership>,
}

impl Configs {
    pub fn new(base: Membership) -> Configs {
        Configs {
            list: vec![base],
            floor: None,
        }
    }

    /// Starts from a list a leader gave (persisted when adopted) merged with
    /// the configuration of the local snapshot; both come from the one
    /// committed history, so they agree where they overlap. The initial
    /// configuration of the config file is then never used: a joiner's
    /// names itself, the ensemble's real one may not.
    pub fn recovered(adopted: Vec<Membership>, snapshot: Option<Membership>) -> Configs {
        let mut list = adopted;
        if let Some(m) = snapshot {
            if !list.iter().any(|x| x.version == m.version) {
                list.push(m);
            }
        }
        list.sort_by_key(|m| m.version);
        assert!(!list.is_empty(), "recovered with no configuration");
        Configs { list, floor: None }
    }

    pub fn list(&self) -> &[Membership] {
        &self.list
    }

    /// The newest configuration known (committed or not).
    pub fn latest(&self) -> &Membership {
        self.list
            .last()
            .expect("a node always knows a configuration")
    }

    /// The configuration in force at `z` (the oldest known if `z` precedes it).
    pub fn at(&self, z: Zxid) -> &Membership {
        self.list
            .iter()
            .rev()
            .find(|m| m.version <= z)
            .unwrap_or(&self.list[0])
    }

    /// The configuration in force for a node whose commit point is
    /// `committed`: the one there, or a later one peers reported committed.
    pub fn active(&self, committed: Zxid) -> &Membership {
        let own = self.at(committed);
        match &self.floor {
            Some(f) if f.version > own.version => f,
            _ => own,
        }
    }

    /// The view at commit point `committed`: the configuration in force,
    /// then every later one.
    pub fn view(&self, committed: Zxid) -> Vec<&Membership> {
        let base = self.active(committed);
        let mut v = vec![base];
        v.extend(self.list.iter().filter(|m| m.version > base.version));
        v
    }

    /// Whether a configuration newer than the one in force is known.
    pub fn pending(&self, committed: Zxid) -> bool {
        self.latest().version > self.active(committed).version
    }

    /// A peer reports configuration `m` in force, so the reconfig that made
    /// it committed. It is in force for us too, even before our own commit
    /// point reaches it, and even if our log lacks that reconfig: a node
    /// that restarted (its commit point unknown), missed a COMMIT or lags
    /// still agrees with the rest on who votes and who may lead. ZooKeeper's
    /// election notifications carry the configuration for the same reason.
    /// Peers are cluster members authenticated by the transport.
    pub fn learn(&mut self, committed: Zxid, m: &Membership) -> bool {
        if m.version <= self.active(committed).version {
            return false;
        }
        self.floor = Some(m.clone());
        true
    }

    pub(crate) fn on_append(&mut self, e: &LogEntry) {
        if let Some(m) = Membership::of_entry(e) {
            // A recovered list may already hold it.
            if m.version > self.latest().version {
                self.list.push(m);
            }
        }
    }

    /// Forgets configurations made after `z` (their entries were dropped).
    pub(crate) fn truncate_after(&mut self, z: Zxid) {
        while self.list.len() > 1 && self.latest().version > z {
            self.list.pop();
        }
    }

    /// Forgets configurations superseded at or before `start`.
    pub(crate) fn trim(&mut self, start: Zxid) {
        while self.list.len() > 1 && self.list[1].version <= start {
            self.list.remove(0);
        }
    }

    /// Takes a leader's list as the truth through `through` (this node's log
    /// now agrees with the leader's up to there), keeping what this node's
    /// own log adds after it.
    pub(crate) fn adopt(&mut self, leader: &[Membership], through: Zxid) {
        let own_later: Vec<Membership> = self
            .list
            .iter()
            .filter(|m| m.version > through)
            .cloned()
            .collect();
        let mut list: Vec<Membership> = leader
            .iter()
            .filter(|m| m.version <= through)
            .cloned()
            .collect();
        if list.is_empty() {
            // A leader's list always starts at or below its log start, which
            // is at or below any point it syncs a learner to.
            tracing::error!(%through, "leader sent no configuration in force at the sync point");
            return;
        }
        list.extend(own_later);
        self.list = list;
    }

    /// Every server named by a configuration in `view`.
    pub fn union(view: &[&Membership]) -> BTreeSet<ServerId> {
        view.iter().flat_map(|m| m.voters.iter().copied()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_store::TxnHeader;

    fn ids(v: &[u64]) -> Vec<ServerId> {
        v.iter().copied().map(ServerId).collect()
    }

    fn reconfig(z: Zxid, voters: &[u64]) -> LogEntry {
        let text: String = voters
            .iter()
            .map(|v| format!("server.{v}=h:{}:{}\n", 1000 + v, 2000 + v))
            .collect();
        LogEntry {
            hdr: TxnHeader {
                session_id: 0,
                cxid: 0,
                zxid: z.0,
                time_ms: 0,
            },
            txn: Txn::Reconfig {
                data: text.into_bytes(),
            },
        }
    }

    #[test]
    fn views_hold_the_committed_config_and_every_pending_one() {
        // Goal: the view is the config at the commit point plus later ones,
        // and truncation, trimming and adoption keep the list right.
        let z = |c| Zxid::new(1, c);
        let mut c = Configs::new(Membership::new(Zxid::ZERO, ids(&[1, 2, 3])));
        c.on_append(&reconfig(z(5), &[1, 2, 3, 4]));
        c.on_append(&reconfig(z(9), &[2, 3, 4]));
        assert_eq!(c.view(z(4)).len(), 3);
        assert_eq!(c.view(z(5)).len(), 2);
        assert_eq!(c.at(z(7)).voters, ids(&[1, 2, 3, 4]).into_iter().collect());
        assert!(c.pending(z(8)) && !c.pending(z(9)));
        c.truncate_after(z(8));
        assert_eq!(c.latest().version, z(5));
        c.trim(z(6));
        assert_eq!(c.list().len(), 1);
        assert_eq!(c.at(Zxid::ZERO).version, z(5), "the oldest known stands in");
        let leader = vec![Membership::new(z(2), ids(&[7, 8, 9]))];
        c.on_append(&reconfig(z(12), &[7, 8]));
        c.adopt(&leader, z(10));
        let versions: Vec<Zxid> = c.list().iter().map(|m| m.version).collect();
        assert_eq!(versions, vec![z(2), z(12)]);
    }

    #[test]
    fn quorums_count_only_members() {
        // Goal: has_quorum and quorum_zxid ignore non-members.
        let m = Membership::new(Zxid::ZERO, ids(&[1, 2, 3, 4, 5]));
        assert!(m.has_quorum(|s| s.0 <= 3 || s.0 == 9));
        assert!(!m.has_quorum(|s| s.0 <= 2 || s.0 >= 6));
        let z = |s: ServerId| Zxid(s.0 as i64 * 10);
        assert_eq!(m.quorum_zxid(z), Zxid(30));
        let bad = LogEntry {
            txn: Txn::Reconfig {
                data: b"nonsense".to_vec(),
            },
            ..reconfig(Zxid(1), &[1])
        };
        assert_eq!(Membership::of_entry(&bad), None);
    }
}
