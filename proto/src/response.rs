//! A reply body. On error ZooKeeper sends only the `ReplyHeader`, so these are
//! the success shapes, plus the per-op results of multi and multiRead.

use crate::jute::{DecodeError, Reader, Writer};
use crate::opcode::OpCode;
use crate::records::{read_acls, write_acls, Acl, ClientInfo, MultiHeader, Record, Stat};

/// One result inside a multi or multiRead reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    Create(String),
    /// create2 / createContainer / createTTL inside a multi.
    Create2(String, Stat),
    Delete,
    SetData(Stat),
    Check,
    GetData(Option<Vec<u8>>, Stat),
    GetChildren(Vec<String>),
    Error(i32),
}

impl MultiResult {
    fn opcode(&self) -> i32 {
        match self {
            MultiResult::Create(_) => OpCode::Create.code(),
            MultiResult::Create2(..) => OpCode::Create2.code(),
            MultiResult::Delete => OpCode::Delete.code(),
            MultiResult::SetData(_) => OpCode::SetData.code(),
            MultiResult::Check => OpCode::Check.code(),
            MultiResult::GetData(..) => OpCode::GetData.code(),
            MultiResult::GetChildren(_) => OpCode::GetChildren.code(),
            MultiResult::Error(_) => OpCode::Error.code(),
        }
    }
}

/// A successful reply body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// delete, setWatches, auth, ping, check, removeWatches, closeSession…
    Empty,
    /// create, sync.
    Path(String),
    /// create2 / createContainer / createTTL.
    PathStat(String, Stat),
    /// exists, setData, setACL.
    Stat(Stat),
    /// getData (and reconfig / getConfig); `None` is null data.
    Data(Option<Vec<u8>>, Stat),
    Acl(Vec<Acl>, Stat),
    Children(Vec<String>),
    Children2(Vec<String>, Stat),
    Multi(Vec<MultiResult>),
    /// getEphemerals.
    Strings(Vec<String>),
    /// getAllChildrenNumber.
    Number(i32),
    WhoAmI(Vec<ClientInfo>),
}

impl Response {
    pub fn encode(&self, w: &mut Writer) {
        match self {
            Response::Empty => {}
            Response::Path(p) => w.write_string(p),
            Response::PathStat(p, s) => {
                w.write_string(p);
                s.write(w);
            }
            Response::Stat(s) => s.write(w),
            Response::Data(d, s) => {
                w.write_opt_buffer(d.as_deref());
                s.write(w);
            }
            Response::Acl(a, s) => {
                write_acls(w, a);
                s.write(w);
            }
            Response::Children(c) | Response::Strings(c) => w.write_string_vec(c),
            Response::Children2(c, s) => {
                w.write_string_vec(c);
                s.write(w);
            }
            Response::Multi(results) => {
                for res in results {
                    let err = match res {
                        MultiResult::Error(e) => *e,
                        _ => 0,
                    };
                    MultiHeader {
                        op: res.opcode(),
                        done: false,
                        err,
                    }
                    .write(w);
                    match res {
                        MultiResult::Create(p) => w.write_string(p),
                        MultiResult::Create2(p, s) => {
                            w.write_string(p);
                            s.write(w);
                        }
                        MultiResult::Delete | MultiResult::Check => {}
                        MultiResult::SetData(s) => s.write(w),
                        MultiResult::GetData(d, s) => {
                            w.write_opt_buffer(d.as_deref());
                            s.write(w);
                        }
                        MultiResult::GetChildren(c) => w.write_string_vec(c),
                        MultiResult::Error(e) => w.write_i32(*e),
                    }
                }
                MultiHeader::END.write(w);
            }
            Response::Number(n) => w.write_i32(*n),
            Response::WhoAmI(infos) => w.write_vec(infos, |w, i| i.write(w)),
        }
    }

