//! The observer's side of its feed connection: dial the upstreams in
//! preference order, one at a time, and move on when a connection ends.
//!
//! After a connection ends (the upstream died, or the driver dropped it for
//! not serving), the next upstream in the list is tried, wrapping around;
//! a whole round of failed dials waits a little and starts again from the
//! most preferred.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use corral_voter::feed::link::{next_sub, read_frame, write_frames, FeedEndpoint};
use corral_voter::feed::{FeedOut, FEED_QUEUE};
use tokio::sync::mpsc;

use crate::{Input, Upstream};

/// How long a dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
const ROUND_BACKOFF: Duration = Duration::from_millis(500);
const NEXT_DELAY: Duration = Duration::from_millis(20);

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

pub(crate) fn spawn(endpoint: FeedEndpoint, upstreams: Vec<Upstream>, tx: SyncSender<Input>) {
    tokio::spawn(async move {
        let n = upstreams.len();
        let mut i = 0;
        let mut failed_in_row = 0;
        loop {
            let u = &upstreams[i];
            match endpoint.dial(u.addr, DIAL_TIMEOUT).await {
                Ok((id, conn)) => {
                    failed_in_row = 0;
                    tracing::info!(upstream = id, addr = %u.addr, region = %u.region, "observer feed connected to upstream");
                    if !run(conn, id, u.addr.to_string(), &tx).await {
                        return;
                    }
                    tracing::info!(upstream = id, addr = %u.addr, "observer feed from upstream ended");
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

/// Runs one upstream connection; false when the driver is gone.
async fn run(conn: quinn::Connection, upstream: u64, addr: String, tx: &SyncSender<Input>) -> bool {
    let id = next_sub();
    let (out, rx) = mpsc::channel(FEED_QUEUE);
    let ev = UpEvent::Connected {
        conn: id,
        upstream,
        addr,
        out,
    };
    if !deliver(tx, ev).await {
        return false;
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
    let alive = tokio::select! {
        alive = reader => alive,
        _ = write_frames(conn.clone(), rx) => true,
    };
    conn.close(0u32.into(), b"feed closed");
    deliver(tx, UpEvent::Closed { conn: id }).await && alive
}
