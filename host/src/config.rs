//! The run config (TOML): which clusters, AWS settings, etcd endpoints,
//! workspace directory, parameters and limits a run may use.
//!
//! Guests address everything by alias; only this file (read by the host)
//! knows kubeconfig paths, endpoints and credentials sources.
//!
//! ```toml
//! [clusters.source]
//! kubeconfig = "/etc/ferry/source.kubeconfig"
//! context = "admin"
//!
//! [aws]
//! region = "us-east-1"
//! profile = "dr"                      # optional; default credential chain
//! endpoint_url = "http://127.0.0.1:5000"  # optional, for S3-compatible stores
//! force_path_style = true
//! ca_bundle = "private-ca.pem"        # optional: extra CAs to trust (system roots kept)
//! s3_encryption = "sse-kms"           # sse-s3 (default), sse-kms or none
//! s3_kms_key_id = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
//!
//! [etcd.test]
//! endpoints = ["http://127.0.0.1:2379"]
//!
//! [workspace]
//! dir = "./backup"
//!
//! [params]
//! hc_namespace = "clusters"
//!
//! [limits]
//! memory_mib = 256
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors reading a run config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read run config {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for a run config.
    #[error("run config {path} is invalid: {message}")]
    Parse {
        /// The path.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A `--param` is not `key=value`.
    #[error("--param `{0}` is not of the form key=value")]
    BadParam(String),
}

/// One Kubernetes cluster the run may open.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Path to a kubeconfig; relative paths are relative to the config file.
    /// When absent, kube-rs' default (`$KUBECONFIG`, `~/.kube/config`, in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; default: its current context.
    pub context: Option<String>,
}

/// AWS settings shared by S3 and Route53.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// The region (S3 presigning also looks up each bucket's own region).
    pub region: Option<String>,
    /// A named profile from the shared config files.
    pub profile: Option<String>,
    /// Endpoint override for S3-compatible stores (and Route53 unless
    /// `route53_endpoint_url` is set).
    pub endpoint_url: Option<String>,
    /// Endpoint override for Route53 only.
    pub route53_endpoint_url: Option<String>,
    /// Use path-style S3 addressing (needed by most S3-compatible stores).
    #[serde(default)]
    pub force_path_style: bool,
    /// A PEM file of extra CA certificates to trust (a private S3-compatible
    /// store); the system's roots stay trusted. Relative to the config file.
    pub ca_bundle: Option<PathBuf>,
    /// The server-side encryption every S3 write asks for and every write and head
    /// checks: backups hold a control plane's Secrets and etcd.
    #[serde(default)]
    pub s3_encryption: S3Encryption,
    /// The KMS key (id, ARN or alias) of `s3_encryption = "sse-kms"`; without it, the
    /// account's `aws/s3` key. An id or ARN is also checked against what S3 reports.
    pub s3_kms_key_id: Option<String>,
}

/// Which server-side encryption S3 writes use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum S3Encryption {
    /// SSE-S3: keys S3 manages (`AES256`).
    #[default]
    SseS3,
    /// SSE-KMS: a KMS key, `s3_kms_key_id` or the account's default.
    SseKms,
    /// None asked for or checked, for S3-compatible stores without SSE.
    None,
}

impl AwsConfig {
    /// What is wrong with the encryption settings, if anything: a KMS key without
    /// `sse-kms` would silently be ignored, so it is refused instead.
    pub fn encryption_problem(&self) -> Option<String> {
        match (self.s3_encryption, &self.s3_kms_key_id) {
            (S3Encryption::SseKms, Some(k)) if k.trim().is_empty() => {
                Some("s3_kms_key_id is empty; remove it to use the account's aws/s3 key".into())
            }
            (S3Encryption::SseS3 | S3Encryption::None, Some(_)) => Some(
                "s3_kms_key_id is set but s3_encryption is not \"sse-kms\"; set s3_encryption = \"sse-kms\" \
                 to use the key, or remove s3_kms_key_id"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// An etcd endpoint the run may snapshot, by alias.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs of the members.
    pub endpoints: Vec<String>,
}

/// The local directory the `workspace` interface may use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    /// The directory; created 0700 if missing. Relative to the config file.
    pub dir: PathBuf,
    /// age recipients (`age1…` public keys): every file written here is stored encrypted to
    /// them, for folders that hold Secrets. Empty: files are stored as written.
    #[serde(default)]
    pub encrypt_to: Vec<String>,
    /// An age identity file (private key) to read encrypted files back with. Relative to
    /// the config file.
    pub identity: Option<PathBuf>,
}

/// Parses age recipients (`age1…` public keys), naming the first that is not one.
pub fn age_recipients(list: &[String]) -> Result<Vec<age::x25519::Recipient>, String> {
    list.iter()
        .map(|r| {
            r.trim().parse().map_err(|_| {
                format!("`{r}` is not an age recipient (an `age1…` public key, as `ferry backup keygen` or age-keygen print)")
            })
        })
        .collect()
}

impl WorkspaceConfig {
    /// A plain workspace in `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        WorkspaceConfig {
            dir: dir.into(),
            encrypt_to: Vec::new(),
            identity: None,
        }
    }
}

