//! Transport tests on loopback. Each is bounded by [`LIMIT`] per wait.

use std::collections::BTreeMap;
use std::path::Path;

use tempfile::TempDir;
use tokio::time::timeout_at;

use super::*;
use crate::certs::{generate_dev_pki, DevCa, CA_CERT_FILE, CA_KEY_FILE};

/// The longest any single wait in these tests may take.
const LIMIT: Duration = Duration::from_secs(4);

fn hosts() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}

fn pki(ids: &[u64]) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    generate_dev_pki(dir.path(), ids, &hosts(), false).expect("dev pki");
    dir
}

fn sockets(n: usize) -> Vec<UdpSocket> {
    (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind loopback"))
        .collect()
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().expect("local addr")
}

/// Test timings: fast keep-alives so liveness is noticed quickly.
fn config(id: u64, tls: PeerTls, peers: &[(u64, SocketAddr)]) -> NetConfig {
    let mut cfg = NetConfig::new(
        id,
        "127.0.0.1:0".parse().expect("addr"),
        peers.iter().copied().filter(|&(p, _)| p != id).collect(),
        tls,
    );
    cfg.keep_alive = Duration::from_millis(200);
    cfg.idle_timeout = Duration::from_secs(2);
    cfg
}

/// Binds `addr` again once the previous owner has let go of it.
async fn rebind(addr: SocketAddr) -> UdpSocket {
    let deadline = Instant::now() + LIMIT;
    loop {
        match UdpSocket::bind(addr) {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => panic!("{addr} still taken: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn collect(rx: &mut mpsc::Receiver<Inbound>, n: usize) -> Vec<Inbound> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match timeout_at(deadline, rx.recv()).await {
            Ok(Some(m)) => got.push(m),
            Ok(None) => panic!("inbound closed after {}/{n} frames", got.len()),
            Err(_) => panic!("timed out with {}/{n} frames", got.len()),
        }
    }
    got
}

/// Asserts that nothing arrives for `d`.
async fn quiet(rx: &mut mpsc::Receiver<Inbound>, d: Duration) {
    if let Ok(Some(m)) = tokio::time::timeout(d, rx.recv()).await {
        panic!(
            "unexpected frame from {} on {:?} ({} bytes)",
            m.from,
            m.channel,
            m.frame.len()
        );
    }
}

fn frame(from: u64, to: u64, channel: Channel, seq: usize) -> Vec<u8> {
    format!("{from}->{to} {channel:?} #{seq}").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_exchange_frames_on_all_channels_in_order() {
    // Goal: every node's frames reach every other node on every channel, in send order per channel, including frames queued before the connection existed.
    const N: usize = 50;
    let dir = pki(&[1, 2, 3]);
    let socks = sockets(3);
    let peers: Vec<_> = [1, 2, 3].into_iter().zip(socks.iter().map(addr)).collect();
    let mut nodes = Vec::new();
    for (sock, &(id, _)) in socks.into_iter().zip(&peers) {
        let tls = PeerTls::from_dir(dir.path(), id).unwrap();
        nodes.push(Net::start_on(config(id, tls, &peers), sock).await.unwrap());
    }
    // Sent at once: most of these are queued before any handshake is done.
    for (net, _) in &nodes {
        for &(to, _) in &peers {
            if to == net.id() {
                continue;
            }
            for seq in 0..N {
                for ch in Channel::ALL {
                    net.send(to, ch, frame(net.id(), to, ch, seq)).unwrap();
                }
            }
        }
    }
    for (net, rx) in &mut nodes {
        let got = collect(rx, 2 * 3 * N).await;
        let mut next: BTreeMap<(u64, Channel), usize> = BTreeMap::new();
        for m in got {
            let seq = next.entry((m.from, m.channel)).or_default();
            assert_eq!(
                m.frame,
                frame(m.from, net.id(), m.channel, *seq),
                "out of order or corrupt"
            );
            *seq += 1;
        }
        assert_eq!(next.len(), 2 * 3, "every peer on every channel");
        assert!(next.values().all(|&n| n == N));
    }
    for (net, _) in &nodes {
        let mut c = net.connected();
        c.sort();
        let want: Vec<u64> = [1, 2, 3].into_iter().filter(|&p| p != net.id()).collect();
        assert_eq!(c, want);
        let stats = net.stats();
        for p in stats.peers.values() {
            assert_eq!(p.frames_sent, 3 * N as u64);
            assert_eq!(p.frames_received, 3 * N as u64);
            assert_eq!(p.frames_dropped, 0);
            assert_eq!(p.connects, 1, "one connection per pair");
        }
        assert_eq!(stats.handshake_failures, 0);
        assert_eq!(stats.identity_rejections, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_frame_arrives_intact_and_limits_hold() {
    // Goal: an 8 MiB frame arrives byte-for-byte; send refuses a frame above max_frame; a frame above the receiver's limit closes the connection, is retried once, then given up, and later frames flow.
    let dir = pki(&[1, 2]);
    let socks = sockets(2);
    let peers = [(1, addr(&socks[0])), (2, addr(&socks[1]))];
    let mut socks = socks.into_iter();
    let mut c1 = config(1, PeerTls::from_dir(dir.path(), 1).unwrap(), &peers);
    c1.max_frame = 9 << 20;
    let mut c2 = config(2, PeerTls::from_dir(dir.path(), 2).unwrap(), &peers);
    c2.max_frame = 16 << 20;
    let (n1, mut rx1) = Net::start_on(c1, socks.next().unwrap()).await.unwrap();
    let (n2, _rx2) = Net::start_on(c2, socks.next().unwrap()).await.unwrap();

    let big: Vec<u8> = (0..8usize << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    n2.send(1, Channel::Feed, big.clone()).unwrap();
    n2.send(1, Channel::Feed, b"after".to_vec()).unwrap();
    let got = collect(&mut rx1, 2).await;
    assert_eq!(got[0].frame.len(), big.len());
    assert!(got[0].frame == big, "8 MiB frame corrupted");
    assert_eq!(got[1].frame, b"after");

    assert_eq!(
        n1.send(2, Channel::Feed, vec![0; (9 << 20) + 1]),
        Err(SendError::TooLarge {
            len: (9 << 20) + 1,
            max: 9 << 20
        })
    );

    // 10 MiB fits n2's limit but not n1's: n1 closes the connection, n2
    // retries the frame once on the next connection, n1 closes that too, and
    // n2 gives the frame up, so the third connection stays.
    n2.send(1, Channel::Feed, vec![7; 10 << 20]).unwrap();
    eventually("the oversized frame to be given up", || {
        n2.stats().peers[&1].frames_lost == 1
            && n1.stats().peers[&2].connects >= 3
            && n1.connected() == vec![2]
    })
    .await;
    n2.send(1, Channel::Election, b"still alive".to_vec())
        .unwrap();
    let got = collect(&mut rx1, 1).await;
    assert_eq!(got[0].frame, b"still alive");
    assert_eq!(n1.stats().peers[&2].frames_received, 3);
}

/// A certificate signed by the cluster CA whose URI SAN says `uri_id` while
/// its DNS SAN and CN say `dns_id`.
fn forged(dir: &Path, uri_id: u64, dns_id: u64) -> PeerTls {
    let ca = DevCa::load(&dir.join(CA_CERT_FILE), &dir.join(CA_KEY_FILE)).unwrap();
    let (chain, key) = ca.issue(uri_id, dns_id, &hosts()).unwrap();
    let cert_path = dir.join("forged.pem");
    let key_path = dir.join("forged.key");
    std::fs::write(&cert_path, chain).unwrap();
    std::fs::write(&key_path, key).unwrap();
    PeerTls::load(&dir.join(CA_CERT_FILE), &cert_path, &key_path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_whose_cert_names_another_id_is_rejected_both_ways() {
    // Goal: a node configured as 2 holding a CA-signed cert for id 5 (with server-2's DNS name) is cut off when dialed (1 -> 2) and when dialing (2 -> 3); no frame flows to or from it while 1 and 3 talk normally.
    let dir = pki(&[1, 2, 3]);
    let socks = sockets(3);
    let peers: Vec<_> = [1, 2, 3].into_iter().zip(socks.iter().map(addr)).collect();
    let mut socks = socks.into_iter();
    let impostor_tls = forged(dir.path(), 5, 2);

    let (n1, mut rx1) = Net::start_on(
        config(1, PeerTls::from_dir(dir.path(), 1).unwrap(), &peers),
        socks.next().unwrap(),
    )
    .await
    .unwrap();
    let s2 = socks.next().unwrap();
    let err = Net::start_on(
        config(2, impostor_tls.clone(), &peers),
        s2.try_clone().unwrap(),
    )
    .await
    .err()
    .expect("own identity is checked at start");
    assert!(
        matches!(err, NetError::OwnIdentity { configured: 2, .. }),
        "{err}"
    );
    let (bad, mut rx_bad) = Net::start_unchecked(config(2, impostor_tls, &peers), s2).unwrap();
    let (n3, mut rx3) = Net::start_on(
        config(3, PeerTls::from_dir(dir.path(), 3).unwrap(), &peers),
        socks.next().unwrap(),
    )
    .await
    .unwrap();

    eventually("both sides to reject the impostor", || {
        n1.stats().identity_rejections >= 1 && n3.stats().identity_rejections >= 1
    })
    .await;
    for ch in Channel::ALL {
        // Queue sends both ways; none may be delivered.
        let _ = bad.send(1, ch, b"from impostor".to_vec());
        let _ = bad.send(3, ch, b"from impostor".to_vec());
        n1.send(2, ch, b"to 2".to_vec()).unwrap();
        n3.send(2, ch, b"to 2".to_vec()).unwrap();
        n1.send(3, ch, b"1 to 3".to_vec()).unwrap();
    }
    let got = collect(&mut rx3, 3).await;
    assert!(got.iter().all(|m| m.from == 1 && m.frame == b"1 to 3"));
    quiet(&mut rx1, Duration::from_millis(600)).await;
    quiet(&mut rx3, Duration::from_millis(10)).await;
    quiet(&mut rx_bad, Duration::from_millis(10)).await;
    // (`bad.connected()` may flicker: in TLS 1.3 a client finishes its
    // handshake before the server has judged its certificate.)
    assert_eq!(n1.connected(), vec![3]);
    assert_eq!(n3.connected(), vec![1]);
    assert_eq!(n1.stats().peers[&2].connects, 0);
    assert_eq!(n3.stats().peers[&2].connects, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_another_ca_is_rejected() {
    // Goal: a node whose own cert comes from a foreign CA fails the TLS handshake as a server (1 dials it) and as a client (it dials 3), even though it trusts our CA; nothing is delivered.
    let ours = pki(&[1, 2, 3]);
    let theirs = pki(&[2]);
    let socks = sockets(3);
    let peers: Vec<_> = [1, 2, 3].into_iter().zip(socks.iter().map(addr)).collect();
    let mut socks = socks.into_iter();
    let foreign = {
        let a = PeerTls::from_dir(ours.path(), 2).unwrap();
        let b = PeerTls::from_dir(theirs.path(), 2).unwrap();
        let mut ca = a.ca().to_vec();
        ca.extend_from_slice(b.ca());
        PeerTls::new(ca, b.chain().to_vec(), b.key().clone_key())
    };

    let (n1, mut rx1) = Net::start_on(
        config(1, PeerTls::from_dir(ours.path(), 1).unwrap(), &peers),
        socks.next().unwrap(),
    )
    .await
    .unwrap();
    let (n2, mut rx2) = Net::start_on(config(2, foreign, &peers), socks.next().unwrap())
        .await
        .unwrap();
    let (n3, mut rx3) = Net::start_on(
        config(3, PeerTls::from_dir(ours.path(), 3).unwrap(), &peers),
        socks.next().unwrap(),
    )
    .await
    .unwrap();
    for ch in Channel::ALL {
        n2.send(1, ch, b"foreign".to_vec()).unwrap();
        n2.send(3, ch, b"foreign".to_vec()).unwrap();
        n1.send(2, ch, b"to foreign".to_vec()).unwrap();
        n3.send(2, ch, b"to foreign".to_vec()).unwrap();
        n3.send(1, ch, b"3 to 1".to_vec()).unwrap();
    }
    eventually("1 (as client) and 3 (as server) to fail handshakes", || {
        n1.stats().handshake_failures >= 1 && n3.stats().handshake_failures >= 1
    })
    .await;
    let got = collect(&mut rx1, 3).await;
    assert!(got.iter().all(|m| m.from == 3 && m.frame == b"3 to 1"));
    quiet(&mut rx3, Duration::from_millis(600)).await;
    quiet(&mut rx1, Duration::from_millis(10)).await;
    quiet(&mut rx2, Duration::from_millis(10)).await;
    assert_eq!(n1.connected(), vec![3]);
    assert_eq!(n3.connected(), vec![1]);
    assert_eq!(n1.stats().peers[&2].connects, 0);
    assert_eq!(n3.stats().peers[&2].connects, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_peers_are_reconnected() {
    // Goal: after the acceptor (2) and then the dialer (1) are shut down and restarted on the same port, the pair reconnects by itself and frames flow both ways again.
    let dir = pki(&[1, 2]);
    let socks = sockets(2);
    let peers = [(1, addr(&socks[0])), (2, addr(&socks[1]))];
    let mut socks = socks.into_iter();
    let cfg = |id| config(id, PeerTls::from_dir(dir.path(), id).unwrap(), &peers);
    let (mut n1, mut rx1) = Net::start_on(cfg(1), socks.next().unwrap()).await.unwrap();
    let (mut n2, mut rx2) = Net::start_on(cfg(2), socks.next().unwrap()).await.unwrap();

    async fn ping_pong(
        a: &Net,
        rx_a: &mut mpsc::Receiver<Inbound>,
        b: &Net,
        rx_b: &mut mpsc::Receiver<Inbound>,
        tag: &str,
    ) {
        eventually(&format!("{tag}: connected"), || {
            a.connected() == vec![b.id()] && b.connected() == vec![a.id()]
        })
        .await;
        a.send(b.id(), Channel::Feed, tag.as_bytes().to_vec())
            .unwrap();
        b.send(a.id(), Channel::Forward, tag.as_bytes().to_vec())
            .unwrap();
        assert_eq!(collect(rx_b, 1).await[0].frame, tag.as_bytes());
        assert_eq!(collect(rx_a, 1).await[0].frame, tag.as_bytes());
    }

    ping_pong(&n1, &mut rx1, &n2, &mut rx2, "first").await;

    n2.shutdown();
    assert!(timeout_at(tokio::time::Instant::now() + LIMIT, rx2.recv())
        .await
        .expect("inbound ends after shutdown")
        .is_none());
    assert_eq!(n2.send(1, Channel::Feed, vec![1]), Err(SendError::Shutdown));
    eventually("1 to notice 2 left", || n1.connected().is_empty()).await;
    let s2 = rebind(peers[1].1).await;
    (n2, rx2) = Net::start_on(cfg(2), s2).await.unwrap();
    ping_pong(&n1, &mut rx1, &n2, &mut rx2, "acceptor restarted").await;

    n1.shutdown();
    drop(n1);
    let s1 = rebind(peers[0].1).await;
    (n1, rx1) = Net::start_on(cfg(1), s1).await.unwrap();
    ping_pong(&n1, &mut rx1, &n2, &mut rx2, "dialer restarted").await;
    assert_eq!(n2.stats().peers[&1].connects, 2, "old and new dialer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_peer_restart_is_noticed_before_the_idle_timeout() {
    // Goal: when the acceptor dies without closing (its runtime is dropped) and restarts on the same port, the dialer reconnects well before its 10 s idle timeout, via a stateless reset from the new process.
    let dir = pki(&[1, 2]);
    let socks = sockets(2);
    let peers = [(1, addr(&socks[0])), (2, addr(&socks[1]))];
    let mut socks = socks.into_iter();
    let cfg = |id| {
        let mut c = config(id, PeerTls::from_dir(dir.path(), id).unwrap(), &peers);
        c.idle_timeout = Duration::from_secs(10);
        c
    };
    let (n1, mut rx1) = Net::start_on(cfg(1), socks.next().unwrap()).await.unwrap();

    // Node 2 lives on its own runtime so that dropping it is a crash: no
    // CONNECTION_CLOSE is ever sent.
    let (crash_tx, crash_rx) = tokio::sync::oneshot::channel::<()>();
    let (up_tx, up_rx) = tokio::sync::oneshot::channel();
    let c2 = cfg(2);
    let s2 = socks.next().unwrap();
    let crashed = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let started = rt.block_on(Net::start_on(c2, s2)).unwrap();
        let _ = up_tx.send(started);
        let _ = rt.block_on(crash_rx);
        drop(rt);
    });
    let (n2, mut rx2) = up_rx.await.unwrap();
    eventually("first connection", || n1.connected() == vec![2]).await;
    n1.send(2, Channel::Election, b"before".to_vec()).unwrap();
    assert_eq!(collect(&mut rx2, 1).await[0].frame, b"before");

    crash_tx.send(()).unwrap();
    tokio::task::spawn_blocking(move || crashed.join().unwrap())
        .await
        .unwrap();
    drop((n2, rx2));
    let restarted_at = Instant::now();
    let s2 = rebind(peers[1].1).await;
    let (n2, mut rx2) = Net::start_on(cfg(2), s2).await.unwrap();
    eventually("reconnect to the restarted peer", || {
        n1.stats().peers[&2].connects >= 2 && n1.connected() == vec![2]
    })
    .await;
    assert!(restarted_at.elapsed() < Duration::from_secs(5));
    n1.send(2, Channel::Election, b"after".to_vec()).unwrap();
    n2.send(1, Channel::Election, b"back".to_vec()).unwrap();
    assert_eq!(collect(&mut rx2, 1).await[0].frame, b"after");
    assert_eq!(collect(&mut rx1, 1).await[0].frame, b"back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_refuses_new_frames_and_stays_bounded() {
    // Goal: with the peer down, each channel queue holds queue_len frames, further sends fail with Full (counted, queue not growing), send works from a plain thread, other errors are typed, and the queued frames arrive in order once the peer appears.
    let dir = pki(&[1, 2]);
    let socks = sockets(2);
    let peers = [(1, addr(&socks[0])), (2, addr(&socks[1]))];
    let mut socks = socks.into_iter();
    let mut c1 = config(1, PeerTls::from_dir(dir.path(), 1).unwrap(), &peers);
    c1.queue_len = 4;
    let (n1, mut rx1) = Net::start_on(c1, socks.next().unwrap()).await.unwrap();
    // Node 2's socket stays bound (so nobody else takes the port) but
    // unanswered until node 2 starts on it below.
    let s2 = socks.next().unwrap();

    for seq in 0..4 {
        n1.send(2, Channel::Feed, frame(1, 2, Channel::Feed, seq))
            .unwrap();
    }
    for seq in 4..10_004 {
        assert_eq!(
            n1.send(2, Channel::Feed, frame(1, 2, Channel::Feed, seq)),
            Err(SendError::Full {
                to: 2,
                channel: Channel::Feed
            })
        );
    }
    // From a plain thread, as the driver's core loop calls it.
    let n1c = n1.clone();
    std::thread::spawn(move || n1c.send(2, Channel::Election, b"other channel".to_vec()))
        .join()
        .unwrap()
        .unwrap();
    let stats = n1.stats().peers[&2];
    assert_eq!(stats.frames_dropped, 10_000);
    assert_eq!(stats.queued, 5);
    assert!(!stats.connected);
    assert_eq!(
        n1.send(9, Channel::Feed, vec![]),
        Err(SendError::UnknownPeer(9))
    );

    let (n2, mut rx2) = Net::start_on(
        config(2, PeerTls::from_dir(dir.path(), 2).unwrap(), &peers),
        s2,
    )
    .await
    .unwrap();
    let got = collect(&mut rx2, 5).await;
    let feed: Vec<_> = got
        .iter()
        .filter(|m| m.channel == Channel::Feed)
        .map(|m| m.frame.clone())
        .collect();
    let want: Vec<_> = (0..4).map(|s| frame(1, 2, Channel::Feed, s)).collect();
    assert_eq!(feed, want);
    quiet(&mut rx2, Duration::from_millis(200)).await;
    assert_eq!(n1.stats().peers[&2].queued, 0);

    n1.shutdown();
    assert_eq!(n1.send(2, Channel::Feed, vec![]), Err(SendError::Shutdown));
    assert!(timeout_at(tokio::time::Instant::now() + LIMIT, rx1.recv())
        .await
        .expect("inbound ends after shutdown")
        .is_none());
    drop(n2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_errors_are_clear() {
    // Goal: a taken port, a peer list naming this node, and a keep-alive not shorter than the idle timeout each fail start with an error that says so.
    let dir = pki(&[1, 2]);
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tls = PeerTls::from_dir(dir.path(), 1).unwrap();
    let mut cfg = config(1, tls.clone(), &[(2, addr(&taken))]);
    cfg.listen = addr(&taken);
    let err = Net::start(cfg).await.err().expect("port is taken");
    assert!(matches!(err, NetError::Bind { .. }), "{err}");
    assert!(err.to_string().contains(&addr(&taken).to_string()), "{err}");

    let mut cfg = config(1, tls.clone(), &[(2, addr(&taken))]);
    cfg.peers.push((1, addr(&taken)));
    let err = Net::start(cfg).await.err().expect("self in peers");
    assert!(err.to_string().contains("own id 1"), "{err}");

    let mut cfg = config(1, tls, &[(2, addr(&taken))]);
    cfg.keep_alive = cfg.idle_timeout;
    let err = Net::start(cfg).await.err().expect("bad keep-alive");
    assert!(err.to_string().contains("keep_alive"), "{err}");
}

/// A bare QUIC client holding server `id`'s certificate, to speak the
/// protocol wrongly on purpose.
async fn raw_dial(dir: &Path, id: u64, to: (u64, SocketAddr)) -> (Endpoint, Connection) {
    let cfg = config(id, PeerTls::from_dir(dir, id).unwrap(), &[to]);
    let (_, client) = quic_configs(&cfg).unwrap();
    let mut ep = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(client);
    let conn = ep
        .connect(to.1, &peer_dns_name(to.0))
        .unwrap()
        .await
        .unwrap();
    (ep, conn)
}

async fn closed_with(conn: &Connection) -> u32 {
    let err = tokio::time::timeout(LIMIT, conn.closed())
        .await
        .expect("connection closed by the peer");
    match err {
        ConnectionError::ApplicationClosed(c) => u32::try_from(c.error_code.into_inner()).unwrap(),
        other => panic!("unexpected close: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_close_the_connection() {
    // Goal: an unknown channel byte, a second stream for one channel, and a configured peer with a larger id dialing each get the connection closed with the matching code, and nothing bad is delivered.
    let dir = pki(&[1, 2, 3]);
    let socks = sockets(3);
    let peers: Vec<_> = [1, 2, 3].into_iter().zip(socks.iter().map(addr)).collect();
    let mut socks = socks.into_iter();
    let _s1 = socks.next().unwrap();
    let (n2, mut rx2) = Net::start_on(
        config(2, PeerTls::from_dir(dir.path(), 2).unwrap(), &peers),
        socks.next().unwrap(),
    )
    .await
    .unwrap();
    let to2 = peers[1];

    let (_ep, conn) = raw_dial(dir.path(), 1, to2).await;
    let mut s = conn.open_uni().await.unwrap();
    s.write_all(&[9, 0, 0, 0, 1, 42]).await.unwrap();
    assert_eq!(closed_with(&conn).await, CLOSE_PROTOCOL);

    let (_ep, conn) = raw_dial(dir.path(), 1, to2).await;
    for _ in 0..2 {
        let mut s = conn.open_uni().await.unwrap();
        s.write_all(&[0, 0, 0, 0, 2, b'h', b'i']).await.unwrap();
    }
    assert_eq!(closed_with(&conn).await, CLOSE_PROTOCOL);
    // At most the first stream's frame got through, and it was well formed.
    while let Ok(m) = rx2.try_recv() {
        assert_eq!(
            (m.from, m.channel, &m.frame[..]),
            (1, Channel::Election, &b"hi"[..])
        );
    }

    // A larger id dialing is an introduction: closed, never served.
    let (_ep, conn) = raw_dial(dir.path(), 3, to2).await;
    assert_eq!(closed_with(&conn).await, CLOSE_INTRODUCED);
    assert_eq!(n2.stats().identity_rejections, 0);
    assert_eq!(n2.stats().peers[&3].connects, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_introduces_itself_and_a_removed_peer_is_refused() {
    // Goal: a server the others do not know (a joiner) but that knows them
    // gets connected both ways by introducing itself; a removed peer's
    // connection closes, its reintroductions are refused, and adding it
    // back reconnects it.
    let dir = pki(&[1, 2, 3]);
    let socks = sockets(3);
    let all = [
        (1, addr(&socks[0])),
        (2, addr(&socks[1])),
        (3, addr(&socks[2])),
    ];
    let mut socks = socks.into_iter();
    let tls = |id| PeerTls::from_dir(dir.path(), id).unwrap();
    let (n1, mut rx1) = Net::start_on(config(1, tls(1), &all[..2]), socks.next().unwrap())
        .await
        .unwrap();
    let (n2, _rx2) = Net::start_on(config(2, tls(2), &all[..2]), socks.next().unwrap())
        .await
        .unwrap();
    let (n3, mut rx3) = Net::start_on(config(3, tls(3), &all), socks.next().unwrap())
        .await
        .unwrap();
    eventually("the joiner to be connected to both", || {
        n3.connected() == vec![1, 2] && n1.connected().contains(&3) && n2.connected().contains(&3)
    })
    .await;
    n3.send(1, Channel::Feed, b"hello".to_vec()).unwrap();
    n1.send(3, Channel::Feed, b"welcome".to_vec()).unwrap();
    assert_eq!(collect(&mut rx1, 1).await[0].frame, b"hello");
    assert_eq!(collect(&mut rx3, 1).await[0].frame, b"welcome");
    assert_eq!(n1.stats().identity_rejections, 0);

    n1.remove_peer(3);
    eventually("the removed peer to be gone", || {
        !n1.connected().contains(&3) && !n3.connected().contains(&1)
    })
    .await;
    assert_eq!(
        n1.send(3, Channel::Feed, vec![1]),
        Err(SendError::UnknownPeer(3))
    );
    eventually("its reintroduction to be refused", || {
        n1.stats().identity_rejections >= 1
    })
    .await;
    assert!(!n3.connected().contains(&1));

    n1.add_peer(3, all[2].1);
    eventually("the re-added peer to reconnect", || {
        n1.connected().contains(&3) && n3.connected().contains(&1)
    })
    .await;
}
