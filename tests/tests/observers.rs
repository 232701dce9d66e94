//! Observers as real processes: three `corral serve` voters and observers
//! fed over QUIC, directly and in a chain. Writes through observers, sync +
//! read on observers, upstream failover, and a leader kill with no txn lost
//! or applied twice (checked by equal digests at equal zxids).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use corral_proto::request::PathWatch;
use corral_proto::{Request, Response};
use corral_tests::ensemble::{EnsembleProc, Upstream};
use corral_tests::req::{create, get, read_after_sync, rt};
use corral_tests::RawClient;

const EPHEMERAL: i32 = 1;
const SEQUENTIAL: i32 = 2;

async fn children(c: &RawClient, path: &str) -> Result<Vec<String>> {
    let (h, _) = c.request(Request::Sync("/".into())).await?;
    ensure!(h.err == 0, "sync failed: {}", h.err);
    let (h, body) = c
        .request(Request::GetChildren(PathWatch {
            path: path.into(),
            watch: false,
        }))
        .await?;
    match (h.err, body) {
        (0, Response::Children(mut v)) => {
            v.sort();
            Ok(v)
        }
        (e, b) => bail!("getChildren {path}: err {e} {b:?}"),
    }
}

/// (zxid, digest) of every replica, voters then observers.
fn digests(e: &EnsembleProc) -> Vec<Option<(String, String)>> {
    let all = e.nodes.iter().chain(e.observers.iter());
    all.map(|n| {
        let text = corral_tests::four_letter_word(n.addr(), "mntr").ok()?;
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('\t')))
                .map(str::to_string)
        };
        Some((field("corral_last_zxid")?, field("corral_digest")?))
    })
    .collect()
}

