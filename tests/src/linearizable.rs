//! A linearizability checker for ZooKeeper register histories, and the recorder
//! that fault tests use to build those histories.
//!
//! # Histories
//!
//! A [`Recorder`] is shared (cheap clones) by every client task of a test. Each
//! operation is stamped with a tick of one logical clock taken under the recorder's
//! lock: `invoke` before the request is sent, `complete` after the reply arrived.
//! So if op A's completion was recorded before op B's invocation, `A.ret < B.invoke`,
//! and the recorded intervals contain the real ones. An operation ends in one of:
//!
//! - [`Outcome::Returned`]: a definite result;
//! - [`Outcome::Unknown`] (timeout, connection loss) — or [`Outcome::Pending`] when the
//!   history is taken while it is still in flight: the operation *may* have taken effect
//!   at any single point after its invocation (its response time is +infinity), or
//!   never at all;
//! - [`Outcome::Failed`]: it definitely had no effect (the server rejected it before
//!   executing it); checkers drop it.
//!
//! # The register model
//!
//! One znode per key holding `(data, version)`, which exists for the whole test:
//! [`RegCall::Read`] is getData (observes data and `stat.version`), [`RegCall::Write`]
//! is setData with version -1 (returns the new version), [`RegCall::Cas`] is setData
//! with an expected version (returns the new version, or BadVersion). Keys are
//! independent, so a keyed history is partitioned per key ([`partition_registers`],
//! [`check_registers`]) and each register is checked on its own
//! ([`check_register_history`]).
//!
//! Unknown outcomes are handled exactly: an unknown write is a call entry whose return
//! entry sits at +infinity, so the search may linearize it at any point after its
//! invocation, and the search succeeds as soon as every op with a *known* outcome is
//! linearized — the unknown ops still pending at that point are the ones that "never
//! took effect". An unknown CAS is only linearized where its expected version matches
//! (taking effect and failing is indistinguishable from never executing). Reads with an
//! unknown outcome carry no information and are dropped.
//!
//! # The search
//!
//! Wing & Gong's algorithm with Lowe's memoization, as in Porcupine: the history
//! becomes a doubly linked list of call and return entries sorted by time (calls before
//! returns on equal times, i.e. equal stamps count as concurrent); the search walks the
//! list, *lifts* a call entry (and its return entry) when the model accepts the op from
//! the current state and the pair (bitset of linearized ops, model state) is new,
//! restarts from the head after each lift, and on reaching a return entry (an op that
//! must have taken effect by then but cannot) pops the explicit stack and *unlifts*.
//! Nothing recurses. The cache stores each bitset once in a flat arena, keyed by an
//! incrementally maintained Zobrist hash, so a probe hashes nothing.
//!
//! Register-specific reductions keep it near-linear on real histories, including
//! ones where a large share of the ops have an unknown outcome (each is sound: the
//! verdict is unchanged, which a brute-force oracle test checks on thousands of small
//! random histories):
//!
//! - **version pruning**: every op with a known result pins the version it must see
//!   (a read its `version`, a successful write or CAS `new_version - 1`), and every state
//!   change bumps the version; so a step that moves the register past the smallest
//!   version an unlinearized known op still needs, that creates a version with a value
//!   other than a pending read of that version observed, or that is the last possible
//!   writer of a value and writes it at a version other than its pending readers saw, is
//!   a dead end and is cut at once;
//! - **unread values**: values no read observes are all alike to the model, and are
//!   merged into one;
//! - **symmetry**: unknown-outcome writes (and CASes) with the same effect are
//!   interchangeable once invoked, so at each point only the first pending one is tried;
//!   and an unknown CAS that fits is preferred to an unknown write with the same effect
//!   (the CAS is of no use later, the write might be);
//! - **greedy state-preserving ops**: a read (or a CAS that failed) that fits now can be
//!   moved to this point of any valid completion, so if it fails here, the whole branch
//!   fails;
//! - **prechecks**: impossible observations (a read of a value nothing wrote, a value
//!   whose only writers were invoked after the read returned, two ops reporting the same
//!   new version, a CAS reporting a new version other than `expected + 1`, a version
//!   below the initial one) are reported directly with a crisp explanation, without a
//!   search. They can be turned off ([`CheckOptions::precheck`]); the search finds the
//!   same violations on its own.
//!
//! On a violation the explanation describes the deepest partial linearization found:
//! the op that could not be linearized before its response, the state the search
//! got stuck in, the ops that produced that state, the ops concurrent with it and why
//! each of them cannot go next, and who wrote the value a stuck read observed.
//!
//! The search is bounded by [`CheckOptions`] (steps, wall time, cache memory); past the
//! budget the result is [`CheckResult::Timeout`], never a verdict.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Debug, Write as _};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------
// Histories and the recorder
// ---------------------------------------------------------------------------------

/// A logical timestamp: a tick of the recorder's clock (or any monotonic counter).
pub type Time = u64;

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<Ret> {
    /// Still in flight when the history was taken; checked like [`Outcome::Unknown`].
    Pending,
    /// Completed with a definite result at `at`.
    Returned { ret: Ret, at: Time },
    /// The outcome is unknown (timeout, connection loss): the operation may have taken
    /// effect at any point after its invocation, or never.
    Unknown,
    /// The operation definitely had no effect (rejected before execution); dropped.
    Failed { at: Time },
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<Op, Ret> {
    /// Unique within the history; explanations refer to ops by this id.
    pub id: usize,
    /// The client (session / thread) that issued it.
    pub client: usize,
    pub op: Op,
    pub invoke: Time,
    pub outcome: Outcome<Ret>,
}

impl<Op, Ret> Operation<Op, Ret> {
    /// The result and response time, if the op completed with a definite result.
    pub fn returned(&self) -> Option<(&Ret, Time)> {
        match &self.outcome {
            Outcome::Returned { ret, at } => Some((ret, *at)),
            _ => None,
        }
    }
}

/// A recorded history.
#[derive(Clone, Debug)]
pub struct History<Op, Ret> {
    pub ops: Vec<Operation<Op, Ret>>,
    /// For recorded histories: `ticks[t]` is the wall time of tick `t` since the
    /// recorder was created (to correlate with server logs). Empty for built histories.
    pub ticks: Vec<Duration>,
}

impl<Op, Ret> History<Op, Ret> {
    pub fn from_ops(ops: Vec<Operation<Op, Ret>>) -> Self {
        History {
            ops,
            ticks: Vec::new(),
        }
    }

    /// Wall time (since the recorder was created) of tick `t`, if recorded.
    pub fn elapsed(&self, t: Time) -> Option<Duration> {
        self.ticks.get(usize::try_from(t).ok()?).copied()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Handle of an invoked operation, to complete it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpId(pub usize);

/// A thread-safe history recorder with cheap clones (all clones share one history).
///
/// ```ignore
/// let rec = Recorder::new();
/// let id = rec.invoke(client, (key, RegCall::Write { value }));
/// match client.set_data(..).await {
///     Ok(stat) => rec.complete(id, RegRet::Written { version: stat.version }),
///     Err(e) if e.is_definite() => rec.fail(id),
///     Err(_) => rec.unknown(id), // timeout / connection loss
/// }
/// let history = rec.history();
/// ```
pub struct Recorder<Op, Ret> {
    inner: Arc<Mutex<RecorderInner<Op, Ret>>>,
}

struct RecorderInner<Op, Ret> {
    start: Instant,
    ticks: Vec<Duration>,
    ops: Vec<Operation<Op, Ret>>,
}

impl<Op, Ret> RecorderInner<Op, Ret> {
    fn tick(&mut self) -> Time {
        let t = self.ticks.len() as Time;
        self.ticks.push(self.start.elapsed());
        t
    }

    fn finish(&mut self, id: OpId, outcome: impl FnOnce(Time) -> Outcome<Ret>) {
        let at = self.tick();
        let op = self
            .ops
            .get_mut(id.0)
            .unwrap_or_else(|| panic!("recorder: unknown op id {}", id.0));
        assert!(
            matches!(op.outcome, Outcome::Pending),
            "recorder: op #{} finished twice",
            id.0
        );
        op.outcome = outcome(at);
    }
}

impl<Op, Ret> Clone for Recorder<Op, Ret> {
    fn clone(&self) -> Self {
        Recorder {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<Op, Ret> Default for Recorder<Op, Ret> {
    fn default() -> Self {
        Recorder {
            inner: Arc::new(Mutex::new(RecorderInner {
                start: Instant::now(),
                ticks: Vec::new(),
                ops: Vec::new(),
            })),
        }
    }
}

impl<Op, Ret> Recorder<Op, Ret> {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, RecorderInner<Op, Ret>> {
        // A panicking client thread must not take the history down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the invocation; call it *before* sending the request.
    pub fn invoke(&self, client: usize, op: Op) -> OpId {
        let mut g = self.lock();
        let invoke = g.tick();
        let id = g.ops.len();
        g.ops.push(Operation {
            id,
            client,
            op,
            invoke,
            outcome: Outcome::Pending,
        });
        OpId(id)
    }

    /// Records a definite result; call it *after* the reply arrived.
    pub fn complete(&self, id: OpId, ret: Ret) {
        self.lock().finish(id, |at| Outcome::Returned { ret, at });
    }

    /// Records that the outcome is unknown (timeout, connection loss).
    pub fn unknown(&self, id: OpId) {
        self.lock().finish(id, |_| Outcome::Unknown);
    }

    /// Records that the op definitely had no effect.
    pub fn fail(&self, id: OpId) {
        self.lock().finish(id, |at| Outcome::Failed { at });
    }

    pub fn len(&self) -> usize {
        self.lock().ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<Op: Clone, Ret: Clone> Recorder<Op, Ret> {
    /// A snapshot of the history; ops still in flight are [`Outcome::Pending`].
    pub fn history(&self) -> History<Op, Ret> {
        let g = self.lock();
        History {
            ops: g.ops.clone(),
            ticks: g.ticks.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------
// The register model
// ---------------------------------------------------------------------------------

/// A call on one register (znode).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegCall<V> {
    /// getData.
    Read,
    /// setData with version -1.
    Write { value: V },
    /// setData with an expected version.
    Cas { expected_version: i32, value: V },
}

/// A definite result on one register.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegRet<V> {
    /// getData: the data and `stat.version`.
    Read { value: V, version: i32 },
    /// setData succeeded: the new `stat.version`.
    Written { version: i32 },
    /// setData with an expected version failed with BadVersion.
    BadVersion,
}

/// A register's contents.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegState<V> {
    pub value: V,
    pub version: i32,
}

/// One operation on one register.
pub type RegOp<V> = Operation<RegCall<V>, RegRet<V>>;

/// A history over many registers, each op tagged with its key.
pub type KeyedRegHistory<K, V> = History<(K, RegCall<V>), RegRet<V>>;

// ---------------------------------------------------------------------------------
// Options and results
// ---------------------------------------------------------------------------------

/// Search budget and switches.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Maximum number of search steps (entry visits) before giving up.
    pub max_steps: u64,
    /// Maximum wall time of one register's search.
    pub time_limit: Option<Duration>,
    /// Maximum memory of the memoization cache (approximate).
    pub max_cache_bytes: usize,
    /// Report impossible observations without searching (see the module docs).
    pub precheck: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            max_steps: 50_000_000,
            time_limit: Some(Duration::from_secs(60)),
            max_cache_bytes: 1 << 30,
            precheck: true,
        }
    }
}

impl CheckOptions {
    pub fn with_max_steps(mut self, max_steps: u64) -> Self {
        self.max_steps = max_steps;
        self
    }

    pub fn with_time_limit(mut self, limit: Option<Duration>) -> Self {
        self.time_limit = limit;
        self
    }

    pub fn with_precheck(mut self, precheck: bool) -> Self {
        self.precheck = precheck;
        self
    }
}

/// What a check cost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Ops checked (after dropping failed ops and unknown reads).
    pub ops: usize,
    /// Of which with an unknown outcome.
    pub unknown: usize,
    /// Ops dropped (failed, or reads with an unknown outcome).
    pub dropped: usize,
    pub steps: u64,
    pub cache_entries: usize,
    pub elapsed: Duration,
}

impl fmt::Display for SearchStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ops ({} unknown, {} dropped), {} steps, {} cached states, {:?}",
            self.ops, self.unknown, self.dropped, self.steps, self.cache_entries, self.elapsed
        )
    }
}

/// The verdict on one register's history.
#[derive(Clone, Debug)]
pub enum CheckResult {
    /// Linearizable.
    Ok { stats: SearchStats },
    /// Not linearizable. `involved` lists the ids of the ops the explanation mentions.
    Violation {
        explanation: String,
        involved: Vec<usize>,
        stats: SearchStats,
    },
    /// The search budget was exceeded: no verdict.
    Timeout {
        explanation: String,
        stats: SearchStats,
    },
    /// The history itself is inconsistent (a result that does not fit its call, a
    /// response before the invocation): no verdict.
    Malformed { explanation: String },
}

impl CheckResult {
    pub fn is_ok(&self) -> bool {
        matches!(self, CheckResult::Ok { .. })
    }

    pub fn is_violation(&self) -> bool {
        matches!(self, CheckResult::Violation { .. })
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, CheckResult::Timeout { .. })
    }

    pub fn explanation(&self) -> Option<&str> {
        match self {
            CheckResult::Ok { .. } => None,
            CheckResult::Violation { explanation, .. }
            | CheckResult::Timeout { explanation, .. }
            | CheckResult::Malformed { explanation } => Some(explanation),
        }
    }

    pub fn stats(&self) -> Option<&SearchStats> {
        match self {
            CheckResult::Ok { stats }
            | CheckResult::Violation { stats, .. }
            | CheckResult::Timeout { stats, .. } => Some(stats),
            CheckResult::Malformed { .. } => None,
        }
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Ok { stats } => write!(f, "linearizable ({stats})"),
            CheckResult::Violation {
                explanation, stats, ..
            } => write!(f, "NOT LINEARIZABLE ({stats})\n{explanation}"),
            CheckResult::Timeout { explanation, stats } => {
                write!(
                    f,
                    "UNKNOWN: search budget exceeded ({stats})\n{explanation}"
                )
            }
            CheckResult::Malformed { explanation } => write!(f, "MALFORMED HISTORY: {explanation}"),
        }
    }
}

