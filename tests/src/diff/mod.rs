//! The differential test engine: the same seeded operation sequence, from several
//! sessions, against two servers ("left": corral or ZooKeeper, "right": Apache
//! ZooKeeper 3.8), with every result compared.
//!
//! Operations run in one deterministic interleaving: op k is issued on its session
//! on both servers, both replies are awaited, then every live session on each server
//! does a ping round trip (a barrier: notifications queued before it have arrived)
//! and the queued watch events are compared per session (as a sorted multiset after
//! a closeSession, whose ephemeral deletions have no contractual order). So both
//! servers see the same total order and must assign the same zxids.
//!
//! The generator steers clear of known ZooKeeper 3.8.0 bugs that corral does not
//! copy (watch-mode merging, checkWatches answering for any session, and others):
//! see [`watches`] and `docs/compatibility.md`.
//!
//! Environment:
//! - `CORRAL_DIFF_LEFT=corral|zk` (default `corral`; `zk` is the harness self-check)
//! - `CORRAL_DIFF_SEEDS=<n>` runs seeds 1..=n; `CORRAL_DIFF_SEED=<a>[,<b>…]` runs exactly those
//! - `CORRAL_DIFF_OPS=<n>` ops per seed; `CORRAL_DIFF_SESSIONS=<n>` sessions (default 4)
//! - `CORRAL_DIFF_MAX_DIVERGENCES=<n>` stop a seed after n divergences (default 20)
//! - `CORRAL_DIFF_TRACE=1` prints every op with both results (`!!` marks a divergence)

pub mod gen;
pub mod norm;
pub mod watches;

use crate::raw::{ConnectOptions, PendingReply, RawClient, RawError, Reply};
use crate::{ServerProc, ZkProc};
use anyhow::{bail, Context, Result};
use corral_proto::request::CreateRequest;
use corral_proto::{Acl, MultiResult, OpCode, Request, Response, WatcherEvent};
use gen::{Gen, Op, Weights};
use norm::Ctx;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Which server plays a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Corral,
    Zk,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Corral => "corral",
            Kind::Zk => "zk",
        }
    }
}

/// A running server of either kind.
pub enum Server {
    Corral(ServerProc),
    Zk(ZkProc),
}

impl Server {
    /// Starts a fresh server (blocking; call from `spawn_blocking` in async code).
    pub fn start(kind: Kind) -> Result<Server> {
        Ok(match kind {
            Kind::Corral => Server::Corral(ServerProc::start()?),
            Kind::Zk => Server::Zk(ZkProc::start()?),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        match self {
            Server::Corral(s) => s.addr(),
            Server::Zk(z) => z.addr(),
        }
    }

    pub fn log_tail(&self, n: usize) -> String {
        match self {
            Server::Corral(s) => s.log_tail(n),
            Server::Zk(z) => z.log_tail(n),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct DiffConfig {
    pub left: Kind,
    pub seeds: Vec<u64>,
    pub ops: usize,
    pub sessions: usize,
    pub weights: Weights,
    pub max_divergences: usize,
    pub request_timeout: Duration,
}

fn env_num(key: &str) -> Option<u64> {
    let v = std::env::var(key).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{key}={v:?} is not a number"),
    }
}

impl DiffConfig {
    /// Reads the `CORRAL_DIFF_*` variables (see the module docs) over the defaults.
    pub fn from_env(default_seeds: u64, default_ops: usize) -> DiffConfig {
        let left = match std::env::var("CORRAL_DIFF_LEFT").as_deref() {
            Ok("zk") | Ok("zookeeper") => Kind::Zk,
            Ok("corral") | Err(_) => Kind::Corral,
            Ok(other) => panic!("CORRAL_DIFF_LEFT={other:?}: use corral or zk"),
        };
        let seeds = match std::env::var("CORRAL_DIFF_SEED") {
            Ok(list) => list
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("CORRAL_DIFF_SEED={list:?}"))
                })
                .collect(),
            Err(_) => (1..=env_num("CORRAL_DIFF_SEEDS").unwrap_or(default_seeds)).collect(),
        };
        DiffConfig {
            left,
            seeds,
            ops: env_num("CORRAL_DIFF_OPS").map_or(default_ops, |n| n as usize),
            sessions: env_num("CORRAL_DIFF_SESSIONS").map_or(4, |n| n.max(1) as usize),
            weights: Weights::default(),
            max_divergences: env_num("CORRAL_DIFF_MAX_DIVERGENCES").map_or(20, |n| n as usize),
            request_timeout: Duration::from_secs(5),
        }
    }

    /// The command that replays one seed.
    pub fn replay_hint(&self, seed: u64) -> String {
        format!(
            "CORRAL_DIFF_LEFT={} CORRAL_DIFF_SEED={seed} CORRAL_DIFF_OPS={} CORRAL_DIFF_SESSIONS={} \
             cargo test -p corral-tests --test differential -- --nocapture",
            self.left.name(),
            self.ops,
            self.sessions
        )
    }
}

/// One difference between the servers.
#[derive(Debug, Clone)]
pub struct Divergence {
    pub seed: u64,
    /// Op index within the seed (`-` for setup / teardown).
    pub index: String,
    pub op: String,
    pub what: String,
    pub left: String,
    pub right: String,
}

fn clip(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &s[..end], s.len())
    }
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} op #{} [{}] {}\n    left : {}\n    right: {}",
            self.seed,
            self.index,
            self.what,
            clip(&self.op, 400),
            clip(&self.left, 1200),
            clip(&self.right, 1200)
        )
    }
}

