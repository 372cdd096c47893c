//! etcd: single members and three-member clusters, plain or with client TLS.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, anyhow, bail};
use tokio::process::{Child, Command};

use super::process::*;

/// Binaries of an etcd installation.
struct EtcdBinaries {
    etcd: PathBuf,
}

impl EtcdBinaries {
    fn find() -> Result<EtcdBinaries> {
        let etcd = find_executable("FERRY_ETCD", &[PathBuf::from("/usr/bin/etcd")], "etcd")
            .ok_or_else(|| anyhow!("etcd was not found (FERRY_ETCD, /usr/bin/etcd, PATH); {ETCD_INSTALL_HINT}"))?;
        if !is_executable(&etcd) {
            bail!("{} is not an executable file; {ETCD_INSTALL_HINT}", etcd.display());
        }
        Ok(EtcdBinaries { etcd })
    }

    /// A sibling tool of the etcd binary (etcdctl/etcdutl), else one on `PATH`.
    fn tool(&self, env_var: &str, name: &str) -> Option<PathBuf> {
        let sibling: Vec<PathBuf> = self.etcd.parent().map(|d| d.join(name)).into_iter().collect();
        find_executable(env_var, &sibling, name)
    }
}

/// Ports and names of one etcd member.
#[derive(Clone)]
struct EtcdLayout {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// Plain-HTTP `/health` and `/metrics`, so readiness can be checked
    /// without a TLS client even when the client port requires one.
    metrics_port: u16,
    tls: bool,
    /// `--initial-cluster`: every member's `name=peer-url`.
    initial_cluster: String,
    /// `--initial-cluster-token`: unique per cluster, so members of two
    /// clusters on one machine never join each other through a reused port.
    token: String,
}

impl EtcdLayout {
    /// One layout per member name, with pairwise distinct ports and a shared
    /// `--initial-cluster`. `names` must not be empty.
    fn fresh_cluster(names: &[String], tls: bool) -> Result<Vec<EtcdLayout>> {
        if names.is_empty() {
            bail!("an etcd cluster needs at least one member");
        }
        // Probes in a row can return the same port once the previous socket
        // is closed; ask again rather than start a member that clashes with itself.
        let mut ports: Vec<u16> = Vec::with_capacity(3 * names.len());
        while ports.len() < 3 * names.len() {
            let p = free_port()?;
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let token = format!("ferry-{}", uuid::Uuid::new_v4().simple());
        let mut layouts: Vec<EtcdLayout> = names
            .iter()
            .zip(ports.chunks_exact(3))
            .map(|(name, p)| EtcdLayout {
                name: name.clone(),
                client_port: p[0],
                peer_port: p[1],
                metrics_port: p[2],
                tls,
                initial_cluster: String::new(),
                token: token.clone(),
            })
            .collect();
        let initial_cluster = layouts
            .iter()
            .map(|l| format!("{}={}", l.name, l.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        for l in &mut layouts {
            l.initial_cluster = initial_cluster.clone();
        }
        Ok(layouts)
    }
    fn client_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }
    fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.metrics_port)
    }
    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
}

/// Server-side TLS files for [`EtcdServer::start_tls`] (PEM). Clients must
/// present a certificate signed by `trusted_ca_file` (`--client-cert-auth`),
/// as in HyperShift's etcd.
///
/// etcd's JSON gateway (`/v3/kv/...` over HTTP/1.1) dials etcd's own gRPC
/// port presenting `cert_file` as its *client* certificate, so a serving
/// certificate that should also work for the gateway needs both the
/// `serverAuth` and the `clientAuth` extended key usage.
#[derive(Debug, Clone)]
pub struct EtcdServerTls {
    /// The serving certificate.
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
    /// The CA that client certificates must chain to.
    pub trusted_ca_file: PathBuf,
}

/// A single-member etcd on 127.0.0.1 (or one member of an [`EtcdCluster`]).
///
/// `data_dir` is a directory the caller owns: etcd's own data lives in
/// `data_dir/etcd` and its log in `data_dir/etcd.log`. Keeping the log outside
/// etcd's data directory matters because `snapshot restore` refuses to write
/// into an existing data directory.
pub struct EtcdServer {
    child: Child,
    layout: EtcdLayout,
    data_dir: PathBuf,
}

/// The etcd member name the launchers use (and restores must match).
const ETCD_MEMBER: &str = "ferry-etcd";

impl EtcdServer {
    /// Starts a fresh etcd (client and peer on free ports, an 8 GiB backend
    /// quota so 200 MB test data sets fit) and waits until `/health` says true.
    pub async fn start(data_dir: impl AsRef<Path>) -> Result<EtcdServer> {
        Self::start_inner(data_dir.as_ref(), None).await
    }

