//! `ferry-bench`: ferry's benchmarks, each figure next to a baseline measured in the same
//! run on the same machine, because this kind of machine is shared and noisy and only
//! ratios travel. `bash bench/run` builds it in release and runs every row (see
//! BENCHMARKS.md for the rows, their baselines and goals).

mod documented;
mod downtime;
mod dump;
mod host_calls;
mod report;
mod snapshot;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use crate::report::{Machine, Report};

/// ferry's benchmarks: one table of figures, baselines, ratios and goals.
#[derive(Debug, Parser)]
#[command(name = "ferry-bench", version)]
struct Cli {
    /// Rows to run (default: all).
    #[arg(value_enum)]
    rows: Vec<Bench>,
    /// Runs per measurement; the table reports their minimum and median.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Runs of the slow measurements (P3 at each size, P4's kubectl loop, P5, P6).
    #[arg(long, default_value_t = 3)]
    slow_runs: usize,
    /// P3 snapshot sizes, MiB.
    #[arg(long, value_delimiter = ',', default_value = "200,1024")]
    sizes: Vec<usize>,
    /// P4: objects added to the control-plane namespaces.
    #[arg(long, default_value_t = 2000)]
    objects: usize,
    /// P6: MiB in the hosted cluster's etcd.
    #[arg(long, default_value_t = 1024)]
    etcd_mib: usize,
    /// P6: how long the documented procedure is waited for before it is reported as "longer".
    #[arg(long, default_value_t = 900)]
    documented_cap_secs: u64,
    /// Where the JSON report goes.
    #[arg(long, default_value = "bench/results/latest.json")]
    json: PathBuf,
    /// A Markdown file whose generated table to replace (BENCHMARKS.md).
    #[arg(long)]
    markdown: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one P3 leg in this process and prints its result (used by P3 itself).
    #[command(hide = true)]
    Leg(snapshot::LegArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bench {
    P1,
    P2,
    P3,
    P4,
    P5,
    P6,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Leg(args)) = cli.command {
        return snapshot::leg(args).await;
    }
    let all = [Bench::P1, Bench::P2, Bench::P3, Bench::P4, Bench::P5, Bench::P6];
    let rows_wanted: Vec<Bench> = if cli.rows.is_empty() {
        all.to_vec()
    } else {
        cli.rows.clone()
    };
    let mut rows = Vec::new();
    for b in rows_wanted {
        eprintln!("==> {b:?}");
        let new = match b {
            Bench::P1 => vec![host_calls::p1(cli.runs).await?],
            Bench::P2 => host_calls::p2(cli.runs).await?,
            Bench::P3 => snapshot::p3(&cli.sizes, cli.slow_runs).await?,
            Bench::P4 => vec![dump::p4(cli.objects, cli.runs, cli.slow_runs).await?],
            Bench::P5 => vec![dump::p5(cli.slow_runs).await?],
            Bench::P6 => vec![
                downtime::p6(
                    cli.etcd_mib,
                    cli.slow_runs,
                    std::time::Duration::from_secs(cli.documented_cap_secs),
                )
                .await?,
            ],
        };
        for r in &new {
            eprintln!(
                "    {}: ferry median {:.3} {}, ratio {:?}",
                r.id, r.ferry.median, r.unit, r.ratio
            );
        }
        rows.extend(new);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let report = Report {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        machine: Machine::detect(),
        command: format!("bash bench/run {}", args.join(" ")).trim_end().to_string(),
        rows,
    };
    print!("{}", report.to_text());
    report.write_json(&cli.json)?;
    eprintln!("wrote {}", cli.json.display());
    // BENCHMARKS.md holds one whole table from one run, never rows of different runs.
    let complete = all.iter().all(|b| cli.rows.is_empty() || cli.rows.contains(b));
    match &cli.markdown {
        Some(md) if complete => {
            report.update_markdown(md)?;
            eprintln!("updated {}", md.display());
        }
        Some(md) => eprintln!(
            "{} left as it is: only a run of every row replaces its table",
            md.display()
        ),
        None => {}
    }
    Ok(())
}
