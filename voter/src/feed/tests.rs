use std::path::PathBuf;

use corral_store::{LogEntry, Txn, TxnHeader};
use tokio::sync::mpsc;

use super::*;
use crate::node::envelope::{decode, Envelope, FeedStatus};

fn entry(z: i64) -> LogEntry {
    LogEntry {
        hdr: TxnHeader {
            session_id: 1,
            cxid: z as i32,
            zxid: z,
            time_ms: z,
        },
        txn: Txn::SetData {
            path: "/a".into(),
            data: Some(vec![z as u8]),
            version: z as i32,
        },
    }
}

/// A window of committed entries (start, start+1 .. applied].
struct Src {
    start: i64,
    entries: Vec<LogEntry>,
    snapshot: (i64, Option<PathBuf>),
}

impl FeedSource for Src {
    fn applied(&self) -> i64 {
        self.entries.last().map_or(self.start, |e| e.hdr.zxid)
    }
    fn committed_after(&self, z: i64, max: usize) -> Option<Vec<LogEntry>> {
        (z >= self.start).then(|| {
            self.entries
                .iter()
                .filter(|e| e.hdr.zxid > z)
                .take(max)
                .cloned()
                .collect()
        })
    }
    fn snapshot(&self) -> (i64, Option<PathBuf>) {
        self.snapshot.clone()
    }
    fn status(&self) -> FeedStatus {
        FeedStatus {
            serving: true,
            tip: self.applied(),
            ..FeedStatus::default()
        }
    }
}

fn src(start: i64, end: i64) -> Src {
    Src {
        start,
        entries: (start + 1..=end).map(entry).collect(),
        snapshot: (start, Some(PathBuf::from("/snap"))),
    }
}

/// Everything queued to a feed, decoded; txns flattened to their zxids.
fn drain(rx: &mut mpsc::Receiver<Vec<u8>>) -> (Vec<i64>, Vec<Envelope>) {
    let mut zxids = Vec::new();
    let mut other = Vec::new();
    while let Ok(f) = rx.try_recv() {
        match decode(&f).unwrap() {
            Envelope::FeedTxns { entries, .. } => zxids.extend(entries.iter().map(|e| e.hdr.zxid)),
            e => other.push(e),
        }
    }
    (zxids, other)
}

#[test]
fn diff_from_the_window_then_live_txns_in_order() {
    // Goal: a downstream inside the window gets exactly the txns after its
    // zxid, a status, then each published txn once, in order.
    let s = src(10, 20);
    let mut hub = Hub::new();
    let (tx, mut rx) = mpsc::channel(64);
    hub.open(1, 4, tx);
    assert!(hub.hello(1, 4, 15, &s).is_none());
    assert!(hub.pump(&s).is_empty());
    assert!(!hub.catching_up());
    let (z, other) = drain(&mut rx);
    assert_eq!(z, (16..=20).collect::<Vec<_>>());
    assert!(matches!(other.as_slice(), [Envelope::FeedStatus(st)] if st.tip == 20));
    hub.publish(&[entry(21), entry(22)]);
    hub.publish(&[entry(23)]);
    assert_eq!(drain(&mut rx).0, vec![21, 22, 23]);
    assert_eq!(hub.stats().diffs, 1);
}

#[test]
fn snap_when_older_than_the_window_then_the_txns_after_it() {
    // Goal: a downstream older than the window is sent the snapshot, then
    // (once it is streamed) the txns after the snapshot; txns published
    // meanwhile are not sent twice or skipped.
    let mut s = src(10, 20);
    let mut hub = Hub::new();
    let (tx, mut rx) = mpsc::channel(64);
    hub.open(1, 4, tx);
    let job = hub.hello(1, 4, 3, &s).expect("a snapshot is needed");
    assert_eq!((job.sub, job.zxid), (1, 10));
    hub.publish(&[entry(21)]);
    s.entries.push(entry(21));
    assert!(
        drain(&mut rx).0.is_empty(),
        "nothing live before the snapshot"
    );
    assert!(hub.snapshot_sent(1, 10, true, &s).is_none());
    assert!(hub.pump(&s).is_empty());
    hub.publish(&[entry(22)]);
    assert_eq!(drain(&mut rx).0, (11..=22).collect::<Vec<_>>());
    assert_eq!(hub.stats().snaps, 1);
}

#[test]
fn a_downstream_ahead_of_its_upstream_waits_without_duplicates() {
    // Goal: an observer that already has txns its (restarted) upstream has
    // not applied yet gets none of them again.
    let s = src(10, 12);
    let mut hub = Hub::new();
    let (tx, mut rx) = mpsc::channel(64);
    hub.open(1, 4, tx);
    assert!(hub.hello(1, 4, 15, &s).is_none());
    hub.pump(&s);
    assert!(drain(&mut rx).0.is_empty());
    hub.publish(&[entry(13), entry(14), entry(15)]);
    hub.publish(&[entry(16)]);
    assert_eq!(drain(&mut rx).0, vec![16]);
}

