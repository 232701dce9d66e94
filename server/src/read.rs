//! Reads run against the local tree: no network hop, on every role. A watch
//! is registered while the tree read lock is held, so no change can slip
//! between the read and its watch.

use corral_auth::Principal;
use corral_proto::opcode::{add_watch_mode, perms};
use corral_proto::{ErrorCode, MultiOp, MultiResult, Request, Response};
use corral_store::ensemble::CONFIG_NODE;
use corral_store::DataTree;

use crate::state::Shared;
use crate::tenancy::{is_reserved, is_super, Scope};
use crate::watch::{ConnId, WatchKind};

type ReadResult = Result<Response, ErrorCode>;

/// One read in the context of a connection.
pub struct ReadCtx<'a> {
    pub shared: &'a Shared,
    pub conn: ConnId,
    pub session_id: i64,
    pub principals: &'a [Principal],
    /// The connection's scope. A tenant-bound request's paths are already
    /// translated into the namespace; replies are translated back here.
    pub scope: &'a Scope,
}

fn allowed(acl: &[corral_proto::Acl], perm: i32, principals: &[Principal]) -> bool {
    corral_auth::check(acl, perm, principals)
}

impl ReadCtx<'_> {
    /// Executes a read request; returns (zxid for the header, result).
    pub fn run(&self, req: &Request) -> (i64, ReadResult) {
        self.run_locked(req, || {})
    }

    /// As [`ReadCtx::run`], calling `under_lock` while the tree read lock is
    /// held: a connection counts its queued watch events there, because
    /// apply queues events under the write lock, so exactly those events
    /// are for changes this read sees.
    pub fn run_locked(&self, req: &Request, under_lock: impl FnOnce()) -> (i64, ReadResult) {
        let Ok(tree) = self.shared.tree.read() else {
            return (0, Err(ErrorCode::SystemError));
        };
        under_lock();
        let zxid = tree.last_zxid();
        let aliased = root_alias(req);
        let r = match aliased.as_ref() {
            Request::Exists(p) => self.exists(&tree, &p.path, p.watch),
            Request::GetData(p) => self.get_data(&tree, &p.path, p.watch),
            Request::GetChildren(p) => self
                .children(&tree, &p.path, p.watch)
                .map(|(c, _)| Response::Children(c)),
            Request::GetChildren2(p) => self
                .children(&tree, &p.path, p.watch)
                .map(|(c, s)| Response::Children2(c, s)),
            Request::GetAcl(p) => self.get_acl(&tree, p),
            Request::GetAllChildrenNumber(p) => self.all_children_number(&tree, p),
            Request::GetEphemerals(prefix) => Ok(self.ephemerals(&tree, prefix)),
            Request::MultiRead(ops) => Ok(self.multi_read(&tree, ops)),
            Request::Sync(p) => Ok(Response::Path(self.path_out(p))),
            Request::AddWatch(a) => self.add_watch(&a.path, a.mode),
            Request::WhoAmI => Ok(Response::WhoAmI(self.who_am_i())),
            _ => Err(ErrorCode::Unimplemented),
        };
        (zxid, r)
    }

    /// Registers a watch, within the tenant's `max_watches` (a watch on a
    /// path the connection already watches is not a new one).
    fn watch(&self, path: &str, kind: WatchKind) -> Result<(), ErrorCode> {
        let Ok(mut w) = self.shared.watches.lock() else {
            return Ok(());
        };
        if let Some(t) = self.scope.tenant() {
            let max = self
                .shared
                .tenancy
                .directory()
                .get(&t.name)
                .and_then(|t| t.quotas.max_watches);
            if let Some(max) = max {
                if !w.is_watching(self.conn, path) && w.group_watch_count(&t.name) >= max {
                    return Err(ErrorCode::QuotaExceeded);
                }
            }
        }
        w.add(self.conn, path, kind);
        Ok(())
    }

    /// corral's reserved subtree is super's alone, whatever its ACLs say.
    fn guard(&self, path: &str) -> Result<(), ErrorCode> {
        if is_reserved(path) && !is_super(self.principals) {
            return Err(ErrorCode::NoAuth);
        }
        Ok(())
    }

    /// A server path as this connection sees it.
    fn path_out(&self, path: &str) -> String {
        match self.scope.root() {
            Some(root) => crate::tenancy::translate::path_out(root, path),
            None => path.to_string(),
        }
    }

    /// The session's principals, and its tenant as a `tenant` entry.
    fn who_am_i(&self) -> Vec<corral_proto::ClientInfo> {
        let mut info = corral_auth::client_info(self.principals);
        if let Some(t) = self.scope.tenant() {
            info.push(corral_proto::ClientInfo {
                auth_scheme: "tenant".into(),
                user: t.name.clone(),
            });
        }
        info
    }

    /// exists checks no ACL, as in ZooKeeper 3.8: existence and Stat are not protected.
    fn exists(&self, tree: &DataTree, path: &str, watch: bool) -> ReadResult {
        if path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        self.guard(path)?;
        let node = tree.get(path);
        if watch {
            self.watch(path, WatchKind::Data)?;
        }
        match node {
            Some(n) => Ok(Response::Stat(n.stat())),
            None => Err(ErrorCode::NoNode),
        }
    }

    fn get_data(&self, tree: &DataTree, path: &str, watch: bool) -> ReadResult {
        self.guard(path)?;
        let n = tree.get(path).ok_or(ErrorCode::NoNode)?;
        if !allowed(n.acl(), perms::READ, self.principals) {
            return Err(ErrorCode::NoAuth);
        }
        if watch {
            self.watch(path, WatchKind::Data)?;
        }
        // Until a reconfig commits, /zookeeper/config shows the ensemble the
        // node was started with (ZooKeeper writes its static configuration
        // there at startup; here it is not part of the replicated tree).
        if path == CONFIG_NODE && n.data().is_none_or(|d| d.is_empty()) {
            if let Some(e) = &self.shared.opts.ensemble {
                let text = e.to_text().into_bytes();
                let mut stat = n.stat();
                stat.data_length = text.len() as i32;
                return Ok(Response::Data(Some(text), stat));
            }
        }
        Ok(Response::Data(n.data().map(|d| d.to_vec()), n.stat()))
    }

    fn children(
        &self,
        tree: &DataTree,
        path: &str,
        watch: bool,
    ) -> Result<(Vec<String>, corral_proto::Stat), ErrorCode> {
        self.guard(path)?;
        let n = tree.get(path).ok_or(ErrorCode::NoNode)?;
        if !allowed(n.acl(), perms::READ, self.principals) {
            return Err(ErrorCode::NoAuth);
        }
        let stat = n.stat();
        let children = tree.children(path).unwrap_or_default();
        if watch {
            self.watch(path, WatchKind::Child)?;
        }
        Ok((children, stat))
    }

    /// getACL needs READ or ADMIN; without ADMIN digest hashes are masked, as ZooKeeper does.
    fn get_acl(&self, tree: &DataTree, path: &str) -> ReadResult {
        self.guard(path)?;
        let n = tree.get(path).ok_or(ErrorCode::NoNode)?;
        if !allowed(n.acl(), perms::READ, self.principals)
            && !allowed(n.acl(), perms::ADMIN, self.principals)
        {
            return Err(ErrorCode::NoAuth);
        }
        let mut acl: Vec<corral_proto::Acl> = n.acl().to_vec();
        if !allowed(n.acl(), perms::ADMIN, self.principals) {
            for a in &mut acl {
                if a.id.scheme == "digest" {
                    if let Some((user, _)) = a.id.id.split_once(':') {
                        a.id.id = format!("{user}:x");
                    }
                }
            }
        }
        Ok(Response::Acl(acl, n.stat()))
    }

    fn all_children_number(&self, tree: &DataTree, path: &str) -> ReadResult {
        self.guard(path)?;
        let n = tree.get(path).ok_or(ErrorCode::NoNode)?;
        if !allowed(n.acl(), perms::READ, self.principals) {
            return Err(ErrorCode::NoAuth);
        }
        Ok(Response::Number(
            tree.descendant_count(path).unwrap_or(0) as i32
        ))
    }

    fn ephemerals(&self, tree: &DataTree, prefix: &str) -> Response {
        let all = tree.ephemerals(self.session_id);
        if let Some(root) = self.scope.root() {
            return Response::Strings(corral_tenant::ephemerals_to_outer(root, prefix, all));
        }
        let p = prefix.trim();
        let list = if p.is_empty() || p == "/" {
            all
        } else {
            all.into_iter().filter(|e| e.starts_with(prefix)).collect()
        };
        Response::Strings(list)
    }

    fn multi_read(&self, tree: &DataTree, ops: &[MultiOp]) -> Response {
        let results = ops
            .iter()
            .map(|op| match op {
                MultiOp::GetData(p) => match self.get_data(tree, p, false) {
                    Ok(Response::Data(d, s)) => MultiResult::GetData(d, s),
                    Ok(_) => MultiResult::Error(ErrorCode::SystemError.code()),
                    Err(e) => MultiResult::Error(e.code()),
                },
                MultiOp::GetChildren(p) => match self.children(tree, p, false) {
                    Ok((c, _)) => MultiResult::GetChildren(c),
                    Err(e) => MultiResult::Error(e.code()),
                },
                _ => MultiResult::Error(ErrorCode::BadArguments.code()),
            })
            .collect();
        Response::Multi(results)
    }

    /// addWatch replies with an ErrorResponse(0) body, as ZooKeeper does.
    fn add_watch(&self, path: &str, mode: i32) -> ReadResult {
        let kind = match mode {
            add_watch_mode::PERSISTENT => WatchKind::Persistent,
            add_watch_mode::PERSISTENT_RECURSIVE => WatchKind::PersistentRecursive,
            _ => return Err(ErrorCode::BadArguments),
        };
        self.guard(path)?;
        self.watch(path, kind)?;
        Ok(Response::Number(0))
    }
}

