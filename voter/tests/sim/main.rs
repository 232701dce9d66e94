//! The deterministic cluster simulator: 3- and 5-voter clusters of the real
//! core in one thread under a seed.
//!
//! Phase 1 (safety): swarm-random faults — message drop, duplication, delay
//! and reordering, symmetric and asymmetric partitions, crashes that lose
//! unsynced writes (sometimes with a torn last record), restarts — with
//! random client writes to whoever leads, some of them reconfigs to a random
//! set of the cluster's servers (up to two spares start as joiners, as
//! ZooKeeper's are configured: the ensemble plus themselves). Every serving
//! node's configuration must be the one committed history puts at its
//! commit point, and at most one leader is established per epoch. Up to three observers per seed are
//! fed the committed stream by a voter or (in chains) an earlier observer,
//! over feed links that are cut, whose upstreams crash, and which crash
//! themselves (see `cluster/feed.rs`). Invariants are checked on every
//! output and every observer apply (see `checker.rs`). Phase 2 (liveness):
//! faults heal and every node restarts; a leader must be established with
//! every node serving under it, every write must be committed or reported
//! "maybe", a probe write must reach every node, and every observer must be
//! connected again, at the committed maximum with the committed digest.
//!
//! `CORRAL_SIM_SEED=<n>` replays one seed; `CORRAL_SIM_SEEDS=<n>` sets how
//! many seeds the default run covers (from `CORRAL_SIM_FIRST`, default 0).

mod checker;
mod cluster;

use std::time::Instant;

use cluster::{Cluster, Up};

const SAFETY_MS: u64 = 20_000;
const LIVENESS_MS: u64 = 20_000;

fn run_seed(seed: u64) -> cluster::Stats {
    let n = if seed & 1 == 0 { 3 } else { 5 };
    let mut c = Cluster::new(seed, n);
    while c.now_ms < SAFETY_MS {
        c.step();
    }
    c.heal();
    let deadline = c.now_ms + LIVENESS_MS;
    let mut probes_sent = false;
    let committed_before = c.checker.committed_count();
    loop {
        c.step();
        if c.settled().is_some() && c.unresolved() == 0 && c.converged() && c.observers_converged()
        {
            if probes_sent && c.checker.committed_count() > committed_before {
                let mut stats = c.stats.clone();
                stats.committed = c.checker.committed_count() as u64;
                stats.reconfigs = c.checker.reconfigs() as u64;
                stats.slow_disconnects = c.slow_disconnects();
                return stats;
            }
            probes_sent = true;
        }
        assert!(
            c.now_ms < deadline,
            "seed {seed}: no liveness after healing: settled {:?}, unresolved {}, \
             committed max {}, faults {:?}, observer faults {:?}, nodes {}",
            c.settled(),
            c.unresolved(),
            c.checker.max_committed(),
            c.faults,
            c.obs_faults,
            c.describe()
        );
    }
}

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|v| v.parse().ok())
}

fn run_guarded(seed: u64) -> cluster::Stats {
    match std::panic::catch_unwind(|| run_seed(seed)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("simulator failure; replay with CORRAL_SIM_SEED={seed}");
            std::panic::resume_unwind(e);
        }
    }
}

#[test]
fn simulated_clusters_stay_safe_and_recover() {
    // Goal: under random faults no invariant breaks, and once healed the
    // cluster elects a leader and resolves every write.
    if let Some(seed) = env_u64("CORRAL_SIM_SEED") {
        run_guarded(seed);
        return;
    }
    let seeds = env_u64("CORRAL_SIM_SEEDS").unwrap_or(500);
    let first = env_u64("CORRAL_SIM_FIRST").unwrap_or(0);
    let t = Instant::now();
    let mut total = cluster::Stats::default();
    for seed in first..first + seeds {
        total.add(&run_guarded(seed));
    }
    eprintln!("simulated {seeds} seeds in {:.1?}: {total:?}", t.elapsed());
    // The faults must actually have happened for the run to mean anything.
    assert!(total.committed > seeds && total.elections > seeds);
    if seeds >= 50 {
        assert!(total.crashes > 0 && total.snaps_installed > 0 && total.dropped > 0);
        assert!(
            total.obs_applied > 0 && total.max_chain >= 2,
            "observers must run"
        );
        assert!(
            total.obs_diff_catchups > 0 && total.obs_snap_catchups > 0 && total.obs_crashes > 0,
            "observer feeds must resume both ways and crash"
        );
        assert!(total.reconfigs > 0, "membership must change");
    }
}

