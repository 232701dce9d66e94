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
//! Records: `1` session (id i64, timeout i32, passwd), `6` a bound
//! session's tenant, after that session's record (id i64, tenant name;
//! files from before tenants were recorded have none and read as they are), `4` an ephemeral
//! owned at the start (session i64, path), `5` the `/zookeeper/config` data
//! at the start (buffer; only after a reconfig), `2` ACL list
//! definition (id i32, acl vector), `3` node (path, data, acl id, czxid,
//! mzxid, ctime, mtime, version, persisted cversion, aversion, raw
//! ephemeralOwner, pzxid). Nodes come parents-first, so loading never meets an
//! orphan; in fact depth-first with siblings in byte order, which loading
//! relies on for speed (a parent is found on a stack of the current path and
//! a child is appended to its siblings), falling back to lookups otherwise.
//! A reader thread reads and checksums the chunks and computes the data and
//! ACL digest parts while the calling thread builds the tree.
//!
//! The snapshot is fuzzy (see the crate docs): the start zxid, the session
//! table, the ephemeral paths per session and the ensemble configuration are
//! taken at the start, under one read lock (a voter recovers its voting
//! configuration from the last, which the fuzzy walk could show newer); nodes are then walked in
//! chunks, each under its own read lock, so writers keep applying in between.
//! Replaying the log after the start zxid makes the result exact.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use corral_proto::{read_acls, write_acls, Reader, Writer};

use crate::digest;
use crate::disk::{TxnLog, PURGED_THROUGH_KEY};
use crate::error::StoreError;
use crate::node::{AclRef, Node};
use crate::path::join;
use crate::tree::{DataTree, Loader, PersistedStat, SessionEntry};

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
const REC_START_CONFIG: i32 = 5;
const REC_SESSION_TENANT: i32 = 6;

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
    after: Option<String>,
    /// Valid only within the current chunk (indices can be reused between).
    idx: Option<u32>,
    /// Where the child after `after` is in the node's child set; valid
    /// only within the current chunk, like `idx`.
    cursor: Option<(usize, usize)>,
}

/// Per-walk state that spans chunks.
#[derive(Default)]
struct Walk {
    frames: Vec<Frame>,
    /// ACL list address -> id. Holding the `Arc` keeps the address from being
    /// reused by a different list while the walk runs.
    acl_ids: HashMap<usize, (i32, AclRef)>,
    nodes: u64,
}