    /// Like [`EtcdServer::start`], but the client port serves TLS and requires
    /// client certificates; [`EtcdServer::client_url`] is then `https://`.
    pub async fn start_tls(data_dir: impl AsRef<Path>, tls: &EtcdServerTls) -> Result<EtcdServer> {
        Self::start_inner(data_dir.as_ref(), Some(tls)).await
    }

    async fn start_inner(data_dir: &Path, tls: Option<&EtcdServerTls>) -> Result<EtcdServer> {
        let names = [ETCD_MEMBER.to_string()];
        let dirs = [data_dir.to_path_buf()];
        let mut members = launch_cluster(&names, &dirs, tls, None).await?;
        members
            .pop()
            .ok_or_else(|| anyhow!("etcd did not start (no member was launched)"))
    }

    /// Restores `snapshot` into `data_dir/etcd` (with `etcdutl snapshot restore`
    /// when etcdutl exists, else etcd 3.4's `ETCDCTL_API=3 etcdctl snapshot
    /// restore`, both of which verify the snapshot's SHA-256 trailer) and starts
    /// etcd from it. `data_dir/etcd` must not exist yet.
    pub async fn restore_from(snapshot: impl AsRef<Path>, data_dir: impl AsRef<Path>) -> Result<EtcdServer> {
        Self::restore_inner(snapshot.as_ref(), data_dir.as_ref(), None).await
    }

    /// Like [`EtcdServer::restore_from`], but the restored etcd serves client
    /// TLS as with [`EtcdServer::start_tls`].
    pub async fn restore_from_tls(
        snapshot: impl AsRef<Path>,
        data_dir: impl AsRef<Path>,
        tls: &EtcdServerTls,
    ) -> Result<EtcdServer> {
        Self::restore_inner(snapshot.as_ref(), data_dir.as_ref(), Some(tls)).await
    }

    async fn restore_inner(snapshot: &Path, data_dir: &Path, tls: Option<&EtcdServerTls>) -> Result<EtcdServer> {
        let names = [ETCD_MEMBER.to_string()];
        let dirs = [data_dir.to_path_buf()];
        let mut members = launch_cluster(&names, &dirs, tls, Some((snapshot, Restore::AsMember))).await?;
        members
            .pop()
            .ok_or_else(|| anyhow!("restored etcd did not start (no member was launched)"))
    }

    /// `snapshot restore` into `etcd_dir`: as member `layout` of its cluster, or, when
    /// `Restore::Alone`, with etcdutl's defaults (`--name default`, a one-member initial
    /// cluster of itself, token `etcd-cluster`), as the pinned commit's `etcd-init.sh` does; only
    /// the peer URL is the member's own loopback port rather than `http://localhost:2380`.
    async fn restore_dir(
        bins: &EtcdBinaries,
        snapshot: &Path,
        etcd_dir: &Path,
        layout: &EtcdLayout,
        data_dir: &Path,
        how: Restore,
    ) -> Result<()> {
        let (tool, mut cmd) = if let Some(etcdutl) = bins.tool("FERRY_ETCDUTL", "etcdutl") {
            (etcdutl.clone(), Command::new(etcdutl))
        } else if let Some(etcdctl) = bins.tool("FERRY_ETCDCTL", "etcdctl") {
            let mut c = Command::new(&etcdctl);
            // etcd 3.4's etcdctl defaults to the v2 API, which has no snapshots.
            c.env("ETCDCTL_API", "3");
            (etcdctl, c)
        } else {
            bail!(
                "neither etcdutl nor etcdctl was found next to {} or on PATH; {ETCD_INSTALL_HINT}",
                bins.etcd.display()
            );
        };
        let log = data_dir.join("restore.log");
        let (out, err) = log_stdio(&log)?;
        let (name, initial_cluster, token) = match how {
            Restore::AsMember => (
                layout.name.clone(),
                layout.initial_cluster.clone(),
                layout.token.clone(),
            ),
            Restore::Alone => (
                "default".to_string(),
                format!("default={}", layout.peer_url()),
                "etcd-cluster".to_string(),
            ),
        };
        let status = cmd
            .arg("snapshot")
            .arg("restore")
            .arg(snapshot)
            .arg("--name")
            .arg(&name)
            .arg("--data-dir")
            .arg(etcd_dir)
            .arg("--initial-cluster")
            .arg(&initial_cluster)
            .arg("--initial-cluster-token")
            .arg(&token)
            .arg("--initial-advertise-peer-urls")
            .arg(layout.peer_url())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .status()
            .await
            .with_context(|| format!("cannot run {}; {ETCD_INSTALL_HINT}", tool.display()))?;
        if !status.success() {
            bail!(
                "`{} snapshot restore {}` failed ({status}); last lines of {}:\n{}",
                tool.display(),
                snapshot.display(),
                log.display(),
                log_tail(&log, 30)
            );
        }
        Ok(())
    }

