//! Client records, each with a field order taken from Apache ZooKeeper's `zookeeper.jute`.

use crate::jute::{DecodeError, Reader, Writer};

/// Something with a jute encoding.
pub trait Record: Sized {
    fn write(&self, w: &mut Writer);
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Encodes into a fresh buffer.
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_inner()
    }

    /// Decodes a whole buffer, refusing trailing bytes.
    fn from_bytes(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let v = Self::read(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// `org.apache.zookeeper.data.Stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

/// Encoded size of a [`Stat`].
pub const STAT_LEN: usize = 68;

impl Record for Stat {
    fn write(&self, w: &mut Writer) {
        w.write_i64(self.czxid);
        w.write_i64(self.mzxid);
        w.write_i64(self.ctime);
        w.write_i64(self.mtime);
        w.write_i32(self.version);
        w.write_i32(self.cversion);
        w.write_i32(self.aversion);
        w.write_i64(self.ephemeral_owner);
        w.write_i32(self.data_length);
        w.write_i32(self.num_children);
        w.write_i64(self.pzxid);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Stat {
            czxid: r.read_i64()?,
            mzxid: r.read_i64()?,
            ctime: r.read_i64()?,
            mtime: r.read_i64()?,
            version: r.read_i32()?,
            cversion: r.read_i32()?,
            aversion: r.read_i32()?,
            ephemeral_owner: r.read_i64()?,
            data_length: r.read_i32()?,
            num_children: r.read_i32()?,
            pzxid: r.read_i64()?,
        })
    }
}

/// `org.apache.zookeeper.data.Id`: a scheme and an id within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Self {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }
}

impl Record for Id {
    fn write(&self, w: &mut Writer) {
        w.write_string(&self.scheme);
        w.write_string(&self.id);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Id {
            scheme: r.read_string()?,
            id: r.read_string()?,
        })
    }
}

/// `org.apache.zookeeper.data.ACL`: permission bits granted to an [`Id`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

impl Acl {
    pub fn new(perms: i32, scheme: &str, id: &str) -> Self {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    /// `ZooDefs.Ids.OPEN_ACL_UNSAFE`.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(crate::opcode::perms::ALL, "world", "anyone")]
    }
}

impl Record for Acl {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.perms);
        self.id.write(w);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Acl {
            perms: r.read_i32()?,
            id: Id::read(r)?,
        })
    }
}

pub fn write_acls(w: &mut Writer, acls: &[Acl]) {
    w.write_vec(acls, |w, a| a.write(w));
}

pub fn read_acls(r: &mut Reader<'_>) -> Result<Vec<Acl>, DecodeError> {
    r.read_vec(12, Acl::read)
}

/// `ConnectRequest`; `read_only` is absent from pre-3.4 clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: Option<bool>,
}

impl Record for ConnectRequest {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.protocol_version);
        w.write_i64(self.last_zxid_seen);
        w.write_i32(self.timeout_ms);
        w.write_i64(self.session_id);
        w.write_buffer(&self.passwd);
        if let Some(ro) = self.read_only {
            w.write_bool(ro);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectRequest {
            protocol_version: r.read_i32()?,
            last_zxid_seen: r.read_i64()?,
            timeout_ms: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: r.read_buffer()?,
            read_only: if r.is_empty() {
                None
            } else {
                Some(r.read_bool()?)
            },
        })
    }
}

/// `ConnectResponse`. A refused session has `timeout_ms == 0` and `session_id == 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: bool,
}

impl Record for ConnectResponse {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.protocol_version);
        w.write_i32(self.timeout_ms);
        w.write_i64(self.session_id);
        w.write_buffer(&self.passwd);
        w.write_bool(self.read_only);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectResponse {
            protocol_version: r.read_i32()?,
            timeout_ms: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: r.read_buffer()?,
            read_only: if r.is_empty() { false } else { r.read_bool()? },
        })
    }
}

/// `RequestHeader`: the xid and the opcode of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub xid: i32,
    pub op: i32,
}

impl Record for RequestHeader {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.xid);
        w.write_i32(self.op);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RequestHeader {
            xid: r.read_i32()?,
            op: r.read_i32()?,
        })
    }
}

/// `ReplyHeader`: the xid being answered, the server's last zxid, and the error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

impl Record for ReplyHeader {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.xid);
        w.write_i64(self.zxid);
        w.write_i32(self.err);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ReplyHeader {
            xid: r.read_i32()?,
            zxid: r.read_i64()?,
            err: r.read_i32()?,
        })
    }
}

/// `WatcherEvent`, sent with xid -1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
}

