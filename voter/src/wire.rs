//! The binary encoding of peer messages ([`Message`]) as they travel between
//! voters inside one transport frame (see [`crate::net`]).
//!
//! # Format (version 1)
//!
//! Every message starts with two bytes: the format version ([`VERSION`]) and a
//! tag naming the variant. The fields follow as jute primitives (big-endian,
//! see [`corral_proto::jute`]):
//!
//! - `u64` and `u32` values (server ids, `conn`, election rounds, epochs) are
//!   written as `i64` / `i32` with the same bits;
//! - a [`Zxid`] is its `i64`;
//! - a [`PeerState`] is an `i32` (0 looking, 1 following, 2 leading,
//!   3 observing);
//! - a snapshot is its zxid then its state as a length-prefixed buffer;
//! - a log entry is a length-prefixed buffer holding
//!   [`LogEntry::encode`]'s bytes, so the entry format has one definition
//!   (the store's) and carries its own format byte;
//! - a list of entries is an `i32` count then the entries;
//! - a configuration is its version (a zxid) then its voters as a jute
//!   vector of `i64` ids; a list of them is a jute vector (`NewLeader`).
//!
//! Version 2 added the configurations to `Snap` and `NewLeader`, and the
//! sender's configuration to notifications (reconfiguration).
//!
//! The version byte lets a mixed-version cluster refuse what it cannot read
//! instead of misreading it: a decoder rejects any version other than its own.
//!
//! # Decoding never panics
//!
//! Input comes from the network. A short buffer, a lying length, an unknown
//! version, tag or peer state, a bad entry, or bytes left over after the
//! message all give a [`WireError`]; the caller drops the frame.

use std::sync::Arc;

use corral_proto::{DecodeError, Reader, Writer};
use corral_store::{LogEntry, StoreError};

#[cfg(test)]
use crate::core::members::Membership;
use crate::core::members::{read_membership, write_membership};
use crate::core::message::{Message, Notification, Snapshot};
use crate::core::types::{PeerState, ServerId, Vote, Zxid};

/// The format version written at the start of every message.
pub const VERSION: u8 = 2;

const TAG_NOTIFICATION: u8 = 1;
const TAG_FOLLOWER_INFO: u8 = 2;
const TAG_LEADER_INFO: u8 = 3;
const TAG_ACK_EPOCH: u8 = 4;
const TAG_DIFF: u8 = 5;
const TAG_TRUNC: u8 = 6;
const TAG_SNAP: u8 = 7;
const TAG_NEW_LEADER: u8 = 8;
const TAG_UP_TO_DATE: u8 = 9;
const TAG_PROPOSAL: u8 = 10;
const TAG_ACK: u8 = 11;
const TAG_COMMIT: u8 = 12;
const TAG_PING: u8 = 13;

/// Why bytes could not be decoded into a [`Message`].
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("unknown message format version {0} (this node speaks {VERSION})")]
    UnknownVersion(u8),
    #[error("truncated message: no tag after the version byte")]
    NoTag,
    #[error("unknown message tag {0}")]
    UnknownTag(u8),
    #[error("unknown peer state {0}")]
    UnknownPeerState(i32),
    /// Truncation, a bad length or trailing bytes (offsets count from the
    /// byte after the tag).
    #[error("malformed message body: {0}")]
    Body(#[from] DecodeError),
    #[error("log entry {index}: {source}")]
    Entry {
        index: usize,
        #[source]
        source: StoreError,
    },
}

