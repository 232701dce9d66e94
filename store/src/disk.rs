//! The durable txn log behind a narrow trait.
//!
//! A record is the encoded [`LogEntry`] followed by the CRC32 (big-endian) of
//! those bytes, keyed by its zxid. Ordering rule for callers: nothing appended
//! is durable until [`TxnLog::sync`] returns `Ok`; a voter must not ACK before
//! that.
//!
//! On open, a last record whose CRC fails is treated as a torn write: dropped
//! with a warning. A bad record anywhere else is reported as
//! [`StoreError::Corrupt`] when read.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::StoreError;
use crate::txn::LogEntry;

/// Meta key recording the highest zxid removed by `purge_through`, so recovery
/// can tell a purged log from a complete one.
pub const PURGED_THROUGH_KEY: &str = "corral.log.purged_through";

pub trait TxnLog: Send {
    /// Zxids must be strictly increasing, positive, and above the last one.
    /// Not durable until `sync`.
    fn append(&mut self, entries: &[LogEntry]) -> Result<(), StoreError>;
    /// Everything appended (and every meta put) is durable once this returns Ok.
    fn sync(&mut self) -> Result<(), StoreError>;
    fn last_zxid(&self) -> Result<Option<i64>, StoreError>;
    /// Entries with zxid > `zxid`, in order.
    fn read_after(&self, zxid: i64) -> Result<Vec<LogEntry>, StoreError>;
    /// Drops entries with zxid > `zxid` (ZAB TRUNC).
    fn truncate_after(&mut self, zxid: i64) -> Result<(), StoreError>;
    /// Drops entries with zxid <= `zxid` (covered by a retained snapshot) and
    /// records [`PURGED_THROUGH_KEY`].
    fn purge_through(&mut self, zxid: i64) -> Result<(), StoreError>;
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Durable after the next `sync`.
    fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError>;
}

fn frame(entry: &LogEntry) -> Vec<u8> {
    let mut v = entry.encode();
    let crc = crc32fast::hash(&v);
    v.extend_from_slice(&crc.to_be_bytes());
    v
}

fn unframe(zxid: i64, b: &[u8]) -> Result<LogEntry, StoreError> {
    let bad = |d: String| StoreError::corrupt("log record", format!("zxid {zxid:#x}: {d}"));
    if b.len() < 4 {
        return Err(bad(format!("{} bytes", b.len())));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    let want = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != want {
        return Err(bad("checksum mismatch".into()));
    }
    let e = LogEntry::decode(body)?;
    if e.hdr.zxid != zxid {
        return Err(bad(format!("holds zxid {:#x}", e.hdr.zxid)));
    }
    Ok(e)
}

fn key(zxid: i64) -> [u8; 8] {
    (zxid as u64).to_be_bytes()
}

fn key_zxid(k: &[u8]) -> Result<i64, StoreError> {
    let a: [u8; 8] = k
        .try_into()
        .map_err(|_| StoreError::corrupt("log key", format!("{} bytes", k.len())))?;
    Ok(u64::from_be_bytes(a) as i64)
}

fn check_order(last: Option<i64>, entries: &[LogEntry]) -> Result<(), StoreError> {
    let mut prev = last.unwrap_or(0);
    for e in entries {
        if e.hdr.zxid <= prev {
            return Err(StoreError::LogOrder {
                last: prev,
                got: e.hdr.zxid,
            });
        }
        prev = e.hdr.zxid;
    }
    Ok(())
}

fn purged_value(old: Option<Vec<u8>>, zxid: i64) -> [u8; 8] {
    let old = old
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(i64::from_be_bytes)
        .unwrap_or(i64::MIN);
    old.max(zxid).to_be_bytes()
}

/// The sled-backed log: tree `log` (zxid -> record) and tree `meta`.
pub struct SledTxnLog {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    last: Option<i64>,
}

impl SledTxnLog {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        // sled's default page cache is 1 GiB; the log is written once and read
        // only at recovery, so a small cache keeps RSS close to the tree's own.
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(SLED_CACHE_BYTES)
            .open()?;
        let log = db.open_tree("log")?;
        let meta = db.open_tree("meta")?;
        let mut me = SledTxnLog {
            db,
            log,
            meta,
            last: None,
        };
        if let Some((k, v)) = me.log.last()? {
            let zxid = key_zxid(&k)?;
            if let Err(e) = unframe(zxid, &v) {
                tracing::warn!(zxid, error = %e, "dropping torn last log record");
                me.log.remove(k)?;
                me.db.flush()?;
            }
        }
        me.last = me.log.last()?.map(|(k, _)| key_zxid(&k)).transpose()?;
        Ok(me)
    }
}

