//! `corral cli tenant create|update|delete|list|show|usage`: tenant admin over
//! the ZooKeeper protocol, as a super user.
//!
//! The registry is a set of znodes (`/zookeeper/corral/tenants/<name>`, see
//! `corral_server::tenancy`), so every change is an ordinary write any node
//! forwards to the leader, and it takes effect cluster-wide at commit. The
//! CLI checks a change against the whole registry first, so a mistake gets a
//! message naming the problem (the server refuses it anyway, with
//! `BadArguments`), and updates and deletes carry the record's version, so two
//! admins racing cannot silently overwrite each other.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use corral_proto::request::{AuthPacket, DeleteRequest, PathWatch, SetDataRequest};
use corral_proto::{ErrorCode, Request, Response};
use corral_server::tenancy::bootstrap::{create_request, creation_plan};
use corral_tenant::registry::node_path;
use corral_tenant::{Binding, Quotas, Registry, Tenant, X509Rule, REGISTRY_ROOT};

use crate::client::Client;

/// Where and as whom the CLI connects.
#[derive(Args, Debug)]
pub struct CliArgs {
    /// A server of the ensemble (any node; writes go to the leader).
    #[arg(long, default_value = "127.0.0.1:2181", global = true)]
    pub server: SocketAddr,
    /// Super credentials as `user:password` (or set CORRAL_SUPER_AUTH).
    #[arg(long, global = true)]
    pub auth: Option<String>,
    #[command(subcommand)]
    pub cmd: CliCmd,
}

#[derive(Subcommand, Debug)]
pub enum CliCmd {
    /// Tenant administration.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Show or change the ensemble's membership (ZooKeeper's reconfig).
    #[command(subcommand)]
    Reconfig(crate::reconfig_cli::ReconfigCmd),
}

#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    /// Create a tenant: its registry record and its namespace root.
    Create {
        name: String,
        /// Namespace root (default /tenants/<name>).
        #[arg(long)]
        root: Option<String>,
        #[command(flatten)]
        edit: TenantEdit,
    },
    /// Change a tenant's bindings, quotas or IP rules (the root cannot move).
    Update {
        name: String,
        #[command(flatten)]
        edit: TenantEdit,
    },
    /// Delete a tenant's record; its znodes under the root stay.
    Delete { name: String },
    /// List the tenants.
    List,
    /// Print a tenant's record as JSON.
    Show { name: String },
    /// A tenant's tree usage against its quotas: znodes, data bytes and
    /// ephemerals strictly below its root, counted by walking the subtree
    /// (the same figures the servers' counters hold; bound sessions, counted
    /// ensemble-wide in the session table, and connections, watches and
    /// request rates, per serving node, are not shown).
    Usage { name: String },
}

/// Changes to a tenant record, applied in this order: `--file` replaces the
/// whole record, the `--clear-*` flags empty lists, then the rest add or set.
#[derive(Args, Debug, Default)]
pub struct TenantEdit {
    /// A JSON tenant record to start from (as `show` prints it).
    #[arg(long)]
    file: Option<PathBuf>,
    /// `name=value` for max_znodes, max_data_bytes, max_ephemerals,
    /// max_sessions, max_connections, max_watches, max_request_rate,
    /// max_bytes_per_znode; `name=none` removes the limit.
    #[arg(long = "quota", value_name = "NAME=VALUE")]
    quotas: Vec<String>,
    /// Bind sessions from this address or CIDR range.
    #[arg(long = "bind-ip", value_name = "CIDR")]
    bind_ip: Vec<String>,
    /// Bind sessions that `addauth digest USER:PASSWORD` (stored as an argon2 hash).
    #[arg(long = "bind-digest", value_name = "USER:PASSWORD")]
    bind_digest: Vec<String>,
    /// Bind client certificates: subject_dn=DN, san_uri=GLOB, san_dns=GLOB,
    /// san_email=GLOB or cn=CN.
    #[arg(long = "bind-x509", value_name = "MATCH=VALUE")]
    bind_x509: Vec<String>,
    /// Remove every binding first.
    #[arg(long)]
    clear_bindings: bool,
    /// Only admit bound sessions from these ranges.
    #[arg(long = "ip-allow", value_name = "CIDR")]
    ip_allow: Vec<String>,
    /// Refuse bound sessions from these ranges.
    #[arg(long = "ip-deny", value_name = "CIDR")]
    ip_deny: Vec<String>,
    /// Remove every IP rule first.
    #[arg(long)]
    clear_ip_rules: bool,
}

