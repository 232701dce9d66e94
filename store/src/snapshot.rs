//! Fuzzy, checksummed snapshot files and crash recovery.
//!
//! A snapshot is `snapshot.<start zxid as 16 hex digits>` in the snapshot
//! directory. It is written to `<name>.tmp`, fsynced, renamed, and the
//! directory fsynced, so a visible name always has complete content.
//!
//! File layout (big-endian):
//! ```text
//! "CORLSNAP" | version u32 (1) | start zxid i64
//! chunk*     : len u32 (> 0) | records
//! 0 u32      : end of chunks
//! node count u64 | session count u64 | crc32 u32 of every byte before it
//! ```
//! Records: `1` session (id i64, timeout i32, passwd), `4` an ephemeral
//! owned at the start (session i64, path), `2` ACL list
//! definition (id i32, acl vector), `3` node (path, data, acl id, czxid,
//! mzxid, ctime, mtime, version, persisted cversion, aversion, raw
//! ephemeralOwner, pzxid). Nodes come parents-first, so loading never meets an
//! orphan.
//!
//! The snapshot is fuzzy (see the crate docs): the start zxid, the session
//! table and the ephemeral paths per session are taken at the start, under one
//! read lock; nodes are then walked in
//! chunks, each under its own read lock, so writers keep applying in between.
//! Replaying the log after the start zxid makes the result exact.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use corral_proto::{read_acls, write_acls, Acl, Reader, Writer};

use crate::disk::{TxnLog, PURGED_THROUGH_KEY};
use crate::error::StoreError;
use crate::node::Node;
use crate::path::join;
use crate::tree::{DataTree, PersistedStat, SessionEntry};

const MAGIC: &[u8; 8] = b"CORLSNAP";
const VERSION: u32 = 1;
/// Nodes per read-lock hold while walking.
const CHUNK_NODES: usize = 1000;
/// Bytes per chunk before the lock is released early (large data).
const CHUNK_BYTES: usize = 1 << 20;

const REC_SESSION: i32 = 1;
const REC_ACL: i32 = 2;
const REC_NODE: i32 = 3;
const REC_START_EPHEMERAL: i32 = 4;

const PREFIX: &str = "snapshot.";

/// The file name of the snapshot starting at `zxid`.
pub fn snapshot_file_name(zxid: i64) -> String {
    format!("{PREFIX}{:016x}", zxid as u64)
}

fn parse_file_name(name: &str) -> Option<i64> {
    let hex = name.strip_prefix(PREFIX)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|z| z as i64)
}

/// Snapshot zxids present in `dir` (by name only), ascending.
pub fn list_snapshots(dir: &Path) -> Result<Vec<i64>, StoreError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut zxids = Vec::new();
    for entry in rd {
        if let Some(z) = entry?.file_name().to_str().and_then(parse_file_name) {
            zxids.push(z);
        }
    }
    zxids.sort_unstable();
    Ok(zxids)
}

/// Streams chunks to the file, checksumming as it goes.
struct SnapWriter {
    out: BufWriter<File>,
    crc: crc32fast::Hasher,
}

impl SnapWriter {
    fn put(&mut self, b: &[u8]) -> Result<(), StoreError> {
        self.crc.update(b);
        self.out.write_all(b)?;
        Ok(())
    }

    fn chunk(&mut self, body: &[u8]) -> Result<(), StoreError> {
        if body.is_empty() {
            return Ok(());
        }
        self.put(&(body.len() as u32).to_be_bytes())?;
        self.put(body)
    }
}

/// One directory on the walk: its path and the last child already written.
struct Frame {
    path: String,
    after: Option<Box<str>>,
    /// Valid only within the current chunk (indices can be reused between).
    idx: Option<u32>,
}

/// Per-walk state that spans chunks.
#[derive(Default)]
struct Walk {
    frames: Vec<Frame>,
    /// ACL list address -> id. Holding the `Arc` keeps the address from being
    /// reused by a different list while the walk runs.
    acl_ids: HashMap<usize, (i32, Arc<[Acl]>)>,
    nodes: u64,
}

