//! `ZkProc`: a real Apache ZooKeeper 3.8 standalone server (Debian package `zookeeper`).

use crate::process::{log_tail, pick_free_port, Managed};
use anyhow::{bail, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// kazoo's super user `super:test`, as ZooKeeper's `superDigest` system property.
pub const SUPER_DIGEST: &str = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";

const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";
const SLF4J_JAR: &str = "/usr/share/java/slf4j-simple.jar";
/// A JVM start can be slow on a loaded 2-core CI box.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(15);

fn java() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("JAVA_HOME") {
        let j = PathBuf::from(h).join("bin/java");
        if j.is_file() {
            return Some(j);
        }
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("java"))
        .find(|j| j.is_file())
}

fn classpath() -> String {
    std::env::var("ZK_CLASSPATH").unwrap_or_else(|_| format!("{ZK_JAR}:{SLF4J_JAR}"))
}

/// True if java and the ZooKeeper 3.8 jars are installed.
pub fn zk_available() -> bool {
    java().is_some()
        && classpath()
            .split(':')
            .all(|j| j.is_empty() || Path::new(j).is_file())
}

/// Call first in a test that needs Apache ZooKeeper. Returns false (after a loud
/// message) when ZooKeeper is missing and the test should return early; panics
/// instead when `CORRAL_REQUIRE_ZK=1` (CI), so skipping is impossible there.
pub fn require_zk(test: &str) -> bool {
    if zk_available() {
        return true;
    }
    let msg = format!(
        "Apache ZooKeeper 3.8 is not installed (need java and {ZK_JAR}); \
         install it with `apt-get install -y zookeeper zookeeper-bin`"
    );
    if std::env::var("CORRAL_REQUIRE_ZK").as_deref() == Ok("1") {
        panic!("{test}: CORRAL_REQUIRE_ZK=1 but {msg}");
    }
    eprintln!("\n!!!!!!!!!! SKIPPING {test}: {msg} !!!!!!!!!!\n");
    false
}

/// Options for a [`ZkProc`].
#[derive(Debug, Clone)]
pub struct ZkBuilder {
    data_dir: Option<PathBuf>,
    port: Option<u16>,
    container_check_interval_ms: u64,
    extra_cfg: Vec<String>,
    extra_jvm: Vec<String>,
    wait_serving: bool,
}

impl Default for ZkBuilder {
    fn default() -> Self {
        ZkBuilder {
            data_dir: None,
            port: None,
            container_check_interval_ms: 1000,
            extra_cfg: Vec::new(),
            extra_jvm: Vec::new(),
            wait_serving: true,
        }
    }
}

impl ZkBuilder {
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// `-Dznode.container.checkIntervalMs` (1000 by default).
    pub fn container_check_interval_ms(mut self, ms: u64) -> Self {
        self.container_check_interval_ms = ms;
        self
    }

    /// An extra `key=value` line for zoo.cfg.
    pub fn cfg_line(mut self, line: &str) -> Self {
        self.extra_cfg.push(line.into());
        self
    }

    /// Whether `start` waits until the server serves (default). An ensemble
    /// member cannot serve until a quorum runs, so ensembles start with
    /// `false` and poll `srvr` themselves.
    pub fn wait_serving(mut self, wait: bool) -> Self {
        self.wait_serving = wait;
        self
    }

    /// An extra JVM argument (e.g. `-Dzookeeper.foo=bar`).
    pub fn jvm_arg(mut self, arg: &str) -> Self {
        self.extra_jvm.push(arg.into());
        self
    }

