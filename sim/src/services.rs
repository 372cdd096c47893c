//! Launchers for the real services that tests and `ferry drill` run on loopback:
//! moto (S3 and Route53) and etcd.
//!
//! Each launcher finds the binary, picks free 127.0.0.1 ports, starts the
//! process with its stderr/stdout captured to a log file, waits (bounded) until
//! the service answers, and kills the process when the handle is dropped. A
//! start-up failure says how to install the missing tool or shows the tail of
//! the service's own log, because "it did not start" alone helps nobody.
//!
//! Processes are spawned with `tokio::process` and `kill_on_drop(true)`, so a
//! handle dropped by a panicking test still takes its process down; `Drop` also
//! sends the kill explicitly so the port is released before the next test.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// How long a service may take to answer after it was spawned. moto needs about
/// 4 s on an idle machine; the margin covers a machine busy with compilers.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a launcher retries with fresh ports when the chosen ones were taken
/// between probing and binding (the free-port probe is inherently racy).
const PORT_ATTEMPTS: usize = 3;

/// How to install moto where the launcher looks for it.
pub const MOTO_INSTALL_HINT: &str = "install it with: python3 -m venv ~/.cache/ferry/venv && \
     ~/.cache/ferry/venv/bin/pip install 'moto[server]' (or point FERRY_MOTO_SERVER at a moto_server binary)";

/// How to install etcd and etcdctl where the launcher looks for them.
pub const ETCD_INSTALL_HINT: &str = "install them with: apt-get install etcd-server etcd-client \
     (or point FERRY_ETCD / FERRY_ETCDCTL / FERRY_ETCDUTL at the binaries)";

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is found by binding port 0 and closing the socket again, so another
/// process can take it before the caller binds it; the launchers retry with
/// new ports when that happens.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("cannot bind 127.0.0.1:0 to find a free port")?;
    Ok(listener
        .local_addr()
        .context("cannot read the probed socket's address")?
        .port())
}

/// Finds an executable: first the path in `env_var` (if set), then each of
/// `candidates`, then `name` on `PATH`.
fn find_executable(env_var: &str, candidates: &[PathBuf], name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        // An explicit setting wins even when wrong, so the error names it
        // instead of silently using some other binary.
        return Some(PathBuf::from(p));
    }
    candidates
        .iter()
        .find(|p| is_executable(p))
        .cloned()
        .or_else(|| which(name))
}

/// Looks `name` up on `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The last `max_lines` lines of a log file, for error messages.
fn log_tail(path: &Path, max_lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(max_lines);
            if lines.is_empty() {
                "(the log is empty)".to_string()
            } else {
                lines[start..].join("\n")
            }
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Opens `log` for a child's stdout and stderr (both, so nothing is lost).
fn log_stdio(log: &Path) -> Result<(Stdio, Stdio)> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot create the service log {}", log.display()))?;
    let second = file
        .try_clone()
        .with_context(|| format!("cannot duplicate the handle of {}", log.display()))?;
    Ok((Stdio::from(file), Stdio::from(second)))
}

/// Sends one HTTP/1.1 GET to `addr` and returns the status code and body.
///
/// Hand-written to keep this crate free of an HTTP client; it only talks to the
/// services launched here, which answer small bodies and close the connection.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    // Cap what we read: a health answer is tiny, and a runaway body must not
    // make the launcher allocate without bound.
    (&mut stream).take(1 << 20).read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Polls `ready` until it returns true, the child exits, or the deadline passes.
