//! The generator's model of which watches each session may hold, in ZooKeeper 3.8's
//! terms, so the generator can steer clear of ZooKeeper 3.8.0 watch bugs that corral
//! deliberately does not copy (see `docs/compatibility.md`):
//!
//! - one watch mode per (connection, path, table): a standard watch set where the same
//!   session holds a persistent or persistent-recursive one replaces it, and the other
//!   way round; PERSISTENT and PERSISTENT_RECURSIVE on one path replace each other
//!   (ZOOKEEPER-4466, fixed in 3.9). So a (session, path) holds at most one of
//!   {standard watches, persistent, persistent-recursive} here.
//! - `checkWatches` answers for any session's watch on the exact path
//!   (`WatchManager.containsWatcher` ignores the watcher at the leaf). So it is only
//!   generated where no other session may hold a watch in the tables it asks about.
//! - addWatch PERSISTENT_RECURSIVE also lands in the child table (3.9 keeps it in the
//!   data table only), so `removeWatches` / `checkWatches` of type CHILDREN or DATA are
//!   not generated on a (session, path) holding a recursive watch.
//!
//! The model over-approximates ("may hold"): it adds a watch when the reference server
//! accepted the request, and forgets it only when that is certain: the session closed
//! or its connection dropped, `removeWatches` succeeded, or the reference server
//! delivered the event that consumes a one-shot watch.

use corral_proto::opcode::{event_type, watcher_type};
use corral_proto::WatcherEvent;
use std::collections::BTreeMap;

/// What one session may hold on one path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// A standard data/exist watch (data table).
    pub data: bool,
    /// A standard child watch (child table).
    pub child: bool,
    /// addWatch PERSISTENT (both tables).
    pub persistent: bool,
    /// addWatch PERSISTENT_RECURSIVE (both tables in ZooKeeper 3.8).
    pub recursive: bool,
}

impl Held {
    fn standard(self) -> bool {
        self.data || self.child
    }

    fn is_empty(self) -> bool {
        self == Held::default()
    }

    /// Holds something ZooKeeper 3.8 keeps in the data table.
    fn in_data_table(self) -> bool {
        self.data || self.persistent || self.recursive
    }

    /// Holds something ZooKeeper 3.8 keeps in the child table.
    fn in_child_table(self) -> bool {
        self.child || self.persistent || self.recursive
    }
}

/// The kind of watch a request would set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchAdd {
    Data,
    Child,
    Persistent,
    Recursive,
}

/// Per session slot: path -> what it may hold.
#[derive(Debug, Default)]
pub struct WatchModel {
    slots: Vec<BTreeMap<String, Held>>,
}

impl WatchModel {
    pub fn new(sessions: usize) -> WatchModel {
        WatchModel {
            slots: vec![BTreeMap::new(); sessions],
        }
    }

    pub fn held(&self, s: usize, path: &str) -> Held {
        self.slots[s].get(path).copied().unwrap_or_default()
    }

    /// Paths on which session `s` may hold any watch.
    pub fn paths_of(&self, s: usize) -> Vec<String> {
        self.slots[s].keys().cloned().collect()
    }

    /// Would adding this watch make ZooKeeper 3.8 replace a watch of another mode?
    pub fn add_conflicts(&self, s: usize, path: &str, add: WatchAdd) -> bool {
        let h = self.held(s, path);
        match add {
            WatchAdd::Data | WatchAdd::Child => h.persistent || h.recursive,
            WatchAdd::Persistent => h.standard() || h.recursive,
            WatchAdd::Recursive => h.standard() || h.persistent,
        }
    }

    /// Is `checkWatches(path, wtype)` from `s` answered alike by ZooKeeper 3.8 and 3.9?
    pub fn check_unambiguous(&self, s: usize, path: &str, wtype: i32) -> bool {
        if !self.remove_unambiguous(s, path, wtype) {
            return false;
        }
        let (data, child) = tables(wtype);
        !self.slots.iter().enumerate().any(|(o, m)| {
            o != s
                && m.get(path)
                    .is_some_and(|h| (data && h.in_data_table()) || (child && h.in_child_table()))
        })
    }

