//! TxnLog conformance, run against FileTxnLog, SledTxnLog and MemTxnLog, plus crash/tear faults.

use corral_store::disk::PURGED_THROUGH_KEY;
use corral_store::{
    FileTxnLog, LogEntry, MemTxnLog, SledTxnLog, StoreError, Txn, TxnHeader, TxnLog,
};

fn e(zxid: i64) -> LogEntry {
    LogEntry {
        hdr: TxnHeader {
            session_id: 1,
            cxid: zxid as i32,
            zxid,
            time_ms: zxid * 10,
        },
        txn: Txn::SetData {
            path: "/a".into(),
            data: Some(zxid.to_be_bytes().to_vec()),
            version: zxid as i32,
        },
    }
}

fn zxids(v: &[LogEntry]) -> Vec<i64> {
    v.iter().map(|e| e.hdr.zxid).collect()
}

/// The shared contract. `reopen` simulates a clean restart (after sync).
fn conformance(mut log: Box<dyn TxnLog>, reopen: &dyn Fn(Box<dyn TxnLog>) -> Box<dyn TxnLog>) {
    assert_eq!(log.last_zxid().unwrap(), None);
    assert!(log.read_after(0).unwrap().is_empty());
    log.append(&[e(1), e(2), e(3)]).unwrap();
    log.append(&[]).unwrap();
    log.append(&[e(5)]).unwrap();
    assert_eq!(log.last_zxid().unwrap(), Some(5));
    assert!(matches!(
        log.append(&[e(5)]),
        Err(StoreError::LogOrder { .. })
    ));
    assert!(matches!(
        log.append(&[e(7), e(6)]),
        Err(StoreError::LogOrder { .. })
    ));
    assert_eq!(
        log.last_zxid().unwrap(),
        Some(5),
        "a refused batch appends nothing"
    );
    assert_eq!(log.read_after(0).unwrap(), vec![e(1), e(2), e(3), e(5)]);
    assert_eq!(zxids(&log.read_after(2).unwrap()), vec![3, 5]);
    assert_eq!(zxids(&log.read_after(4).unwrap()), vec![5]);
    assert!(log.read_after(5).unwrap().is_empty());
    assert_eq!(zxids(&log.read_after(-1).unwrap()), vec![1, 2, 3, 5]);

    log.put_meta("acceptedEpoch", b"\x00\x07").unwrap();
    assert_eq!(
        log.get_meta("acceptedEpoch").unwrap(),
        Some(b"\x00\x07".to_vec())
    );
    assert_eq!(log.get_meta("missing").unwrap(), None);
    log.sync().unwrap();

    let mut log = reopen(log);
    assert_eq!(log.last_zxid().unwrap(), Some(5));
    assert_eq!(log.read_after(0).unwrap(), vec![e(1), e(2), e(3), e(5)]);
    assert_eq!(
        log.get_meta("acceptedEpoch").unwrap(),
        Some(b"\x00\x07".to_vec())
    );

    log.truncate_after(2).unwrap();
    assert_eq!(log.last_zxid().unwrap(), Some(2));
    assert_eq!(zxids(&log.read_after(0).unwrap()), vec![1, 2]);
    log.append(&[e(3), e(4)]).unwrap();
    log.purge_through(2).unwrap();
    assert_eq!(zxids(&log.read_after(0).unwrap()), vec![3, 4]);
    assert_eq!(
        log.get_meta(PURGED_THROUGH_KEY).unwrap(),
        Some(2i64.to_be_bytes().to_vec())
    );
    log.purge_through(1).unwrap();
    assert_eq!(
        log.get_meta(PURGED_THROUGH_KEY).unwrap(),
        Some(2i64.to_be_bytes().to_vec()),
        "never moves back"
    );
    log.purge_through(10).unwrap();
    assert_eq!(log.last_zxid().unwrap(), None);
    log.append(&[e(11)]).unwrap();
    log.sync().unwrap();

    let log = reopen(log);
    assert_eq!(zxids(&log.read_after(0).unwrap()), vec![11]);
    assert_eq!(log.last_zxid().unwrap(), Some(11));
}

#[test]
fn mem_log_conforms() {
    // Goal: MemTxnLog honours the TxnLog contract.
    let reopen = |l: Box<dyn TxnLog>| -> Box<dyn TxnLog> { l };
    conformance(Box::new(MemTxnLog::new()), &reopen);
}

#[test]
fn mem_log_conforms_across_crashes_after_sync() {
    // Goal: a crash right after sync loses nothing.
    let handle = MemTxnLog::new();
    let h2 = handle.clone();
    let reopen = move |l: Box<dyn TxnLog>| -> Box<dyn TxnLog> {
        h2.crash();
        l
    };
    conformance(Box::new(handle), &reopen);
}

#[test]
fn sled_log_conforms_across_reopen() {
    // Goal: SledTxnLog honours the contract, and synced data survives closing and reopening.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let p2 = path.clone();
    let reopen = move |l: Box<dyn TxnLog>| -> Box<dyn TxnLog> {
        drop(l);
        Box::new(open_sled_when_unlocked(&p2))
    };
    conformance(Box::new(SledTxnLog::open(&path).unwrap()), &reopen);
}