pub fn run(args: CliArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("corral cli: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(args)) {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("corral cli: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(args: CliArgs) -> Result<String> {
    let cmd = match args.cmd {
        CliCmd::Tenant(cmd) => cmd,
        CliCmd::Reconfig(cmd) => {
            let mut c = match cmd {
                // Anyone may read the configuration.
                crate::reconfig_cli::ReconfigCmd::Show => {
                    Client::connect(args.server, 30_000).await?
                }
                _ => connect(args.server, args.auth.as_deref()).await?,
            };
            let out = crate::reconfig_cli::run(cmd, &mut c).await;
            let _ = c.close().await;
            return out;
        }
    };
    let mut c = connect(args.server, args.auth.as_deref()).await?;
    let out = match cmd {
        TenantCmd::List => list(&mut c).await,
        TenantCmd::Show { name } => {
            let (t, _) = read_record(&mut c, &name).await?;
            Ok(String::from_utf8(pretty(&t)?)?)
        }
        TenantCmd::Create { name, root, edit } => create(&mut c, &name, root, &edit).await,
        TenantCmd::Update { name, edit } => update(&mut c, &name, &edit).await,
        TenantCmd::Delete { name } => delete(&mut c, &name).await,
        TenantCmd::Usage { name } => usage(&mut c, &name).await,
    };
    let _ = c.close().await;
    out
}

async fn connect(server: SocketAddr, auth: Option<&str>) -> Result<Client> {
    let from_env = std::env::var("CORRAL_SUPER_AUTH").ok();
    let auth = auth.or(from_env.as_deref()).ok_or_else(|| {
        anyhow!("this needs super credentials: pass --auth user:password or set CORRAL_SUPER_AUTH")
    })?;
    let mut c = Client::connect(server, 30_000).await?;
    let reply = c
        .call(&Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: "digest".into(),
            auth: auth.as_bytes().to_vec(),
        }))
        .await
        .context("authenticating")?;
    check(reply.header.err, "authenticating")?;
    // A non-super digest passes addauth; the registry read below is the real test.
    let whoami = c.call(&Request::WhoAmI).await?;
    let is_super = matches!(&whoami.body, Response::WhoAmI(ids) if ids.iter().any(|i| i.auth_scheme == "super"));
    if !is_super {
        bail!("{server}: these credentials are not a super user's (see super_digests)");
    }
    Ok(c)
}

pub(crate) fn check(err: i32, what: &str) -> Result<()> {
    if err == 0 {
        return Ok(());
    }
    match ErrorCode::from_code(err) {
        Some(code) => bail!("{what}: {code}"),
        None => bail!("{what}: error {err}"),
    }
}