/// Encodes `msg` (version byte, tag, fields).
///
/// # Panics
///
/// If one buffer (a snapshot's state or an encoded entry) is 2 GiB or more:
/// jute lengths are `i32`, and a silently wrapped length would corrupt the
/// stream. The transport's frame limit is far below that, so reaching it is a
/// programmer error (snapshots that large must be chunked first).
pub fn encode_message(msg: &Message) -> Vec<u8> {
    let mut w = Writer::with_capacity(64);
    w.write_raw(&[VERSION, tag_of(msg)]);
    match msg {
        Message::Notification(n) => {
            w.write_i64(n.vote.leader.0 as i64);
            w.write_i64(n.vote.zxid.0);
            w.write_i64(n.vote.election_epoch as i64);
            w.write_i32(n.vote.peer_epoch as i32);
            w.write_i32(peer_state_code(n.state));
            w.write_vec(&n.configs, write_membership);
        }
        Message::FollowerInfo {
            conn,
            accepted_epoch,
            last_zxid,
        } => {
            w.write_i64(*conn as i64);
            w.write_i32(*accepted_epoch as i32);
            w.write_i64(last_zxid.0);
        }
        Message::LeaderInfo { conn, epoch } => {
            w.write_i64(*conn as i64);
            w.write_i32(*epoch as i32);
        }
        Message::AckEpoch {
            conn,
            epoch,
            current_epoch,
            last_zxid,
            committed_zxid,
        } => {
            w.write_i64(*conn as i64);
            w.write_i32(*epoch as i32);
            w.write_i32(*current_epoch as i32);
            w.write_i64(last_zxid.0);
            w.write_i64(committed_zxid.0);
        }
        Message::Diff {
            conn,
            epoch,
            base_zxid: zxid,
            entries,
        }
        | Message::Trunc {
            conn,
            epoch,
            zxid,
            entries,
        } => {
            w.write_i64(*conn as i64);
            w.write_i32(*epoch as i32);
            w.write_i64(zxid.0);
            write_entries(&mut w, entries);
        }
        Message::Snap {
            conn,
            epoch,
            snapshot,
            entries,
            configs,
        } => {
            w.write_i64(*conn as i64);
            w.write_i32(*epoch as i32);
            w.write_i64(snapshot.zxid.0);
            write_buffer_checked(&mut w, &snapshot.state);
            write_entries(&mut w, entries);
            w.write_vec(configs, write_membership);
        }
        Message::NewLeader {
            conn,
            epoch,
            zxid,
            configs,
        } => {
            w.write_i64(*conn as i64);
            w.write_i32(*epoch as i32);
            w.write_i64(zxid.0);
            w.write_vec(configs, write_membership);
        }
        Message::UpToDate {
            conn,
            epoch,
            commit_zxid: zxid,
        } => {
            w.write_i64(*conn as i64);
            w.write_i32(*epoch as i32);
            w.write_i64(zxid.0);
        }
        Message::Proposal {
            epoch,
            prev_zxid,
            entry,
        } => {
            w.write_i32(*epoch as i32);
            w.write_i64(prev_zxid.0);
            write_buffer_checked(&mut w, &entry.encode());
        }
        Message::Ack { epoch, zxid } | Message::Commit { epoch, zxid } => {
            w.write_i32(*epoch as i32);
            w.write_i64(zxid.0);
        }
        Message::Ping { epoch } => w.write_i32(*epoch as i32),
    }
    w.into_inner()
}

