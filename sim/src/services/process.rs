//! What every launcher shares: finding binaries, free ports, logs, readiness polling and
//! scratch directories.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

/// How long a service may take to answer after it was spawned. moto needs about
/// 4 s on an idle machine; the margin covers a machine busy with compilers.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a launcher retries with fresh ports when the chosen ones were taken
/// between probing and binding (the free-port probe is inherently racy).
pub(crate) const PORT_ATTEMPTS: usize = 3;

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
pub(crate) fn find_executable(env_var: &str, candidates: &[PathBuf], name: &str) -> Option<PathBuf> {
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
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

pub(crate) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The last `max_lines` lines of a log file, for error messages.
pub(crate) fn log_tail(path: &Path, max_lines: usize) -> String {
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
pub(crate) fn log_stdio(log: &Path) -> Result<(Stdio, Stdio)> {
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
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
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
pub(crate) async fn wait_ready<F, Fut>(child: &mut Child, what: &str, log: &Path, mut ready: F) -> Result<()>
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
pub(crate) fn scratch_dir(prefix: &str) -> Result<PathBuf> {
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
