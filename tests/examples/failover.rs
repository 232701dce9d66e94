//! Failover benchmark: the time from `kill -9` of the leader of a 3-voter
//! ensemble to the first acknowledged write on the new leader, corral and
//! Apache ZooKeeper 3.8 side by side, each with its default settings.
//!
//!     cargo run -p corral-tests --example failover -- [RUNS] [corral|zk|both]
//!
//! Per run: wait until all three serve, note the leader, SIGKILL it, then
//! keep trying a create through the two survivors (a fresh connection per
//! attempt, 1 s per attempt) until one is acknowledged. Then restart the
//! killed server and wait for all three again. Prints every run, then the
//! median, p90 and max. Servers listen on 127.0.0.1 only and are stopped by PID.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use corral_proto::request::CreateRequest;
use corral_proto::{Acl, OpCode, Request};
use corral_tests::ensemble::EnsembleProc;
use corral_tests::{four_letter_word, pick_free_port, ConnectOptions, RawClient, ZkProc};

trait Cluster {
    fn size(&self) -> usize;
    fn addr(&self, i: usize) -> std::net::SocketAddr;
    fn kill9(&mut self, i: usize);
    fn start_again(&mut self, i: usize) -> Result<()>;

    fn mode(&self, i: usize) -> Option<String> {
        let text = four_letter_word(self.addr(i), "srvr").ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(|m| m.trim().to_string())
    }

    fn wait_all(&self, limit: Duration) -> Result<usize> {
        let t0 = Instant::now();
        loop {
            let modes: Vec<_> = (0..self.size()).map(|i| self.mode(i)).collect();
            let leaders: Vec<usize> = (0..self.size())
                .filter(|&i| modes[i].as_deref() == Some("leader"))
                .collect();
            if leaders.len() == 1
                && modes
                    .iter()
                    .all(|m| matches!(m.as_deref(), Some("leader" | "follower")))
            {
                return Ok(leaders[0]);
            }
            if t0.elapsed() > limit {
                bail!("ensemble not serving: {modes:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Cluster for EnsembleProc {
    fn size(&self) -> usize {
        self.nodes.len()
    }
    fn addr(&self, i: usize) -> std::net::SocketAddr {
        EnsembleProc::addr(self, i)
    }
    fn kill9(&mut self, i: usize) {
        self.nodes[i].kill9();
    }
    fn start_again(&mut self, i: usize) -> Result<()> {
        self.nodes[i].start_again()
    }
}

/// Three participants; the temp dirs hold their data and live as long as they do.
struct ZkEnsemble(Vec<ZkProc>, #[allow(dead_code)] Vec<tempfile::TempDir>);

impl ZkEnsemble {
    /// Three participants with zoo.cfg's sample defaults (tickTime 2000,
    /// initLimit 10, syncLimit 5).
    fn start() -> Result<ZkEnsemble> {
        let client: Vec<u16> = (0..3).map(|_| pick_free_port()).collect();
        let quorum: Vec<u16> = (0..3).map(|_| pick_free_port()).collect();
        let election: Vec<u16> = (0..3).map(|_| pick_free_port()).collect();
        let mut procs = Vec::new();
        let mut dirs = Vec::new();
        for (i, &port) in client.iter().enumerate() {
            let dir = tempfile::Builder::new().prefix("zk-failover-").tempdir()?;
            std::fs::write(dir.path().join("myid"), format!("{}\n", i + 1))?;
            let mut b = ZkProc::builder()
                .data_dir(dir.path())
                .port(port)
                .wait_serving(false)
                .cfg_line("initLimit=10")
                .cfg_line("syncLimit=5");
            for j in 0..3 {
                b = b.cfg_line(&format!(
                    "server.{}=127.0.0.1:{}:{}",
                    j + 1,
                    quorum[j],
                    election[j]
                ));
            }
            procs.push(b.start()?);
            dirs.push(dir);
        }
        Ok(ZkEnsemble(procs, dirs))
    }
}

impl Cluster for ZkEnsemble {
    fn size(&self) -> usize {
        self.0.len()
    }
    fn addr(&self, i: usize) -> std::net::SocketAddr {
        self.0[i].addr()
    }
    fn kill9(&mut self, i: usize) {
        self.0[i].kill9();
    }
    fn start_again(&mut self, i: usize) -> Result<()> {
        self.0[i].restart()
    }
}

async fn try_write(addr: std::net::SocketAddr, path: &str) -> bool {
    let opts = ConnectOptions {
        timeout_ms: 4000,
        request_timeout: Duration::from_millis(1000),
        ..ConnectOptions::default()
    };
    let Ok(Ok(c)) = tokio::time::timeout(
        Duration::from_millis(1000),
        RawClient::connect_opts(addr, opts),
    )
    .await
    else {
        return false;
    };
    let req = Request::Create(
        OpCode::Create,
        CreateRequest {
            path: path.into(),
            data: Some(Vec::new()),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        },
    );
    matches!(c.request(req).await, Ok((h, _)) if h.err == 0)
}

fn measure(name: &str, c: &mut dyn Cluster, runs: usize) -> Result<Vec<Duration>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut out = Vec::new();
    for run in 0..runs {
        let leader = c.wait_all(Duration::from_secs(60))?;
        let survivors: Vec<usize> = (0..c.size()).filter(|&i| i != leader).collect();
        let t0 = Instant::now();
        c.kill9(leader);
        let mut k = 0;
        let took = rt.block_on(async {
            loop {
                let i = survivors[k % survivors.len()];
                k += 1;
                let ok = try_write(c.addr(i), &format!("/failover-{name}-{run}-{k}")).await;
                if std::env::var_os("FAILOVER_TRACE").is_some() {
                    eprintln!(
                        "  attempt {k} on node {}: {ok} at {:?}",
                        i + 1,
                        t0.elapsed()
                    );
                }
                if ok {
                    return Ok(t0.elapsed());
                }
                if t0.elapsed() > Duration::from_secs(60) {
                    bail!("no write acknowledged within 60 s");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })?;
        println!(
            "{name} run {:>2}: leader was node {}, first write after {:>6.0} ms",
            run + 1,
            leader + 1,
            took.as_secs_f64() * 1000.0
        );
        out.push(took);
        c.start_again(leader)?;
    }
    Ok(out)
}

fn summary(name: &str, v: &mut [Duration]) -> f64 {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(v[v.len() / 2]);
    println!(
        "{name}: runs {} median {:.0} ms, p90 {:.0} ms, min {:.0} ms, max {:.0} ms",
        v.len(),
        median,
        ms(v[(v.len() * 9 / 10).min(v.len() - 1)]),
        ms(v[0]),
        ms(v[v.len() - 1])
    );
    median
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let which = args.get(2).map(String::as_str).unwrap_or("both");
    let mut corral = None;
    if which != "zk" {
        let mut e = EnsembleProc::builder(3).start()?;
        let mut v = measure("corral", &mut e, runs)?;
        corral = Some(summary("corral", &mut v));
    }
    if which != "corral" {
        if !corral_tests::zk_available() {
            println!("Apache ZooKeeper is not installed; skipping it");
        } else {
            let mut z = ZkEnsemble::start()?;
            let mut v = measure("zookeeper", &mut z, runs)?;
            let zk = summary("zookeeper", &mut v);
            if let Some(c) = corral {
                println!("ratio corral/zookeeper (median): {:.2}", c / zk);
            }
        }
    }
    Ok(())
}