#[test]
fn a_long_diff_goes_out_in_chunks_while_the_queue_has_room() {
    // Goal: a feed far behind gets its DIFF one chunk per pump, never more
    // than the queue can take, with no txn lost, doubled or reordered, and
    // live txns published meanwhile come after the catch-up, in order.
    let n = 20 * CATCH_UP_CHUNK as i64 + 7;
    let mut s = src(0, n);
    let mut hub = Hub::new();
    let (tx, mut rx) = mpsc::channel(64);
    hub.open(1, 4, tx);
    assert!(hub.hello(1, 4, 0, &s).is_none());
    // Without draining, the queue fills to CATCH_UP_QUEUED frames and the
    // pump waits rather than fill it (or overflow it and drop the feed).
    for _ in 0..10 {
        hub.pump(&s);
    }
    assert_eq!(hub.observers(), vec![4], "the feed was dropped as slow");
    assert_eq!(rx.len(), CATCH_UP_QUEUED, "frames queued");
    let mut got = Vec::new();
    let mut pumps = 0;
    while hub.catching_up() {
        got.extend(drain(&mut rx).0);
        // A txn applied meanwhile joins the window; publish skips the feed.
        let next = n + 1 + pumps;
        s.entries.push(entry(next));
        hub.publish(&[entry(next)]);
        hub.pump(&s);
        pumps += 1;
        assert!(
            pumps < 100,
            "catch-up does not end: got {} up to {:?}, rx {}",
            got.len(),
            got.last(),
            rx.len()
        );
    }
    hub.publish(&[entry(n + 1 + pumps)]);
    got.extend(drain(&mut rx).0);
    assert_eq!(got, (1..=n + 1 + pumps).collect::<Vec<_>>());
    assert!(pumps >= 1, "the DIFF was not chunked");
}

#[test]
fn a_hello_that_lies_about_its_id_closes_the_feed() {
    // Goal: the id in the hello must be the certificate's.
    let s = src(0, 3);
    let mut hub = Hub::new();
    let (tx, _rx) = mpsc::channel(64);
    hub.open(1, 4, tx);
    assert!(hub.hello(1, 5, 0, &s).is_none());
    assert!(hub.is_empty());
}

#[test]
fn a_slow_feed_is_dropped_not_waited_for() {
    // Goal: a full queue disconnects that feed; the others keep receiving.
    let s = src(0, 0);
    let mut hub = Hub::new();
    let (slow, _slow_rx) = mpsc::channel(2);
    let (fast, mut fast_rx) = mpsc::channel(64);
    hub.open(1, 4, slow);
    hub.open(2, 5, fast);
    hub.hello(1, 4, 0, &s);
    hub.hello(2, 5, 0, &s);
    hub.pump(&s);
    drain(&mut fast_rx);
    for z in 1..=5 {
        hub.publish(&[entry(z)]);
        drain(&mut fast_rx);
    }
    assert_eq!(hub.observers(), vec![5]);
    assert_eq!(hub.stats().slow_disconnects, 1);
}

#[test]
fn relayed_answers_follow_the_learned_route() {
    // Goal: an answer for an origin goes down the feed that origin's
    // request came up, and nowhere when no feed leads there.
    let mut hub = Hub::new();
    let (a, mut a_rx) = mpsc::channel(8);
    let (b, mut b_rx) = mpsc::channel(8);
    hub.open(1, 4, a);
    hub.open(2, 5, b);
    hub.learn_route(9, 2);
    let env = Envelope::Relayed {
        origin: 9,
        inner: Box::new(Envelope::SyncReply { req: 1, zxid: 7 }),
    };
    assert!(hub.route(9, &env));
    assert!(a_rx.try_recv().is_err());
    assert_eq!(decode(&b_rx.try_recv().unwrap()).unwrap(), env);
    assert!(!hub.route(10, &env));
    hub.close(2);
    assert!(!hub.route(9, &env), "routes die with their feed");
}

#[test]
fn txn_frames_are_cut_near_the_frame_size() {
    // Goal: a large batch becomes several frames that decode back to the
    // same entries in order.
    let big: Vec<LogEntry> = (1..=40)
        .map(|z| {
            let mut e = entry(z);
            e.txn = Txn::SetData {
                path: "/big".into(),
                data: Some(vec![7; 100_000]),
                version: 0,
            };
            e
        })
        .collect();
    let frames = txn_frames(0, &big);
    assert!(frames.len() >= 3, "{} frames", frames.len());
    let mut back = Vec::new();
    for f in frames {
        assert!(f.len() < 2 * TXN_FRAME_BYTES);
        match decode(&f).unwrap() {
            Envelope::FeedTxns { prev, entries } => {
                assert_eq!(prev, back.last().map_or(0, |e: &LogEntry| e.hdr.zxid));
                back.extend(entries)
            }
            e => panic!("{e:?}"),
        }
    }
    assert_eq!(back, big);
}