/// The result of one seed.
#[derive(Debug, Default)]
pub struct SeedReport {
    pub seed: u64,
    pub ops: usize,
    pub elapsed: Duration,
    pub divergences: Vec<Divergence>,
    /// Op kind -> outcome class on the right (reference) server -> count.
    pub outcomes: BTreeMap<String, BTreeMap<String, usize>>,
    /// Watch events delivered by the right (reference) server, all compared.
    pub events: usize,
    pub left_log_tail: String,
}

impl SeedReport {
    /// A compact coverage table: each op kind with its outcome classes.
    pub fn coverage(&self) -> String {
        let mut out = String::new();
        for (kind, classes) in &self.outcomes {
            let total: usize = classes.values().sum();
            let v: Vec<String> = classes.iter().map(|(c, n)| format!("{c}: {n}")).collect();
            out.push_str(&format!("  {kind:<28} {total:>5}  {}\n", v.join(", ")));
        }
        out
    }
}

/// One server's sessions and normalisation context.
struct Side {
    addr: SocketAddr,
    clients: Vec<Option<RawClient>>,
    ctx: Ctx,
    opts: ConnectOptions,
    timeouts: usize,
}

/// What one op did on one server.
#[derive(Default)]
struct Outcome {
    text: String,
    /// The reply's error code (0 = ok), if a reply came.
    err: Option<i32>,
    notes: Vec<String>,
    /// (requested path, created path) of successful creates.
    created: Vec<(String, String)>,
}

impl Side {
    fn new(addr: SocketAddr, sessions: usize, request_timeout: Duration) -> Side {
        Side {
            addr,
            clients: (0..sessions).map(|_| None).collect(),
            ctx: Ctx::default(),
            opts: ConnectOptions {
                request_timeout,
                ..ConnectOptions::default()
            },
            timeouts: 0,
        }
    }

    fn refused(&self, e: &RawError) -> String {
        match e {
            RawError::SessionRefused(r) => format!(
                "refused(timeout={} sid={})",
                r.timeout_ms,
                self.ctx.session(r.session_id)
            ),
            e => norm::raw_error(e),
        }
    }

    /// Opens a new session in `slot` under the logical name `name`.
    async fn open(&mut self, slot: usize, name: &str) -> String {
        match RawClient::connect_opts(self.addr, self.opts.clone()).await {
            Ok(c) => {
                self.ctx.sessions.push((c.session_id(), name.to_string()));
                let d = format!(
                    "session {} timeout={} ro={} passwd={}B",
                    self.ctx.session(c.session_id()),
                    c.timeout_ms(),
                    c.connect_response().read_only,
                    c.passwd().len()
                );
                self.clients[slot] = Some(c);
                d
            }
            Err(e) => format!("connect failed: {}", self.refused(&e)),
        }
    }