/// Decodes one whole message; every byte of `b` must belong to it.
pub fn decode_message(b: &[u8]) -> Result<Message, WireError> {
    let (&version, rest) = b.split_first().ok_or(WireError::Empty)?;
    if version != VERSION {
        return Err(WireError::UnknownVersion(version));
    }
    let (&tag, body) = rest.split_first().ok_or(WireError::NoTag)?;
    let mut r = Reader::new(body);
    let msg = match tag {
        TAG_NOTIFICATION => {
            let vote = Vote {
                leader: ServerId(r.read_i64()? as u64),
                zxid: Zxid(r.read_i64()?),
                election_epoch: r.read_i64()? as u64,
                peer_epoch: r.read_i32()? as u32,
            };
            let state = peer_state_of(r.read_i32()?)?;
            let configs = r.read_vec(12, read_membership)?;
            Message::Notification(Notification {
                vote,
                state,
                configs,
            })
        }
        TAG_FOLLOWER_INFO => Message::FollowerInfo {
            conn: r.read_i64()? as u64,
            accepted_epoch: r.read_i32()? as u32,
            last_zxid: Zxid(r.read_i64()?),
        },
        TAG_LEADER_INFO => Message::LeaderInfo {
            conn: r.read_i64()? as u64,
            epoch: r.read_i32()? as u32,
        },
        TAG_ACK_EPOCH => Message::AckEpoch {
            conn: r.read_i64()? as u64,
            epoch: r.read_i32()? as u32,
            current_epoch: r.read_i32()? as u32,
            last_zxid: Zxid(r.read_i64()?),
            committed_zxid: Zxid(r.read_i64()?),
        },
        TAG_DIFF => Message::Diff {
            conn: r.read_i64()? as u64,
            epoch: r.read_i32()? as u32,
            base_zxid: Zxid(r.read_i64()?),
            entries: read_entries(&mut r)?,
        },
        TAG_TRUNC => Message::Trunc {
            conn: r.read_i64()? as u64,
            epoch: r.read_i32()? as u32,
            zxid: Zxid(r.read_i64()?),
            entries: read_entries(&mut r)?,
        },
        TAG_SNAP => Message::Snap {
            conn: r.read_i64()? as u64,
            epoch: r.read_i32()? as u32,
            snapshot: Snapshot {
                zxid: Zxid(r.read_i64()?),
                state: Arc::from(r.read_buffer()?),
            },
            entries: read_entries(&mut r)?,
            configs: r.read_vec(12, read_membership)?,
        },
        TAG_NEW_LEADER => Message::NewLeader {
            conn: r.read_i64()? as u64,
            epoch: r.read_i32()? as u32,
            zxid: Zxid(r.read_i64()?),
            configs: r.read_vec(12, read_membership)?,
        },
        TAG_UP_TO_DATE => Message::UpToDate {
            conn: r.read_i64()? as u64,
            epoch: r.read_i32()? as u32,
            commit_zxid: Zxid(r.read_i64()?),
        },
        TAG_PROPOSAL => Message::Proposal {
            epoch: r.read_i32()? as u32,
            prev_zxid: Zxid(r.read_i64()?),
            entry: read_entry(&mut r, 0)?,
        },
        TAG_ACK => Message::Ack {
            epoch: r.read_i32()? as u32,
            zxid: Zxid(r.read_i64()?),
        },
        TAG_COMMIT => Message::Commit {
            epoch: r.read_i32()? as u32,
            zxid: Zxid(r.read_i64()?),
        },
        TAG_PING => Message::Ping {
            epoch: r.read_i32()? as u32,
        },
        other => return Err(WireError::UnknownTag(other)),
    };
    r.finish()?;
    Ok(msg)
}

fn tag_of(msg: &Message) -> u8 {
    match msg {
        Message::Notification(_) => TAG_NOTIFICATION,
        Message::FollowerInfo { .. } => TAG_FOLLOWER_INFO,
        Message::LeaderInfo { .. } => TAG_LEADER_INFO,
        Message::AckEpoch { .. } => TAG_ACK_EPOCH,
        Message::Diff { .. } => TAG_DIFF,
        Message::Trunc { .. } => TAG_TRUNC,
        Message::Snap { .. } => TAG_SNAP,
        Message::NewLeader { .. } => TAG_NEW_LEADER,
        Message::UpToDate { .. } => TAG_UP_TO_DATE,
        Message::Proposal { .. } => TAG_PROPOSAL,
        Message::Ack { .. } => TAG_ACK,
        Message::Commit { .. } => TAG_COMMIT,
        Message::Ping { .. } => TAG_PING,
    }
}

fn peer_state_code(s: PeerState) -> i32 {
    match s {
        PeerState::Looking => 0,
        PeerState::Following => 1,
        PeerState::Leading => 2,
        PeerState::Observing => 3,
    }
}

fn peer_state_of(code: i32) -> Result<PeerState, WireError> {
    Ok(match code {
        0 => PeerState::Looking,
        1 => PeerState::Following,
        2 => PeerState::Leading,
        3 => PeerState::Observing,
        other => return Err(WireError::UnknownPeerState(other)),
    })
}

fn write_buffer_checked(w: &mut Writer, b: &[u8]) {
    assert!(
        i32::try_from(b.len()).is_ok(),
        "buffer of {} bytes does not fit a jute length",
        b.len()
    );
    w.write_buffer(b);
}

