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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_has_seen_a_newer_zxid_is_refused_as_by_zookeeper() {
    // Goal: a ConnectRequest whose lastZxidSeen is ahead of the server's
    // state is refused (the connection closes with no ConnectResponse), on
    // corral as on ZooKeeper 3.8; one at or behind it connects. This is
    // what keeps a client moving from a fresh server to a lagging one (an
    // observer, say) from going back in time.
    use corral_tests::{ConnectOptions, RawClient, ServerProc, ZkProc};
    if !require_zk("a_client_that_has_seen_a_newer_zxid_is_refused_as_by_zookeeper") {
        return;
    }
    let corral = ServerProc::start().expect("corral");
    let zk = ZkProc::start().expect("zookeeper");
    for (name, addr) in [("corral", corral.addr()), ("zookeeper", zk.addr())] {
        let c = RawClient::connect(addr, 4000).await.expect("connect");
        let (h, _) = c
            .request(corral_proto::Request::Sync("/".into()))
            .await
            .expect("sync");
        let now = h.zxid;
        let at = |z: i64| ConnectOptions {
            timeout_ms: 4000,
            last_zxid_seen: z,
            request_timeout: std::time::Duration::from_secs(5),
            ..ConnectOptions::default()
        };
        assert!(
            RawClient::connect_opts(addr, at(now)).await.is_ok(),
            "{name}: a client at the server's zxid connects"
        );
        assert!(
            RawClient::connect_opts(addr, at(now + (1 << 32)))
                .await
                .is_err(),
            "{name}: a client from the future is refused"
        );
    }
}