    async fn call(&mut self, slot: usize, req: &Request) -> Result<Reply, RawError> {
        let Some(c) = self.clients[slot].as_ref() else {
            return Err(RawError::ConnectionLoss("no session in this slot".into()));
        };
        let r = c.call(req).await;
        if matches!(r, Err(RawError::Timeout(_))) {
            self.timeouts += 1;
        }
        r
    }

    async fn exec(&mut self, op: &Op, new_name: &str) -> Outcome {
        let mut out = Outcome::default();
        match op {
            Op::Req { s, req } => {
                let r = self.call(*s, req).await;
                out.text = self.ctx.reply(&r, &mut out.notes);
                out.err = r.as_ref().ok().map(|rep| rep.header.err);
                if let Ok(rep) = &r {
                    out.created = created_paths(req, rep);
                }
            }
            Op::SetWatches { s, offset, watches } => {
                let mut w = watches.clone();
                w.relative_zxid = self.ctx.base + offset;
                let r = self.call(*s, &Request::SetWatches2(w)).await;
                out.text = self.ctx.reply(&r, &mut out.notes);
                out.err = r.as_ref().ok().map(|rep| rep.header.err);
            }
            Op::Unknown { s, op } => {
                let r = match self.clients[*s].as_ref() {
                    Some(c) => c.request_raw(*op, &[]).await,
                    None => Err(RawError::ConnectionLoss("no session".into())),
                };
                out.text = match r {
                    Ok((h, body)) => format!("{} +{}B", norm::err_code(h.err), body.len()),
                    Err(e) => norm::raw_error(&e),
                };
            }
            Op::Reopen { s } => {
                let close = match self.clients[*s].take() {
                    Some(c) => match c.close().await {
                        Ok(h) => norm::err_code(h.err),
                        Err(e) => norm::raw_error(&e),
                    },
                    None => "no-session".into(),
                };
                let open = self.open(*s, new_name).await;
                out.text = format!("close: {close}; new: {open}");
            }
            Op::Reconnect {
                s,
                wrong_passwd_first,
            } => {
                out.text = self.reconnect(*s, *wrong_passwd_first, new_name).await;
            }
        }
        out.text.push_str(&self.heal(new_name).await);
        out
    }

    async fn reconnect(&mut self, s: usize, wrong_first: bool, fallback_name: &str) -> String {
        let Some(c) = self.clients[s].take() else {
            return "no-session".into();
        };
        let (id, pw) = (c.session_id(), c.passwd().to_vec());
        c.disconnect().await;
        let mut text = String::new();
        if wrong_first {
            let mut bad = pw.clone();
            match bad.first_mut() {
                Some(b) => *b ^= 0x5a,
                None => bad.push(1),
            }
            let opts = ConnectOptions {
                session_id: id,
                passwd: bad,
                keepalive: false,
                ..self.opts.clone()
            };
            match RawClient::connect_opts(self.addr, opts).await {
                Ok(c2) => {
                    text.push_str("wrong password ACCEPTED; ");
                    c2.disconnect().await;
                }
                Err(e) => text.push_str(&format!("wrong password: {}; ", self.refused(&e))),
            }
        }
        let opts = ConnectOptions {
            session_id: id,
            passwd: pw,
            ..self.opts.clone()
        };
        match RawClient::connect_opts(self.addr, opts).await {
            Ok(c) => {
                text.push_str(&format!(
                    "resumed {} timeout={}",
                    self.ctx.session(c.session_id()),
                    c.timeout_ms()
                ));
                self.clients[s] = Some(c);
            }
            Err(e) => {
                text.push_str(&format!("resume failed: {}; ", self.refused(&e)));
                let name = format!("{fallback_name}-after-failed-resume");
                text.push_str(&self.open(s, &name).await);
            }
        }
        text
    }