/// Steps `c` until `done` holds (true), or `ms` pass (false).
fn run_until(c: &mut Cluster, ms: u64, done: impl Fn(&Cluster) -> bool) -> bool {
    let deadline = c.now_ms + ms;
    while c.now_ms < deadline {
        c.step();
        if done(c) {
            return true;
        }
    }
    false
}

fn voters_caught_up(c: &Cluster) -> bool {
    c.settled().is_some() && c.unresolved() == 0 && c.converged()
}

fn all_caught_up(c: &Cluster) -> bool {
    voters_caught_up(c) && c.observers_converged()
}

/// Commits `n` writes one after another, waiting for every voter (and every
/// observer, unless one is held away) to apply each.
fn write_through(c: &mut Cluster, n: usize, observers_too: bool) {
    for _ in 0..n {
        let mut tries = 0;
        while !c.client_write() {
            tries += 1;
            assert!(tries < 1_000, "no leader takes writes: {}", c.describe());
            c.step();
        }
        let ok = if observers_too {
            run_until(c, 5_000, all_caught_up)
        } else {
            run_until(c, 5_000, voters_caught_up)
        };
        assert!(ok, "a calm cluster must commit: {}", c.describe());
    }
}

/// Observer `k` (the last) goes away while `away` txns commit, then comes
/// back: returns how its upstream's hub caught it up (DIFFs, SNAPs) and
/// whether the observer says it snapped.
fn resume_after(away: usize, homes: &[Up]) -> (u64, u64, bool) {
    let k = homes.len() - 1;
    let up = homes[k];
    // Snapshots every 4 commits: a window of 8 committed txns on voters, and
    // a margin of 8 before the snapshot on observers.
    let mut c = Cluster::calm(3, 3, 4, homes);
    assert!(run_until(&mut c, 10_000, all_caught_up), "{}", c.describe());
    write_through(&mut c, 20, true);
    let before = c.hub_stats(up);
    let stats = c.stats.clone();
    let left_at = c.observer_applied(k);
    c.hold_observer(k, true);
    write_through(&mut c, away, false);
    assert!(c.checker.max_committed() > left_at);
    c.hold_observer(k, false);
    assert!(
        run_until(&mut c, 5_000, all_caught_up),
        "the observer must come back: {}",
        c.describe()
    );
    let after = c.hub_stats(up);
    let snapped = c.observer_snapped(k);
    assert_eq!(
        c.stats.obs_snap_catchups - stats.obs_snap_catchups,
        u64::from(snapped)
    );
    assert_eq!(
        c.stats.obs_diff_catchups - stats.obs_diff_catchups,
        u64::from(!snapped)
    );
    // It ends with the right state, as every voter has it.
    let digest = c.observer_digest(k);
    assert_eq!(c.observer_applied(k), c.checker.max_committed());
    assert_eq!(Some(digest), c.checker.digest_at(c.checker.max_committed()));
    for i in 0..3 {
        assert_eq!(c.voter_digest(i), digest);
    }
    (
        after.diffs - before.diffs,
        after.snaps - before.snaps,
        snapped,
    )
}

#[test]
fn an_observer_back_soon_resumes_by_diff() {
    // Goal: an observer away for fewer txns than its upstream's window holds
    // past its position catches up by DIFF (no SNAP), from a voter and from a
    // relaying observer alike.
    assert_eq!(resume_after(3, &[Up::Voter(0)]), (1, 0, false));
    assert_eq!(
        resume_after(3, &[Up::Voter(1), Up::Observer(0)]),
        (1, 0, false)
    );
}

#[test]
fn an_observer_away_too_long_resumes_by_snap() {
    // Goal: once the upstream's window no longer holds an observer's
    // position, it catches up by SNAP (then the txns after it) and ends
    // with the committed digest, from a voter and from a relaying observer.
    assert_eq!(resume_after(30, &[Up::Voter(0)]), (0, 1, true));
    assert_eq!(
        resume_after(30, &[Up::Voter(1), Up::Observer(0)]),
        (0, 1, true)
    );
}
