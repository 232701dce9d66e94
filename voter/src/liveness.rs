//! Fast detection of a dead peer process.
//!
//! QUIC runs over UDP, so when a peer's process dies (`kill -9`, a crash)
//! nothing tells us: without help a follower notices only after
//! `sync_limit_ticks` of silence. But the dead process's UDP port is now
//! closed, and the peer's kernel answers any datagram to it with ICMP "port
//! unreachable", which a *connected* UDP socket reports as `ECONNREFUSED` on
//! its next send. So each node sends a one-byte probe to each peer's peer
//! port every `interval` from a connected socket (QUIC discards it as a
//! malformed packet while the peer lives) and reports the peer down on the
//! first refusal. This is the signal ZooKeeper gets for free from TCP.
//!
//! It is only a hint: a host that vanishes (power, partition) sends nothing
//! back and is found by the sync limit as before; a hint that arrives late or
//! never changes nothing, and one about a peer we do not follow is ignored.
//! So every refusal is reported (at most one per probe; the kernel rate-limits
//! ICMP per destination anyway), and only the log line waits for the peer to
//! have been quiet for [`REARM`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

/// Quiet time after which a peer's next refusal is logged again.
pub const REARM: Duration = Duration::from_secs(2);

/// The probe tasks; dropping this stops them.
pub struct Prober {
    tasks: Vec<AbortHandle>,
}

impl Drop for Prober {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Prober {
    /// Starts one probe task per peer on the current tokio runtime. `down`
    /// is called with the peer's id each time its port refuses packets.
    pub fn start(
        peers: Vec<(u64, SocketAddr)>,
        interval: Duration,
        down: impl Fn(u64) + Send + Sync + 'static,
    ) -> Prober {
        let down = Arc::new(down);
        let tasks = peers
            .into_iter()
            .map(|(id, addr)| {
                let down = down.clone();
                tokio::spawn(async move { probe(id, addr, interval, &*down).await }).abort_handle()
            })
            .collect();
        Prober { tasks }
    }
}

async fn probe(id: u64, addr: SocketAddr, interval: Duration, down: &(dyn Fn(u64) + Send + Sync)) {
    let local: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let sock = loop {
        match UdpSocket::bind(local).await {
            Ok(s) if s.connect(addr).await.is_ok() => break s,
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    };
    let mut last_refusal: Option<Instant> = None;
    let mut reported = false;
    loop {
        let refused = matches!(sock.send(&[0]).await, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused);
        if refused {
            last_refusal = Some(Instant::now());
            if !reported {
                reported = true;
                tracing::info!(peer = id, addr = %addr, "peer port refuses packets: its process is gone");
            }
            down(id);
        } else if reported && last_refusal.is_some_and(|t| t.elapsed() >= REARM) {
            reported = false;
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn a_closed_port_is_reported_and_a_live_one_never() {
        // Goal: probing a UDP port nobody listens on reports that peer down
        // within a few probes; probing a live socket reports nothing.
        let live = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dead_addr = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        }; // closed again: nothing listens there now
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let _p = Prober::start(
            vec![(1, live.local_addr().unwrap()), (2, dead_addr)],
            Duration::from_millis(20),
            move |id| seen2.lock().unwrap().push(id),
        );
        let t0 = Instant::now();
        while seen.lock().unwrap().is_empty() && t0.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "reported within a few probes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let seen = seen.lock().unwrap().clone();
        assert!(
            !seen.is_empty() && seen.iter().all(|&id| id == 2),
            "{seen:?}"
        );
    }
}