/// sled's page cache bound for the txn log.
pub const SLED_CACHE_BYTES: u64 = 16 * 1024 * 1024;

impl TxnLog for SledTxnLog {
    fn append(&mut self, entries: &[LogEntry]) -> Result<(), StoreError> {
        check_order(self.last, entries)?;
        let mut batch = sled::Batch::default();
        for e in entries {
            batch.insert(&key(e.hdr.zxid), frame(e));
        }
        self.log.apply_batch(batch)?;
        if let Some(e) = entries.last() {
            self.last = Some(e.hdr.zxid);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn last_zxid(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.last)
    }

    fn read_after(&self, zxid: i64) -> Result<Vec<LogEntry>, StoreError> {
        let start = if zxid < 0 {
            Bound::Unbounded
        } else {
            Bound::Excluded(key(zxid))
        };
        let mut out = Vec::new();
        for kv in self.log.range::<[u8; 8], _>((start, Bound::Unbounded)) {
            let (k, v) = kv?;
            out.push(unframe(key_zxid(&k)?, &v)?);
        }
        Ok(out)
    }

    fn truncate_after(&mut self, zxid: i64) -> Result<(), StoreError> {
        let start = if zxid < 0 {
            Bound::Unbounded
        } else {
            Bound::Excluded(key(zxid))
        };
        let mut batch = sled::Batch::default();
        for k in self
            .log
            .range::<[u8; 8], _>((start, Bound::Unbounded))
            .keys()
        {
            batch.remove(k?);
        }
        self.log.apply_batch(batch)?;
        self.last = self.log.last()?.map(|(k, _)| key_zxid(&k)).transpose()?;
        Ok(())
    }

    fn purge_through(&mut self, zxid: i64) -> Result<(), StoreError> {
        if zxid >= 0 {
            let mut batch = sled::Batch::default();
            for k in self.log.range(..=key(zxid)).keys() {
                batch.remove(k?);
            }
            self.log.apply_batch(batch)?;
        }
        let old = self.meta.get(PURGED_THROUGH_KEY)?.map(|v| v.to_vec());
        self.meta
            .insert(PURGED_THROUGH_KEY, &purged_value(old, zxid)[..])?;
        self.last = self.log.last()?.map(|(k, _)| key_zxid(&k)).transpose()?;
        Ok(())
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key)?.map(|v| v.to_vec()))
    }

    fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key, value)?;
        Ok(())
    }
}

/// One change not yet made durable.
#[derive(Clone, Debug)]
enum Pending {
    Append(i64, Vec<u8>),
    TruncateAfter(i64),
    PurgeThrough(i64),
    PutMeta(String, Vec<u8>),
}

#[derive(Default, Clone, Debug)]
struct MemState {
    log: BTreeMap<i64, Vec<u8>>,
    meta: BTreeMap<String, Vec<u8>>,
}

impl MemState {
    fn apply(&mut self, p: Pending) {
        match p {
            Pending::Append(z, b) => {
                self.log.insert(z, b);
            }
            Pending::TruncateAfter(z) => {
                self.log.split_off(&z.saturating_add(1));
            }
            Pending::PurgeThrough(z) => {
                self.log = self.log.split_off(&z.saturating_add(1));
                let v = purged_value(self.meta.get(PURGED_THROUGH_KEY).cloned(), z);
                self.meta.insert(PURGED_THROUGH_KEY.into(), v.to_vec());
            }
            Pending::PutMeta(k, v) => {
                self.meta.insert(k, v);
            }
        }
    }

    fn last(&self) -> Option<i64> {
        self.log.keys().next_back().copied()
    }
}

#[derive(Default, Debug)]
struct MemInner {
    /// What a reader sees now.
    current: MemState,
    /// What survives a crash.
    durable: MemState,
    pending: Vec<Pending>,
    /// A torn record that reaches the disk half-written at the next crash.
    torn: Option<(i64, Vec<u8>)>,
    fail_next_append: bool,
    fail_next_sync: bool,
}

