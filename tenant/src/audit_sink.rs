//! Where audit records go: the [`AuditSink`] trait, a bounded background queue
//! ([`QueuedSink`]) in front of any [`AuditWriter`], and a [`MemorySink`] for tests.
//!
//! # Never silently
//!
//! `record` never blocks the request path. When the queue is full the record is
//! not written: it is counted in [`AuditSink::dropped`] (export it as a metric)
//! and a warning is logged, at most once per [`DROP_WARN_INTERVAL`] with the
//! number dropped since the last warning. A record the writer fails to write is
//! counted and logged the same way. So for every record handed to a sink,
//! `written + dropped` accounts for it once [`QueuedSink::flush`] returns.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::audit::AuditRecord;

/// Shortest time between two "audit records dropped" warnings.
pub const DROP_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// A destination for audit records.
pub trait AuditSink: Send + Sync {
    /// Hands over one record. Never blocks; a record that cannot be kept is
    /// counted in [`dropped`](Self::dropped) and logged.
    fn record(&self, record: AuditRecord);
    /// Records lost so far (queue full or write failed).
    fn dropped(&self) -> u64;
}

/// The synchronous end of a queued sink, run on its background thread.
pub trait AuditWriter: Send + 'static {
    fn write(&mut self, record: &AuditRecord) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

enum Msg {
    Record(Box<AuditRecord>),
    Flush(SyncSender<()>),
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    warner: Mutex<DropWarner>,
}

impl Counters {
    fn count_drop(&self, why: &'static str) {
        let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // A poisoned lock only means another thread panicked mid-warning; keep counting.
        let mut w = self
            .warner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        w.dropped(Instant::now(), total, why);
    }
}

/// Rate limit for the drop warning: the first drop warns at once, later ones
/// at most once per interval, reporting how many were dropped in between.
#[derive(Debug, Default)]
struct DropWarner {
    last_warn: Option<Instant>,
    since_warn: u64,
}

impl DropWarner {
    /// Notes one drop; returns whether it logged a warning.
    fn dropped(&mut self, now: Instant, total: u64, why: &'static str) -> bool {
        self.since_warn += 1;
        let due = self
            .last_warn
            .is_none_or(|last| now.duration_since(last) >= DROP_WARN_INTERVAL);
        if due {
            tracing::warn!(
                dropped_since_last_warning = self.since_warn,
                dropped_total = total,
                reason = why,
                "audit records dropped"
            );
            self.last_warn = Some(now);
            self.since_warn = 0;
        }
        due
    }
}

/// A bounded queue drained by a background thread into an [`AuditWriter`].
pub struct QueuedSink {
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl QueuedSink {
    /// Starts the writer thread with a queue of `queue_len` records (at least 1).
    pub fn spawn<W: AuditWriter>(writer: W, queue_len: usize) -> io::Result<QueuedSink> {
        let (tx, rx) = mpsc::sync_channel(queue_len.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("corral-audit".into())
            .spawn(move || drain(writer, rx, &thread_counters))?;
        Ok(QueuedSink {
            tx: Some(tx),
            thread: Some(thread),
            counters,
        })
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Waits until every record queued before this call is written and flushed.
    /// Blocks while the queue is full; not for the request path.
    pub fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if tx.send(Msg::Flush(ack_tx)).is_ok() {
            // An error means the writer thread is gone; nothing is left to wait for.
            let _ = ack_rx.recv();
        }
    }

    /// Writes out the queue and stops the thread.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("audit writer thread panicked");
            }
        }
    }
}

impl AuditSink for QueuedSink {
    fn record(&self, record: AuditRecord) {
        let Some(tx) = &self.tx else {
            self.counters.count_drop("sink closed");
            return;
        };
        match tx.try_send(Msg::Record(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.counters.count_drop("queue full"),
            Err(TrySendError::Disconnected(_)) => self.counters.count_drop("writer stopped"),
        }
    }

    fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for QueuedSink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn drain<W: AuditWriter>(mut writer: W, rx: Receiver<Msg>, counters: &Counters) {
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        // Write everything already queued, then flush once for the batch.
        while let Some(msg) = next {
            match msg {
                Msg::Record(rec) => match writer.write(&rec) {
                    Ok(()) => {
                        counters.written.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "audit write failed");
                        counters.count_drop("write failed");
                    }
                },
                Msg::Flush(ack) => {
                    flush_logged(&mut writer);
                    let _ = ack.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        flush_logged(&mut writer);
    }
    flush_logged(&mut writer);
}

fn flush_logged<W: AuditWriter>(writer: &mut W) {
    if let Err(e) = writer.flush() {
        tracing::error!(error = %e, "audit flush failed");
    }
}

/// Keeps records in memory, up to a bound; beyond it they are counted as dropped.
#[derive(Debug)]
pub struct MemorySink {
    capacity: usize,
    records: Mutex<Vec<AuditRecord>>,
    dropped: AtomicU64,
}

impl MemorySink {
    pub fn new(capacity: usize) -> MemorySink {
        MemorySink {
            capacity,
            records: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
        }
    }

    /// A copy of the records kept so far.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.lock().clone()
    }

    /// Removes and returns the records kept so far.
    pub fn take(&self) -> Vec<AuditRecord> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<AuditRecord>> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl AuditSink for MemorySink {
    fn record(&self, record: AuditRecord) {
        let mut records = self.lock();
        if records.len() < self.capacity {
            records.push(record);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_warning_is_rate_limited() {
        // Goal: the first drop warns at once, later ones at most once per interval with a count.
        let mut w = DropWarner::default();
        let t0 = Instant::now();
        assert!(w.dropped(t0, 1, "queue full"));
        assert!(!w.dropped(t0 + Duration::from_secs(1), 2, "queue full"));
        assert!(!w.dropped(t0 + Duration::from_secs(9), 3, "queue full"));
        assert_eq!(w.since_warn, 2, "drops since the warning are remembered");
        assert!(w.dropped(t0 + DROP_WARN_INTERVAL, 4, "queue full"));
        assert_eq!(w.since_warn, 0);
    }

    #[test]
    fn memory_sink_is_bounded_and_counts() {
        // Goal: a full MemorySink counts further records as dropped instead of growing.
        let sink = MemorySink::new(2);
        for i in 0..5 {
            sink.record(AuditRecord::new(
                i,
                "s",
                crate::AuditOp::Create,
                crate::AuditResult::Success,
            ));
        }
        assert_eq!(sink.records().len(), 2);
        assert_eq!(sink.dropped(), 3);
        assert_eq!(sink.take().len(), 2);
        assert!(sink.records().is_empty());
    }
}
