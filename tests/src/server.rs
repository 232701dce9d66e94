//! `ServerProc`: a real `corral serve` process on loopback.

use crate::process::{log_tail, pick_free_port, Managed};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use tempfile::TempDir;

/// How long a corral start may take before we give up.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop()` waits after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How the server gets its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigMode {
    /// `corral serve --config <file.toml>`.
    Toml,
    /// `corral serve` with `CORRAL_*` environment variables only.
    Env,
    /// `corral serve --zoo-cfg <zoo.cfg>` (Apache ZooKeeper format).
    ZooCfg,
}

/// Locates the `corral` binary, building it once if none exists.
///
/// `$CORRAL_BIN` if set; else the newest of `<workspace>/target/debug/corral` and
/// `$CARGO_TARGET_DIR/debug/corral`; otherwise `cargo build -p corral-ops --bin corral`
/// into `<target>/harness-build` (a separate target dir, so a `cargo test` that holds
/// the main build lock cannot deadlock us), guarded by a process-wide once and a file lock.
pub fn corral_bin() -> Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| find_or_build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn candidates() -> Vec<PathBuf> {
    let ws = crate::workspace_dir();
    let mut v = Vec::new();
    if let Some(b) = std::env::var_os("CORRAL_BIN") {
        v.push(PathBuf::from(b));
        return v;
    }
    v.push(ws.join("target/debug/corral"));
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let t = PathBuf::from(t);
        let t = if t.is_relative() { ws.join(t) } else { t };
        v.push(t.join("debug/corral"));
        v.push(t.join("harness-build/debug/corral"));
    }
    v.push(ws.join("target/harness-build/debug/corral"));
    v
}

fn find_or_build() -> Result<PathBuf> {
    if let Some(b) = std::env::var_os("CORRAL_BIN") {
        let b = PathBuf::from(b);
        if b.is_file() {
            return Ok(b);
        }
        bail!("CORRAL_BIN={} does not exist", b.display());
    }
    // The most recently built of the usual places (a stale copy elsewhere loses).
    let newest = candidates()
        .into_iter()
        .filter_map(|p| {
            let t = std::fs::metadata(&p).ok()?.modified().ok()?;
            p.is_file().then_some((t, p))
        })
        .max_by_key(|(t, _)| *t);
    if let Some((_, found)) = newest {
        return Ok(found);
    }
    let ws = crate::workspace_dir();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => {
            let t = PathBuf::from(t);
            if t.is_relative() {
                ws.join(t)
            } else {
                t
            }
        }
        None => ws.join("target"),
    };
    let build_dir = target.join("harness-build");
    std::fs::create_dir_all(&build_dir)?;
    let _lock = FileLock::acquire(&build_dir.join(".harness.lock"))?;
    let bin = build_dir.join("debug/corral");
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!(
        "corral-tests: no corral binary found; building it into {}",
        build_dir.display()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let st = Command::new(cargo)
        .current_dir(&ws)
        .args(["build", "-p", "corral-ops", "--bin", "corral"])
        .env("CARGO_TARGET_DIR", &build_dir)
        .status()
        .context("run cargo build -p corral-ops --bin corral")?;
    if !st.success() || !bin.is_file() {
        bail!("cargo build -p corral-ops --bin corral failed ({st})");
    }
    Ok(bin)
}

/// An exclusive `flock` held until drop (serialises builds across test processes).
pub(crate) struct FileLock(std::fs::File);

impl FileLock {
    pub(crate) fn acquire(path: &Path) -> Result<FileLock> {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock(2) on a file descriptor we own for the lifetime of `f`.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            bail!(
                "flock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(FileLock(f))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: unlocking the descriptor we locked.
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

/// Options for a [`ServerProc`]. Defaults: a fresh temp data dir, a free port,
/// TOML config with `tick_time_ms = 2000`, every four-letter word, unlimited
/// connections per IP, a 1 s container check, and kazoo's `super:test` digest.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    data_dir: Option<PathBuf>,
    port: Option<u16>,
    mode: ConfigMode,
    keys: BTreeMap<String, String>,
    env: Vec<(String, String)>,
    start_timeout: Duration,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        let mut keys = BTreeMap::new();
        keys.insert("tick_time_ms".into(), "2000".into());
        keys.insert("four_letter_words".into(), r#"["*"]"#.into());
        keys.insert("max_client_cnxns".into(), "0".into());
        keys.insert("container_check_interval_ms".into(), "1000".into());
        keys.insert(
            "zk_super_digest".into(),
            format!("\"{}\"", crate::zk::SUPER_DIGEST),
        );
        ServerBuilder {
            data_dir: None,
            port: None,
            mode: ConfigMode::Toml,
            keys,
            env: Vec::new(),
            start_timeout: START_TIMEOUT,
        }
    }
}

impl ServerBuilder {
    /// Uses (and keeps) this data dir instead of a temp one.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    pub fn mode(mut self, mode: ConfigMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets a TOML key; `value` is TOML syntax (`"text"`, `5`, `["a"]`).
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.keys.insert(key.into(), value.into());
        self
    }

    /// Removes a default TOML key.
    pub fn unset(mut self, key: &str) -> Self {
        self.keys.remove(key);
        self
    }

    /// Adds an environment variable for the server process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn start_timeout(mut self, t: Duration) -> Self {
        self.start_timeout = t;
        self
    }

