//! `corral bench`: a load generator that speaks the ZooKeeper protocol, so the
//! same run can drive corral and Apache ZooKeeper. Many sessions, each with
//! `pipeline` requests in flight; throughput and latency percentiles.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use corral_proto::request::{CreateRequest, DeleteRequest, PathWatch, SetDataRequest};
use corral_proto::{Acl, ErrorCode, OpCode, Request, Response};

use crate::client::Client;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Workload {
    /// getData of a node of `size` bytes.
    Get,
    /// setData of `size` bytes.
    Set,
    /// create then delete an ephemeral-sequential node.
    CreateDelete,
    /// 90% getData, 10% setData.
    Mix,
    /// create `count` persistent znodes of `size` bytes (for memory measurements).
    Load,
    /// `sessions` watchers on one node; time from setData to the last notification.
    WatchFanout,
    /// Open and close sessions as fast as possible (`sessions` in parallel).
    SessionStorm,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[arg(long, default_value = "127.0.0.1:2181")]
    pub server: SocketAddr,
    #[arg(long, value_enum, default_value = "get")]
    pub workload: Workload,
    #[arg(long, default_value_t = 8)]
    pub sessions: usize,
    /// Requests in flight per session.
    #[arg(long, default_value_t = 16)]
    pub pipeline: usize,
    #[arg(long, default_value_t = 5)]
    pub duration_secs: u64,
    /// Node count for `load`.
    #[arg(long, default_value_t = 100_000)]
    pub count: usize,
    /// Data size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Root under which the bench works.
    #[arg(long, default_value = "/corral-bench")]
    pub root: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Offered load in requests per second over all sessions (0: as fast
    /// as the pipeline allows). Each session issues its share on a fixed
    /// schedule, so runs against different servers see the same load.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

struct SessionResult {
    ops: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

async fn ensure(c: &mut Client, path: &str, data: Vec<u8>) -> Result<()> {
    let r = c
        .call(&Request::Create(
            OpCode::Create,
            CreateRequest {
                path: path.into(),
                data: Some(data),
                acl: Acl::open_unsafe(),
                flags: 0,
                ttl: -1,
            },
        ))
        .await?;
    match r.header.err {
        0 => Ok(()),
        e if e == ErrorCode::NodeExists.code() => Ok(()),
        e => bail!("creating {path}: error {e}"),
    }
}

async fn run_async(args: BenchArgs) -> Result<()> {
    match args.workload {
        Workload::WatchFanout => return watch_fanout(&args).await,
        Workload::SessionStorm => return session_storm(&args).await,
        _ => {}
    }
    let mut setup = Client::connect(args.server, 30_000).await?;
    ensure(&mut setup, &args.root, Vec::new()).await?;
    let run_root = format!("{}/{}", args.root, std::process::id());
    ensure(&mut setup, &run_root, Vec::new()).await?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration_secs);
    let mut tasks = Vec::new();
    for s in 0..args.sessions {
        let a = args.clone();
        let base = format!("{run_root}/s{s}");
        tasks.push(tokio::spawn(
            async move { session(a, s, base, deadline).await },
        ));
    }
    let mut all = join_sessions(tasks).await?;
    let secs = start.elapsed().as_secs_f64();
    report(&args, &mut all, secs);
    setup.close().await?;
    Ok(())
}

fn next_request(args: &BenchArgs, base: &str, i: u64, data: &[u8]) -> Request {
    let get = || {
        Request::GetData(PathWatch {
            path: base.to_string(),
            watch: false,
        })
    };
    let set = || {
        Request::SetData(SetDataRequest {
            path: base.to_string(),
            data: Some(data.to_vec()),
            version: -1,
        })
    };
    match args.workload {
        Workload::Get => get(),
        Workload::Set => set(),
        Workload::Mix => {
            if i % 10 == 9 {
                set()
            } else {
                get()
            }
        }
        Workload::Load => Request::Create(
            OpCode::Create,
            CreateRequest {
                path: format!("{base}/n{i}"),
                data: Some(data.to_vec()),
                acl: Acl::open_unsafe(),
                flags: 0,
                ttl: -1,
            },
        ),
        Workload::WatchFanout | Workload::SessionStorm => get(),
        Workload::CreateDelete => Request::Create(
            OpCode::Create,
            CreateRequest {
                path: format!("{base}/e-"),
                data: Some(data.to_vec()),
                acl: Acl::open_unsafe(),
                flags: 3,
                ttl: -1,
            },
        ),
    }
}

async fn session(
    args: BenchArgs,
    s: usize,
    base: String,
    deadline: Instant,
) -> Result<SessionResult> {
    let mut c = Client::connect(args.server, 30_000).await?;
    let data = vec![b'x'; args.size];
    ensure(&mut c, &base, data.clone()).await?;
    let per_session = (args.count / args.sessions.max(1)) as u64
        + u64::from((s as u64) < (args.count % args.sessions.max(1)) as u64);
    let mut res = SessionResult {
        ops: 0,
        errors: 0,
        latencies_us: Vec::new(),
    };
    let mut inflight = std::collections::VecDeque::new();
    let mut issued = 0u64;
    // With --rate, request i of this session is due at t0 + i * interval.
    let t0 = Instant::now();
    let interval = (args.rate > 0)
        .then(|| Duration::from_secs_f64(args.sessions.max(1) as f64 / args.rate as f64));
    let due = |i: u64| interval.map(|iv| t0 + iv.mul_f64(i as f64));
    loop {
        let more = match args.workload {
            Workload::Load => issued < per_session,
            _ => Instant::now() < deadline,
        };
        if let Some(d) = due(issued) {
            if more && inflight.is_empty() && Instant::now() < d {
                tokio::time::sleep_until(d.min(deadline).into()).await;
                continue;
            }
        }
        while more
            && inflight.len() < args.pipeline.max(1)
            && due(issued).is_none_or(|d| Instant::now() >= d)
        {
            let req = next_request(&args, &base, issued, &data);
            let (_, op) = c.send(&req).await?;
            inflight.push_back((op, Instant::now()));
            issued += 1;
            let still = match args.workload {
                Workload::Load => issued < per_session,
                _ => true,
            };
            if !still {
                break;
            }
        }
        c.flush().await?;
        if inflight.is_empty() {
            break;
        }
        // Take every reply that is already here before writing again, so
        // one write carries all the requests that replace them. (Only those
        // sent before: a delete queued below is not flushed yet.)
        for _ in 0..inflight.len() {
            let Some((op, at)) = inflight.pop_front() else {
                break;
            };
            let reply = c.recv(op).await?;
            res.latencies_us
                .push(at.elapsed().as_micros().min(u32::MAX as u128) as u32);
            res.ops += 1;
            if reply.header.err != 0 {
                res.errors += 1;
            } else if let (Workload::CreateDelete, Response::Path(p)) = (args.workload, &reply.body)
            {
                let (_, op) = c
                    .send(&Request::Delete(DeleteRequest {
                        path: p.clone(),
                        version: -1,
                    }))
                    .await?;
                inflight.push_back((op, Instant::now()));
            }
            if !c.reply_ready() {
                break;
            }
        }
        if !more && inflight.is_empty() {
            break;
        }
    }
    c.close().await?;
    Ok(res)
}

/// Waits for every session task and adds up their results.
async fn join_sessions(
    tasks: Vec<tokio::task::JoinHandle<Result<SessionResult>>>,
) -> Result<SessionResult> {
    let mut all = SessionResult {
        ops: 0,
        errors: 0,
        latencies_us: Vec::new(),
    };
    for t in tasks {
        let r = t.await??;
        all.ops += r.ops;
        all.errors += r.errors;
        all.latencies_us.extend(r.latencies_us);
    }
    Ok(all)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

fn report(args: &BenchArgs, r: &mut SessionResult, secs: f64) {
    r.latencies_us.sort_unstable();
    let tput = r.ops as f64 / secs;
    let (p50, p99, p999) = (
        percentile(&r.latencies_us, 0.50),
        percentile(&r.latencies_us, 0.99),
        percentile(&r.latencies_us, 0.999),
    );
    if args.json {
        println!(
            "{{\"workload\":\"{:?}\",\"sessions\":{},\"pipeline\":{},\"ops\":{},\"errors\":{},\"secs\":{:.3},\"ops_per_sec\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3}}}",
            args.workload, args.sessions, args.pipeline, r.ops, r.errors, secs, tput, p50, p99, p999
        );
    } else {
        println!(
            "{:?}: {} ops in {:.2}s = {:.0} ops/s ({} errors); latency ms p50 {:.3} p99 {:.3} p99.9 {:.3}",
            args.workload, r.ops, secs, tput, r.errors, p50, p99, p999
        );
    }
}

/// Each round: every watcher arms a data watch, one setData fires them all,
/// and the round's latency is the time until the last watcher is notified.
async fn watch_fanout(args: &BenchArgs) -> Result<()> {
    let mut setter = Client::connect(args.server, 30_000).await?;
    ensure(&mut setter, &args.root, Vec::new()).await?;
    let node = format!("{}/fanout-{}", args.root, std::process::id());
    ensure(&mut setter, &node, Vec::new()).await?;
    let mut watchers = Vec::with_capacity(args.sessions);
    for _ in 0..args.sessions {
        watchers.push(Client::connect(args.server, 30_000).await?);
    }
    let watch = Request::GetData(PathWatch {
        path: node.clone(),
        watch: true,
    });
    let data = vec![b'x'; args.size];
    let deadline = Instant::now() + Duration::from_secs(args.duration_secs);
    let start = Instant::now();
    let mut res = SessionResult {
        ops: 0,
        errors: 0,
        latencies_us: Vec::new(),
    };
    while Instant::now() < deadline {
        for w in watchers.iter_mut() {
            w.call(&watch).await?;
        }
        let fired = Instant::now();
        let reply = setter
            .call(&Request::SetData(SetDataRequest {
                path: node.clone(),
                data: Some(data.clone()),
                version: -1,
            }))
            .await?;
        if reply.header.err != 0 {
            res.errors += 1;
        }
        let waits = watchers.iter_mut().map(|w| w.next_event());
        for r in await_all(waits).await {
            r?;
        }
        res.latencies_us
            .push(fired.elapsed().as_micros().min(u32::MAX as u128) as u32);
        res.ops += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    report(args, &mut res, secs);
    for w in watchers {
        w.close().await?;
    }
    setter.close().await?;
    Ok(())
}

/// Awaits each future in turn; the events arrive independently, so this ends at the last arrival.
async fn await_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out = Vec::with_capacity(set.len());
    for f in set {
        out.push(f.await);
    }
    out
}

/// Connects and closes sessions for the whole duration; latency is connect + close.
async fn session_storm(args: &BenchArgs) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.duration_secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.sessions {
        let server = args.server;
        tasks.push(tokio::spawn(async move {
            let mut r = SessionResult {
                ops: 0,
                errors: 0,
                latencies_us: Vec::new(),
            };
            while Instant::now() < deadline {
                let t = Instant::now();
                match Client::connect(server, 30_000).await {
                    Ok(c) => {
                        c.close().await?;
                        r.ops += 1;
                    }
                    Err(_) => r.errors += 1,
                }
                r.latencies_us
                    .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            anyhow::Ok(r)
        }));
    }
    let mut all = join_sessions(tasks).await?;
    report(args, &mut all, start.elapsed().as_secs_f64());
    Ok(())
}
