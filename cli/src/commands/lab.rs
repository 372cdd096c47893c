//! `ferry lab up|down`: the drill's environment left running, to practise the procedure phase
//! by phase with `ferry` and `kubectl` as on a real incident.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ferry::runtime::Exit;
use ferry_dr::phases::shell_word;

use crate::exit;

/// The lab's commands.
#[derive(clap::Subcommand)]
pub enum LabCommand {
    /// Start two simulated management clusters with HyperShift and external-dns, a SigV4 S3,
    /// Route53 (moto) and the hosted cluster; write kubeconfigs, `site.toml` and `lab.env`
    /// into DIR; run until `ferry lab down` or a signal.
    Up(LabUpArgs),
    /// Stop the lab that runs in DIR.
    Down {
        /// The lab's directory.
        #[arg(long, default_value = "ferry-lab")]
        dir: PathBuf,
    },
}

/// `ferry lab up`.
#[derive(clap::Args)]
pub struct LabUpArgs {
    /// The scenario (TOML or YAML); default: the drill's embedded scenario.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Seed N hosted clusters instead of one (the embedded scenario's and N-1 more in two
    /// namespaces, labelled `ferry.dev/drill=fleet`), to practise `ferry fleet`.
    #[arg(long, value_name = "N", conflicts_with = "scenario", value_parser = clap::value_parser!(u16).range(1..))]
    fleet: Option<u16>,
    /// Where the lab keeps kubeconfigs, site config, backups, S3 data and the audit trail.
    #[arg(long, default_value = "ferry-lab")]
    dir: PathBuf,
    /// Serve HyperShift's kinds from the CRDs of this directory, as `ferry drill --crds`.
    #[arg(long, value_name = "DIR")]
    crds: Option<PathBuf>,
}

const PID_FILE: &str = "lab.pid";
const ENV_FILE: &str = "lab.env";

/// Runs a lab command.
pub async fn cmd_lab(cmd: LabCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LabCommand::Up(args) => up(args).await,
        LabCommand::Down { dir } => down(&dir).await,
    }
}

/// The process id in `DIR/lab.pid`, when that process still runs and is a `ferry lab up`: a
/// pid file left by a lab that died may name a process that reused its id, which `lab down`
/// must not signal.
fn running_lab(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join(PID_FILE)).ok()?.trim().parse().ok()?;
    (alive(pid) && is_lab(pid)).then_some(pid)
}

/// Whether process `pid` runs `… lab up …` (from `/proc`; where there is none, trust the file).
fn is_lab(pid: i32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.windows(2).any(|w| w[0] == b"lab" && w[1] == b"up")
        }
        Err(_) => !std::path::Path::new("/proc/self").exists(),
    }
}