    /// Resumes sessions whose connection the server closed; reports it.
    async fn heal(&mut self, base_name: &str) -> String {
        let mut text = String::new();
        for s in 0..self.clients.len() {
            let dead = self.clients[s]
                .as_ref()
                .and_then(|c| c.closed_reason())
                .is_some();
            if !dead {
                continue;
            }
            let c = self.clients[s].take().expect("checked above");
            let (id, pw) = (c.session_id(), c.passwd().to_vec());
            drop(c);
            let opts = ConnectOptions {
                session_id: id,
                passwd: pw,
                ..self.opts.clone()
            };
            text.push_str(&format!("; s{s} connection closed by server"));
            match RawClient::connect_opts(self.addr, opts).await {
                Ok(c) => {
                    text.push_str(" (resumed)");
                    self.clients[s] = Some(c);
                }
                Err(e) => {
                    text.push_str(&format!(" (resume: {})", self.refused(&e)));
                    let name = format!("{base_name}-s{s}-healed");
                    self.open(s, &name).await;
                }
            }
        }
        text
    }

    /// Pings every live session (pipelined), then drains each one's events: per
    /// session, the normalised text and the events. With `unordered`, a session's
    /// events are compared as a sorted multiset (the events of one closeSession come in
    /// ZooKeeper's HashSet order, which is no part of the contract).
    async fn barrier_events(&mut self, unordered: bool) -> (Vec<String>, Vec<Vec<WatcherEvent>>) {
        let mut pending: Vec<Option<Result<PendingReply, RawError>>> = Vec::new();
        for c in &self.clients {
            pending.push(match c {
                Some(c) => Some(c.send_raw(OpCode::Ping.code(), &[]).await),
                None => None,
            });
        }
        let mut out = Vec::new();
        let mut all = Vec::new();
        for (s, p) in pending.into_iter().enumerate() {
            let ping = match p {
                None => "no-session".to_string(),
                Some(Ok(p)) => match p.wait_raw().await {
                    Ok(_) => String::new(),
                    Err(e) => format!(" (barrier ping: {})", norm::raw_error(&e)),
                },
                Some(Err(e)) => format!(" (barrier ping: {})", norm::raw_error(&e)),
            };
            let evs = match &self.clients[s] {
                Some(c) => c.drain_events().await,
                None => Vec::new(),
            };
            let text = if self.clients[s].is_none() {
                String::new()
            } else if unordered {
                norm::events_unordered(&evs)
            } else {
                norm::events(&evs)
            };
            out.push(format!("{text}{ping}"));
            all.push(evs);
        }
        (out, all)
    }

    async fn close_all(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for slot in self.clients.iter_mut() {
            out.push(match slot.take() {
                Some(c) => match c.close().await {
                    Ok(h) => norm::err_code(h.err),
                    Err(e) => norm::raw_error(&e),
                },
                None => "no-session".into(),
            });
        }
        out
    }
}

fn created_paths(req: &Request, rep: &Reply) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match (req, &rep.body) {
        (Request::Create(_, c), Some(Response::Path(p) | Response::PathStat(p, _))) => {
            out.push((c.path.clone(), p.clone()));
        }
        (Request::Multi(ops), Some(Response::Multi(rs))) => {
            for (op, r) in ops.iter().zip(rs) {
                if let (
                    corral_proto::MultiOp::Create(_, c),
                    MultiResult::Create(p) | MultiResult::Create2(p, _),
                ) = (op, r)
                {
                    out.push((c.path.clone(), p.clone()));
                }
            }
        }
        _ => {}
    }
    out
}

/// The outcome class used in the coverage table ("ok", "err NoNode(-101)", …).
fn outcome_class(text: &str) -> String {
    if let Some(rest) = text.strip_prefix("err ") {
        let end = rest.find(')').map_or(rest.len(), |i| i + 1);
        return rest[..end].to_string();
    }
    if text.starts_with("multi [") {
        return if text.contains("error err") {
            "multi-failed".into()
        } else {
            "multi-ok".into()
        };
    }
    text.split([' ', ':', ';']).next().unwrap_or("").to_string()
}

/// Runs one seed on two fresh servers.
pub async fn run_seed(cfg: &DiffConfig, seed: u64) -> Result<SeedReport> {
    let t0 = Instant::now();
    let left_kind = cfg.left;
    let (left, right) = tokio::join!(
        tokio::task::spawn_blocking(move || Server::start(left_kind)),
        tokio::task::spawn_blocking(|| Server::start(Kind::Zk)),
    );
    let left = left?.with_context(|| format!("start left ({})", cfg.left.name()))?;
    let right = right?.context("start right (zk)")?;
    let mut report = SeedReport {
        seed,
        ..SeedReport::default()
    };
    let result = drive(cfg, seed, &left, &right, &mut report).await;
    report.elapsed = t0.elapsed();
    if !report.divergences.is_empty() || result.is_err() {
        report.left_log_tail = left.log_tail(30);
    }
    result.map(|_| report)
}

