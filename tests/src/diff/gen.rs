//! The seeded operation generator.
//!
//! Paths come from a small namespace under the seed's root so conflicts are frequent:
//! `R`, `R/{a,b,c}`, `R/{a,b,c}/{x,y}`, `R/{a,b,c}/{x,y}/{p,q}`. Container nodes are only
//! ever created at the deepest level (`p`, `q`), where nothing can be created below
//! them, and TTLs are at least an hour: so no server's background reaper ever has
//! work during a run, and both servers see exactly the same sequence of txns.

use super::watches::{WatchAdd, WatchModel};
use corral_proto::opcode::{add_watch_mode, perms, watcher_type};
use corral_proto::request::{
    AddWatchRequest, AuthPacket, CheckVersionRequest, CreateRequest, DeleteRequest, PathWatch,
    ReconfigRequest, SetAclRequest, SetDataRequest, SetWatches, WatchesRequest,
};
use corral_proto::{Acl, MultiOp, OpCode, Request, WatcherEvent};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

/// Digest ids as ZooKeeper writes them: `user:base64(sha1(user:password))`.
pub const ALICE: (&str, &str) = ("alice:alice-pw", "alice:SQICbGEP3vUd4FffsXSLZ8/1XtI=");
pub const BOB: (&str, &str) = ("bob:bob-pw", "bob:EXcpcQQk6JBIDFnxSqkpDLIhkxw=");
/// kazoo's super user, matching `zk::SUPER_DIGEST`.
pub const SUPER: &str = "super:test";

/// One step of a differential run.
#[derive(Debug, Clone)]
pub enum Op {
    /// A request on session slot `s`.
    Req { s: usize, req: Request },
    /// setWatches2 (xid -8) with `relative_zxid = base + offset` on each server.
    SetWatches {
        s: usize,
        offset: i64,
        watches: SetWatches,
    },
    /// closeSession on slot `s`, then a new session in that slot.
    Reopen { s: usize },
    /// Drop the TCP connection of slot `s` and resume the session by id and
    /// password (first with a wrong password, if asked).
    Reconnect { s: usize, wrong_passwd_first: bool },
    /// An opcode ZooKeeper does not know, with an empty body.
    Unknown { s: usize, op: i32 },
}

impl Op {
    pub fn session(&self) -> usize {
        match self {
            Op::Req { s, .. }
            | Op::SetWatches { s, .. }
            | Op::Reopen { s }
            | Op::Reconnect { s, .. }
            | Op::Unknown { s, .. } => *s,
        }
    }

    /// A short kind name for statistics.
    pub fn kind(&self) -> String {
        match self {
            Op::Req { req, .. } => match req {
                Request::Create(op, c) => format!("{op:?}/flags{}", c.flags),
                Request::Auth(_) => "addauth".into(),
                r => format!("{:?}", r.opcode()),
            },
            Op::SetWatches { .. } => "SetWatches2".into(),
            Op::Reopen { .. } => "CloseSession+Reopen".into(),
            Op::Reconnect { .. } => "Reconnect".into(),
            Op::Unknown { op, .. } => format!("UnknownOp{op}"),
        }
    }

    /// A compact description for divergence reports.
    pub fn describe(&self) -> String {
        match self {
            Op::Req { s, req } => format!("s{s} {}", describe_req(req)),
            Op::SetWatches { s, offset, watches } => {
                format!("s{s} setWatches2 rel=base{offset:+} {watches:?}")
            }
            Op::Reopen { s } => format!("s{s} closeSession + new session"),
            Op::Reconnect {
                s,
                wrong_passwd_first,
            } => format!("s{s} drop TCP + resume (wrong password first: {wrong_passwd_first})"),
            Op::Unknown { s, op } => format!("s{s} unknown opcode {op}"),
        }
    }
}

fn describe_data(d: &Option<Vec<u8>>) -> String {
    let Some(d) = d else {
        return "null".into();
    };
    if d.len() > 24 {
        format!("<{} bytes>", d.len())
    } else {
        format!("{:?}", String::from_utf8_lossy(d))
    }
}