fn alive(pid: i32) -> bool {
    rustix::process::Pid::from_raw(pid).is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

async fn up(args: LabUpArgs) -> anyhow::Result<ExitCode> {
    if let Some(pid) = running_lab(&args.dir) {
        eprintln!(
            "error: a lab already runs in {} (process {pid}); stop it with `ferry lab down --dir {}`",
            args.dir.display(),
            args.dir.display()
        );
        return Ok(exit(Exit::BadInput.code()));
    }
    let scenario = match (&args.scenario, args.fleet) {
        (Some(p), _) => ferry_sim::hypershift::scenario::Scenario::load(p)?,
        (None, Some(n)) => ferry_drill::fleet_scenario(usize::from(n)),
        (None, None) => ferry_drill::basic_scenario(),
    };
    let crds = match &args.crds {
        Some(dir) => ferry_sim::kube::crd::CrdSource::Dir(dir.clone()),
        None => ferry_sim::kube::crd::CrdSource::Builtin,
    };
    let opts = ferry_drill::DrillOptions {
        scenario,
        crds,
        keep_dir: Some(args.dir.clone()),
        say: std::sync::Arc::new(|m: &str| eprintln!("lab: {m}")),
        ..Default::default()
    };
    let drill = ferry_drill::Drill::start(opts).await?;
    let dir = drill.dir().to_path_buf();

    let mut env_text = String::from("# Written by `ferry lab up`: source it before running ferry against the lab.\n");
    for (k, v) in drill.process_env() {
        env_text.push_str(&format!("export {k}={}\n", shell_word(&v)));
    }
    let env_path = dir.join(ENV_FILE);
    std::fs::write(&env_path, env_text).with_context(|| format!("cannot write {}", env_path.display()))?;
    // Written last and atomically: its presence tells scripts the lab is ready.
    let pid_tmp = dir.join(format!("{PID_FILE}.tmp"));
    std::fs::write(&pid_tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&pid_tmp, dir.join(PID_FILE)))
        .with_context(|| format!("cannot write {}", dir.join(PID_FILE).display()))?;

    let q = |p: &Path| shell_word(&p.display().to_string());
    let site = q(drill.site_path());
    let audit = q(drill.audit_path());
    let clusters = &drill.site().clusters;
    let kubeconfig = |c: &Option<ferry::config::ClusterConfig>| {
        c.as_ref()
            .and_then(|c| c.kubeconfig.as_deref())
            .map(q)
            .unwrap_or_default()
    };
    let hc = &drill.env().scenario.hosted_cluster;
    println!(
        "lab: ready in {dir}\n\
         \n\
         Try:\n\
         \x20 . {env}\n\
         \x20 kubectl --kubeconfig {src} get hostedclusters -A\n\
         \x20 ferry backup   --site {site} --audit {audit}\n\
         \x20 ferry restore  --site {site} --audit {audit}\n\
         \x20 ferry teardown --site {site} --audit {audit}\n\
         \x20 ferry finish   --site {site} --audit {audit}\n\
         \x20 (or all four: ferry migrate --site {site} --audit {audit})\n\
         \x20 kubectl --kubeconfig {dst} -n {ns} get hostedcluster {name}\n\
         \x20 ferry audit verify {audit} --key {key}\n\
         \n\
         Stop with `ferry lab down --dir {dir}` or Ctrl-C.",
        dir = q(&dir),
        env = q(&env_path),
        src = kubeconfig(&clusters.source),
        dst = kubeconfig(&clusters.destination),
        ns = shell_word(&hc.namespace),
        name = shell_word(&hc.name),
        key = q(&dir.join("audit.key")),
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("lab: stopping");
    drill.shutdown().await;
    let _ = std::fs::remove_file(dir.join(PID_FILE));
    eprintln!("lab: stopped; {} keeps its files", dir.display());
    Ok(exit(Exit::Success.code()))
}

async fn down(dir: &Path) -> anyhow::Result<ExitCode> {
    let pid_path = dir.join(PID_FILE);
    let Some(pid) = running_lab(dir) else {
        if pid_path.exists() {
            let _ = std::fs::remove_file(&pid_path);
            eprintln!(
                "lab: the lab in {} was no longer running; removed its stale {PID_FILE}",
                dir.display()
            );
            return Ok(exit(Exit::Success.code()));
        }
        eprintln!(
            "error: no lab runs in {} (no {PID_FILE}); start one with `ferry lab up --dir {}`",
            dir.display(),
            dir.display()
        );
        return Ok(exit(Exit::BadInput.code()));
    };
    let signalled = rustix::process::Pid::from_raw(pid)
        .ok_or(rustix::io::Errno::SRCH)
        .and_then(|p| rustix::process::kill_process(p, rustix::process::Signal::TERM));
    if let Err(e) = signalled {
        anyhow::bail!("cannot signal the lab (process {pid}): {e}");
    }
    // The lab removes its pid file once its servers are down.
    for _ in 0..600 {
        if !pid_path.exists() || !alive(pid) {
            eprintln!("lab: stopped (process {pid})");
            return Ok(exit(Exit::Success.code()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the lab (process {pid}) did not stop within 60 s of SIGTERM")
}
