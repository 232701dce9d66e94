//! The in-memory view of a node's txn log: a window of entries after `start`
//! (the latest snapshot, or the point the window was trimmed to), and the
//! commit point. The durable copy lives behind the driver's `TxnLog`.

use std::collections::VecDeque;

use corral_store::LogEntry;

use super::members::{Configs, Membership};
use super::message::Snapshot;
use super::types::Zxid;

#[derive(Debug)]
pub(crate) struct Log {
    /// Entries after this zxid are in `entries`; it is at most `snapshot.zxid`.
    start: Zxid,
    entries: VecDeque<LogEntry>,
    /// Highest zxid handed to the driver as committed.
    committed: Zxid,
    /// The latest snapshot the driver reported (what a SNAP sync sends).
    snapshot: Snapshot,
    /// The configurations in force from `start` on (see `members`).
    configs: Configs,
}

fn zxid_of(e: &LogEntry) -> Zxid {
    Zxid(e.hdr.zxid)
}

impl Log {
    /// `configs` holds the configuration in force at the snapshot.
    pub(crate) fn new(snapshot: Option<Snapshot>, entries: Vec<LogEntry>, configs: Configs) -> Log {
        let snapshot = snapshot.unwrap_or_else(Snapshot::empty);
        let mut log = Log {
            start: snapshot.zxid,
            entries: VecDeque::new(),
            committed: snapshot.zxid,
            snapshot,
            configs,
        };
        for e in entries {
            if zxid_of(&e) > log.last() {
                log.append(e);
            }
        }
        log
    }

    pub(crate) fn last(&self) -> Zxid {
        self.entries.back().map(zxid_of).unwrap_or(self.start)
    }

    pub(crate) fn start(&self) -> Zxid {
        self.start
    }

    pub(crate) fn committed(&self) -> Zxid {
        self.committed
    }

    pub(crate) fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub(crate) fn configs(&self) -> &Configs {
        &self.configs
    }

    /// A peer reports configuration `version` in force (see `Configs::learn`).
    pub(crate) fn learn_config(&mut self, m: &Membership) -> bool {
        self.configs.learn(self.committed, m)
    }

    /// Takes a leader's configurations as the truth through `through`;
    /// whether the list changed (it is then persisted).
    pub(crate) fn adopt_configs(&mut self, leader: &[Membership], through: Zxid) -> bool {
        let before = self.configs.list().to_vec();
        self.configs.adopt(leader, through);
        before != self.configs.list()
    }