    pub fn start(self) -> Result<ZkProc> {
        if !zk_available() {
            bail!("Apache ZooKeeper is not installed (java + {ZK_JAR})");
        }
        let tmp = tempfile::Builder::new().prefix("zk-test-").tempdir()?;
        let data_dir = match &self.data_dir {
            Some(d) => d.clone(),
            None => tmp.path().join("data"),
        };
        std::fs::create_dir_all(&data_dir)?;
        let port = self.port.unwrap_or_else(pick_free_port);
        let mut cfg = format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\nforceSync=yes\n",
            data_dir.display()
        );
        for l in &self.extra_cfg {
            cfg.push_str(l);
            cfg.push('\n');
        }
        std::fs::write(tmp.path().join("zoo.cfg"), cfg)?;
        let mut p = ZkProc {
            child: Managed::new("zookeeper", tmp.path().join("zk.log")),
            port,
            data_dir,
            builder: self,
            tmp,
        };
        p.launch()?;
        Ok(p)
    }
}

/// A running Apache ZooKeeper we started. Dropping it SIGKILLs that PID.
pub struct ZkProc {
    child: Managed,
    port: u16,
    data_dir: PathBuf,
    builder: ZkBuilder,
    tmp: TempDir,
}

impl ZkProc {
    /// A fresh standalone server with a temp data dir on a free port.
    pub fn start() -> Result<ZkProc> {
        ZkProc::builder().start()
    }

    pub fn builder() -> ZkBuilder {
        ZkBuilder::default()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn connect_string(&self) -> String {
        self.addr().to_string()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.child.log
    }

    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.child.log, lines)
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    pub fn kill9(&mut self) {
        self.child.kill9();
    }

    /// SIGTERM, then wait (bounded).
    pub fn stop(&mut self) -> Result<()> {
        self.child.stop(STOP_GRACE).map(|_| ())
    }

    /// Starts it again on the same port and data dir (kills it first if still running).
    pub fn restart(&mut self) -> Result<()> {
        self.child.kill9();
        self.launch()
    }

    fn launch(&mut self) -> Result<()> {
        let java = java().ok_or_else(|| anyhow::anyhow!("java not found"))?;
        let mut cmd = Command::new(java);
        cmd.current_dir(self.tmp.path())
            .arg("-Xmx512m")
            .arg("-XX:+UseSerialGC")
            .arg(format!(
                "-Dzookeeper.DigestAuthenticationProvider.superDigest={SUPER_DIGEST}"
            ))
            .arg("-Dzookeeper.extendedTypesEnabled=true")
            .arg(format!(
                "-Dznode.container.checkIntervalMs={}",
                self.builder.container_check_interval_ms
            ))
            .arg("-Dzookeeper.admin.enableServer=false")
            .args(&self.builder.extra_jvm)
            .arg("-cp")
            .arg(classpath())
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(self.tmp.path().join("zoo.cfg"));
        self.child.spawn(cmd)?;
        if !self.builder.wait_serving {
            return Ok(());
        }
        let addr = self.addr();
        // ZooKeeper answers ruok before it accepts sessions; srvr shows a Mode only
        // once the server is really serving (as zk_real.sh checks).
        self.child.wait_ready(
            addr,
            "srvr",
            |a| a.lines().any(|l| l.starts_with("Mode: ")),
            START_TIMEOUT,
        )?;
        Ok(())
    }
}

/// What one run of Apache's zkCli printed.
#[derive(Debug, Clone)]
pub struct ZkCliOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs Apache's zkCli (`org.apache.zookeeper.ZooKeeperMain`) once against
/// `server` with one command, e.g. `["setquota", "-N", "3", "/app"]`, and
/// waits for it to exit (bounded by [`START_TIMEOUT`]; killed after that).
pub fn zk_cli(server: SocketAddr, command: &[&str]) -> Result<ZkCliOutput> {
    let java = java().ok_or_else(|| anyhow::anyhow!("java not found"))?;
    let mut child = Command::new(java)
        .arg("-Xmx256m")
        .arg("-XX:+UseSerialGC")
        .arg("-cp")
        .arg(classpath())
        .arg("org.apache.zookeeper.ZooKeeperMain")
        .arg("-server")
        .arg(server.to_string())
        .args(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let start = std::time::Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if start.elapsed() > START_TIMEOUT {
            // Only the child this call started.
            let _ = child.kill();
            let _ = child.wait();
            bail!("zkCli {command:?} did not exit within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    Ok(ZkCliOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
