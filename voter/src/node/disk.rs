//! A voter's durable state: the txn log (which may hold an uncommitted
//! suffix), the snapshots, and the accepted and current epochs (kept as log
//! metadata, so they are durable with the same fsync as the entries).
//!
//! The core carries snapshots as opaque [`Snapshot`]s. Here their `state` is
//! the UTF-8 path of a snapshot file on this node, or empty for the empty
//! tree; the envelope swaps it for the file's bytes on the wire.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use corral_store::disk::PURGED_THROUGH_KEY;
use corral_store::snapshot::{
    list_snapshots, load_snapshot, remove_partial_snapshots, snapshot_file_name,
};
use corral_store::{DataTree, Ensemble, StoreError, TxnLog};

use crate::core::members::{decode_list, encode_list};
use crate::core::{Epoch, Membership, PersistOp, Recovered, ServerId, Snapshot, Zxid};

const ACCEPTED_EPOCH_KEY: &str = "zab.accepted_epoch";
/// The configurations a learner last took from its leader.
const CONFIGS_KEY: &str = "zab.configs";
const CURRENT_EPOCH_KEY: &str = "zab.current_epoch";

/// Where a voter keeps its files.
#[derive(Clone, Debug)]
pub struct Dirs {
    /// Snapshots the node took or installed (`snapshot.<zxid>`).
    pub snapshots: PathBuf,
    /// Snapshots received in a SNAP sync, until the core installs them.
    pub incoming: PathBuf,
}

impl Dirs {
    pub fn new(data_dir: &Path) -> Dirs {
        Dirs {
            snapshots: data_dir.join("snapshots"),
            incoming: data_dir.join("snap-incoming"),
        }
    }
}

/// The snapshot handle for a file.
pub fn handle(zxid: i64, path: &Path) -> Snapshot {
    Snapshot {
        zxid: Zxid(zxid),
        state: Arc::from(path.to_string_lossy().as_bytes()),
    }
}

/// The file a handle names; `None` for the empty tree.
pub fn path_of(s: &Snapshot) -> Option<PathBuf> {
    if s.state.is_empty() {
        return None;
    }
    Some(PathBuf::from(
        String::from_utf8_lossy(&s.state).into_owned(),
    ))
}

/// Loads the tree a handle names (the empty tree for an empty handle).
pub fn load_tree(s: &Snapshot) -> Result<DataTree, StoreError> {
    match path_of(s) {
        None => Ok(DataTree::default()),
        Some(p) => Ok(load_snapshot(&p)?.1),
    }
}

fn get_epoch(log: &dyn TxnLog, key: &str) -> Result<Epoch, StoreError> {
    match log.get_meta(key)? {
        None => Ok(0),
        Some(v) => <[u8; 4]>::try_from(v.as_slice())
            .map(u32::from_be_bytes)
            .map_err(|_| StoreError::Corrupt {
                what: "log meta",
                detail: key.to_string(),
            }),
    }
}