    /// Is `removeWatches(path, wtype)` from `s` handled alike by ZooKeeper 3.8 and 3.9?
    pub fn remove_unambiguous(&self, s: usize, path: &str, wtype: i32) -> bool {
        wtype == watcher_type::ANY || !self.held(s, path).recursive
    }

    /// The reference server accepted a request that sets this watch.
    pub fn added(&mut self, s: usize, path: &str, add: WatchAdd) {
        let h = self.slots[s].entry(path.to_string()).or_default();
        match add {
            WatchAdd::Data => h.data = true,
            WatchAdd::Child => h.child = true,
            WatchAdd::Persistent => h.persistent = true,
            WatchAdd::Recursive => h.recursive = true,
        }
    }

    /// `removeWatches(path, wtype)` succeeded. Only what is surely gone is forgotten
    /// (the data half of a persistent watch may go while its child half stays).
    pub fn removed(&mut self, s: usize, path: &str, wtype: i32) {
        self.update(s, path, |h| match wtype {
            watcher_type::ANY => *h = Held::default(),
            watcher_type::DATA => h.data = false,
            watcher_type::CHILDREN => h.child = false,
            _ => {}
        });
    }

    /// The reference server delivered `ev` to `s`: the one-shot watches that trigger
    /// consumed (for every session, but each such session got its own event) are gone.
    pub fn delivered(&mut self, s: usize, ev: &WatcherEvent) {
        self.update(s, &ev.path, |h| match ev.event_type {
            event_type::NODE_CREATED | event_type::NODE_DATA_CHANGED => h.data = false,
            event_type::NODE_DELETED => {
                h.data = false;
                h.child = false;
            }
            event_type::NODE_CHILDREN_CHANGED => h.child = false,
            _ => {}
        });
    }

    /// The session closed, or its connection dropped: the server forgot its watches.
    pub fn forget_session(&mut self, s: usize) {
        self.slots[s].clear();
    }

    fn update(&mut self, s: usize, path: &str, f: impl FnOnce(&mut Held)) {
        if let Some(h) = self.slots[s].get_mut(path) {
            f(h);
            if h.is_empty() {
                self.slots[s].remove(path);
            }
        }
    }
}

/// (data table, child table) that a watcher type asks about.
fn tables(wtype: i32) -> (bool, bool) {
    match wtype {
        watcher_type::DATA => (true, false),
        watcher_type::CHILDREN => (false, true),
        _ => (true, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_on_one_path_exclude_each_other() {
        // Goal: a (session, path) never gets two watch modes ZooKeeper 3.8 would merge.
        let mut m = WatchModel::new(2);
        m.added(0, "/a", WatchAdd::Data);
        assert!(m.add_conflicts(0, "/a", WatchAdd::Persistent));
        assert!(m.add_conflicts(0, "/a", WatchAdd::Recursive));
        assert!(!m.add_conflicts(0, "/a", WatchAdd::Child));
        assert!(!m.add_conflicts(1, "/a", WatchAdd::Persistent));
        m.added(1, "/a", WatchAdd::Recursive);
        assert!(m.add_conflicts(1, "/a", WatchAdd::Persistent));
        assert!(m.add_conflicts(1, "/a", WatchAdd::Child));
    }

    #[test]
    fn check_watches_is_ambiguous_when_another_session_watches() {
        // Goal: checkWatches is only generated where ZooKeeper 3.8's any-session answer equals the right one.
        let mut m = WatchModel::new(2);
        m.added(1, "/a", WatchAdd::Child);
        assert!(m.check_unambiguous(0, "/a", watcher_type::DATA));
        assert!(!m.check_unambiguous(0, "/a", watcher_type::CHILDREN));
        assert!(!m.check_unambiguous(0, "/a", watcher_type::ANY));
        m.delivered(
            1,
            &WatcherEvent {
                event_type: event_type::NODE_CHILDREN_CHANGED,
                state: 3,
                path: "/a".into(),
            },
        );
        assert!(m.check_unambiguous(0, "/a", watcher_type::ANY));
        m.added(1, "/a", WatchAdd::Recursive);
        assert!(!m.check_unambiguous(0, "/a", watcher_type::CHILDREN));
        assert!(!m.remove_unambiguous(1, "/a", watcher_type::CHILDREN));
        assert!(m.remove_unambiguous(1, "/a", watcher_type::ANY));
    }
}
