//! `corral-tests`: the cross-crate test harness.
//!
//! - [`pick_free_port`], [`four_letter_word`]: loopback helpers.
//! - [`ServerProc`]: a real `corral serve` process (temp data dir, log capture,
//!   `kill9` / `restart` / `stop`, killed on drop — only the PID we started).
//! - [`ZkProc`]: a real Apache ZooKeeper 3.8 standalone server, same API, plus
//!   [`zk_available`] / [`require_zk`] to skip loudly (or fail under `CORRAL_REQUIRE_ZK=1`),
//!   and [`zk_cli`] to run Apache's zkCli once against a server.
//! - [`raw::RawClient`]: an async ZooKeeper client on top of `corral-proto` that
//!   exposes every opcode and raw error codes, with pipelining, watch events and pings.
//! - [`diff`]: the differential test engine (seeded op sequences run against two
//!   servers, every result compared after zxid / session-id normalisation).
//!
//! Everything binds to 127.0.0.1 and every wait is bounded.

pub mod diff;
pub mod ensemble;
pub mod kazoo;
pub mod linearizable;
mod process;
pub mod raw;
pub mod reconfig;
pub mod req;
mod server;
mod zk;

pub use process::{four_letter_word, pick_free_port};
pub use raw::{ConnectOptions, RawClient, RawError, Reply};
pub use server::{corral_bin, corral_cli, ConfigMode, ServerBuilder, ServerProc};
pub use zk::{require_zk, zk_available, zk_cli, ZkBuilder, ZkCliOutput, ZkProc};

use std::path::PathBuf;

/// The workspace root (the parent of this crate's manifest directory).
pub fn workspace_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