async fn drive(
    cfg: &DiffConfig,
    seed: u64,
    left_srv: &Server,
    right_srv: &Server,
    report: &mut SeedReport,
) -> Result<()> {
    let n = cfg.sessions;
    let mut left = Side::new(left_srv.addr(), n, cfg.request_timeout);
    let mut right = Side::new(right_srv.addr(), n, cfg.request_timeout);
    let root = format!("/diff-{seed}");
    let mut gens = vec![0u32; n];

    let diverge =
        |report: &mut SeedReport, index: String, op: &str, what: &str, l: &str, r: &str| {
            report.divergences.push(Divergence {
                seed,
                index,
                op: op.to_string(),
                what: what.to_string(),
                left: l.to_string(),
                right: r.to_string(),
            });
        };

    // Setup: session 0, the root (its czxid is each server's zxid base), the rest.
    let (l, r) = tokio::join!(left.open(0, "s0.0"), right.open(0, "s0.0"));
    if left.clients[0].is_none() || right.clients[0].is_none() {
        bail!("seed {seed}: first session failed: left {l}; right {r}");
    }
    let mk_root = Request::Create(
        OpCode::Create2,
        CreateRequest {
            path: root.clone(),
            data: Some(b"diff".to_vec()),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        },
    );
    let (l, r) = tokio::join!(left.call(0, &mk_root), right.call(0, &mk_root));
    for (side, rep, name) in [(&mut left, &l, "left"), (&mut right, &r, "right")] {
        match rep {
            Ok(Reply {
                body: Some(Response::PathStat(_, st)),
                ..
            }) => side.ctx.base = st.czxid,
            other => bail!("seed {seed}: creating {root} on {name} failed: {other:?}"),
        }
    }
    for s in 1..n {
        let name = format!("s{s}.0");
        let (l, r) = tokio::join!(left.open(s, &name), right.open(s, &name));
        if l != r {
            diverge(
                report,
                "setup".into(),
                &format!("open session {s}"),
                "connect",
                &l,
                &r,
            );
        }
    }

    let trace = std::env::var("CORRAL_DIFF_TRACE").as_deref() == Ok("1");
    let mut gen = Gen::new(seed, &root, n, cfg.weights.clone());
    for k in 0..cfg.ops {
        let op = gen.next_op();
        let s = op.session();
        if matches!(op, Op::Reopen { .. }) {
            gens[s] += 1;
        }
        let name = format!("s{s}.{}", gens[s]);
        let (lo, ro) = tokio::join!(left.exec(&op, &name), right.exec(&op, &name));
        report.ops += 1;
        let idx = k.to_string();
        let desc = op.describe();
        report
            .outcomes
            .entry(op.kind())
            .or_default()
            .entry(outcome_class(&ro.text))
            .and_modify(|c| *c += 1)
            .or_insert(1);
        if trace {
            let mark = if lo.text == ro.text { "  " } else { "!!" };
            eprintln!(
                "{mark} #{k} {}\n     left : {}\n     right: {}",
                clip(&desc, 300),
                clip(&lo.text, 300),
                clip(&ro.text, 300)
            );
        }
        if lo.text != ro.text {
            diverge(report, idx.clone(), &desc, "result", &lo.text, &ro.text);
        }
        if !lo.notes.is_empty() || !ro.notes.is_empty() {
            diverge(
                report,
                idx.clone(),
                &desc,
                "stat time invariants",
                &lo.notes.join("; "),
                &ro.notes.join("; "),
            );
        }
        for (req, made) in &ro.created {
            gen.observe_created(req, made);
        }
        let unordered = matches!(op, Op::Reopen { .. });
        let ((le, _), (re, right_events)) = tokio::join!(
            left.barrier_events(unordered),
            right.barrier_events(unordered)
        );
        report.events += right_events.iter().map(Vec::len).sum::<usize>();
        gen.observe(&op, ro.err, &right_events);
        for (slot, (l, r)) in le.iter().zip(&re).enumerate() {
            if l != r {
                diverge(
                    report,
                    idx.clone(),
                    &desc,
                    &format!("events of s{slot}"),
                    l,
                    r,
                );
            }
        }
        if report.divergences.len() >= cfg.max_divergences {
            eprintln!(
                "seed {seed}: stopping after {} divergences at op {k}",
                report.divergences.len()
            );
            break;
        }
        if left.timeouts > 5 || right.timeouts > 5 {
            diverge(
                report,
                idx,
                &desc,
                "too many request timeouts; seed aborted",
                &format!("{} timeouts", left.timeouts),
                &format!("{} timeouts", right.timeouts),
            );
            break;
        }
    }

    // Teardown: closing every session deletes its ephemerals (and is a txn).
    let (l, r) = tokio::join!(left.close_all(), right.close_all());
    if l != r {
        diverge(
            report,
            "teardown".into(),
            "close all sessions",
            "close",
            &format!("{l:?}"),
            &format!("{r:?}"),
        );
    }
    // After teardown, the whole tree under the root must agree (a final snapshot check).
    let (lt, rt) = tokio::join!(
        dump_tree(left_srv.addr(), &root),
        dump_tree(right_srv.addr(), &root)
    );
    let (lt, rt) = (
        lt.unwrap_or_else(|e| format!("{e:#}")),
        rt.unwrap_or_else(|e| format!("{e:#}")),
    );
    if lt != rt {
        diverge(report, "final".into(), "tree dump", "final tree", &lt, &rt);
    }
    Ok(())
}