/// Encodes a run of log entries as the feed carries them (a count, then each
/// entry in the store's own format).
pub fn encode_entries(entries: &[LogEntry]) -> Vec<u8> {
    let mut w = Writer::new();
    write_entries(&mut w, entries);
    w.into_inner()
}

/// As [`encode_entries`], from entries already encoded one by one
/// ([`LogEntry::encode`]).
pub fn encode_entry_buffers(bufs: &[Vec<u8>]) -> Vec<u8> {
    assert!(
        i32::try_from(bufs.len()).is_ok(),
        "{} entries do not fit a jute count",
        bufs.len()
    );
    let mut w = Writer::new();
    w.write_vec(bufs, |w, b| write_buffer_checked(w, b));
    w.into_inner()
}

/// Decodes what [`encode_entries`] made; bytes left over are an error.
pub fn decode_entries(b: &[u8]) -> Result<Vec<LogEntry>, WireError> {
    let mut r = Reader::new(b);
    let entries = read_entries(&mut r)?;
    r.finish().map_err(WireError::Body)?;
    Ok(entries)
}

fn write_entries(w: &mut Writer, entries: &[LogEntry]) {
    assert!(
        i32::try_from(entries.len()).is_ok(),
        "{} entries do not fit a jute count",
        entries.len()
    );
    w.write_vec(entries, |w, e| write_buffer_checked(w, &e.encode()));
}

fn read_entry(r: &mut Reader<'_>, index: usize) -> Result<LogEntry, WireError> {
    let bytes = r.read_buffer()?;
    LogEntry::decode(&bytes).map_err(|source| WireError::Entry { index, source })
}

