//! The watch manager: one-shot data/exist/child watches, persistent and
//! persistent-recursive watches, with ZooKeeper's firing rules.
//!
//! Two tables, as in ZooKeeper: the data table holds data/exist watches, the
//! data half of persistent watches and every recursive watch; the child table
//! holds child watches and the child half of persistent watches. A trigger
//! fires at most one event per connection. Standard watches are removed when
//! they fire; persistent ones stay. Recursive watches on an ancestor see every
//! event below it except `NodeChildrenChanged`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use corral_proto::opcode::{event_type, keeper_state, watcher_type};
use corral_proto::WatcherEvent;
use corral_store::{Trigger, TriggerKind};

/// A connection's identity within this server.
pub type ConnId = u64;

/// How a watch was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchKind {
    /// getData, or exists (on a node that exists or not).
    Data,
    /// getChildren.
    Child,
    /// addWatch PERSISTENT.
    Persistent,
    /// addWatch PERSISTENT_RECURSIVE.
    PersistentRecursive,
}

const STANDARD: u8 = 1;
const PERSISTENT: u8 = 2;
const RECURSIVE: u8 = 4;

#[derive(Default)]
struct Table {
    by_path: HashMap<String, HashMap<ConnId, u8>>,
    recursive_count: usize,
}

impl Table {
    fn add(&mut self, conn: ConnId, path: &str, mode: u8) -> bool {
        let modes = self
            .by_path
            .entry(path.to_string())
            .or_default()
            .entry(conn)
            .or_insert(0);
        let added = *modes & mode == 0;
        if added && mode == RECURSIVE {
            self.recursive_count += 1;
        }
        *modes |= mode;
        added
    }

    /// Clears `mask` bits for (path, conn); true if any were set.
    fn clear(&mut self, conn: ConnId, path: &str, mask: u8) -> bool {
        let Some(conns) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(modes) = conns.get_mut(&conn) else {
            return false;
        };
        let hit = *modes & mask;
        if hit & RECURSIVE != 0 {
            self.recursive_count -= 1;
        }
        *modes &= !mask;
        if *modes == 0 {
            conns.remove(&conn);
            if conns.is_empty() {
                self.by_path.remove(path);
            }
        }
        hit != 0
    }

    fn has(&self, conn: ConnId, path: &str, mask: u8) -> bool {
        self.by_path
            .get(path)
            .and_then(|c| c.get(&conn))
            .is_some_and(|m| m & mask != 0)
    }

    /// Fires for `path`: exact-path watchers (one-shot ones removed) plus
    /// recursive watchers on ancestors.
    fn trigger(&mut self, path: &str, out: &mut HashSet<ConnId>) {
        if let Some(conns) = self.by_path.get_mut(path) {
            conns.retain(|conn, modes| {
                out.insert(*conn);
                *modes &= !STANDARD;
                *modes != 0
            });
            if conns.is_empty() {
                self.by_path.remove(path);
            }
        }
        if self.recursive_count == 0 {
            return;
        }
        let mut p = path;
        while p != "/" {
            p = corral_store::parent(p);
            if let Some(conns) = self.by_path.get(p) {
                for (conn, modes) in conns {
                    if modes & RECURSIVE != 0 {
                        out.insert(*conn);
                    }
                }
            }
        }
    }

    fn remove_conn(&mut self, conn: ConnId, paths: &HashSet<String>) {
        for p in paths {
            self.clear(conn, p, STANDARD | PERSISTENT | RECURSIVE);
        }
    }
}

/// All watches of this server, keyed by connection.
#[derive(Default)]
pub struct WatchManager {
    data: Table,
    child: Table,
    /// Paths each connection watches (in either table), for cleanup and `wchc`.
    by_conn: HashMap<ConnId, HashSet<String>>,
    /// The tenant of each tenant-bound connection, and the watches (watched
    /// paths per connection, as `by_conn` counts them) of each tenant.
    groups: HashMap<ConnId, Arc<str>>,
    group_counts: HashMap<Arc<str>, u64>,
}

/// One event to deliver to one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub conn: ConnId,
    pub event: WatcherEvent,
}