fn describe_acl(acl: &[Acl]) -> String {
    let v: Vec<String> = acl
        .iter()
        .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms))
        .collect();
    format!("[{}]", v.join(","))
}

fn describe_multi_op(op: &MultiOp) -> String {
    match op {
        MultiOp::Create(code, c) => format!(
            "{code:?}({} flags={} data={} acl={})",
            c.path,
            c.flags,
            describe_data(&c.data),
            describe_acl(&c.acl)
        ),
        MultiOp::Delete(d) => format!("Delete({} v{})", d.path, d.version),
        MultiOp::SetData(s) => format!(
            "SetData({} {} v{})",
            s.path,
            describe_data(&s.data),
            s.version
        ),
        MultiOp::Check(c) => format!("Check({} v{})", c.path, c.version),
        MultiOp::GetData(p) => format!("GetData({p})"),
        MultiOp::GetChildren(p) => format!("GetChildren({p})"),
    }
}

pub fn describe_req(req: &Request) -> String {
    match req {
        Request::Create(code, c) => format!(
            "{code:?} {:?} flags={} ttl={} data={} acl={}",
            c.path,
            c.flags,
            c.ttl,
            describe_data(&c.data),
            describe_acl(&c.acl)
        ),
        Request::Delete(d) => format!("Delete {:?} v{}", d.path, d.version),
        Request::SetData(s) => format!(
            "SetData {:?} {} v{}",
            s.path,
            describe_data(&s.data),
            s.version
        ),
        Request::SetAcl(s) => format!(
            "SetACL {:?} {} v{}",
            s.path,
            describe_acl(&s.acl),
            s.version
        ),
        Request::Multi(ops) | Request::MultiRead(ops) => {
            let v: Vec<String> = ops.iter().map(describe_multi_op).collect();
            format!("{:?} [{}]", req.opcode(), v.join(", "))
        }
        Request::Auth(a) => format!(
            "addauth {} {:?}",
            a.scheme,
            String::from_utf8_lossy(&a.auth)
        ),
        r => format!("{r:?}"),
    }
}

/// Relative weights of the operation kinds (tunable).
#[derive(Debug, Clone)]
pub struct Weights {
    pub create: u32,
    pub create2: u32,
    pub create_container: u32,
    pub create_ttl: u32,
    pub delete: u32,
    pub exists: u32,
    pub get_data: u32,
    pub set_data: u32,
    pub get_children: u32,
    pub get_children2: u32,
    pub get_acl: u32,
    pub set_acl: u32,
    pub check: u32,
    pub multi: u32,
    pub multi_read: u32,
    pub sync: u32,
    pub get_ephemerals: u32,
    pub get_all_children_number: u32,
    pub add_watch: u32,
    pub remove_watches: u32,
    pub check_watches: u32,
    pub who_am_i: u32,
    pub add_auth: u32,
    pub invalid_path: u32,
    pub system_read: u32,
    pub set_watches: u32,
    pub reopen: u32,
    pub reconnect: u32,
    pub reconfig: u32,
    pub unknown_op: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            create: 20,
            create2: 16,
            create_container: 4,
            create_ttl: 6,
            delete: 16,
            exists: 10,
            get_data: 10,
            set_data: 16,
            get_children: 6,
            get_children2: 6,
            get_acl: 5,
            set_acl: 6,
            // ZooKeeper 3.8 never answers a standalone check (opcode 13 outside a
            // multi): it preps a txn but FinalRequestProcessor sends no reply. Not
            // comparable, so off by default; check still runs inside multi.
            check: 0,
            multi: 12,
            multi_read: 5,
            sync: 3,
            get_ephemerals: 3,
            get_all_children_number: 3,
            add_watch: 5,
            remove_watches: 4,
            check_watches: 3,
            who_am_i: 2,
            add_auth: 3,
            invalid_path: 4,
            system_read: 2,
            set_watches: 2,
            reopen: 2,
            reconnect: 2,
            reconfig: 1,
            // ZooKeeper 3.8 itself is racy here: it may or may not answer Unimplemented
            // (and may or may not consume a zxid) before closing the connection.
            unknown_op: 0,
        }
    }
}

