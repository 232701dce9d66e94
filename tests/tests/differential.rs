// Goal: corral answers the same seeded random multi-session op sequences exactly as Apache ZooKeeper 3.8 does (zero divergences).
//
// Default: 3 seeds x 2000 ops, corral (left) vs ZooKeeper (right), fresh servers per seed.
// Bigger runs: CORRAL_DIFF_SEEDS=8 CORRAL_DIFF_OPS=5000. Replay: CORRAL_DIFF_SEED=<n>.
// Harness self-check: CORRAL_DIFF_LEFT=zk runs ZooKeeper against ZooKeeper.
// What is compared, and the ZooKeeper 3.8.0 bugs the generator avoids: docs/compatibility.md.

use corral_tests::diff::{self, DiffConfig};
use corral_tests::require_zk;

fn report_and_check(cfg: &DiffConfig, reports: &[diff::SeedReport]) {
    let mut failed = Vec::new();
    for r in reports {
        eprintln!(
            "seed {} coverage (op kind, count, outcomes on ZooKeeper):\n{}",
            r.seed,
            r.coverage()
        );
        if !r.divergences.is_empty() {
            eprintln!(
                "==== seed {}: {} divergences ====",
                r.seed,
                r.divergences.len()
            );
            for d in &r.divergences {
                eprintln!("{d}");
            }
            if !r.left_log_tail.is_empty() {
                eprintln!("---- left server log tail ----\n{}", r.left_log_tail);
            }
            eprintln!("replay: {}", cfg.replay_hint(r.seed));
            failed.push(r.seed);
        }
    }
    assert!(
        failed.is_empty(),
        "differential test ({} vs zk) diverged on seeds {failed:?}; replay one with: {}",
        cfg.left.name(),
        cfg.replay_hint(failed[0])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn differential_against_zookeeper() {
    // Goal: zero divergences between the left server (corral by default) and ZooKeeper 3.8.
    if !require_zk("differential_against_zookeeper") {
        return;
    }
    let cfg = DiffConfig::from_env(3, 2000);
    let reports = diff::run(&cfg).await.expect("differential run");
    report_and_check(&cfg, &reports);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn differential_harness_self_check_zk_vs_zk() {
    // Goal: the differential harness itself is deterministic: ZooKeeper against ZooKeeper gives zero divergences.
    if !require_zk("differential_harness_self_check_zk_vs_zk") {
        return;
    }
    let mut cfg = DiffConfig::from_env(1, 400);
    cfg.left = diff::Kind::Zk;
    cfg.seeds = vec![cfg.seeds.first().copied().unwrap_or(1) + 1000];
    cfg.ops = cfg.ops.min(400);
    let reports = diff::run(&cfg).await.expect("differential self-check run");
    report_and_check(&cfg, &reports);
}
