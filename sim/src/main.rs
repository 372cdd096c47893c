//! `ferry-sim up`: run simulated management clusters until Ctrl-C.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ferry_sim::Sim;

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
            clusters,
            kubeconfig_dir,
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
