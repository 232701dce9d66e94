//! An append-only, segmented file log: the [`TxnLog`] corral uses by default.
//!
//! Layout in its directory:
//! - `log.<first zxid, 16 hex digits>`: segments of records
//!   `[len u32][crc32 u32][LogEntry bytes]`, appended in zxid order. A new
//!   segment starts when the current one passes [`SEGMENT_BYTES`].
//! - `meta`: small key/value metadata, replaced atomically (write, fsync,
//!   rename, fsync the directory) on the `sync` after a `put_meta`.
//!
//! `sync` is one `fdatasync` of the current segment (plus the directory when a
//! segment was created), so one fsync covers a whole group-commit batch.
//! Purging deletes whole segments; truncating cuts the segment holding the new
//! last record. At open, a torn or corrupt tail of the newest segment (a crash
//! mid-append) is cut off with a warning; a bad record anywhere else is
//! reported as [`StoreError::Corrupt`] when read.
//!
//! Restart reads little: open checksums the newest segment and reads the
//! zxid of each record without decoding it (only the last record is decoded
//! in full), and `read_after` decodes only the entries it returns.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::disk::{TxnLog, PURGED_THROUGH_KEY};
use crate::error::StoreError;
use crate::txn::LogEntry;

/// Size at which the next append starts a new segment.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Largest record accepted when reading (a bound against corrupt lengths).
const RECORD_BYTES_MAX: u32 = 64 * 1024 * 1024;
const SEGMENT_PREFIX: &str = "log.";
const META_FILE: &str = "meta";

/// One segment: its first zxid and path.
#[derive(Debug, Clone)]
struct Segment {
    first: i64,
    path: PathBuf,
}

/// The file-backed log. See the module docs for the format.
pub struct FileTxnLog {
    dir: PathBuf,
    segments: Vec<Segment>,
    /// The newest segment, open for appends.
    current: Option<(File, u64)>,
    last: Option<i64>,
    meta: BTreeMap<String, Vec<u8>>,
    meta_dirty: bool,
    dir_dirty: bool,
    /// Entries at or below this are purged even if their segment still exists.
    purged: i64,
}

fn segment_name(first: i64) -> String {
    format!("{SEGMENT_PREFIX}{:016x}", first as u64)
}

fn corrupt(what: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::corrupt(what, detail.into())
}