// ---------------------------------------------------------------------------------
// Keyed histories
// ---------------------------------------------------------------------------------

/// Splits a keyed history into one op list per key (op ids are kept).
pub fn partition_registers<K: Ord + Clone, V: Clone>(
    history: &KeyedRegHistory<K, V>,
) -> BTreeMap<K, Vec<RegOp<V>>> {
    let mut out: BTreeMap<K, Vec<RegOp<V>>> = BTreeMap::new();
    for o in &history.ops {
        let (key, call) = &o.op;
        out.entry(key.clone()).or_default().push(Operation {
            id: o.id,
            client: o.client,
            op: call.clone(),
            invoke: o.invoke,
            outcome: o.outcome.clone(),
        });
    }
    out
}

/// Per-key verdicts of [`check_registers`].
#[derive(Clone, Debug)]
pub struct RegistersReport<K> {
    pub results: BTreeMap<K, CheckResult>,
}

impl<K> RegistersReport<K> {
    /// Every key is linearizable.
    pub fn is_linearizable(&self) -> bool {
        self.results.values().all(CheckResult::is_ok)
    }

    /// Some key is definitely not linearizable.
    pub fn has_violation(&self) -> bool {
        self.results.values().any(CheckResult::is_violation)
    }

    /// The keys whose verdict is not "linearizable".
    pub fn failures(&self) -> impl Iterator<Item = (&K, &CheckResult)> {
        self.results.iter().filter(|(_, r)| !r.is_ok())
    }
}

impl<K: Debug> fmt::Display for RegistersReport<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bad = self.results.values().filter(|r| !r.is_ok()).count();
        writeln!(
            f,
            "{} registers, {} not linearizable or unknown",
            self.results.len(),
            bad
        )?;
        for (k, r) in &self.results {
            writeln!(f, "register {k:?}: {r}")?;
        }
        Ok(())
    }
}

/// Checks every register of a keyed history; `initial` gives each key's contents
/// before the history started.
pub fn check_registers<K, V>(
    history: &KeyedRegHistory<K, V>,
    initial: impl Fn(&K) -> RegState<V>,
    opts: &CheckOptions,
) -> RegistersReport<K>
where
    K: Ord + Clone,
    V: Clone + Eq + Hash + Debug,
{
    let results = partition_registers(history)
        .into_iter()
        .map(|(k, ops)| {
            let r = check_register_history(&ops, &initial(&k), opts);
            (k, r)
        })
        .collect();
    RegistersReport { results }
}

// ---------------------------------------------------------------------------------
// Checking one register
// ---------------------------------------------------------------------------------

/// Checks one register's history against the znode model, starting from `initial`.
pub fn check_register_history<V>(
    ops: &[RegOp<V>],
    initial: &RegState<V>,
    opts: &CheckOptions,
) -> CheckResult
where
    V: Clone + Eq + Hash + Debug,
{
    let start = Instant::now();
    let prep = match prepare(ops, initial) {
        Ok(p) => p,
        Err(explanation) => return CheckResult::Malformed { explanation },
    };
    let mut stats = SearchStats {
        ops: prep.ops.len(),
        unknown: prep.ops.iter().filter(|o| o.ret.is_none()).count(),
        dropped: prep.dropped,
        ..SearchStats::default()
    };
    let ctx = Ctx {
        src: ops,
        ops: &prep.ops,
        values: &prep.values,
        init: prep.init,
    };
    if opts.precheck {
        if let Some((explanation, involved)) = ctx.precheck() {
            stats.elapsed = start.elapsed();
            return CheckResult::Violation {
                explanation,
                involved,
                stats,
            };
        }
    }
    let outcome = search(&prep, opts, start);
    stats.steps = outcome.steps;
    stats.cache_entries = outcome.cache_entries;
    stats.elapsed = start.elapsed();
    match outcome.end {
        SearchEnd::Linearizable => CheckResult::Ok { stats },
        SearchEnd::Stuck(best) => {
            let (explanation, involved) = ctx.explain_stuck(&best);
            CheckResult::Violation {
                explanation,
                involved,
                stats,
            }
        }
        SearchEnd::Budget { reason, best } => {
            let mut explanation = format!("gave up: {reason}");
            if let Some(b) = best {
                let _ = write!(
                    explanation,
                    "; deepest partial linearization so far: {} of {} ops",
                    b.order.len(),
                    prep.ops.len()
                );
            }
            CheckResult::Timeout { explanation, stats }
        }
    }
}

/// Model state: the interned value and the version (i64: no overflow to think about).
/// Values that no read ever observes are all the same to the model: they are
/// canonicalised to [`UNREAD`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    value: u32,
    version: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CasRet {
    Ok(i64),
    BadVersion,
    Unknown,
}

/// An op with interned values; a `None` result means "unknown outcome".
#[derive(Clone, Copy, Debug)]
enum Kind {
    Read {
        value: u32,
        version: i64,
    },
    Write {
        value: u32,
        ret: Option<i64>,
    },
    Cas {
        expected: i64,
        value: u32,
        ret: CasRet,
    },
}

/// The canonical value id of every value that no read observes.
const UNREAD: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct POp {
    kind: Kind,
    invoke: Time,
    /// Response time; `None` for an unknown outcome (+infinity).
    ret: Option<Time>,
    /// Index into the caller's slice.
    src: usize,
    /// Symmetry class of an unknown-outcome write or CAS (`NONE` for other ops): ops
    /// of one class have identical effects and no response time, so once invoked they
    /// are interchangeable.
    class: u32,
}

impl POp {
    /// The exact version this op must observe when it takes effect, if its (known)
    /// result pins one.
    fn required(&self) -> Option<i64> {
        match self.kind {
            Kind::Read { version, .. } => Some(version),
            Kind::Write { ret: Some(r), .. } => Some(r - 1),
            Kind::Cas {
                expected,
                ret: CasRet::Ok(_),
                ..
            } => Some(expected),
            _ => None,
        }
    }

    /// If this op changes the register when it takes effect: the value, and the new
    /// version if that is fixed.
    fn produces(&self) -> Option<(u32, Option<i64>)> {
        match self.kind {
            Kind::Read { .. } => None,
            Kind::Write { value, ret } => Some((value, ret)),
            Kind::Cas {
                value,
                ret: CasRet::Ok(r),
                ..
            } => Some((value, Some(r))),
            Kind::Cas {
                expected,
                value,
                ret: CasRet::Unknown,
            } => Some((value, Some(expected + 1))),
            Kind::Cas {
                ret: CasRet::BadVersion,
                ..
            } => None,
        }
    }

    /// A known op that never changes the register (a read, a CAS that failed): if it
    /// fits at some point, it can be moved to any earlier point where it fits.
    fn preserves_state(&self) -> bool {
        matches!(
            self.kind,
            Kind::Read { .. }
                | Kind::Cas {
                    ret: CasRet::BadVersion,
                    ..
                }
        )
    }

    /// The (canonical) value this op writes if it changes the register.
    fn writes(&self) -> Option<u32> {
        self.produces().map(|(v, _)| v)
    }

    /// A known state change with a known new version.
    fn produces_known(&self) -> Option<(u32, i64)> {
        match (self.ret, self.produces()) {
            (Some(_), Some((v, Some(ver)))) => Some((v, ver)),
            _ => None,
        }
    }
}

/// The model: the state after `k` takes effect in `s`, or `None` if it cannot.
fn step(s: State, k: &Kind) -> Option<State> {
    match *k {
        Kind::Read { value, version } => (s.value == value && s.version == version).then_some(s),
        Kind::Write { value, ret } => {
            let next = State {
                value,
                version: s.version + 1,
            };
            ret.is_none_or(|r| r == next.version).then_some(next)
        }
        Kind::Cas {
            expected,
            value,
            ret,
        } => {
            let next = State {
                value,
                version: expected + 1,
            };
            match ret {
                CasRet::Ok(r) => (s.version == expected && r == expected + 1).then_some(next),
                CasRet::BadVersion => (s.version != expected).then_some(s),
                // Taking effect and failing is the same as never taking effect, which
                // the search covers by not linearizing the op at all.
                CasRet::Unknown => (s.version == expected).then_some(next),
            }
        }
    }
}

struct Prepared<V> {
    ops: Vec<POp>,
    values: Vec<V>,
    init: State,
    dropped: usize,
    /// Number of symmetry classes.
    classes: usize,
    /// (expected version, canonical value) -> class of unknown CASes.
    cas_classes: HashMap<(i64, u32), u32>,
}

