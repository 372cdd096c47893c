//! moto: S3, Route53 and the rest of AWS, emulated on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, anyhow, bail};
use tokio::process::{Child, Command};

use super::process::*;

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