/// Reads what the core starts from, and the tree of the newest usable
/// snapshot. Unlike a standalone node, a voter does not replay its log into
/// the tree: the log may end in proposals that never committed. Entries come
/// back as `Commit`s once the node has synced with a leader.
pub fn recover(dirs: &Dirs, log: &dyn TxnLog) -> Result<(Recovered, DataTree), StoreError> {
    remove_partial_snapshots(&dirs.snapshots);
    let _ = std::fs::remove_dir_all(&dirs.incoming);
    let mut found = None;
    for zxid in list_snapshots(&dirs.snapshots)?.into_iter().rev() {
        let path = dirs.snapshots.join(snapshot_file_name(zxid));
        match load_snapshot(&path) {
            Ok((z, tree)) => {
                found = Some((handle(z, &path), tree));
                break;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping unusable snapshot")
            }
        }
    }
    let start = found.as_ref().map_or(0, |(s, _)| s.zxid.0);
    if let Some(v) = log.get_meta(PURGED_THROUGH_KEY)? {
        let purged = <[u8; 8]>::try_from(v.as_slice())
            .map(i64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt {
                what: "log meta",
                detail: "purged_through".into(),
            })?;
        if purged > start {
            return Err(StoreError::Corrupt {
                what: "log",
                detail: format!(
                    "purged through {purged:#x} but the newest usable snapshot starts at {start:#x}"
                ),
            });
        }
    }
    let entries = log.read_after(start)?;
    let membership = match found.as_ref().and_then(|(_, t)| t.snapshot_config()) {
        Some(text) => Some(membership_of(text)?),
        None => None,
    };
    let recovered = Recovered {
        accepted_epoch: get_epoch(log, ACCEPTED_EPOCH_KEY)?,
        current_epoch: get_epoch(log, CURRENT_EPOCH_KEY)?,
        snapshot: found.as_ref().map(|(s, _)| s.clone()),
        log: entries,
        membership,
        configs: match log.get_meta(CONFIGS_KEY)? {
            Some(b) => decode_list(&b).map_err(|e| StoreError::Corrupt {
                what: "log meta",
                detail: format!("configurations: {e}"),
            })?,
            None => Vec::new(),
        },
    };
    let tree = found.map(|(_, t)| t).unwrap_or_default();
    Ok((recovered, tree))
}

/// The voting configuration a snapshot's `/zookeeper/config` text names.
fn membership_of(text: &[u8]) -> Result<Membership, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "snapshot configuration",
        detail,
    };
    let text = std::str::from_utf8(text).map_err(|e| corrupt(e.to_string()))?;
    let ens = Ensemble::parse(text).map_err(|e| corrupt(e.0))?;
    Ok(Membership::new(
        Zxid(ens.version),
        ens.voters().into_iter().map(ServerId),
    ))
}

/// Applies one persist op (durable after the caller's `sync`).
pub fn apply_op(dirs: &Dirs, log: &mut dyn TxnLog, op: PersistOp) -> Result<(), StoreError> {
    match op {
        PersistOp::AcceptedEpoch(e) => log.put_meta(ACCEPTED_EPOCH_KEY, &e.to_be_bytes()),
        PersistOp::CurrentEpoch(e) => log.put_meta(CURRENT_EPOCH_KEY, &e.to_be_bytes()),
        PersistOp::Configs(list) => log.put_meta(CONFIGS_KEY, &encode_list(&list)),
        PersistOp::Append(entries) => log.append(&entries),
        PersistOp::TruncateAfter(z) => log.truncate_after(z.0),
        PersistOp::InstallSnapshot(s) => {
            // The snapshot goes in first, then the log is emptied: a crash in
            // between leaves a newer snapshot and an older log, which
            // recovery reads as snapshot + possibly-uncommitted suffix.
            if let Some(src) = path_of(&s) {
                std::fs::create_dir_all(&dirs.snapshots)?;
                let dst = dirs.snapshots.join(snapshot_file_name(s.zxid.0));
                if src != dst {
                    std::fs::rename(&src, &dst)?;
                    std::fs::File::open(&dirs.snapshots)?.sync_all()?;
                }
            }
            log.truncate_after(0)?;
            log.put_meta(PURGED_THROUGH_KEY, &s.zxid.0.to_be_bytes())
        }
    }
}

/// Writes a snapshot received from the leader into the incoming directory,
/// durably, and returns its handle. An empty body is the empty tree.
pub fn store_incoming(dirs: &Dirs, zxid: i64, body: &[u8]) -> std::io::Result<Snapshot> {
    if body.is_empty() {
        return Ok(Snapshot {
            zxid: Zxid(zxid),
            state: Arc::from(Vec::new()),
        });
    }
    std::fs::create_dir_all(&dirs.incoming)?;
    let path = dirs.incoming.join(snapshot_file_name(zxid));
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(handle(zxid, &path))
}