impl Walk {
    fn emit(&mut self, w: &mut Writer, path: &str, n: &Node) {
        let key = Arc::as_ptr(&n.acl) as usize;
        let next_id = self.acl_ids.len() as i32;
        let id = match self.acl_ids.get(&key) {
            Some((id, _)) => *id,
            None => {
                w.write_i32(REC_ACL);
                w.write_i32(next_id);
                write_acls(w, n.acl());
                self.acl_ids.insert(key, (next_id, n.acl.clone()));
                next_id
            }
        };
        let ps = PersistedStat::of(n);
        w.write_i32(REC_NODE);
        w.write_string(path);
        w.write_opt_buffer(n.data());
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
            f.cursor = None;
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
            // One search per directory per chunk; then the next child is
            // the next position.
            let next = tree.node(idx).children.as_ref().and_then(|c| {
                let at = top.cursor.unwrap_or_else(|| {
                    c.position_after(top.after.as_deref().map(str::as_bytes), tree.arena())
                });
                c.next_at(at)
            });
            let Some((cidx, cursor)) = next else {
                self.frames.pop();
                continue;
            };
            top.cursor = Some(cursor);
            let child = tree.node(cidx);
            match &mut top.after {
                Some(a) => {
                    a.clear();
                    a.push_str(child.name());
                }
                None => top.after = Some(child.name().to_string()),
            }
            let path = join(&top.path, child.name());
            self.emit(w, &path, child);
            if child.num_children() > 0 {
                self.frames.push(Frame {
                    path,
                    after: None,
                    idx: Some(cidx),
                    cursor: None,
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
            if let Some(tenant) = &s.tenant {
                body.write_i32(REC_SESSION_TENANT);
                body.write_i64(*id);
                body.write_string(tenant);
            }
        }
        for (session, paths) in t.all_ephemerals() {
            for path in paths {
                body.write_i32(REC_START_EPHEMERAL);
                body.write_i64(session);
                body.write_string(&path);
            }
        }
        if let Some(config) = t.config_data().filter(|d| !d.is_empty()) {
            body.write_i32(REC_START_CONFIG);
            body.write_buffer(config);
        }
        let root = t.get("/").expect("root always exists");
        walk.emit(&mut body, "/", root);
        walk.frames.push(Frame {
            path: "/".into(),
            after: None,
            idx: None,
            cursor: None,
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

/// Reads exactly `n` bytes into `buf`, checksumming them. `left` is what
/// the file still holds, so a corrupt length cannot ask for a huge buffer.
fn read_exact_crc(
    r: &mut impl Read,
    crc: &mut crc32fast::Hasher,
    n: usize,
    left: &mut u64,
    buf: &mut Vec<u8>,
) -> Result<(), StoreError> {
    if n as u64 > *left {
        return Err(StoreError::corrupt(
            "snapshot",
            format!("truncated: wanted {n} bytes, {left} left"),
        ));
    }
    buf.clear();
    buf.resize(n, 0);
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            StoreError::corrupt("snapshot", format!("truncated: wanted {n} bytes"))
        } else {
            e.into()
        }
    })?;
    *left -= n as u64;
    crc.update(buf);
    Ok(())
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
///
/// Two threads: a reader reads the chunks, checksums them and computes the
/// digest parts of their nodes that do not depend on the tree (data and
/// ACL), while this thread parses the same chunks into the tree. Buffers go
/// back to the reader for reuse.
pub fn load_snapshot(path: &Path) -> Result<(i64, DataTree), StoreError> {
    let file = File::open(path)?;
    let mut left = file.metadata()?.len();
    let mut r = BufReader::with_capacity(256 * 1024, file);
    let mut crc = crc32fast::Hasher::new();
    let mut buf = Vec::new();
    read_exact_crc(&mut r, &mut crc, 20, &mut left, &mut buf)?;
    if &buf[..8] != MAGIC {
        return Err(StoreError::corrupt("snapshot", "bad magic"));
    }
    let version = be_u32(&buf[8..12]);
    if version != VERSION {
        return Err(StoreError::corrupt(
            "snapshot",
            format!("unknown version {version}"),
        ));
    }
    let zxid = be_u64(&buf[12..20]) as i64;
    let mut loader = Loader::new();
    let mut acls: HashMap<i32, AclRef> = HashMap::new();
    let (mut nodes, mut sessions) = (0u64, 0u64);
    let (trailer, parsed) = std::thread::scope(|scope| {
        let (chunks_tx, chunks) = std::sync::mpsc::sync_channel::<ReadChunk>(4);
        let (spent, spent_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let reader = std::thread::Builder::new()
            .name("corral-snap-read".into())
            .spawn_scoped(scope, move || {
                read_chunks(r, crc, left, chunks_tx, spent_rx)
            })?;
        let mut parsed = Ok(());
        for chunk in chunks.iter() {
            match chunk.parts {
                Some(p) => loader.add_digest(p),
                None => loader.recount(),
            }
            let mut rd = Cursor {
                buf: &chunk.buf,
                pos: 0,
            };
            while rd.pos < chunk.buf.len() {
                match read_record(&mut rd, &mut loader, &mut acls) {
                    Ok(REC_NODE) => nodes += 1,
                    Ok(REC_SESSION) => sessions += 1,
                    Ok(_) => {}
                    Err(e) => {
                        parsed = Err(e);
                        break;
                    }
                }
            }
            if parsed.is_err() {
                break;
            }
            let _ = spent.send(chunk.buf);
        }
        // Unblocks a reader still sending, after an error here.
        drop(chunks);
        let trailer = match reader.join() {
            Ok(t) => t,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        Ok::<_, StoreError>((trailer, parsed))
    })?;
    // A damaged chunk is reported as the reader found it, else as parsed.
    let (want_nodes, want_sessions, trailing) = trailer?;
    parsed?;
    if (nodes, sessions) != (want_nodes, want_sessions) {
        return Err(StoreError::corrupt(
            "snapshot",
            format!("counts {nodes}/{sessions}, trailer says {want_nodes}/{want_sessions}"),
        ));
    }
    if trailing {
        return Err(StoreError::corrupt("snapshot", "trailing bytes"));
    }
    Ok((zxid, loader.finish(zxid)))
}

/// A chunk as the reader thread hands it over: checksummed, with the sum of
/// its nodes' data and ACL digest parts (`None` if it did not parse).
struct ReadChunk {
    buf: Vec<u8>,
    parts: Option<u64>,
}

/// The reader thread: sends every chunk, then checks the trailer and the
/// checksum. Returns the trailer's node and session counts, and whether
/// bytes follow the checksum.
fn read_chunks(
    mut r: BufReader<File>,
    mut crc: crc32fast::Hasher,
    mut left: u64,
    chunks: std::sync::mpsc::SyncSender<ReadChunk>,
    spent: std::sync::mpsc::Receiver<Vec<u8>>,
) -> Result<(u64, u64, bool), StoreError> {
    let mut head = Vec::with_capacity(16);
    let mut acl_lists: HashMap<i32, Vec<corral_proto::Acl>> = HashMap::new();
    loop {
        read_exact_crc(&mut r, &mut crc, 4, &mut left, &mut head)?;
        let len = be_u32(&head) as usize;
        if len == 0 {
            break;
        }
        let mut buf = spent.try_recv().unwrap_or_default();
        read_exact_crc(&mut r, &mut crc, len, &mut left, &mut buf)?;
        let parts = chunk_digest_parts(&buf, &mut acl_lists);
        if chunks.send(ReadChunk { buf, parts }).is_err() {
            // The parser stopped at an error of its own.
            return Ok((0, 0, false));
        }
    }
    read_exact_crc(&mut r, &mut crc, 16, &mut left, &mut head)?;
    let want_nodes = be_u64(&head[..8]);
    let want_sessions = be_u64(&head[8..16]);
    let mut stored = [0u8; 4];
    r.read_exact(&mut stored)
        .map_err(|_| StoreError::corrupt("snapshot", "missing checksum"))?;
    if crc.finalize() != u32::from_be_bytes(stored) {
        return Err(StoreError::corrupt("snapshot", "checksum mismatch"));
    }
    let trailing = r.read(&mut [0u8; 1])? != 0;
    Ok((want_nodes, want_sessions, trailing))
}

/// The sum of `data_part + acl_part` over the chunk's nodes, or `None` if a
/// record does not parse (the parser then reports it).
fn chunk_digest_parts(
    buf: &[u8],
    acl_lists: &mut HashMap<i32, Vec<corral_proto::Acl>>,
) -> Option<u64> {
    let mut r = Cursor { buf, pos: 0 };
    let mut sum = 0u64;
    while r.pos < buf.len() {
        match r.i32().ok()? {
            REC_SESSION => {
                r.take(12).ok()?;
                r.opt_bytes().ok()?;
            }
            REC_START_EPHEMERAL | REC_SESSION_TENANT => {
                r.take(8).ok()?;
                r.opt_bytes().ok()?;
            }
            REC_START_CONFIG => {
                r.opt_bytes().ok()?;
            }
            REC_ACL => {
                let id = r.i32().ok()?;
                let list = r.jute(read_acls).ok()?;
                acl_lists.insert(id, list);
            }
            REC_NODE => {
                let path = r.str().ok()?;
                let data = r.opt_bytes().ok()?;
                let acl = acl_lists.get(&r.i32().ok()?)?;
                r.take(NODE_STAT_BYTES).ok()?;
                sum = sum
                    .wrapping_add(digest::data_part(path, data))
                    .wrapping_add(digest::acl_part(path, acl));
            }
            _ => return None,
        }
    }
    Some(sum)
}

/// czxid, mzxid, ctime, mtime (i64), version, cversion, aversion (i32),
/// owner, pzxid (i64).
const NODE_STAT_BYTES: usize = 4 * 8 + 3 * 4 + 2 * 8;

/// Reads records in place (no copies of paths or data).
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn truncated() -> StoreError {
    StoreError::corrupt("snapshot record", "truncated")
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self.pos.checked_add(n).ok_or_else(truncated)?;
        let b = self.buf.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(b)
    }

    fn i32(&mut self) -> Result<i32, StoreError> {
        Ok(be_u32(self.take(4)?) as i32)
    }

    fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(be_u64(self.take(8)?) as i64)
    }

    /// A jute buffer: `-1` is null.
    fn opt_bytes(&mut self) -> Result<Option<&'a [u8]>, StoreError> {
        match self.i32()? {
            -1 => Ok(None),
            n if n < 0 => Err(StoreError::corrupt(
                "snapshot record",
                format!("length {n}"),
            )),
            n => self.take(n as usize).map(Some),
        }
    }

    /// A jute string; null reads as empty.
    fn str(&mut self) -> Result<&'a str, StoreError> {
        let b = self.opt_bytes()?.unwrap_or_default();
        std::str::from_utf8(b).map_err(|_| StoreError::corrupt("snapshot record", "bad UTF-8"))
    }

    /// Hands the rest to a jute `Reader` for `f`, then skips what it read.
    fn jute<T>(
        &mut self,
        f: impl FnOnce(&mut Reader<'a>) -> Result<T, corral_proto::DecodeError>,
    ) -> Result<T, StoreError> {
        let mut r = Reader::new(&self.buf[self.pos..]);
        let v = f(&mut r).map_err(StoreError::decode("snapshot record"))?;
        self.pos += r.position();
        Ok(v)
    }
}

fn read_record(
    r: &mut Cursor<'_>,
    loader: &mut Loader,
    acls: &mut HashMap<i32, AclRef>,
) -> Result<i32, StoreError> {
    let tag = r.i32()?;
    match tag {
        REC_SESSION => {
            let id = r.i64()?;
            let timeout_ms = r.i32()?;
            let passwd = r.opt_bytes()?.unwrap_or_default().to_vec();
            loader.session(
                id,
                SessionEntry {
                    timeout_ms,
                    passwd,
                    tenant: None,
                },
            );
        }
        REC_SESSION_TENANT => {
            let id = r.i64()?;
            let tenant = r.str()?.to_string();
            loader
                .session_tenant(id, tenant)
                .map_err(|d| StoreError::corrupt("snapshot", d))?;
        }
        REC_START_EPHEMERAL => {
            let session = r.i64()?;
            let path = r.str()?.to_string();
            loader.start_ephemeral(session, path);
        }
        REC_START_CONFIG => {
            let data = r.opt_bytes()?.unwrap_or_default().to_vec();
            loader.start_config(data);
        }
        REC_ACL => {
            let id = r.i32()?;
            let list = r.jute(read_acls)?;
            let interned = loader.intern(&list);
            acls.insert(id, interned);
        }
        REC_NODE => {
            let path = r.str()?;
            let data = r.opt_bytes()?;
            let acl_id = r.i32()?;
            let ps = PersistedStat {
                czxid: r.i64()?,
                mzxid: r.i64()?,
                ctime: r.i64()?,
                mtime: r.i64()?,
                version: r.i32()?,
                cversion: r.i32()?,
                aversion: r.i32()?,
                owner: r.i64()?,
                pzxid: r.i64()?,
            };
            let acl = acls.get(&acl_id).cloned().ok_or_else(|| {
                StoreError::corrupt("snapshot", format!("unknown acl id {acl_id}"))
            })?;
            loader
                .node(path, data, acl, &ps)
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

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::Acl;

    /// A snapshot file holding a session, an open ACL (id 0) and `nodes`
    /// (path, data, owner) in the order given, with stats made up from the
    /// path and data.
    fn raw_snapshot(dir: &Path, nodes: &[(&str, &[u8], i64)]) -> PathBuf {
        raw_snapshot_with(dir, |_| {}, nodes)
    }

    /// [`raw_snapshot`] with `extra` records written after the session's.
    fn raw_snapshot_with(
        dir: &Path,
        extra: impl FnOnce(&mut Writer),
        nodes: &[(&str, &[u8], i64)],
    ) -> PathBuf {
        let mut body = Writer::new();
        body.write_i32(REC_SESSION);
        body.write_i64(7);
        body.write_i32(3000);
        body.write_buffer(b"pw");
        extra(&mut body);
        body.write_i32(REC_ACL);
        body.write_i32(0);
        write_acls(&mut body, &Acl::open_unsafe());
        for (path, data, owner) in nodes {
            let z = 100 + 10 * data.len() as i64 + path.len() as i64;
            body.write_i32(REC_NODE);
            body.write_string(path);
            body.write_opt_buffer(Some(data));
            body.write_i32(0);
            for v in [z, z + 1, 1000 + z, 2000 + z] {
                body.write_i64(v);
            }
            for v in [1, 2, 3] {
                body.write_i32(v);
            }
            body.write_i64(*owner);
            body.write_i64(z + 2);
        }
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_be_bytes());
        bytes.extend_from_slice(&500i64.to_be_bytes());
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bytes.extend_from_slice(body.as_slice());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&(nodes.len() as u64).to_be_bytes());
        bytes.extend_from_slice(&1u64.to_be_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("snap-{n}"));
        fs::write(&path, bytes).unwrap();
        path
    }

    fn tenant_record(id: i64, tenant: &str) -> impl FnOnce(&mut Writer) + '_ {
        move |w| {
            w.write_i32(REC_SESSION_TENANT);
            w.write_i64(id);
            w.write_string(tenant);
        }
    }

    #[test]
    fn session_tenants_load_and_files_without_them_still_do() {
        // Goal: a session's tenant record loads into the table, the counts and the digest; a file from before tenants were recorded loads unbound; a tenant for an unknown session, or a second one, is corruption.
        let dir = tempfile::tempdir().unwrap();
        let nodes: [(&str, &[u8], i64); 1] = [("/a", b"1", 0)];
        let (_, old) = load_snapshot(&raw_snapshot(dir.path(), &nodes)).unwrap();
        assert_eq!(old.sessions()[&7].tenant, None);
        assert!(old.tenant_session_counts().is_empty());
        let file = raw_snapshot_with(dir.path(), tenant_record(7, "team"), &nodes);
        let (_, t) = load_snapshot(&file).unwrap();
        assert_eq!(t.session_tenant(7), Some("team"));
        assert_eq!(t.tenant_session_count("team"), 1);
        assert_eq!(t.tenant_session_counts(), &t.count_tenant_sessions());
        assert_eq!(t.digest(), t.recompute_digest());
        assert_ne!(t.digest(), old.digest());
        let unknown = raw_snapshot_with(dir.path(), tenant_record(8, "team"), &nodes);
        let e = load_snapshot(&unknown).unwrap_err().to_string();
        assert!(e.contains("unknown session"), "{e}");
        let twice = raw_snapshot_with(
            dir.path(),
            |w| {
                tenant_record(7, "team")(w);
                tenant_record(7, "other")(w);
            },
            &nodes,
        );
        let e = load_snapshot(&twice).unwrap_err().to_string();
        assert!(e.contains("second tenant"), "{e}");
    }

    fn view(t: &DataTree) -> Vec<(String, corral_proto::Stat, Vec<u8>)> {
        let mut v = Vec::new();
        t.for_each_node(|p, n| v.push((p.to_string(), n.stat(), n.data_bytes().to_vec())));
        v
    }

    #[test]
    fn nodes_in_any_parents_first_order_load_the_same_tree() {
        // Goal: restart; depth-first files load on the fast path, any other
        // parents-first order through lookups, with equal trees and digests.
        let dir = tempfile::tempdir().unwrap();
        let depth_first: [(&str, &[u8], i64); 7] = [
            ("/", b"r", 0),
            ("/a", b"1", 0),
            ("/a/x", b"22", 0),
            ("/a/x/z", b"", 7),
            ("/a/y", b"333", CONTAINER),
            ("/b", b"4444", 0),
            ("/b/y", b"5", 7),
        ];
        // "/b" before "/a", and "/a/x/z" after its parent was left.
        let shuffled: [(&str, &[u8], i64); 7] = [
            ("/", b"r", 0),
            ("/b", b"4444", 0),
            ("/a", b"1", 0),
            ("/b/y", b"5", 7),
            ("/a/y", b"333", CONTAINER),
            ("/a/x", b"22", 0),
            ("/a/x/z", b"", 7),
        ];
        let slow_path = || crate::tree::LAST_LOAD_SLOW.with(|c| c.get());
        let (_, fast) = load_snapshot(&raw_snapshot(dir.path(), &depth_first)).unwrap();
        assert!(!slow_path());
        let (_, slow) = load_snapshot(&raw_snapshot(dir.path(), &shuffled)).unwrap();
        assert!(slow_path());
        assert_eq!(view(&fast), view(&slow));
        assert_eq!(fast.digest(), fast.recompute_digest());
        assert_eq!(slow.digest(), slow.recompute_digest());
        assert_eq!(fast.digest(), slow.digest());
        assert_eq!(fast.approximate_data_size(), slow.approximate_data_size());
        assert_eq!(fast.approximate_data_size(), 1 + 2 + 4 + 6 + 4 + 6 + 4 + 9);
        assert_eq!(fast.all_ephemerals(), slow.all_ephemerals());
        assert_eq!(fast.ephemerals(7), vec!["/a/x/z", "/b/y"]);
        assert_eq!(fast.children("/a").unwrap(), vec!["x", "y"]);
        assert_eq!(fast.get("/").unwrap().data(), Some(&b"r"[..]));
        assert_eq!(fast.node_count(), 7);
        let cv = fast.stat("/a/y").unwrap();
        assert_eq!(
            (cv.czxid, cv.version, cv.aversion, cv.cversion),
            (134, 1, 3, 4)
        );
    }

    const CONTAINER: i64 = crate::node::CONTAINER_OWNER;

    #[test]
    fn written_snapshots_load_on_the_fast_path() {
        // Goal: restart; what write_fuzzy_snapshot writes (even with writes
        // between chunks) is depth-first, so loading never looks paths up.
        use crate::txn::{Txn, TxnHeader};
        let tree = RwLock::new(DataTree::new());
        let mut zxid = 0x1_0000_0000i64;
        let mut apply = |t: &RwLock<DataTree>, txn: Txn| {
            zxid += 1;
            let h = TxnHeader {
                session_id: 5,
                cxid: 0,
                zxid,
                time_ms: zxid,
            };
            t.write().unwrap().apply(&h, &txn);
        };
        let create = |path: String| Txn::Create {
            path,
            data: Some(vec![1; 3]),
            acl: Acl::open_unsafe(),
            ephemeral_owner: 0,
            parent_cversion: -1,
        };
        for d in 0..3 {
            apply(&tree, create(format!("/d{d}")));
            for c in 0..300 {
                apply(&tree, create(format!("/d{d}/n{c}")));
            }
            apply(&tree, create(format!("/d{d}/n7/deep")));
        }
        let dir = tempfile::tempdir().unwrap();
        let mut k = 0;
        let (_, file) = write_fuzzy_snapshot_interleaved(&tree, dir.path(), 50, &mut || {
            k += 1;
            match k % 3 {
                0 => apply(&tree, create(format!("/d1/m{k}"))),
                1 => apply(
                    &tree,
                    Txn::Delete {
                        path: format!("/d2/n{k}"),
                    },
                ),
                _ => apply(&tree, create(format!("/d0/n7/x{k}"))),
            }
        })
        .unwrap();
        let (_, loaded) = load_snapshot(&file).unwrap();
        assert!(!crate::tree::LAST_LOAD_SLOW.with(|c| c.get()));
        assert_eq!(loaded.digest(), loaded.recompute_digest());
        assert!(loaded.child_count("/d0").unwrap() >= 300);
    }

    #[test]
    fn an_orphan_a_duplicate_or_a_bad_path_is_refused() {
        // Goal: a parents-first violation, a repeated path or an invalid path is reported as corrupt, never loaded.
        let dir = tempfile::tempdir().unwrap();
        let e: &[u8] = b"";
        let cases: [&[(&str, &[u8], i64)]; 9] = [
            &[("/", e, 0), ("/a/b", e, 0), ("/a", e, 0)],
            &[("/", e, 0), ("/a", e, 0), ("/a", e, 0)],
            &[("/", e, 0), ("/a", e, 0), ("/b", e, 0), ("/a", e, 0)],
            &[("/", e, 0), ("/a", e, 0), ("/a/", e, 0)],
            &[("/", e, 0), ("//a", e, 0)],
            &[("/", e, 0), ("/a", e, 0), ("/a//b", e, 0)],
            &[("/", e, 0), ("/a", e, 0), ("/a/..", e, 0)],
            &[("/", e, 0), ("/a", e, 0), ("/a/\u{1}", e, 0)],
            &[("/", e, 0), ("a", e, 0)],
        ];
        for nodes in cases {
            match load_snapshot(&raw_snapshot(dir.path(), nodes)) {
                Err(StoreError::Corrupt { .. }) => {}
                other => panic!("{nodes:?}: {other:?}"),
            }
        }
    }
}
