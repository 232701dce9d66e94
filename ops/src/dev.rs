//! `corral dev --voters N [--observers M]`: a local ensemble as separate
//! `corral serve` processes on loopback, with a generated dev CA. Observers
//! get the ids after the voters and are fed by the voters. Prints the
//! connect strings, and stops every process it started (by PID) on Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct DevArgs {
    /// Number of voters (1-9).
    #[arg(long, default_value_t = 3)]
    voters: u64,
    /// Number of observers (0-9), fed by the voters.
    #[arg(long, default_value_t = 0)]
    observers: u64,
    /// Working directory: certificates, configs, data and logs.
    #[arg(long, default_value = "corral-dev")]
    dir: PathBuf,
    /// Client port of the first voter; the others follow.
    #[arg(long, default_value_t = 2181)]
    client_port: u16,
    /// Peer (QUIC, UDP) port of the first voter; the others follow.
    #[arg(long, default_value_t = 2888)]
    peer_port: u16,
    /// Start, wait until the ensemble serves, print the connect string and
    /// stop again (a smoke check, for scripts).
    #[arg(long)]
    check: bool,
}

pub fn run(args: DevArgs) -> ExitCode {
    match start(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corral dev: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The TOML config of voter `id` in a dev ensemble.
pub fn node_config(args_dir: &Path, n: u64, id: u64, client_port: u16, peer_port: u16) -> String {
    let mut s = common_config(args_dir, id, client_port);
    push_servers(&mut s, n, client_port, peer_port);
    s
}

/// The TOML config of observer `id` (> n) in a dev ensemble: fed by every
/// voter, taking observers below it on its own peer port.
pub fn observer_config(
    args_dir: &Path,
    n: u64,
    id: u64,
    client_port: u16,
    peer_port: u16,
) -> String {
    let mut s = common_config(args_dir, id, client_port);
    s.push_str("role = \"observer\"\n");
    s.push_str("region = \"dev\"\n");
    s.push_str(&format!(
        "feed_addr = \"127.0.0.1:{}\"\n",
        peer_port + (id - 1) as u16
    ));
    push_servers(&mut s, n, client_port, peer_port);
    s
}

/// What every dev node's config starts with.
fn common_config(args_dir: &Path, id: u64, client_port: u16) -> String {
    let mut s = String::new();
    s.push_str(&format!("server_id = {id}\n"));
    s.push_str(&format!(
        "client_port = {}\n",
        client_port + (id - 1) as u16
    ));
    s.push_str(&format!(
        "data_dir = {:?}\n",
        args_dir.join(format!("node{id}")).join("data")
    ));
    s.push_str(&format!("peer_tls_dir = {:?}\n", args_dir.join("certs")));
    s.push_str("four_letter_words = \"*\"\n");
    s
}

/// The voters' `[[servers]]` tables.
fn push_servers(s: &mut String, n: u64, client_port: u16, peer_port: u16) {
    for i in 1..=n {
        s.push_str(&format!(
            "\n[[servers]]\nid = {i}\nhost = \"127.0.0.1\"\nquorum_port = {}\nelection_port = {}\nclient = \"127.0.0.1:{}\"\n",
            peer_port + (i - 1) as u16,
            peer_port + 1000 + (i - 1) as u16,
            client_port + (i - 1) as u16
        ));
    }
}

struct Procs(Vec<(u64, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (id, c) in &mut self.0 {
            // SIGTERM first (a clean shutdown), then SIGKILL.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(3) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
            eprintln!("corral dev: stopped server {id}");
        }
    }
}

fn start(args: &DevArgs) -> Result<(), String> {
    if !(1..=9).contains(&args.voters) {
        return Err("--voters must be between 1 and 9".into());
    }
    if args.observers > 9 {
        return Err("--observers must be between 0 and 9".into());
    }
    let n = args.voters;
    let m = args.observers;
    let dir = std::path::absolute(&args.dir).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ids: Vec<u64> = (1..=n + m).collect();
    corral_voter::certs::generate_dev_pki(
        &dir.join("certs"),
        &ids,
        &["localhost".to_string(), "127.0.0.1".to_string()],
        false,
    )
    .map_err(|e| format!("certificates: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut procs = Procs(Vec::new());
    for id in 1..=n + m {
        let node_dir = dir.join(format!("node{id}"));
        std::fs::create_dir_all(&node_dir).map_err(|e| e.to_string())?;
        let conf = node_dir.join("corral.toml");
        let text = if id <= n {
            node_config(&dir, n, id, args.client_port, args.peer_port)
        } else {
            observer_config(&dir, n, id, args.client_port, args.peer_port)
        };
        std::fs::write(&conf, text).map_err(|e| format!("{}: {e}", conf.display()))?;
        let log = std::fs::File::create(node_dir.join("corral.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&exe)
            .arg("serve")
            .arg("--config")
            .arg(&conf)
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting server {id}: {e}"))?;
        procs.0.push((id, child));
    }
    let connect = |ids: std::ops::RangeInclusive<u64>| -> String {
        ids.map(|i| format!("127.0.0.1:{}", args.client_port + (i - 1) as u16))
            .collect::<Vec<_>>()
            .join(",")
    };
    wait_serving(&mut procs, args.client_port, n + m)?;
    println!(
        "corral dev: {n} voters and {m} observers serving; logs in {}",
        dir.display()
    );
    println!("connect string: {}", connect(1..=n));
    if m > 0 {
        println!("observers:      {}", connect(n + 1..=n + m));
    }
    if args.check {
        return Ok(());
    }
    println!("Ctrl-C stops them.");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tick.tick() => {
                    for (id, c) in &mut procs.0 {
                        if let Ok(Some(status)) = c.try_wait() {
                            eprintln!("corral dev: server {id} exited ({status}); see node{id}/corral.log");
                        }
                    }
                    procs.0.retain_mut(|(_, c)| matches!(c.try_wait(), Ok(None)));
                }
            }
        }
    });
    Ok(())
}

/// Waits until every server answers `srvr` with a serving mode.
fn wait_serving(procs: &mut Procs, client_port: u16, n: u64) -> Result<(), String> {
    let t0 = Instant::now();
    loop {
        let mut ok = 0;
        for i in 0..n {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], client_port + i as u16));
            if let Ok(text) = crate::four_letter_word(addr, "srvr") {
                if text.contains("Mode: leader")
                    || text.contains("Mode: follower")
                    || text.contains("Mode: observer")
                    || text.contains("Mode: standalone")
                {
                    ok += 1;
                }
            }
        }
        if ok == n {
            return Ok(());
        }
        for (id, c) in &mut procs.0 {
            if let Ok(Some(status)) = c.try_wait() {
                return Err(format!("server {id} exited ({status}); see its corral.log"));
            }
        }
        if t0.elapsed() > Duration::from_secs(30) {
            return Err("the ensemble did not start serving within 30 s; see the node logs".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
