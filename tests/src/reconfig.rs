//! Dynamic reconfiguration through a third-party client (the
//! `zookeeper-client` crate), for the real-process tests.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use corral_store::Ensemble;
use zookeeper_client as zk;

use crate::ensemble::EnsembleProc;

/// kazoo's super user `super:test` as a TOML value for `zk_super_digest`.
pub const SUPER_DIGEST: &str = "\"super:D/InIHSb7yEEbrWz8b9l71RjZJU=\"";

/// A session on `addr`.
pub async fn connect(addr: SocketAddr) -> Result<zk::Client> {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(&addr.to_string())
        .await
        .with_context(|| format!("connect to {addr}"))
}

/// A `/zookeeper/config` text.
pub fn parse(data: &[u8]) -> Result<Ensemble> {
    Ensemble::parse(std::str::from_utf8(data)?).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs one incremental reconfig as the super user through node `via`;
/// returns the new configuration.
pub async fn reconfig(
    e: &EnsembleProc,
    via: usize,
    joining: &[&str],
    leaving: &[&str],
) -> Result<Ensemble> {
    let admin = connect(e.addr(via)).await?;
    admin.auth("digest", b"super:test").await?;
    let (data, _) = admin
        .update_ensemble(
            zk::EnsembleUpdate::Incremental {
                joinings: joining.iter().copied(),
                leavings: leaving.iter().copied(),
            },
            None,
        )
        .await
        .with_context(|| format!("reconfig +{joining:?} -{leaving:?}"))?;
    parse(&data)
}

/// Waits until node `i` no longer serves clients (a removed voter).
pub fn wait_not_serving(e: &EnsembleProc, i: usize, limit: Duration) -> Result<()> {
    let t0 = std::time::Instant::now();
    while e.mode(i).is_some() {
        ensure!(
            t0.elapsed() < limit,
            "node {i} still serves: {:?}",
            e.mode(i)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Waits until the server at `addr` reports `srvr` mode `want`.
pub fn wait_mode(addr: SocketAddr, want: &str, limit: Duration) -> Result<()> {
    let t0 = std::time::Instant::now();
    loop {
        let mode = crate::four_letter_word(addr, "srvr").ok().and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Mode: ").map(str::to_string))
        });
        if mode.as_deref() == Some(want) {
            return Ok(());
        }
        ensure!(
            t0.elapsed() < limit,
            "{addr} is {mode:?}, not {want}, after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