    /// Starts the server and waits for `ruok` = `imok`.
    pub fn start(self) -> Result<ServerProc> {
        let bin = corral_bin()?;
        let tmp = tempfile::Builder::new().prefix("corral-test-").tempdir()?;
        let data_dir = match &self.data_dir {
            Some(d) => d.clone(),
            None => tmp.path().join("data"),
        };
        std::fs::create_dir_all(&data_dir)?;
        let port = self.port.unwrap_or_else(pick_free_port);
        let mut p = ServerProc {
            child: Managed::new("corral", tmp.path().join("corral.log")),
            bin,
            port,
            data_dir,
            builder: self,
            tmp,
        };
        p.launch()?;
        Ok(p)
    }
}

/// A running `corral serve` we started. Dropping it SIGKILLs that PID.
pub struct ServerProc {
    child: Managed,
    bin: PathBuf,
    port: u16,
    data_dir: PathBuf,
    builder: ServerBuilder,
    tmp: TempDir,
}

impl ServerProc {
    /// A fresh server with a temp data dir on a free port.
    pub fn start() -> Result<ServerProc> {
        ServerProc::builder().start()
    }

    /// A server on an existing data dir (fresh port).
    pub fn start_with_data_dir(dir: impl Into<PathBuf>) -> Result<ServerProc> {
        ServerProc::builder().data_dir(dir).start()
    }

    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `127.0.0.1:<port>` for client connect strings.
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

    /// The temp dir holding the config and log (and the data dir unless one was given).
    pub fn work_dir(&self) -> &Path {
        self.tmp.path()
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

    /// SIGKILL the server (no cleanup on its side).
    pub fn kill9(&mut self) {
        self.child.kill9();
    }

    /// SIGTERM, then wait (bounded). Errors if it had to be killed or exited non-zero.
    pub fn stop(&mut self) -> Result<()> {
        match self.child.stop(STOP_GRACE)? {
            Some(st) if !st.success() => bail!(
                "corral exited with {st} after SIGTERM; log:\n{}",
                self.log_tail(30)
            ),
            _ => Ok(()),
        }
    }

    /// Starts it again on the same port and data dir (kills it first if still running).
    pub fn restart(&mut self) -> Result<()> {
        self.child.kill9();
        self.launch()
    }

    /// Starts it again without killing first (after `kill9` / `stop`).
    pub fn start_again(&mut self) -> Result<()> {
        self.launch()
    }

    fn launch(&mut self) -> Result<()> {
        let b = &self.builder;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve").current_dir(self.tmp.path());
        match b.mode {
            ConfigMode::Toml => {
                let mut toml = format!(
                    "client_port = {}\ndata_dir = \"{}\"\n",
                    self.port,
                    self.data_dir.display()
                );
                for (k, v) in &b.keys {
                    toml.push_str(&format!("{k} = {v}\n"));
                }
                let path = self.tmp.path().join("corral.toml");
                std::fs::write(&path, toml)?;
                cmd.arg("--config").arg(path);
            }
            ConfigMode::Env => {
                cmd.env("CORRAL_CLIENT_PORT", self.port.to_string())
                    .env("CORRAL_DATA_DIR", &self.data_dir)
                    .env("CORRAL_TICK_TIME_MS", "2000")
                    .env("CORRAL_FOUR_LETTER_WORDS", "*");
            }
            ConfigMode::ZooCfg => {
                let cfg = format!(
                    "tickTime=2000\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n\
                     4lw.commands.whitelist=*\nmaxClientCnxns=0\nadmin.enableServer=false\n",
                    self.data_dir.display(),
                    self.port
                );
                let path = self.tmp.path().join("zoo.cfg");
                std::fs::write(&path, cfg)?;
                cmd.arg("--zoo-cfg").arg(path);
            }
        }
        for (k, v) in &b.env {
            cmd.env(k, v);
        }
        self.child.spawn(cmd)?;
        let addr = self.addr();
        self.child
            .wait_ready(addr, "ruok", |a| a.trim() == "imok", b.start_timeout)?;
        Ok(())
    }
}

/// Runs `corral cli --server ADDR [--auth AUTH] ARGS…` (without any
/// CORRAL_SUPER_AUTH from the environment); (exit success, stdout+stderr).
pub fn corral_cli(
    server: std::net::SocketAddr,
    auth: Option<&str>,
    args: &[&str],
) -> Result<(bool, String)> {
    let mut cmd = Command::new(corral_bin()?);
    cmd.args(["cli", "--server", &server.to_string()]);
    if let Some(a) = auth {
        cmd.args(["--auth", a]);
    }
    let out = cmd
        .args(args)
        .env_remove("CORRAL_SUPER_AUTH")
        .output()
        .context("corral cli")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}