/// ZooKeeper keys its root as "", so reads of "" see "/"; clients can tell.
fn root_alias(req: &Request) -> std::borrow::Cow<'_, Request> {
    use corral_proto::request::PathWatch;
    let fix = |p: &PathWatch| PathWatch {
        path: "/".into(),
        watch: p.watch,
    };
    std::borrow::Cow::Owned(match req {
        Request::Exists(p) if p.path.is_empty() => Request::Exists(fix(p)),
        Request::GetData(p) if p.path.is_empty() => Request::GetData(fix(p)),
        Request::GetChildren(p) if p.path.is_empty() => Request::GetChildren(fix(p)),
        Request::GetChildren2(p) if p.path.is_empty() => Request::GetChildren2(fix(p)),
        Request::GetAcl(p) if p.is_empty() => Request::GetAcl("/".into()),
        Request::GetAllChildrenNumber(p) if p.is_empty() => {
            Request::GetAllChildrenNumber("/".into())
        }
        _ => return std::borrow::Cow::Borrowed(req),
    })
}

/// setWatches: re-arms watches after a reconnect, firing what the client
/// missed since `relative_zxid`. Paths are the server's (a tenant-bound
/// connection's are translated before, its events after). Watches in the
/// reserved subtree are dropped unless the session is super; a tenant whose
/// `max_watches` the new watches would exceed gets `QuotaExceeded` and no
/// watch at all.
pub fn set_watches(
    shared: &Shared,
    conn: ConnId,
    sw: &corral_proto::request::SetWatches,
    scope: &Scope,
    principals: &[Principal],
) -> Result<Vec<corral_proto::WatcherEvent>, ErrorCode> {
    use corral_proto::opcode::{event_type, keeper_state};
    let mut events = Vec::new();
    let Ok(tree) = shared.tree.read() else {
        return Ok(events);
    };
    let Ok(mut w) = shared.watches.lock() else {
        return Ok(events);
    };
    let visible = |p: &String| !is_reserved(p) || is_super(principals);
    let filtered;
    let sw = if [
        &sw.data_watches,
        &sw.exist_watches,
        &sw.child_watches,
        &sw.persistent_watches,
        &sw.persistent_recursive_watches,
    ]
    .iter()
    .all(|l| l.iter().all(visible))
    {
        sw
    } else {
        let keep = |l: &Vec<String>| l.iter().filter(|p| visible(p)).cloned().collect();
        filtered = corral_proto::request::SetWatches {
            relative_zxid: sw.relative_zxid,
            data_watches: keep(&sw.data_watches),
            exist_watches: keep(&sw.exist_watches),
            child_watches: keep(&sw.child_watches),
            persistent_watches: keep(&sw.persistent_watches),
            persistent_recursive_watches: keep(&sw.persistent_recursive_watches),
        };
        &filtered
    };
    if let Some(t) = scope.tenant() {
        let max = shared
            .tenancy
            .directory()
            .get(&t.name)
            .and_then(|t| t.quotas.max_watches);
        if let Some(max) = max {
            let new: std::collections::HashSet<&String> = [
                &sw.data_watches,
                &sw.exist_watches,
                &sw.child_watches,
                &sw.persistent_watches,
                &sw.persistent_recursive_watches,
            ]
            .into_iter()
            .flatten()
            .filter(|p| !w.is_watching(conn, p))
            .collect();
            let would_be = w.group_watch_count(&t.name) + new.len() as u64;
            if would_be > max {
                return Err(ErrorCode::QuotaExceeded);
            }
        }
    }
    let ev = |t: i32, p: &str| corral_proto::WatcherEvent {
        event_type: t,
        state: keeper_state::SYNC_CONNECTED,
        path: p.to_string(),
    };
    let rz = sw.relative_zxid;
    for p in &sw.data_watches {
        match tree.get(p) {
            None => events.push(ev(event_type::NODE_DELETED, p)),
            Some(n) if n.stat().mzxid > rz => events.push(ev(event_type::NODE_DATA_CHANGED, p)),
            Some(_) => w.add(conn, p, WatchKind::Data),
        }
    }
    for p in &sw.exist_watches {
        match tree.get(p) {
            Some(_) => events.push(ev(event_type::NODE_CREATED, p)),
            None => w.add(conn, p, WatchKind::Data),
        }
    }
    for p in &sw.child_watches {
        match tree.get(p) {
            None => events.push(ev(event_type::NODE_DELETED, p)),
            Some(n) if n.stat().pzxid > rz => events.push(ev(event_type::NODE_CHILDREN_CHANGED, p)),
            Some(_) => w.add(conn, p, WatchKind::Child),
        }
    }
    for p in &sw.persistent_watches {
        w.add(conn, p, WatchKind::Persistent);
    }
    for p in &sw.persistent_recursive_watches {
        w.add(conn, p, WatchKind::PersistentRecursive);
    }
    Ok(events)
}

/// checkWatches / removeWatches against this connection's watches.
pub fn watches_op(
    shared: &Shared,
    conn: ConnId,
    path: &str,
    wtype: i32,
    remove: bool,
) -> Result<(), ErrorCode> {
    let Ok(mut w) = shared.watches.lock() else {
        return Err(ErrorCode::SystemError);
    };
    let hit = if remove {
        w.remove(conn, path, wtype)
    } else {
        w.contains(conn, path, wtype)
    };
    if hit {
        Ok(())
    } else {
        Err(ErrorCode::NoWatcher)
    }
}
