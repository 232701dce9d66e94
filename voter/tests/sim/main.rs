//! The deterministic cluster simulator: 3- and 5-voter clusters of the real
//! core in one thread under a seed.
//!
//! Phase 1 (safety): swarm-random faults — message drop, duplication, delay
//! and reordering, symmetric and asymmetric partitions, crashes that lose
//! unsynced writes (sometimes with a torn last record), restarts — with
//! random client writes to whoever leads. Invariants are checked on every
//! output (see `checker.rs`). Phase 2 (liveness): faults heal and every node
//! restarts; a leader must be established with every node serving under it,
//! every write must be committed or reported "maybe", and a probe write must
//! reach every node.
//!
//! `CORRAL_SIM_SEED=<n>` replays one seed; `CORRAL_SIM_SEEDS=<n>` sets how
//! many seeds the default run covers (from `CORRAL_SIM_FIRST`, default 0).

mod checker;
mod cluster;

use std::time::Instant;

use cluster::Cluster;

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
        if c.settled().is_some() && c.unresolved() == 0 && c.converged() {
            if probes_sent && c.checker.committed_count() > committed_before {
                let mut stats = c.stats.clone();
                stats.committed = c.checker.committed_count() as u64;
                return stats;
            }
            probes_sent = true;
        }
        assert!(
            c.now_ms < deadline,
            "seed {seed}: no liveness after healing: settled {:?}, unresolved {}, \
             committed max {}, faults {:?}, nodes {}",
            c.settled(),
            c.unresolved(),
            c.checker.max_committed(),
            c.faults,
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
    }
}
