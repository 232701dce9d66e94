//! A client request body, decoded by opcode.

use crate::jute::{DecodeError, Reader, Writer};
use crate::opcode::OpCode;
use crate::records::{read_acls, write_acls, Acl, MultiHeader, Record};

/// create / create2 / createContainer / createTTL (the opcode says which reply shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub path: String,
    /// `None` is a null buffer, which ZooKeeper stores and returns as null.
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    /// Only createTTL carries a TTL; `-1` otherwise.
    pub ttl: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    pub path: String,
    pub version: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDataRequest {
    pub path: String,
    pub data: Option<Vec<u8>>,
    pub version: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAclRequest {
    pub path: String,
    pub acl: Vec<Acl>,
    pub version: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckVersionRequest {
    pub path: String,
    pub version: i32,
}

/// exists / getData / getChildren / getChildren2: a path and a watch flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathWatch {
    pub path: String,
    pub watch: bool,
}

/// checkWatches / removeWatches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchesRequest {
    pub path: String,
    pub watcher_type: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddWatchRequest {
    pub path: String,
    pub mode: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPacket {
    pub auth_type: i32,
    pub scheme: String,
    pub auth: Vec<u8>,
}

/// setWatches (v1 leaves the persistent lists empty) and setWatches2.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data_watches: Vec<String>,
    pub exist_watches: Vec<String>,
    pub child_watches: Vec<String>,
    pub persistent_watches: Vec<String>,
    pub persistent_recursive_watches: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconfigRequest {
    pub joining_servers: String,
    pub leaving_servers: String,
    pub new_members: String,
    pub cur_config_id: i64,
}

/// One op inside a multi (write ops) or multiRead (getData / getChildren).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    Create(OpCode, CreateRequest),
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckVersionRequest),
    GetData(String),
    GetChildren(String),
}

impl MultiOp {
    pub fn opcode(&self) -> OpCode {
        match self {
            MultiOp::Create(op, _) => *op,
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
            MultiOp::GetData(_) => OpCode::GetData,
            MultiOp::GetChildren(_) => OpCode::GetChildren,
        }
    }

    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create(_, c) => &c.path,
            MultiOp::Delete(d) => &d.path,
            MultiOp::SetData(s) => &s.path,
            MultiOp::Check(c) => &c.path,
            MultiOp::GetData(p) | MultiOp::GetChildren(p) => p,
        }
    }

    pub fn path_mut(&mut self) -> &mut String {
        match self {
            MultiOp::Create(_, c) => &mut c.path,
            MultiOp::Delete(d) => &mut d.path,
            MultiOp::SetData(s) => &mut s.path,
            MultiOp::Check(c) => &mut c.path,
            MultiOp::GetData(p) | MultiOp::GetChildren(p) => p,
        }
    }
}

/// A decoded request body. The xid lives in the `RequestHeader` beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Ping,
    Create(OpCode, CreateRequest),
    Delete(DeleteRequest),
    DeleteContainer(String),
    Exists(PathWatch),
    GetData(PathWatch),
    SetData(SetDataRequest),
    GetAcl(String),
    SetAcl(SetAclRequest),
    GetChildren(PathWatch),
    GetChildren2(PathWatch),
    Sync(String),
    Check(CheckVersionRequest),
    Multi(Vec<MultiOp>),
    MultiRead(Vec<MultiOp>),
    Reconfig(ReconfigRequest),
    CheckWatches(WatchesRequest),
    RemoveWatches(WatchesRequest),
    Auth(AuthPacket),
    SetWatches(SetWatches),
    SetWatches2(SetWatches),
    Sasl(Vec<u8>),
    GetEphemerals(String),
    GetAllChildrenNumber(String),
    AddWatch(AddWatchRequest),
    WhoAmI,
    CloseSession,
}

fn read_create(r: &mut Reader<'_>, op: OpCode) -> Result<CreateRequest, DecodeError> {
    Ok(CreateRequest {
        path: r.read_string()?,
        data: r.read_opt_buffer()?,
        acl: read_acls(r)?,
        flags: r.read_i32()?,
        ttl: if op == OpCode::CreateTtl {
            r.read_i64()?
        } else {
            -1
        },
    })
}