/// Every node under `root` with data and the zxid-free Stat fields, in path order.
async fn dump_tree(addr: SocketAddr, root: &str) -> Result<String> {
    let c = RawClient::connect(addr, 30_000).await?;
    // As super, so restrictive ACLs do not hide nodes.
    c.call(&Request::Auth(corral_proto::request::AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: gen::SUPER.as_bytes().to_vec(),
    }))
    .await?;
    let mut out = Vec::new();
    let mut todo = vec![root.to_string()];
    while let Some(p) = todo.pop() {
        let d = c
            .call(&Request::GetData(corral_proto::request::PathWatch {
                path: p.clone(),
                watch: false,
            }))
            .await?;
        let line = match &d.body {
            Some(Response::Data(data, st)) => format!(
                "{p} {} v{} cv{} av{} len{} nc{} eph{}",
                norm::data(data),
                st.version,
                st.cversion,
                st.aversion,
                st.data_length,
                st.num_children,
                st.ephemeral_owner != 0
            ),
            _ => format!("{p} {}", norm::err_code(d.header.err)),
        };
        out.push(line);
        let ch = c
            .call(&Request::GetChildren(corral_proto::request::PathWatch {
                path: p.clone(),
                watch: false,
            }))
            .await?;
        if let Some(Response::Children(kids)) = ch.body {
            for k in kids {
                todo.push(format!("{p}/{k}"));
            }
        }
    }
    let _ = c.close().await;
    out.sort();
    Ok(out.join("\n"))
}

/// Runs every configured seed and prints the per-seed and total summary.
pub async fn run(cfg: &DiffConfig) -> Result<Vec<SeedReport>> {
    let mut reports = Vec::new();
    for &seed in &cfg.seeds {
        let rep = run_seed(cfg, seed)
            .await
            .with_context(|| format!("seed {seed} (replay: {})", cfg.replay_hint(seed)))?;
        eprintln!(
            "differential {} vs zk: seed {seed}: {} ops and {} watch events in {:.1?}, {} divergences",
            cfg.left.name(),
            rep.ops,
            rep.events,
            rep.elapsed,
            rep.divergences.len()
        );
        reports.push(rep);
    }
    let ops: usize = reports.iter().map(|r| r.ops).sum();
    let div: usize = reports.iter().map(|r| r.divergences.len()).sum();
    eprintln!(
        "differential {} vs zk: total {ops} ops over {} seeds ({} sessions), {div} divergences",
        cfg.left.name(),
        reports.len(),
        cfg.sessions
    );
    Ok(reports)
}