impl Walk {
    fn emit(&mut self, w: &mut Writer, path: &str, n: &Node) {
        let key = Arc::as_ptr(&n.acl) as *const Acl as usize;
        let next_id = self.acl_ids.len() as i32;
        let id = match self.acl_ids.get(&key) {
            Some((id, _)) => *id,
            None => {
                w.write_i32(REC_ACL);
                w.write_i32(next_id);
                write_acls(w, &n.acl);
                self.acl_ids.insert(key, (next_id, n.acl.clone()));
                next_id
            }
        };
        let ps = PersistedStat::of(n);
        w.write_i32(REC_NODE);
        w.write_string(path);
        w.write_opt_buffer(n.data.as_deref());
        w.write_i32(id);
        w.write_i64(ps.czxid);
        w.write_i64(ps.mzxid);
        w.write_i64(ps.ctime);
        w.write_i64(ps.mtime);
        w.write_i32(ps.version);
        w.write_i32(ps.cversion);
        w.write_i32(ps.aversion);
        w.write_i64(ps.owner);
        w.write_i64(ps.pzxid);
        self.nodes += 1;
    }

    /// Writes up to one chunk of nodes from the current tree state.
    fn step(&mut self, tree: &DataTree, w: &mut Writer, chunk_nodes: usize) {
        for f in &mut self.frames {
            f.idx = None;
        }
        let mut budget = chunk_nodes;
        while budget > 0 && w.len() < CHUNK_BYTES {
            let Some(top) = self.frames.last_mut() else {
                return;
            };
            let Some(idx) = top.idx.or_else(|| tree.lookup(&top.path)) else {
                // Deleted since we descended; the log's delete covers it.
                self.frames.pop();
                continue;
            };
            top.idx = Some(idx);
            let next = tree.node(idx).children.as_ref().and_then(|c| {
                let lo = match &top.after {
                    Some(a) => Bound::Excluded(&**a),
                    None => Bound::Unbounded,
                };
                c.range::<str, _>((lo, Bound::Unbounded)).next()
            });
            let Some((name, &cidx)) = next else {
                self.frames.pop();
                continue;
            };
            top.after = Some(name.clone());
            let path = join(&top.path, name);
            let child = tree.node(cidx);
            self.emit(w, &path, child);
            if child.num_children() > 0 {
                self.frames.push(Frame {
                    path,
                    after: None,
                    idx: Some(cidx),
                });
            }
            budget -= 1;
        }
    }
}

fn read_tree(
    tree: &RwLock<DataTree>,
) -> Result<std::sync::RwLockReadGuard<'_, DataTree>, StoreError> {
    tree.read()
        .map_err(|_| StoreError::corrupt("data tree", "lock poisoned by a panicked writer"))
}

/// Writes a fuzzy snapshot of `tree` into `dir`. Returns the start zxid (replay
/// the log after it) and the file written.
pub fn write_fuzzy_snapshot(
    tree: &RwLock<DataTree>,
    dir: &Path,
) -> Result<(i64, PathBuf), StoreError> {
    write_fuzzy_snapshot_chunked(tree, dir, CHUNK_NODES)
}

/// [`write_fuzzy_snapshot`] holding the read lock for at most `chunk_nodes`
/// nodes at a time (tests use tiny chunks to force interleaving).
pub fn write_fuzzy_snapshot_chunked(
    tree: &RwLock<DataTree>,
    dir: &Path,
    chunk_nodes: usize,
) -> Result<(i64, PathBuf), StoreError> {
    write_fuzzy_snapshot_interleaved(tree, dir, chunk_nodes, &mut || {})
}

/// [`write_fuzzy_snapshot_chunked`] calling `between` after each chunk, with
/// no lock held: a deterministic stand-in for concurrent writers in tests.
#[doc(hidden)]
pub fn write_fuzzy_snapshot_interleaved(
    tree: &RwLock<DataTree>,
    dir: &Path,
    chunk_nodes: usize,
    between: &mut dyn FnMut(),
) -> Result<(i64, PathBuf), StoreError> {
    fs::create_dir_all(dir)?;
    let mut walk = Walk::default();
    let mut body = Writer::with_capacity(CHUNK_BYTES + 4096);
    let (zxid, session_count) = {
        let t = read_tree(tree)?;
        for (id, s) in t.sessions() {
            body.write_i32(REC_SESSION);
            body.write_i64(*id);
            body.write_i32(s.timeout_ms);
            body.write_buffer(&s.passwd);
        }
        for (session, paths) in t.all_ephemerals() {
            for path in paths {
                body.write_i32(REC_START_EPHEMERAL);
                body.write_i64(session);
                body.write_string(&path);
            }
        }
        let root = t.get("/").expect("root always exists");
        walk.emit(&mut body, "/", root);
        walk.frames.push(Frame {
            path: "/".into(),
            after: None,
            idx: None,
        });
        (t.last_zxid(), t.sessions().len() as u64)
    };
    let final_path = dir.join(snapshot_file_name(zxid));
    let tmp_path = dir.join(format!("{}.tmp", snapshot_file_name(zxid)));
    let mut w = SnapWriter {
        out: BufWriter::new(File::create(&tmp_path)?),
        crc: crc32fast::Hasher::new(),
    };
    w.put(MAGIC)?;
    w.put(&VERSION.to_be_bytes())?;
    w.put(&zxid.to_be_bytes())?;
    loop {
        w.chunk(body.as_slice())?;
        if walk.frames.is_empty() {
            break;
        }
        between();
        body = Writer::with_capacity(CHUNK_BYTES + 4096);
        {
            let t = read_tree(tree)?;
            walk.step(&t, &mut body, chunk_nodes.max(1));
        }
    }
    w.put(&0u32.to_be_bytes())?;
    w.put(&walk.nodes.to_be_bytes())?;
    w.put(&session_count.to_be_bytes())?;
    let crc = w.crc.clone().finalize();
    w.out.write_all(&crc.to_be_bytes())?;
    let file = w.out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp_path, &final_path)?;
    File::open(dir)?.sync_all()?;
    Ok((zxid, final_path))
}