/// The bytes of the snapshot a handle names (empty for the empty tree).
pub fn read_snapshot(s: &Snapshot) -> std::io::Result<Vec<u8>> {
    match path_of(s) {
        None => Ok(Vec::new()),
        Some(p) => std::fs::read(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_store::{FileTxnLog, LogEntry, Txn, TxnHeader};

    fn entry(zxid: i64) -> LogEntry {
        LogEntry {
            hdr: TxnHeader {
                session_id: 1,
                cxid: 1,
                zxid,
                time_ms: 0,
            },
            txn: Txn::Create {
                path: format!("/n{zxid}"),
                data: Some(vec![1]),
                acl: corral_proto::Acl::open_unsafe(),
                ephemeral_owner: 0,
                parent_cversion: zxid as i32,
            },
        }
    }

    #[test]
    fn epochs_and_log_survive_reopen_and_the_tree_holds_only_the_snapshot() {
        // Goal: a voter recovers its epochs and its whole log, but does not
        // apply the log (it may end in uncommitted proposals).
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(dir.path());
        {
            let mut log = FileTxnLog::open(&dir.path().join("txnlog")).unwrap();
            apply_op(&dirs, &mut log, PersistOp::AcceptedEpoch(3)).unwrap();
            apply_op(&dirs, &mut log, PersistOp::CurrentEpoch(2)).unwrap();
            apply_op(
                &dirs,
                &mut log,
                PersistOp::Append(vec![entry(1), entry(2), entry(3)]),
            )
            .unwrap();
            apply_op(&dirs, &mut log, PersistOp::TruncateAfter(Zxid(2))).unwrap();
            log.sync().unwrap();
        }
        let log = FileTxnLog::open(&dir.path().join("txnlog")).unwrap();
        let (r, tree) = recover(&dirs, &log).unwrap();
        assert_eq!((r.accepted_epoch, r.current_epoch), (3, 2));
        assert_eq!(
            r.log.iter().map(|e| e.hdr.zxid).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(r.snapshot.is_none());
        assert!(
            tree.get("/n1").is_none(),
            "the log is not replayed into the tree"
        );
    }

    #[test]
    fn installed_snapshot_replaces_the_log_and_is_recovered() {
        // Goal: after a SNAP install, recovery starts from the installed
        // snapshot and only the entries appended after it.
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(dir.path());
        let lock = std::sync::RwLock::new(DataTree::default());
        {
            let mut t = lock.write().unwrap();
            for z in 1..=5 {
                let e = entry(z);
                t.apply(&e.hdr, &e.txn);
            }
        }
        let src = tempfile::tempdir().unwrap();
        let (z, path) = corral_store::write_fuzzy_snapshot(&lock, src.path()).unwrap();
        assert_eq!(z, 5);
        let body = std::fs::read(&path).unwrap();
        let incoming = store_incoming(&dirs, z, &body).unwrap();
        {
            let mut log = FileTxnLog::open(&dir.path().join("txnlog")).unwrap();
            apply_op(&dirs, &mut log, PersistOp::Append(vec![entry(1), entry(2)])).unwrap();
            apply_op(&dirs, &mut log, PersistOp::InstallSnapshot(incoming)).unwrap();
            apply_op(&dirs, &mut log, PersistOp::Append(vec![entry(6)])).unwrap();
            log.sync().unwrap();
        }
        let log = FileTxnLog::open(&dir.path().join("txnlog")).unwrap();
        let (r, tree) = recover(&dirs, &log).unwrap();
        assert_eq!(r.snapshot.as_ref().map(|s| s.zxid), Some(Zxid(5)));
        assert_eq!(
            r.log.iter().map(|e| e.hdr.zxid).collect::<Vec<_>>(),
            vec![6]
        );
        assert!(tree.get("/n5").is_some() && tree.get("/n6").is_none());
        assert!(
            !dirs.incoming.join(snapshot_file_name(5)).exists(),
            "moved, not copied"
        );
    }
}