/// An in-memory log for tests and the simulator. Clones are handles to the
/// same "disk", so a test can keep one and [`MemTxnLog::crash`] it while a node
/// owns another.
#[derive(Clone, Default, Debug)]
pub struct MemTxnLog {
    inner: Arc<Mutex<MemInner>>,
}

impl MemTxnLog {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Power loss then reopen: everything not synced is lost; a torn record
    /// (see [`MemTxnLog::tear_last`]) is found by its checksum and dropped.
    pub fn crash(&self) {
        let mut g = self.lock();
        g.pending.clear();
        if let Some((z, b)) = g.torn.take() {
            // A torn write can only land at the end of the log. If an unsynced
            // truncation left durable records above it, the outcome where the
            // torn write never reached the disk is the one to model.
            if g.durable.last().is_none_or(|last| last < z) {
                g.durable.log.insert(z, b);
            }
        }
        if let Some((&z, b)) = g.durable.log.iter().next_back() {
            if let Err(e) = unframe(z, b) {
                tracing::warn!(zxid = z, error = %e, "dropping torn last log record");
                g.durable.log.remove(&z);
            }
        }
        g.current = g.durable.clone();
    }

    /// Corrupts the last unsynced record, as a write torn by a crash would.
    /// Returns false if there is no unsynced append.
    pub fn tear_last(&self) -> bool {
        let mut g = self.lock();
        let Some((z, b)) = g.pending.iter_mut().rev().find_map(|p| match p {
            Pending::Append(z, b) => Some((*z, b)),
            _ => None,
        }) else {
            return false;
        };
        let half = b.len() / 2;
        b.truncate(half.max(1));
        if let Some(x) = b.last_mut() {
            *x ^= 0xff;
        }
        let torn = b.clone();
        g.current.log.insert(z, torn.clone());
        g.torn = Some((z, torn));
        true
    }

    /// Flips a byte in a durable record (bit rot in the middle of the log).
    pub fn corrupt(&self, zxid: i64) -> bool {
        let mut g = self.lock();
        let g = &mut *g;
        let mut hit = false;
        for s in [&mut g.durable, &mut g.current] {
            if let Some(b) = s.log.get_mut(&zxid) {
                if let Some(x) = b.first_mut() {
                    *x ^= 0x55;
                    hit = true;
                }
            }
        }
        hit
    }

    /// The next `append` fails with [`StoreError::Injected`] and changes nothing.
    pub fn fail_next_append(&self) {
        self.lock().fail_next_append = true;
    }

    /// The next `sync` fails with [`StoreError::Injected`]; nothing becomes durable.
    pub fn fail_next_sync(&self) {
        self.lock().fail_next_sync = true;
    }

    /// Number of changes appended but not yet synced.
    pub fn unsynced(&self) -> usize {
        self.lock().pending.len()
    }

    fn change(&self, p: Pending) {
        let mut g = self.lock();
        g.current.apply(p.clone());
        g.pending.push(p);
    }
}

impl TxnLog for MemTxnLog {
    fn append(&mut self, entries: &[LogEntry]) -> Result<(), StoreError> {
        {
            let mut g = self.lock();
            if std::mem::take(&mut g.fail_next_append) {
                return Err(StoreError::Injected("append"));
            }
            check_order(g.current.last(), entries)?;
        }
        for e in entries {
            self.change(Pending::Append(e.hdr.zxid, frame(e)));
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        let mut g = self.lock();
        if std::mem::take(&mut g.fail_next_sync) {
            return Err(StoreError::Injected("sync"));
        }
        g.torn = None;
        let pending = std::mem::take(&mut g.pending);
        for p in pending {
            g.durable.apply(p);
        }
        Ok(())
    }

    fn last_zxid(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.lock().current.last())
    }

    fn read_after(&self, zxid: i64) -> Result<Vec<LogEntry>, StoreError> {
        let g = self.lock();
        g.current
            .log
            .range((Bound::Excluded(zxid), Bound::Unbounded))
            .map(|(z, b)| unframe(*z, b))
            .collect()
    }

    fn truncate_after(&mut self, zxid: i64) -> Result<(), StoreError> {
        self.change(Pending::TruncateAfter(zxid));
        Ok(())
    }

    fn purge_through(&mut self, zxid: i64) -> Result<(), StoreError> {
        self.change(Pending::PurgeThrough(zxid));
        Ok(())
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().current.meta.get(key).cloned())
    }

    fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.change(Pending::PutMeta(key.into(), value.to_vec()));
        Ok(())
    }
}