    fn index_of(&self, z: Zxid) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| zxid_of(e).cmp(&z))
    }

    /// Whether the log ends at or passes through `z` (the window start counts).
    pub(crate) fn contains(&self, z: Zxid) -> bool {
        z == self.start || self.index_of(z).is_ok()
    }

    /// Entries with zxid > `z`, in order.
    pub(crate) fn after(&self, z: Zxid) -> Vec<LogEntry> {
        let i = match self.index_of(z) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        self.entries.range(i..).cloned().collect()
    }

    /// At most `max` entries with zxid > `z` and ≤ `through`, in order.
    pub(crate) fn range_after(&self, z: Zxid, through: Zxid, max: usize) -> Vec<LogEntry> {
        let i = match self.index_of(z) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        self.entries
            .range(i..)
            .take_while(|e| zxid_of(e) <= through)
            .take(max)
            .cloned()
            .collect()
    }

    /// The last zxid strictly below `z` (or the window start).
    pub(crate) fn before(&self, z: Zxid) -> Zxid {
        let i = match self.index_of(z) {
            Ok(i) | Err(i) => i,
        };
        if i == 0 {
            self.start
        } else {
            zxid_of(&self.entries[i - 1])
        }
    }

    /// The first entry's zxid above `z`, if any.
    pub(crate) fn first_after(&self, z: Zxid) -> Option<Zxid> {
        let i = match self.index_of(z) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        self.entries.get(i).map(zxid_of)
    }

    /// How many entries follow the commit point (without listing them).
    pub(crate) fn uncommitted_len(&self) -> usize {
        let i = match self.index_of(self.committed) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        self.entries.len() - i
    }

    /// Entries after the commit point (proposed or in doubt).
    pub(crate) fn uncommitted(&self) -> Vec<Zxid> {
        self.after(self.committed).iter().map(zxid_of).collect()
    }

    /// Invariant 1: zxids strictly increase in every log.
    pub(crate) fn append(&mut self, e: LogEntry) {
        assert!(
            zxid_of(&e) > self.last(),
            "log order: {} appended after {}",
            zxid_of(&e),
            self.last()
        );
        self.configs.on_append(&e);
        self.entries.push_back(e);
    }

    /// Drops entries after `z`. A committed entry is never dropped.
    pub(crate) fn truncate_after(&mut self, z: Zxid) {
        assert!(
            z >= self.committed,
            "truncating to {z} would drop committed entries up to {}",
            self.committed
        );
        let keep = match self.index_of(z) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        self.entries.truncate(keep);
        self.configs.truncate_after(z);
    }

    /// Replaces everything with a snapshot and the entries after it.
    pub(crate) fn reset(&mut self, snapshot: Snapshot, entries: Vec<LogEntry>) {
        self.start = snapshot.zxid;
        self.committed = snapshot.zxid;
        self.snapshot = snapshot;
        self.entries.clear();
        // Until the leader's list arrives with NEWLEADER, the old base stands
        // in; nothing counts quorums in between.
        self.configs.truncate_after(self.start);
        for e in entries {
            self.append(e);
        }
    }

    /// Marks entries up to `z` committed (capped at the log's end) and returns
    /// the newly committed ones in zxid order.
    pub(crate) fn commit_through(&mut self, z: Zxid) -> Vec<LogEntry> {
        let z = z.min(self.last());
        if z <= self.committed {
            return Vec::new();
        }
        let out: Vec<LogEntry> = self
            .after(self.committed)
            .into_iter()
            .take_while(|e| zxid_of(e) <= z)
            .collect();
        // The commit point is always a logged zxid (sync decisions look it
        // up), never a bound between two entries.
        if let Some(last) = out.last() {
            self.committed = zxid_of(last);
        }
        out
    }

    /// Records a newer snapshot the driver took at or below the commit point.
    pub(crate) fn set_snapshot(&mut self, s: Snapshot) -> bool {
        if s.zxid > self.committed || s.zxid < self.snapshot.zxid || !self.contains(s.zxid) {
            return false;
        }
        self.snapshot = s;
        true
    }

    /// Drops committed entries the latest snapshot covers while more than
    /// `window` committed entries are held.
    pub(crate) fn trim(&mut self, window: usize) {
        loop {
            let committed_held = match self.index_of(self.committed) {
                Ok(i) => i + 1,
                Err(i) => i,
            };
            let Some(front) = self.entries.front().map(zxid_of) else {
                return;
            };
            if committed_held <= window || front > self.snapshot.zxid {
                return;
            }
            self.entries.pop_front();
            self.start = front;
            self.configs.trim(front);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ServerId;
    use corral_store::{Txn, TxnHeader};

    fn base() -> Configs {
        Configs::new(Membership::new(Zxid::ZERO, [ServerId(1)]))
    }

    fn e(z: Zxid) -> LogEntry {
        LogEntry {
            hdr: TxnHeader {
                session_id: 1,
                cxid: 0,
                zxid: z.0,
                time_ms: 0,
            },
            txn: Txn::Error(0),
        }
    }

    #[test]
    fn window_queries_and_trim() {
        // Goal: after/before/contains answer over the window, and trimming
        // keeps what the latest snapshot does not cover.
        let z = |c| Zxid::new(1, c);
        let mut log = Log::new(None, (1..=5).map(|c| e(z(c))).collect(), base());
        assert_eq!(log.last(), z(5));
        assert!(log.contains(Zxid::ZERO) && log.contains(z(3)));
        assert_eq!(log.after(z(3)).len(), 2);
        assert_eq!(log.before(z(3)), z(2));
        assert_eq!(log.first_after(z(5)), None);
        assert_eq!(log.commit_through(z(4)).len(), 4);
        assert_eq!(log.uncommitted(), vec![z(5)]);
        assert_eq!(log.uncommitted_len(), 1);
        log.trim(1);
        assert_eq!(log.start(), Zxid::ZERO, "no snapshot covers anything yet");
        assert!(log.set_snapshot(Snapshot {
            zxid: z(3),
            state: Vec::new().into()
        }));
        log.trim(1);
        assert_eq!(log.start(), z(3));
        assert_eq!(log.after(Zxid::ZERO).len(), 2);
    }

    #[test]
    fn the_commit_point_is_always_a_logged_zxid() {
        // Goal: committing through a bound between two entries stops at the
        // entry below it (a reconfig's joint-quorum bound is such a bound).
        let mut log = Log::new(None, vec![e(Zxid::new(1, 1)), e(Zxid::new(2, 1))], base());
        assert_eq!(log.commit_through(Zxid::new(2, 0)).len(), 1);
        assert_eq!(log.committed(), Zxid::new(1, 1));
        assert!(log.contains(log.committed()));
    }

    #[test]
    #[should_panic(expected = "committed")]
    fn truncating_committed_entries_panics() {
        // Goal: dropping a committed entry is a loud invariant failure.
        let mut log = Log::new(None, (1..=3).map(|c| e(Zxid::new(1, c))).collect(), base());
        log.commit_through(Zxid::new(1, 2));
        log.truncate_after(Zxid::new(1, 1));
    }
}
