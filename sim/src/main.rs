//! `ferry-sim up`: run simulated management clusters until Ctrl-C.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ferry_sim::Sim;
use ferry_sim::environment::{Environment, EnvironmentOptions};
use ferry_sim::scenario::Scenario;

#[derive(Parser)]
#[command(name = "ferry-sim", about = "Kubernetes-API-compatible simulator for ferry")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start one API server per cluster name and write a kubeconfig for each.
    Up {
        /// Comma-separated cluster names.
        #[arg(long, value_delimiter = ',', default_value = "mgmt1")]
        clusters: Vec<String>,
        /// Directory receiving `<name>.kubeconfig` files.
        #[arg(long)]
        kubeconfig_dir: PathBuf,
        /// Scenario file (TOML or YAML): start its management clusters with HyperShift
        /// operators and seed the source with its hosted cluster (`--clusters` is then ignored).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// With `--scenario`: accept `http://127.0.0.1` restoreSnapshotURLs (loopback S3).
        #[arg(long)]
        allow_http_restore_urls: bool,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Up {
            scenario: Some(file),
            kubeconfig_dir,
            allow_http_restore_urls,
            ..
        } => {
            let scenario = Scenario::load(&file)?;
            let opts = EnvironmentOptions {
                allow_http_restore_urls,
                ..EnvironmentOptions::default()
            };
            let env = Environment::start(scenario, opts)
                .await
                .with_context(|| format!("cannot start scenario {}", file.display()))?;
            for (name, url, path) in env.write_kubeconfigs(&kubeconfig_dir)? {
                println!("{name}: {url} kubeconfig={}", path.display());
            }
            let hc = &env.scenario.hosted_cluster;
            println!(
                "ferry-sim: hosted cluster {}/{} (HCP namespace {}) seeded on {}; Ctrl-C or SIGTERM stops",
                hc.namespace,
                hc.name,
                env.hcp_namespace(),
                env.source().sim.name()
            );
            wait_for_stop_signal().await?;
            env.shutdown().await;
        }
        Command::Up {
            clusters,
            kubeconfig_dir,
            scenario: None,
            ..
        } => {
            std::fs::create_dir_all(&kubeconfig_dir)
                .with_context(|| format!("cannot create {}", kubeconfig_dir.display()))?;
            let mut sims = Vec::new();
            for name in clusters.iter().filter(|n| !n.is_empty()) {
                let sim = Sim::start(name)
                    .await
                    .with_context(|| format!("cannot start cluster {name}"))?;
                let path = kubeconfig_dir.join(format!("{name}.kubeconfig"));
                sim.write_kubeconfig(&path, name)?;
                println!("{name}: {} kubeconfig={}", sim.url(), path.display());
                sims.push(sim);
            }
            println!(
                "ferry-sim: {} cluster(s) running; Ctrl-C or SIGTERM stops them",
                sims.len()
            );
            wait_for_stop_signal().await?;
            for sim in sims {
                sim.shutdown().await;
            }
        }
    }
    Ok(())
}

/// Ctrl-C (SIGINT) or SIGTERM, the signal process managers and test harnesses send.
async fn wait_for_stop_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