fn prepare<V: Clone + Eq + Hash + Debug>(
    ops: &[RegOp<V>],
    initial: &RegState<V>,
) -> Result<Prepared<V>, String> {
    let mut ids: HashMap<V, u32> = HashMap::new();
    let mut values: Vec<V> = Vec::new();
    let mut intern = |v: &V| -> u32 {
        if let Some(&i) = ids.get(v) {
            return i;
        }
        let i = values.len() as u32;
        values.push(v.clone());
        ids.insert(v.clone(), i);
        i
    };
    let init = State {
        value: intern(&initial.value),
        version: i64::from(initial.version),
    };
    let mut out = Vec::with_capacity(ops.len());
    let mut dropped = 0;
    for (src, o) in ops.iter().enumerate() {
        let (ret_time, ret) = match &o.outcome {
            Outcome::Returned { ret, at } => (Some(*at), Some(ret)),
            Outcome::Unknown | Outcome::Pending => (None, None),
            Outcome::Failed { .. } => {
                dropped += 1;
                continue;
            }
        };
        if let Some(t) = ret_time {
            if t < o.invoke {
                return Err(format!(
                    "op #{} returned at t{} before it was invoked at t{}",
                    o.id, t, o.invoke
                ));
            }
        }
        let kind = match (&o.op, ret) {
            (RegCall::Read, None) => {
                dropped += 1;
                continue;
            }
            (RegCall::Read, Some(RegRet::Read { value, version })) => Kind::Read {
                value: intern(value),
                version: i64::from(*version),
            },
            (RegCall::Write { value }, None) => Kind::Write {
                value: intern(value),
                ret: None,
            },
            (RegCall::Write { value }, Some(RegRet::Written { version })) => Kind::Write {
                value: intern(value),
                ret: Some(i64::from(*version)),
            },
            (
                RegCall::Cas {
                    expected_version,
                    value,
                },
                ret,
            ) => {
                let ret = match ret {
                    None => CasRet::Unknown,
                    Some(RegRet::Written { version }) => CasRet::Ok(i64::from(*version)),
                    Some(RegRet::BadVersion) => CasRet::BadVersion,
                    Some(r @ RegRet::Read { .. }) => {
                        return Err(format!("op #{}: result {r:?} does not fit a cas", o.id))
                    }
                };
                Kind::Cas {
                    expected: i64::from(*expected_version),
                    value: intern(value),
                    ret,
                }
            }
            (call, Some(ret)) => {
                return Err(format!(
                    "op #{}: result {ret:?} does not fit call {call:?}",
                    o.id
                ))
            }
        };
        out.push(POp {
            kind,
            invoke: o.invoke,
            ret: ret_time,
            src,
            class: NONE,
        });
    }
    // Canonicalise values no read observes, so that states differing only in such a
    // value coincide.
    let mut observed = vec![false; values.len()];
    for o in &out {
        if let Kind::Read { value, .. } = o.kind {
            observed[value as usize] = true;
        }
    }
    let canon = |v: u32| if observed[v as usize] { v } else { UNREAD };
    let mut init = init;
    init.value = canon(init.value);
    let mut classes: HashMap<(bool, i64, u32), u32> = HashMap::new();
    for o in &mut out {
        match &mut o.kind {
            Kind::Read { .. } => {}
            Kind::Write { value, .. } | Kind::Cas { value, .. } => *value = canon(*value),
        }
        let key = match o.kind {
            Kind::Write { value, ret: None } => Some((false, 0, value)),
            Kind::Cas {
                expected,
                value,
                ret: CasRet::Unknown,
            } => Some((true, expected, value)),
            _ => None,
        };
        if let Some(key) = key {
            let next = classes.len() as u32;
            o.class = *classes.entry(key).or_insert(next);
        }
    }
    let cas_classes = classes
        .iter()
        .filter(|((is_cas, _, _), _)| *is_cas)
        .map(|(&(_, e, v), &c)| ((e, v), c))
        .collect();
    Ok(Prepared {
        ops: out,
        values,
        init,
        dropped,
        classes: classes.len(),
        cas_classes,
    })
}

// ---------------------------------------------------------------------------------
// The search
// ---------------------------------------------------------------------------------

const HEAD: u32 = 0;
const NONE: u32 = u32::MAX;

/// The entry list: node 0 is the head sentinel, the last node the tail sentinel,
/// nodes in between are call and return entries sorted by time.
struct EntryList {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Node -> op index.
    op: Vec<u32>,
    /// Call node <-> return node.
    mate: Vec<u32>,
    is_call: Vec<bool>,
    tail: u32,
}

impl EntryList {
    fn new(ops: &[POp]) -> Self {
        let n = ops.len();
        // (time, 0 = call / 1 = return, op): calls before returns on equal times.
        let mut events: Vec<(Time, u8, u32)> = Vec::with_capacity(2 * n);
        for (i, o) in ops.iter().enumerate() {
            events.push((o.invoke, 0, i as u32));
            events.push((o.ret.unwrap_or(Time::MAX), 1, i as u32));
        }
        events.sort_unstable();
        let total = 2 * n + 2;
        let tail = (total - 1) as u32;
        let mut list = EntryList {
            next: (1..=total as u32).collect(),
            prev: (0..total as u32).map(|i| i.wrapping_sub(1)).collect(),
            op: vec![NONE; total],
            mate: vec![NONE; total],
            is_call: vec![false; total],
            tail,
        };
        list.next[tail as usize] = NONE;
        list.prev[HEAD as usize] = NONE;
        let mut call_node = vec![0u32; n];
        for (k, &(_, kind, i)) in events.iter().enumerate() {
            let node = k + 1;
            list.op[node] = i;
            if kind == 0 {
                list.is_call[node] = true;
                call_node[i as usize] = node as u32;
            } else {
                let c = call_node[i as usize];
                list.mate[node] = c;
                list.mate[c as usize] = node as u32;
            }
        }
        list
    }

    /// Unlinks a call entry and its return entry.
    fn lift(&mut self, e: u32) {
        self.unlink(e);
        self.unlink(self.mate[e as usize]);
    }

    /// Undoes [`EntryList::lift`] (in reverse order).
    fn unlift(&mut self, e: u32) {
        self.relink(self.mate[e as usize]);
        self.relink(e);
    }

    fn unlink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = n;
        self.prev[n as usize] = p;
    }

    fn relink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = e;
        self.prev[n as usize] = e;
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn state_hash(s: State) -> u64 {
    splitmix64(splitmix64(u64::from(s.value)) ^ s.version as u64)
}

/// Passes a pre-mixed u64 through.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The set of visited (linearized bitset, state) pairs. Bitsets live in one flat
/// arena; the map goes from the combined hash to a chain of arena entries.
struct Cache {
    words: usize,
    heads: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
    states: Vec<State>,
    chain: Vec<u32>,
    bits: Vec<u64>,
}

impl Cache {
    fn new(words: usize) -> Self {
        Cache {
            words,
            heads: HashMap::default(),
            states: Vec::new(),
            chain: Vec::new(),
            bits: Vec::new(),
        }
    }

    /// Inserts the pair; false if it was already there.
    fn insert(&mut self, hash: u64, bits: &[u64], state: State) -> bool {
        let w = self.words;
        let new = self.states.len() as u32;
        match self.heads.entry(hash) {
            Entry::Occupied(mut e) => {
                let mut at = *e.get();
                while at != NONE {
                    let a = at as usize;
                    if self.states[a] == state && self.bits[a * w..(a + 1) * w] == *bits {
                        return false;
                    }
                    at = self.chain[a];
                }
                self.chain.push(*e.get());
                e.insert(new);
            }
            Entry::Vacant(e) => {
                e.insert(new);
                self.chain.push(NONE);
            }
        }
        self.states.push(state);
        self.bits.extend_from_slice(bits);
        true
    }

    fn len(&self) -> usize {
        self.states.len()
    }

    fn approx_bytes(&self) -> usize {
        self.bits.capacity() * 8
            + self.states.capacity() * std::mem::size_of::<State>()
            + self.chain.capacity() * 4
            + self.heads.capacity() * 16
    }
}

/// What the unlinearized ops with a known outcome still need, to cut dead ends as
/// soon as they are entered. Versions only grow, and every state change bumps the
/// version, so:
///
/// - (a) the register must not move past the smallest version an unlinearized known
///   op still needs;
/// - (b) the op producing version `k` must write the value every unlinearized read of
///   version `k` observed;
/// - (c) after the last unlinearized op that can write `v` produced `(v, k)`, every
///   unlinearized read of `v` must be a read of version `k`.
struct Constraints {
    /// Versions required by unlinearized known ops (multiset).
    versions: BTreeMap<i64, u32>,
    /// (version, value) of unlinearized known reads (multiset).
    reads_by_version: BTreeMap<(i64, u32), u32>,
    /// (value, version) of the same reads.
    reads_by_value: BTreeMap<(u32, i64), u32>,
    /// Per observed value: unlinearized ops that may write it.
    writers: Vec<u32>,
}

fn multiset_add<K: Ord>(m: &mut BTreeMap<K, u32>, k: K) {
    *m.entry(k).or_insert(0) += 1;
}

fn multiset_remove<K: Ord>(m: &mut BTreeMap<K, u32>, k: K) {
    if let Some(c) = m.get_mut(&k) {
        *c -= 1;
        if *c == 0 {
            m.remove(&k);
        }
    }
}

impl Constraints {
    fn new(ops: &[POp], values: usize) -> Self {
        let mut c = Constraints {
            versions: BTreeMap::new(),
            reads_by_version: BTreeMap::new(),
            reads_by_value: BTreeMap::new(),
            writers: vec![0; values],
        };
        for o in ops {
            c.unlinearized(o);
        }
        c
    }

    /// `o` becomes (again) unlinearized.
    fn unlinearized(&mut self, o: &POp) {
        if let Some(r) = o.required() {
            multiset_add(&mut self.versions, r);
        }
        if let Kind::Read { value, version } = o.kind {
            multiset_add(&mut self.reads_by_version, (version, value));
            multiset_add(&mut self.reads_by_value, (value, version));
        }
        if let Some(v) = o.writes().filter(|&v| v != UNREAD) {
            self.writers[v as usize] += 1;
        }
    }

    /// `o` is linearized.
    fn linearized(&mut self, o: &POp) {
        if let Some(r) = o.required() {
            multiset_remove(&mut self.versions, r);
        }
        if let Kind::Read { value, version } = o.kind {
            multiset_remove(&mut self.reads_by_version, (version, value));
            multiset_remove(&mut self.reads_by_value, (value, version));
        }
        if let Some(v) = o.writes().filter(|&v| v != UNREAD) {
            self.writers[v as usize] -= 1;
        }
    }

    /// Can the unlinearized `o`, taking effect with result `next`, still be part of a
    /// complete linearization?
    fn viable(&self, o: &POp, next: State) -> bool {
        // (a), not counting o's own requirement.
        let mut it = self.versions.iter();
        if let Some((&k, &c)) = it.next() {
            let min = if Some(k) == o.required() && c == 1 {
                it.next().map(|(&k, _)| k)
            } else {
                Some(k)
            };
            if min.is_some_and(|m| next.version > m) {
                return false;
            }
        }
        let Some(v) = o.writes() else {
            return true;
        };
        // (b)
        let ver = next.version;
        if self
            .reads_by_version
            .range((ver, 0)..=(ver, u32::MAX))
            .any(|(&(_, value), _)| value != v)
        {
            return false;
        }
        // (c)
        if v != UNREAD && self.writers[v as usize] == 1 {
            return !self
                .reads_by_value
                .range((v, i64::MIN)..=(v, i64::MAX))
                .any(|(&(_, version), _)| version != ver);
        }
        true
    }
}