impl WatchManager {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, conn: ConnId, path: &str, kind: WatchKind) {
        match kind {
            WatchKind::Data => {
                self.data.add(conn, path, STANDARD);
            }
            WatchKind::Child => {
                self.child.add(conn, path, STANDARD);
            }
            WatchKind::Persistent => {
                self.data.add(conn, path, PERSISTENT);
                self.child.add(conn, path, PERSISTENT);
            }
            WatchKind::PersistentRecursive => {
                self.data.add(conn, path, RECURSIVE);
            }
        }
        let new = self
            .by_conn
            .entry(conn)
            .or_default()
            .insert(path.to_string());
        if new {
            self.count(conn, 1);
        }
    }

    /// Drops every watch of a closed connection.
    pub fn remove_conn(&mut self, conn: ConnId) {
        if let Some(paths) = self.by_conn.remove(&conn) {
            self.count(conn, -(paths.len() as i64));
            self.data.remove_conn(conn, &paths);
            self.child.remove_conn(conn, &paths);
        }
        self.groups.remove(&conn);
    }

    /// Counts `conn`'s watches towards `group` (a tenant) from now on,
    /// moving those it already holds.
    pub fn set_group(&mut self, conn: ConnId, group: Option<Arc<str>>) {
        let held = self.conn_watch_count(conn) as i64;
        self.count(conn, -held);
        match group {
            Some(g) => {
                self.groups.insert(conn, g);
            }
            None => {
                self.groups.remove(&conn);
            }
        }
        self.count(conn, held);
    }

    /// Watches held by the connections of `group`.
    pub fn group_watch_count(&self, group: &str) -> u64 {
        self.group_counts.get(group).copied().unwrap_or(0)
    }

    /// Whether `conn` already watches `path` (so another watch on it is not new).
    pub fn is_watching(&self, conn: ConnId, path: &str) -> bool {
        self.by_conn.get(&conn).is_some_and(|p| p.contains(path))
    }

    fn count(&mut self, conn: ConnId, delta: i64) {
        if delta == 0 {
            return;
        }
        let Some(g) = self.groups.get(&conn) else {
            return;
        };
        let n = self.group_counts.entry(g.clone()).or_insert(0);
        *n = n
            .checked_add_signed(delta)
            .expect("tenant watch count below 0");
        if *n == 0 {
            self.group_counts.remove(g);
        }
    }

    fn masks(wtype: i32) -> Option<(u8, u8)> {
        // (data-table mask, child-table mask)
        match wtype {
            watcher_type::CHILDREN => Some((0, STANDARD | PERSISTENT)),
            watcher_type::DATA => Some((STANDARD | PERSISTENT | RECURSIVE, 0)),
            watcher_type::ANY => Some((STANDARD | PERSISTENT | RECURSIVE, STANDARD | PERSISTENT)),
            _ => None,
        }
    }

    /// checkWatches: does this connection hold a watch of this type on path?
    pub fn contains(&self, conn: ConnId, path: &str, wtype: i32) -> bool {
        let Some((dm, cm)) = Self::masks(wtype) else {
            return false;
        };
        self.data.has(conn, path, dm) || self.child.has(conn, path, cm)
    }

    /// removeWatches: true if something was removed.
    pub fn remove(&mut self, conn: ConnId, path: &str, wtype: i32) -> bool {
        let Some((dm, cm)) = Self::masks(wtype) else {
            return false;
        };
        let d = self.data.clear(conn, path, dm);
        let c = self.child.clear(conn, path, cm);
        if !self.data.has(conn, path, 0xff) && !self.child.has(conn, path, 0xff) {
            self.forget_path(conn, path);
        }
        d || c
    }

    /// Fires the watches a committed change touches. The caller filters by
    /// READ permission on the changed node before delivering.
    pub fn trigger(&mut self, t: &Trigger) -> Vec<Delivery> {
        let mut conns = HashSet::new();
        let etype = match t.kind {
            TriggerKind::Created => {
                self.data.trigger(&t.path, &mut conns);
                event_type::NODE_CREATED
            }
            TriggerKind::DataChanged => {
                self.data.trigger(&t.path, &mut conns);
                event_type::NODE_DATA_CHANGED
            }
            TriggerKind::Deleted => {
                self.data.trigger(&t.path, &mut conns);
                self.child.trigger(&t.path, &mut conns);
                event_type::NODE_DELETED
            }
            TriggerKind::ChildrenChanged => {
                self.child.trigger(&t.path, &mut conns);
                event_type::NODE_CHILDREN_CHANGED
            }
        };
        self.forget_fired(&conns, &t.path);
        let mut out: Vec<Delivery> = conns
            .into_iter()
            .map(|conn| Delivery {
                conn,
                event: WatcherEvent {
                    event_type: etype,
                    state: keeper_state::SYNC_CONNECTED,
                    path: t.path.clone(),
                },
            })
            .collect();
        out.sort_by_key(|d| d.conn);
        out
    }

    /// After a one-shot fires, a connection may no longer watch `path` at all.
    fn forget_fired(&mut self, conns: &HashSet<ConnId>, path: &str) {
        for conn in conns {
            if !self.data.has(*conn, path, 0xff) && !self.child.has(*conn, path, 0xff) {
                self.forget_path(*conn, path);
            }
        }
    }

    /// `conn` no longer watches `path` in either table.
    fn forget_path(&mut self, conn: ConnId, path: &str) {
        let Some(paths) = self.by_conn.get_mut(&conn) else {
            return;
        };
        let removed = paths.remove(path);
        if paths.is_empty() {
            self.by_conn.remove(&conn);
        }
        if removed {
            self.count(conn, -1);
        }
    }

    /// Total watches (path, connection) pairs, as `wchs` counts them.
    pub fn watch_count(&self) -> usize {
        self.by_conn.values().map(|p| p.len()).sum()
    }

    pub fn path_count(&self) -> usize {
        let mut paths: HashSet<&str> = self.data.by_path.keys().map(|s| s.as_str()).collect();
        paths.extend(self.child.by_path.keys().map(|s| s.as_str()));
        paths.len()
    }

    pub fn conn_count(&self) -> usize {
        self.by_conn.len()
    }

    /// Number of watches a connection holds (for per-session watch limits).
    pub fn conn_watch_count(&self, conn: ConnId) -> usize {
        self.by_conn.get(&conn).map_or(0, |p| p.len())
    }

    /// `wchc`: connection -> watched paths.
    pub fn by_conn(&self) -> BTreeMap<ConnId, Vec<String>> {
        self.by_conn
            .iter()
            .map(|(c, p)| {
                let mut v: Vec<String> = p.iter().cloned().collect();
                v.sort();
                (*c, v)
            })
            .collect()
    }

    /// `wchp`: path -> watching connections.
    pub fn by_path(&self) -> BTreeMap<String, Vec<ConnId>> {
        let mut out: BTreeMap<String, Vec<ConnId>> = BTreeMap::new();
        for t in [&self.data, &self.child] {
            for (p, conns) in &t.by_path {
                let e = out.entry(p.clone()).or_default();
                e.extend(conns.keys());
            }
        }
        for v in out.values_mut() {
            v.sort();
            v.dedup();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trig(path: &str, kind: TriggerKind) -> Trigger {
        Trigger {
            path: path.into(),
            kind,
        }
    }

    fn fired(d: &[Delivery]) -> Vec<(ConnId, i32, String)> {
        d.iter()
            .map(|d| (d.conn, d.event.event_type, d.event.path.clone()))
            .collect()
    }

    #[test]
    fn one_shot_data_watch_fires_once() {
        // Goal: a data watch fires on change, then is gone.
        let mut w = WatchManager::new();
        w.add(1, "/a", WatchKind::Data);
        let d = w.trigger(&trig("/a", TriggerKind::DataChanged));
        assert_eq!(fired(&d), vec![(1, 3, "/a".into())]);
        assert!(w.trigger(&trig("/a", TriggerKind::DataChanged)).is_empty());
        assert_eq!(w.watch_count(), 0);
    }

    #[test]
    fn delete_fires_data_and_child_watch_once_per_connection() {
        // Goal: a connection with both data and child watches on a deleted node gets one NodeDeleted.
        let mut w = WatchManager::new();
        w.add(1, "/a", WatchKind::Data);
        w.add(1, "/a", WatchKind::Child);
        w.add(2, "/a", WatchKind::Child);
        let d = w.trigger(&trig("/a", TriggerKind::Deleted));
        assert_eq!(fired(&d), vec![(1, 2, "/a".into()), (2, 2, "/a".into())]);
        assert_eq!(w.watch_count(), 0);
    }

    #[test]
    fn child_watch_ignores_data_changes() {
        // Goal: child watches fire only on child changes and deletion.
        let mut w = WatchManager::new();
        w.add(1, "/a", WatchKind::Child);
        assert!(w.trigger(&trig("/a", TriggerKind::DataChanged)).is_empty());
        assert!(w.trigger(&trig("/a", TriggerKind::Created)).is_empty());
        let d = w.trigger(&trig("/a", TriggerKind::ChildrenChanged));
        assert_eq!(fired(&d), vec![(1, 4, "/a".into())]);
    }

    #[test]
    fn persistent_watch_stays_and_sees_data_and_children() {
        // Goal: a persistent watch fires repeatedly on data and child changes of its path only.
        let mut w = WatchManager::new();
        w.add(1, "/a", WatchKind::Persistent);
        for _ in 0..2 {
            assert_eq!(w.trigger(&trig("/a", TriggerKind::DataChanged)).len(), 1);
            assert_eq!(
                w.trigger(&trig("/a", TriggerKind::ChildrenChanged)).len(),
                1
            );
        }
        assert!(w.trigger(&trig("/a/b", TriggerKind::Created)).is_empty());
        assert_eq!(w.watch_count(), 1);
    }

    #[test]
    fn recursive_watch_sees_descendants_but_not_child_changes() {
        // Goal: a recursive watch fires for events on descendants, never NodeChildrenChanged.
        let mut w = WatchManager::new();
        w.add(1, "/a", WatchKind::PersistentRecursive);
        assert_eq!(
            fired(&w.trigger(&trig("/a/b/c", TriggerKind::Created))),
            vec![(1, 1, "/a/b/c".into())]
        );
        assert!(w
            .trigger(&trig("/a", TriggerKind::ChildrenChanged))
            .is_empty());
        assert!(w.trigger(&trig("/ab", TriggerKind::Created)).is_empty());
        assert_eq!(w.trigger(&trig("/a", TriggerKind::DataChanged)).len(), 1);
    }

    #[test]
    fn remove_and_check_by_type() {
        // Goal: removeWatches/checkWatches honour the watcher type and report misses.
        let mut w = WatchManager::new();
        w.add(1, "/a", WatchKind::Data);
        w.add(1, "/a", WatchKind::Child);
        assert!(w.contains(1, "/a", watcher_type::CHILDREN));
        assert!(w.remove(1, "/a", watcher_type::CHILDREN));
        assert!(!w.contains(1, "/a", watcher_type::CHILDREN));
        assert!(!w.remove(1, "/a", watcher_type::CHILDREN));
        assert!(w.contains(1, "/a", watcher_type::ANY));
        assert!(w.remove(1, "/a", watcher_type::ANY));
        assert_eq!(w.watch_count(), 0);
        assert!(!w.remove(2, "/x", 9));
    }

    #[test]
    fn tenant_watch_counts_follow_every_way_a_watch_goes() {
        // Goal: a group's count equals the watched paths of its connections
        // through add, re-add, fire, remove, regroup and close.
        let mut w = WatchManager::new();
        let g: Arc<str> = Arc::from("team-a");
        w.add(1, "/before", WatchKind::Data);
        w.set_group(1, Some(g.clone()));
        assert_eq!(w.group_watch_count("team-a"), 1);
        w.add(1, "/a", WatchKind::Data);
        w.add(1, "/a", WatchKind::Child);
        w.add(1, "/r", WatchKind::PersistentRecursive);
        w.add(2, "/a", WatchKind::Data);
        assert_eq!(w.group_watch_count("team-a"), 3);
        assert!(w.is_watching(1, "/a") && !w.is_watching(1, "/zz"));
        w.trigger(&trig("/a", TriggerKind::DataChanged));
        assert_eq!(
            w.group_watch_count("team-a"),
            3,
            "the child watch on /a stays"
        );
        w.trigger(&trig("/a", TriggerKind::ChildrenChanged));
        assert_eq!(w.group_watch_count("team-a"), 2);
        assert!(w.remove(1, "/before", watcher_type::ANY));
        assert_eq!(w.group_watch_count("team-a"), 1);
        w.remove_conn(1);
        assert_eq!(w.group_watch_count("team-a"), 0);
        assert_eq!(w.watch_count(), 0);
    }

    #[test]
    fn closed_connection_loses_all_watches() {
        // Goal: remove_conn leaves no trace of the connection.
        let mut w = WatchManager::new();
        w.add(7, "/a", WatchKind::PersistentRecursive);
        w.add(7, "/b", WatchKind::Child);
        w.remove_conn(7);
        assert_eq!(w.watch_count(), 0);
        assert_eq!(w.path_count(), 0);
        assert!(w.trigger(&trig("/a/x", TriggerKind::Created)).is_empty());
    }
}
