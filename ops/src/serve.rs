//! `corral serve`: load the configuration, recover, serve until SIGINT/SIGTERM.
//! SIGHUP reloads the TLS listener's certificate, key and CA bundle (PEM or JKS),
//! and an observer's `region` and `upstreams`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use corral_config::Config;
use corral_server::{
    CaSource, ClientAuth, KeySource, Node, ServerOptions, TlsOptions, TlsReloader,
};

pub fn run(config: Option<PathBuf>, zoo_cfg: Option<PathBuf>) -> ExitCode {
    let source = (config.clone(), zoo_cfg.clone());
    let mut cfg = match load(config, zoo_cfg) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("corral: configuration error: {msg}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&cfg.log_level);
    if cfg.is_cluster() {
        if let Err(msg) = crate::role_switch::apply_ensemble_file(&mut cfg) {
            eprintln!("corral: {msg}");
            return ExitCode::FAILURE;
        }
    }
    let supers =
        match corral_auth::SuperUsers::new(&cfg.super_digests, cfg.zk_super_digest.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("corral: configuration error: super_digests: {e}");
                return ExitCode::from(2);
            }
        };
    if let Err(e) = cfg.check_cluster() {
        eprintln!("corral: configuration error: {e}");
        return ExitCode::from(2);
    }
    // One process-wide crypto provider (ring), before anything builds a TLS config.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut opts = options(&cfg);
    opts.tenancy = match crate::tenancy_config::tenancy_options(&cfg) {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("corral: configuration error: {msg}");
            return ExitCode::from(2);
        }
    };
    if let Err(msg) = crate::role_switch::drop_unapplied_tail(&opts) {
        eprintln!("corral: {msg}");
        return ExitCode::FAILURE;
    }
    let tls = tls_options(&cfg);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("corral: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let mut upstreams = None;
        let started = if cfg.is_observer() {
            match crate::cluster::observer_role(&cfg) {
                Ok(role) => {
                    upstreams = Some(role.reloader());
                    Node::start_role(opts, supers, tls, Box::new(role)).await
                }
                Err(e) => {
                    eprintln!("corral: {e}");
                    return ExitCode::FAILURE;
                }
            }
        } else if cfg.is_cluster() {
            match crate::cluster::voter_role(&cfg).await {
                Ok(role) => Node::start_role(opts, supers, tls, Box::new(role)).await,
                Err(e) => {
                    eprintln!("corral: {e}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            Node::start_with_tls(opts, supers, tls).await
        };
        let node = match started {
            Ok(n) => n,
            Err(e) => {
                eprintln!("corral: {e}");
                return ExitCode::FAILURE;
            }
        };
        match node.local_addr() {
            Ok(a) => tracing::info!(addr = %a, "serving clients"),
            Err(e) => tracing::warn!(error = %e, "serving clients"),
        }
        if let Some(a) = node.secure_addr() {
            tracing::info!(addr = %a, client_auth = %cfg.tls_client_auth(), "serving TLS clients");
        }
        tokio::spawn(reload_on_sighup(node.tls_reloader(), upstreams, source));
        let shared = node.shared();
        tokio::select! {
            _ = node.run() => ExitCode::SUCCESS,
            _ = shutdown_signal() => {
                tracing::info!("shutting down");
                ExitCode::SUCCESS
            }
            _ = shared.role_switched.notified() => {
                let switch = shared.role_switch.lock().ok().and_then(|s| *s);
                match switch {
                    Some(s) => {
                        let msg = crate::role_switch::restart(&shared.opts.data_dir, s);
                        eprintln!("corral: {msg}");
                        ExitCode::FAILURE
                    }
                    None => ExitCode::FAILURE,
                }
            }
        }
    })
}

fn load(config: Option<PathBuf>, zoo_cfg: Option<PathBuf>) -> Result<Config, String> {
    match zoo_cfg {
        Some(path) => {
            let z = corral_config::load_zoo_cfg(&path).map_err(|e| e.to_string())?;
            for w in &z.warnings {
                eprintln!("corral: warning: {w}");
            }
            Ok(z.config)
        }
        None => corral_config::load(config.as_deref()).map_err(|e| e.to_string()),
    }
}

fn options(cfg: &Config) -> ServerOptions {
    let mut o = ServerOptions::standalone(
        cfg.data_dir.clone(),
        SocketAddr::new(cfg.client_addr, cfg.client_port),
    );
    o.server_id = cfg.server_id;
    o.log_dir = cfg.log_dir();
    o.tick_time_ms = cfg.tick_time_ms;
    o.min_session_timeout_ms = cfg.min_session_timeout();
    o.max_session_timeout_ms = cfg.max_session_timeout();
    o.max_client_cnxns = cfg.max_client_cnxns;
    o.max_frame_bytes = cfg.max_frame_bytes;
    o.four_letter_words = cfg.four_letter_words.clone();
    o.ttl_nodes_enabled = cfg.ttl_nodes_enabled;
    o.container_check_interval_ms = cfg.container_check_interval_ms;
    o.snap_count = cfg.snap_count;
    o.snap_retain_count = cfg.snap_retain_count as usize;
    o.max_batch = cfg.max_batch;
    o.max_outstanding_per_session = cfg.max_outstanding_per_session;
    o.read_only_mode = cfg.read_only_mode;
    o.reconfig_enabled = cfg.reconfig_enabled;
    o.ensemble = ensemble_of(cfg).map(std::sync::Arc::new);
    o.observer = cfg.is_observer();
    o.log_engine = match cfg.txn_log_engine.as_str() {
        "sled" => corral_server::state::LogEngine::Sled,
        _ => corral_server::state::LogEngine::File,
    };
    o
}

/// The ensemble a cluster node starts with, from `servers` (what
/// `/zookeeper/config` shows until a reconfig commits); `None` standalone.
fn ensemble_of(cfg: &Config) -> Option<corral_store::Ensemble> {
    if !cfg.is_cluster() {
        return None;
    }
    let mut e = corral_store::Ensemble::default();
    for s in &cfg.servers {
        let spec = corral_store::ServerSpec {
            id: s.id,
            host: s.host.clone(),
            quorum_port: s.quorum_port,
            election_port: s.election_port,
            role: if s.observer {
                corral_store::MemberRole::Observer
            } else {
                corral_store::MemberRole::Participant
            },
            client: s.client.clone(),
        };
        e.servers.insert(s.id, spec);
    }
    Some(e)
}

/// The TLS listener's options, when `secure_client_port` is set (validation has
/// checked that the files and client auth mode are there and consistent).
fn tls_options(cfg: &Config) -> Option<TlsOptions> {
    let port = cfg.secure_client_port?;
    // A JKS key/trust store (tls_keystore_file / tls_truststore_file) or PEM files.
    let identity = match &cfg.tls_keystore_file {
        Some(file) => KeySource::Jks {
            file: file.clone(),
            password: cfg.tls_keystore_password.clone().unwrap_or_default(),
        },
        None => KeySource::Pem {
            cert_file: cfg.tls_cert_file.clone()?,
            key_file: cfg.tls_key_file.clone()?,
        },
    };
    let client_ca = match &cfg.tls_truststore_file {
        Some(file) => Some(CaSource::Jks {
            file: file.clone(),
            password: cfg.tls_truststore_password.clone(),
        }),
        None => cfg.tls_ca_file.clone().map(CaSource::Pem),
    };
    let mut t =
        TlsOptions::with_sources(SocketAddr::new(cfg.client_addr, port), identity, client_ca);
    t.client_auth = cfg.tls_client_auth().parse().unwrap_or(ClientAuth::Need);
    t.reload_interval_ms = cfg.tls_reload_interval_ms;
    Some(t)
}

#[cfg(unix)]
/// SIGHUP reloads the TLS listener's files and, on an observer, its
/// `region` and `upstreams` from the configuration (the feed moves to the
/// new upstreams at once). Other keys need a restart.
async fn reload_on_sighup(
    tls: Option<std::sync::Arc<TlsReloader>>,
    upstreams: Option<corral_observer::UpstreamReloader>,
    (config, zoo_cfg): (Option<PathBuf>, Option<PathBuf>),
) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; TLS files reload only on change");
            return;
        }
    };
    while hup.recv().await.is_some() {
        if let Some(reloader) = &tls {
            tracing::info!("SIGHUP: reloading TLS certificates");
            // A failure is logged by reload() and the previous certificates stay.
            let _ = reloader.reload();
        }
        if let Some(up) = &upstreams {
            let reloaded = load(config.clone(), zoo_cfg.clone()).and_then(|mut cfg| {
                crate::role_switch::apply_ensemble_file(&mut cfg)?;
                let list = crate::cluster::observer_upstreams(&cfg)?;
                Ok((cfg.region, list))
            });
            match reloaded {
                Ok((region, list)) if list.is_empty() => {
                    tracing::warn!(%region, "SIGHUP: the configuration names no upstream; keeping the current ones")
                }
                Ok((region, list)) => {
                    let changed = up.set(&region, &list);
                    tracing::info!(%region, upstreams = list.len(), changed, "SIGHUP: observer upstreams reloaded");
                }
                Err(e) => tracing::warn!("SIGHUP: configuration not reloaded: {e}"),
            }
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_sighup(
    _tls: Option<std::sync::Arc<TlsReloader>>,
    _upstreams: Option<corral_observer::UpstreamReloader>,
    _source: (Option<PathBuf>, Option<PathBuf>),
) {
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CORRAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