impl Record for WatcherEvent {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.event_type);
        w.write_i32(self.state);
        w.write_string(&self.path);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(WatcherEvent {
            event_type: r.read_i32()?,
            state: r.read_i32()?,
            path: r.read_string()?,
        })
    }
}

/// `MultiHeader`, which precedes each op of a multi and ends it (`op == -1, done`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiHeader {
    pub op: i32,
    pub done: bool,
    pub err: i32,
}

impl MultiHeader {
    pub const END: MultiHeader = MultiHeader {
        op: -1,
        done: true,
        err: -1,
    };
}

impl Record for MultiHeader {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.op);
        w.write_bool(self.done);
        w.write_i32(self.err);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(MultiHeader {
            op: r.read_i32()?,
            done: r.read_bool()?,
            err: r.read_i32()?,
        })
    }
}

/// `ClientInfo` of a whoAmI reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub auth_scheme: String,
    pub user: String,
}

impl Record for ClientInfo {
    fn write(&self, w: &mut Writer) {
        w.write_string(&self.auth_scheme);
        w.write_string(&self.user);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ClientInfo {
            auth_scheme: r.read_string()?,
            user: r.read_string()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_golden_vector() {
        let s = Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let b = s.to_bytes();
        assert_eq!(b.len(), STAT_LEN);
        let mut expect = Vec::new();
        for v in [1i64, 2, 3, 4] {
            expect.extend_from_slice(&v.to_be_bytes());
        }
        for v in [5i32, 6, 7] {
            expect.extend_from_slice(&v.to_be_bytes());
        }
        expect.extend_from_slice(&8i64.to_be_bytes());
        expect.extend_from_slice(&9i32.to_be_bytes());
        expect.extend_from_slice(&10i32.to_be_bytes());
        expect.extend_from_slice(&11i64.to_be_bytes());
        assert_eq!(b, expect);
        assert_eq!(Stat::from_bytes(&b).unwrap(), s);
    }

    #[test]
    fn connect_request_with_and_without_read_only() {
        let mut req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0x10,
            timeout_ms: 30000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        };
        let b = req.to_bytes();
        // 4 + 8 + 4 + 8 + (4 + 16) + 1
        assert_eq!(b.len(), 45);
        assert_eq!(ConnectRequest::from_bytes(&b).unwrap(), req);
        req.read_only = None;
        let b = req.to_bytes();
        assert_eq!(b.len(), 44);
        assert_eq!(ConnectRequest::from_bytes(&b).unwrap(), req);
    }

    #[test]
    fn connect_response_golden_vector() {
        let rsp = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 4000,
            session_id: 0x0100_0000_0000_0001,
            passwd: vec![7; 16],
            read_only: false,
        };
        let b = rsp.to_bytes();
        let mut expect = vec![
            0, 0, 0, 0, 0, 0, 0x0f, 0xa0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 16,
        ];
        expect.extend_from_slice(&[7; 16]);
        expect.push(0);
        assert_eq!(b, expect);
        assert_eq!(ConnectResponse::from_bytes(&b).unwrap(), rsp);
    }

    #[test]
    fn headers_acl_event_golden_vectors() {
        let h = ReplyHeader {
            xid: -1,
            zxid: -1,
            err: 0,
        };
        assert_eq!(h.to_bytes(), [[255u8; 12].as_slice(), &[0; 4]].concat());
        let acl = Acl::new(31, "world", "anyone");
        let b = acl.to_bytes();
        assert_eq!(
            b,
            [
                &[0, 0, 0, 31, 0, 0, 0, 5][..],
                b"world",
                &[0, 0, 0, 6],
                b"anyone"
            ]
            .concat()
        );
        assert_eq!(Acl::from_bytes(&b).unwrap(), acl);
        let ev = WatcherEvent {
            event_type: 3,
            state: 3,
            path: "/x".into(),
        };
        assert_eq!(
            ev.to_bytes(),
            vec![0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, 2, b'/', b'x']
        );
        let mh = MultiHeader::END;
        assert_eq!(
            mh.to_bytes(),
            vec![255, 255, 255, 255, 1, 255, 255, 255, 255]
        );
        assert_eq!(MultiHeader::from_bytes(&mh.to_bytes()).unwrap(), mh);
        let rq = RequestHeader { xid: 7, op: 4 };
        assert_eq!(rq.to_bytes(), vec![0, 0, 0, 7, 0, 0, 0, 4]);
        let ci = ClientInfo {
            auth_scheme: "ip".into(),
            user: "127.0.0.1".into(),
        };
        assert_eq!(ClientInfo::from_bytes(&ci.to_bytes()).unwrap(), ci);
    }
}