async fn wait_ready<F, Fut>(child: &mut Child, what: &str, log: &Path, mut ready: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("cannot poll the {what} process"))?
        {
            bail!(
                "{what} exited during start-up ({status}); last lines of {}:\n{}",
                log.display(),
                log_tail(log, 30)
            );
        }
        if ready().await {
            tracing::debug!(
                service = what,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "service ready"
            );
            return Ok(());
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "{what} did not become ready within {} s; last lines of {}:\n{}",
                START_TIMEOUT.as_secs(),
                log.display(),
                log_tail(log, 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates a fresh private directory under the system temp dir.
fn scratch_dir(prefix: &str) -> Result<PathBuf> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// A moto server (S3, Route53 and the rest of AWS, emulated) on 127.0.0.1.
///
/// moto accepts any credentials and does not check signatures or presign
/// expiry, so it tests request shapes, not authentication.
pub struct MotoServer {
    child: Child,
    addr: SocketAddr,
    log_dir: PathBuf,
}

impl MotoServer {
    /// Finds `moto_server` (env `FERRY_MOTO_SERVER`, then
    /// `~/.cache/ferry/venv/bin/moto_server`, then `PATH`), starts it on a free
    /// port and waits until it answers HTTP.
    pub async fn start() -> Result<MotoServer> {
        let home_candidate: Vec<PathBuf> = std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/ferry/venv/bin/moto_server"))
            .into_iter()
            .collect();
        let binary = find_executable("FERRY_MOTO_SERVER", &home_candidate, "moto_server").ok_or_else(|| {
            anyhow!("moto_server was not found (FERRY_MOTO_SERVER, ~/.cache/ferry/venv/bin, PATH); {MOTO_INSTALL_HINT}")
        })?;
        if !is_executable(&binary) {
            bail!("{} is not an executable file; {MOTO_INSTALL_HINT}", binary.display());
        }
        let log_dir = scratch_dir("ferry-moto")?;
        let mut last_err = None;
        for attempt in 1..=PORT_ATTEMPTS {
            match Self::start_once(&binary, &log_dir).await {
                Ok((child, addr)) => {
                    return Ok(MotoServer { child, addr, log_dir });
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "moto_server did not start; retrying with a new port");
                    last_err = Some(e);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&log_dir);
        Err(last_err.unwrap_or_else(|| anyhow!("moto_server did not start")))
    }

    async fn start_once(binary: &Path, log_dir: &Path) -> Result<(Child, SocketAddr)> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = log_dir.join(format!("moto-{port}.log"));
        let (out, err) = log_stdio(&log)?;
        let mut child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}; {MOTO_INSTALL_HINT}", binary.display()))?;
        // Any HTTP answer means Flask is serving; moto has no health endpoint
        // that every version shares.
        let ready = wait_ready(&mut child, "moto_server", &log, || async move {
            http_get(addr, "/").await.is_ok()
        })
        .await;
        match ready {
            Ok(()) => Ok((child, addr)),
            Err(e) => {
                let _ = child.kill().await;
                Err(e)
            }
        }
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}

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
}

impl EtcdLayout {
    fn fresh(name: &str, tls: bool) -> Result<EtcdLayout> {
        // Probes in a row can return the same port once the previous socket
        // is closed; ask again rather than start a member that clashes with itself.
        let mut ports: Vec<u16> = Vec::with_capacity(3);
        while ports.len() < 3 {
            let p = free_port()?;
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        Ok(EtcdLayout {
            name: name.to_string(),
            client_port: ports[0],
            peer_port: ports[1],
            metrics_port: ports[2],
            tls,
        })
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
    fn initial_cluster(&self) -> String {
        format!("{}={}", self.name, self.peer_url())
    }
}

/// Server-side TLS files for [`EtcdServer::start_tls`] (PEM). Clients must
/// present a certificate signed by `trusted_ca_file` (`--client-cert-auth`),
/// as in HyperShift's etcd.
#[derive(Debug, Clone)]
pub struct EtcdServerTls {
    /// The serving certificate.
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
    /// The CA that client certificates must chain to.
    pub trusted_ca_file: PathBuf,
}

/// A single-member etcd on 127.0.0.1.
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
        let data_dir = data_dir.to_path_buf();
        let bins = EtcdBinaries::find()?;
        std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
        let mut last_err = None;
        for attempt in 1..=PORT_ATTEMPTS {
            let layout = EtcdLayout::fresh(ETCD_MEMBER, tls.is_some())?;
            match Self::spawn(&bins, layout, &data_dir, tls).await {
                Ok(server) => return Ok(server),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "etcd did not start; retrying with new ports");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("etcd did not start")))
    }

    /// Restores `snapshot` into `data_dir/etcd` (with `etcdutl snapshot restore`
    /// when etcdutl exists, else etcd 3.4's `ETCDCTL_API=3 etcdctl snapshot
    /// restore`, both of which verify the snapshot's SHA-256 trailer) and starts
    /// etcd from it. `data_dir/etcd` must not exist yet.
    pub async fn restore_from(snapshot: impl AsRef<Path>, data_dir: impl AsRef<Path>) -> Result<EtcdServer> {
        let snapshot = snapshot.as_ref();
        let data_dir = data_dir.as_ref().to_path_buf();
        let bins = EtcdBinaries::find()?;
        let etcd_dir = data_dir.join("etcd");
        if etcd_dir.exists() {
            bail!(
                "cannot restore into {}: it exists already; restore needs a fresh directory",
                etcd_dir.display()
            );
        }
        std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
        let mut last_err = None;
        for attempt in 1..=PORT_ATTEMPTS {
            // The peer URL is written into the restored membership, so a port
            // clash means restoring again with new ports, not just restarting.
            let layout = EtcdLayout::fresh(ETCD_MEMBER, false)?;
            if etcd_dir.exists() {
                std::fs::remove_dir_all(&etcd_dir).with_context(|| format!("cannot remove {}", etcd_dir.display()))?;
            }
            Self::restore_dir(&bins, snapshot, &etcd_dir, &layout, &data_dir).await?;
            match Self::spawn(&bins, layout, &data_dir, None).await {
                Ok(server) => return Ok(server),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "restored etcd did not start; retrying with new ports");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("restored etcd did not start")))
    }

    async fn restore_dir(
        bins: &EtcdBinaries,
        snapshot: &Path,
        etcd_dir: &Path,
        layout: &EtcdLayout,
        data_dir: &Path,
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
        let status = cmd
            .arg("snapshot")
            .arg("restore")
            .arg(snapshot)
            .arg("--name")
            .arg(&layout.name)
            .arg("--data-dir")
            .arg(etcd_dir)
            .arg("--initial-cluster")
            .arg(layout.initial_cluster())
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

    async fn spawn(
        bins: &EtcdBinaries,
        layout: EtcdLayout,
        data_dir: &Path,
        tls: Option<&EtcdServerTls>,
    ) -> Result<EtcdServer> {
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
            layout.initial_cluster().into(),
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
        let mut child = Command::new(&bins.etcd)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}; {ETCD_INSTALL_HINT}", bins.etcd.display()))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], layout.metrics_port));
        let ready = wait_ready(&mut child, "etcd", &log, || async move {
            matches!(http_get(addr, "/health").await, Ok((200, body)) if body.contains("\"true\""))
        })
        .await;
        if let Err(e) = ready {
            let _ = child.kill().await;
            return Err(e);
        }
        Ok(EtcdServer {
            child,
            layout,
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// The client URL, e.g. `http://127.0.0.1:40123` (`https://` with TLS).
    pub fn client_url(&self) -> String {
        self.layout.client_url()
    }

    /// The peer URL.
    pub fn peer_url(&self) -> String {
        self.layout.peer_url()
    }

    /// The member name (the same for fresh and restored members).
    pub fn name(&self) -> &str {
        &self.layout.name
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

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable() {
        let port = free_port().expect("free port");
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }

    #[test]
    fn path_lookup_finds_sh() {
        let found = find_executable("FERRY_TEST_NO_SUCH_VAR_SET", &[], "sh");
        assert!(found.is_some_and(|p| p.ends_with("sh")));
    }

    #[test]
    fn tail_of_missing_log_names_it() {
        let tail = log_tail(Path::new("/nonexistent/ferry.log"), 5);
        assert!(tail.contains("/nonexistent/ferry.log"), "{tail}");
    }
}
