//! The invariants, checked as outputs happen.

use std::collections::BTreeMap;

use corral_store::LogEntry;
use corral_voter::core::{Epoch, Membership, ServerId, Zxid};

/// What the whole cluster has committed, as first seen by any node.
pub struct Checker {
    /// zxid -> (entry, state digest after applying it).
    committed: BTreeMap<Zxid, (LogEntry, u64)>,
    /// epoch -> the server that led it.
    leaders: BTreeMap<Epoch, ServerId>,
    /// The committed configurations by version, the initial one at zero.
    configs: BTreeMap<Zxid, Membership>,
}

impl Checker {
    pub fn new(initial: Membership) -> Checker {
        Checker {
            committed: BTreeMap::new(),
            leaders: BTreeMap::new(),
            configs: BTreeMap::from([(Zxid::ZERO, initial)]),
        }
    }

    /// The configuration committed history puts in force at `z`.
    pub fn config_at(&self, z: Zxid) -> &Membership {
        self.configs
            .range(..=z)
            .next_back()
            .map(|(_, m)| m)
            .expect("the initial configuration is at zero")
    }

    /// Committed reconfigs so far.
    pub fn reconfigs(&self) -> usize {
        self.configs.len() - 1
    }

    /// Invariant: a serving node's configuration at its commit point is the
    /// one committed history puts there (every server agrees on the
    /// configuration at each zxid).
    pub fn config(
        &self,
        node: ServerId,
        committed: Zxid,
        active: &Membership,
    ) -> Result<(), String> {
        // A node may also be in a later configuration than the one at its
        // commit point when peers told it that one is in force; it must then
        // be exactly a committed one.
        let want = if active.version > committed {
            self.configs.get(&active.version)
        } else {
            Some(self.config_at(committed))
        };
        if want != Some(active) {
            return Err(format!(
                "{node} at {committed} is in configuration {active:?}, committed history says {want:?}"
            ));
        }
        Ok(())
    }

    pub fn max_committed(&self) -> Zxid {
        self.committed
            .keys()
            .next_back()
            .copied()
            .unwrap_or(Zxid::ZERO)
    }

    pub fn committed_count(&self) -> usize {
        self.committed.len()
    }

    /// Invariant: at most one leader per epoch.
    pub fn leader(&mut self, epoch: Epoch, id: ServerId) -> Result<(), String> {
        match self.leaders.insert(epoch, id) {
            Some(prev) if prev != id => {
                Err(format!("two leaders in epoch {epoch}: {prev} and {id}"))
            }
            _ => Ok(()),
        }
    }

    /// A node applied `entry` right after `prev` and reached `digest`.
    /// Invariants: committed prefixes agree, nothing committed is skipped or
    /// reordered, equal digests at equal zxids, zxids strictly increase.
    pub fn commit(
        &mut self,
        node: ServerId,
        prev: Zxid,
        entry: &LogEntry,
        digest: u64,
    ) -> Result<(), String> {
        let z = Zxid(entry.hdr.zxid);
        if z <= prev {
            return Err(format!("{node} committed {z} after {prev}"));
        }
        let before = self
            .committed
            .range(..z)
            .next_back()
            .map(|(&k, _)| k)
            .unwrap_or(Zxid::ZERO);
        if before != prev {
            return Err(format!(
                "{node} committed {z} after {prev}, but the committed txn before {z} is {before}"
            ));
        }
        match self.committed.get(&z) {
            Some((e, d)) => {
                if e != entry {
                    return Err(format!("{node} committed a different txn at {z}"));
                }
                if *d != digest {
                    return Err(format!(
                        "{node} has digest {digest:#x} at {z}, others {d:#x}"
                    ));
                }
            }
            None => {
                if z < self.max_committed() {
                    return Err(format!(
                        "{node} committed {z} below the committed maximum {}",
                        self.max_committed()
                    ));
                }
                if let Some(m) = Membership::of_entry(entry) {
                    self.configs.insert(z, m);
                }
                self.committed.insert(z, (entry.clone(), digest));
            }
        }
        Ok(())
    }

    /// The digest every replica must have after applying `z`.
    pub fn digest_at(&self, z: Zxid) -> Option<u64> {
        self.committed.get(&z).map(|(_, d)| *d)
    }

    /// An observer applied `entry` right after `prev` and reached `digest`.
    /// Invariants: as for [`Checker::commit`], and the txn was already
    /// committed (a feed only carries what a voter applied), so an
    /// observer's applied sequence is always a prefix of the committed one.
    pub fn observe(
        &mut self,
        node: ServerId,
        prev: Zxid,
        entry: &LogEntry,
        digest: u64,
    ) -> Result<(), String> {
        let z = Zxid(entry.hdr.zxid);
        if !self.committed.contains_key(&z) {
            return Err(format!(
                "observer {node} applied {z} after {prev}, which no voter has applied"
            ));
        }
        self.commit(node, prev, entry, digest)
    }

    /// A node installed a snapshot at `z`: it must be a committed point.
    pub fn snapshot(&self, node: ServerId, z: Zxid, digest: u64) -> Result<(), String> {
        if z == Zxid::ZERO {
            return Ok(());
        }
        match self.committed.get(&z) {
            Some((_, d)) if *d == digest => Ok(()),
            Some((_, d)) => Err(format!(
                "{node} installed a snapshot at {z} with digest {digest:#x}, committed {d:#x}"
            )),
            None => Err(format!("{node} installed a snapshot at uncommitted {z}")),
        }
    }
}