struct Frame {
    node: u32,
    state: State,
}

/// The deepest point the search got stuck at.
#[derive(Clone, Debug)]
struct Best {
    /// Linearized ops, in order.
    order: Vec<u32>,
    state: State,
    /// The op whose return entry was reached without it being linearized.
    stuck: Option<u32>,
    /// Call entries ahead of that return entry: the ops that could have gone next.
    pending: Vec<u32>,
}

impl Best {
    /// The search is stuck at `entry` (a return entry, a failing state-preserving op or
    /// the tail).
    fn record(list: &EntryList, stack: &[Frame], state: State, entry: u32) -> Best {
        let mut pending = Vec::new();
        let mut e = list.next[HEAD as usize];
        while e != entry {
            if list.is_call[e as usize] {
                pending.push(list.op[e as usize]);
            }
            e = list.next[e as usize];
        }
        Best {
            order: stack.iter().map(|f| list.op[f.node as usize]).collect(),
            state,
            stuck: (entry != list.tail).then(|| list.op[entry as usize]),
            pending,
        }
    }
}

enum SearchEnd {
    Linearizable,
    Stuck(Best),
    Budget { reason: String, best: Option<Best> },
}

struct SearchOutcome {
    end: SearchEnd,
    steps: u64,
    cache_entries: usize,
}

/// Which symmetry classes the current scan of the entry list has met: only the
/// first pending member of a class is ever tried at one point (any other member
/// would lead to the same states up to renaming, see [`POp::class`]).
struct Seen {
    stamp: Vec<u64>,
    scan: u64,
}

impl Seen {
    fn new_scan(&mut self) {
        self.scan += 1;
    }

    fn met(&self, class: u32) -> bool {
        self.stamp[class as usize] == self.scan
    }

    /// Marks the class; false if it was already met in this scan.
    fn first(&mut self, class: u32) -> bool {
        let s = &mut self.stamp[class as usize];
        let first = *s != self.scan;
        *s = self.scan;
        first
    }
}

/// An unknown write of value `v` at `entry`, in state `state` (version `e`), is
/// dominated by a candidate unknown CAS expecting `e` that writes `v`: same effect, and
/// the CAS is of no use later (versions only grow) while the write might be. So if the
/// CAS was already tried at this node, or will be (it is ahead, before the first return
/// entry), the write need not be.
fn cas_dominates(
    list: &EntryList,
    ops: &[POp],
    cas_classes: &HashMap<(i64, u32), u32>,
    seen: &Seen,
    entry: u32,
    state: State,
) -> bool {
    let o = &ops[list.op[entry as usize] as usize];
    let Kind::Write { value, ret: None } = o.kind else {
        return false;
    };
    let Some(&cc) = cas_classes.get(&(state.version, value)) else {
        return false;
    };
    if seen.met(cc) {
        return true;
    }
    let mut e = list.next[entry as usize];
    while e != list.tail && list.is_call[e as usize] {
        if ops[list.op[e as usize] as usize].class == cc {
            return true;
        }
        e = list.next[e as usize];
    }
    false
}

fn search<V>(prep: &Prepared<V>, opts: &CheckOptions, start: Instant) -> SearchOutcome {
    let ops = &prep.ops[..];
    let n = ops.len();
    let mut list = EntryList::new(ops);
    let words = n.div_ceil(64).max(1);
    let mut bits = vec![0u64; words];
    let zobrist: Vec<u64> = (0..n as u64)
        .map(|i| splitmix64(i ^ 0x6A09_E667_F3BC_C908))
        .collect();
    let mut set_hash = 0u64;
    let mut cache = Cache::new(words);
    let mut constraints = Constraints::new(ops, prep.values.len());
    let mut seen = Seen {
        stamp: vec![0; prep.classes],
        scan: 1,
    };
    let mut remaining_known = ops.iter().filter(|o| o.ret.is_some()).count();
    let mut state = prep.init;
    let mut stack: Vec<Frame> = Vec::new();
    let mut best: Option<Best> = None;
    let mut entry = list.next[HEAD as usize];
    let mut steps = 0u64;
    let done = |end, steps, cache: &Cache| SearchOutcome {
        end,
        steps,
        cache_entries: cache.len(),
    };
    loop {
        // Every op with a known outcome is linearized: the unknown ones still pending
        // never took effect.
        if remaining_known == 0 {
            return done(SearchEnd::Linearizable, steps, &cache);
        }
        steps += 1;
        if steps > opts.max_steps {
            let reason = format!("more than {} search steps", opts.max_steps);
            return done(SearchEnd::Budget { reason, best }, steps, &cache);
        }
        if steps & 0x3FF == 0 {
            if let Some(limit) = opts.time_limit {
                if start.elapsed() > limit {
                    let reason = format!("time limit {limit:?} exceeded");
                    return done(SearchEnd::Budget { reason, best }, steps, &cache);
                }
            }
            if cache.approx_bytes() > opts.max_cache_bytes {
                let reason = format!("cache larger than {} bytes", opts.max_cache_bytes);
                return done(SearchEnd::Budget { reason, best }, steps, &cache);
            }
        }
        let is_call = entry != list.tail && list.is_call[entry as usize];
        if is_call {
            let i = list.op[entry as usize] as usize;
            let o = &ops[i];
            let mut dead = false;
            if (o.class == NONE || seen.first(o.class))
                && !cas_dominates(&list, ops, &prep.cas_classes, &seen, entry, state)
            {
                let applicable = step(state, &o.kind);
                match applicable.filter(|&s| constraints.viable(o, s)) {
                    Some(next) => {
                        bits[i / 64] |= 1 << (i % 64);
                        let h = set_hash ^ zobrist[i];
                        if cache.insert(h ^ state_hash(next), &bits, next) {
                            stack.push(Frame { node: entry, state });
                            state = next;
                            set_hash = h;
                            list.lift(entry);
                            constraints.linearized(o);
                            if o.ret.is_some() {
                                remaining_known -= 1;
                            }
                            entry = list.next[HEAD as usize];
                            seen.new_scan();
                            continue;
                        }
                        bits[i / 64] &= !(1 << (i % 64));
                        // Already explored: it failed. For a state-preserving op that
                        // means this whole node fails (see below).
                        dead = o.preserves_state();
                    }
                    None => dead = applicable.is_some() && o.preserves_state(),
                }
            }
            if !dead {
                entry = list.next[entry as usize];
                continue;
            }
        }
        // Dead end: a return entry (its op had to take effect by now and cannot), or a
        // state-preserving op that fits here but fails (it could be moved to this point
        // of any valid completion, so there is none).
        if best.as_ref().is_none_or(|b| stack.len() > b.order.len()) {
            best = Some(Best::record(&list, &stack, state, entry));
        }
        loop {
            let Some(f) = stack.pop() else {
                let best = best.expect("recorded above");
                return done(SearchEnd::Stuck(best), steps, &cache);
            };
            let i = list.op[f.node as usize] as usize;
            let o = &ops[i];
            state = f.state;
            bits[i / 64] &= !(1 << (i % 64));
            set_hash ^= zobrist[i];
            list.unlift(f.node);
            constraints.unlinearized(o);
            if o.ret.is_some() {
                remaining_known += 1;
            }
            if o.preserves_state() {
                // It fitted at this node and failed: so does the node.
                continue;
            }
            // Resume the scan that lifted f.node, right after it: the classes met by
            // that scan are those of the call entries up to and including f.node.
            seen.new_scan();
            let mut e = list.next[HEAD as usize];
            loop {
                let c = ops[list.op[e as usize] as usize].class;
                if list.is_call[e as usize] && c != NONE {
                    seen.first(c);
                }
                if e == f.node {
                    break;
                }
                e = list.next[e as usize];
            }
            entry = list.next[f.node as usize];
            break;
        }
    }
}

// ---------------------------------------------------------------------------------
// Prechecks and explanations
// ---------------------------------------------------------------------------------

struct Ctx<'a, V> {
    src: &'a [RegOp<V>],
    ops: &'a [POp],
    values: &'a [V],
    init: State,
}

/// How many ops of one kind an explanation lists.
const LIST_MAX: usize = 8;