/// Opens a sled log that was just closed. sled's background flusher may hold
/// the directory lock for a moment after the last handle is dropped, so a
/// lock error is retried for up to 2 s; any other error fails the test.
fn open_sled_when_unlocked(path: &std::path::Path) -> SledTxnLog {
    let mut tries = 0;
    loop {
        match SledTxnLog::open(path) {
            Ok(log) => return log,
            Err(e) if tries < 100 && format!("{e:?}").contains("could not acquire lock") => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopening the sled log: {e}"),
        }
    }
}

#[test]
fn mem_crash_loses_exactly_the_unsynced_tail() {
    // Goal: crash() keeps synced entries and meta, drops everything after the last sync.
    let h = MemTxnLog::new();
    let mut log = h.clone();
    log.append(&[e(1), e(2)]).unwrap();
    log.put_meta("k", b"old").unwrap();
    log.sync().unwrap();
    log.append(&[e(3)]).unwrap();
    log.put_meta("k", b"new").unwrap();
    log.truncate_after(0).unwrap();
    assert_eq!(h.unsynced(), 3);
    assert!(log.read_after(0).unwrap().is_empty());
    h.crash();
    assert_eq!(zxids(&log.read_after(0).unwrap()), vec![1, 2]);
    assert_eq!(log.get_meta("k").unwrap(), Some(b"old".to_vec()));
    assert_eq!(h.unsynced(), 0);
    log.append(&[e(3)]).unwrap();
}

#[test]
fn mem_torn_last_record_is_dropped_at_reopen() {
    // Goal: a torn final write is detected by its CRC after a crash and dropped, not reported.
    let h = MemTxnLog::new();
    let mut log = h.clone();
    log.append(&[e(1)]).unwrap();
    log.sync().unwrap();
    log.append(&[e(2), e(3)]).unwrap();
    assert!(h.tear_last());
    assert!(
        log.read_after(0).is_err(),
        "the torn record is visible before the crash"
    );
    h.crash();
    assert_eq!(zxids(&log.read_after(0).unwrap()), vec![1]);
    assert_eq!(log.last_zxid().unwrap(), Some(1));
}

#[test]
fn mem_corruption_in_the_middle_is_an_error() {
    // Goal: a bad record that is not the last one is reported, not skipped.
    let h = MemTxnLog::new();
    let mut log = h.clone();
    log.append(&[e(1), e(2), e(3)]).unwrap();
    log.sync().unwrap();
    assert!(h.corrupt(2));
    h.crash();
    assert!(matches!(log.read_after(0), Err(StoreError::Corrupt { .. })));
    assert_eq!(zxids(&log.read_after(2).unwrap()), vec![3]);
}

#[test]
fn mem_injected_failures_change_nothing() {
    // Goal: fail_next_append/fail_next_sync surface as errors without side effects.
    let h = MemTxnLog::new();
    let mut log = h.clone();
    h.fail_next_append();
    assert!(matches!(log.append(&[e(1)]), Err(StoreError::Injected(_))));
    assert_eq!(log.last_zxid().unwrap(), None);
    log.append(&[e(1)]).unwrap();
    h.fail_next_sync();
    assert!(log.sync().is_err());
    h.crash();
    assert_eq!(
        log.last_zxid().unwrap(),
        None,
        "the failed sync made nothing durable"
    );
}

#[test]
fn sled_torn_last_record_is_dropped_at_open() {
    // Goal: SledTxnLog drops a last record whose CRC fails, and keeps the rest.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SledTxnLog::open(dir.path()).unwrap();
        log.append(&[e(1), e(2)]).unwrap();
        log.sync().unwrap();
    }
    {
        // Write a half record under the next key, as a torn write would leave it.
        let db = sled::open(dir.path()).unwrap();
        let t = db.open_tree("log").unwrap();
        t.insert(3u64.to_be_bytes(), &[1u8, 0, 0, 0][..]).unwrap();
        db.flush().unwrap();
    }
    let log = SledTxnLog::open(dir.path()).unwrap();
    assert_eq!(log.last_zxid().unwrap(), Some(2));
    assert_eq!(zxids(&log.read_after(0).unwrap()), vec![1, 2]);
}

#[test]
fn sled_corruption_in_the_middle_is_an_error() {
    // Goal: SledTxnLog reports a bad record that is not the last one.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SledTxnLog::open(dir.path()).unwrap();
        log.append(&[e(1), e(2), e(3)]).unwrap();
        log.sync().unwrap();
    }
    {
        let db = sled::open(dir.path()).unwrap();
        let t = db.open_tree("log").unwrap();
        let mut v = t.get(2u64.to_be_bytes()).unwrap().unwrap().to_vec();
        v[5] ^= 0xff;
        t.insert(2u64.to_be_bytes(), v).unwrap();
        db.flush().unwrap();
    }
    let log = open_sled_when_unlocked(dir.path());
    assert!(matches!(log.read_after(0), Err(StoreError::Corrupt { .. })));
}