/// Resource limits of one guest run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory per memory, in MiB.
    pub memory_mib: u64,
    /// Guest CPU time, in milliseconds (epoch ticks of 10 ms while wasm runs).
    pub cpu_ms: u64,
    /// Wall-clock time of the whole run, including time in host calls, in seconds.
    pub wall_seconds: u64,
    /// Open handles (clusters, buckets, zones, streams) at once.
    pub max_handles: usize,
    /// Largest object `objects.get`/`put`, or workspace file, moved through the guest, in bytes.
    pub max_object_bytes: u64,
    /// Most bytes one `k8s` list may return (the host holds them before the guest does).
    pub max_list_bytes: u64,
    /// Most bytes one run may write to its workspace, all files together.
    pub workspace_quota_bytes: u64,
    /// Longest lifetime of a presigned URL, in seconds: a URL is a bearer credential for
    /// the object (a snapshot holds every Secret of the cluster). A policy may lower it
    /// further through `context.presignSeconds`.
    pub max_presign_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: 256,
            cpu_ms: 60_000,
            wall_seconds: 3_600,
            max_handles: 1_000,
            max_object_bytes: 16 * 1024 * 1024,
            max_list_bytes: 64 * 1024 * 1024,
            workspace_quota_bytes: 1024 * 1024 * 1024,
            max_presign_seconds: 6 * 3600,
        }
    }
}

/// Clock settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockConfig {
    /// How much faster than real time the guest's clock runs (drills and tests
    /// use e.g. 60 so a 10-minute wait takes 10 s).
    pub scale: f64,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig { scale: 1.0 }
    }
}

/// One site hook: a `hook`-world component with its own policy and limits.
///
/// ```toml
/// [[hooks]]
/// name = "change-window"              # its policy principal: Ferry::Guest::"change-window"
/// component = "hooks/change-window.wasm"
/// policy = "hooks/change-window.cedar"
/// points = ["verify"]                 # where it is called; none listed: never
/// advisory = false                    # true: a failure is a warning, never blocks
/// [hooks.limits]                      # default: 64 MiB, 2 s CPU, 60 s wall
/// cpu_ms = 5000
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// The hook's name: its policy principal and how messages name it.
    pub name: String,
    /// The component file (relative paths: relative to the config file).
    pub component: PathBuf,
    /// Its Cedar policy file.
    pub policy: PathBuf,
    /// The points it is called at (`before-step`, `after-step`,
    /// `select-objects`, `transform-object`, `verify`). A hook is called only where it is
    /// named: one that names none sees nothing (and loading warns), never everything.
    #[serde(default)]
    pub points: Vec<String>,
    /// When true, a failing, trapping, denied or vetoing hook only logs a warning.
    #[serde(default)]
    pub advisory: bool,
    /// Its limits (default [`HookConfig::default_limits`]).
    pub limits: Option<Limits>,
}

impl HookConfig {
    /// The limits of a hook that sets none: small, since a hook only decides.
    pub fn default_limits() -> Limits {
        Limits {
            memory_mib: 64,
            cpu_ms: 2_000,
            wall_seconds: 60,
            max_handles: 64,
            max_object_bytes: 1024 * 1024,
            max_list_bytes: 4 * 1024 * 1024,
            workspace_quota_bytes: 16 * 1024 * 1024,
            max_presign_seconds: 3600,
        }
    }
}

impl HookConfig {
    /// Resolves relative component and policy paths against `base`.
    pub fn resolve_relative(&mut self, base: &Path) {
        if self.component.is_relative() {
            self.component = base.join(&self.component);
        }
        if self.policy.is_relative() {
            self.policy = base.join(&self.policy);
        }
    }
}

/// A hooks file (`ferry drill --hooks`): `[[hooks]]` entries and the
/// `[params]` they read, as a site config would hold them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksFile {
    /// The hooks, in call order.
    #[serde(default)]
    pub hooks: Vec<HookConfig>,
    /// Parameters for the hooks.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

impl HooksFile {
    /// Reads a hooks file; relative paths are relative to its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut file: HooksFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for h in &mut file.hooks {
            h.resolve_relative(&base);
        }
        Ok(file)
    }
}

