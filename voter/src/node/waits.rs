//! What a serving node waits on for its clients, shared by the voter and
//! observer drivers: writes forwarded to the leader (completed when the
//! txn is applied here), RPCs to the leader (`sync` and session
//! revalidation), `sync`s waiting for a commit point to be applied, and
//! snapshots written in the background; and the client-facing
//! [`Replicator`] that queues into a driver thread.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_server::apply::{Committed, Completion, ReplyShape};
use corral_server::commit::{Replicator, WriteRequest};
use corral_server::state::Shared;
use tokio::sync::oneshot;

use crate::feed::SnapshotJob;

struct Waiter {
    completion: Completion,
    since: Instant,
}

/// Completes `c` with error `code`, or drops it (closing the client's
/// connection) when `code` is 0: see [`Waiters::fail`].
pub fn fail(shared: &Shared, c: Completion, code: i32) {
    if code == 0 {
        return;
    }
    let zxid = shared.last_zxid();
    let frame = match c.shape {
        ReplyShape::Session => None,
        _ => Some(corral_server::apply::reply_frame(c.xid, zxid, code, None)),
    };
    let _ = c.reply.send(Committed {
        zxid,
        err: code,
        frame,
    });
}

/// Client writes waiting for their txn, keyed by (session id, cxid).
#[derive(Default)]
pub struct Waiters {
    map: HashMap<(i64, i32), VecDeque<Waiter>>,
}

impl Waiters {
    pub fn add(&mut self, session_id: i64, completion: Completion) {
        self.map
            .entry((session_id, completion.xid))
            .or_default()
            .push_back(Waiter {
                completion,
                since: Instant::now(),
            });
    }

    /// Registers a write's reply channel.
    pub fn add_reply(
        &mut self,
        session_id: i64,
        xid: i32,
        shape: ReplyShape,
        reply: oneshot::Sender<Committed>,
    ) {
        self.add(session_id, Completion { xid, shape, reply });
    }

    pub fn take(&mut self, session_id: i64, cxid: i32) -> Option<Completion> {
        let q = self.map.get_mut(&(session_id, cxid))?;
        let w = q.pop_front();
        if q.is_empty() {
            self.map.remove(&(session_id, cxid));
        }
        w.map(|w| w.completion)
    }

    /// Ends a write the leader refused: with a definite `code` the client
    /// gets that error; with 0 the completion is dropped, which closes the
    /// client's connection (the write's fate is unknown to it).
    pub fn fail(&mut self, shared: &Shared, session_id: i64, cxid: i32, code: i32) {
        if let Some(c) = self.take(session_id, cxid) {
            fail(shared, c, code);
        }
    }

    /// Drops every waiter (their connections close: "maybe applied").
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Drops waiters older than `limit` (a lost forward, a leader gone
    /// mid-request); logs how many.
    pub fn expire(&mut self, limit: Duration) {
        let before = self.map.len();
        self.map.retain(|_, q| {
            q.retain(|w| w.since.elapsed() < limit);
            !q.is_empty()
        });
        if self.map.len() < before {
            tracing::warn!(
                dropped = before - self.map.len(),
                "dropping writes with no answer from the leader"
            );
        }
    }
}

/// A request to the leader waiting for its answer.
pub enum Rpc {
    Sync(oneshot::Sender<bool>),
    Revalidate {
        session_id: i64,
        timeout_ms: i32,
        reply: oneshot::Sender<bool>,
    },
}

/// RPCs to the leader by request id, and the `sync`s waiting for a commit
/// point to be applied here.
#[derive(Default)]
pub struct Rpcs {
    map: HashMap<u64, (Instant, Rpc)>,
    next: u64,
    syncs: Vec<(i64, oneshot::Sender<bool>)>,
}

impl Rpcs {
    /// Records an RPC; returns its request id.
    pub fn start(&mut self, r: Rpc) -> u64 {
        self.next += 1;
        self.map.insert(self.next, (Instant::now(), r));
        self.next
    }

    /// Gives up on an RPC: the reply is dropped, which the connection reads
    /// as "unknown" and closes (a revalidation must not be answered
    /// "expired" just because the leader did not answer).
    pub fn fail(&mut self, id: u64) {
        self.map.remove(&id);
    }

    /// The leader answered a revalidation: a live session is tracked here.
    pub fn revalidated(&mut self, shared: &Shared, id: u64, live: bool) {
        if let Some((
            _,
            Rpc::Revalidate {
                session_id,
                timeout_ms,
                reply,
            },
        )) = self.map.remove(&id)
        {
            if live {
                if let Ok(mut t) = shared.tracker.lock() {
                    t.add(session_id, timeout_ms.max(0) as u32, shared.now_ms());
                }
            }
            let _ = reply.send(live);
        }
    }

    /// The leader answered a `sync` with its commit point: done once this
    /// node has applied it.
    pub fn synced(&mut self, shared: &Shared, id: u64, zxid: i64) {
        if let Some((_, Rpc::Sync(reply))) = self.map.remove(&id) {
            if shared.last_zxid() >= zxid {
                let _ = reply.send(true);
            } else {
                self.syncs.push((zxid, reply));
            }
        }
    }

    /// This node applied through `applied`: answer the syncs it covers.
    pub fn applied(&mut self, applied: i64) {
        if self.syncs.is_empty() {
            return;
        }
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.syncs)
            .into_iter()
            .partition(|(z, _)| *z <= applied);
        self.syncs = waiting;
        for (_, reply) in done {
            let _ = reply.send(true);
        }
    }

