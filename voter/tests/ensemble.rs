//! Three voters in one process, joined by an in-memory network that can cut
//! links, driven by a real ZooKeeper client (`zookeeper-client`). These test
//! the driver (forwarding, apply, sessions, sync, serving) without QUIC; the
//! real-process tests in `corral-tests` cover the transport.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corral_server::state::Shared;
use corral_server::{Node, ServerOptions};
use corral_voter::net::Channel;
use corral_voter::node::{Ensemble, PeerLink, VoterOptions, VoterRole};
use zookeeper_client as zk;

#[derive(Default)]
struct Hub {
    nodes: Mutex<HashMap<u64, Arc<Ensemble>>>,
    /// Servers cut off from everyone.
    isolated: Mutex<HashSet<u64>>,
}

struct MemLink {
    id: u64,
    hub: Arc<Hub>,
}

impl PeerLink for MemLink {
    fn send(&self, to: u64, _channel: Channel, frame: Vec<u8>) -> bool {
        {
            let iso = self.hub.isolated.lock().unwrap();
            if iso.contains(&self.id) || iso.contains(&to) {
                return false;
            }
        }
        let target = self.hub.nodes.lock().unwrap().get(&to).cloned();
        match target {
            Some(e) => e.deliver(self.id, frame).is_ok(),
            None => false,
        }
    }
}

