//! Role changes by reconfig: an observer a committed reconfig makes a voter,
//! or a voter it makes an observer, restarts in its new role.
//!
//! The server keeps the last committed configuration in the data directory
//! ([`corral_server::reconfig::ensemble_file`], like ZooKeeper's dynamic
//! configuration file). At startup it replaces `servers`, and this server's
//! entry there decides its role. When a reconfig changes the role, the
//! process re-executes itself with the same arguments (same PID, same data):
//! clients reconnect, as on any restart. A voter becoming an observer first
//! marks the zxid it had applied; the observer then drops the log's tail past
//! it, since only committed history may reach an observer.

use std::path::Path;

use corral_config::{Config, ServerEntry};
use corral_server::state::RoleSwitch;
use corral_server::ServerOptions;
use corral_store::{Ensemble, MemberRole};

const DEMOTED_FILE: &str = "demoted";

/// Takes membership and role from the ensemble file, if there is one.
pub fn apply_ensemble_file(cfg: &mut Config) -> Result<(), String> {
    let path = corral_server::reconfig::ensemble_file(&cfg.data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let ens = Ensemble::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    cfg.servers = ens
        .servers
        .values()
        .map(|s| ServerEntry {
            id: s.id,
            host: s.host.clone(),
            quorum_port: s.quorum_port,
            election_port: s.election_port,
            observer: s.role == MemberRole::Observer,
            client: s.client.clone(),
        })
        .collect();
    if let Some(own) = ens.servers.get(&cfg.server_id) {
        cfg.role = match own.role {
            MemberRole::Observer => "observer",
            MemberRole::Participant => "voter",
        }
        .to_string();
    }
    tracing::info!(
        version = format_args!("{:x}", ens.version),
        role = %cfg.role,
        "membership from the last committed configuration"
    );
    Ok(())
}

/// A voter made an observer keeps only what it applied: see the module docs.
pub fn drop_unapplied_tail(opts: &ServerOptions) -> Result<(), String> {
    let marker = opts.data_dir.join(DEMOTED_FILE);
    let zxid = match std::fs::read_to_string(&marker) {
        Ok(t) => t
            .trim()
            .parse::<i64>()
            .map_err(|e| format!("{}: {e}", marker.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", marker.display())),
    };
    if opts.observer {
        corral_server::node::truncate_log_after(opts, zxid).map_err(|e| e.to_string())?;
        tracing::info!(
            zxid = format_args!("0x{zxid:x}"),
            "dropped the log past what this former voter applied"
        );
    }
    std::fs::remove_file(&marker).map_err(|e| format!("{}: {e}", marker.display()))
}

/// Restarts this process in the role `switch` names (never returns unless
/// the restart fails).
pub fn restart(data_dir: &Path, switch: RoleSwitch) -> String {
    use std::os::unix::process::CommandExt;
    if switch.to_observer {
        let marker = data_dir.join(DEMOTED_FILE);
        if let Err(e) = std::fs::write(&marker, switch.applied.to_string()) {
            return format!("{}: {e}", marker.display());
        }
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return format!("cannot find this executable: {e}"),
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    format!("cannot restart: {err}")
}
