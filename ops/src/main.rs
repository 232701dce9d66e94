//! `corral`: run a node, hash passwords, talk to a server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod client;
mod cluster;
mod dev;
mod reconfig_cli;
mod role_switch;
mod serve;
mod tenancy_config;
mod tenant_cli;

#[derive(Parser)]
#[command(
    name = "corral",
    version,
    about = "A ZooKeeper-compatible coordination service"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve clients. With no flags: 127.0.0.1:2181, data in ./corral-data.
    Serve {
        /// A corral TOML config file.
        #[arg(long, conflicts_with = "zoo_cfg")]
        config: Option<PathBuf>,
        /// An Apache ZooKeeper zoo.cfg (drop-in mode).
        #[arg(long)]
        zoo_cfg: Option<PathBuf>,
    },
    /// Print an argon2 hash of a password, for `super_digests`.
    HashPassword {
        /// The password (read from stdin when absent).
        password: Option<String>,
    },
    /// Drive a ZooKeeper-compatible server with a workload and print throughput and latency.
    Bench(bench::BenchArgs),
    /// Make a dev CA and node certificates for the peer (QUIC) links.
    Cert {
        /// Directory for ca.pem, ca.key, server-<id>.pem and server-<id>.key.
        #[arg(long, default_value = "corral-certs")]
        dir: PathBuf,
        /// Server ids to issue certificates for, e.g. 1,2,3.
        #[arg(long, value_delimiter = ',', required_unless_present = "client")]
        ids: Vec<u64>,
        /// Issue a client certificate instead, `client-<NAME>.pem` and
        /// `.key`, for the TLS client listener (tenant bindings by DN, SAN
        /// or CN).
        #[arg(long, value_name = "NAME", conflicts_with = "ids")]
        client: Option<String>,
        /// The client certificate's subject, e.g. `CN=svc,OU=team-b,O=corp`
        /// (CN, OU, O, L, ST, C; CN defaults to NAME). Escape a comma or
        /// equals sign in a value with a backslash: `CN=Doe\, John`.
        #[arg(long, requires = "client")]
        subject: Option<String>,
        /// URI SANs of the client certificate, e.g. spiffe://corp/team-a/api.
        #[arg(long, value_delimiter = ',', requires = "client")]
        uri: Vec<String>,
        /// Email SANs of the client certificate.
        #[arg(long, value_delimiter = ',', requires = "client")]
        email: Vec<String>,
        /// Extra DNS names or IPs for every node certificate (not for
        /// `--client`, whose names are `--uri`, `--email` and the subject).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "localhost,127.0.0.1",
            conflicts_with = "client"
        )]
        hosts: Vec<String>,
        /// Re-issue node certificates that already exist.
        #[arg(long)]
        force: bool,
    },
    /// Run a local ensemble of voters as separate processes on loopback.
    Dev(dev::DevArgs),
    /// Talk to a server: tenant administration and reconfig (as a super user).
    Cli(tenant_cli::CliArgs),
    /// Send a four-letter word and print the answer.
    Fourlw {
        word: String,
        #[arg(long, default_value = "127.0.0.1:2181")]
        server: SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve { config, zoo_cfg } => serve::run(config, zoo_cfg),
        Cmd::HashPassword { password } => hash_password(password),
        Cmd::Fourlw { word, server } => fourlw(&word, server),
        Cmd::Cert {
            dir,
            client: Some(name),
            subject,
            uri,
            email,
            force,
            ..
        } => client_cert(&dir, &name, subject.as_deref(), uri, email, force),
        Cmd::Cert {
            dir,
            ids,
            hosts,
            force,
            ..
        } => cert(&dir, &ids, &hosts, force),
        Cmd::Dev(args) => dev::run(args),
        Cmd::Cli(args) => tenant_cli::run(args),
        Cmd::Bench(args) => match bench::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("corral bench: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn print_report(report: &corral_voter::certs::DevPki) {
    for p in &report.written {
        println!("wrote {}", p.display());
    }
    for p in &report.kept {
        println!("kept  {}", p.display());
    }
}

fn client_cert(
    dir: &std::path::Path,
    name: &str,
    subject: Option<&str>,
    uris: Vec<String>,
    emails: Vec<String>,
    force: bool,
) -> ExitCode {
    use corral_voter::certs::{issue_client_cert, ClientSubject};
    let issued = ClientSubject::parse_dn(subject.unwrap_or_default()).and_then(|dn| {
        let subject = ClientSubject { dn, uris, emails };
        issue_client_cert(dir, name, &subject, force)
    });
    match issued {
        Ok(report) => {
            print_report(&report);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("corral cert: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cert(dir: &std::path::Path, ids: &[u64], hosts: &[String], force: bool) -> ExitCode {
    match corral_voter::certs::generate_dev_pki(dir, ids, hosts, force) {
        Ok(report) => {
            print_report(&report);
            println!(
                "peer TLS for servers {ids:?}: set peer_tls_dir = \"{}\" on each",
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("corral cert: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password(password: Option<String>) -> ExitCode {
    let pw = match password {
        Some(p) => p,
        None => {
            let mut s = String::new();
            if std::io::stdin().read_line(&mut s).is_err() {
                eprintln!("could not read a password from stdin");
                return ExitCode::FAILURE;
            }
            s.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    match corral_auth::hash_password(&pw) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hashing failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fourlw(word: &str, server: SocketAddr) -> ExitCode {
    match four_letter_word(server, word) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{server}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends a four-letter word and returns the whole answer.
pub fn four_letter_word(server: SocketAddr, word: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&server, std::time::Duration::from_secs(5))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    s.write_all(word.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