    /// Spawns the etcd process of one member; does not wait for it.
    fn spawn_child(
        bins: &EtcdBinaries,
        layout: &EtcdLayout,
        data_dir: &Path,
        tls: Option<&EtcdServerTls>,
    ) -> Result<Child> {
        let log = data_dir.join("etcd.log");
        let (out, err) = log_stdio(&log)?;
        let mut args: Vec<OsString> = vec![
            "--name".into(),
            layout.name.clone().into(),
            "--data-dir".into(),
            data_dir.join("etcd").into(),
            "--listen-client-urls".into(),
            layout.client_url().into(),
            "--advertise-client-urls".into(),
            layout.client_url().into(),
            "--listen-peer-urls".into(),
            layout.peer_url().into(),
            "--initial-advertise-peer-urls".into(),
            layout.peer_url().into(),
            "--initial-cluster".into(),
            layout.initial_cluster.clone().into(),
            "--initial-cluster-token".into(),
            layout.token.clone().into(),
            "--initial-cluster-state=new".into(),
            // The default 2 GiB quota trips an alarm on large test data sets,
            // after which etcd refuses writes.
            "--quota-backend-bytes=8589934592".into(),
            "--logger=zap".into(),
            "--log-outputs=stderr".into(),
            "--listen-metrics-urls".into(),
            layout.metrics_url().into(),
        ];
        if let Some(tls) = tls {
            args.extend([
                "--client-cert-auth".into(),
                "--trusted-ca-file".into(),
                tls.trusted_ca_file.clone().into(),
                "--cert-file".into(),
                tls.cert_file.clone().into(),
                "--key-file".into(),
                tls.key_file.clone().into(),
            ]);
        }
        Command::new(&bins.etcd)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}; {ETCD_INSTALL_HINT}", bins.etcd.display()))
    }

    /// Waits until this member's `/health` says true (which needs a leader,
    /// so every member of a cluster must have been spawned before).
    async fn wait_healthy(&mut self) -> Result<()> {
        let log = self.log_path();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.layout.metrics_port));
        wait_ready(&mut self.child, "etcd", &log, || async move {
            matches!(http_get(addr, "/health").await, Ok((200, body)) if body.contains("\"true\""))
        })
        .await
    }

    /// The client URL, e.g. `http://127.0.0.1:40123` (`https://` with TLS).
    pub fn client_url(&self) -> String {
        self.layout.client_url()
    }

    /// The client address (`127.0.0.1:PORT`), e.g. for a port-forward.
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.layout.client_port))
    }

    /// The peer URL.
    pub fn peer_url(&self) -> String {
        self.layout.peer_url()
    }

    /// The member name (the same for fresh and restored members).
    pub fn name(&self) -> &str {
        &self.layout.name
    }

    /// The `--initial-cluster` this member was started with.
    pub fn initial_cluster(&self) -> &str {
        &self.layout.initial_cluster
    }

    /// The directory given to [`EtcdServer::start`] / [`EtcdServer::restore_from`].
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The log file holding etcd's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("etcd.log")
    }

    /// Stops etcd and waits for the process to exit.
    pub async fn stop(mut self) -> Result<()> {
        self.child.kill().await.context("cannot stop etcd")
    }
}

/// How a snapshot is restored into a member's data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// With the member's name, peer URL, the whole initial cluster and the cluster's token:
    /// the members form one cluster.
    AsMember,
    /// With none of them (etcdutl's defaults): every member starts as a one-member cluster of
    /// its own, whatever its later flags say (a data directory's membership wins).
    Alone,
}

