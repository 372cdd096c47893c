//! Clients created on first use and shared by the handles of one run.

use std::collections::HashMap;

use cap_std::fs::Dir;
use tokio::sync::{Mutex, OnceCell};

use crate::capabilities::{HostError, HostResult};
use crate::config::RunConfig;

/// Lazily created clients of one run.
#[derive(Default)]
pub struct Clients {
    kube: Mutex<HashMap<String, kube::Client>>,
    s3: OnceCell<aws_sdk_s3::Client>,
    route53: OnceCell<aws_sdk_route53::Client>,
    workspace: std::sync::OnceLock<Result<Dir, String>>,
    /// Explicit AWS credentials (tests, drills); otherwise the default chain.
    pub aws_credentials: Option<aws_credential_types::Credentials>,
}

impl Clients {
    /// Clients that use explicit AWS credentials instead of the default chain.
    pub fn with_aws_credentials(credentials: aws_credential_types::Credentials) -> Self {
        Clients {
            aws_credentials: Some(credentials),
            ..Default::default()
        }
    }

    /// The kube client for `alias`, built from the run config's kubeconfig.
    pub async fn kube(&self, config: &RunConfig, alias: &str) -> HostResult<kube::Client> {
        let mut map = self.kube.lock().await;
        if let Some(c) = map.get(alias) {
            return Ok(c.clone());
        }
        let cluster = config.clusters.get(alias).ok_or_else(|| {
            let known: Vec<&str> = config.clusters.keys().map(String::as_str).collect();
            HostError::NotFound(format!(
                "no cluster `{alias}` in the run config (known: {}); add a [clusters.{alias}] section",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        let options = kube::config::KubeConfigOptions {
            context: cluster.context.clone(),
            ..Default::default()
        };
        let unusable = |e: kube::config::KubeconfigError| match super::k8s::provider::credential_failure(&e) {
            Some(why) => super::k8s::provider::credentials_refused(alias, "reading the kubeconfig", why),
            None => HostError::Invalid(format!("cluster `{alias}`: kubeconfig is unusable: {e}")),
        };
        let mut kc = match &cluster.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                    HostError::Invalid(format!(
                        "cluster `{alias}`: cannot read kubeconfig {}: {e}",
                        path.display()
                    ))
                })?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(unusable)?
            }
            // No kubeconfig named: `$KUBECONFIG` or `~/.kube/config`, else the pod's own
            // ServiceAccount (in-cluster), as kube-rs infers it. A context needs a kubeconfig.
            None if cluster.context.is_none() => kube::Config::infer().await.map_err(|e| {
                HostError::Invalid(format!(
                    "cluster `{alias}`: no kubeconfig is named, and neither $KUBECONFIG, ~/.kube/config nor an \
                     in-cluster ServiceAccount is usable: {e}"
                ))
            })?,
            None => kube::Config::from_kubeconfig(&options).await.map_err(unusable)?,
        };
        // Fail fast on a dead endpoint: a tired SRE should learn within seconds
        // that a cluster is unreachable, not after a TCP timeout.
        kc.connect_timeout = Some(std::time::Duration::from_secs(5));
        kc.read_timeout = Some(std::time::Duration::from_secs(60));
        // One request per call: a 429/503/504 reaches the caller as `unavailable` at once, and
        // the guest (or the host-side caller) decides whether to try again, on the host's
        // clock. kube-rs's default retry backs off on the wall clock behind the caller's back:
        // against a hosted API whose kube-apiserver is stopped, one call took minutes.
        kc.default_retry = false;
        let client = kube::Client::try_from(kc).map_err(|e| match super::k8s::provider::credential_failure(&e) {
            Some(why) => super::k8s::provider::credentials_refused(alias, "opening it", why),
            None => HostError::Invalid(format!("cluster `{alias}`: cannot build a client: {e}")),
        })?;
        map.insert(alias.to_string(), client.clone());
        Ok(client)
    }

    /// The workspace directory (opened once, created 0700 if missing).
    pub fn workspace(&self, config: &RunConfig) -> Result<Dir, String> {
        let opened = self.workspace.get_or_init(|| {
            let Some(ws) = &config.workspace else {
                return Err(
                    "this run has no workspace directory; add [workspace] dir = \"...\" to the run config".into(),
                );
            };
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&ws.dir)
                .map_err(|e| format!("cannot create workspace {}: {e}", ws.dir.display()))?;
            tighten(&ws.dir)?;
            Dir::open_ambient_dir(&ws.dir, cap_std::ambient_authority())
                .map_err(|e| format!("cannot open workspace {}: {e}", ws.dir.display()))
        });
        match opened {
            Ok(d) => d.try_clone().map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        }
    }

    /// The S3 client.
    pub async fn s3(&self, config: &RunConfig) -> aws_sdk_s3::Client {
        self.s3
            .get_or_init(|| async {
                crate::capabilities::objects::provider::s3_client(&s3_settings(config), self.aws_credentials.clone())
                    .await
            })
            .await
            .clone()
    }

    /// The Route53 client.
    pub async fn route53(&self, config: &RunConfig) -> aws_sdk_route53::Client {
        self.route53
            .get_or_init(|| async {
                let mut s = s3_settings(config);
                if config.aws.route53_endpoint_url.is_some() {
                    s.endpoint_url = config.aws.route53_endpoint_url.clone();
                }
                crate::capabilities::dns::provider::route53_client(&s, self.aws_credentials.clone()).await
            })
            .await
            .clone()
    }
}

/// The server-side encryption of S3 writes, from the run config's `[aws]` section.
pub fn s3_encryption(config: &RunConfig) -> crate::capabilities::objects::provider::Encryption {
    use crate::capabilities::objects::provider::Encryption;
    use crate::config::S3Encryption;
    match config.aws.s3_encryption {
        S3Encryption::SseS3 => Encryption::SseS3,
        S3Encryption::SseKms => Encryption::SseKms {
            key_id: config.aws.s3_kms_key_id.clone(),
        },
        S3Encryption::None => Encryption::None,
    }
}

/// The backend settings from the run config's `[aws]` section.
pub fn s3_settings(config: &RunConfig) -> crate::capabilities::objects::provider::S3Settings {
    crate::capabilities::objects::provider::S3Settings {
        region: config.aws.region.clone().unwrap_or_else(|| "us-east-1".into()),
        endpoint_url: config.aws.endpoint_url.clone(),
        force_path_style: config.aws.force_path_style,
        profile: config.aws.profile.clone(),
        ca_bundle_pem: config.aws.ca_bundle.as_ref().and_then(|p| match std::fs::read(p) {
            Ok(pem) => Some(pem),
            Err(e) => {
                tracing::error!("cannot read the [aws] ca_bundle {}: {e}", p.display());
                None
            }
        }),
    }
}

/// The workspace holds backups of every Secret of a control plane: a directory others can
/// read or enter (made by hand, or by an older tool) is tightened to 0700, and said so.
fn tighten(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)
        .map_err(|e| format!("cannot read workspace {}: {e}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make workspace {} private (0700): {e}", dir.display()))?;
        tracing::warn!(
            workspace = %dir.display(),
            "the workspace was open to others (mode {:o}); it is now 0700",
            mode & 0o777
        );
    }
    Ok(())
}