/// The registry as the servers see it: records that do not parse or conflict
/// with an earlier one are skipped (the servers skip them too), with a warning.
async fn registry(c: &mut Client) -> Result<Registry> {
    let names = children(c, REGISTRY_ROOT).await?;
    let mut reg = Registry::new();
    for name in names {
        let added = match read_record(c, &name).await {
            Ok((t, _)) => reg.create(t).map(drop).map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        if let Err(e) = added {
            eprintln!("corral cli: warning: ignoring tenant record {name:?}: {e:#}");
        }
    }
    Ok(reg)
}

async fn children(c: &mut Client, path: &str) -> Result<Vec<String>> {
    let r = c
        .call(&Request::GetChildren(PathWatch {
            path: path.into(),
            watch: false,
        }))
        .await?;
    if r.header.err == ErrorCode::NoNode.code() {
        return Ok(Vec::new());
    }
    check(r.header.err, path)?;
    match r.body {
        Response::Children(mut c) => {
            c.sort();
            Ok(c)
        }
        _ => bail!("{path}: unexpected reply"),
    }
}

/// A tenant's record and its znode version.
async fn read_record(c: &mut Client, name: &str) -> Result<(Tenant, i32)> {
    let path = node_path(name);
    let r = c
        .call(&Request::GetData(PathWatch {
            path: path.clone(),
            watch: false,
        }))
        .await?;
    if r.header.err == ErrorCode::NoNode.code() {
        bail!("no tenant {name:?}");
    }
    check(r.header.err, &path)?;
    let Response::Data(data, stat) = r.body else {
        bail!("{path}: unexpected reply");
    };
    let t = Tenant::from_json(data.as_deref().unwrap_or_default())
        .with_context(|| format!("{path} holds an invalid record"))?;
    Ok((t, stat.version))
}

/// Walks the tenant's subtree (after a `sync`, so the node asked is up to
/// date) and prints its usage against its tree quotas.
async fn usage(c: &mut Client, name: &str) -> Result<String> {
    let (t, _) = read_record(c, name).await?;
    let r = c.call(&Request::Sync(t.root.clone())).await?;
    check(r.header.err, &format!("sync {}", t.root))?;
    let (mut znodes, mut bytes, mut ephemerals) = (0u64, 0u64, 0u64);
    let mut todo = vec![t.root.clone()];
    while let Some(dir) = todo.pop() {
        for child in children(c, &dir).await? {
            let path = if dir == "/" {
                format!("/{child}")
            } else {
                format!("{dir}/{child}")
            };
            let r = c
                .call(&Request::Exists(PathWatch {
                    path: path.clone(),
                    watch: false,
                }))
                .await?;
            if r.header.err == ErrorCode::NoNode.code() {
                continue; // deleted meanwhile
            }
            check(r.header.err, &path)?;
            let Response::Stat(stat) = r.body else {
                bail!("{path}: unexpected reply");
            };
            znodes += 1;
            bytes += stat.data_length.max(0) as u64;
            if stat.ephemeral_owner != 0 {
                ephemerals += 1;
            }
            if stat.num_children > 0 {
                todo.push(path);
            }
        }
    }
    let limit = |q: Option<u64>| q.map_or_else(|| "no limit".to_string(), |v| v.to_string());
    Ok(format!(
        "tenant {name} (root {})\nznodes\t{znodes}\t{}\ndata_bytes\t{bytes}\t{}\nephemerals\t{ephemerals}\t{}",
        t.root,
        limit(t.quotas.max_znodes),
        limit(t.quotas.max_data_bytes),
        limit(t.quotas.max_ephemerals),
    ))
}

fn pretty(t: &Tenant) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec_pretty(t)?)
}

async fn list(c: &mut Client) -> Result<String> {
    let reg = registry(c).await?;
    let mut out = Vec::new();
    for t in reg.list() {
        out.push(format!(
            "{}\t{}\t{} bindings\t{}",
            t.name,
            t.root,
            t.bindings.len(),
            serde_json::to_string(&t.quotas)?
        ));
    }
    Ok(out.join("\n"))
}

