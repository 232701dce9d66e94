//! Txns: the deterministic state changes the leader's prep produces, and their
//! log encoding.
//!
//! Every field is an absolute value (the new version, the parent's new cversion,
//! the final path), never a delta, so replaying a txn over a fuzzy snapshot that
//! already contains its effect changes nothing.
//!
//! Encoding (jute primitives, big-endian): a format byte (`1`), the header
//! (`session_id` i64, `cxid` i32, `zxid` i64, `time_ms` i64), then the txn as an
//! i32 tag (ZooKeeper's opcode numbers, and corral's own below -100 for txns
//! ZooKeeper has no counterpart of) followed by its fields. A new txn kind
//! takes a new tag, so older logs stay readable as they are; a binary that
//! does not know a tag refuses the entry with a clear error.

use corral_proto::{read_acls, write_acls, Acl, DecodeError, Reader, Writer};

use crate::error::StoreError;

const FORMAT: u8 = 1;

const TAG_CREATE_SESSION: i32 = -10;
const TAG_CLOSE_SESSION: i32 = -11;
const TAG_ERROR: i32 = -1;
const TAG_CREATE: i32 = 1;
const TAG_DELETE: i32 = 2;
const TAG_SET_DATA: i32 = 5;
const TAG_SET_ACL: i32 = 7;
const TAG_CHECK: i32 = 13;
const TAG_MULTI: i32 = 14;
const TAG_RECONFIG: i32 = 16;
/// corral's own: no ZooKeeper opcode is below -100.
const TAG_BIND_SESSION: i32 = -101;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnHeader {
    pub session_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    pub time_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Txn {
    CreateSession {
        timeout_ms: i32,
        passwd: Vec<u8>,
    },
    /// Binds `header.session_id` to `tenant` in the session table (see
    /// [`crate::tree::SessionEntry::tenant`]). Never inside `Multi`.
    BindSession {
        tenant: String,
    },
    /// Closes `header.session_id`: deletes its ephemerals in sorted order and
    /// removes it from the session table.
    CloseSession,
    /// `path` is final (any sequence suffix already added). `ephemeral_owner`
    /// encodes the kind: 0, a session id, `CONTAINER_OWNER` or a `ttl_owner`.
    /// `parent_cversion` is the parent's new persisted cversion (old + 1).
    Create {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        parent_cversion: i32,
    },
    Delete {
        path: String,
    },
    /// `version` is the node's new data version.
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    /// `version` is the node's new aversion.
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    /// Only meaningful inside `Multi`; changes nothing.
    Check {
        path: String,
        version: i32,
    },
    /// Atomic. Sub-txns are never `Multi`. If any is `Error`, nothing applies.
    Multi(Vec<Txn>),
    /// A failed write (still consumes its zxid) or a failed multi's sub-op.
    Error(i32),
    /// A new ensemble configuration: `data` is its text (see
    /// [`crate::ensemble`]), stored in `/zookeeper/config` with data version
    /// -1, as ZooKeeper's reconfig does. Never inside `Multi`.
    Reconfig {
        data: Vec<u8>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub hdr: TxnHeader,
    pub txn: Txn,
}

impl LogEntry {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64);
        w.write_raw(&[FORMAT]);
        w.write_i64(self.hdr.session_id);
        w.write_i32(self.hdr.cxid);
        w.write_i64(self.hdr.zxid);
        w.write_i64(self.hdr.time_ms);
        self.txn.write(&mut w);
        w.into_inner()
    }

    /// The zxid of an encoded entry, read without decoding the rest (so a
    /// log can skip entries it does not need cheaply). Never panics.
    pub(crate) fn peek_zxid(b: &[u8]) -> Result<i64, StoreError> {
        // FORMAT u8 | session_id i64 | cxid i32 | zxid i64 | ...
        match (b.first(), b.get(13..21)) {
            (Some(&FORMAT), Some(z)) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(z);
                Ok(i64::from_be_bytes(a))
            }
            (Some(&FORMAT), None) => Err(StoreError::corrupt("log entry", "truncated header")),
            (Some(format), _) => Err(StoreError::corrupt(
                "log entry",
                format!("unknown format {format}"),
            )),
            (None, _) => Err(StoreError::corrupt("log entry", "empty")),
        }
    }

    /// Decodes one entry; refuses trailing bytes. Never panics.
    pub fn decode(b: &[u8]) -> Result<LogEntry, StoreError> {
        let e = StoreError::decode("log entry");
        let (&format, rest) = b
            .split_first()
            .ok_or_else(|| StoreError::corrupt("log entry", "empty"))?;
        if format != FORMAT {
            return Err(StoreError::corrupt(
                "log entry",
                format!("unknown format {format}"),
            ));
        }
        let mut r = Reader::new(rest);
        let hdr = TxnHeader {
            session_id: r.read_i64().map_err(&e)?,
            cxid: r.read_i32().map_err(&e)?,
            zxid: r.read_i64().map_err(&e)?,
            time_ms: r.read_i64().map_err(&e)?,
        };
        let txn = Txn::read(&mut r, true).map_err(&e)?;
        r.finish().map_err(e)?;
        Ok(LogEntry { hdr, txn })
    }
}