/// Reads one record's body into `body`, checking its length and checksum
/// only; returns its size on disk, or `Ok(None)` at a clean end of file.
fn read_raw(r: &mut impl Read, body: &mut Vec<u8>) -> Result<Option<u64>, StoreError> {
    let mut head = [0u8; 8];
    let mut got = 0;
    while got < head.len() {
        let n = r.read(&mut head[got..])?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(corrupt("log record", "truncated header"))
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if len == 0 || len > RECORD_BYTES_MAX {
        return Err(corrupt("log record", format!("length {len}")));
    }
    body.clear();
    body.resize(len as usize, 0);
    r.read_exact(body)
        .map_err(|_| corrupt("log record", "truncated body"))?;
    if crc32fast::hash(body) != crc {
        return Err(corrupt("log record", "checksum mismatch"));
    }
    Ok(Some(8 + len as u64))
}

/// Reads one record; `Ok(None)` at a clean end of file.
fn read_record(
    r: &mut impl Read,
    body: &mut Vec<u8>,
) -> Result<Option<(LogEntry, u64)>, StoreError> {
    match read_raw(r, body)? {
        None => Ok(None),
        Some(n) => Ok(Some((LogEntry::decode(body)?, n))),
    }
}

/// Every record of a segment, in order, with the byte offset after each.
fn read_segment(path: &Path) -> Result<Vec<(LogEntry, u64)>, StoreError> {
    let mut r = BufReader::with_capacity(256 * 1024, File::open(path)?);
    let mut body = Vec::new();
    let mut out = Vec::new();
    let mut offset = 0;
    while let Some((e, n)) = read_record(&mut r, &mut body)? {
        offset += n;
        out.push((e, offset));
    }
    Ok(out)
}

/// The entries of a segment after `zxid`, in order. Entries at or below it
/// are checksummed but not decoded.
fn read_segment_after(path: &Path, zxid: i64, out: &mut Vec<LogEntry>) -> Result<(), StoreError> {
    let mut r = BufReader::with_capacity(256 * 1024, File::open(path)?);
    let mut body = Vec::new();
    while read_raw(&mut r, &mut body)?.is_some() {
        if LogEntry::peek_zxid(&body)? > zxid {
            out.push(LogEntry::decode(&body)?);
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl FileTxnLog {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir)?;
        let mut segments = Vec::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(hex) = name.strip_prefix(SEGMENT_PREFIX) {
                let first = u64::from_str_radix(hex, 16)
                    .map_err(|_| corrupt("log segment name", name.clone()))?;
                segments.push(Segment {
                    first: first as i64,
                    path: e.path(),
                });
            }
        }
        segments.sort_by_key(|s| s.first);
        let meta = read_meta(&dir.join(META_FILE))?;
        let purged = meta
            .get(PURGED_THROUGH_KEY)
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, i64::from_be_bytes);
        let mut log = FileTxnLog {
            dir: dir.to_path_buf(),
            segments,
            current: None,
            last: None,
            meta,
            meta_dirty: false,
            dir_dirty: false,
            purged,
        };
        log.recover_tail()?;
        Ok(log)
    }

    /// Reads the newest non-empty segment to find the last zxid, cutting off a torn tail.
    fn recover_tail(&mut self) -> Result<(), StoreError> {
        while let Some(seg) = self.segments.last().cloned() {
            let (last, good_len) = read_valid_prefix(&seg.path)?;
            let file_len = fs::metadata(&seg.path)?.len();
            if good_len < file_len {
                tracing::warn!(
                    segment = %seg.path.display(),
                    kept_bytes = good_len,
                    dropped_bytes = file_len - good_len,
                    "dropping a torn tail of the txn log"
                );
                let f = OpenOptions::new().write(true).open(&seg.path)?;
                f.set_len(good_len)?;
                f.sync_all()?;
            }
            match last {
                Some(z) => {
                    self.last = Some(z);
                    return Ok(());
                }
                None => {
                    // An empty newest segment (crash right after creating it).
                    fs::remove_file(&seg.path)?;
                    self.segments.pop();
                    self.dir_dirty = true;
                }
            }
        }
        Ok(())
    }

    fn open_current(&mut self, first_zxid: i64) -> Result<(), StoreError> {
        let need_new = match (&self.current, self.segments.last()) {
            (Some((_, len)), _) => *len >= SEGMENT_BYTES,
            (None, Some(_)) => false,
            (None, None) => true,
        };
        if need_new {
            // The segment being left may hold appends of this round that the
            // caller's `sync` (which only syncs the current segment) would
            // miss: make them durable before moving on.
            if let Some((old, _)) = &self.current {
                old.sync_data()?;
            }
            let seg = Segment {
                first: first_zxid,
                path: self.dir.join(segment_name(first_zxid)),
            };
            let f = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&seg.path)?;
            self.segments.push(seg);
            self.current = Some((f, 0));
            self.dir_dirty = true;
        } else if self.current.is_none() {
            let seg = self
                .segments
                .last()
                .cloned()
                .ok_or_else(|| corrupt("log", "no segment"))?;
            let f = OpenOptions::new().append(true).open(&seg.path)?;
            let len = f.metadata()?.len();
            self.current = Some((f, len));
        }
        Ok(())
    }

    fn write_meta(&mut self) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        for (k, v) in &self.meta {
            buf.extend_from_slice(&(k.len() as u32).to_be_bytes());
            buf.extend_from_slice(k.as_bytes());
            buf.extend_from_slice(&(v.len() as u32).to_be_bytes());
            buf.extend_from_slice(v);
        }
        let crc = crc32fast::hash(&buf);
        buf.extend_from_slice(&crc.to_be_bytes());
        let tmp = self.dir.join("meta.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(META_FILE))?;
        self.dir_dirty = true;
        self.meta_dirty = false;
        Ok(())
    }
}

/// The last zxid of the newest segment and the byte length of its valid
/// records. A bad record is a torn write only when it runs to the end of the
/// file (a crash mid-append); damage followed by more bytes is reported,
/// never cut away. Records are checksummed and their zxids read; only the
/// last is decoded in full.
fn read_valid_prefix(path: &Path) -> Result<(Option<i64>, u64), StoreError> {
    let file_len = fs::metadata(path)?.len();
    let mut r = BufReader::with_capacity(256 * 1024, File::open(path)?);
    let (mut body, mut last_body) = (Vec::new(), Vec::new());
    // (zxid, offset) of the last good record, and the zxid before it.
    let mut last: Option<(i64, u64)> = None;
    let mut before_last = None;
    let mut good = 0;
    let bad = |e: StoreError, at: u64| -> Result<bool, StoreError> {
        match e {
            StoreError::Corrupt { what, detail } => {
                if torn_tail(path, at, file_len)? {
                    return Ok(true);
                }
                Err(StoreError::Corrupt {
                    what,
                    detail: format!(
                        "{detail} at byte {at} of {}, with more data after it. Records past \
                         this point were never synced only if the machine lost power mid-write; \
                         if so, truncate the file to {at} bytes to start",
                        path.display()
                    ),
                })
            }
            e => Err(e),
        }
    };
    loop {
        let next = read_raw(&mut r, &mut body).and_then(|n| {
            n.map(|n| LogEntry::peek_zxid(&body).map(|z| (z, n)))
                .transpose()
        });
        match next {
            Ok(Some((z, n))) => {
                before_last = last.map(|l| l.0);
                last = Some((z, good));
                good += n;
                std::mem::swap(&mut body, &mut last_body);
            }
            Ok(None) => break,
            Err(e) => {
                bad(e, good)?;
                break;
            }
        }
    }
    if let Some((_, at)) = last {
        if let Err(e) = LogEntry::decode(&last_body) {
            // As for a bad checksum: cut it only if it ends the file.
            bad(e, at)?;
            return Ok((before_last, at));
        }
    }
    Ok((last.map(|l| l.0), good))
}

