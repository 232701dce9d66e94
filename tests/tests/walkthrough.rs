//! The README's "Teams on shared infrastructure" walkthrough, step by step,
//! with the real `corral` binary and kazoo over TLS with one client
//! certificate per team (`examples/teams.py`).

use std::process::Command;

use anyhow::{ensure, Context, Result};
use corral_tests::kazoo::kazoo_python;
use corral_tests::{corral_bin, corral_cli, pick_free_port, ServerBuilder};

fn corral(args: &[&str]) -> Result<String> {
    let out = Command::new(corral_bin()?)
        .args(args)
        .output()
        .with_context(|| format!("corral {args:?}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "corral {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(text)
}

#[test]
fn teams_connect_with_their_certificates_hit_a_quota_and_are_audited() -> Result<()> {
    // Goal: the README walkthrough works as written: two tenants bound by a
    // client certificate's SAN URI and subject DN, each team sees only its
    // namespace over TLS, the quota refuses the fourth znode, `tenant usage`
    // shows it, and the audit log holds the bind and the rejection.
    let dir = tempfile::Builder::new().prefix("corral-teams-").tempdir()?;
    let certs = dir.path().join("certs");
    let certs_s = certs.to_str().context("utf-8 path")?;
    corral(&["cert", "--dir", certs_s, "--ids", "1"])?;
    corral(&[
        "cert",
        "--dir",
        certs_s,
        "--client",
        "team-a",
        "--uri",
        "spiffe://corp/team-a/api",
    ])?;
    corral(&[
        "cert",
        "--dir",
        certs_s,
        "--client",
        "team-b",
        "--subject",
        "CN=svc,OU=team-b,O=corp",
    ])?;
    let hash = corral(&["hash-password", "s3cret"])?;
    let audit = dir.path().join("corral-audit");
    let tls_port = pick_free_port();
    let server = ServerBuilder::default()
        .set("super_digests", &format!("[\"admin:{}\"]", hash.trim()))
        .set("tenant_unbound", "\"refuse\"")
        .set("audit_log_dir", &format!("{audit:?}"))
        .set("secure_client_port", &tls_port.to_string())
        .set(
            "tls_cert_file",
            &format!("{:?}", certs.join("server-1.pem")),
        )
        .set("tls_key_file", &format!("{:?}", certs.join("server-1.key")))
        .set("tls_ca_file", &format!("{:?}", certs.join("ca.pem")))
        .set("tls_client_auth", "\"need\"")
        .start()?;
    let admin = Some("admin:s3cret");
    let (ok, out) = corral_cli(
        server.addr(),
        admin,
        &[
            "tenant",
            "create",
            "team-a",
            "--bind-x509",
            "san_uri=spiffe://corp/team-a/*",
            "--quota",
            "max_znodes=3",
        ],
    )?;
    ensure!(ok, "create team-a: {out}");
    let (ok, out) = corral_cli(
        server.addr(),
        admin,
        &[
            "tenant",
            "create",
            "team-b",
            "--bind-x509",
            "subject_dn=CN=svc,OU=team-b,O=corp",
        ],
    )?;
    ensure!(ok, "create team-b: {out}");

    let script = corral_tests::workspace_dir().join("examples/teams.py");
    let out = Command::new(kazoo_python()?)
        .arg(&script)
        .arg(format!("127.0.0.1:{tls_port}"))
        .arg(&certs)
        .output()
        .context("examples/teams.py")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success(), "teams.py:\n{text}");
    for line in [
        "team-a created /jobs/j0",
        "team-a created /jobs/j1",
        "team-a /jobs/j2: QuotaExceeded",
        "team-a sees ['jobs']",
        "team-b sees ['cache']",
        "team-b /jobs exists: False",
    ] {
        ensure!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    let (ok, out) = corral_cli(server.addr(), admin, &["tenant", "usage", "team-a"])?;
    ensure!(ok && out.contains("znodes\t3\t3"), "usage: {out}");

    let log = std::fs::read_to_string(audit.join("audit.log"))?;
    let has = |op: &str, tenant: &str| {
        log.lines().any(|l| {
            l.contains(&format!("\"{op}\"")) && l.contains(&format!("\"tenant\":\"{tenant}\""))
        })
    };
    ensure!(
        has("tenantBind", "team-a") && has("tenantBind", "team-b"),
        "binds:\n{log}"
    );
    ensure!(has("quotaRejected", "team-a"), "the rejection:\n{log}");
    ensure!(
        !has("quotaRejected", "team-b"),
        "team-b hit no quota:\n{log}"
    );
    Ok(())
}