/// Reads exactly `n` bytes, checksumming them.
fn read_exact_crc(
    r: &mut impl Read,
    crc: &mut crc32fast::Hasher,
    n: usize,
) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::new();
    r.take(n as u64).read_to_end(&mut buf)?;
    if buf.len() != n {
        return Err(StoreError::corrupt(
            "snapshot",
            format!("truncated: wanted {n} bytes, got {}", buf.len()),
        ));
    }
    crc.update(&buf);
    Ok(buf)
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Loads and verifies one snapshot file.
pub fn load_snapshot(path: &Path) -> Result<(i64, DataTree), StoreError> {
    let mut r = BufReader::new(File::open(path)?);
    let mut crc = crc32fast::Hasher::new();
    let head = read_exact_crc(&mut r, &mut crc, 20)?;
    if &head[..8] != MAGIC {
        return Err(StoreError::corrupt("snapshot", "bad magic"));
    }
    let version = be_u32(&head[8..12]);
    if version != VERSION {
        return Err(StoreError::corrupt(
            "snapshot",
            format!("unknown version {version}"),
        ));
    }
    let zxid = be_u64(&head[12..20]) as i64;
    let mut tree = DataTree::empty_root();
    let mut acls: HashMap<i32, Arc<[Acl]>> = HashMap::new();
    let (mut nodes, mut sessions) = (0u64, 0u64);
    loop {
        let len = be_u32(&read_exact_crc(&mut r, &mut crc, 4)?) as usize;
        if len == 0 {
            break;
        }
        let chunk = read_exact_crc(&mut r, &mut crc, len)?;
        let mut rd = Reader::new(&chunk);
        while !rd.is_empty() {
            match read_record(&mut rd, &mut tree, &mut acls)? {
                REC_NODE => nodes += 1,
                REC_SESSION => sessions += 1,
                _ => {}
            }
        }
    }
    let tail = read_exact_crc(&mut r, &mut crc, 16)?;
    let want_nodes = be_u64(&tail[..8]);
    let want_sessions = be_u64(&tail[8..16]);
    let mut stored = [0u8; 4];
    r.read_exact(&mut stored)
        .map_err(|_| StoreError::corrupt("snapshot", "missing checksum"))?;
    if crc.finalize() != u32::from_be_bytes(stored) {
        return Err(StoreError::corrupt("snapshot", "checksum mismatch"));
    }
    if (nodes, sessions) != (want_nodes, want_sessions) {
        return Err(StoreError::corrupt(
            "snapshot",
            format!("counts {nodes}/{sessions}, trailer says {want_nodes}/{want_sessions}"),
        ));
    }
    if r.read(&mut [0u8; 1])? != 0 {
        return Err(StoreError::corrupt("snapshot", "trailing bytes"));
    }
    tree.finish_load(zxid);
    Ok((zxid, tree))
}

