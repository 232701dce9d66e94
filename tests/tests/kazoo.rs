//! kazoo's own tests against a corral ensemble that kazoo's harness starts
//! (see `corral_tests::kazoo`).

use std::process::Command;

use anyhow::{ensure, Context, Result};
use corral_tests::corral_bin;
use corral_tests::kazoo::{free_port_base, java_shim, kazoo_python};

#[test]
fn kazoos_reconfig_tests_pass_against_a_corral_ensemble() -> Result<()> {
    // Goal: kazoo 2.11's TestReconfig (reconfig without super auth, adding and
    // removing an observer, a future fromConfig, bad input) passes against
    // three corral voters started by kazoo's own harness.
    let python = kazoo_python()?;
    let dir = tempfile::Builder::new().prefix("corral-kazoo-").tempdir()?;
    let certs = dir.path().join("certs");
    let ids: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let st = Command::new(corral_bin()?)
        .args(["cert", "--dir"])
        .arg(&certs)
        .args(["--ids", &ids.join(",")])
        .stdout(std::process::Stdio::null())
        .status()
        .context("corral cert")?;
    ensure!(st.success(), "corral cert failed ({st})");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    java_shim(&bin, &certs)?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(python)
        .args([
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--timeout=120",
            "--pyargs",
            "kazoo.tests.test_client",
            "-k",
            "TestReconfig",
        ])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("TMPDIR", dir.path())
        .env("ZOOKEEPER_VERSION", "3.8.0")
        .env("ZOOKEEPER_CLASSPATH", "/usr/share/java/zookeeper.jar")
        .env("ZOOKEEPER_CLUSTER_SIZE", "3")
        .env("ZOOKEEPER_PORT_OFFSET", free_port_base(40)?.to_string())
        .output()
        .context("pytest")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success() && text.contains("3 passed"),
        "kazoo's TestReconfig:\n{text}"
    );
    Ok(())
}