/// Launches the members `names` (data under `dirs`, one per member) as one
/// cluster, restoring `snapshot` into each first when given. Retries with new
/// ports when a member does not come up (a probed port may have been taken).
async fn launch_cluster(
    names: &[String],
    dirs: &[PathBuf],
    tls: Option<&EtcdServerTls>,
    snapshot: Option<(&Path, Restore)>,
) -> Result<Vec<EtcdServer>> {
    if names.len() != dirs.len() {
        bail!("{} etcd member names but {} data directories", names.len(), dirs.len());
    }
    let bins = EtcdBinaries::find()?;
    for dir in dirs {
        if snapshot.is_some() && dir.join("etcd").exists() {
            bail!(
                "cannot restore into {}: it exists already; restore needs a fresh directory",
                dir.join("etcd").display()
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // A failed first attempt may leave data (with its membership, naming the
    // old ports) in directories that were empty before; clear those on a retry.
    let pre_existing: Vec<bool> = dirs.iter().map(|d| d.join("etcd").exists()).collect();
    let what = if snapshot.is_some() { "restored etcd" } else { "etcd" };
    let mut last_err = None;
    for attempt in 1..=PORT_ATTEMPTS {
        if attempt > 1 && snapshot.is_none() {
            for (dir, existed) in dirs.iter().zip(&pre_existing) {
                let etcd_dir = dir.join("etcd");
                if !existed && etcd_dir.exists() {
                    std::fs::remove_dir_all(&etcd_dir)
                        .with_context(|| format!("cannot remove {}", etcd_dir.display()))?;
                }
            }
        }
        let layouts = EtcdLayout::fresh_cluster(names, tls.is_some())?;
        if let Some((snapshot, how)) = snapshot {
            // The peer URLs are written into the restored membership, so a
            // port clash means restoring again with new ports, not just restarting.
            for (layout, dir) in layouts.iter().zip(dirs) {
                let etcd_dir = dir.join("etcd");
                if etcd_dir.exists() {
                    std::fs::remove_dir_all(&etcd_dir)
                        .with_context(|| format!("cannot remove {}", etcd_dir.display()))?;
                }
                EtcdServer::restore_dir(&bins, snapshot, &etcd_dir, layout, dir, how).await?;
            }
        }
        match launch_once(&bins, layouts, dirs, tls).await {
            Ok(members) => return Ok(members),
            Err(e) => {
                tracing::warn!(attempt, error = %e, "{what} did not start; retrying with new ports");
                last_err = Some(e);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow!("{what} did not start")))
}

/// Spawns every member, then waits until each is healthy; kills them all on failure.
async fn launch_once(
    bins: &EtcdBinaries,
    layouts: Vec<EtcdLayout>,
    dirs: &[PathBuf],
    tls: Option<&EtcdServerTls>,
) -> Result<Vec<EtcdServer>> {
    let mut members: Vec<EtcdServer> = Vec::with_capacity(layouts.len());
    for (layout, dir) in layouts.into_iter().zip(dirs) {
        match EtcdServer::spawn_child(bins, &layout, dir, tls) {
            Ok(child) => members.push(EtcdServer {
                child,
                layout,
                data_dir: dir.clone(),
            }),
            Err(e) => {
                stop_all(members).await;
                return Err(e);
            }
        }
    }
    for i in 0..members.len() {
        if let Err(e) = members[i].wait_healthy().await {
            let name = members[i].name().to_string();
            stop_all(members).await;
            return Err(e.context(format!("member {name}")));
        }
    }
    Ok(members)
}

async fn stop_all(members: Vec<EtcdServer>) {
    for m in members {
        let _ = m.stop().await;
    }
}

/// A multi-member etcd cluster on 127.0.0.1: each member has its own client,
/// peer and metrics port and its own data directory `data_dir/<name>`, and all
/// share one `--initial-cluster` (peers talk plain HTTP on loopback).
pub struct EtcdCluster {
    members: Vec<EtcdServer>,
}

impl EtcdCluster {
    /// Starts a fresh cluster of the members `names` (in that order) and waits
    /// until every member is healthy. With `tls`, every client port serves TLS
    /// and requires client certificates.
    pub async fn start(
        data_dir: impl AsRef<Path>,
        names: &[String],
        tls: Option<&EtcdServerTls>,
    ) -> Result<EtcdCluster> {
        let dirs = Self::member_dirs(data_dir.as_ref(), names);
        let members = launch_cluster(names, &dirs, tls, None).await?;
        Ok(EtcdCluster { members })
    }

    /// Restores `snapshot` into every member and starts them: `Restore::AsMember` (each with
    /// its own `--name`, `--initial-advertise-peer-urls` and the shared `--initial-cluster`)
    /// makes one cluster holding the snapshot's keys; `Restore::Alone` makes as many
    /// one-member clusters as there are members, each holding them.
    pub async fn restore_from(
        snapshot: impl AsRef<Path>,
        data_dir: impl AsRef<Path>,
        names: &[String],
        tls: Option<&EtcdServerTls>,
        how: Restore,
    ) -> Result<EtcdCluster> {
        let dirs = Self::member_dirs(data_dir.as_ref(), names);
        let members = launch_cluster(names, &dirs, tls, Some((snapshot.as_ref(), how))).await?;
        Ok(EtcdCluster { members })
    }

    fn member_dirs(data_dir: &Path, names: &[String]) -> Vec<PathBuf> {
        names.iter().map(|n| data_dir.join(n)).collect()
    }

    /// The members, in the order of the names given at start.
    pub fn members(&self) -> &[EtcdServer] {
        &self.members
    }

    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&EtcdServer> {
        self.members.iter().find(|m| m.name() == name)
    }

    /// Stops every member.
    pub async fn stop(self) -> Result<()> {
        let mut first_err = None;
        for m in self.members {
            if let Err(e) = m.stop().await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