impl Txn {
    fn write(&self, w: &mut Writer) {
        match self {
            Txn::CreateSession { timeout_ms, passwd } => {
                w.write_i32(TAG_CREATE_SESSION);
                w.write_i32(*timeout_ms);
                w.write_buffer(passwd);
            }
            Txn::CloseSession => w.write_i32(TAG_CLOSE_SESSION),
            Txn::BindSession { tenant } => {
                w.write_i32(TAG_BIND_SESSION);
                w.write_string(tenant);
            }
            Txn::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
            } => {
                w.write_i32(TAG_CREATE);
                w.write_string(path);
                w.write_opt_buffer(data.as_deref());
                write_acls(w, acl);
                w.write_i64(*ephemeral_owner);
                w.write_i32(*parent_cversion);
            }
            Txn::Delete { path } => {
                w.write_i32(TAG_DELETE);
                w.write_string(path);
            }
            Txn::SetData {
                path,
                data,
                version,
            } => {
                w.write_i32(TAG_SET_DATA);
                w.write_string(path);
                w.write_opt_buffer(data.as_deref());
                w.write_i32(*version);
            }
            Txn::SetAcl { path, acl, version } => {
                w.write_i32(TAG_SET_ACL);
                w.write_string(path);
                write_acls(w, acl);
                w.write_i32(*version);
            }
            Txn::Check { path, version } => {
                w.write_i32(TAG_CHECK);
                w.write_string(path);
                w.write_i32(*version);
            }
            Txn::Multi(subs) => {
                w.write_i32(TAG_MULTI);
                w.write_vec(subs, |w, t| t.write(w));
            }
            Txn::Error(code) => {
                w.write_i32(TAG_ERROR);
                w.write_i32(*code);
            }
            Txn::Reconfig { data } => {
                w.write_i32(TAG_RECONFIG);
                w.write_buffer(data);
            }
        }
    }

    fn read(r: &mut Reader<'_>, top_level: bool) -> Result<Txn, DecodeError> {
        let tag = r.read_i32()?;
        Ok(match tag {
            TAG_CREATE_SESSION => Txn::CreateSession {
                timeout_ms: r.read_i32()?,
                passwd: r.read_buffer()?,
            },
            TAG_CLOSE_SESSION => Txn::CloseSession,
            TAG_BIND_SESSION if top_level => Txn::BindSession {
                tenant: r.read_string()?,
            },
            TAG_CREATE => Txn::Create {
                path: r.read_string()?,
                data: r.read_opt_buffer()?,
                acl: read_acls(r)?,
                ephemeral_owner: r.read_i64()?,
                parent_cversion: r.read_i32()?,
            },
            TAG_DELETE => Txn::Delete {
                path: r.read_string()?,
            },
            TAG_SET_DATA => Txn::SetData {
                path: r.read_string()?,
                data: r.read_opt_buffer()?,
                version: r.read_i32()?,
            },
            TAG_SET_ACL => Txn::SetAcl {
                path: r.read_string()?,
                acl: read_acls(r)?,
                version: r.read_i32()?,
            },
            TAG_CHECK => Txn::Check {
                path: r.read_string()?,
                version: r.read_i32()?,
            },
            TAG_MULTI if top_level => Txn::Multi(r.read_vec(4, |r| Txn::read(r, false))?),
            TAG_ERROR => Txn::Error(r.read_i32()?),
            TAG_RECONFIG if top_level => Txn::Reconfig {
                data: r.read_buffer()?,
            },
            _ => {
                return Err(DecodeError::BadValue {
                    field: "txn tag",
                    value: tag.into(),
                })
            }
        })
    }
}
