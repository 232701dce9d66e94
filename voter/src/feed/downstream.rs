//! The downstream side of a feed as a sans-IO state machine: what an
//! observer makes of each frame its upstream sends. The observer's driver
//! (and the simulator) does the I/O: it applies the txns this hands back,
//! stores snapshot bytes, and closes the connection when told the feed is
//! broken.

use corral_store::LogEntry;

use crate::node::envelope::{Envelope, FeedStatus};

/// What the caller must do with one upstream frame.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Apply these committed txns, in order (already checked to follow on
    /// from what was applied; duplicates removed).
    Apply(Vec<LogEntry>),
    /// A snapshot of `len` bytes at `zxid` starts; chunks follow. A length
    /// of 0 is the empty tree at `zxid`, complete at once (call
    /// [`Downstream::installed`]).
    SnapBegin { zxid: i64, len: u64 },
    /// Snapshot bytes; `last` when the announced length is reached (then
    /// load it and call [`Downstream::installed`]).
    SnapChunk { bytes: Vec<u8>, last: bool },
    /// The upstream's status (the feed is caught up from the first one on).
    Status(FeedStatus),
    /// An answer travelling down to `origin`.
    Relayed { origin: u64, inner: Envelope },
    /// Nothing to do.
    Nothing,
    /// The feed cannot go on (a gap, a malformed or out-of-place frame):
    /// drop the connection and resync with a fresh hello.
    Broken(String),
}

fn epoch_of(z: i64) -> i64 {
    z >> 32
}

/// Where a downstream's feed stands.
#[derive(Debug, Clone)]
pub struct Downstream {
    id: u64,
    applied: i64,
    /// (zxid, announced length, bytes received) of a snapshot in transit.
    snap: Option<(i64, u64, u64)>,
    /// Caught up: a status arrived after the hello's catch-up.
    live: bool,
    /// How the current connection caught up.
    snapped: bool,
}

impl Downstream {
    /// A downstream with server id `id` that has applied through `applied`.
    pub fn new(id: u64, applied: i64) -> Downstream {
        Downstream {
            id,
            applied,
            snap: None,
            live: false,
            snapped: false,
        }
    }

    pub fn applied(&self) -> i64 {
        self.applied
    }

    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Whether the current connection caught up by SNAP (else by DIFF).
    pub fn snapped(&self) -> bool {
        self.snapped
    }

    /// A new connection: the hello to send first.
    pub fn connected(&mut self) -> Envelope {
        self.snap = None;
        self.live = false;
        self.snapped = false;
        Envelope::FeedHello {
            observer: self.id,
            last_zxid: self.applied,
        }
    }

    /// The connection ended.
    pub fn disconnected(&mut self) {
        self.snap = None;
        self.live = false;
    }

    /// The snapshot announced by `SnapBegin` is loaded: the state is now
    /// exactly that snapshot's.
    pub fn installed(&mut self, zxid: i64) {
        self.applied = zxid;
    }

    pub fn on_frame(&mut self, env: Envelope) -> Step {
        match env {
            Envelope::FeedTxns { prev, entries } => self.txns(prev, entries),
            Envelope::FeedSnapBegin { zxid, len } => {
                if self.snap.is_some() || self.live {
                    return Step::Broken("a snapshot began out of place".into());
                }
                if zxid < self.applied {
                    return Step::Broken(format!(
                        "snapshot at {zxid:#x} is older than what is applied ({:#x})",
                        self.applied
                    ));
                }
                self.snapped = true;
                self.snap = (len > 0).then_some((zxid, len, 0));
                Step::SnapBegin { zxid, len }
            }
            Envelope::FeedSnapChunk(bytes) => {
                let Some((zxid, len, got)) = self.snap else {
                    return Step::Broken("snapshot chunk without a snapshot".into());
                };
                let got = got + bytes.len() as u64;
                if got > len {
                    return Step::Broken(format!(
                        "snapshot at {zxid:#x} longer than its announced {len} bytes"
                    ));
                }
                let last = got == len;
                self.snap = if last { None } else { Some((zxid, len, got)) };
                Step::SnapChunk { bytes, last }
            }
            Envelope::FeedStatus(st) => {
                if self.snap.is_some() {
                    return Step::Broken("status in the middle of a snapshot".into());
                }
                self.live = true;
                Step::Status(st)
            }
            Envelope::Relayed { origin, inner } => Step::Relayed {
                origin,
                inner: *inner,
            },
            other => Step::Broken(format!("unexpected frame from the upstream: {other:?}")),
        }
    }