/// Waits until every running replica is at the same zxid, and checks that
/// their digests agree there.
fn assert_converged(e: &EnsembleProc, limit: Duration) -> Result<()> {
    let t0 = Instant::now();
    loop {
        let d = digests(e);
        let zxids: BTreeSet<&String> = d.iter().flatten().map(|(z, _)| z).collect();
        if d.iter().all(Option::is_some) && zxids.len() == 1 {
            let sums: BTreeSet<&String> = d.iter().flatten().map(|(_, h)| h).collect();
            ensure!(
                sums.len() == 1,
                "replicas at one zxid disagree on the digest: {d:?}"
            );
            return Ok(());
        }
        if t0.elapsed() > limit {
            bail!("replicas did not converge within {limit:?}: {d:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn observers_serve_reads_forward_writes_and_chain() -> Result<()> {
    // Goal: observer 0 is fed by the voters, observer 1 by observer 0 (a
    // chain). Writes through either observer are acknowledged and visible
    // on every replica; a write through a voter is seen by sync+read on
    // the chained observer; watches on an observer fire; an ephemeral made
    // through the chained observer goes away everywhere when its session
    // closes; every replica ends at one zxid with one digest.
    let e = EnsembleProc::builder(3)
        .observers(2)
        .observer_upstreams(1, vec![Upstream::Observer(0)])
        .start()?;
    e.wait_serving(Duration::from_secs(30))?;
    e.wait_observers(Duration::from_secs(30))?;
    assert_eq!(
        e.observer_upstream(1),
        Some(4),
        "observer 1 hangs off observer 0"
    );
    let m0 = e.observer_mntr(0).context("observer 0 mntr")?;
    assert_eq!(
        m0.get("corral_observer_feeds").map(String::as_str),
        Some("1"),
        "{m0:?}"
    );
    let rt = rt();
    rt.block_on(async {
        let o0 = RawClient::connect(e.observer_addr(0), 4000).await?;
        let o1 = RawClient::connect(e.observer_addr(1), 4000).await?;
        let v = RawClient::connect(e.addr(0), 4000).await?;
        let (h, _) = o0.request(create("/from-o0", b"a", 0)).await?;
        ensure!(h.err == 0, "create through observer 0: {}", h.err);
        let (h, body) = o1.request(create("/from-o1", b"b", 0)).await?;
        ensure!(h.err == 0, "create through the chained observer: {}", h.err);
        ensure!(
            matches!(&body, Response::Path(p) if p == "/from-o1"),
            "{body:?}"
        );
        // Read-your-writes on the observer that took the write, no sync.
        let (h, _) = o1.request(get("/from-o1", false)).await?;
        ensure!(h.err == 0, "own write not visible at once: {}", h.err);
        // A watch set on the chained observer fires for a voter's write.
        let (h, _) = o1
            .request(Request::Exists(PathWatch {
                path: "/from-v".into(),
                watch: true,
            }))
            .await?;
        ensure!(h.err == -101, "exists: {}", h.err);
        let (h, _) = v.request(create("/from-v", b"c", 0)).await?;
        ensure!(h.err == 0, "create through a voter: {}", h.err);
        let ev = o1
            .next_event(Duration::from_secs(5))
            .await
            .context("no watch event on the chained observer")?;
        ensure!(ev.path == "/from-v", "{ev:?}");
        ensure!(
            read_after_sync(&o1, "/from-v").await?.as_deref() == Some(&b"c"[..]),
            "sync+read on the chained observer misses the voter's write"
        );
        for i in 0..3 {
            let c = RawClient::connect(e.addr(i), 4000).await?;
            for p in ["/from-o0", "/from-o1"] {
                ensure!(
                    read_after_sync(&c, p).await?.is_some(),
                    "voter {i} misses {p}"
                );
            }
        }
        // An ephemeral through the chained observer, then its session closes.
        let o1e = RawClient::connect(e.observer_addr(1), 4000).await?;
        let (h, _) = o1e.request(create("/eph", b"", EPHEMERAL)).await?;
        ensure!(h.err == 0, "ephemeral through the chain: {}", h.err);
        ensure!(
            read_after_sync(&v, "/eph").await?.is_some(),
            "ephemeral not on the voter"
        );
        o1e.close().await?;
        ensure!(
            read_after_sync(&v, "/eph").await?.is_none(),
            "ephemeral outlived its session"
        );
        ensure!(
            read_after_sync(&o0, "/eph").await?.is_none(),
            "ephemeral still on observer 0"
        );
        Ok(())
    })?;
    assert_converged(&e, Duration::from_secs(10))
}

#[test]
fn an_observer_moves_to_the_next_upstream_when_its_own_dies_and_returns_home() -> Result<()> {
    // Goal: an observer fed by voter A (in its own region) moves to voter B
    // when A is killed, keeps serving with everything, and takes writes;
    // when A is back it returns to A (its region) with nothing lost.
    let e = EnsembleProc::builder(3)
        .observers(1)
        .observer_set(Some(0), "region", "\"eu\"")
        .observer_upstreams(
            0,
            vec![
                Upstream::Voter(1),
                Upstream::InRegion("eu".into(), Box::new(Upstream::Voter(2))),
            ],
        )
        .start()?;
    let mut e = e;
    e.wait_serving(Duration::from_secs(30))?;
    e.wait_observers(Duration::from_secs(30))?;
    assert_eq!(
        e.observer_upstream(0),
        Some(3),
        "the same-region upstream is preferred"
    );
    let rt = rt();
    rt.block_on(async {
        let o = RawClient::connect(e.observer_addr(0), 4000).await?;
        let (h, _) = o.request(create("/before", b"1", 0)).await?;
        ensure!(h.err == 0, "create: {}", h.err);
        Ok(())
    })?;
    e.nodes[2].kill9();
    let t0 = Instant::now();
    loop {
        if e.observer_upstream(0) == Some(2) {
            eprintln!("observer moved to the next upstream in {:?}", t0.elapsed());
            break;
        }
        ensure!(
            t0.elapsed() < Duration::from_secs(20),
            "observer did not move to voter 2: {:?}\n{}",
            e.observer_mntr(0),
            e.observers[0].log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = e.observer_mntr(0).context("mntr")?;
    assert_eq!(
        m.get("corral_observer_failovers").map(String::as_str),
        Some("1"),
        "{m:?}"
    );
    rt.block_on(async {
        let o = RawClient::connect(e.observer_addr(0), 4000).await?;
        ensure!(
            read_after_sync(&o, "/before").await?.as_deref() == Some(&b"1"[..]),
            "lost a write across the failover"
        );
        let (h, _) = o.request(create("/after", b"2", 0)).await?;
        ensure!(h.err == 0, "create after failover: {}", h.err);
        Ok(())
    })?;
    // Its own region's upstream comes back: the observer returns to it.
    e.nodes[2].start_again()?;
    e.wait_serving(Duration::from_secs(30))?;
    let t0 = Instant::now();
    while e.observer_upstream(0) != Some(3) {
        ensure!(
            t0.elapsed() < Duration::from_secs(30),
            "observer did not return to its region's upstream: {:?}",
            e.observer_mntr(0)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("observer returned to its region in {:?}", t0.elapsed());
    let m = e.observer_mntr(0).context("mntr")?;
    assert_eq!(
        m.get("corral_observer_failovers").map(String::as_str),
        Some("2"),
        "{m:?}"
    );
    rt.block_on(async {
        let o = RawClient::connect(e.observer_addr(0), 4000).await?;
        ensure!(
            read_after_sync(&o, "/after").await?.as_deref() == Some(&b"2"[..]),
            "lost a write moving back"
        );
        Ok(())
    })
}

#[test]
fn observers_follow_a_new_leader_with_nothing_lost_or_doubled() -> Result<()> {
    // Goal: with writers going through voters and observers, kill -9 of
    // the leader: observers follow the new leader; every acknowledged
    // sequential create exists exactly once on every replica; replicas end
    // at one zxid with one digest; the restarted leader catches up too.
    let mut e = EnsembleProc::builder(3)
        .observers(2)
        .observer_upstreams(1, vec![Upstream::Observer(0), Upstream::Voter(0)])
        .start()?;
    let leader = e.wait_serving(Duration::from_secs(30))?;
    e.wait_observers(Duration::from_secs(30))?;
    let rt = rt();
    let setup = rt.block_on(async { RawClient::connect(e.addr(0), 4000).await })?;
    rt.block_on(async {
        let (h, _) = setup.request(create("/seq", b"", 0)).await?;
        ensure!(h.err == 0, "create /seq: {}", h.err);
        Ok(())
    })?;
    // Writers on both observers and one voter (not the leader), each
    // recording what was acknowledged. They run across the kill.
    let follower = (0..3).find(|&i| i != leader).unwrap_or(0);
    let targets = vec![e.observer_addr(0), e.observer_addr(1), e.addr(follower)];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = targets
        .into_iter()
        .enumerate()
        .map(|(w, addr)| {
            let stop = stop.clone();
            std::thread::spawn(move || -> Vec<String> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let mut acked = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let Ok(c) = RawClient::connect(addr, 4000).await else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            match c
                                .request(create(&format!("/seq/w{w}-"), b"", SEQUENTIAL))
                                .await
                            {
                                Ok((h, Response::Path(p))) if h.err == 0 => acked.push(p),
                                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                                Err(_) => break,
                            }
                        }
                    }
                    acked
                })
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    e.nodes[leader].kill9();
    let rest: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    e.wait_serving_among(&rest, Duration::from_secs(20))?;
    e.wait_observers(Duration::from_secs(20))?;
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.join().expect("writer thread"));
    }
    ensure!(
        acked.len() > 20,
        "too few writes acknowledged: {}",
        acked.len()
    );
    e.nodes[leader].start_again()?;
    e.wait_serving(Duration::from_secs(30))?;
    e.wait_observers(Duration::from_secs(20))?;
    let expected: BTreeSet<String> = acked
        .iter()
        .map(|p| p.trim_start_matches("/seq/").to_string())
        .collect();
    ensure!(
        expected.len() == acked.len(),
        "a path was acknowledged twice"
    );
    rt.block_on(async {
        let mut lists = Vec::new();
        for addr in (0..3)
            .map(|i| e.addr(i))
            .chain((0..2).map(|j| e.observer_addr(j)))
        {
            let c = RawClient::connect(addr, 4000).await?;
            lists.push((addr, children(&c, "/seq").await?));
        }
        let first = &lists[0].1;
        for (addr, l) in &lists {
            ensure!(l == first, "{addr} has a different /seq than node 0");
            let have: BTreeSet<&String> = l.iter().collect();
            ensure!(have.len() == l.len(), "duplicates on {addr}");
            for p in &expected {
                ensure!(have.contains(p), "{addr} lost acknowledged {p}");
            }
        }
        Ok(())
    })?;
    assert_converged(&e, Duration::from_secs(15))
}
#[test]
fn corral_dev_starts_voters_and_observers_that_serve() -> Result<()> {
    // Goal: `corral dev --voters 3 --observers 2 --check` starts five
    // processes, waits until the voters serve under a leader and the
    // observers serve, prints both connect strings and stops them all.
    let dir = tempfile::tempdir()?;
    // Five consecutive client ports and five peer ports, all free now.
    let free = |base: u16| {
        (0..5).all(|i| {
            std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", base + 1000 + i)).is_ok()
        })
    };
    let seed = std::process::id() as u16 % 400;
    let base = (0..40)
        .map(|k| 40_000 + (seed + k * 17) % 400 * 10)
        .find(|&b| free(b))
        .context("no free port range")?;
    let out = std::process::Command::new(corral_tests::corral_bin()?)
        .args([
            "dev",
            "--voters",
            "3",
            "--observers",
            "2",
            "--check",
            "--dir",
        ])
        .arg(dir.path())
        .args(["--client-port", &base.to_string()])
        .args(["--peer-port", &(base + 1000).to_string()])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "corral dev failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        stdout.contains("3 voters and 2 observers serving"),
        "{stdout}"
    );
    ensure!(
        stdout.contains(&format!(
            "observers:      127.0.0.1:{},127.0.0.1:{}",
            base + 3,
            base + 4
        )),
        "{stdout}"
    );
    let conf = std::fs::read_to_string(dir.path().join("node4/corral.toml"))?;
    ensure!(conf.contains("role = \"observer\""), "{conf}");
    Ok(())
}

#[test]
fn an_observer_without_a_quorum_above_it_serves_read_only_clients() -> Result<()> {
    // Goal: with read-only mode on, when two of three voters die the
    // observer stops serving read-write sessions (its upstreams have no
    // quorum) but lets read-only clients read what it has; writes and sync
    // get NOTREADONLY (-119). When the quorum is back it serves read-write
    // again and drops the read-only clients.
    let mut e = EnsembleProc::builder(3)
        .observers(1)
        .set("read_only_mode", "true")
        .start()?;
    e.wait_serving(Duration::from_secs(30))?;
    e.wait_observers(Duration::from_secs(30))?;
    let rt = rt();
    rt.block_on(async {
        let c = RawClient::connect(e.observer_addr(0), 4000).await?;
        let (h, _) = c.request(create("/ro", b"kept", 0)).await?;
        ensure!(h.err == 0, "create: {}", h.err);
        Ok(())
    })?;
    e.nodes[1].kill9();
    e.nodes[2].kill9();
    let t0 = Instant::now();
    while corral_tests::four_letter_word(e.observer_addr(0), "isro")?.trim() != "ro" {
        ensure!(
            t0.elapsed() < Duration::from_secs(15),
            "observer kept serving without a quorum above it"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ro = rt.block_on(corral_tests::req::check_read_only_session(
        e.observer_addr(0),
        "/ro",
        b"kept",
    ))?;
    e.nodes[1].start_again()?;
    e.nodes[2].start_again()?;
    e.wait_serving(Duration::from_secs(30))?;
    e.wait_observers(Duration::from_secs(30))?;
    rt.block_on(corral_tests::req::check_read_write_again(
        ro,
        e.observer_addr(0),
    ))
}

#[test]
fn an_observer_takes_new_upstreams_from_its_configuration_on_sighup() -> Result<()> {
    // Goal: changing an observer's `upstreams` and `region` in its config
    // file and sending SIGHUP moves its feed to the new upstream with no
    // restart, `mntr` shows the new region, and it keeps serving reads and
    // writes.
    let e = EnsembleProc::builder(3)
        .observers(1)
        .observer_upstreams(0, vec![Upstream::Voter(0)])
        .start()?;
    e.wait_serving(Duration::from_secs(30))?;
    e.wait_observers(Duration::from_secs(30))?;
    ensure!(
        e.observer_upstream(0) == Some(1),
        "{:?}",
        e.observer_upstream(0)
    );
    let pid = e.observers[0].pid().context("observer pid")?;
    let path = e.observers[0].work_dir().join("corral.toml");
    let text = std::fs::read_to_string(&path)?;
    let line = text
        .lines()
        .find(|l| l.starts_with("upstreams = "))
        .context("an upstreams line")?;
    let new = format!("upstreams = [{:?}]", e.voter_peers[1]);
    let mut text: String = text
        .replace(line, &new)
        .lines()
        .filter(|l| !l.starts_with("region = "))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str("region = \"eu-west\"\n");
    std::fs::write(&path, text)?;
    // SAFETY: signalling a child process this test started.
    unsafe {
        libc::kill(pid as i32, libc::SIGHUP);
    }
    let t0 = Instant::now();
    while e.observer_upstream(0) != Some(2) {
        ensure!(
            t0.elapsed() < Duration::from_secs(15),
            "still fed by {:?}\n{}",
            e.observer_upstream(0),
            e.observers[0].log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ensure!(e.observers[0].pid() == Some(pid), "the observer restarted");
    let region = e
        .observer_mntr(0)
        .and_then(|m| m.get("corral_observer_region").cloned());
    ensure!(
        region.as_deref() == Some("eu-west"),
        "mntr shows the reloaded region: {region:?}"
    );
    rt().block_on(async {
        let c = RawClient::connect(e.observer_addr(0), 4000).await?;
        let (h, _) = c.request(create("/after-reload", b"v", 0)).await?;
        ensure!(h.err == 0, "write through the observer: {}", h.err);
        ensure!(read_after_sync(&c, "/after-reload").await?.is_some());
        Ok(())
    })
}