fn write_create(w: &mut Writer, op: OpCode, c: &CreateRequest) {
    w.write_string(&c.path);
    w.write_opt_buffer(c.data.as_deref());
    write_acls(w, &c.acl);
    w.write_i32(c.flags);
    if op == OpCode::CreateTtl {
        w.write_i64(c.ttl);
    }
}

fn read_path_watch(r: &mut Reader<'_>) -> Result<PathWatch, DecodeError> {
    Ok(PathWatch {
        path: r.read_string()?,
        watch: r.read_bool()?,
    })
}

fn read_multi_op(r: &mut Reader<'_>, op: i32) -> Result<MultiOp, DecodeError> {
    let code = OpCode::from_code(op).ok_or(DecodeError::UnknownOpCode(op))?;
    Ok(match code {
        OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            MultiOp::Create(code, read_create(r, code)?)
        }
        OpCode::Delete | OpCode::DeleteContainer => MultiOp::Delete(DeleteRequest {
            path: r.read_string()?,
            version: r.read_i32()?,
        }),
        OpCode::SetData => MultiOp::SetData(SetDataRequest {
            path: r.read_string()?,
            data: r.read_opt_buffer()?,
            version: r.read_i32()?,
        }),
        OpCode::Check => MultiOp::Check(CheckVersionRequest {
            path: r.read_string()?,
            version: r.read_i32()?,
        }),
        OpCode::GetData => MultiOp::GetData(read_path_watch(r)?.path),
        OpCode::GetChildren => MultiOp::GetChildren(read_path_watch(r)?.path),
        _ => return Err(DecodeError::UnknownOpCode(op)),
    })
}

fn read_multi(r: &mut Reader<'_>) -> Result<Vec<MultiOp>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            return Ok(ops);
        }
        ops.push(read_multi_op(r, h.op)?);
    }
}

fn write_multi(w: &mut Writer, ops: &[MultiOp]) {
    for op in ops {
        MultiHeader {
            op: op.opcode().code(),
            done: false,
            err: -1,
        }
        .write(w);
        match op {
            MultiOp::Create(code, c) => write_create(w, *code, c),
            MultiOp::Delete(d) => {
                w.write_string(&d.path);
                w.write_i32(d.version);
            }
            MultiOp::SetData(s) => {
                w.write_string(&s.path);
                w.write_opt_buffer(s.data.as_deref());
                w.write_i32(s.version);
            }
            MultiOp::Check(c) => {
                w.write_string(&c.path);
                w.write_i32(c.version);
            }
            MultiOp::GetData(p) | MultiOp::GetChildren(p) => {
                w.write_string(p);
                w.write_bool(false);
            }
        }
    }
    MultiHeader::END.write(w);
}

fn read_set_watches(r: &mut Reader<'_>, v2: bool) -> Result<SetWatches, DecodeError> {
    let mut s = SetWatches {
        relative_zxid: r.read_i64()?,
        data_watches: r.read_string_vec()?,
        exist_watches: r.read_string_vec()?,
        child_watches: r.read_string_vec()?,
        ..SetWatches::default()
    };
    if v2 {
        s.persistent_watches = r.read_string_vec()?;
        s.persistent_recursive_watches = r.read_string_vec()?;
    }
    Ok(s)
}

