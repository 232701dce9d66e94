//! The observer's side of its feed connection: dial the upstreams in
//! preference order, one at a time, and move on when a connection ends.
//!
//! After a connection ends (the upstream died, or the driver dropped it for
//! not serving), the next upstream in the list is tried, wrapping around;
//! a whole round of failed dials waits a little and starts again from the
//! most preferred. While fed from another region although upstreams of the
//! observer's own region are configured, it tries those every
//! [`REGION_RETRY`] and moves back to the first that answers, so a region
//! that failed over across a WAN link returns home once it can.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use corral_voter::feed::link::{next_sub, read_frame, write_frames, FeedEndpoint};
use corral_voter::feed::{FeedOut, FEED_QUEUE};
use tokio::sync::{mpsc, watch};

use crate::{Input, Upstream};

/// How long a dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
const ROUND_BACKOFF: Duration = Duration::from_millis(500);
const NEXT_DELAY: Duration = Duration::from_millis(20);
/// How often an observer fed from another region tries its own again.
pub const REGION_RETRY: Duration = Duration::from_secs(5);

/// What the upstream task tells the driver.
pub(crate) enum UpEvent {
    Connected {
        conn: u64,
        upstream: u64,
        addr: String,
        out: FeedOut,
    },
    Frame {
        conn: u64,
        frame: Vec<u8>,
    },
    Closed {
        conn: u64,
    },
}

async fn deliver(tx: &SyncSender<Input>, ev: UpEvent) -> bool {
    let mut input = Input::Up(ev);
    loop {
        match tx.try_send(input) {
            Ok(()) => return true,
            Err(TrySendError::Full(back)) => {
                input = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(TrySendError::Disconnected(_)) => return false,
        }
    }
}

/// Where to get the feed: upstreams in preference order, the first `home`
/// of them in this observer's own region.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub upstreams: Vec<Upstream>,
    pub home: usize,
    /// The observer's own region, which decided the order.
    pub region: String,
}

impl Plan {
    /// Upstreams of `region` first, then the rest, each group in the given
    /// order.
    pub fn new(region: &str, upstreams: &[Upstream]) -> Plan {
        let (mut same, other): (Vec<_>, Vec<_>) =
            upstreams.iter().cloned().partition(|u| u.region == region);
        let home = same.len();
        same.extend(other);
        Plan {
            upstreams: same,
            home,
            region: region.to_string(),
        }
    }
}

/// Runs the upstream connections by the newest `plan`; a new plan (a
/// configuration reload) ends the current feed and starts over with it.
pub(crate) fn spawn(
    endpoint: FeedEndpoint,
    mut plan: watch::Receiver<Plan>,
    tx: SyncSender<Input>,
) {
    tokio::spawn(async move {
        let Plan {
            mut upstreams,
            mut home,
            ..
        } = plan.borrow_and_update().clone();
        let mut n = upstreams.len();
        let mut i = 0;
        let mut failed_in_row = 0;
        // A connection found while another was in use.
        let mut found: Option<(usize, u64, quinn::Connection)> = None;
        loop {
            if plan.has_changed().unwrap_or(false) {
                let p = plan.borrow_and_update().clone();
                tracing::info!(upstreams = ?p.upstreams.iter().map(|u| u.addr).collect::<Vec<_>>(), "observer upstreams reloaded");
                n = p.upstreams.len();
                (upstreams, home) = (p.upstreams, p.home);
                (i, failed_in_row, found) = (0, 0, None);
            }
            if n == 0 {
                if plan.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let dialed = match found.take() {
                Some((k, id, conn)) => {
                    i = k;
                    Ok((id, conn))
                }
                None => endpoint.dial(upstreams[i].addr, DIAL_TIMEOUT).await,
            };
            let u = &upstreams[i];
            match dialed {
                Ok((id, conn)) => {
                    failed_in_row = 0;
                    tracing::info!(upstream = id, addr = %u.addr, region = %u.region, "observer feed connected to upstream");
                    // Away from home: look for a way back meanwhile.
                    let homes = if i >= home {
                        &upstreams[..home]
                    } else {
                        &[][..]
                    };
                    let back = find_home(&endpoint, homes);
                    // A reload ends this feed; the loop then starts over.
                    let mut replan = plan.clone();
                    let reloaded = async move {
                        if replan.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    };
                    let (alive, better) =
                        run(conn, id, u.addr.to_string(), &tx, back, reloaded).await;
                    if !alive {
                        return;
                    }
                    if plan.has_changed().unwrap_or(false) {
                        continue;
                    }
                    tracing::info!(upstream = id, addr = %u.addr, "observer feed from upstream ended");
                    if let Some(b) = better {
                        tracing::info!(addr = %upstreams[b.0].addr, "moving back to an upstream in this observer's region");
                        found = Some(b);
                        continue;
                    }
                }
                Err(e) => {
                    failed_in_row += 1;
                    tracing::debug!(addr = %u.addr, "cannot reach upstream: {e}");
                    if failed_in_row == n {
                        tracing::warn!("no upstream reachable; retrying");
                    }
                }
            }
            i = (i + 1) % n;
            if failed_in_row >= n {
                failed_in_row = 0;
                i = 0;
                tokio::time::sleep(ROUND_BACKOFF).await;
            } else {
                tokio::time::sleep(NEXT_DELAY).await;
            }
        }
    });
}

/// Every [`REGION_RETRY`], dials the home-region upstreams in order;
/// returns the first that answers. Never returns when there are none.
async fn find_home(endpoint: &FeedEndpoint, homes: &[Upstream]) -> (usize, u64, quinn::Connection) {
    loop {
        tokio::time::sleep(REGION_RETRY).await;
        for (k, u) in homes.iter().enumerate() {
            if let Ok((id, conn)) = endpoint.dial(u.addr, DIAL_TIMEOUT).await {
                return (k, id, conn);
            }
        }
    }
}

/// Runs one upstream connection until it ends or `better` finds a home
/// upstream (then returned, and this connection closed). The flag is false
/// when the driver is gone.
async fn run(
    conn: quinn::Connection,
    upstream: u64,
    addr: String,
    tx: &SyncSender<Input>,
    better: impl std::future::Future<Output = (usize, u64, quinn::Connection)>,
    reloaded: impl std::future::Future<Output = ()>,
) -> (bool, Option<(usize, u64, quinn::Connection)>) {
    let id = next_sub();
    let (out, rx) = mpsc::channel(FEED_QUEUE);
    let ev = UpEvent::Connected {
        conn: id,
        upstream,
        addr,
        out,
    };
    if !deliver(tx, ev).await {
        return (false, None);
    }
    let reader = {
        let conn = conn.clone();
        async move {
            let Ok(mut recv) = conn.accept_uni().await else {
                return true;
            };
            while let Some(frame) = read_frame(&conn, &mut recv).await {
                if !deliver(tx, UpEvent::Frame { conn: id, frame }).await {
                    return false;
                }
            }
            true
        }
    };
    let (alive, found) = tokio::select! {
        alive = reader => (alive, None),
        _ = write_frames(conn.clone(), rx) => (true, None),
        b = better => (true, Some(b)),
        _ = reloaded => (true, None),
    };
    conn.close(0u32.into(), b"feed closed");
    (
        deliver(tx, UpEvent::Closed { conn: id }).await && alive,
        found,
    )
}