/// Is the bad record at `offset` the last thing in the file?
fn torn_tail(path: &Path, offset: u64, file_len: u64) -> Result<bool, StoreError> {
    let mut f = File::open(path)?;
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset))?;
    let mut head = [0u8; 4];
    let rest = file_len - offset;
    if rest < 8 || f.read_exact(&mut head).is_err() {
        return Ok(true);
    }
    let len = u32::from_be_bytes(head) as u64;
    // Its declared extent reaches or passes the end: nothing was written after it.
    Ok(len == 0 || 8 + len >= rest)
}

fn read_meta(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, StoreError> {
    let buf = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.into()),
    };
    if buf.len() < 4 {
        return Err(corrupt("log meta", "too short"));
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if crc32fast::hash(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err(corrupt("log meta", "checksum mismatch"));
    }
    let mut out = BTreeMap::new();
    let mut p = 0;
    let take = |p: &mut usize| -> Result<Vec<u8>, StoreError> {
        let n = body
            .get(*p..*p + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| corrupt("log meta", "truncated"))?;
        let v = body
            .get(*p + 4..*p + 4 + n)
            .ok_or_else(|| corrupt("log meta", "truncated"))?
            .to_vec();
        *p += 4 + n;
        Ok(v)
    };
    while p < body.len() {
        let k = String::from_utf8(take(&mut p)?).map_err(|_| corrupt("log meta", "bad key"))?;
        let v = take(&mut p)?;
        out.insert(k, v);
    }
    Ok(out)
}

impl TxnLog for FileTxnLog {
    fn append(&mut self, entries: &[LogEntry]) -> Result<(), StoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut prev = self.last.unwrap_or(0);
        for e in entries {
            if e.hdr.zxid <= prev {
                return Err(StoreError::LogOrder {
                    last: prev,
                    got: e.hdr.zxid,
                });
            }
            prev = e.hdr.zxid;
        }
        self.open_current(first.hdr.zxid)?;
        let mut buf = Vec::with_capacity(entries.len() * 128);
        for e in entries {
            let body = e.encode();
            buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
            buf.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
            buf.extend_from_slice(&body);
        }
        let (f, len) = self
            .current
            .as_mut()
            .ok_or_else(|| corrupt("log", "no segment"))?;
        if let Err(e) = f.write_all(&buf) {
            // A partial write stays unsynced; cut it so the file ends on a record.
            let _ = f.set_len(*len);
            return Err(e.into());
        }
        *len += buf.len() as u64;
        self.last = Some(prev);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        if let Some((f, _)) = &self.current {
            f.sync_data()?;
        }
        if self.meta_dirty {
            self.write_meta()?;
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    fn last_zxid(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.last.filter(|l| *l > self.purged))
    }

    fn read_after(&self, zxid: i64) -> Result<Vec<LogEntry>, StoreError> {
        let zxid = zxid.max(self.purged);
        // The segment holding zxid + 1 is the last one starting at or before it.
        let start = self
            .segments
            .iter()
            .rposition(|s| s.first <= zxid.saturating_add(1))
            .unwrap_or(0);
        let mut out = Vec::new();
        for seg in &self.segments[start..] {
            read_segment_after(&seg.path, zxid, &mut out)?;
        }
        Ok(out)
    }

    fn truncate_after(&mut self, zxid: i64) -> Result<(), StoreError> {
        if self.last.is_none_or(|l| l <= zxid) {
            return Ok(());
        }
        self.current = None;
        while let Some(seg) = self.segments.last().cloned() {
            if seg.first > zxid {
                fs::remove_file(&seg.path)?;
                self.segments.pop();
                continue;
            }
            let keep = read_segment(&seg.path)?
                .into_iter()
                .take_while(|(e, _)| e.hdr.zxid <= zxid)
                .last();
            let (len, last) = keep.map_or((0, None), |(e, off)| (off, Some(e.hdr.zxid)));
            let f = OpenOptions::new().write(true).open(&seg.path)?;
            f.set_len(len)?;
            f.sync_all()?;
            self.last = last;
            break;
        }
        if self.segments.is_empty() {
            self.last = None;
        }
        sync_dir(&self.dir)?;
        Ok(())
    }

    fn purge_through(&mut self, zxid: i64) -> Result<(), StoreError> {
        // A segment can go when the next one starts at or below zxid + 1:
        // then every record in it is <= zxid.
        while self.segments.len() >= 2 && self.segments[1].first <= zxid.saturating_add(1) {
            let seg = self.segments.remove(0);
            fs::remove_file(&seg.path)?;
            self.dir_dirty = true;
        }
        self.purged = self.purged.max(zxid);
        let old = self
            .meta
            .get(PURGED_THROUGH_KEY)
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(i64::from_be_bytes)
            .unwrap_or(i64::MIN);
        self.meta.insert(
            PURGED_THROUGH_KEY.into(),
            old.max(zxid).to_be_bytes().to_vec(),
        );
        self.meta_dirty = true;
        self.sync()
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key).cloned())
    }

    fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key.to_string(), value.to_vec());
        self.meta_dirty = true;
        Ok(())
    }
}