fn read_entries(r: &mut Reader<'_>) -> Result<Vec<LogEntry>, WireError> {
    // The count is checked against the bytes left before anything is
    // allocated (each entry takes at least its 4-byte length), so a lying
    // count cannot make us reserve memory the frame does not back.
    let offset = r.position();
    let n = r.read_i32()?;
    if n < 0 || (n as usize).saturating_mul(4) > r.remaining() {
        return Err(WireError::Body(DecodeError::BadLength { offset, len: n }));
    }
    let n = n as usize;
    let mut entries = Vec::with_capacity(n);
    for index in 0..n {
        entries.push(read_entry(r, index)?);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::Acl;
    use corral_store::{Txn, TxnHeader};
    use proptest::prelude::*;

    fn entry(zxid: i64, txn: Txn) -> LogEntry {
        LogEntry {
            hdr: TxnHeader {
                session_id: 0x1234_5678_9abc,
                cxid: 7,
                zxid,
                time_ms: 1_700_000_000_000,
            },
            txn,
        }
    }

    fn sample_entries() -> Vec<LogEntry> {
        vec![
            entry(
                Zxid::new(2, 1).0,
                Txn::Create {
                    path: "/a".into(),
                    data: Some(b"hello".to_vec()),
                    acl: vec![Acl::new(31, "world", "anyone")],
                    ephemeral_owner: 0,
                    parent_cversion: 1,
                },
            ),
            entry(
                Zxid::new(2, 2).0,
                Txn::Multi(vec![
                    Txn::Check {
                        path: "/a".into(),
                        version: 0,
                    },
                    Txn::SetData {
                        path: "/a".into(),
                        data: None,
                        version: 1,
                    },
                ]),
            ),
            entry(Zxid::new(2, 3).0, Txn::CloseSession),
        ]
    }

    /// One message of every variant, with values that exercise the sign bit
    /// of the unsigned fields.
    fn every_variant() -> Vec<Message> {
        let z = Zxid::new(u32::MAX, 9);
        vec![
            Message::Notification(Notification {
                vote: Vote {
                    leader: ServerId(u64::MAX),
                    zxid: z,
                    election_epoch: u64::MAX - 1,
                    peer_epoch: u32::MAX,
                },
                state: PeerState::Observing,
                configs: vec![
                    Membership::new(z, [ServerId(u64::MAX), ServerId(1)]),
                    Membership::new(Zxid(i64::MAX), [ServerId(2)]),
                ],
            }),
            Message::FollowerInfo {
                conn: u64::MAX,
                accepted_epoch: 3,
                last_zxid: z,
            },
            Message::LeaderInfo { conn: 1, epoch: 4 },
            Message::AckEpoch {
                conn: 2,
                epoch: 4,
                current_epoch: 3,
                last_zxid: z,
                committed_zxid: Zxid::new(3, 1),
            },
            Message::Diff {
                conn: 3,
                epoch: 4,
                base_zxid: Zxid::new(2, 0),
                entries: sample_entries(),
            },
            Message::Trunc {
                conn: 4,
                epoch: 4,
                zxid: Zxid::new(1, 5),
                entries: Vec::new(),
            },
            Message::Snap {
                conn: 5,
                epoch: 4,
                snapshot: Snapshot {
                    zxid: Zxid::new(2, 0),
                    state: Arc::from(vec![0u8, 1, 2, 255]),
                },
                entries: sample_entries(),
                configs: vec![Membership::new(Zxid::new(1, 1), [ServerId(4)])],
            },
            Message::NewLeader {
                conn: 6,
                epoch: 4,
                zxid: z,
                configs: vec![
                    Membership::new(Zxid::ZERO, [ServerId(1), ServerId(2), ServerId(3)]),
                    Membership::new(z, [ServerId(2), ServerId(9)]),
                ],
            },
            Message::UpToDate {
                conn: 7,
                epoch: 4,
                commit_zxid: z,
            },
            Message::Proposal {
                epoch: 4,
                prev_zxid: Zxid::new(4, 0),
                entry: sample_entries().remove(1),
            },
            Message::Ack {
                epoch: 4,
                zxid: Zxid::new(4, 1),
            },
            Message::Commit {
                epoch: 4,
                zxid: Zxid::new(4, 1),
            },
            Message::Ping { epoch: 0 },
        ]
    }

    #[test]
    fn every_variant_round_trips() {
        // Goal: each Message variant decodes back to itself, and every tag is distinct.
        let mut tags = std::collections::HashSet::new();
        for msg in every_variant() {
            let b = encode_message(&msg);
            assert_eq!(b[0], VERSION);
            assert!(tags.insert(b[1]), "tag {} used twice", b[1]);
            assert_eq!(decode_message(&b).expect("decodes"), msg);
        }
        assert_eq!(tags.len(), 13);
    }

    #[test]
    fn empty_snapshot_and_empty_lists_round_trip() {
        // Goal: zero-length state and entry lists are not confused with null or missing fields.
        let msg = Message::Snap {
            conn: 0,
            epoch: 0,
            snapshot: Snapshot::empty(),
            entries: Vec::new(),
            configs: Vec::new(),
        };
        assert_eq!(decode_message(&encode_message(&msg)).unwrap(), msg);
    }

    #[test]
    fn every_truncation_errors() {
        // Goal: each strict prefix of a valid encoding is refused with an error, never a panic.
        for msg in every_variant() {
            let b = encode_message(&msg);
            for n in 0..b.len() {
                assert!(
                    decode_message(&b[..n]).is_err(),
                    "prefix of {n}/{} bytes of {msg:?} decoded",
                    b.len()
                );
            }
        }
    }

    #[test]
    fn trailing_bytes_error() {
        // Goal: bytes after a complete message are refused, not ignored.
        for msg in every_variant() {
            let mut b = encode_message(&msg);
            b.push(0);
            assert!(matches!(
                decode_message(&b),
                Err(WireError::Body(DecodeError::Trailing(1)))
            ));
        }
    }

    #[test]
    fn unknown_version_tag_and_state_error() {
        // Goal: an unknown version, tag or peer state is named in the error.
        let mut b = encode_message(&Message::Ping { epoch: 1 });
        b[0] = VERSION + 1;
        assert!(matches!(
            decode_message(&b),
            Err(WireError::UnknownVersion(v)) if v == VERSION + 1
        ));
        for tag in [0u8, 14, 200, 255] {
            let b = [VERSION, tag, 0, 0, 0, 1];
            assert!(matches!(decode_message(&b), Err(WireError::UnknownTag(t)) if t == tag));
        }
        // The peer state follows the header (2 bytes) and the vote (28).
        let mut b = encode_message(&every_variant()[0]);
        b[30..34].copy_from_slice(&4i32.to_be_bytes());
        assert!(matches!(
            decode_message(&b),
            Err(WireError::UnknownPeerState(4))
        ));
        assert!(matches!(decode_message(&[]), Err(WireError::Empty)));
        assert!(matches!(decode_message(&[VERSION]), Err(WireError::NoTag)));
    }

    #[test]
    fn lying_lengths_and_bad_entries_error() {
        // Goal: a huge entry count, a huge state length or a corrupt entry is an error, not an allocation or a panic.
        let mut b = vec![VERSION, TAG_DIFF];
        b.extend_from_slice(&1i64.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            decode_message(&b),
            Err(WireError::Body(DecodeError::BadLength { .. }))
        ));

        let mut b = vec![VERSION, TAG_SNAP];
        b.extend_from_slice(&1i64.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&(1i32 << 30).to_be_bytes());
        assert!(matches!(
            decode_message(&b),
            Err(WireError::Body(DecodeError::BadLength { .. }))
        ));

        // A one-entry Diff whose entry bytes are not a log entry.
        let mut b = vec![VERSION, TAG_DIFF];
        b.extend_from_slice(&1i64.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&3i32.to_be_bytes());
        b.extend_from_slice(&[9, 9, 9]);
        assert!(matches!(
            decode_message(&b),
            Err(WireError::Entry { index: 0, .. })
        ));
    }

    fn arb_acl() -> impl Strategy<Value = Acl> {
        (0..32i32, "[a-z]{1,6}", "[a-z0-9:]{0,12}").prop_map(|(p, s, i)| Acl::new(p, &s, &i))
    }

    fn arb_leaf_txn() -> impl Strategy<Value = Txn> {
        let path = "/[a-z0-9]{0,8}";
        let data = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..32));
        prop_oneof![
            (any::<i32>(), proptest::collection::vec(any::<u8>(), 0..16))
                .prop_map(|(timeout_ms, passwd)| Txn::CreateSession { timeout_ms, passwd }),
            Just(Txn::CloseSession),
            (
                path,
                data.clone(),
                proptest::collection::vec(arb_acl(), 0..3),
                any::<i64>(),
                any::<i32>()
            )
                .prop_map(|(path, data, acl, ephemeral_owner, parent_cversion)| {
                    Txn::Create {
                        path,
                        data,
                        acl,
                        ephemeral_owner,
                        parent_cversion,
                    }
                }),
            path.prop_map(|path| Txn::Delete { path }),
            (path, data, any::<i32>()).prop_map(|(path, data, version)| Txn::SetData {
                path,
                data,
                version
            }),
            (
                path,
                proptest::collection::vec(arb_acl(), 0..3),
                any::<i32>()
            )
                .prop_map(|(path, acl, version)| Txn::SetAcl { path, acl, version }),
            (path, any::<i32>()).prop_map(|(path, version)| Txn::Check { path, version }),
            any::<i32>().prop_map(Txn::Error),
        ]
    }

    fn arb_entry() -> impl Strategy<Value = LogEntry> {
        let txn = prop_oneof![
            4 => arb_leaf_txn(),
            1 => proptest::collection::vec(arb_leaf_txn(), 0..4).prop_map(Txn::Multi),
        ];
        (any::<i64>(), any::<i32>(), any::<i64>(), any::<i64>(), txn).prop_map(
            |(session_id, cxid, zxid, time_ms, txn)| LogEntry {
                hdr: TxnHeader {
                    session_id,
                    cxid,
                    zxid,
                    time_ms,
                },
                txn,
            },
        )
    }

    fn arb_zxid() -> impl Strategy<Value = Zxid> {
        any::<i64>().prop_map(Zxid)
    }

    fn arb_entries() -> impl Strategy<Value = Vec<LogEntry>> {
        proptest::collection::vec(arb_entry(), 0..4)
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        let state = prop_oneof![
            Just(PeerState::Looking),
            Just(PeerState::Following),
            Just(PeerState::Leading),
            Just(PeerState::Observing),
        ];
        prop_oneof![
            (any::<u64>(), arb_zxid(), any::<u64>(), any::<u32>(), state).prop_map(
                |(leader, zxid, election_epoch, peer_epoch, state)| {
                    Message::Notification(Notification {
                        vote: Vote {
                            leader: ServerId(leader),
                            zxid,
                            election_epoch,
                            peer_epoch,
                        },
                        state,
                        configs: vec![Membership::new(zxid, [ServerId(leader)])],
                    })
                }
            ),
            (any::<u64>(), any::<u32>(), arb_zxid()).prop_map(
                |(conn, accepted_epoch, last_zxid)| {
                    Message::FollowerInfo {
                        conn,
                        accepted_epoch,
                        last_zxid,
                    }
                }
            ),
            (any::<u64>(), any::<u32>())
                .prop_map(|(conn, epoch)| Message::LeaderInfo { conn, epoch }),
            (
                any::<u64>(),
                any::<u32>(),
                any::<u32>(),
                arb_zxid(),
                arb_zxid()
            )
                .prop_map(|(conn, epoch, current_epoch, last_zxid, committed_zxid)| {
                    Message::AckEpoch {
                        conn,
                        epoch,
                        current_epoch,
                        last_zxid,
                        committed_zxid,
                    }
                }),
            (any::<u64>(), any::<u32>(), arb_zxid(), arb_entries()).prop_map(
                |(conn, epoch, base_zxid, entries)| Message::Diff {
                    conn,
                    epoch,
                    base_zxid,
                    entries,
                }
            ),
            (any::<u64>(), any::<u32>(), arb_zxid(), arb_entries()).prop_map(
                |(conn, epoch, zxid, entries)| Message::Trunc {
                    conn,
                    epoch,
                    zxid,
                    entries,
                }
            ),
            (
                any::<u64>(),
                any::<u32>(),
                arb_zxid(),
                proptest::collection::vec(any::<u8>(), 0..64),
                arb_entries()
            )
                .prop_map(|(conn, epoch, zxid, state, entries)| Message::Snap {
                    conn,
                    epoch,
                    snapshot: Snapshot {
                        zxid,
                        state: Arc::from(state),
                    },
                    entries,
                    configs: vec![Membership::new(zxid, [ServerId(conn)])],
                }),
            (
                any::<u64>(),
                any::<u32>(),
                arb_zxid(),
                proptest::collection::vec(
                    (
                        arb_zxid(),
                        proptest::collection::btree_set(any::<u64>(), 0..5)
                    ),
                    0..3
                )
            )
                .prop_map(|(conn, epoch, zxid, configs)| Message::NewLeader {
                    conn,
                    epoch,
                    zxid,
                    configs: configs
                        .into_iter()
                        .map(|(v, ids)| Membership::new(v, ids.into_iter().map(ServerId)))
                        .collect(),
                }),
            (any::<u64>(), any::<u32>(), arb_zxid()).prop_map(|(conn, epoch, commit_zxid)| {
                Message::UpToDate {
                    conn,
                    epoch,
                    commit_zxid,
                }
            }),
            (any::<u32>(), arb_zxid(), arb_entry()).prop_map(|(epoch, prev_zxid, entry)| {
                Message::Proposal {
                    epoch,
                    prev_zxid,
                    entry,
                }
            }),
            (any::<u32>(), arb_zxid()).prop_map(|(epoch, zxid)| Message::Ack { epoch, zxid }),
            (any::<u32>(), arb_zxid()).prop_map(|(epoch, zxid)| Message::Commit { epoch, zxid }),
            any::<u32>().prop_map(|epoch| Message::Ping { epoch }),
        ]
    }

    proptest! {
        #[test]
        fn random_messages_round_trip(msg in arb_message()) {
            // Goal: decode(encode(m)) == m for arbitrary messages of every variant.
            let b = encode_message(&msg);
            prop_assert_eq!(decode_message(&b).expect("decodes"), msg);
        }

        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..256)) {
            // Goal: arbitrary input (a valid header followed by noise, or pure noise) never panics the decoder.
            let _ = decode_message(&b);
            let mut framed = vec![VERSION, b.first().copied().unwrap_or(0) % 14];
            framed.extend_from_slice(&b);
            let _ = decode_message(&framed);
        }
    }
}