async fn create(
    c: &mut Client,
    name: &str,
    root: Option<String>,
    edit: &TenantEdit,
) -> Result<String> {
    let mut t = match &edit.file {
        Some(_) => load_file(edit)?,
        None => Tenant::new(name),
    };
    if t.name != name {
        bail!("the file's tenant is {:?}, not {name:?}", t.name);
    }
    if let Some(r) = root {
        t.root = r;
    }
    apply_edit(&mut t, edit)?;
    let mut reg = registry(c).await?;
    let t = reg.create(t)?.clone();
    for step in creation_plan(&t) {
        let r = c.call(&create_request(&step)).await?;
        let exists = r.header.err == ErrorCode::NodeExists.code();
        if exists && step.may_exist {
            continue;
        }
        if exists {
            bail!("tenant {name:?} already exists");
        }
        check(r.header.err, &step.path)?;
    }
    Ok(format!("created tenant {name} at {}", t.root))
}

async fn update(c: &mut Client, name: &str, edit: &TenantEdit) -> Result<String> {
    let (old, version) = read_record(c, name).await?;
    let mut t = match &edit.file {
        Some(_) => load_file(edit)?,
        None => old.clone(),
    };
    if t.name != name {
        bail!("the file's tenant is {:?}, not {name:?}", t.name);
    }
    apply_edit(&mut t, edit)?;
    let mut reg = registry(c).await?;
    reg.update(t.clone())?;
    let t = reg
        .get(name)
        .cloned()
        .ok_or_else(|| anyhow!("no tenant {name:?}"))?;
    let path = node_path(name);
    let r = c
        .call(&Request::SetData(SetDataRequest {
            path: path.clone(),
            data: Some(t.to_json()),
            version,
        }))
        .await?;
    if r.header.err == ErrorCode::BadVersion.code() {
        bail!("tenant {name:?} changed while this update was prepared; run it again");
    }
    check(r.header.err, &path)?;
    Ok(format!("updated tenant {name}"))
}

async fn delete(c: &mut Client, name: &str) -> Result<String> {
    let (t, version) = read_record(c, name).await?;
    let path = node_path(name);
    let r = c
        .call(&Request::Delete(DeleteRequest {
            path: path.clone(),
            version,
        }))
        .await?;
    if r.header.err == ErrorCode::BadVersion.code() {
        bail!("tenant {name:?} changed while it was being deleted; run it again");
    }
    check(r.header.err, &path)?;
    Ok(format!(
        "deleted tenant {name}; its znodes under {} were kept",
        t.root
    ))
}

fn load_file(edit: &TenantEdit) -> Result<Tenant> {
    let Some(path) = &edit.file else {
        bail!("no --file");
    };
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Tenant::from_json(&bytes).with_context(|| format!("{}", path.display()))
}

/// Applies the flags of `edit` to `t`.
fn apply_edit(t: &mut Tenant, edit: &TenantEdit) -> Result<()> {
    if edit.clear_bindings {
        t.bindings.clear();
    }
    if edit.clear_ip_rules {
        t.ip_allow.clear();
        t.ip_deny.clear();
    }
    for q in &edit.quotas {
        set_quota(&mut t.quotas, q)?;
    }
    for cidr in &edit.bind_ip {
        push_new(&mut t.bindings, Binding::Ip { cidr: cidr.clone() });
    }
    for d in &edit.bind_digest {
        let (user, password) = d
            .split_once(':')
            .ok_or_else(|| anyhow!("--bind-digest {d:?}: expected USER:PASSWORD"))?;
        t.bindings
            .retain(|b| !matches!(b, Binding::Digest { user: u, .. } if u == user));
        let hash = corral_auth::hash_password(password)?;
        t.bindings.push(Binding::Digest {
            user: user.to_string(),
            password_hash: hash,
        });
    }
    for x in &edit.bind_x509 {
        let (kind, value) = x
            .split_once('=')
            .ok_or_else(|| anyhow!("--bind-x509 {x:?}: expected MATCH=VALUE"))?;
        let value = value.to_string();
        let rule = match kind {
            "subject_dn" => X509Rule::SubjectDn { dn: value },
            "san_uri" => X509Rule::SanUri { pattern: value },
            "san_dns" => X509Rule::SanDns { pattern: value },
            "san_email" => X509Rule::SanEmail { pattern: value },
            "cn" => X509Rule::Cn { cn: value },
            other => bail!(
                "--bind-x509: {other:?} is not one of subject_dn, san_uri, san_dns, san_email, cn"
            ),
        };
        push_new(&mut t.bindings, Binding::X509 { rule });
    }
    for cidr in &edit.ip_allow {
        if !t.ip_allow.contains(cidr) {
            t.ip_allow.push(cidr.clone());
        }
    }
    for cidr in &edit.ip_deny {
        if !t.ip_deny.contains(cidr) {
            t.ip_deny.push(cidr.clone());
        }
    }
    Ok(())
}