    /// Gives up on RPCs older than `limit`.
    pub fn expire(&mut self, limit: Duration) {
        self.map.retain(|_, (at, _)| at.elapsed() < limit);
    }

    /// Fails everything (the node stopped serving): RPC replies are
    /// dropped, waiting syncs answered false.
    pub fn clear(&mut self) {
        self.map.clear();
        for (_, reply) in self.syncs.drain(..) {
            let _ = reply.send(false);
        }
    }
}

/// Writes a fuzzy snapshot of the tree on a thread of its own, unless one
/// is running; `done(zxid, path)` is called from that thread on success.
pub fn spawn_snapshot(
    shared: &Arc<Shared>,
    dir: PathBuf,
    running: &Arc<AtomicBool>,
    done: impl FnOnce(i64, PathBuf) + Send + 'static,
) {
    if running.swap(true, Ordering::AcqRel) {
        return;
    }
    let shared = shared.clone();
    let flag = running.clone();
    let spawned = std::thread::Builder::new()
        .name("corral-snapshot".into())
        .spawn(move || {
            match corral_store::write_fuzzy_snapshot(&shared.tree, &dir) {
                Ok((zxid, path)) => {
                    tracing::info!(zxid = format_args!("0x{zxid:x}"), file = %path.display(), "snapshot written");
                    done(zxid, path);
                }
                Err(e) => tracing::error!(error = %e, "snapshot failed"),
            }
            flag.store(false, Ordering::Release);
        });
    if spawned.is_err() {
        running.store(false, Ordering::Release);
    }
}

/// Streams a feed's snapshot from a thread of its own (a file read and a
/// wait on the feed's queue); `done(sub, zxid, ok)` reports back. Returns
/// false when no thread could be started (the caller fails the job).
pub fn spawn_feed_snapshot(
    job: SnapshotJob,
    done: impl FnOnce(u64, i64, bool) + Send + 'static,
) -> bool {
    std::thread::Builder::new()
        .name("corral-feed-snap".into())
        .spawn(move || {
            let ok = crate::feed::stream_snapshot(&job);
            done(job.sub, job.zxid, ok);
        })
        .is_ok()
}

/// The client-facing requests a driver thread takes.
pub enum ClientInput {
    Write(WriteRequest),
    Sync(oneshot::Sender<bool>),
    Revalidate {
        session_id: i64,
        timeout_ms: i32,
        reply: oneshot::Sender<bool>,
    },
}

/// The [`Replicator`] of a driver thread: client requests go into its
/// bounded input queue, wrapped as the driver's own input type.
pub struct ClientQueue<I> {
    tx: SyncSender<I>,
    wrap: fn(ClientInput) -> I,
    unwrap: fn(I) -> Option<ClientInput>,
}

impl<I> ClientQueue<I> {
    pub fn new(
        tx: SyncSender<I>,
        wrap: fn(ClientInput) -> I,
        unwrap: fn(I) -> Option<ClientInput>,
    ) -> ClientQueue<I> {
        ClientQueue { tx, wrap, unwrap }
    }
}

impl<I: Send + 'static> Replicator for ClientQueue<I> {
    fn submit(&self, w: WriteRequest) -> Result<(), Box<WriteRequest>> {
        match self.tx.try_send((self.wrap)(ClientInput::Write(w))) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(i)) | Err(TrySendError::Disconnected(i)) => {
                match (self.unwrap)(i) {
                    Some(ClientInput::Write(w)) => Err(Box::new(w)),
                    _ => unreachable!("a write was sent"),
                }
            }
        }
    }

    fn sync(&self) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        // A full queue drops the sender: the client reconnects.
        let _ = self.tx.try_send((self.wrap)(ClientInput::Sync(tx)));
        rx
    }

    fn revalidate(
        &self,
        _shared: &Shared,
        session_id: i64,
        timeout_ms: i32,
    ) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.try_send((self.wrap)(ClientInput::Revalidate {
            session_id,
            timeout_ms,
            reply: tx,
        }));
        rx
    }
}

/// A driver thread's steps, for [`run_rounds`].
pub trait Rounds<I> {
    fn input(&mut self, i: I);
    /// Periodic work (timeouts, touches, heartbeats).
    fn tick(&mut self);
    /// After each round of inputs (outputs, feed catch-up).
    fn end_round(&mut self);
    /// Work is pending that should not wait for the next input or tick (a
    /// feed catching up): the loop then polls every millisecond.
    fn hurry(&self) -> bool;
}

/// The loop of a driver thread: wait for an input (or the next tick), take
/// up to `max_round` queued inputs, tick when due, end the round. Returns
/// when every sender of `rx` is gone.
pub fn run_rounds<I, D: Rounds<I>>(d: &mut D, rx: &Receiver<I>, tick: Duration, max_round: usize) {
    let mut last_tick = Instant::now();
    loop {
        let wait = if d.hurry() {
            Duration::from_millis(1)
        } else {
            tick.saturating_sub(last_tick.elapsed())
        };
        match rx.recv_timeout(wait) {
            Ok(i) => d.input(i),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        for _ in 1..max_round {
            match rx.try_recv() {
                Ok(i) => d.input(i),
                Err(_) => break,
            }
        }
        if last_tick.elapsed() >= tick {
            last_tick = Instant::now();
            d.tick();
        }
        d.end_round();
    }
}
