//! `corral bench`, the load generator behind docs/benchmarks.md, against a
//! real server: every workload finishes with operations and no errors, and
//! the `load` workload leaves exactly the znodes it was asked for.

use std::process::Command;

use anyhow::{ensure, Context, Result};
use corral_tests::{corral_bin, ServerProc};
use zookeeper_client as zk;

/// Runs `corral bench --json` and returns its one JSON line.
fn bench(server: &ServerProc, args: &[&str]) -> Result<String> {
    // A bench whose pipeline hangs (a request written but never flushed)
    // is stopped and fails instead of hanging the suite.
    let out = Command::new("timeout")
        .arg("60")
        .arg(corral_bin()?)
        .args(["bench", "--server", &server.addr().to_string(), "--json"])
        .args(args)
        .output()
        .context("running corral bench")?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    ensure!(
        out.status.success(),
        "corral bench {args:?} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(text)
}

/// The number after `"key":` in a flat JSON object.
fn field(json: &str, key: &str) -> Result<f64> {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .with_context(|| format!("{key} in {json}"))?
        + pat.len();
    let rest = &json[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end]
        .trim()
        .parse()
        .with_context(|| format!("{key} in {json}"))
}

#[test]
fn every_workload_runs_without_errors() -> Result<()> {
    // Goal: each workload, pipelined over several sessions, completes
    // operations and reports no errors (and finishes: see `bench`).
    let server = ServerProc::start()?;
    for workload in [
        "get",
        "set",
        "mix",
        "create-delete",
        "watch-fanout",
        "session-storm",
    ] {
        let json = bench(
            &server,
            &[
                "--workload",
                workload,
                "--sessions",
                "4",
                "--pipeline",
                "8",
                "--duration-secs",
                "1",
                "--size",
                "100",
            ],
        )?;
        ensure!(
            field(&json, "ops")? > 0.0,
            "{workload}: no operations: {json}"
        );
        ensure!(field(&json, "errors")? == 0.0, "{workload}: errors: {json}");
        ensure!(
            field(&json, "p99_ms")? >= field(&json, "p50_ms")?,
            "{workload}: percentiles out of order: {json}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_creates_exactly_the_requested_znodes() -> Result<()> {
    // Goal: `load --count N` over 3 sessions creates N znodes of the given
    // size, split across the sessions, and reports N operations.
    let server = ServerProc::start()?;
    let json = bench(
        &server,
        &[
            "--workload",
            "load",
            "--count",
            "301",
            "--sessions",
            "3",
            "--pipeline",
            "16",
            "--size",
            "100",
            "--root",
            "/load",
        ],
    )?;
    ensure!(field(&json, "ops")? == 301.0, "ops: {json}");
    ensure!(field(&json, "errors")? == 0.0, "errors: {json}");
    let client = zk::Client::connect(&server.addr().to_string()).await?;
    let runs = client.list_children("/load").await?;
    ensure!(runs.len() == 1, "one run directory: {runs:?}");
    let run = format!("/load/{}", runs[0]);
    let mut sessions = client.list_children(&run).await?;
    sessions.sort();
    ensure!(sessions == ["s0", "s1", "s2"], "{sessions:?}");
    let mut total = 0;
    for s in &sessions {
        let dir = format!("{run}/{s}");
        let children = client.list_children(&dir).await?;
        ensure!(
            (100..=101).contains(&children.len()),
            "{dir}: {}",
            children.len()
        );
        let (data, _) = client.get_data(&format!("{dir}/{}", children[0])).await?;
        ensure!(data.len() == 100, "znode size {}", data.len());
        total += children.len();
    }
    ensure!(total == 301, "{total} znodes");
    Ok(())
}