/// The watches a setWatches request would add, in the order ZooKeeper applies them.
fn set_watches_adds(w: &SetWatches) -> Vec<(&str, WatchAdd)> {
    let lists: [(&Vec<String>, WatchAdd); 5] = [
        (&w.data_watches, WatchAdd::Data),
        (&w.exist_watches, WatchAdd::Data),
        (&w.child_watches, WatchAdd::Child),
        (&w.persistent_watches, WatchAdd::Persistent),
        (&w.persistent_recursive_watches, WatchAdd::Recursive),
    ];
    lists
        .iter()
        .flat_map(|(l, add)| l.iter().map(move |p| (p.as_str(), *add)))
        .collect()
}

const L1: [&str; 3] = ["a", "b", "c"];
const L2: [&str; 2] = ["x", "y"];
const L3: [&str; 2] = ["p", "q"];

/// The seeded generator. Sequential names are only known after the fact, so the
/// runner feeds created paths back through [`Gen::observe_created`].
pub struct Gen {
    rng: ChaCha8Rng,
    root: String,
    sessions: usize,
    weights: Weights,
    created_seq: Vec<String>,
    step: u64,
    watches: WatchModel,
    /// Per slot: the digest identities its current connection may hold (addauth).
    auths: Vec<BTreeSet<Vec<u8>>>,
    /// The slot the op being generated runs on.
    cur: usize,
}

impl Gen {
    pub fn new(seed: u64, root: &str, sessions: usize, weights: Weights) -> Gen {
        Gen {
            rng: ChaCha8Rng::seed_from_u64(seed),
            root: root.to_string(),
            sessions,
            weights,
            created_seq: Vec::new(),
            step: 0,
            watches: WatchModel::new(sessions),
            auths: vec![BTreeSet::new(); sessions],
            cur: 0,
        }
    }

    /// Feeds back what the reference server did with `op`: `err` is its reply's error
    /// code (None if there was no reply), `events[s]` what session slot `s` received.
    pub fn observe(&mut self, op: &Op, err: Option<i32>, events: &[Vec<WatcherEvent>]) {
        let accepted = err == Some(0);
        match op {
            Op::Req { s, req } => {
                let s = *s;
                // exists sets its watch on a missing node too; a getData/getChildren
                // NoNode does not, but assuming it did only makes the model stricter.
                let set = accepted || err == Some(corral_proto::ErrorCode::NoNode.code());
                match req {
                    Request::Exists(pw) | Request::GetData(pw) if pw.watch && set => {
                        self.watches.added(s, &pw.path, WatchAdd::Data)
                    }
                    Request::GetChildren(pw) | Request::GetChildren2(pw) if pw.watch && set => {
                        self.watches.added(s, &pw.path, WatchAdd::Child)
                    }
                    Request::AddWatch(a) if accepted => {
                        let add = if a.mode == add_watch_mode::PERSISTENT {
                            WatchAdd::Persistent
                        } else {
                            WatchAdd::Recursive
                        };
                        self.watches.added(s, &a.path, add);
                    }
                    Request::RemoveWatches(w) if accepted => {
                        self.watches.removed(s, &w.path, w.watcher_type)
                    }
                    Request::Auth(a) if accepted => {
                        self.auths[s].insert(a.auth.clone());
                    }
                    _ => {}
                }
            }
            Op::SetWatches { s, watches, .. } => {
                if accepted {
                    for (path, add) in set_watches_adds(watches) {
                        self.watches.added(*s, path, add);
                    }
                }
                // setWatches may fire events at once without touching watches the
                // session already held, so its events prove nothing: skip them.
                return;
            }
            Op::Reopen { s } | Op::Reconnect { s, .. } => {
                self.watches.forget_session(*s);
                self.auths[*s].clear();
            }
            Op::Unknown { .. } => {}
        }
        for (s, evs) in events.iter().enumerate().take(self.sessions) {
            for ev in evs {
                self.watches.delivered(s, ev);
            }
        }
    }

