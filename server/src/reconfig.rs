//! The `reconfig` operation: the next ensemble configuration from a request,
//! with ZooKeeper's rules (facts from ZooKeeper's `PrepRequestProcessor`).
//!
//! - Incremental mode removes the `leavingServers` ids, then adds or replaces
//!   each `joiningServers` entry (`server.<id>=<spec>`, comma-separated).
//!   Non-incremental mode takes `newMembers` (entries separated by commas or
//!   newlines) as the whole new membership.
//! - A joiner must name a client address; malformed entries, ids or a member
//!   list with duplicate addresses are `BadArguments`.
//! - The new configuration needs at least two voters (ZooKeeper's check
//!   with `standaloneEnabled`, its default).
//! - `curConfigId` other than -1 must equal the current version, else
//!   `BadVersion`.
//!
//! The leader's prep ([`crate::prep`]) calls this, then stamps the txn's zxid
//! as the version, checks WRITE on `/zookeeper/config` (so only super
//! identities pass with its default ACL), and proposes a `Reconfig` txn. The
//! voting core refuses it while another reconfig is pending
//! (`ReconfigInProgress`) or without a synced quorum of the new voters
//! (`NewConfigNoQuorum`).

use std::io::Write;
use std::path::{Path, PathBuf};

use corral_proto::request::ReconfigRequest;
use corral_proto::ErrorCode;
use corral_store::{Ensemble, MemberRole, ServerSpec};

use crate::state::{RoleSwitch, Shared};

/// The last committed configuration, in `/zookeeper/config`'s text, kept in
/// the data directory (ZooKeeper's dynamic configuration file). A node
/// restarting takes its membership and its own role from it.
pub fn ensemble_file(data_dir: &Path) -> PathBuf {
    data_dir.join("ensemble")
}

/// A committed reconfig was applied here: keep it in the ensemble file and,
/// when it gives this server the other role (an observer made a voter, or a
/// voter made an observer), ask the process to restart in that role.
pub fn applied(shared: &Shared, data: &[u8], zxid: i64) {
    if let Err(e) = write_atomically(&ensemble_file(&shared.opts.data_dir), data) {
        tracing::error!(error = %e, "cannot keep the new configuration in the data directory");
    }
    let Ok(ens) = std::str::from_utf8(data).map(Ensemble::parse) else {
        return;
    };
    let Ok(ens) = ens else { return };
    let Some(own) = ens.servers.get(&shared.opts.server_id) else {
        return;
    };
    let to_observer = own.role == MemberRole::Observer;
    if shared.opts.ensemble.is_none() || to_observer == shared.opts.observer {
        return;
    }
    tracing::info!(
        zxid = format_args!("0x{zxid:x}"),
        role = if to_observer { "observer" } else { "voter" },
        "a committed reconfig changed this server's role; restarting in it"
    );
    if let Ok(mut s) = shared.role_switch.lock() {
        *s = Some(RoleSwitch {
            to_observer,
            applied: zxid,
        });
    }
    shared.role_switched.notify_one();
}

fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn bad(what: &str, e: impl std::fmt::Display) -> ErrorCode {
    tracing::info!(error = %e, "reconfig refused: {what}");
    ErrorCode::BadArguments
}

/// The configuration in force: the last reconfig's text, or the ensemble
/// the node was started with if none has committed.
pub fn current(text: Option<&[u8]>, bootstrap: &Ensemble) -> Ensemble {
    match text.filter(|t| !t.is_empty()) {
        None => bootstrap.clone(),
        Some(t) => match std::str::from_utf8(t)
            .map_err(|e| e.to_string())
            .and_then(|t| Ensemble::parse(t).map_err(|e| e.0))
        {
            Ok(e) => e,
            // Only prep writes this node; an unreadable one is a bug.
            Err(e) => panic!("/zookeeper/config does not parse: {e}"),
        },
    }
}

fn items(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty())
}