impl Request {
    /// Decodes the body that follows a `RequestHeader` with opcode `op`.
    pub fn decode(op: i32, r: &mut Reader<'_>) -> Result<Request, DecodeError> {
        let code = OpCode::from_code(op).ok_or(DecodeError::UnknownOpCode(op))?;
        Ok(match code {
            OpCode::Ping => Request::Ping,
            OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
                Request::Create(code, read_create(r, code)?)
            }
            OpCode::Delete => Request::Delete(DeleteRequest {
                path: r.read_string()?,
                version: r.read_i32()?,
            }),
            OpCode::DeleteContainer => Request::DeleteContainer(r.read_string()?),
            OpCode::Exists => Request::Exists(read_path_watch(r)?),
            OpCode::GetData => Request::GetData(read_path_watch(r)?),
            OpCode::SetData => Request::SetData(SetDataRequest {
                path: r.read_string()?,
                data: r.read_opt_buffer()?,
                version: r.read_i32()?,
            }),
            OpCode::GetAcl => Request::GetAcl(r.read_string()?),
            OpCode::SetAcl => Request::SetAcl(SetAclRequest {
                path: r.read_string()?,
                acl: read_acls(r)?,
                version: r.read_i32()?,
            }),
            OpCode::GetChildren => Request::GetChildren(read_path_watch(r)?),
            OpCode::GetChildren2 => Request::GetChildren2(read_path_watch(r)?),
            OpCode::Sync => Request::Sync(r.read_string()?),
            OpCode::Check => Request::Check(CheckVersionRequest {
                path: r.read_string()?,
                version: r.read_i32()?,
            }),
            OpCode::Multi => Request::Multi(read_multi(r)?),
            OpCode::MultiRead => Request::MultiRead(read_multi(r)?),
            OpCode::Reconfig => Request::Reconfig(ReconfigRequest {
                joining_servers: r.read_string()?,
                leaving_servers: r.read_string()?,
                new_members: r.read_string()?,
                cur_config_id: r.read_i64()?,
            }),
            OpCode::CheckWatches => Request::CheckWatches(WatchesRequest {
                path: r.read_string()?,
                watcher_type: r.read_i32()?,
            }),
            OpCode::RemoveWatches => Request::RemoveWatches(WatchesRequest {
                path: r.read_string()?,
                watcher_type: r.read_i32()?,
            }),
            OpCode::Auth => Request::Auth(AuthPacket {
                auth_type: r.read_i32()?,
                scheme: r.read_string()?,
                auth: r.read_buffer()?,
            }),
            OpCode::SetWatches => Request::SetWatches(read_set_watches(r, false)?),
            OpCode::SetWatches2 => Request::SetWatches2(read_set_watches(r, true)?),
            OpCode::Sasl => Request::Sasl(r.read_buffer()?),
            OpCode::GetEphemerals => Request::GetEphemerals(r.read_string()?),
            OpCode::GetAllChildrenNumber => Request::GetAllChildrenNumber(r.read_string()?),
            OpCode::AddWatch => Request::AddWatch(AddWatchRequest {
                path: r.read_string()?,
                mode: r.read_i32()?,
            }),
            OpCode::WhoAmI => Request::WhoAmI,
            OpCode::CloseSession => Request::CloseSession,
            OpCode::Notification | OpCode::CreateSession | OpCode::Error => {
                return Err(DecodeError::UnknownOpCode(op))
            }
        })
    }

    pub fn opcode(&self) -> OpCode {
        match self {
            Request::Ping => OpCode::Ping,
            Request::Create(op, _) => *op,
            Request::Delete(_) => OpCode::Delete,
            Request::DeleteContainer(_) => OpCode::DeleteContainer,
            Request::Exists(_) => OpCode::Exists,
            Request::GetData(_) => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetAcl(_) => OpCode::GetAcl,
            Request::SetAcl(_) => OpCode::SetAcl,
            Request::GetChildren(_) => OpCode::GetChildren,
            Request::GetChildren2(_) => OpCode::GetChildren2,
            Request::Sync(_) => OpCode::Sync,
            Request::Check(_) => OpCode::Check,
            Request::Multi(_) => OpCode::Multi,
            Request::MultiRead(_) => OpCode::MultiRead,
            Request::Reconfig(_) => OpCode::Reconfig,
            Request::CheckWatches(_) => OpCode::CheckWatches,
            Request::RemoveWatches(_) => OpCode::RemoveWatches,
            Request::Auth(_) => OpCode::Auth,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::SetWatches2(_) => OpCode::SetWatches2,
            Request::Sasl(_) => OpCode::Sasl,
            Request::GetEphemerals(_) => OpCode::GetEphemerals,
            Request::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            Request::AddWatch(_) => OpCode::AddWatch,
            Request::WhoAmI => OpCode::WhoAmI,
            Request::CloseSession => OpCode::CloseSession,
        }
    }

    /// Encodes the body (as a client would); used by tests, the bench and the CLI.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
            Request::Create(op, c) => write_create(w, *op, c),
            Request::Delete(d) => {
                w.write_string(&d.path);
                w.write_i32(d.version);
            }
            Request::DeleteContainer(p)
            | Request::GetAcl(p)
            | Request::Sync(p)
            | Request::GetEphemerals(p)
            | Request::GetAllChildrenNumber(p) => w.write_string(p),
            Request::Exists(p)
            | Request::GetData(p)
            | Request::GetChildren(p)
            | Request::GetChildren2(p) => {
                w.write_string(&p.path);
                w.write_bool(p.watch);
            }
            Request::SetData(s) => {
                w.write_string(&s.path);
                w.write_opt_buffer(s.data.as_deref());
                w.write_i32(s.version);
            }
            Request::SetAcl(s) => {
                w.write_string(&s.path);
                write_acls(w, &s.acl);
                w.write_i32(s.version);
            }
            Request::Check(c) => {
                w.write_string(&c.path);
                w.write_i32(c.version);
            }
            Request::Multi(ops) | Request::MultiRead(ops) => write_multi(w, ops),
            Request::Reconfig(rc) => {
                w.write_string(&rc.joining_servers);
                w.write_string(&rc.leaving_servers);
                w.write_string(&rc.new_members);
                w.write_i64(rc.cur_config_id);
            }
            Request::CheckWatches(c) | Request::RemoveWatches(c) => {
                w.write_string(&c.path);
                w.write_i32(c.watcher_type);
            }
            Request::Auth(a) => {
                w.write_i32(a.auth_type);
                w.write_string(&a.scheme);
                w.write_buffer(&a.auth);
            }
            Request::SetWatches(s) | Request::SetWatches2(s) => {
                w.write_i64(s.relative_zxid);
                w.write_string_vec(&s.data_watches);
                w.write_string_vec(&s.exist_watches);
                w.write_string_vec(&s.child_watches);
                if matches!(self, Request::SetWatches2(_)) {
                    w.write_string_vec(&s.persistent_watches);
                    w.write_string_vec(&s.persistent_recursive_watches);
                }
            }
            Request::Sasl(b) => w.write_buffer(b),
            Request::AddWatch(a) => {
                w.write_string(&a.path);
                w.write_i32(a.mode);
            }
        }
    }

    /// True for requests that change the tree or the session (they go through the replicator).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(..)
                | Request::Delete(_)
                | Request::DeleteContainer(_)
                | Request::SetData(_)
                | Request::SetAcl(_)
                | Request::Check(_)
                | Request::Multi(_)
                | Request::Reconfig(_)
                | Request::CloseSession
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(req: Request) {
        let mut w = Writer::new();
        req.encode(&mut w);
        let b = w.into_inner();
        let mut r = Reader::new(&b);
        let back = Request::decode(req.opcode().code(), &mut r).unwrap();
        r.finish().unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn every_request_round_trips() {
        let create = CreateRequest {
            path: "/a".into(),
            data: Some(b"x".to_vec()),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        };
        let pw = PathWatch {
            path: "/a".into(),
            watch: true,
        };
        let reqs = vec![
            Request::Ping,
            Request::Create(OpCode::Create, create.clone()),
            Request::Create(OpCode::Create2, create.clone()),
            Request::Create(OpCode::CreateContainer, create.clone()),
            Request::Create(
                OpCode::CreateTtl,
                CreateRequest {
                    ttl: 500,
                    flags: 5,
                    ..create.clone()
                },
            ),
            Request::Delete(DeleteRequest {
                path: "/a".into(),
                version: -1,
            }),
            Request::DeleteContainer("/c".into()),
            Request::Exists(pw.clone()),
            Request::GetData(pw.clone()),
            Request::SetData(SetDataRequest {
                path: "/a".into(),
                data: Some(vec![1, 2]),
                version: 3,
            }),
            Request::GetAcl("/a".into()),
            Request::SetAcl(SetAclRequest {
                path: "/a".into(),
                acl: vec![Acl::new(1, "digest", "u:h")],
                version: 0,
            }),
            Request::GetChildren(pw.clone()),
            Request::GetChildren2(pw),
            Request::Sync("/".into()),
            Request::Check(CheckVersionRequest {
                path: "/a".into(),
                version: 2,
            }),
            Request::Multi(vec![
                MultiOp::Create(OpCode::Create, create.clone()),
                MultiOp::Delete(DeleteRequest {
                    path: "/b".into(),
                    version: 0,
                }),
                MultiOp::SetData(SetDataRequest {
                    path: "/c".into(),
                    data: None,
                    version: -1,
                }),
                MultiOp::Check(CheckVersionRequest {
                    path: "/d".into(),
                    version: 1,
                }),
            ]),
            Request::MultiRead(vec![
                MultiOp::GetData("/a".into()),
                MultiOp::GetChildren("/".into()),
            ]),
            Request::Reconfig(ReconfigRequest {
                joining_servers: "server.4=x".into(),
                leaving_servers: String::new(),
                new_members: String::new(),
                cur_config_id: -1,
            }),
            Request::CheckWatches(WatchesRequest {
                path: "/a".into(),
                watcher_type: 3,
            }),
            Request::RemoveWatches(WatchesRequest {
                path: "/a".into(),
                watcher_type: 1,
            }),
            Request::Auth(AuthPacket {
                auth_type: 0,
                scheme: "digest".into(),
                auth: b"u:p".to_vec(),
            }),
            Request::SetWatches(SetWatches {
                relative_zxid: 9,
                data_watches: vec!["/a".into()],
                exist_watches: vec!["/b".into()],
                child_watches: vec![],
                ..Default::default()
            }),
            Request::SetWatches2(SetWatches {
                relative_zxid: 9,
                persistent_watches: vec!["/p".into()],
                persistent_recursive_watches: vec!["/r".into()],
                ..Default::default()
            }),
            Request::Sasl(vec![1]),
            Request::GetEphemerals("/".into()),
            Request::GetAllChildrenNumber("/".into()),
            Request::AddWatch(AddWatchRequest {
                path: "/a".into(),
                mode: 1,
            }),
            Request::WhoAmI,
            Request::CloseSession,
        ];
        for r in reqs {
            round_trip(r);
        }
    }

    #[test]
    fn golden_get_data_and_create_ttl() {
        let mut w = Writer::new();
        Request::GetData(PathWatch {
            path: "/zk".into(),
            watch: true,
        })
        .encode(&mut w);
        assert_eq!(w.into_inner(), vec![0, 0, 0, 3, b'/', b'z', b'k', 1]);
        let mut w = Writer::new();
        Request::Create(
            OpCode::CreateTtl,
            CreateRequest {
                path: "/t".into(),
                data: Some(vec![]),
                acl: vec![],
                flags: 5,
                ttl: 1000,
            },
        )
        .encode(&mut w);
        assert_eq!(
            w.into_inner(),
            vec![
                0, 0, 0, 2, b'/', b't', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 3,
                0xe8
            ]
        );
    }

    #[test]
    fn unknown_opcodes_and_bad_multi_are_errors() {
        assert_eq!(
            Request::decode(55, &mut Reader::new(&[])),
            Err(DecodeError::UnknownOpCode(55))
        );
        // A multi containing a ping op.
        let b = MultiHeader {
            op: 11,
            done: false,
            err: -1,
        }
        .to_bytes();
        assert!(Request::decode(14, &mut Reader::new(&b)).is_err());
        // A multi without its end marker.
        assert!(Request::decode(14, &mut Reader::new(&[])).is_err());
    }
}
