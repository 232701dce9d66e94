//! What voters send each other besides ZAB: forwarded client writes, session
//! touches and revalidation, and `sync` requests. One frame holds one
//! envelope: a tag byte, then jute fields. ZAB messages ride inside as
//! [`crate::wire`] bytes.
//!
//! Decoding never panics: a bad frame is an error and the caller drops it.

use corral_proto::{DecodeError, Id, Reader, Record, Request, Writer};

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

/// A forwarded write: what the leader needs to prep it as if the client
/// were connected to it.
#[derive(Clone, Debug, PartialEq)]
pub enum ForwardOp {
    Client(Request),
    CreateSession { timeout_ms: i32, passwd: Vec<u8> },
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
    /// Leader → learner: the leader could not propose this write (it is not
    /// established, or too much is in flight); the client's connection closes.
    ForwardFailed {
        session_id: i64,
        cxid: i32,
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
            }
        }
        Envelope::ForwardFailed { session_id, cxid } => {
            w.write_raw(&[TAG_FORWARD_FAILED]);
            w.write_i64(*session_id);
            w.write_i32(*cxid);
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
    }
    w.into_inner()
}

pub fn decode(b: &[u8]) -> Result<Envelope, EnvelopeError> {
    let (&tag, rest) = b.split_first().ok_or(EnvelopeError::Empty)?;
    if tag == TAG_ZAB {
        return Ok(Envelope::Zab(wire::decode_message(rest)?));
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
            Envelope::ForwardFailed {
                session_id: 9,
                cxid: 5,
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
}
