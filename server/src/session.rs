//! Session expiry in tick-wide buckets (ZooKeeper's ExpiryQueue), sans-IO:
//! every call takes `now_ms`; nothing here reads the clock.

use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Clone, Copy)]
struct Entry {
    timeout_ms: u64,
    bucket: u64,
    closing: bool,
}

/// Live sessions and when each expires.
#[derive(Debug)]
pub struct SessionTracker {
    tick_ms: u64,
    sessions: HashMap<i64, Entry>,
    buckets: BTreeMap<u64, HashSet<i64>>,
    /// Sessions touched since the last [`SessionTracker::drain_touched`],
    /// when recording is on (a learner reports them to its leader).
    touched: Option<HashSet<i64>>,
}

impl SessionTracker {
    pub fn new(tick_ms: u64) -> Self {
        SessionTracker {
            tick_ms: tick_ms.max(1),
            sessions: HashMap::new(),
            buckets: BTreeMap::new(),
            touched: None,
        }
    }

    /// Starts (or stops) remembering touched sessions for `drain_touched`.
    pub fn record_touches(&mut self, on: bool) {
        self.touched = on.then(HashSet::new);
    }

    /// Sessions touched (or added) since the last call, with their
    /// timeouts, in id order; empty when recording is off.
    pub fn drain_touched(&mut self) -> Vec<(i64, u32)> {
        let Some(t) = self.touched.as_mut() else {
            return Vec::new();
        };
        let mut out: Vec<(i64, u32)> = t
            .drain()
            .filter_map(|id| {
                let e = self.sessions.get(&id)?;
                (!e.closing).then_some((id, e.timeout_ms as u32))
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Live session ids, in id order.
    pub fn live(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self
            .sessions
            .iter()
            .filter(|(_, e)| !e.closing)
            .map(|(id, _)| *id)
            .collect();
        v.sort_unstable();
        v
    }

    fn note_touch(&mut self, id: i64) {
        if let Some(t) = self.touched.as_mut() {
            t.insert(id);
        }
    }

    /// Deadlines round up to the next tick, so one wake-up expires a whole bucket.
    fn bucket_for(&self, now_ms: u64, timeout_ms: u64) -> u64 {
        let t = now_ms + timeout_ms;
        (t / self.tick_ms + 1) * self.tick_ms
    }

    fn move_to(&mut self, id: i64, bucket: u64) {
        if let Some(e) = self.sessions.get_mut(&id) {
            if e.bucket == bucket {
                return;
            }
            if let Some(b) = self.buckets.get_mut(&e.bucket) {
                b.remove(&id);
                if b.is_empty() {
                    self.buckets.remove(&e.bucket);
                }
            }
            e.bucket = bucket;
            self.buckets.entry(bucket).or_default().insert(id);
        }
    }

    pub fn add(&mut self, id: i64, timeout_ms: u32, now_ms: u64) {
        let bucket = self.bucket_for(now_ms, timeout_ms as u64);
        self.remove(id);
        self.sessions.insert(
            id,
            Entry {
                timeout_ms: timeout_ms as u64,
                bucket,
                closing: false,
            },
        );
        self.buckets.entry(bucket).or_default().insert(id);
        self.note_touch(id);
    }

    /// Pushes the deadline out; false if the session is unknown or closing.
    pub fn touch(&mut self, id: i64, now_ms: u64) -> bool {
        let Some(e) = self.sessions.get(&id).copied() else {
            return false;
        };
        if e.closing {
            return false;
        }
        let bucket = self.bucket_for(now_ms, e.timeout_ms);
        self.move_to(id, bucket);
        self.note_touch(id);
        true
    }

    pub fn set_timeout(&mut self, id: i64, timeout_ms: u32, now_ms: u64) {
        if let Some(e) = self.sessions.get_mut(&id) {
            e.timeout_ms = timeout_ms as u64;
        }
        self.touch(id, now_ms);
    }

    /// Marks a session as closing: it can no longer be touched or resumed.
    pub fn set_closing(&mut self, id: i64) -> bool {
        match self.sessions.get_mut(&id) {
            Some(e) if !e.closing => {
                e.closing = true;
                true
            }
            _ => false,
        }
    }

    pub fn is_live(&self, id: i64) -> bool {
        self.sessions.get(&id).is_some_and(|e| !e.closing)
    }

    pub fn remove(&mut self, id: i64) {
        if let Some(e) = self.sessions.remove(&id) {
            if let Some(b) = self.buckets.get_mut(&e.bucket) {
                b.remove(&id);
                if b.is_empty() {
                    self.buckets.remove(&e.bucket);
                }
            }
        }
    }

    /// Sessions whose bucket is due, marked closing; each is returned once.
    pub fn expire(&mut self, now_ms: u64) -> Vec<i64> {
        let due: Vec<u64> = self.buckets.range(..=now_ms).map(|(k, _)| *k).collect();
        let mut out = Vec::new();
        for b in due {
            if let Some(ids) = self.buckets.remove(&b) {
                for id in ids {
                    if let Some(e) = self.sessions.get_mut(&id) {
                        if !e.closing {
                            e.closing = true;
                            out.push(id);
                        }
                    }
                }
            }
        }
        out.sort();
        out
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn timeout_of(&self, id: i64) -> Option<u64> {
        self.sessions.get(&id).map(|e| e.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_expires_after_timeout_rounded_to_tick() {
        // Goal: a session expires at the first tick boundary past its deadline, not before.
        let mut t = SessionTracker::new(100);
        t.add(1, 250, 1000);
        assert!(t.expire(1250).is_empty());
        assert!(t.expire(1299).is_empty());
        assert_eq!(t.expire(1300), vec![1]);
        assert!(t.expire(5000).is_empty());
        assert!(!t.is_live(1));
    }

    #[test]
    fn touch_postpones_and_closing_sessions_cannot_be_touched() {
        // Goal: touches move the deadline; a closing session stays closing.
        let mut t = SessionTracker::new(100);
        t.add(1, 200, 0);
        assert!(t.touch(1, 150));
        assert!(t.expire(300).is_empty());
        assert_eq!(t.expire(400), vec![1]);
        assert!(!t.touch(1, 400));
        t.add(2, 200, 0);
        assert!(t.set_closing(2));
        assert!(!t.touch(2, 10));
        assert!(
            t.expire(10_000).is_empty(),
            "closing sessions are not returned twice"
        );
        t.remove(2);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn touches_are_recorded_only_when_asked_and_drained_once() {
        // Goal: a learner reports each touched live session once per drain,
        // with its timeout; closing sessions and unrecorded trackers report nothing.
        let mut t = SessionTracker::new(100);
        t.add(1, 300, 0);
        assert!(t.drain_touched().is_empty(), "recording is off by default");
        t.record_touches(true);
        t.add(2, 400, 0);
        assert!(t.touch(1, 10));
        t.add(3, 500, 0);
        assert!(t.set_closing(3));
        assert_eq!(t.drain_touched(), vec![(1, 300), (2, 400)]);
        assert!(t.drain_touched().is_empty());
        assert!(t.touch(2, 20));
        assert_eq!(t.drain_touched(), vec![(2, 400)]);
        assert_eq!(t.live(), vec![1, 2]);
    }
}