struct Member {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

struct Cluster {
    hub: Arc<Hub>,
    members: HashMap<u64, Member>,
    _dirs: Vec<tempfile::TempDir>,
}

async fn start_cluster(n: u64) -> Cluster {
    let hub = Arc::new(Hub::default());
    let voters: Vec<u64> = (1..=n).collect();
    let mut members = HashMap::new();
    let mut dirs = Vec::new();
    for id in 1..=n {
        let dir = tempfile::tempdir().unwrap();
        let mut o =
            ServerOptions::standalone(dir.path().to_path_buf(), "127.0.0.1:0".parse().unwrap());
        o.server_id = id;
        o.tick_time_ms = 100;
        o.min_session_timeout_ms = 400;
        o.max_session_timeout_ms = 10_000;
        let hub2 = hub.clone();
        let role = VoterRole::new(VoterOptions::new(id, voters.clone()), move |ens| {
            hub2.nodes.lock().unwrap().insert(id, ens);
            Arc::new(MemLink { id, hub: hub2 }) as Arc<dyn PeerLink>
        });
        let node = Node::start_role(o, corral_auth::SuperUsers::default(), None, Box::new(role))
            .await
            .unwrap();
        let shared = node.shared.clone();
        let addr = node.local_addr().unwrap();
        let task = tokio::spawn(node.run());
        members.insert(id, Member { shared, addr, task });
        dirs.push(dir);
    }
    Cluster {
        hub,
        members,
        _dirs: dirs,
    }
}

impl Cluster {
    async fn wait_serving(&self, ids: &[u64]) -> u64 {
        let t0 = Instant::now();
        loop {
            let modes: Vec<_> = ids.iter().map(|i| self.members[i].shared.mode()).collect();
            if modes
                .iter()
                .all(|m| m.mode == "leader" || m.mode == "follower")
            {
                let leaders: HashSet<_> = modes.iter().map(|m| m.leader).collect();
                if leaders.len() == 1 {
                    if let Some(Some(l)) = leaders.into_iter().next() {
                        if ids.contains(&l) {
                            return l;
                        }
                    }
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "no leader: {modes:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn client(&self, id: u64) -> zk::Client {
        let addr = self.members[&id].addr;
        tokio::time::timeout(
            Duration::from_secs(10),
            zk::Client::connector()
                .with_session_timeout(Duration::from_secs(4))
                .connect(&addr.to_string()),
        )
        .await
        .expect("connect timed out")
        .expect("connect")
    }
}

fn run<F: std::future::Future<Output = ()>>(body: F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), body)
            .await
            .expect("test timed out")
    });
    rt.shutdown_timeout(Duration::from_secs(2));
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

#[test]
fn writes_through_any_voter_are_seen_by_all_in_order() {
    // Goal: a leader is elected, writes sent to followers are forwarded,
    // committed and applied everywhere, and a client reads its own write.
    run(async {
        let c = start_cluster(3).await;
        let leader = c.wait_serving(&[1, 2, 3]).await;
        let follower = (1..=3).find(|&i| i != leader).unwrap();
        let cf = c.client(follower).await;
        cf.create("/a", b"1", &persistent()).await.unwrap();
        let (data, stat) = cf.get_data("/a").await.unwrap();
        assert_eq!(data, b"1");
        let stat2 = cf.set_data("/a", b"2", Some(stat.version)).await.unwrap();
        assert_eq!(stat2.version, 1);
        let err = cf.set_data("/a", b"x", Some(0)).await.unwrap_err();
        assert_eq!(err, zk::Error::BadVersion);
        let cl = c.client(leader).await;
        cl.create("/b", b"", &persistent()).await.unwrap();
        for id in 1..=3 {
            let cc = c.client(id).await;
            cc.sync("/").await.unwrap();
            assert_eq!(cc.get_data("/a").await.unwrap().0, b"2", "on {id}");
            assert!(cc.check_stat("/b").await.unwrap().is_some(), "on {id}");
        }
        // Clients closing their sessions keep committing for a moment; then
        // every voter has applied the same history.
        let t0 = Instant::now();
        loop {
            let zxids: HashSet<i64> = c.members.values().map(|m| m.shared.last_zxid()).collect();
            let digests: HashSet<u64> = c
                .members
                .values()
                .map(|m| m.shared.tree.read().unwrap().digest())
                .collect();
            if zxids.len() == 1 && digests.len() == 1 {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "voters disagree: {zxids:?} {digests:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for m in c.members.values() {
            m.task.abort();
        }
    });
}

#[test]
fn a_session_moves_between_voters_and_keeps_its_ephemerals() {
    // Goal: a session created on one voter resumes on another (password and
    // all), its ephemeral survives the move, and closing it anywhere removes
    // the ephemeral everywhere.
    run(async {
        let c = start_cluster(3).await;
        c.wait_serving(&[1, 2, 3]).await;
        let owner = c.client(1).await;
        owner
            .create(
                "/eph",
                b"",
                &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
            )
            .await
            .unwrap();
        let id = owner.session_id();
        let session = owner.session().clone();
        // Resume the same session on voter 3.
        let moved = zk::Client::connector()
            .with_session(session)
            .with_session_timeout(Duration::from_secs(4))
            .connect(&c.members[&3].addr.to_string())
            .await
            .expect("resume on another voter");
        assert_eq!(moved.session_id(), id);
        let (_, stat) = moved.get_data("/eph").await.unwrap();
        assert_eq!(stat.ephemeral_owner, id.0);
        // The session is now owned by voter 3: it can write there.
        moved
            .create("/after-move", b"", &persistent())
            .await
            .unwrap();
        // The first connection lost the session; dropping it must not close it.
        std::mem::forget(owner);
        drop(moved); // sends closeSession
        let watcher = c.client(2).await;
        let t0 = Instant::now();
        loop {
            watcher.sync("/").await.unwrap();
            if watcher.check_stat("/eph").await.unwrap().is_none() {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "ephemeral outlived its session"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for m in c.members.values() {
            m.task.abort();
        }
    });
}

#[test]
fn losing_the_leader_elects_another_and_committed_writes_survive() {
    // Goal: when the leader is cut off, the other two elect a new leader,
    // keep every acknowledged write and take new ones; the old leader stops
    // serving (its clients are disconnected) and catches up after healing.
    run(async {
        let c = start_cluster(3).await;
        let old = c.wait_serving(&[1, 2, 3]).await;
        let first = (1..=3).find(|&i| i != old).unwrap();
        let cf = c.client(first).await;
        for i in 0..20 {
            cf.create(&format!("/k{i}"), b"v", &persistent())
                .await
                .unwrap();
        }
        drop(cf);
        c.hub.isolated.lock().unwrap().insert(old);
        let rest: Vec<u64> = (1..=3).filter(|&i| i != old).collect();
        let t0 = Instant::now();
        let new = c.wait_serving(&rest).await;
        let took = t0.elapsed();
        assert_ne!(new, old);
        assert!(
            !c.members[&old].shared.is_serving() || c.members[&old].shared.mode().mode == "leader"
        );
        let cn = c.client(rest[0]).await;
        for i in 0..20 {
            assert!(cn.check_stat(&format!("/k{i}")).await.unwrap().is_some());
        }
        cn.create("/new", b"", &persistent()).await.unwrap();
        c.hub.isolated.lock().unwrap().clear();
        c.wait_serving(&[1, 2, 3]).await;
        let co = c.client(old).await;
        co.sync("/").await.unwrap();
        assert!(
            co.check_stat("/new").await.unwrap().is_some(),
            "old leader caught up"
        );
        eprintln!("failover took {took:?}");
        for m in c.members.values() {
            m.task.abort();
        }
    });
}