    /// Remembers a sequential node's real name so later ops can target it.
    pub fn observe_created(&mut self, requested: &str, created: &str) {
        if requested != created && created.starts_with(&self.root) {
            if self.created_seq.len() >= 64 {
                self.created_seq.remove(0);
            }
            self.created_seq.push(created.to_string());
        }
    }

    fn pct(&mut self, p: u32) -> bool {
        self.rng.gen_range(0..100) < p
    }

    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v.choose(&mut self.rng).copied().unwrap_or("")
    }

    /// A path of the given depth (0 = the root).
    fn path_at(&mut self, depth: usize) -> String {
        let mut p = self.root.clone();
        let levels: [&[&str]; 3] = [&L1, &L2, &L3];
        for level in levels.iter().take(depth) {
            p.push('/');
            p.push_str(self.pick(level));
        }
        p
    }

    /// Any namespace path, sometimes a known sequential node.
    fn path(&mut self) -> String {
        if !self.created_seq.is_empty() && self.pct(12) {
            let i = self.rng.gen_range(0..self.created_seq.len());
            return self.created_seq[i].clone();
        }
        let d = [0usize, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3];
        let depth = d[self.rng.gen_range(0..d.len())];
        self.path_at(depth)
    }

    /// A path that may get children (never a container level).
    fn parent_path(&mut self) -> String {
        let d = [0usize, 1, 1, 2, 2, 2];
        let depth = d[self.rng.gen_range(0..d.len())];
        self.path_at(depth)
    }

    fn leaf_path(&mut self) -> String {
        self.path_at(3)
    }

    /// Data, sometimes a null buffer (ZooKeeper keeps null distinct from empty).
    fn data(&mut self) -> Option<Vec<u8>> {
        let r = self.rng.gen_range(0..100);
        if r < 4 {
            return None;
        }
        let len = if r < 10 {
            0
        } else if r < 12 {
            self.rng.gen_range(500..1500)
        } else {
            self.rng.gen_range(1..24)
        };
        Some(
            (0..len)
                .map(|_| self.rng.gen_range(b'a'..=b'z'))
                .collect::<Vec<u8>>(),
        )
    }

    fn version(&mut self) -> i32 {
        match self.rng.gen_range(0..20) {
            0..=8 => -1,
            9..=12 => 0,
            13..=15 => 1,
            16..=17 => 2,
            18 => 3,
            _ => self.rng.gen_range(4..1000),
        }
    }

    fn acl(&mut self) -> Vec<Acl> {
        use perms::*;
        match self.rng.gen_range(0..100) {
            0..=64 => Acl::open_unsafe(),
            65..=67 => vec![Acl::new(READ, "world", "anyone")],
            // ZooKeeper 3.8 keeps a connection's identities in a hash set, so an
            // `auth` ACL expands to several digest entries in hash order (not part of
            // the contract): only expand it while the session has at most one identity.
            68..=72 if self.auths[self.cur].len() < 2 => vec![Acl::new(ALL, "auth", "")],
            68..=72 => vec![Acl::new(ALL, "digest", ALICE.1)],
            73..=78 => vec![Acl::new(ALL, "digest", ALICE.1)],
            79..=83 => vec![
                Acl::new(READ | WRITE | CREATE, "digest", BOB.1),
                Acl::new(READ, "world", "anyone"),
            ],
            84..=86 => vec![Acl::new(ALL, "ip", "127.0.0.1")],
            87..=88 => vec![Acl::new(READ | CREATE | DELETE, "ip", "127.0.0.0/8")],
            89..=90 => vec![Acl::new(ALL, "digest", "alice")],
            91..=92 => vec![],
            93 => vec![Acl::new(ALL, "ip", "999.1.1.1")],
            94 => vec![Acl::new(ALL, "foo", "bar")],
            95 => vec![Acl::new(0, "world", "anyone")],
            96..=97 => vec![
                Acl::new(ALL, "digest", ALICE.1),
                Acl::new(ALL, "digest", BOB.1),
            ],
            _ => vec![Acl::new(CREATE | DELETE | READ, "world", "anyone")],
        }
    }

    /// A create request: (opcode, request). Containers only at the leaf level.
    fn create(&mut self, code: OpCode) -> CreateRequest {
        let mut ttl = -1;
        let (path, flags) = match code {
            OpCode::CreateContainer => {
                let f = if self.pct(90) { 4 } else { 0 };
                (self.leaf_path(), f)
            }
            OpCode::CreateTtl => {
                ttl = match self.rng.gen_range(0..20) {
                    0 => 0,
                    1 => -5,
                    2 => 1 << 41,
                    _ => self.rng.gen_range(3_600_000..7_200_000),
                };
                let f = match self.rng.gen_range(0..10) {
                    0 => 0,
                    1 => 1,
                    2..=5 => 6,
                    _ => 5,
                };
                let p = if f == 6 {
                    self.parent_path()
                } else {
                    self.path()
                };
                (p, f)
            }
            _ => {
                let f = match self.rng.gen_range(0..100) {
                    0..=39 => 0,
                    40..=59 => 1,
                    60..=74 => 2,
                    75..=89 => 3,
                    90..=93 => 4,
                    94..=96 => 5,
                    97..=98 => 6,
                    _ => 7,
                };
                let p = match f {
                    4 => self.leaf_path(),
                    2 | 3 | 6 => {
                        let mut p = self.parent_path();
                        p.push('/');
                        p.push_str(self.pick(&["n", "lock-", ""]));
                        if p.ends_with('/') && self.pct(50) {
                            p.push('s');
                        }
                        p
                    }
                    _ => self.path(),
                };
                (p, f)
            }
        };
        CreateRequest {
            path,
            data: self.data(),
            acl: self.acl(),
            flags,
            ttl,
        }
    }

    /// A read that sets a standard watch 40% of the time, unless that watch would
    /// replace a persistent one in ZooKeeper 3.8 (see [`super::watches`]).
    fn path_watch(&mut self, s: usize, add: WatchAdd) -> PathWatch {
        let watch = self.pct(40);
        let path = self.path();
        let watch = watch && !self.watches.add_conflicts(s, &path, add);
        PathWatch { path, watch }
    }

    fn multi_op(&mut self) -> MultiOp {
        match self.rng.gen_range(0..10) {
            0..=3 => {
                let code = *[
                    OpCode::Create,
                    OpCode::Create,
                    OpCode::Create2,
                    OpCode::CreateTtl,
                ]
                .choose(&mut self.rng)
                .unwrap_or(&OpCode::Create);
                let mut c = self.create(code);
                if code != OpCode::CreateTtl && c.flags >= 4 {
                    c.flags = 0;
                    c.path = self.path();
                }
                MultiOp::Create(code, c)
            }
            4..=5 => MultiOp::Delete(DeleteRequest {
                path: self.path(),
                version: self.version(),
            }),
            6..=8 => MultiOp::SetData(SetDataRequest {
                path: self.path(),
                data: self.data(),
                version: self.version(),
            }),
            _ => MultiOp::Check(CheckVersionRequest {
                path: self.path(),
                version: self.version(),
            }),
        }
    }

    /// A multi that builds a chain (parent then child), so some succeed as a whole.
    fn chain_multi(&mut self) -> Vec<MultiOp> {
        let a = self.path_at(1);
        let b = format!("{a}/{}", self.pick(&L2));
        let mk = |g: &mut Gen, p: String| {
            MultiOp::Create(
                OpCode::Create,
                CreateRequest {
                    path: p,
                    data: g.data(),
                    acl: Acl::open_unsafe(),
                    flags: 0,
                    ttl: -1,
                },
            )
        };
        let mut ops = vec![mk(self, a.clone()), mk(self, b.clone())];
        ops.push(MultiOp::SetData(SetDataRequest {
            path: b.clone(),
            data: self.data(),
            version: if self.pct(70) { 0 } else { 1 },
        }));
        ops.push(MultiOp::Check(CheckVersionRequest {
            path: a,
            version: 0,
        }));
        if self.pct(30) {
            ops.push(MultiOp::Delete(DeleteRequest {
                path: b,
                version: -1,
            }));
        }
        ops
    }

    fn invalid_path_req(&mut self) -> Request {
        let r = self.root.clone();
        let bad = [
            String::new(),
            "relative".to_string(),
            format!("{r}/"),
            format!("{r}//a"),
            format!("{r}/./a"),
            format!("{r}/a/.."),
            format!("{r}/a\u{0}b"),
            format!("{r}/a/."),
            "/".to_string(),
            format!("{r}/\u{1}x"),
        ];
        let path = bad[self.rng.gen_range(0..bad.len())].clone();
        match self.rng.gen_range(0..7) {
            0 => Request::Create(
                OpCode::Create,
                CreateRequest {
                    path,
                    data: Some(vec![]),
                    acl: Acl::open_unsafe(),
                    flags: self.rng.gen_range(0..4),
                    ttl: -1,
                },
            ),
            1 => Request::Delete(DeleteRequest { path, version: -1 }),
            2 => Request::SetData(SetDataRequest {
                path,
                data: Some(vec![1]),
                version: -1,
            }),
            3 => Request::GetData(PathWatch { path, watch: false }),
            4 => Request::Exists(PathWatch { path, watch: false }),
            5 => Request::GetChildren(PathWatch { path, watch: false }),
            _ => Request::Multi(vec![MultiOp::Create(
                OpCode::Create,
                CreateRequest {
                    path,
                    data: Some(vec![]),
                    acl: Acl::open_unsafe(),
                    flags: 0,
                    ttl: -1,
                },
            )]),
        }
    }

    fn system_read(&mut self) -> Request {
        let p = self
            .pick(&["/zookeeper", "/zookeeper/quota", "/zookeeper/config", "/"])
            .to_string();
        match self.rng.gen_range(0..3) {
            0 => Request::Exists(PathWatch {
                path: p,
                watch: false,
            }),
            1 => Request::GetChildren(PathWatch {
                path: p,
                watch: false,
            }),
            _ => Request::GetData(PathWatch {
                path: p,
                watch: false,
            }),
        }
    }

    fn watch_list(&mut self, max: usize) -> Vec<String> {
        let n = self.rng.gen_range(0..=max);
        (0..n).map(|_| self.path()).collect()
    }

    /// addWatch on a path where it replaces no watch of another mode in ZooKeeper 3.8;
    /// a plain exists if no such path turns up.
    fn add_watch(&mut self, s: usize) -> Request {
        let (mode, add) = if self.pct(50) {
            (add_watch_mode::PERSISTENT, WatchAdd::Persistent)
        } else {
            (add_watch_mode::PERSISTENT_RECURSIVE, WatchAdd::Recursive)
        };
        let mut path = self.path();
        for _ in 0..8 {
            if !self.watches.add_conflicts(s, &path, add) {
                return Request::AddWatch(AddWatchRequest { path, mode });
            }
            path = self.path();
        }
        Request::Exists(PathWatch { path, watch: false })
    }

    /// removeWatches / checkWatches where ZooKeeper 3.8 and 3.9 agree (see
    /// [`super::watches`]); half the time on a path this session may watch, so both
    /// answers (ok and NoWatcher) are exercised. A plain exists if none turns up.
    fn watches_request(&mut self, s: usize, remove: bool) -> Request {
        let own = self.watches.paths_of(s);
        let mut path = self.path();
        for _ in 0..8 {
            let mut types = vec![
                watcher_type::CHILDREN,
                watcher_type::DATA,
                watcher_type::ANY,
            ];
            if !own.is_empty() && self.pct(50) {
                path = own[self.rng.gen_range(0..own.len())].clone();
                // Mostly a type that matches what this session holds there.
                let h = self.watches.held(s, &path);
                if self.pct(75) {
                    types = vec![watcher_type::ANY];
                    if h.data || h.persistent {
                        types.push(watcher_type::DATA);
                    }
                    if h.child || h.persistent {
                        types.push(watcher_type::CHILDREN);
                    }
                }
            }
            let t = *types.choose(&mut self.rng).unwrap_or(&watcher_type::ANY);
            let ok = if remove {
                self.watches.remove_unambiguous(s, &path, t)
            } else {
                self.watches.check_unambiguous(s, &path, t)
            };
            if ok {
                let wr = WatchesRequest {
                    path,
                    watcher_type: t,
                };
                return if remove {
                    Request::RemoveWatches(wr)
                } else {
                    Request::CheckWatches(wr)
                };
            }
            path = self.path();
        }
        Request::Exists(PathWatch { path, watch: false })
    }

    /// Drops setWatches entries that would replace a watch of another mode in
    /// ZooKeeper 3.8, counting the entries kept before them in the same request.
    fn without_mode_conflicts(&self, s: usize, w: SetWatches) -> SetWatches {
        let mut planned = WatchModel::new(self.sessions);
        let mut keep = |list: Vec<String>, add: WatchAdd| -> Vec<String> {
            list.into_iter()
                .filter(|p| {
                    let merged = |m: &WatchModel| m.add_conflicts(s, p, add);
                    if merged(&self.watches) || merged(&planned) {
                        return false;
                    }
                    planned.added(s, p, add);
                    true
                })
                .collect()
        };
        SetWatches {
            relative_zxid: w.relative_zxid,
            data_watches: keep(w.data_watches, WatchAdd::Data),
            exist_watches: keep(w.exist_watches, WatchAdd::Data),
            child_watches: keep(w.child_watches, WatchAdd::Child),
            persistent_watches: keep(w.persistent_watches, WatchAdd::Persistent),
            persistent_recursive_watches: keep(w.persistent_recursive_watches, WatchAdd::Recursive),
        }
    }

    /// The next operation.
    pub fn next_op(&mut self) -> Op {
        self.step += 1;
        let s = self.rng.gen_range(0..self.sessions);
        self.cur = s;
        let w = self.weights.clone();
        let table: [(u32, u8); 30] = [
            (w.create, 0),
            (w.create2, 1),
            (w.create_container, 2),
            (w.create_ttl, 3),
            (w.delete, 4),
            (w.exists, 5),
            (w.get_data, 6),
            (w.set_data, 7),
            (w.get_children, 8),
            (w.get_children2, 9),
            (w.get_acl, 10),
            (w.set_acl, 11),
            (w.check, 12),
            (w.multi, 13),
            (w.multi_read, 14),
            (w.sync, 15),
            (w.get_ephemerals, 16),
            (w.get_all_children_number, 17),
            (w.add_watch, 18),
            (w.remove_watches, 19),
            (w.check_watches, 20),
            (w.who_am_i, 21),
            (w.add_auth, 22),
            (w.invalid_path, 23),
            (w.system_read, 24),
            (w.set_watches, 25),
            (w.reopen, 26),
            (w.reconnect, 27),
            (w.reconfig, 28),
            (w.unknown_op, 29),
        ];
        let total: u32 = table.iter().map(|t| t.0).sum();
        let mut x = self.rng.gen_range(0..total.max(1));
        let mut kind = 0;
        for (wt, k) in table {
            if x < wt {
                kind = k;
                break;
            }
            x -= wt;
        }
        let req = match kind {
            0 => Request::Create(OpCode::Create, self.create(OpCode::Create)),
            1 => Request::Create(OpCode::Create2, self.create(OpCode::Create2)),
            2 => Request::Create(
                OpCode::CreateContainer,
                self.create(OpCode::CreateContainer),
            ),
            3 => {
                let mut c = self.create(OpCode::CreateTtl);
                // ZooKeeper 3.8.0 passes a standalone createTTL with a non-TTL mode and a
                // negative ttl to its log, where building the TTL owner throws and the
                // whole server exits (a client can kill it). Such a request has no
                // reference answer; the non-negative ttl still gets BadArguments there.
                if !matches!(c.flags, 5 | 6) && c.ttl < 0 {
                    c.ttl = 3_600_000;
                }
                Request::Create(OpCode::CreateTtl, c)
            }
            4 => Request::Delete(DeleteRequest {
                path: self.path(),
                version: self.version(),
            }),
            5 => Request::Exists(self.path_watch(s, WatchAdd::Data)),
            6 => Request::GetData(self.path_watch(s, WatchAdd::Data)),
            7 => Request::SetData(SetDataRequest {
                path: self.path(),
                data: self.data(),
                version: self.version(),
            }),
            8 => Request::GetChildren(self.path_watch(s, WatchAdd::Child)),
            9 => Request::GetChildren2(self.path_watch(s, WatchAdd::Child)),
            10 => Request::GetAcl(self.path()),
            11 => {
                let v = if self.pct(60) {
                    -1
                } else {
                    self.rng.gen_range(0..3)
                };
                Request::SetAcl(SetAclRequest {
                    path: self.path(),
                    acl: self.acl(),
                    version: v,
                })
            }
            12 => Request::Check(CheckVersionRequest {
                path: self.path(),
                version: self.version(),
            }),
            13 => {
                let ops = match self.rng.gen_range(0..10) {
                    0..=2 => self.chain_multi(),
                    3 => vec![],
                    _ => {
                        let n = self.rng.gen_range(1..=5);
                        (0..n).map(|_| self.multi_op()).collect()
                    }
                };
                Request::Multi(ops)
            }
            14 => {
                let n = self.rng.gen_range(1..=4);
                let ops = (0..n)
                    .map(|_| {
                        if self.pct(50) {
                            MultiOp::GetData(self.path())
                        } else {
                            MultiOp::GetChildren(self.path())
                        }
                    })
                    .collect();
                Request::MultiRead(ops)
            }
            15 => Request::Sync(if self.pct(70) {
                self.root.clone()
            } else {
                self.path()
            }),
            16 => {
                let r = self.root.clone();
                let p = [
                    r.clone(),
                    format!("{r}/a"),
                    format!("{r}/a/x"),
                    format!("{r}/b/"),
                    "/".to_string(),
                ];
                Request::GetEphemerals(p[self.rng.gen_range(0..p.len())].clone())
            }
            17 => Request::GetAllChildrenNumber(self.parent_path()),
            18 => self.add_watch(s),
            19 => self.watches_request(s, true),
            20 => self.watches_request(s, false),
            21 => Request::WhoAmI,
            22 => {
                let who = match self.rng.gen_range(0..10) {
                    0..=3 => ALICE.0,
                    4..=6 => BOB.0,
                    7 => SUPER,
                    8 => "alice:wrong-pw",
                    _ => "carol:carol-pw",
                };
                Request::Auth(AuthPacket {
                    auth_type: 0,
                    scheme: "digest".into(),
                    auth: who.as_bytes().to_vec(),
                })
            }
            23 => self.invalid_path_req(),
            24 => self.system_read(),
            25 => {
                let offset = self.rng.gen_range(0..=self.step as i64);
                let watches = SetWatches {
                    relative_zxid: 0,
                    data_watches: self.watch_list(2),
                    exist_watches: self.watch_list(2),
                    child_watches: self.watch_list(2),
                    persistent_watches: self.watch_list(1),
                    persistent_recursive_watches: self.watch_list(1),
                };
                let watches = self.without_mode_conflicts(s, watches);
                return Op::SetWatches { s, offset, watches };
            }
            26 => return Op::Reopen { s },
            27 => {
                let wrong = self.pct(30);
                return Op::Reconnect {
                    s,
                    wrong_passwd_first: wrong,
                };
            }
            28 => Request::Reconfig(ReconfigRequest {
                joining_servers: "server.9=127.0.0.1:2888:3888;2181".into(),
                leaving_servers: String::new(),
                new_members: String::new(),
                cur_config_id: -1,
            }),
            _ => return Op::Unknown { s, op: 55 },
        };
        Op::Req { s, req }
    }
}
