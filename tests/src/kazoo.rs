//! kazoo's own test suite against corral: a Python venv with kazoo, and a
//! `java` stand-in so that kazoo's harness, which launches ZooKeeper servers
//! with `java … QuorumPeerMain <zoo.cfg>`, starts `corral serve --zoo-cfg`
//! instead (same PID, so the harness stops them as it would ZooKeeper).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::server::{corral_bin, FileLock};

/// The pip packages kazoo's tests import (kazoo 2.11's harness needs
/// pyOpenSSL < 24.3 and pyjks; pytest-timeout bounds each test).
const PACKAGES: &[&str] = &[
    "kazoo==2.11.0",
    "pytest",
    "pytest-timeout",
    "pyopenssl==24.2.1",
    "cryptography<44",
    "pyjks",
];

/// The Python of a venv with kazoo and its test dependencies, made once
/// under the build's target directory (`pip install` needs the network the
/// first time).
pub fn kazoo_python() -> Result<PathBuf> {
    let target = corral_bin()?
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("the target directory")?;
    let venv = target.join("kazoo-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".ready");
    let _lock = FileLock::acquire(&target.join("kazoo-venv.lock"))?;
    if ready.exists() {
        return Ok(python);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let st = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("python3 -m venv")?;
    if !st.success() {
        bail!("python3 -m venv failed ({st}); is python3-venv installed?");
    }
    let st = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check"])
        .args(PACKAGES)
        .status()
        .context("pip install")?;
    if !st.success() {
        bail!("pip install {PACKAGES:?} failed ({st})");
    }
    std::fs::write(&ready, b"")?;
    Ok(python)
}

/// Writes the `java` stand-in into `dir` (put it first in PATH): a
/// QuorumPeerMain launch becomes `corral serve --zoo-cfg <cfg>` with the
/// peer certificates in `certs`; anything else goes to the real java.
pub fn java_shim(dir: &Path, certs: &Path) -> Result<()> {
    let script = format!(
        r#"#!/bin/sh
# kazoo's harness runs: java -cp CP -D… org.apache.zookeeper.server.quorum.QuorumPeerMain <zoo.cfg>
for a in "$@"; do cfg="$a"; done
for a in "$@"; do
  if [ "$a" = org.apache.zookeeper.server.quorum.QuorumPeerMain ]; then
    # kazoo passes these as JVM options, which corral cannot see.
    export CORRAL_PEER_TLS_DIR={certs:?}
    export CORRAL_READ_ONLY_MODE=true
    export CORRAL_ZK_SUPER_DIGEST='super:D/InIHSb7yEEbrWz8b9l71RjZJU='
    exec {bin:?} serve --zoo-cfg "$cfg"
  fi
done
exec /usr/bin/java "$@"
"#,
        certs = certs,
        bin = corral_bin()?,
    );
    let path = dir.join("java");
    std::fs::write(&path, script)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A base port with `span` free TCP and UDP ports above it, for kazoo's
/// harness (`ZOOKEEPER_PORT_OFFSET`: node `i` uses base + 10 i + 0…3).
pub fn free_port_base(span: u16) -> Result<u16> {
    for base in (20_000u16..30_000).step_by(97) {
        let free = (base..base + span).all(|p| {
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
        });
        if free {
            return Ok(base);
        }
    }
    bail!("no free port range for kazoo's harness")
}
