//! `ferry-sim`: run simulated management clusters, or HyperShift's CRD test suites against
//! the simulated API server.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ferry_sim::crd_tests::{self, Outcome};
use ferry_sim::hypershift::environment::{Environment, EnvironmentOptions};
use ferry_sim::hypershift::scenario::Scenario;
use ferry_sim::kube::crd::CrdSource;
use ferry_sim::{Sim, SimOptions};

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
        /// Scenario file (TOML or YAML): start its management clusters with HyperShift's
        /// controllers and seed the source with its hosted cluster (`--clusters` is then ignored).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Serve HyperShift's kinds from the CRDs of this directory (for example
        /// `../shared/upstream/hypershift/crds`) instead of the minimal built-in definitions.
        #[arg(long, value_name = "DIR")]
        crds: Option<PathBuf>,
    },
    /// Run CRD validation suites (HyperShift's format) against the simulator's API, as a
    /// client would.
    CrdTests {
        /// Directory of the CRDs the suites test.
        #[arg(long, value_name = "DIR")]
        crds: PathBuf,
        /// Cases known not to pass, each with its reason (TOML `[[divergence]]` with
        /// `suite`, `case` and `reason`).
        #[arg(long, value_name = "FILE")]
        known_divergences: Option<PathBuf>,
        /// Suite files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Up { .. } => "info",
        Command::CrdTests { .. } => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Up {
            clusters,
            kubeconfig_dir,
            scenario,
            crds,
        } => {
            up(
                clusters,
                kubeconfig_dir,
                scenario,
                crds.map_or(CrdSource::Builtin, CrdSource::Dir),
            )
            .await
        }
        Command::CrdTests {
            crds,
            known_divergences,
            files,
        } => {
            let known = match &known_divergences {
                Some(p) => crd_tests::load_known(p)?,
                None => Vec::new(),
            };
            let results = crd_tests::run(&crds, &files, &known)
                .await
                .context("the CRD test suites could not run")?;
            let (mut passed, mut failed, mut divergent) = (0, 0, 0);
            for r in &results {
                println!("{r}");
                match r.outcome {
                    Outcome::Pass => passed += 1,
                    Outcome::Fail(_) => failed += 1,
                    Outcome::Known(_) => divergent += 1,
                }
            }
            let known_note = if divergent > 0 {
                format!(", {divergent} known divergences")
            } else {
                String::new()
            };
            println!("{passed} passed, {failed} failed{known_note}");
            if failed > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

async fn up(clusters: Vec<String>, kubeconfig_dir: PathBuf, scenario: Option<PathBuf>, crds: CrdSource) -> Result<()> {
    println!("ferry-sim: serving HyperShift's kinds from {}", crds.describe());
    if let Some(file) = scenario {
        let scenario = Scenario::load(&file)?;
        let opts = EnvironmentOptions {
            crds,
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
        return Ok(());
    }
    std::fs::create_dir_all(&kubeconfig_dir).with_context(|| format!("cannot create {}", kubeconfig_dir.display()))?;
    let mut sims = Vec::new();
    for name in clusters.iter().filter(|n| !n.is_empty()) {
        let opts = SimOptions {
            crds: crds.clone(),
            ..SimOptions::new(name)
        };
        let sim = Sim::start_with(opts)
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
