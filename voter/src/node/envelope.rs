//! What voters send each other besides ZAB: forwarded client writes, session
//! touches and revalidation, and `sync` requests; and the observer feed
//! ([`crate::feed`]): registration, committed txns, snapshots, the
//! upstream's status, and requests relayed on behalf of an observer. One
//! frame holds one envelope: a tag byte, then jute fields. ZAB messages ride
//! inside as [`crate::wire`] bytes.
//!
//! Decoding never panics: a bad frame is an error and the caller drops it.

use corral_proto::{DecodeError, Id, Reader, Record, Request, Writer};
use corral_server::apply::ReplyShape;
use corral_server::commit::WriteOp;
use corral_store::LogEntry;

use crate::core::Message;
use crate::wire::{self, WireError};

const TAG_ZAB: u8 = 1;
const TAG_FORWARD: u8 = 2;
const TAG_FORWARD_FAILED: u8 = 3;
const TAG_TOUCH: u8 = 4;
const TAG_REVALIDATE: u8 = 5;
const TAG_REVALIDATE_REPLY: u8 = 6;
const TAG_SYNC: u8 = 7;
const TAG_SYNC_REPLY: u8 = 8;
const TAG_BATCH: u8 = 9;
const TAG_RELAYED: u8 = 10;
const TAG_FEED_HELLO: u8 = 11;
const TAG_FEED_TXNS: u8 = 12;
const TAG_FEED_SNAP_BEGIN: u8 = 13;
const TAG_FEED_SNAP_CHUNK: u8 = 14;
const TAG_FEED_STATUS: u8 = 15;

/// A forwarded write: what the leader needs to prep it as if the client
/// were connected to it.
#[derive(Clone, Debug, PartialEq)]
pub enum ForwardOp {
    Client(Request),
    CreateSession { timeout_ms: i32, passwd: Vec<u8> },
    BindSession { tenant: String },
}

impl ForwardOp {
    /// A client's write as it is forwarded, and the reply shape its client
    /// waits for.
    pub fn from_write(op: WriteOp) -> (ForwardOp, ReplyShape) {
        let shape = op.shape();
        let op = match op {
            WriteOp::Client(req) => ForwardOp::Client(req),
            WriteOp::CreateSession { timeout_ms, passwd } => {
                ForwardOp::CreateSession { timeout_ms, passwd }
            }
            WriteOp::BindSession { tenant } => ForwardOp::BindSession { tenant },
        };
        (op, shape)
    }