    fn txns(&mut self, prev: i64, entries: Vec<LogEntry>) -> Step {
        if self.snap.is_some() {
            return Step::Broken("txns in the middle of a snapshot".into());
        }
        if prev != self.applied {
            // The upstream believes this node is elsewhere: a lost frame, or
            // an upstream that skipped txns (within an epoch or across one).
            return Step::Broken(format!(
                "feed txns follow {prev:#x} but {:#x} is applied here",
                self.applied
            ));
        }
        let mut applied = self.applied;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let z = e.hdr.zxid;
            if z <= applied {
                // Already here (this node was ahead of a restarted upstream).
                continue;
            }
            if epoch_of(z) == epoch_of(applied) && z != applied + 1 {
                return Step::Broken(format!("feed gap: txn {z:#x} after {applied:#x}"));
            }
            applied = z;
            out.push(e);
        }
        if out.is_empty() {
            return Step::Nothing;
        }
        self.applied = applied;
        Step::Apply(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_store::{Txn, TxnHeader};

    fn e(z: i64) -> LogEntry {
        LogEntry {
            hdr: TxnHeader {
                session_id: 0,
                cxid: 0,
                zxid: z,
                time_ms: 0,
            },
            txn: Txn::Delete { path: "/x".into() },
        }
    }

    const E1: i64 = 1 << 32;
    const E2: i64 = 2 << 32;

    #[test]
    fn txns_must_follow_on_within_an_epoch() {
        // Goal: txns must follow what is applied: the frame names the txn
        // before it, and within an epoch counters are consecutive; a frame
        // that skips (within an epoch or across one) breaks the feed.
        let mut d = Downstream::new(9, E1 | 3);
        let _ = d.connected();
        let txns = |prev: i64, es: Vec<LogEntry>| Envelope::FeedTxns { prev, entries: es };
        let r = d.on_frame(txns(E1 | 3, vec![e(E1 | 4)]));
        assert_eq!(r, Step::Apply(vec![e(E1 | 4)]));
        let r = d.on_frame(txns(E1 | 4, vec![e(E2 | 1), e(E2 | 2)]));
        assert_eq!(r, Step::Apply(vec![e(E2 | 1), e(E2 | 2)]));
        assert!(matches!(
            d.on_frame(txns(E2 | 2, vec![e(E2 | 4)])),
            Step::Broken(_)
        ));
        // A frame that names the wrong predecessor breaks the feed, even
        // when its txns would look plausible (a skipped epoch tail).
        assert!(matches!(
            d.on_frame(txns(E2 | 3, vec![e(3 << 32 | 1)])),
            Step::Broken(_)
        ));
        assert!(matches!(
            d.on_frame(txns(E1 | 9, vec![e(3 << 32 | 1)])),
            Step::Broken(_)
        ));
        assert_eq!(d.applied(), E2 | 2, "a broken frame applies nothing");
    }

    #[test]
    fn a_snapshot_is_counted_and_nothing_else_may_interleave() {
        // Goal: chunks add up to the announced length, the last one says
        // so, and a txn or status in the middle breaks the feed.
        let mut d = Downstream::new(9, 0);
        assert_eq!(
            d.connected(),
            Envelope::FeedHello {
                observer: 9,
                last_zxid: 0
            }
        );
        assert_eq!(
            d.on_frame(Envelope::FeedSnapBegin {
                zxid: E1 | 5,
                len: 5
            }),
            Step::SnapBegin {
                zxid: E1 | 5,
                len: 5
            }
        );
        assert_eq!(
            d.on_frame(Envelope::FeedSnapChunk(vec![1, 2])),
            Step::SnapChunk {
                bytes: vec![1, 2],
                last: false
            }
        );
        let mut broken = d.clone();
        assert!(matches!(
            broken.on_frame(Envelope::FeedTxns {
                prev: 0,
                entries: vec![e(E1 | 6)]
            }),
            Step::Broken(_)
        ));
        assert!(matches!(
            d.clone().on_frame(Envelope::FeedSnapChunk(vec![0; 4])),
            Step::Broken(_)
        ));
        assert_eq!(
            d.on_frame(Envelope::FeedSnapChunk(vec![3, 4, 5])),
            Step::SnapChunk {
                bytes: vec![3, 4, 5],
                last: true
            }
        );
        d.installed(E1 | 5);
        assert!(d.snapped());
        assert!(matches!(
            d.on_frame(Envelope::FeedStatus(FeedStatus::default())),
            Step::Status(_)
        ));
        assert!(d.is_live());
        assert_eq!(
            d.on_frame(Envelope::FeedTxns {
                prev: E1 | 5,
                entries: vec![e(E1 | 6)]
            }),
            Step::Apply(vec![e(E1 | 6)])
        );
    }
}