/// A whole run config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Clusters by alias.
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterConfig>,
    /// AWS settings.
    #[serde(default)]
    pub aws: AwsConfig,
    /// etcd endpoints by alias.
    #[serde(default)]
    pub etcd: BTreeMap<String, EtcdConfig>,
    /// The workspace directory, if any.
    pub workspace: Option<WorkspaceConfig>,
    /// Run parameters (overridden by `--param`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Clock.
    #[serde(default)]
    pub clock: ClockConfig,
    /// Site hooks, called in this order.
    #[serde(default)]
    pub hooks: Vec<HookConfig>,
    /// SHA-256 of the text it was read from (a plan applies only to the same config).
    #[serde(skip)]
    pub source_sha256: Option<String>,
}

impl RunConfig {
    /// Reads a config file; relative paths inside are resolved against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        config.resolve_relative(&base);
        Ok(config)
    }

    /// Parses config text; `origin` is only used in messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let mut config: RunConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        if let Some(problem) = config.aws.encryption_problem() {
            return Err(ConfigError::Parse {
                path: origin.to_path_buf(),
                message: format!("[aws] {problem}"),
            });
        }
        if let Some(w) = &config.workspace
            && let Err(e) = age_recipients(&w.encrypt_to)
        {
            return Err(ConfigError::Parse {
                path: origin.to_path_buf(),
                message: format!("[workspace] encrypt_to: {e}"),
            });
        }
        config.source_sha256 = Some(crate::plan::sha256_hex(text.as_bytes()));
        Ok(config)
    }

    fn resolve_relative(&mut self, base: &Path) {
        for c in self.clusters.values_mut() {
            if let Some(k) = &c.kubeconfig
                && k.is_relative()
            {
                c.kubeconfig = Some(base.join(k));
            }
        }
        if let Some(w) = &mut self.workspace {
            if w.dir.is_relative() {
                w.dir = base.join(&w.dir);
            }
            if let Some(id) = &w.identity
                && id.is_relative()
            {
                w.identity = Some(base.join(id));
            }
        }
        for h in &mut self.hooks {
            h.resolve_relative(base);
        }
        if let Some(ca) = &self.aws.ca_bundle
            && ca.is_relative()
        {
            self.aws.ca_bundle = Some(base.join(ca));
        }
    }

    /// Applies `key=value` overrides to the parameters.
    pub fn apply_params<S: AsRef<str>>(&mut self, overrides: &[S]) -> Result<(), ConfigError> {
        for p in overrides {
            let p = p.as_ref();
            let (k, v) = p.split_once('=').ok_or_else(|| ConfigError::BadParam(p.to_string()))?;
            if k.trim().is_empty() {
                return Err(ConfigError::BadParam(p.to_string()));
            }
            self.params.insert(k.trim().to_string(), v.to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A KMS key with another encryption would be silently ignored: refused, saying how to fix it.
    #[test]
    fn a_kms_key_needs_sse_kms() {
        let origin = Path::new("site.toml");
        let ok = RunConfig::parse("[aws]\ns3_encryption = \"sse-kms\"\ns3_kms_key_id = \"k\"\n", origin);
        assert!(ok.is_ok_and(|c| c.aws.s3_encryption == S3Encryption::SseKms));
        assert!(RunConfig::parse("", origin).is_ok_and(|c| c.aws.s3_encryption == S3Encryption::SseS3));
        let err = RunConfig::parse("[aws]\ns3_kms_key_id = \"k\"\n", origin)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("s3_kms_key_id is set but s3_encryption is not \"sse-kms\""),
            "{err}"
        );
        let err = RunConfig::parse("[aws]\ns3_encryption = \"aes\"\n", origin)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("sse-s3") && err.contains("sse-kms"), "{err}");
    }

    #[test]
    fn parses_a_full_config_and_rejects_unknown_keys() {
        let text = r#"
            [clusters.source]
            kubeconfig = "k/src.yaml"
            [aws]
            region = "us-east-1"
            endpoint_url = "http://127.0.0.1:5000"
            force_path_style = true
            [etcd.e]
            endpoints = ["http://127.0.0.1:2379"]
            [params]
            hc_name = "a.b"
            [limits]
            memory_mib = 64
        "#;
        let c = RunConfig::parse(text, Path::new("x.toml")).expect("valid config");
        assert_eq!(c.limits.memory_mib, 64);
        assert_eq!(c.limits.cpu_ms, Limits::default().cpu_ms);
        assert_eq!(c.params["hc_name"], "a.b");
        let err = RunConfig::parse("[aws]\nregoin = 'x'\n", Path::new("bad.toml")).unwrap_err();
        assert!(err.to_string().contains("regoin"), "{err}");
    }

    #[test]
    fn params_override() {
        let mut c = RunConfig::default();
        c.apply_params(&["a=1", "b=x=y"]).expect("valid params");
        assert_eq!(c.params["b"], "x=y");
        assert!(c.apply_params(&["nokey"]).is_err());
    }
}
