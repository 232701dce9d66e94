//! The enforced chroot on the wire: every path a tenant-bound request carries
//! goes through [`request_in`] before anything runs, and every path a reply or
//! event carries back through [`reply_out`] / [`corral_tenant::event_path`].
//!
//! Invalid client paths never reach the tree: a top-level one is refused with
//! `BadArguments`; inside a write multi it becomes the empty path, which prep
//! refuses with `BadArguments` at that op exactly as it refuses an invalid path
//! from an untenanted client (so the multi's per-op results keep their shape).
//! No invalid client path is ever joined under the root, so `x` can never
//! become the sibling `/tenants/ax`.

use corral_proto::request::{PathWatch, SetWatches};
use corral_proto::{CreateMode, ErrorCode, MultiOp, MultiResult, OpCode, Reader, Record};
use corral_proto::{ReplyHeader, Request, Response};
use corral_tenant::chroot::HIDDEN_PATH;
use corral_tenant::{paths_to_inner, to_inner, to_inner_sequential, to_outer};

type Result<T> = std::result::Result<T, ErrorCode>;

/// ZooKeeper keys its root as "", so reads of "" see "/" (as `read` aliases
/// them for untenanted clients).
fn alias(p: &str) -> &str {
    if p.is_empty() {
        "/"
    } else {
        p
    }
}

fn path_watch(root: &str, pw: PathWatch) -> Result<PathWatch> {
    Ok(PathWatch {
        path: to_inner(root, alias(&pw.path))?,
        watch: pw.watch,
    })
}

fn is_sequential(flags: i32) -> bool {
    CreateMode::from_flags(flags).is_some_and(|m| m.is_sequential())
}

fn create_path(root: &str, path: &str, flags: i32) -> Result<String> {
    if is_sequential(flags) {
        to_inner_sequential(root, path)
    } else {
        to_inner(root, path)
    }
}

/// A delete may not name the client's `/`: that is the tenant root, which
/// belongs to the operator (ZooKeeper refuses to delete `/` the same way).
fn delete_path(root: &str, path: &str) -> Result<String> {
    if path == "/" {
        return Err(ErrorCode::BadArguments);
    }
    to_inner(root, path)
}

/// One op of a write multi; an invalid path becomes "" (see the module docs).
fn multi_op(root: &str, op: MultiOp) -> MultiOp {
    let mut op = op;
    let inner = match &op {
        MultiOp::Create(_, c) => create_path(root, &c.path, c.flags),
        MultiOp::Delete(d) => delete_path(root, &d.path),
        other => to_inner(root, other.path()),
    };
    *op.path_mut() = inner.unwrap_or_default();
    op
}

/// Translates a request of a session bound to the namespace at `root`.
pub fn request_in(root: &str, req: Request) -> Result<Request> {
    Ok(match req {
        Request::Create(op, mut c) => {
            c.path = create_path(root, &c.path, c.flags)?;
            Request::Create(op, c)
        }
        Request::Delete(mut d) => {
            d.path = delete_path(root, &d.path)?;
            Request::Delete(d)
        }
        Request::DeleteContainer(p) => Request::DeleteContainer(delete_path(root, &p)?),
        Request::Exists(pw) => Request::Exists(path_watch(root, pw)?),
        Request::GetData(pw) => Request::GetData(path_watch(root, pw)?),
        Request::GetChildren(pw) => Request::GetChildren(path_watch(root, pw)?),
        Request::GetChildren2(pw) => Request::GetChildren2(path_watch(root, pw)?),
        Request::SetData(mut s) => {
            s.path = to_inner(root, &s.path)?;
            Request::SetData(s)
        }
        Request::GetAcl(p) => Request::GetAcl(to_inner(root, alias(&p))?),
        Request::SetAcl(mut s) => {
            s.path = to_inner(root, &s.path)?;
            Request::SetAcl(s)
        }
        Request::Sync(p) => Request::Sync(to_inner(root, alias(&p))?),
        Request::Check(mut c) => {
            c.path = to_inner(root, &c.path)?;
            Request::Check(c)
        }
        Request::Multi(ops) => Request::Multi(ops.into_iter().map(|o| multi_op(root, o)).collect()),
        Request::MultiRead(ops) => {
            let mut out = Vec::with_capacity(ops.len());
            for mut op in ops {
                *op.path_mut() = to_inner(root, op.path())?;
                out.push(op);
            }
            Request::MultiRead(out)
        }
        Request::CheckWatches(mut w) => {
            w.path = to_inner(root, &w.path)?;
            Request::CheckWatches(w)
        }
        Request::RemoveWatches(mut w) => {
            w.path = to_inner(root, &w.path)?;
            Request::RemoveWatches(w)
        }
        Request::SetWatches(sw) => Request::SetWatches(set_watches_in(root, sw)?),
        Request::SetWatches2(sw) => Request::SetWatches2(set_watches_in(root, sw)?),
        Request::GetAllChildrenNumber(p) => {
            Request::GetAllChildrenNumber(to_inner(root, alias(&p))?)
        }
        Request::AddWatch(mut a) => {
            a.path = to_inner(root, &a.path)?;
            Request::AddWatch(a)
        }
        // Reconfiguring the ensemble is the operator's, never a tenant's.
        Request::Reconfig(_) => return Err(ErrorCode::NoAuth),
        // getEphemerals' prefix is filtered on client paths (read does it);
        // the rest carry no path.
        other @ (Request::GetEphemerals(_)
        | Request::Ping
        | Request::Auth(_)
        | Request::Sasl(_)
        | Request::WhoAmI
        | Request::CloseSession) => other,
    })
}

