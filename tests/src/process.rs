//! A child process we started, with its output captured to a log file.
//! Only this PID is ever signalled.

use anyhow::{anyhow, bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn pick_free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Sends a four-letter word to `addr` and returns the whole answer (bounded to 2 s).
pub fn four_letter_word(addr: SocketAddr, word: &str) -> std::io::Result<String> {
    let timeout = Duration::from_secs(2);
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(word.as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The last `n` lines of a log file ("" if unreadable).
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One spawned process whose stdout and stderr append to `log`.
pub(crate) struct Managed {
    child: Option<Child>,
    pub(crate) log: PathBuf,
    name: &'static str,
}

impl Managed {
    pub(crate) fn new(name: &'static str, log: PathBuf) -> Self {
        Managed {
            child: None,
            log,
            name,
        }
    }

    pub(crate) fn spawn(&mut self, mut cmd: Command) -> Result<()> {
        if self.child.is_some() {
            bail!("{} is already running", self.name);
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("open log {}", self.log.display()))?;
        writeln!(f, "===== harness: starting {:?}", cmd)?;
        let out: File = f.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(f));
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn {} ({:?})", self.name, cmd))?;
        self.child = Some(child);
        Ok(())
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// True if the process is still alive (reaps it if it exited).
    pub(crate) fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Waits until the four-letter word `word` on `addr` gets an answer that
    /// `ready` accepts, the process dies, or `timeout` passes.
    pub(crate) fn wait_ready(
        &mut self,
        addr: SocketAddr,
        word: &str,
        ready: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<Duration> {
        let t0 = Instant::now();
        loop {
            if let Ok(ans) = four_letter_word(addr, word) {
                if ready(&ans) {
                    return Ok(t0.elapsed());
                }
            }
            if !self.is_running() {
                bail!(
                    "{} exited before answering {word} on {addr}; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    log_tail(&self.log, 40)
                );
            }
            if t0.elapsed() > timeout {
                let pid = self.pid();
                self.kill9();
                bail!(
                    "{} (pid {pid:?}) was not ready ({word}) on {addr} within {timeout:?}; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    log_tail(&self.log, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status if it exited by itself.
    pub(crate) fn stop(&mut self, grace: Duration) -> Result<Option<std::process::ExitStatus>> {
        let Some(mut c) = self.child.take() else {
            return Ok(None);
        };
        let pid = c.id() as libc::pid_t;
        // SAFETY: plain kill(2) on the PID of a child we spawned and have not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let t0 = Instant::now();
        while t0.elapsed() < grace {
            if let Some(st) = c.try_wait()? {
                return Ok(Some(st));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        Err(anyhow!(
            "{} (pid {pid}) ignored SIGTERM for {grace:?}; killed it",
            self.name
        ))
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.kill9();
    }
}