#[test]
fn file_log_conforms_across_reopen() {
    // Goal: FileTxnLog honours the contract, and synced data survives closing and reopening.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let p2 = path.clone();
    let reopen = move |l: Box<dyn TxnLog>| -> Box<dyn TxnLog> {
        drop(l);
        Box::new(FileTxnLog::open(&p2).unwrap())
    };
    conformance(Box::new(FileTxnLog::open(&path).unwrap()), &reopen);
}

fn only_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("log."))
        .collect();
    assert_eq!(segs.len(), 1, "{segs:?}");
    segs.pop().unwrap()
}

#[test]
fn file_torn_tail_is_cut_at_open_and_appends_continue() {
    // Goal: a half-written last record (crash mid-append) is dropped at open, and the log stays appendable.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = FileTxnLog::open(dir.path()).unwrap();
        log.append(&[e(1), e(2)]).unwrap();
        log.sync().unwrap();
    }
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(only_segment(dir.path()))
            .unwrap();
        f.write_all(&[0, 0, 0, 40, 1, 2, 3, 4, 5]).unwrap();
    }
    let mut log = FileTxnLog::open(dir.path()).unwrap();
    assert_eq!(log.last_zxid().unwrap(), Some(2));
    log.append(&[e(3)]).unwrap();
    log.sync().unwrap();
    drop(log);
    let log = FileTxnLog::open(dir.path()).unwrap();
    assert_eq!(zxids(&log.read_after(0).unwrap()), vec![1, 2, 3]);
}

#[test]
fn file_corruption_before_the_tail_is_reported() {
    // Goal: a flipped byte inside the log, not at its end, makes reads fail with Corrupt.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = FileTxnLog::open(dir.path()).unwrap();
        log.append(&[e(1), e(2), e(3)]).unwrap();
        log.sync().unwrap();
    }
    let seg = only_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[12] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    // Damage followed by more records is not a torn write: refuse to open rather than cut synced data.
    match FileTxnLog::open(dir.path()) {
        Err(StoreError::Corrupt { .. }) => {}
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("a damaged log opened"),
    }
}

#[test]
fn mem_torn_record_never_lands_in_the_middle() {
    // Goal: a tear after an unsynced truncation cannot leave a torn record below durable ones.
    let log = MemTxnLog::new();
    let mut w = log.clone();
    w.append(&[e(1), e(2), e(3)]).unwrap();
    w.sync().unwrap();
    w.truncate_after(1).unwrap();
    w.append(&[e(2)]).unwrap();
    assert!(log.tear_last());
    log.crash();
    assert_eq!(zxids(&w.read_after(0).unwrap()), vec![1, 2, 3]);
}

/// A record with a good length and checksum whose body does not decode.
fn undecodable_record(zxid: i64) -> Vec<u8> {
    let mut body = vec![1u8]; // the entry format byte
    body.extend_from_slice(&1i64.to_be_bytes()); // session
    body.extend_from_slice(&0i32.to_be_bytes()); // cxid
    body.extend_from_slice(&zxid.to_be_bytes());
    body.extend_from_slice(&0i64.to_be_bytes()); // time
    body.extend_from_slice(&0x7fff_0000i32.to_be_bytes()); // no such txn
    let mut rec = (body.len() as u32).to_be_bytes().to_vec();
    rec.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    rec.extend_from_slice(&body);
    rec
}

#[test]
fn file_undecodable_records_cut_at_the_tail_and_fail_reads_inside() {
    // Goal: restart reads only zxids of records it skips, yet a record that
    // does not decode is still cut when it ends the file and fails reads elsewhere.
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = FileTxnLog::open(dir.path()).unwrap();
        log.append(&[e(1), e(2)]).unwrap();
        log.sync().unwrap();
    }
    let seg = only_segment(dir.path());
    let good_len = std::fs::metadata(&seg).unwrap().len();
    let append = |b: &[u8]| {
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b).unwrap();
    };
    append(&undecodable_record(3));
    let mut log = FileTxnLog::open(dir.path()).unwrap();
    assert_eq!(log.last_zxid().unwrap(), Some(2));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good_len);
    assert_eq!(zxids(&log.read_after(0).unwrap()), vec![1, 2]);
    log.append(&[e(3)]).unwrap();
    log.sync().unwrap();
    drop(log);
    // Inside the log, followed by a good record: entries after it cannot be read.
    let bytes = std::fs::read(&seg).unwrap();
    let mut damaged = bytes[..good_len as usize].to_vec();
    damaged.extend_from_slice(&undecodable_record(3));
    damaged.extend_from_slice(&bytes[good_len as usize..]);
    std::fs::write(&seg, &damaged).unwrap();
    match FileTxnLog::open(dir.path()).and_then(|l| l.read_after(0)) {
        Err(StoreError::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Skipped entries are not decoded: reading after the damage still works.
    let log = FileTxnLog::open(dir.path()).unwrap();
    assert_eq!(log.last_zxid().unwrap(), Some(3));
    assert!(log.read_after(3).unwrap().is_empty());
}