/// The next configuration, before its version is set.
pub fn next(current: &Ensemble, req: &ReconfigRequest) -> Result<Ensemble, ErrorCode> {
    if req.cur_config_id != -1 && req.cur_config_id != current.version {
        tracing::info!(
            from = req.cur_config_id,
            current = current.version,
            "reconfig refused: not from the current configuration"
        );
        return Err(ErrorCode::BadVersion);
    }
    let next = if !req.new_members.trim().is_empty() {
        Ensemble::parse(&req.new_members.replace(',', "\n"))
            .map_err(|e| bad("bad new member list", e))?
    } else {
        let mut next = current.clone();
        for id in items(&req.leaving_servers) {
            let id: u64 = id.parse().map_err(|e| bad("bad leaving id", e))?;
            next.servers.remove(&id);
        }
        for line in items(&req.joining_servers) {
            let s = ServerSpec::parse_line(line).map_err(|e| bad("bad joining server", e))?;
            if s.client.is_none() {
                return Err(bad("joining server without a client address", line));
            }
            if s.quorum_port == s.election_port {
                return Err(bad("quorum and election ports must differ", line));
            }
            next.servers.insert(s.id, s);
        }
        next
    };
    next.check_addresses()
        .map_err(|e| bad("duplicate addresses", e))?;
    if next.voters().len() < 2 {
        return Err(bad(
            "the new configuration must include at least 2 voters",
            next.voters().len(),
        ));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(joining: &str, leaving: &str, new_members: &str, from: i64) -> ReconfigRequest {
        ReconfigRequest {
            joining_servers: joining.into(),
            leaving_servers: leaving.into(),
            new_members: new_members.into(),
            cur_config_id: from,
        }
    }

    fn three() -> Ensemble {
        Ensemble::parse(
            "server.1=h:11:21;h:31\nserver.2=h:12:22;h:32\nserver.3=h:13:23;h:33\nversion=100000000",
        )
        .unwrap()
    }

    #[test]
    fn incremental_reconfigs_add_replace_and_remove() {
        // Goal: joining adds or replaces entries, leaving removes ids, as ZooKeeper does.
        let joining = "server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456";
        let n = next(&three(), &req(joining, "", "", -1)).unwrap();
        assert!(n.to_text().contains(joining));
        assert_eq!(n.voters().len(), 3);
        let n = next(&n, &req("", "100, 3", "", -1)).unwrap();
        assert_eq!(n.servers.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        let n = next(
            &three(),
            &req("server.4=h:14:24:participant;h:34", "1", "", 0x1_0000_0000),
        )
        .unwrap();
        assert_eq!(n.voters().into_iter().collect::<Vec<_>>(), vec![2, 3, 4]);
    }

    #[test]
    fn non_incremental_reconfigs_replace_the_membership() {
        // Goal: newMembers, comma or newline separated, is the whole new membership.
        let n = next(
            &three(),
            &req("", "", "server.5=h:15:25;h:35,server.6=h:16:26;h:36\n", -1),
        )
        .unwrap();
        assert_eq!(n.voters().into_iter().collect::<Vec<_>>(), vec![5, 6]);
    }

    #[test]
    fn bad_requests_get_zookeepers_error_codes() {
        // Goal: BadVersion for a stale fromConfig, BadArguments for bad input.
        assert_eq!(
            next(&three(), &req("", "1", "", 7)),
            Err(ErrorCode::BadVersion)
        );
        for r in [
            req("some thing", "", "", -1),
            req("server.4=h:14:24", "", "", -1),
            req("server.4=h:14:14;h:34", "", "", -1),
            req("", "x", "", -1),
            req("", "1,2", "", -1),
            req("server.4=h:11:21;h:9", "", "", -1),
            req("", "", "server.1=h:1:2;3", -1),
        ] {
            assert_eq!(next(&three(), &r), Err(ErrorCode::BadArguments), "{r:?}");
        }
    }

    #[test]
    fn the_current_configuration_is_the_last_reconfigs_or_the_bootstrap_one() {
        // Goal: an empty /zookeeper/config means the ensemble the node started with.
        assert_eq!(current(Some(b""), &three()), three());
        let text = three().to_text();
        let mut other = three();
        other.servers.remove(&3);
        assert_eq!(current(Some(text.as_bytes()), &other), three());
    }
}
