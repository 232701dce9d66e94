//! Four-letter words on the client port, behind the whitelist.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::state::Shared;

/// The version string clients parse (kazoo gates features on `envi`'s zookeeper.version).
pub const VERSION: &str = concat!("3.9.3-corral-", env!("CARGO_PKG_VERSION"));

/// What ZooKeeper answers while the server is not running (no quorum).
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests\n";

/// Answers one four-letter word.
pub fn answer(shared: &Shared, word: &str) -> String {
    if !shared.opts.four_letter_allowed(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    let needs_serving = matches!(
        word,
        "srvr" | "stat" | "mntr" | "cons" | "wchs" | "wchc" | "wchp" | "dump"
    );
    // These list every session's watched or ephemeral paths, and the client
    // port answers them before any identity is known: with tenants, they
    // would show one tenant another's namespace.
    if matches!(word, "wchc" | "wchp" | "dump") && !shared.tenancy.is_inactive() {
        return format!(
            "{word} is not executed because tenancy is enabled (it would show every tenant's paths).\n"
        );
    }
    if needs_serving && !shared.is_serving() {
        // ZooKeeper's answer while it has no quorum (mode shows in `envi`-less
        // deployments through the log and the admin endpoint).
        return NOT_SERVING.into();
    }
    match word {
        "ruok" => "imok".into(),
        "srvr" => srvr(shared, false),
        "stat" => srvr(shared, true),
        "mntr" => mntr(shared),
        "cons" => cons(shared),
        "envi" => envi(shared),
        "conf" => conf(shared),
        "wchs" => wchs(shared),
        "wchc" => wchc(shared),
        "wchp" => wchp(shared),
        "dump" => dump(shared),
        "isro" => if shared.is_serving() { "rw" } else { "ro" }.into(),
        "crst" => {
            shared.stats.reset();
            "Connection stats reset.\n".into()
        }
        "srst" => {
            shared.stats.reset();
            "Server stats reset.\n".into()
        }
        _ => format!("{word} is not supported by corral.\n"),
    }
}

fn latency(shared: &Shared) -> (u64, f64, u64) {
    let s = &shared.stats;
    let n = s.latency_count.load(Ordering::Relaxed);
    let total = s.latency_total_us.load(Ordering::Relaxed);
    let avg = if n == 0 {
        0.0
    } else {
        total as f64 / n as f64 / 1000.0
    };
    (
        s.latency_min_us.load(Ordering::Relaxed) / 1000,
        avg,
        s.latency_max_us.load(Ordering::Relaxed) / 1000,
    )
}

fn srvr(shared: &Shared, with_clients: bool) -> String {
    let (min, avg, max) = latency(shared);
    let (zxid, nodes) = shared
        .tree
        .read()
        .map(|t| (t.last_zxid(), t.node_count()))
        .unwrap_or((0, 0));
    let mut o = String::new();
    let _ = writeln!(o, "Zookeeper version: {VERSION}, built by corral");
    if with_clients {
        o.push_str("Clients:\n");
        o.push_str(&cons(shared));
        o.push('\n');
    }
    let _ = writeln!(o, "Latency min/avg/max: {min}/{avg:.4}/{max}");
    let _ = writeln!(
        o,
        "Received: {}",
        shared.stats.packets_received.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        o,
        "Sent: {}",
        shared.stats.packets_sent.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        o,
        "Connections: {}",
        shared.conns.lock().map(|c| c.len()).unwrap_or(0)
    );
    let _ = writeln!(
        o,
        "Outstanding: {}",
        shared.stats.outstanding.load(Ordering::Relaxed).max(0)
    );
    let _ = writeln!(o, "Zxid: 0x{zxid:x}");
    let mode = shared.mode();
    let _ = writeln!(o, "Mode: {}", mode.mode);
    let _ = writeln!(o, "Node count: {nodes}");
    if mode.mode == "leader" {
        let _ = writeln!(o, "Proposal sizes last/min/max: -1/-1/-1");
    }
    if let Some(ob) = &mode.observer {
        let _ = writeln!(o, "Region: {}", ob.region);
        match &ob.upstream {
            Some((id, addr)) => {
                let _ = writeln!(o, "Upstream: server {id} at {addr}");
            }
            None => {
                let _ = writeln!(o, "Upstream: none");
            }
        }
        let _ = writeln!(o, "Sync mode: {}", ob.sync_mode);
        let _ = writeln!(o, "Lag: {} txns, {} ms", ob.zxid_lag, ob.time_lag_ms);
    }
    o
}

fn mntr(shared: &Shared) -> String {
    let (min, avg, max) = latency(shared);
    let (zxid, digest) = shared
        .tree
        .read()
        .map(|t| (t.last_zxid(), t.digest()))
        .unwrap_or((0, 0));
    let (nodes, data_size, ephemerals) = shared
        .tree
        .read()
        .map(|t| {
            (
                t.node_count(),
                t.approximate_data_size(),
                t.all_ephemerals().values().map(|v| v.len()).sum::<usize>(),
            )
        })
        .unwrap_or((0, 0, 0));
    let (watches, watched_paths) = shared
        .watches
        .lock()
        .map(|w| (w.watch_count(), w.path_count()))
        .unwrap_or((0, 0));
    let s = &shared.stats;
    let rows: Vec<(&str, String)> = vec![
        ("zk_version", VERSION.into()),
        ("zk_server_state", shared.mode().mode.into()),
        ("zk_avg_latency", format!("{avg:.4}")),
        ("zk_max_latency", max.to_string()),
        ("zk_min_latency", min.to_string()),
        (
            "zk_packets_received",
            s.packets_received.load(Ordering::Relaxed).to_string(),
        ),
        (
            "zk_packets_sent",
            s.packets_sent.load(Ordering::Relaxed).to_string(),
        ),
        (
            "zk_num_alive_connections",
            shared
                .conns
                .lock()
                .map(|c| c.len())
                .unwrap_or(0)
                .to_string(),
        ),
        (
            "zk_outstanding_requests",
            s.outstanding.load(Ordering::Relaxed).max(0).to_string(),
        ),
        ("zk_znode_count", nodes.to_string()),
        ("zk_watch_count", watches.to_string()),
        ("zk_watched_paths", watched_paths.to_string()),
        ("zk_ephemerals_count", ephemerals.to_string()),
        ("zk_approximate_data_size", data_size.to_string()),
        (
            "zk_global_sessions",
            shared
                .tracker
                .lock()
                .map(|t| t.len())
                .unwrap_or(0)
                .to_string(),
        ),
        (
            "zk_fsync_count",
            s.fsyncs.load(Ordering::Relaxed).to_string(),
        ),
        (
            "zk_txns_committed",
            s.txns_committed.load(Ordering::Relaxed).to_string(),
        ),
        (
            "zk_connections_refused",
            s.connections_refused.load(Ordering::Relaxed).to_string(),
        ),
        (
            "zk_malformed_frames",
            s.malformed_frames.load(Ordering::Relaxed).to_string(),
        ),
        ("zk_uptime", shared.now_ms().to_string()),
    ];
    let mode = shared.mode();
    let mut rows = rows;
    if mode.mode != "standalone" {
        rows.push(("zk_epoch", mode.epoch.to_string()));
        rows.push((
            "zk_leader_id",
            mode.leader.map_or_else(|| "-1".into(), |l| l.to_string()),
        ));
        rows.push(("zk_quorum_size", mode.voters.to_string()));
    }
    if mode.mode == "leader" {
        rows.push(("zk_learners", mode.learners.to_string()));
        rows.push(("zk_synced_followers", mode.synced_followers.to_string()));
        rows.push(("zk_synced_non_voting_followers", "0".into()));
    }
    // The applied zxid and the tree digest at it: equal zxids must show
    // equal digests on every replica (voters and observers alike).
    rows.push(("corral_last_zxid", format!("0x{zxid:x}")));
    rows.push(("corral_digest", format!("{digest:016x}")));
    if mode.mode != "standalone" {
        rows.push(("corral_observer_feeds", mode.feeds.to_string()));
        for (k, v) in [
            ("corral_peer_bytes_sent", &s.peer_bytes_sent),
            ("corral_peer_bytes_received", &s.peer_bytes_received),
            ("corral_feed_bytes_sent", &s.feed_bytes_sent),
            ("corral_feed_frames_sent", &s.feed_frames_sent),
        ] {
            rows.push((k, v.load(Ordering::Relaxed).to_string()));
        }
    }
    if let Some(ob) = &mode.observer {
        rows.push(("corral_observer_region", ob.region.clone()));
        rows.push((
            "corral_observer_upstream",
            ob.upstream
                .as_ref()
                .map_or_else(|| "-1".into(), |(id, _)| id.to_string()),
        ));
        rows.push((
            "corral_observer_upstream_addr",
            ob.upstream
                .as_ref()
                .map_or_else(String::new, |(_, a)| a.clone()),
        ));
        rows.push(("corral_observer_sync_mode", ob.sync_mode.into()));
        rows.push(("corral_observer_zxid_lag", ob.zxid_lag.to_string()));
        rows.push(("corral_observer_time_lag_ms", ob.time_lag_ms.to_string()));
        rows.push(("corral_observer_failovers", ob.failovers.to_string()));
    }
    if shared.tenancy.audit_sink().is_some() {
        rows.push((
            "corral_audit_records_dropped",
            shared.tenancy.audit_dropped().to_string(),
        ));
    }
    let mut o = String::new();
    for (k, v) in rows {
        let _ = writeln!(o, "{k}\t{v}");
    }
    o
}

fn cons(shared: &Shared) -> String {
    let mut o = String::new();
    if let Ok(conns) = shared.conns.lock() {
        let mut list: Vec<_> = conns.iter().collect();
        list.sort_by_key(|(id, _)| **id);
        for (_, c) in list {
            let _ = writeln!(
                o,
                " /{}[1](queued=0,recved={},sent={},sid=0x{:x})",
                c.remote,
                c.packets_received.load(Ordering::Relaxed),
                c.packets_sent.load(Ordering::Relaxed),
                c.session_id
            );
        }
    }
    o
}

fn envi(shared: &Shared) -> String {
    let mut o = String::from("Environment:\n");
    let rows = [
        ("zookeeper.version", VERSION.to_string()),
        ("host.name", "localhost".to_string()),
        ("corral.version", env!("CARGO_PKG_VERSION").to_string()),
        ("os.name", std::env::consts::OS.to_string()),
        ("os.arch", std::env::consts::ARCH.to_string()),
        (
            "user.dir",
            std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        (
            "corral.data.dir",
            shared.opts.data_dir.display().to_string(),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(o, "{k}={v}");
    }
    o
}

fn conf(shared: &Shared) -> String {
    let o = &shared.opts;
    format!(
        "clientPort={}\nclientPortAddress={}\ndataDir={}\ndataLogDir={}\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nserverId={}\n",
        o.listen.port(),
        o.listen.ip(),
        o.data_dir.display(),
        o.log_dir.display(),
        o.tick_time_ms,
        o.max_client_cnxns,
        o.min_session_timeout_ms,
        o.max_session_timeout_ms,
        o.server_id
    )
}

fn wchs(shared: &Shared) -> String {
    let (conns, paths, total) = shared
        .watches
        .lock()
        .map(|w| (w.conn_count(), w.path_count(), w.watch_count()))
        .unwrap_or((0, 0, 0));
    format!("{conns} connections watching {paths} paths\nTotal watches:{total}\n")
}

fn session_of(shared: &Shared, conn: u64) -> i64 {
    shared.conn(conn).map(|c| c.session_id).unwrap_or(0)
}

fn wchc(shared: &Shared) -> String {
    let by_conn = shared
        .watches
        .lock()
        .map(|w| w.by_conn())
        .unwrap_or_default();
    let mut o = String::new();
    for (conn, paths) in by_conn {
        let _ = writeln!(o, "0x{:x}", session_of(shared, conn));
        for p in paths {
            let _ = writeln!(o, "\t{p}");
        }
    }
    o
}

fn wchp(shared: &Shared) -> String {
    let by_path = shared
        .watches
        .lock()
        .map(|w| w.by_path())
        .unwrap_or_default();
    let mut o = String::new();
    for (path, conns) in by_path {
        let _ = writeln!(o, "{path}");
        for c in conns {
            let _ = writeln!(o, "\t0x{:x}", session_of(shared, c));
        }
    }
    o
}

fn dump(shared: &Shared) -> String {
    let mut o = String::from("SessionTracker dump:\n");
    let eph = shared
        .tree
        .read()
        .map(|t| t.all_ephemerals())
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "Global Sessions({}):",
        shared.tracker.lock().map(|t| t.len()).unwrap_or(0)
    );
    let _ = writeln!(
        o,
        "ephemeral nodes dump:\nSessions with Ephemerals ({}):",
        eph.len()
    );
    for (s, paths) in eph {
        let _ = writeln!(o, "0x{s:x}:");
        for p in paths {
            let _ = writeln!(o, "\t{p}");
        }
    }
    o
}