impl<V: Debug> Ctx<'_, V> {
    fn id(&self, i: usize) -> usize {
        self.src[self.ops[i].src].id
    }

    fn describe(&self, i: usize) -> String {
        describe_op(&self.src[self.ops[i].src])
    }

    fn state(&self, s: State) -> String {
        if s.value == UNREAD {
            format!("(<a value no read observed>, v{})", s.version)
        } else {
            format!("({:?}, v{})", self.values[s.value as usize], s.version)
        }
    }

    /// The ops, sorted by invocation (ties by response).
    fn by_invoke(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.ops.len()).collect();
        idx.sort_by_key(|&i| (self.ops[i].invoke, self.ops[i].ret.unwrap_or(Time::MAX)));
        idx
    }

    /// Observations no linearization can explain, reported without a search.
    fn precheck(&self) -> Option<(String, Vec<usize>)> {
        let order = self.by_invoke();
        let mut writers: HashMap<u32, Vec<usize>> = HashMap::new();
        for &i in &order {
            if let Some((v, _)) = self.ops[i].produces() {
                writers.entry(v).or_default().push(i);
            }
        }
        let head = "not linearizable: ";
        for &i in &order {
            let o = &self.ops[i];
            if let Kind::Cas {
                expected,
                ret: CasRet::Ok(r),
                ..
            } = o.kind
            {
                if r != expected + 1 {
                    let msg = format!(
                        "{head}{} succeeded with expected version {expected} but reported \
                         new version {r} (must be {})",
                        self.describe(i),
                        expected + 1
                    );
                    return Some((msg, vec![self.id(i)]));
                }
            }
            if let Some(r) = o.required() {
                if r < self.init.version {
                    let msg = format!(
                        "{head}{} needs the register at version {r}, but it starts at version {} \
                         and versions never decrease",
                        self.describe(i),
                        self.init.version
                    );
                    return Some((msg, vec![self.id(i)]));
                }
            }
            if let Kind::Read { value, version } = o.kind {
                if let Some(found) = self.check_read_source(i, value, version, &writers) {
                    return Some(found);
                }
            }
        }
        let mut produced: BTreeMap<i64, usize> = BTreeMap::new();
        for &i in &order {
            if let Some((_, ver)) = self.ops[i].produces_known() {
                if let Some(&j) = produced.get(&ver) {
                    let msg = format!(
                        "{head}two ops report creating version {ver}:\n  {}\n  {}",
                        self.describe(j),
                        self.describe(i)
                    );
                    return Some((msg, vec![self.id(j), self.id(i)]));
                }
                produced.insert(ver, i);
            }
        }
        None
    }

    /// A read of (value, version) needs an op that can have produced that pair and was
    /// invoked no later than the read's response.
    fn check_read_source(
        &self,
        r: usize,
        value: u32,
        version: i64,
        writers: &HashMap<u32, Vec<usize>>,
    ) -> Option<(String, Vec<usize>)> {
        if value == self.init.value && version == self.init.version {
            return None;
        }
        let read = &self.ops[r];
        let read_ret = read.ret.unwrap_or(Time::MAX);
        let ws: &[usize] = writers.get(&value).map_or(&[], Vec::as_slice);
        let fits = |w: usize| match self.ops[w].produces() {
            Some((_, Some(v))) => v == version,
            Some((_, None)) => version > self.init.version,
            None => false,
        };
        if ws
            .iter()
            .any(|&w| fits(w) && self.ops[w].invoke <= read_ret)
        {
            return None;
        }
        let head = format!("not linearizable: {}", self.describe(r));
        let mut involved = vec![self.id(r)];
        if ws.is_empty() {
            let msg = if value == self.init.value {
                format!(
                    "{head}\n  observed the initial value with version {version}, but the \
                     initial version is {} and nothing else wrote that value",
                    self.init.version
                )
            } else {
                format!("{head}\n  observed a value that no operation ever wrote")
            };
            return Some((msg, involved));
        }
        let mut msg = head;
        let fitting: Vec<usize> = ws.iter().copied().filter(|&w| fits(w)).collect();
        if fitting.is_empty() {
            let _ = write!(
                msg,
                "\n  observed version {version}, but no writer of that value can have \
                 produced that version; the writers are:"
            );
        } else {
            let _ = write!(
                msg,
                "\n  observed a value whose writers were all invoked after the read returned \
                 (at t{read_ret}):"
            );
        }
        let listed = if fitting.is_empty() { ws } else { &fitting };
        for &w in listed.iter().take(LIST_MAX) {
            let _ = write!(msg, "\n    {}", self.describe(w));
            involved.push(self.id(w));
        }
        if listed.len() > LIST_MAX {
            let _ = write!(msg, "\n    ... and {} more", listed.len() - LIST_MAX);
        }
        Some((msg, involved))
    }

    /// Why op `i` cannot be linearized next in state `s`, given the linearized set;
    /// and the op that blocks it, if that is the reason.
    fn why_not(&self, s: State, i: usize, linearized: &[bool]) -> (String, Option<usize>) {
        let o = &self.ops[i];
        let reason = match step(s, &o.kind) {
            None => match o.kind {
                Kind::Read { .. } => format!("a read here would observe {}", self.state(s)),
                Kind::Write { ret, .. } => format!(
                    "a write here would create version {}, not {}",
                    s.version + 1,
                    ret.unwrap_or_default()
                ),
                Kind::Cas {
                    expected,
                    ret: CasRet::BadVersion,
                    ..
                } => format!("the register is at its expected version {expected} here"),
                Kind::Cas { expected, ret, .. } => {
                    if ret == CasRet::Ok(expected + 1) || ret == CasRet::Unknown {
                        format!(
                            "expects version {expected}, the register is at v{}",
                            s.version
                        )
                    } else {
                        format!("a success here could not report {ret:?}")
                    }
                }
            },
            Some(next) => {
                let blocker = (0..self.ops.len())
                    .filter(|&j| j != i && !linearized[j] && self.ops[j].ret.is_some())
                    .filter_map(|j| self.ops[j].required().map(|r| (r, j)))
                    .filter(|&(r, _)| r < next.version)
                    .min();
                if let Some((r, j)) = blocker {
                    let why = format!(
                        "it would move the register to v{}, but {} still needs v{r}",
                        next.version,
                        self.describe(j)
                    );
                    return (why, Some(j));
                }
                let pending_read = |j: usize| match self.ops[j].kind {
                    Kind::Read { value, version } if !linearized[j] && j != i => {
                        Some((value, version))
                    }
                    _ => None,
                };
                if let Some(v) = self.ops[i].writes() {
                    let other = (0..self.ops.len()).find(|&j| {
                        pending_read(j).is_some_and(|(val, ver)| ver == next.version && val != v)
                    });
                    if let Some(j) = other {
                        let why = format!(
                            "it would create v{} with another value than {} observed",
                            next.version,
                            self.describe(j)
                        );
                        return (why, Some(j));
                    }
                    let last_writer = v != UNREAD
                        && !(0..self.ops.len())
                            .any(|j| j != i && !linearized[j] && self.ops[j].writes() == Some(v));
                    let other = (0..self.ops.len()).find(|&j| {
                        pending_read(j).is_some_and(|(val, ver)| val == v && ver != next.version)
                    });
                    if let (true, Some(j)) = (last_writer, other) {
                        let why = format!(
                            "it is the last op that can write this value and would do so at \
                             v{}, but {} observed it at another version",
                            next.version,
                            self.describe(j)
                        );
                        return (why, Some(j));
                    }
                }
                let why = "every continuation from there was explored and fails";
                return (why.to_string(), None);
            }
        };
        (reason, None)
    }

    fn explain_stuck(&self, best: &Best) -> (String, Vec<usize>) {
        let n = self.ops.len();
        let unknown = self.ops.iter().filter(|o| o.ret.is_none()).count();
        let mut linearized = vec![false; n];
        for &i in &best.order {
            linearized[i as usize] = true;
        }
        let mut msg = String::new();
        let mut involved = Vec::new();
        let Some(stuck) = best.stuck.map(|s| s as usize) else {
            let _ = write!(
                msg,
                "not linearizable: no order of the {n} ops ({unknown} with unknown outcome) \
                 is valid; deepest partial linearization: {} ops, state {}",
                best.order.len(),
                self.state(best.state)
            );
            return (msg, involved);
        };
        involved.push(self.id(stuck));
        let (why, blocker) = self.why_not(best.state, stuck, &linearized);
        involved.extend(blocker.map(|j| self.id(j)));
        let _ = write!(
            msg,
            "not linearizable: no valid order of the {n} ops ({unknown} with unknown outcome) \
             can fit this op before its response:\n  {}\n\
             deepest partial linearization: {} ops, ending in state {}; there: {}",
            self.describe(stuck),
            best.order.len(),
            self.state(best.state),
            why,
        );
        // The last state changes of the partial linearization.
        let mut s = self.init;
        let mut changes: Vec<(usize, State)> = Vec::new();
        for &i in &best.order {
            let i = i as usize;
            if let Some(next) = step(s, &self.ops[i].kind) {
                if next != s {
                    changes.push((i, next));
                }
                s = next;
            }
        }
        if changes.is_empty() {
            let _ = write!(msg, "\nthat is the initial state");
        } else {
            let skip = changes.len().saturating_sub(4);
            let _ = write!(
                msg,
                "\nthe state was produced by (last changes, oldest first):"
            );
            if skip > 0 {
                let _ = write!(msg, "\n    ... {skip} earlier changes");
            }
            for &(i, st) in &changes[skip..] {
                let _ = write!(msg, "\n    {} => {}", self.describe(i), self.state(st));
                involved.push(self.id(i));
            }
        }
        let others: Vec<usize> = best
            .pending
            .iter()
            .map(|&i| i as usize)
            .filter(|&i| i != stuck)
            .collect();
        let (known, unknown): (Vec<usize>, Vec<usize>) =
            others.iter().partition(|&&i| self.ops[i].ret.is_some());
        if known.is_empty() {
            let _ = write!(msg, "\nno other op with a known outcome was pending there");
        } else {
            let _ = write!(
                msg,
                "\nother pending ops with a known outcome, none of which fits:"
            );
            for &i in known.iter().take(LIST_MAX) {
                let (why, blocker) = self.why_not(best.state, i, &linearized);
                let _ = write!(msg, "\n    {}: {why}", self.describe(i));
                involved.push(self.id(i));
                involved.extend(blocker.map(|j| self.id(j)));
            }
            if known.len() > LIST_MAX {
                let _ = write!(msg, "\n    ... and {} more", known.len() - LIST_MAX);
            }
        }
        // Unknown-outcome ops, grouped by why they cannot go next.
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for &i in &unknown {
            let why = match self.ops[i].kind {
                Kind::Cas { expected, .. } if expected != best.state.version => {
                    format!(
                        "CASes expecting another version than v{}",
                        best.state.version
                    )
                }
                _ => {
                    let (why, blocker) = self.why_not(best.state, i, &linearized);
                    involved.extend(blocker.map(|j| self.id(j)));
                    why
                }
            };
            match groups.iter_mut().find(|(w, _)| *w == why) {
                Some((_, members)) => members.push(i),
                None => groups.push((why, vec![i])),
            }
        }
        if !groups.is_empty() {
            let _ = write!(msg, "\npending ops with an unknown outcome:");
        }
        for (why, members) in &groups {
            let ids: Vec<String> = members
                .iter()
                .take(LIST_MAX)
                .map(|&i| format!("#{}", self.id(i)))
                .collect();
            let more = if members.len() > LIST_MAX {
                ", ..."
            } else {
                ""
            };
            let _ = write!(
                msg,
                "\n    {} ({}{more}): {why}",
                members.len(),
                ids.join(", ")
            );
        }
        if let Kind::Read { value, version } = self.ops[stuck].kind {
            let ws: Vec<usize> = (0..n)
                .filter(|&w| self.ops[w].produces().is_some_and(|(v, _)| v == value))
                .collect();
            let is_init = value == self.init.value && version == self.init.version;
            if is_init {
                let _ = write!(msg, "\nthe read observed the initial state");
            }
            if !ws.is_empty() {
                let _ = write!(msg, "\nthe observed value was written by:");
                for &w in ws.iter().take(LIST_MAX) {
                    let late = if self.ops[w].invoke > self.ops[stuck].ret.unwrap_or(Time::MAX) {
                        " (invoked after the read returned)"
                    } else {
                        ""
                    };
                    let _ = write!(msg, "\n    {}{late}", self.describe(w));
                    involved.push(self.id(w));
                }
                if ws.len() > LIST_MAX {
                    let _ = write!(msg, "\n    ... and {} more", ws.len() - LIST_MAX);
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        involved.retain(|id| seen.insert(*id));
        (msg, involved)
    }
}

/// `#12 c3 write(7) -> v5 [t40, t44]`.
pub fn describe_op<V: Debug>(o: &RegOp<V>) -> String {
    let call = match &o.op {
        RegCall::Read => "read".to_string(),
        RegCall::Write { value } => format!("write({value:?})"),
        RegCall::Cas {
            expected_version,
            value,
        } => format!("cas(v{expected_version} -> {value:?})"),
    };
    let (ret, end) = match &o.outcome {
        Outcome::Returned { ret, at } => {
            let ret = match ret {
                RegRet::Read { value, version } => format!("({value:?}, v{version})"),
                RegRet::Written { version } => format!("v{version}"),
                RegRet::BadVersion => "BadVersion".to_string(),
            };
            (ret, format!("t{at}]"))
        }
        Outcome::Failed { at } => ("failed (no effect)".to_string(), format!("t{at}]")),
        Outcome::Unknown | Outcome::Pending => ("? (outcome unknown)".to_string(), "inf)".into()),
    };
    format!(
        "#{} c{} {call} -> {ret} [t{}, {end}",
        o.id, o.client, o.invoke
    )
}

// ---------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    type Op = RegOp<i64>;

    fn init0() -> RegState<i64> {
        RegState {
            value: 0,
            version: 0,
        }
    }

    fn check(ops: &[Op]) -> CheckResult {
        check_register_history(ops, &init0(), &CheckOptions::default())
    }

    /// Checks with and without prechecks; both must agree on the verdict.
    fn check_both(ops: &[Op]) -> CheckResult {
        let with = check(ops);
        let without =
            check_register_history(ops, &init0(), &CheckOptions::default().with_precheck(false));
        assert_eq!(
            with.is_ok(),
            without.is_ok(),
            "precheck changed the verdict:\n{with}\n---\n{without}"
        );
        assert_eq!(with.is_violation(), without.is_violation());
        with
    }

    /// A hand-built history with auto ids.
    #[derive(Default)]
    struct H {
        ops: Vec<Op>,
    }

    impl H {
        fn push(
            &mut self,
            client: usize,
            op: RegCall<i64>,
            invoke: Time,
            out: Outcome<RegRet<i64>>,
        ) -> usize {
            let id = self.ops.len();
            self.ops.push(Operation {
                id,
                client,
                op,
                invoke,
                outcome: out,
            });
            id
        }

        fn read(&mut self, c: usize, t0: Time, t1: Time, value: i64, version: i32) -> usize {
            let ret = RegRet::Read { value, version };
            self.push(c, RegCall::Read, t0, Outcome::Returned { ret, at: t1 })
        }

        fn write(&mut self, c: usize, t0: Time, t1: Time, value: i64, version: i32) -> usize {
            let ret = RegRet::Written { version };
            self.push(
                c,
                RegCall::Write { value },
                t0,
                Outcome::Returned { ret, at: t1 },
            )
        }

        fn write_unknown(&mut self, c: usize, t0: Time, value: i64) -> usize {
            self.push(c, RegCall::Write { value }, t0, Outcome::Unknown)
        }

        fn cas(
            &mut self,
            c: usize,
            t0: Time,
            t1: Time,
            expected: i32,
            value: i64,
            ret: Option<i32>,
        ) -> usize {
            let ret = match ret {
                Some(version) => RegRet::Written { version },
                None => RegRet::BadVersion,
            };
            let call = RegCall::Cas {
                expected_version: expected,
                value,
            };
            self.push(c, call, t0, Outcome::Returned { ret, at: t1 })
        }

        fn cas_unknown(&mut self, c: usize, t0: Time, expected: i32, value: i64) -> usize {
            let call = RegCall::Cas {
                expected_version: expected,
                value,
            };
            self.push(c, call, t0, Outcome::Unknown)
        }
    }

    fn assert_violation(r: &CheckResult, must_involve: &[usize]) {
        match r {
            CheckResult::Violation { involved, .. } => {
                for id in must_involve {
                    assert!(involved.contains(id), "op #{id} not in {involved:?}:\n{r}");
                }
            }
            other => panic!("expected a violation, got {other}"),
        }
    }

    #[test]
    fn linear_sequential_histories_pass() {
        // Goal: a strictly sequential history of reads, writes, successful and failed
        // CASes that follows the znode model is accepted, as is the empty history.
        assert!(check(&[]).is_ok());
        let mut h = H::default();
        h.read(0, 0, 1, 0, 0);
        h.write(0, 2, 3, 1, 1);
        h.read(1, 4, 5, 1, 1);
        h.cas(1, 6, 7, 1, 2, Some(2));
        h.cas(0, 8, 9, 1, 3, None);
        h.read(0, 10, 11, 2, 2);
        h.write(1, 12, 13, 4, 3);
        h.read(0, 14, 15, 4, 3);
        let r = check_both(&h.ops);
        assert!(r.is_ok(), "{r}");
        assert_eq!(r.stats().unwrap().ops, 8);
    }

    #[test]
    fn linear_stale_read_after_completed_write_fails() {
        // Goal: a read invoked after a write was acknowledged must not return the value
        // from before that write; the explanation names the read and the write.
        let mut h = H::default();
        let w = h.write(0, 0, 10, 1, 1);
        let r = h.read(1, 11, 12, 0, 0);
        let res = check_both(&h.ops);
        assert_violation(&res, &[w, r]);
        let text = res.explanation().unwrap();
        assert!(text.contains("#0 c0 write(1) -> v1 [t0, t10]"), "{text}");
        assert!(text.contains("#1 c1 read -> (0, v0) [t11, t12]"), "{text}");
    }

    #[test]
    fn linear_concurrent_cas_same_expected_version_both_succeed_fails() {
        // Goal: two overlapping CASes expecting the same version cannot both succeed,
        // whether they report the same new version (precheck) or different ones.
        let mut h = H::default();
        let a = h.cas(0, 0, 10, 0, 1, Some(1));
        let b = h.cas(1, 1, 9, 0, 2, Some(1));
        assert_violation(&check_both(&h.ops), &[a, b]);
        let off = CheckOptions::default().with_precheck(false);
        assert_violation(&check_register_history(&h.ops, &init0(), &off), &[]);

        let mut h = H::default();
        h.cas(0, 0, 10, 0, 1, Some(1));
        h.cas(1, 1, 9, 0, 2, Some(2));
        assert!(check_both(&h.ops).is_violation());

        // Sanity: one succeeds, the other fails with BadVersion: fine either order.
        let mut h = H::default();
        h.cas(0, 0, 10, 0, 1, Some(1));
        h.cas(1, 1, 9, 0, 2, None);
        h.read(2, 11, 12, 1, 1);
        assert!(check_both(&h.ops).is_ok());
    }

    #[test]
    fn linear_lost_acknowledged_write_fails() {
        // Goal: once a write is acknowledged, reads that start afterwards must not see
        // the older value (the write was lost); while the write is in flight they may.
        let mut h = H::default();
        h.write(0, 0, 5, 1, 1);
        h.read(1, 6, 7, 1, 1);
        let w2 = h.write(0, 8, 20, 2, 2);
        h.read(1, 9, 10, 1, 1); // concurrent with w2: old value is fine
        let lost = h.read(1, 21, 22, 1, 1);
        let res = check_both(&h.ops);
        assert_violation(&res, &[w2, lost]);

        let mut ok = h.ops.clone();
        ok.pop();
        assert!(check_both(&ok).is_ok());
    }

    #[test]
    fn linear_timed_out_write_later_read_passes() {
        // Goal: a write whose outcome is unknown may have taken effect after its
        // invocation: a later read of its value (and later writes) are consistent.
        let mut h = H::default();
        h.write_unknown(0, 0, 1);
        h.read(1, 5, 6, 0, 0);
        h.read(1, 7, 8, 1, 1);
        h.write(1, 9, 10, 2, 2);
        h.read(2, 11, 12, 2, 2);
        assert!(check_both(&h.ops).is_ok());
        // Even observed long after the client gave up (response time is +infinity).
        let mut h = H::default();
        h.write_unknown(0, 0, 1);
        h.read(1, 100, 101, 0, 0);
        h.read(1, 1000, 1001, 1, 1);
        assert!(check_both(&h.ops).is_ok());
    }

    #[test]
    fn linear_timed_out_write_never_observed_passes() {
        // Goal: a write whose outcome is unknown may never have taken effect: later
        // writes reuse its version and reads never see its value.
        let mut h = H::default();
        h.write_unknown(0, 0, 1);
        h.read(1, 5, 6, 0, 0);
        h.write(1, 7, 8, 2, 1);
        h.read(2, 9, 10, 2, 1);
        h.cas(2, 11, 12, 1, 3, Some(2));
        h.read(0, 13, 14, 3, 2);
        assert!(check_both(&h.ops).is_ok());
        // A pending op (history taken mid-flight) is treated the same.
        let mut ops = h.ops.clone();
        ops[0].outcome = Outcome::Pending;
        assert!(check_both(&ops).is_ok());
    }

    #[test]
    fn linear_unknown_write_both_branches_are_exact() {
        // Goal: the checker considers both "took effect somewhere after invoke" and
        // "never", but nothing else: it may fill a version gap only after its
        // invocation, and once observed it cannot be undone.
        // Fills the gap between v1 and v3.
        let mut h = H::default();
        h.write(0, 0, 1, 1, 1);
        h.write_unknown(1, 2, 2);
        h.write(0, 10, 11, 3, 3);
        h.read(2, 12, 13, 3, 3);
        assert!(check_both(&h.ops).is_ok());
        // The same gap, but the unknown write was invoked after v3 was acknowledged.
        let mut h = H::default();
        h.write(0, 0, 1, 1, 1);
        h.write(0, 10, 11, 3, 3);
        h.write_unknown(1, 12, 2);
        assert!(check_both(&h.ops).is_violation());
        // Observed, then "un-happened".
        let mut h = H::default();
        h.write_unknown(0, 0, 1);
        h.read(1, 5, 6, 1, 1);
        let back = h.read(1, 7, 8, 0, 0);
        assert_violation(&check_both(&h.ops), &[back]);
        // An unknown CAS takes effect only at its expected version.
        let mut h = H::default();
        h.write(0, 0, 1, 1, 1);
        h.cas_unknown(1, 2, 1, 2);
        h.read(2, 5, 6, 2, 2);
        assert!(check_both(&h.ops).is_ok());
        let mut h = H::default();
        h.write(0, 0, 1, 1, 1);
        h.cas_unknown(1, 2, 0, 2);
        h.read(2, 5, 6, 2, 2);
        assert!(check_both(&h.ops).is_violation());
        // A failed (no effect) write is dropped: its value cannot be read.
        let mut h = H::default();
        let w = h.write_unknown(0, 0, 1);
        h.ops[w].outcome = Outcome::Failed { at: 1 };
        h.read(1, 5, 6, 1, 1);
        assert!(check_both(&h.ops).is_violation());
    }

    #[test]
    fn linear_read_of_never_written_value_fails() {
        // Goal: a read observing a value nothing wrote is a violation, reported by the
        // precheck with a clear message, and by the search alone too; so is a value
        // whose only writer was invoked after the read returned.
        let mut h = H::default();
        h.write(0, 0, 1, 1, 1);
        let r = h.read(1, 2, 3, 42, 1);
        let res = check(&h.ops);
        assert_violation(&res, &[r]);
        assert!(
            res.explanation()
                .unwrap()
                .contains("no operation ever wrote"),
            "{res}"
        );
        let off = CheckOptions::default().with_precheck(false);
        assert!(check_register_history(&h.ops, &init0(), &off).is_violation());

        let mut h = H::default();
        let r = h.read(1, 0, 3, 7, 1);
        let w = h.write(0, 4, 5, 7, 1);
        let res = check_both(&h.ops);
        assert_violation(&res, &[r, w]);
    }

    #[test]
    fn linear_overlapping_reorderable_ops_pass() {
        // Goal: overlapping ops may take effect in any order consistent with their
        // intervals, including the reverse of their invocation order.
        let mut h = H::default();
        h.write(0, 0, 10, 1, 2); // invoked first, took effect second
        h.write(1, 1, 9, 2, 1);
        h.read(2, 2, 3, 0, 0); // before both
        h.read(2, 4, 5, 2, 1); // between
        h.read(3, 3, 8, 1, 2); // after both, while both in flight
        h.read(2, 11, 12, 1, 2);
        assert!(check_both(&h.ops).is_ok());
        // A read concurrent with a write sees either value; equal stamps are concurrent.
        let mut h = H::default();
        h.write(0, 5, 10, 1, 1);
        h.read(1, 0, 5, 1, 1);
        h.read(2, 10, 11, 1, 1);
        assert!(check_both(&h.ops).is_ok());
        let mut h = H::default();
        h.write(0, 5, 10, 1, 1);
        h.read(2, 10, 11, 0, 0);
        assert!(check_both(&h.ops).is_ok());
        // But not new-then-old across two sequential reads.
        let mut h = H::default();
        h.write(0, 0, 10, 1, 1);
        h.read(1, 1, 2, 1, 1);
        h.read(1, 3, 4, 0, 0);
        assert!(check_both(&h.ops).is_violation());
    }

    #[test]
    fn linear_malformed_histories_and_budget() {
        // Goal: inconsistent input is reported as malformed (not as a verdict), and an
        // exceeded budget is a timeout (not a verdict).
        let mut h = H::default();
        h.read(0, 5, 4, 0, 0);
        assert!(matches!(check(&h.ops), CheckResult::Malformed { .. }));
        let mut h = H::default();
        h.push(
            0,
            RegCall::Read,
            0,
            Outcome::Returned {
                ret: RegRet::Written { version: 1 },
                at: 1,
            },
        );
        assert!(matches!(check(&h.ops), CheckResult::Malformed { .. }));

        let g = generate(7, &GenCfg::default());
        let tiny = CheckOptions::default().with_max_steps(10);
        let r = check_register_history(&g.ops, &g.init, &tiny);
        assert!(r.is_timeout(), "{r}");
    }

    #[test]
    fn linear_recorder_records_real_time_order() {
        // Goal: the recorder's stamps respect real time across threads; a correct
        // (mutex-protected) register driven by 4 threads over 2 keys, with some outcomes
        // reported unknown, checks as linearizable; a stale read is caught per key.
        let rec: Recorder<(u8, RegCall<i64>), RegRet<i64>> = Recorder::new();
        let store = Arc::new(Mutex::new([(0i64, 0i32); 2]));
        std::thread::scope(|s| {
            for c in 0..4usize {
                let rec = rec.clone();
                let store = Arc::clone(&store);
                s.spawn(move || {
                    let mut rng = ChaCha8Rng::seed_from_u64(c as u64);
                    for k in 0..200i64 {
                        let key = rng.gen_range(0..2u8);
                        let token = (c as i64) * 1_000_000 + k + 1;
                        let call = match rng.gen_range(0..3) {
                            0 => RegCall::Read,
                            1 => RegCall::Write { value: token },
                            _ => RegCall::Cas {
                                expected_version: store.lock().unwrap()[key as usize].1,
                                value: token,
                            },
                        };
                        let id = rec.invoke(c, (key, call.clone()));
                        let ret = {
                            let mut g = store.lock().unwrap();
                            let cell = &mut g[key as usize];
                            match call {
                                RegCall::Read => RegRet::Read {
                                    value: cell.0,
                                    version: cell.1,
                                },
                                RegCall::Write { value } => {
                                    *cell = (value, cell.1 + 1);
                                    RegRet::Written { version: cell.1 }
                                }
                                RegCall::Cas {
                                    expected_version,
                                    value,
                                } => {
                                    if cell.1 == expected_version {
                                        *cell = (value, cell.1 + 1);
                                        RegRet::Written { version: cell.1 }
                                    } else {
                                        RegRet::BadVersion
                                    }
                                }
                            }
                        };
                        match rng.gen_range(0..20) {
                            0 => rec.unknown(id),
                            1 => {} // left pending
                            _ => rec.complete(id, ret),
                        }
                    }
                });
            }
        });
        let history = rec.history();
        assert_eq!(history.len(), 800);
        assert!(history.elapsed(0).is_some());
        for o in &history.ops {
            if let Some((_, at)) = o.returned() {
                assert!(at > o.invoke);
            }
        }
        let init = |_: &u8| RegState {
            value: 0,
            version: 0,
        };
        let report = check_registers(&history, init, &CheckOptions::default());
        assert_eq!(report.results.len(), 2);
        assert!(report.is_linearizable(), "{report}");

        // Client 1 reads key 1 after client 0's write there was acknowledged: stale.
        let rec: Recorder<(u8, RegCall<i64>), RegRet<i64>> = Recorder::new();
        let a = rec.invoke(0, (1, RegCall::Write { value: 5 }));
        rec.complete(a, RegRet::Written { version: 1 });
        let b = rec.invoke(1, (0, RegCall::Read));
        rec.complete(
            b,
            RegRet::Read {
                value: 0,
                version: 0,
            },
        );
        let c = rec.invoke(1, (1, RegCall::Read));
        rec.complete(
            c,
            RegRet::Read {
                value: 0,
                version: 0,
            },
        );
        let d = rec.invoke(2, (1, RegCall::Write { value: 6 }));
        rec.fail(d);
        let report = check_registers(&rec.history(), init, &CheckOptions::default());
        assert!(report.results[&0].is_ok());
        assert_violation(&report.results[&1], &[a.0, c.0]);
        assert!(report.has_violation());
        assert_eq!(report.failures().count(), 1);
        assert_eq!(report.results[&1].stats().unwrap().dropped, 1);
    }

    // ---- generated histories -----------------------------------------------------

    #[derive(Clone, Debug)]
    struct GenCfg {
        clients: usize,
        ops: usize,
        max_dur: u64,
        max_gap: u64,
        p_unknown: f64,
        p_read: f64,
        p_write: f64,
        /// Write tokens unique per op (else drawn from 1..=2).
        unique_values: bool,
    }

    impl Default for GenCfg {
        fn default() -> Self {
            GenCfg {
                clients: 5,
                ops: 200,
                max_dur: 20,
                max_gap: 6,
                p_unknown: 0.05,
                p_read: 0.45,
                p_write: 0.3,
                unique_values: true,
            }
        }
    }

    struct Generated {
        ops: Vec<Op>,
        init: RegState<i64>,
        /// `states[v]`: the value at version v in the real execution.
        states: Vec<i64>,
    }

    /// A linearizable-by-construction history: clients issue sequential ops with random
    /// durations; each op that takes effect gets a linearization point inside its
    /// interval (unknown ops: anywhere after invocation, or never); results come from
    /// applying the ops in linearization-point order.
    fn generate(seed: u64, cfg: &GenCfg) -> Generated {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut free: Vec<Time> = (0..cfg.clients)
            .map(|_| rng.gen_range(0..=cfg.max_gap))
            .collect();
        struct Plan {
            client: usize,
            invoke: Time,
            ret: Time,
            kind: u8,
            unknown: bool,
            lin: Option<(Time, u64)>,
        }
        let mut plans = Vec::with_capacity(cfg.ops);
        for _ in 0..cfg.ops {
            let c = (0..cfg.clients).min_by_key(|&c| (free[c], c)).unwrap();
            let invoke = free[c];
            let ret = invoke + rng.gen_range(1..=cfg.max_dur);
            free[c] = ret + rng.gen_range(0..=cfg.max_gap);
            let x: f64 = rng.gen();
            let kind = if x < cfg.p_read {
                0
            } else if x < cfg.p_read + cfg.p_write {
                1
            } else {
                2
            };
            let unknown = rng.gen_bool(cfg.p_unknown);
            let lin = if !unknown {
                Some(rng.gen_range(invoke..=ret))
            } else if kind != 0 && rng.gen_bool(0.5) {
                Some(invoke + rng.gen_range(0..=4 * cfg.max_dur))
            } else {
                None
            };
            let lin = lin.map(|t| (t, rng.gen::<u64>()));
            plans.push(Plan {
                client: c,
                invoke,
                ret,
                kind,
                unknown,
                lin,
            });
        }
        let mut order: Vec<usize> = (0..plans.len())
            .filter(|&i| plans[i].lin.is_some())
            .collect();
        order.sort_by_key(|&i| plans[i].lin);
        let mut calls: Vec<Option<RegCall<i64>>> = vec![None; plans.len()];
        let mut rets: Vec<Option<RegRet<i64>>> = vec![None; plans.len()];
        let (mut value, mut version) = (0i64, 0i32);
        let mut states = vec![0i64];
        let token = |i: usize, rng: &mut ChaCha8Rng| {
            if cfg.unique_values {
                1000 + i as i64
            } else {
                rng.gen_range(1..=2)
            }
        };
        for &i in &order {
            let (call, ret) = match plans[i].kind {
                0 => (RegCall::Read, RegRet::Read { value, version }),
                1 => {
                    value = token(i, &mut rng);
                    version += 1;
                    states.push(value);
                    (RegCall::Write { value }, RegRet::Written { version })
                }
                _ => {
                    let expected = if rng.gen_bool(0.6) {
                        version
                    } else {
                        version + rng.gen_range(-2..=1)
                    };
                    let v = token(i, &mut rng);
                    let call = RegCall::Cas {
                        expected_version: expected,
                        value: v,
                    };
                    if expected == version {
                        value = v;
                        version += 1;
                        states.push(value);
                        (call, RegRet::Written { version })
                    } else {
                        (call, RegRet::BadVersion)
                    }
                }
            };
            calls[i] = Some(call);
            rets[i] = Some(ret);
        }
        let max_version = version;
        let ops = plans
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let op = calls[i].clone().unwrap_or_else(|| match p.kind {
                    0 => RegCall::Read,
                    1 => RegCall::Write {
                        value: token(i, &mut rng),
                    },
                    _ => RegCall::Cas {
                        expected_version: rng.gen_range(0..=max_version + 1),
                        value: token(i, &mut rng),
                    },
                });
                let outcome = if p.unknown {
                    Outcome::Unknown
                } else {
                    Outcome::Returned {
                        ret: rets[i].clone().expect("known ops take effect"),
                        at: p.ret,
                    }
                };
                Operation {
                    id: i,
                    client: p.client,
                    op,
                    invoke: p.invoke,
                    outcome,
                }
            })
            .collect();
        Generated {
            ops,
            init: init0(),
            states,
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Mutation {
        /// A value nobody wrote.
        Fresh,
        /// The right value with another version (its writer's result is known).
        WrongVersion,
        /// The state from before a write that was acknowledged before the read began.
        Stale,
        /// A value written by an op invoked after the read returned.
        Future,
    }

    /// Mutates one known read so that the history is certainly not linearizable, or
    /// returns None if no read fits the mutation.
    fn mutate(g: &Generated, m: Mutation, rng: &mut ChaCha8Rng) -> Option<(Vec<Op>, usize)> {
        let reads: Vec<usize> = g
            .ops
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o.returned(), Some((RegRet::Read { .. }, _))))
            .map(|(i, _)| i)
            .collect();
        let known_writes: Vec<(usize, i64, i32)> = g
            .ops
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match (&o.op, o.returned()) {
                (
                    RegCall::Write { value } | RegCall::Cas { value, .. },
                    Some((RegRet::Written { version }, _)),
                ) => Some((i, *value, *version)),
                _ => None,
            })
            .collect();
        if reads.is_empty() {
            return None;
        }
        let start = rng.gen_range(0..reads.len());
        for k in 0..reads.len() {
            let r = reads[(start + k) % reads.len()];
            let o = &g.ops[r];
            let Some((RegRet::Read { value, version }, ret_at)) = o.returned() else {
                unreachable!()
            };
            let new = match m {
                Mutation::Fresh => Some((-1, *version)),
                Mutation::WrongVersion => {
                    let writer_known = *value == 0 && *version == 0
                        || known_writes.iter().any(|&(_, v, _)| v == *value);
                    writer_known.then_some((*value, *version + 1))
                }
                Mutation::Stale => known_writes
                    .iter()
                    .filter(|&&(w, _, _)| g.ops[w].returned().unwrap().1 < o.invoke)
                    .map(|&(_, _, ver)| ver)
                    .max()
                    .map(|ver| (g.states[ver as usize - 1], ver - 1)),
                Mutation::Future => known_writes
                    .iter()
                    .find(|&&(w, _, _)| g.ops[w].invoke > ret_at)
                    .map(|&(_, v, ver)| (v, ver)),
            };
            if let Some((value, version)) = new {
                let mut ops = g.ops.clone();
                ops[r].outcome = Outcome::Returned {
                    ret: RegRet::Read { value, version },
                    at: ret_at,
                };
                return Some((ops, r));
            }
        }
        None
    }

    #[test]
    fn linear_generated_linearizable_histories_pass() {
        // Goal: histories linearizable by construction (overlapping ops, unknown writes
        // that did or did not take effect, dropped unknown reads) are always accepted,
        // with and without prechecks, across many seeds and shapes.
        let shapes = [
            GenCfg::default(),
            GenCfg {
                clients: 2,
                ops: 60,
                ..GenCfg::default()
            },
            GenCfg {
                clients: 8,
                ops: 300,
                max_dur: 40,
                max_gap: 2,
                p_unknown: 0.1,
                ..GenCfg::default()
            },
            GenCfg {
                p_read: 0.2,
                p_write: 0.2,
                p_unknown: 0.15,
                ..GenCfg::default()
            },
            GenCfg {
                unique_values: false,
                ..GenCfg::default()
            },
        ];
        for (s, cfg) in shapes.iter().enumerate() {
            for seed in 0..60u64 {
                let g = generate(seed * 31 + s as u64, cfg);
                let r = check_register_history(&g.ops, &g.init, &CheckOptions::default());
                assert!(r.is_ok(), "shape {s} seed {seed}: {r}");
                let off = CheckOptions::default().with_precheck(false);
                let r = check_register_history(&g.ops, &g.init, &off);
                assert!(r.is_ok(), "shape {s} seed {seed} (no precheck): {r}");
            }
        }
    }

    #[test]
    fn linear_mutated_read_fails() {
        // Goal: changing one read of a linearizable-by-construction history to an
        // impossible observation (fresh value, wrong version, stale state, value from
        // the future) is always reported as a violation naming that read, by the
        // prechecks and by the search alone.
        let kinds = [
            Mutation::Fresh,
            Mutation::WrongVersion,
            Mutation::Stale,
            Mutation::Future,
        ];
        let cfg = GenCfg {
            ops: 150,
            ..GenCfg::default()
        };
        let mut applied = [0usize; 4];
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        for seed in 0..80u64 {
            let g = generate(1000 + seed, &cfg);
            for (k, &m) in kinds.iter().enumerate() {
                let Some((ops, r)) = mutate(&g, m, &mut rng) else {
                    continue;
                };
                applied[k] += 1;
                for precheck in [true, false] {
                    let opts = CheckOptions::default().with_precheck(precheck);
                    let res = check_register_history(&ops, &g.init, &opts);
                    assert!(
                        res.is_violation(),
                        "seed {seed} {m:?} precheck={precheck}: {res}"
                    );
                    if precheck || matches!(m, Mutation::Stale) {
                        // The search may get stuck on a later read than the mutated one
                        // (e.g. one that depends on it), but never for Stale/prechecks.
                        assert_violation(&res, &[g.ops[r].id]);
                    }
                }
            }
        }
        assert!(applied.iter().all(|&a| a >= 40), "applied {applied:?}");
    }

    /// An independent brute-force oracle: tries every order consistent with real time,
    /// unknown ops optional (an unknown CAS executes with real CAS semantics).
    fn brute_force(ops: &[Op], init: &RegState<i64>) -> bool {
        let ops: Vec<&Op> = ops
            .iter()
            .filter(|o| match &o.outcome {
                Outcome::Failed { .. } => false,
                Outcome::Returned { .. } => true,
                _ => !matches!(o.op, RegCall::Read),
            })
            .collect();
        fn go(ops: &[&Op], done: u32, s: (i64, i32)) -> bool {
            let pending_known = |j: usize| done & (1 << j) == 0 && ops[j].returned().is_some();
            if !(0..ops.len()).any(pending_known) {
                return true;
            }
            for i in 0..ops.len() {
                if done & (1 << i) != 0 {
                    continue;
                }
                let blocked = (0..ops.len()).any(|j| {
                    j != i && pending_known(j) && ops[j].returned().unwrap().1 < ops[i].invoke
                });
                if blocked {
                    continue;
                }
                let ret = ops[i].returned().map(|(r, _)| r);
                let next = match (&ops[i].op, ret) {
                    (RegCall::Read, Some(RegRet::Read { value, version })) => {
                        (s == (*value, *version)).then_some(s)
                    }
                    (RegCall::Write { value }, ret) => {
                        let n = (*value, s.1 + 1);
                        match ret {
                            None => Some(n),
                            Some(RegRet::Written { version }) => (*version == n.1).then_some(n),
                            _ => None,
                        }
                    }
                    (
                        RegCall::Cas {
                            expected_version,
                            value,
                        },
                        ret,
                    ) => {
                        let ok = s.1 == *expected_version;
                        let n = if ok { (*value, s.1 + 1) } else { s };
                        match ret {
                            None => Some(n),
                            Some(RegRet::Written { version }) => {
                                (ok && *version == n.1).then_some(n)
                            }
                            Some(RegRet::BadVersion) => (!ok).then_some(n),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                if let Some(n) = next {
                    if go(ops, done | (1 << i), n) {
                        return true;
                    }
                }
            }
            false
        }
        go(&ops, 0, (init.value, init.version))
    }

    /// A random small perturbation that keeps call/result kinds consistent.
    fn perturb(ops: &mut [Op], rng: &mut ChaCha8Rng) {
        let i = rng.gen_range(0..ops.len());
        let o = &mut ops[i];
        match rng.gen_range(0..4) {
            0 => {
                if let Outcome::Returned { ret, .. } = &mut o.outcome {
                    match ret {
                        RegRet::Read { value, version } => {
                            if rng.gen_bool(0.5) {
                                *value = rng.gen_range(0..=2);
                            } else {
                                *version = rng.gen_range(0..=3);
                            }
                        }
                        RegRet::Written { version } => *version = rng.gen_range(1..=4),
                        RegRet::BadVersion => {
                            if let RegCall::Cas {
                                expected_version, ..
                            } = o.op
                            {
                                *ret = RegRet::Written {
                                    version: expected_version + 1,
                                };
                            }
                        }
                    }
                }
            }
            1 => o.outcome = Outcome::Unknown,
            2 => {
                o.invoke = rng.gen_range(0..=o.invoke);
            }
            _ => {
                let t = o.invoke + rng.gen_range(0..=30);
                if let Outcome::Returned { at, .. } = &mut o.outcome {
                    *at = t;
                }
            }
        }
    }

    #[test]
    fn linear_agrees_with_brute_force_on_small_histories() {
        // Goal: on thousands of small random histories (linearizable by construction,
        // then perturbed; repeated values; unknown outcomes) the checker's verdict, with
        // and without prechecks, equals an exhaustive search over all orders.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (mut ok, mut bad) = (0, 0);
        for seed in 0..4000u64 {
            let cfg = GenCfg {
                clients: rng.gen_range(2..=4),
                ops: rng.gen_range(3..=8),
                max_dur: rng.gen_range(2..=8),
                max_gap: rng.gen_range(0..=3),
                p_unknown: [0.1, 0.3, 0.6][rng.gen_range(0..3)],
                p_read: 0.35,
                p_write: [0.1, 0.3, 0.5][rng.gen_range(0..3)],
                unique_values: rng.gen_bool(0.2),
            };
            let g = generate(50_000 + seed, &cfg);
            let mut ops = g.ops.clone();
            for _ in 0..rng.gen_range(0..=3) {
                perturb(&mut ops, &mut rng);
            }
            let expect = brute_force(&ops, &g.init);
            for precheck in [true, false] {
                let opts = CheckOptions::default().with_precheck(precheck);
                let got = check_register_history(&ops, &g.init, &opts);
                assert!(
                    !matches!(
                        got,
                        CheckResult::Timeout { .. } | CheckResult::Malformed { .. }
                    ),
                    "{got}"
                );
                assert_eq!(
                    got.is_ok(),
                    expect,
                    "seed {seed} precheck={precheck}: brute force says {expect}\n{got}\n{:#?}",
                    ops
                );
            }
            if expect {
                ok += 1;
            } else {
                bad += 1;
            }
        }
        assert!(ok > 1000 && bad > 300, "ok {ok} bad {bad}");
    }

    #[test]
    fn linear_performance_2000_ops_5_clients() {
        // Goal: a 2,000-op, 5-client linearizable-by-construction history (with unknown
        // outcomes) checks well within bounds in a debug build (< 5 s; in practice tens of
        // ms), as does proving a planted violation, also with 30% unknown outcomes; and a
        // deep 20,000-op history checks (no recursion, no stack growth).
        let cfg = GenCfg {
            clients: 5,
            ops: 2000,
            ..GenCfg::default()
        };
        let mut worst = Duration::ZERO;
        for seed in 0..5u64 {
            let g = generate(77 + seed, &cfg);
            let t = Instant::now();
            let r = check_register_history(&g.ops, &g.init, &CheckOptions::default());
            let took = t.elapsed();
            assert!(r.is_ok(), "{r}");
            eprintln!("2000 ops seed {seed}: {took:?} ({})", r.stats().unwrap());
            worst = worst.max(took);
        }
        assert!(worst < Duration::from_secs(5), "took {worst:?}");

        // The same with a stale read planted: proving the violation is bounded too.
        let g = generate(77, &cfg);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (ops, _) = mutate(&g, Mutation::Stale, &mut rng).unwrap();
        let t = Instant::now();
        let off = CheckOptions::default().with_precheck(false);
        let r = check_register_history(&ops, &g.init, &off);
        eprintln!(
            "2000 ops, stale read: {:?} ({})",
            t.elapsed(),
            r.stats().unwrap()
        );
        assert!(r.is_violation(), "{r}");
        assert!(t.elapsed() < Duration::from_secs(5));

        // Heavy fault injection: 30% of the ops time out. Linearizable histories and
        // violations (found by the search alone) both stay fast.
        let cfg = GenCfg {
            clients: 5,
            ops: 2000,
            p_unknown: 0.3,
            ..GenCfg::default()
        };
        for seed in 0..3u64 {
            let g = generate(500 + seed, &cfg);
            let t = Instant::now();
            let r = check_register_history(&g.ops, &g.init, &CheckOptions::default());
            assert!(r.is_ok(), "{r}");
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for m in [Mutation::Stale, Mutation::Future, Mutation::Fresh] {
                let (ops, _) = mutate(&g, m, &mut rng).unwrap();
                let off = CheckOptions::default().with_precheck(false);
                let r = check_register_history(&ops, &g.init, &off);
                assert!(r.is_violation(), "{m:?}: {r}");
            }
            eprintln!(
                "2000 ops, 30% unknown, seed {seed}: {:?} for 4 checks",
                t.elapsed()
            );
            assert!(t.elapsed() < Duration::from_secs(10));
        }

        let cfg = GenCfg {
            clients: 5,
            ops: 20_000,
            p_unknown: 0.01,
            ..GenCfg::default()
        };
        let g = generate(3, &cfg);
        let t = Instant::now();
        let r = check_register_history(&g.ops, &g.init, &CheckOptions::default());
        eprintln!("20000 ops: {:?} ({})", t.elapsed(), r.stats().unwrap());
        assert!(r.is_ok(), "{r}");
    }
}