fn push_new(bindings: &mut Vec<Binding>, b: Binding) {
    if !bindings.contains(&b) {
        bindings.push(b);
    }
}

fn set_quota(q: &mut Quotas, spec: &str) -> Result<()> {
    let (name, value) = spec
        .split_once('=')
        .ok_or_else(|| anyhow!("--quota {spec:?}: expected NAME=VALUE"))?;
    let value = match value {
        "none" | "unlimited" => None,
        v => Some(
            v.parse::<u64>()
                .map_err(|_| anyhow!("--quota {spec:?}: {v:?} is not a number or 'none'"))?,
        ),
    };
    let slot = match name {
        "max_znodes" => &mut q.max_znodes,
        "max_data_bytes" => &mut q.max_data_bytes,
        "max_ephemerals" => &mut q.max_ephemerals,
        "max_sessions" => &mut q.max_sessions,
        "max_connections" => &mut q.max_connections,
        "max_watches" => &mut q.max_watches,
        "max_request_rate" => &mut q.max_request_rate,
        "max_bytes_per_znode" => &mut q.max_bytes_per_znode,
        other => bail!("--quota: {other:?} is not a quota name"),
    };
    *slot = value;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_flags_set_and_unset() {
        // Goal: --quota sets a limit, 'none' removes it, and unknown names or
        // values are refused with a message.
        let mut q = Quotas::default();
        set_quota(&mut q, "max_znodes=10").expect("set");
        assert_eq!(q.max_znodes, Some(10));
        set_quota(&mut q, "max_znodes=none").expect("unset");
        assert_eq!(q.max_znodes, None);
        assert!(set_quota(&mut q, "max_things=1").is_err());
        assert!(set_quota(&mut q, "max_znodes=ten").is_err());
        assert!(set_quota(&mut q, "max_znodes").is_err());
    }

    #[test]
    fn edit_flags_build_bindings_and_rules() {
        // Goal: binding flags add typed bindings once, a digest password is
        // stored as an argon2 hash, and clear flags empty the lists first.
        let mut t = Tenant::new("a");
        t.bindings.push(Binding::Ip {
            cidr: "1.1.1.1".into(),
        });
        let edit = TenantEdit {
            bind_ip: vec!["10.0.0.0/8".into(), "10.0.0.0/8".into()],
            bind_digest: vec!["alice:pw".into()],
            bind_x509: vec!["san_uri=spiffe://corp/a/*".into()],
            clear_bindings: true,
            ip_deny: vec!["10.9.0.0/16".into()],
            ..TenantEdit::default()
        };
        apply_edit(&mut t, &edit).expect("apply");
        assert_eq!(t.bindings.len(), 3, "{:?}", t.bindings);
        let Binding::Digest { password_hash, .. } = &t.bindings[1] else {
            panic!("digest binding second");
        };
        assert!(corral_auth::verify_password(password_hash, "pw"));
        assert_eq!(t.ip_deny, vec!["10.9.0.0/16".to_string()]);
        t.validate().expect("valid tenant");
        let bad = TenantEdit {
            bind_x509: vec!["issuer=x".into()],
            ..TenantEdit::default()
        };
        assert!(apply_edit(&mut t, &bad).is_err());
    }
}