    /// The write the leader preps for it.
    pub fn into_write(self) -> WriteOp {
        match self {
            ForwardOp::Client(req) => WriteOp::Client(req),
            ForwardOp::CreateSession { timeout_ms, passwd } => {
                WriteOp::CreateSession { timeout_ms, passwd }
            }
            ForwardOp::BindSession { tenant } => WriteOp::BindSession { tenant },
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Envelope {
    Zab(Message),
    /// Learner → leader: a client write to prep and propose.
    Forward {
        session_id: i64,
        cxid: i32,
        principals: Vec<Id>,
        op: ForwardOp,
    },
    /// Leader → learner: the leader could not propose this write. With
    /// `code` 0 its fate is unknown to the client (the leader is not
    /// established, say) and the client's connection closes; otherwise the
    /// client gets that error (THROTTLEDOP, RECONFIGINPROGRESS, …).
    ForwardFailed {
        session_id: i64,
        cxid: i32,
        code: i32,
    },
    /// Learner → leader: sessions with client activity since the last touch.
    Touch {
        sessions: Vec<(i64, i32)>,
    },
    /// Learner → leader: a client reconnected here with this session.
    Revalidate {
        req: u64,
        session_id: i64,
        timeout_ms: i32,
    },
    RevalidateReply {
        req: u64,
        live: bool,
    },
    /// Learner → leader: what is your commit point?
    Sync {
        req: u64,
    },
    SyncReply {
        req: u64,
        zxid: i64,
    },
    /// Several encoded envelopes (never batches) for one peer and channel,
    /// in order: one round of a voter's output travels as one frame.
    Batch(Vec<Vec<u8>>),
    /// A request on behalf of observer `origin` (Forward, Touch, Revalidate
    /// or Sync) travelling up its chain of upstreams to the leader, or the
    /// leader's answer (ForwardFailed, RevalidateReply, SyncReply) travelling
    /// back down. Never nested.
    Relayed {
        origin: u64,
        inner: Box<Envelope>,
    },
    /// Downstream → upstream, first on a feed: who the observer is and the
    /// last zxid it has applied.
    FeedHello {
        observer: u64,
        last_zxid: i64,
    },
    /// Upstream → downstream: committed txns, in zxid order, following the
    /// txn `prev` (the one the downstream must have applied last), so a gap
    /// is caught even across an epoch change.
    FeedTxns {
        prev: i64,
        entries: Vec<LogEntry>,
    },
    /// Upstream → downstream: a snapshot of `len` bytes at `zxid` follows in
    /// [`Envelope::FeedSnapChunk`]s; committed txns after it come next.
    FeedSnapBegin {
        zxid: i64,
        len: u64,
    },
    FeedSnapChunk(Vec<u8>),
    /// Upstream → downstream: whether the upstream is serving (part of an
    /// established quorum, or fed by one), the newest zxid it knows to be
    /// committed, the leader and its epoch, and the upstream's wall clock.
    FeedStatus(FeedStatus),
}

/// The upstream's state, as [`Envelope::FeedStatus`] carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedStatus {
    pub serving: bool,
    /// The newest committed zxid the upstream knows of (its own applied
    /// zxid, or further up the chain's).
    pub tip: i64,
    /// The leader's server id (0 when unknown).
    pub leader: u64,
    pub epoch: u32,
    /// Wall-clock ms of the newest committed txn the upstream knows of.
    pub tip_time_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("empty frame")]
    Empty,
    #[error("unknown envelope tag {0}")]
    Tag(u8),
    #[error("bad envelope field: {0}")]
    Field(#[from] DecodeError),
    #[error("bad ZAB message: {0}")]
    Zab(#[from] WireError),
    #[error("unknown forwarded op kind {0}")]
    OpKind(i32),
    #[error("a relayed envelope may not hold a relayed envelope or a batch")]
    Nested,
}

pub fn encode(e: &Envelope) -> Vec<u8> {
    let mut w = Writer::new();
    match e {
        Envelope::Zab(m) => {
            w.write_raw(&[TAG_ZAB]);
            w.write_raw(&wire::encode_message(m));
        }
        Envelope::Forward {
            session_id,
            cxid,
            principals,
            op,
        } => {
            w.write_raw(&[TAG_FORWARD]);
            w.write_i64(*session_id);
            w.write_i32(*cxid);
            w.write_vec(principals, |w, id| id.write(w));
            match op {
                ForwardOp::Client(req) => {
                    w.write_i32(0);
                    w.write_i32(req.opcode().code());
                    let mut body = Writer::new();
                    req.encode(&mut body);
                    w.write_buffer(body.as_slice());
                }
                ForwardOp::CreateSession { timeout_ms, passwd } => {
                    w.write_i32(1);
                    w.write_i32(*timeout_ms);
                    w.write_buffer(passwd);
                }
                ForwardOp::BindSession { tenant } => {
                    w.write_i32(2);
                    w.write_string(tenant);
                }
            }
        }
        Envelope::ForwardFailed {
            session_id,
            cxid,
            code,
        } => {
            w.write_raw(&[TAG_FORWARD_FAILED]);
            w.write_i64(*session_id);
            w.write_i32(*cxid);
            w.write_i32(*code);
        }
        Envelope::Touch { sessions } => {
            w.write_raw(&[TAG_TOUCH]);
            w.write_vec(sessions, |w, (id, t)| {
                w.write_i64(*id);
                w.write_i32(*t);
            });
        }
        Envelope::Revalidate {
            req,
            session_id,
            timeout_ms,
        } => {
            w.write_raw(&[TAG_REVALIDATE]);
            w.write_i64(*req as i64);
            w.write_i64(*session_id);
            w.write_i32(*timeout_ms);
        }
        Envelope::RevalidateReply { req, live } => {
            w.write_raw(&[TAG_REVALIDATE_REPLY]);
            w.write_i64(*req as i64);
            w.write_bool(*live);
        }
        Envelope::Sync { req } => {
            w.write_raw(&[TAG_SYNC]);
            w.write_i64(*req as i64);
        }
        Envelope::SyncReply { req, zxid } => {
            w.write_raw(&[TAG_SYNC_REPLY]);
            w.write_i64(*req as i64);
            w.write_i64(*zxid);
        }
        Envelope::Batch(frames) => {
            w.write_raw(&[TAG_BATCH]);
            w.write_vec(frames, |w, f: &Vec<u8>| w.write_buffer(f));
        }
        Envelope::Relayed { origin, inner } => {
            w.write_raw(&[TAG_RELAYED]);
            w.write_i64(*origin as i64);
            w.write_buffer(&encode(inner));
        }
        Envelope::FeedHello {
            observer,
            last_zxid,
        } => {
            w.write_raw(&[TAG_FEED_HELLO]);
            w.write_i64(*observer as i64);
            w.write_i64(*last_zxid);
        }
        Envelope::FeedTxns { prev, entries } => {
            w.write_raw(&[TAG_FEED_TXNS]);
            w.write_i64(*prev);
            w.write_raw(&wire::encode_entries(entries));
        }
        Envelope::FeedSnapBegin { zxid, len } => {
            w.write_raw(&[TAG_FEED_SNAP_BEGIN]);
            w.write_i64(*zxid);
            w.write_i64(*len as i64);
        }
        Envelope::FeedSnapChunk(b) => {
            w.write_raw(&[TAG_FEED_SNAP_CHUNK]);
            w.write_buffer(b);
        }
        Envelope::FeedStatus(st) => {
            w.write_raw(&[TAG_FEED_STATUS]);
            w.write_bool(st.serving);
            w.write_i64(st.tip);
            w.write_i64(st.leader as i64);
            w.write_i32(st.epoch as i32);
            w.write_i64(st.tip_time_ms);
        }
    }
    w.into_inner()
}

/// A `FeedTxns` frame from entries already encoded one by one; the same
/// bytes as `encode(&Envelope::FeedTxns { prev, .. })` of those entries.
pub fn feed_txns_frame(prev: i64, bufs: &[Vec<u8>]) -> Vec<u8> {
    let mut f = vec![TAG_FEED_TXNS];
    f.extend_from_slice(&prev.to_be_bytes());
    f.extend_from_slice(&wire::encode_entry_buffers(bufs));
    f
}

pub fn decode(b: &[u8]) -> Result<Envelope, EnvelopeError> {
    let (&tag, rest) = b.split_first().ok_or(EnvelopeError::Empty)?;
    if tag == TAG_ZAB {
        return Ok(Envelope::Zab(wire::decode_message(rest)?));
    }
    if tag == TAG_FEED_TXNS {
        let mut r = Reader::new(rest);
        let prev = r.read_i64()?;
        return Ok(Envelope::FeedTxns {
            prev,
            entries: wire::decode_entries(&rest[8..])?,
        });
    }
    let mut r = Reader::new(rest);
    let e = match tag {
        TAG_FORWARD => {
            let session_id = r.read_i64()?;
            let cxid = r.read_i32()?;
            let principals = r.read_vec(8, Id::read)?;
            let op = match r.read_i32()? {
                0 => {
                    let opcode = r.read_i32()?;
                    let body = r.read_buffer()?;
                    let mut br = Reader::new(&body);
                    let req = Request::decode(opcode, &mut br)?;
                    br.finish()?;
                    ForwardOp::Client(req)
                }
                1 => ForwardOp::CreateSession {
                    timeout_ms: r.read_i32()?,
                    passwd: r.read_buffer()?,
                },
                2 => ForwardOp::BindSession {
                    tenant: r.read_string()?,
                },
                k => return Err(EnvelopeError::OpKind(k)),
            };
            Envelope::Forward {
                session_id,
                cxid,
                principals,
                op,
            }
        }
        TAG_FORWARD_FAILED => Envelope::ForwardFailed {
            session_id: r.read_i64()?,
            cxid: r.read_i32()?,
            code: r.read_i32()?,
        },
        TAG_TOUCH => Envelope::Touch {
            sessions: r.read_vec(12, |r| Ok((r.read_i64()?, r.read_i32()?)))?,
        },
        TAG_REVALIDATE => Envelope::Revalidate {
            req: r.read_i64()? as u64,
            session_id: r.read_i64()?,
            timeout_ms: r.read_i32()?,
        },
        TAG_REVALIDATE_REPLY => Envelope::RevalidateReply {
            req: r.read_i64()? as u64,
            live: r.read_bool()?,
        },
        TAG_SYNC => Envelope::Sync {
            req: r.read_i64()? as u64,
        },
        TAG_SYNC_REPLY => Envelope::SyncReply {
            req: r.read_i64()? as u64,
            zxid: r.read_i64()?,
        },
        TAG_BATCH => Envelope::Batch(r.read_vec(4, |r| r.read_buffer())?),
        TAG_RELAYED => {
            let origin = r.read_i64()? as u64;
            let inner = decode(&r.read_buffer()?)?;
            if matches!(inner, Envelope::Relayed { .. } | Envelope::Batch(_)) {
                return Err(EnvelopeError::Nested);
            }
            Envelope::Relayed {
                origin,
                inner: Box::new(inner),
            }
        }
        TAG_FEED_HELLO => Envelope::FeedHello {
            observer: r.read_i64()? as u64,
            last_zxid: r.read_i64()?,
        },
        TAG_FEED_SNAP_BEGIN => {
            let zxid = r.read_i64()?;
            let offset = r.position();
            let len = r.read_i64()?;
            if len < 0 {
                return Err(EnvelopeError::Field(DecodeError::BadLength {
                    offset,
                    len: -1,
                }));
            }
            Envelope::FeedSnapBegin {
                zxid,
                len: len as u64,
            }
        }
        TAG_FEED_SNAP_CHUNK => Envelope::FeedSnapChunk(r.read_buffer()?),
        TAG_FEED_STATUS => Envelope::FeedStatus(FeedStatus {
            serving: r.read_bool()?,
            tip: r.read_i64()?,
            leader: r.read_i64()? as u64,
            epoch: r.read_i32()? as u32,
            tip_time_ms: r.read_i64()?,
        }),
        t => return Err(EnvelopeError::Tag(t)),
    };
    r.finish()?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::request::SetDataRequest;

    fn samples() -> Vec<Envelope> {
        vec![
            Envelope::Zab(Message::Ping { epoch: 7 }),
            Envelope::Forward {
                session_id: 0x0100_0000_0000_0001,
                cxid: 42,
                principals: vec![Id::new("ip", "127.0.0.1"), Id::new("digest", "bob:x")],
                op: ForwardOp::Client(Request::SetData(SetDataRequest {
                    path: "/a".into(),
                    data: Some(b"v".to_vec()),
                    version: 3,
                })),
            },
            Envelope::Forward {
                session_id: 9,
                cxid: 0,
                principals: vec![],
                op: ForwardOp::CreateSession {
                    timeout_ms: 4000,
                    passwd: vec![1; 16],
                },
            },
            Envelope::Forward {
                session_id: 9,
                cxid: 5,
                principals: vec![],
                op: ForwardOp::Client(Request::CloseSession),
            },
            Envelope::Forward {
                session_id: 9,
                cxid: -4,
                principals: vec![Id::new("digest", "alice:x")],
                op: ForwardOp::BindSession {
                    tenant: "team-a".into(),
                },
            },
            Envelope::ForwardFailed {
                session_id: 9,
                cxid: 5,
                code: -127,
            },
            Envelope::Touch {
                sessions: vec![(1, 4000), (2, 30000)],
            },
            Envelope::Revalidate {
                req: u64::MAX,
                session_id: -5,
                timeout_ms: 10,
            },
            Envelope::RevalidateReply { req: 3, live: true },
            Envelope::Sync { req: 4 },
            Envelope::SyncReply {
                req: 4,
                zxid: 1 << 32,
            },
            Envelope::Relayed {
                origin: 7,
                inner: Box::new(Envelope::Sync { req: 9 }),
            },
            Envelope::Relayed {
                origin: u64::MAX,
                inner: Box::new(Envelope::ForwardFailed {
                    session_id: 1,
                    cxid: 2,
                    code: 0,
                }),
            },
            Envelope::FeedHello {
                observer: 4,
                last_zxid: (3 << 32) | 17,
            },
            Envelope::FeedTxns {
                prev: 1 << 32,
                entries: vec![
                    LogEntry {
                        hdr: corral_store::TxnHeader {
                            session_id: 1,
                            cxid: 2,
                            zxid: (1 << 32) | 1,
                            time_ms: 5,
                        },
                        txn: corral_store::Txn::Delete { path: "/a".into() },
                    },
                    LogEntry {
                        hdr: corral_store::TxnHeader {
                            session_id: 0,
                            cxid: 0,
                            zxid: (1 << 32) | 2,
                            time_ms: 6,
                        },
                        txn: corral_store::Txn::CloseSession,
                    },
                ],
            },
            Envelope::FeedTxns {
                prev: 0,
                entries: vec![],
            },
            Envelope::FeedSnapBegin {
                zxid: 1 << 32,
                len: 1 << 40,
            },
            Envelope::FeedSnapChunk(vec![1, 2, 3]),
            Envelope::FeedStatus(FeedStatus {
                serving: true,
                tip: (2 << 32) | 5,
                leader: 3,
                epoch: 2,
                tip_time_ms: 1_700_000_000_000,
            }),
        ]
    }

    #[test]
    fn every_envelope_round_trips() {
        // Goal: each envelope kind decodes to exactly what was encoded.
        for e in samples() {
            assert_eq!(decode(&encode(&e)).unwrap(), e);
        }
    }

    #[test]
    fn truncated_or_padded_frames_are_errors() {
        // Goal: a frame cut short or with bytes left over is refused, never
        // misread and never a panic.
        for e in samples() {
            let b = encode(&e);
            for n in 0..b.len() {
                assert!(decode(&b[..n]).is_err(), "{e:?} cut at {n}");
            }
            let mut padded = b.clone();
            padded.push(0);
            assert!(decode(&padded).is_err(), "{e:?} padded");
        }
        assert!(matches!(decode(&[99]), Err(EnvelopeError::Tag(99))));
    }

    #[test]
    fn relayed_envelopes_do_not_nest() {
        // Goal: a relay inside a relay, or a batch inside one, is refused, so
        // a hostile downstream cannot make a frame recurse.
        for inner in [
            Envelope::Relayed {
                origin: 1,
                inner: Box::new(Envelope::Sync { req: 1 }),
            },
            Envelope::Batch(vec![]),
        ] {
            let e = Envelope::Relayed {
                origin: 2,
                inner: Box::new(inner),
            };
            assert!(matches!(decode(&encode(&e)), Err(EnvelopeError::Nested)));
        }
    }
}
