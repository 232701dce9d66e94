//! `corral cli reconfig`: ZooKeeper's `reconfig` from the command line (as
//! zkCli's `reconfig -add/-remove/-members` and `config` do), over the same
//! operation any client can send.

use anyhow::{Context, Result};
use clap::Subcommand;
use corral_proto::request::{PathWatch, ReconfigRequest};
use corral_proto::{Request, Response};

use crate::client::Client;

#[derive(Subcommand, Debug)]
pub enum ReconfigCmd {
    /// Print the ensemble's configuration (`/zookeeper/config`).
    Show,
    /// Add servers or change their role: `server.N=host:peerPort:electionPort:participant|observer;clientHost:clientPort`.
    Add {
        #[arg(required = true, value_name = "SERVER")]
        servers: Vec<String>,
        /// Only if the configuration is still this version (hex, as `show` prints it).
        #[arg(long, value_name = "VERSION")]
        from_config: Option<String>,
    },
    /// Remove servers by id.
    Remove {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<u64>,
        #[arg(long, value_name = "VERSION")]
        from_config: Option<String>,
    },
    /// Replace the whole membership with these servers.
    Set {
        #[arg(required = true, value_name = "SERVER")]
        servers: Vec<String>,
        #[arg(long, value_name = "VERSION")]
        from_config: Option<String>,
    },
}

/// Runs `cmd` over `c` (authenticated as a super user unless it is `show`).
pub async fn run(cmd: ReconfigCmd, c: &mut Client) -> Result<String> {
    let (joining, leaving, new_members, from) = match cmd {
        ReconfigCmd::Show => return show(c).await,
        ReconfigCmd::Add {
            servers,
            from_config,
        } => (servers.join(","), String::new(), String::new(), from_config),
        ReconfigCmd::Remove { ids, from_config } => {
            let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
            (String::new(), ids.join(","), String::new(), from_config)
        }
        ReconfigCmd::Set {
            servers,
            from_config,
        } => (String::new(), String::new(), servers.join(","), from_config),
    };
    let cur_config_id = match from {
        Some(v) => i64::from_str_radix(v.trim_start_matches("0x"), 16)
            .with_context(|| format!("--from-config {v}: not a hexadecimal version"))?,
        None => -1,
    };
    let reply = c
        .call(&Request::Reconfig(ReconfigRequest {
            joining_servers: joining,
            leaving_servers: leaving,
            new_members,
            cur_config_id,
        }))
        .await?;
    crate::tenant_cli::check(reply.header.err, "reconfig")?;
    match reply.body {
        Response::Data(Some(d), _) => Ok(String::from_utf8_lossy(&d).into_owned()),
        other => anyhow::bail!("reconfig: unexpected reply {other:?}"),
    }
}

async fn show(c: &mut Client) -> Result<String> {
    let reply = c
        .call(&Request::GetData(PathWatch {
            path: corral_store::ensemble::CONFIG_NODE.into(),
            watch: false,
        }))
        .await?;
    crate::tenant_cli::check(reply.header.err, "reading /zookeeper/config")?;
    match reply.body {
        Response::Data(d, _) => Ok(String::from_utf8_lossy(&d.unwrap_or_default()).into_owned()),
        other => anyhow::bail!("unexpected reply {other:?}"),
    }
}