fn set_watches_in(root: &str, sw: SetWatches) -> Result<SetWatches> {
    Ok(SetWatches {
        relative_zxid: sw.relative_zxid,
        data_watches: paths_to_inner(root, &sw.data_watches)?,
        exist_watches: paths_to_inner(root, &sw.exist_watches)?,
        child_watches: paths_to_inner(root, &sw.child_watches)?,
        persistent_watches: paths_to_inner(root, &sw.persistent_watches)?,
        persistent_recursive_watches: paths_to_inner(root, &sw.persistent_recursive_watches)?,
    })
}

/// A server path as the client sees it. Paths handed out by prep for this
/// client's own request are always inside its root; should one not be, it is
/// shown as `<hidden>` rather than leaked.
pub fn path_out(root: &str, server_path: &str) -> String {
    to_outer(root, server_path).unwrap_or_else(|| HIDDEN_PATH.to_string())
}

/// Whether a reply to `op` carries paths that [`reply_out`] must translate.
pub fn reply_has_paths(op: OpCode) -> bool {
    matches!(
        op,
        OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl
    ) || op == OpCode::Multi
}

/// Rewrites the reply frame of a write with opcode `op` so that created paths
/// read in the client's view. Error replies carry no body and pass unchanged.
pub fn reply_out(root: &str, op: OpCode, frame: Vec<u8>) -> Vec<u8> {
    if !reply_has_paths(op) || frame.len() < 4 {
        return frame;
    }
    let mut r = Reader::new(&frame[4..]);
    let Ok(hdr) = ReplyHeader::read(&mut r) else {
        return frame;
    };
    if hdr.err != 0 {
        return frame;
    }
    let Ok(body) = Response::decode(op, &mut r) else {
        // We encoded this frame ourselves; failing to read it back is a bug.
        debug_assert!(false, "cannot decode our own {op:?} reply");
        return frame;
    };
    let body = match body {
        Response::Path(p) => Response::Path(path_out(root, &p)),
        Response::PathStat(p, s) => Response::PathStat(path_out(root, &p), s),
        Response::Multi(results) => Response::Multi(
            results
                .into_iter()
                .map(|res| match res {
                    MultiResult::Create(p) => MultiResult::Create(path_out(root, &p)),
                    MultiResult::Create2(p, s) => MultiResult::Create2(path_out(root, &p), s),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    };
    crate::apply::reply_frame(hdr.xid, hdr.zxid, 0, Some(&body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::request::{CreateRequest, DeleteRequest};
    use corral_proto::Acl;

    const ROOT: &str = "/tenants/a";

    fn create(path: &str, flags: i32) -> Request {
        Request::Create(
            OpCode::Create,
            CreateRequest {
                path: path.into(),
                data: None,
                acl: Acl::open_unsafe(),
                flags,
                ttl: -1,
            },
        )
    }

    #[test]
    fn invalid_paths_never_join_under_the_root() {
        // Goal: relative, dotted, empty-segment and unrooted paths are refused,
        // never turned into a sibling namespace such as /tenants/ax.
        for bad in ["x", "/..", "/a/../../b", "/./x", "//x", "/x/", "", "/\u{0}"] {
            let r = request_in(ROOT, create(bad, 0));
            assert_eq!(r, Err(ErrorCode::BadArguments), "{bad:?}");
        }
        let r = request_in(
            ROOT,
            Request::SetData(corral_proto::request::SetDataRequest {
                path: "b".into(),
                data: None,
                version: -1,
            }),
        );
        assert_eq!(r, Err(ErrorCode::BadArguments));
    }

    #[test]
    fn multi_keeps_its_shape_with_a_bad_op() {
        // Goal: an invalid path inside a multi becomes "" (refused by prep at
        // that op), while the valid ops are translated under the root.
        let ops = vec![
            MultiOp::Create(
                OpCode::Create,
                CreateRequest {
                    path: "/ok".into(),
                    data: None,
                    acl: Acl::open_unsafe(),
                    flags: 0,
                    ttl: -1,
                },
            ),
            MultiOp::Delete(DeleteRequest {
                path: "../x".into(),
                version: -1,
            }),
            MultiOp::Delete(DeleteRequest {
                path: "/".into(),
                version: -1,
            }),
        ];
        let Ok(Request::Multi(out)) = request_in(ROOT, Request::Multi(ops)) else {
            panic!("multi translates");
        };
        let paths: Vec<&str> = out.iter().map(|o| o.path()).collect();
        assert_eq!(paths, vec!["/tenants/a/ok", "", ""]);
    }

    #[test]
    fn sequential_under_client_root_lands_under_the_tenant_root() {
        // Goal: a sequential create of "/" prefixes the root with a slash, and
        // the empty-path read alias means the root itself.
        let Ok(Request::Create(_, c)) = request_in(ROOT, create("/", 2)) else {
            panic!("sequential create translates");
        };
        assert_eq!(c.path, "/tenants/a/");
        let r = request_in(
            ROOT,
            Request::GetChildren(PathWatch {
                path: String::new(),
                watch: false,
            }),
        );
        assert_eq!(
            r,
            Ok(Request::GetChildren(PathWatch {
                path: ROOT.into(),
                watch: false
            }))
        );
        assert_eq!(
            request_in(
                ROOT,
                Request::Delete(DeleteRequest {
                    path: "/".into(),
                    version: -1
                })
            ),
            Err(ErrorCode::BadArguments)
        );
    }

    #[test]
    fn create_replies_read_in_the_client_view() {
        // Goal: reply_out rewrites create, create2 and multi create paths and
        // leaves error replies untouched.
        let f = crate::apply::reply_frame(5, 9, 0, Some(&Response::Path("/tenants/a/x".into())));
        let out = reply_out(ROOT, OpCode::Create, f);
        let mut r = Reader::new(&out[4..]);
        let h = ReplyHeader::read(&mut r).expect("header");
        assert_eq!((h.xid, h.zxid), (5, 9));
        assert_eq!(
            Response::decode(OpCode::Create, &mut r).expect("body"),
            Response::Path("/x".into())
        );
        let multi = Response::Multi(vec![
            MultiResult::Create("/tenants/a".into()),
            MultiResult::Create2("/tenants/ab/leak".into(), Default::default()),
            MultiResult::Delete,
        ]);
        let out = reply_out(
            ROOT,
            OpCode::Multi,
            crate::apply::reply_frame(1, 1, 0, Some(&multi)),
        );
        let mut r = Reader::new(&out[4..]);
        ReplyHeader::read(&mut r).expect("header");
        assert_eq!(
            Response::decode(OpCode::Multi, &mut r).expect("body"),
            Response::Multi(vec![
                MultiResult::Create("/".into()),
                MultiResult::Create2(HIDDEN_PATH.into(), Default::default()),
                MultiResult::Delete,
            ])
        );
        let err = crate::apply::reply_frame(2, 1, -110, None);
        assert_eq!(reply_out(ROOT, OpCode::Create, err.clone()), err);
    }
}