fn read_record(
    r: &mut Reader<'_>,
    tree: &mut DataTree,
    acls: &mut HashMap<i32, Arc<[Acl]>>,
) -> Result<i32, StoreError> {
    let e = StoreError::decode("snapshot record");
    let tag = r.read_i32().map_err(&e)?;
    match tag {
        REC_SESSION => {
            let id = r.read_i64().map_err(&e)?;
            let timeout_ms = r.read_i32().map_err(&e)?;
            let passwd = r.read_buffer().map_err(&e)?;
            tree.load_session(id, SessionEntry { timeout_ms, passwd });
        }
        REC_START_EPHEMERAL => {
            let session = r.read_i64().map_err(&e)?;
            let path = r.read_string().map_err(&e)?;
            tree.load_start_ephemeral(session, path);
        }
        REC_ACL => {
            let id = r.read_i32().map_err(&e)?;
            let list = read_acls(r).map_err(&e)?;
            let interned = tree.intern(list);
            acls.insert(id, interned);
        }
        REC_NODE => {
            let path = r.read_string().map_err(&e)?;
            let data = r.read_opt_buffer().map_err(&e)?;
            let acl_id = r.read_i32().map_err(&e)?;
            let ps = PersistedStat {
                czxid: r.read_i64().map_err(&e)?,
                mzxid: r.read_i64().map_err(&e)?,
                ctime: r.read_i64().map_err(&e)?,
                mtime: r.read_i64().map_err(&e)?,
                version: r.read_i32().map_err(&e)?,
                cversion: r.read_i32().map_err(&e)?,
                aversion: r.read_i32().map_err(&e)?,
                owner: r.read_i64().map_err(&e)?,
                pzxid: r.read_i64().map_err(&e)?,
            };
            let acl = acls.get(&acl_id).cloned().ok_or_else(|| {
                StoreError::corrupt("snapshot", format!("unknown acl id {acl_id}"))
            })?;
            tree.load_node(&path, data, acl, &ps)
                .map_err(|d| StoreError::corrupt("snapshot", d))?;
        }
        t => {
            return Err(StoreError::corrupt(
                "snapshot",
                format!("unknown record {t}"),
            ))
        }
    }
    Ok(tag)
}

/// The newest snapshot in `dir` that verifies; corrupt ones are skipped with
/// a warning. `None` if there is none.
pub fn load_latest_snapshot(dir: &Path) -> Result<Option<(i64, DataTree)>, StoreError> {
    for zxid in list_snapshots(dir)?.into_iter().rev() {
        let path = dir.join(snapshot_file_name(zxid));
        match load_snapshot(&path) {
            Ok(loaded) => return Ok(Some(loaded)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping unusable snapshot")
            }
        }
    }
    Ok(None)
}

/// Deletes all but the newest `retain` snapshots (at least one is kept).
/// Returns the zxids kept, ascending. Purge the log only through the oldest
/// kept zxid, so every kept snapshot stays recoverable.
pub fn purge_snapshots(dir: &Path, retain: usize) -> Result<Vec<i64>, StoreError> {
    let all = list_snapshots(dir)?;
    let cut = all.len().saturating_sub(retain.max(1));
    for zxid in &all[..cut] {
        fs::remove_file(dir.join(snapshot_file_name(*zxid)))?;
    }
    Ok(all[cut..].to_vec())
}

/// Loads the newest usable snapshot (or starts from a fresh tree) and replays
/// every logged txn after its start zxid.
///
/// Fails if the log was purged past that point (the txns in between are gone).
pub fn recover(snap_dir: &Path, log: &dyn TxnLog) -> Result<DataTree, StoreError> {
    remove_partial_snapshots(snap_dir);
    // No snapshot: a fresh tree (`DataTree::default()`) at zxid 0.
    let (start, mut tree) = load_latest_snapshot(snap_dir)?.unwrap_or_default();
    if let Some(v) = log.get_meta(PURGED_THROUGH_KEY)? {
        let purged = <[u8; 8]>::try_from(v.as_slice())
            .map(i64::from_be_bytes)
            .map_err(|_| StoreError::corrupt("log meta", "purged_through"))?;
        if purged > start {
            return Err(StoreError::corrupt(
                "log",
                format!("purged through {purged:#x} but the newest usable snapshot starts at {start:#x}"),
            ));
        }
    }
    for e in log.read_after(start)? {
        if e.hdr.zxid <= tree.last_zxid() {
            return Err(StoreError::corrupt(
                "log",
                format!("zxid {:#x} out of order", e.hdr.zxid),
            ));
        }
        tree.apply(&e.hdr, &e.txn);
    }
    Ok(tree)
}

/// Deletes `snapshot.*.tmp` files left by a crash mid-write. They never
/// count as snapshots; without this they would pile up across crashes.
pub fn remove_partial_snapshots(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(PREFIX) && name.ends_with(".tmp") {
            match fs::remove_file(e.path()) {
                Ok(()) => {
                    tracing::info!(file = %name, "removed a partial snapshot left by a crash")
                }
                Err(err) => {
                    tracing::warn!(file = %name, error = %err, "could not remove a partial snapshot")
                }
            }
        }
    }
}