    /// Decodes a successful reply to a request with opcode `op` (client side: tests, bench, CLI).
    pub fn decode(op: OpCode, r: &mut Reader<'_>) -> Result<Response, DecodeError> {
        use OpCode::*;
        Ok(match op {
            Create | Sync => Response::Path(r.read_string()?),
            Create2 | CreateContainer | CreateTtl => {
                Response::PathStat(r.read_string()?, Stat::read(r)?)
            }
            Exists | SetData | SetAcl => Response::Stat(Stat::read(r)?),
            GetData | Reconfig => Response::Data(r.read_opt_buffer()?, Stat::read(r)?),
            GetAcl => Response::Acl(read_acls(r)?, Stat::read(r)?),
            GetChildren => Response::Children(r.read_string_vec()?),
            GetChildren2 => Response::Children2(r.read_string_vec()?, Stat::read(r)?),
            GetEphemerals => Response::Strings(r.read_string_vec()?),
            GetAllChildrenNumber => Response::Number(r.read_i32()?),
            WhoAmI => Response::WhoAmI(r.read_vec(8, ClientInfo::read)?),
            Multi | MultiRead => Response::Multi(read_multi_results(r)?),
            _ => Response::Empty,
        })
    }
}

fn read_multi_results(r: &mut Reader<'_>) -> Result<Vec<MultiResult>, DecodeError> {
    let mut out = Vec::new();
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            return Ok(out);
        }
        let op = OpCode::from_code(h.op).ok_or(DecodeError::UnknownOpCode(h.op))?;
        out.push(match op {
            OpCode::Create => MultiResult::Create(r.read_string()?),
            OpCode::Create2 => MultiResult::Create2(r.read_string()?, Stat::read(r)?),
            OpCode::Delete => MultiResult::Delete,
            OpCode::SetData => MultiResult::SetData(Stat::read(r)?),
            OpCode::Check => MultiResult::Check,
            OpCode::GetData => MultiResult::GetData(r.read_opt_buffer()?, Stat::read(r)?),
            OpCode::GetChildren => MultiResult::GetChildren(r.read_string_vec()?),
            OpCode::Error => MultiResult::Error(r.read_i32()?),
            _ => return Err(DecodeError::UnknownOpCode(h.op)),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(op: OpCode, rsp: Response) {
        let mut w = Writer::new();
        rsp.encode(&mut w);
        let b = w.into_inner();
        let mut r = Reader::new(&b);
        assert_eq!(Response::decode(op, &mut r).unwrap(), rsp, "{op:?}");
        r.finish().unwrap();
    }

    #[test]
    fn every_response_round_trips() {
        let st = Stat {
            czxid: 5,
            num_children: 2,
            ..Stat::default()
        };
        round_trip(OpCode::Delete, Response::Empty);
        round_trip(OpCode::Create, Response::Path("/a".into()));
        round_trip(OpCode::Create2, Response::PathStat("/a".into(), st));
        round_trip(OpCode::Exists, Response::Stat(st));
        round_trip(OpCode::GetData, Response::Data(Some(vec![1, 2, 3]), st));
        round_trip(OpCode::GetAcl, Response::Acl(Acl::open_unsafe(), st));
        round_trip(OpCode::GetChildren, Response::Children(vec!["a".into()]));
        round_trip(
            OpCode::GetChildren2,
            Response::Children2(vec!["a".into(), "b".into()], st),
        );
        round_trip(OpCode::GetEphemerals, Response::Strings(vec!["/e".into()]));
        round_trip(OpCode::GetAllChildrenNumber, Response::Number(42));
        round_trip(
            OpCode::WhoAmI,
            Response::WhoAmI(vec![ClientInfo {
                auth_scheme: "ip".into(),
                user: "127.0.0.1".into(),
            }]),
        );
        round_trip(
            OpCode::Multi,
            Response::Multi(vec![
                MultiResult::Create("/a".into()),
                MultiResult::Create2("/b".into(), st),
                MultiResult::Delete,
                MultiResult::SetData(st),
                MultiResult::Check,
                MultiResult::Error(-101),
            ]),
        );
        round_trip(
            OpCode::MultiRead,
            Response::Multi(vec![
                MultiResult::GetData(Some(vec![9]), st),
                MultiResult::GetChildren(vec![]),
            ]),
        );
    }

    #[test]
    fn golden_multi_error_result() {
        let mut w = Writer::new();
        Response::Multi(vec![MultiResult::Error(-2), MultiResult::Error(-101)]).encode(&mut w);
        assert_eq!(
            w.into_inner(),
            vec![
                255, 255, 255, 255, 0, 255, 255, 255, 254, 255, 255, 255, 254, // rolled back
                255, 255, 255, 255, 0, 255, 255, 255, 155, 255, 255, 255, 155, // NoNode
                255, 255, 255, 255, 1, 255, 255, 255, 255 // end
            ]
        );
    }
}
