//! The site config (TOML): what the HyperShift DR procedure's env file held,
//! turned into a [`RunConfig`] for the stock `hosted-cluster-dr` guest.
//!
//! Relative paths are relative to the site file. Every value can be
//! overridden on the command line ([`SiteOverrides`]); missing required values
//! are reported all at once, each with the key and the flag that set it.
//!
//! ```toml
#![doc = include_str!("site_example.toml")]
//! ```
//!
//! The run config it becomes has the clusters `source`, `destination` and
//! `hosted`, the `[aws]`, `[limits]` and `[clock]` sections as given, the
//! backup directory as `[workspace]`, and these `[params]` (plus the site's
//! own `[params]`, then `--param` overrides): `source`, `destination`,
//! `hosted` (the cluster aliases), `hc_namespace`, `hc_name`, `nodes`,
//! `bucket`, `s3_prefix`, `presign_seconds`, `zone_id`,
//! `external_dns_domain`, `txt_suffix`, `dns_timeout_seconds`,
//! `restore_timeout_seconds`, `nodes_timeout_seconds`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use ferry::config::{AwsConfig, ClockConfig, ClusterConfig, Limits, RunConfig, WorkspaceConfig};

/// A commented example site config (the one in this module's docs).
pub const EXAMPLE: &str = include_str!("site_example.toml");

/// Errors reading a site config or turning it into a run config.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// The file could not be read.
    #[error("cannot read site config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid site config.
    #[error("site config {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line, column and key.
        message: String,
    },
    /// A value is present but wrong.
    #[error("{origin}: {key} {message}")]
    Invalid {
        /// The site file, or `the command line`.
        origin: String,
        /// The key or flag.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Required values are missing.
    #[error("{}", missing_message(.origin, .missing))]
    Missing {
        /// The site file, or `the command line`.
        origin: String,
        /// Every missing value.
        missing: Vec<MissingValue>,
    },
}

/// One required value that is not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingValue {
    /// What it is, e.g. `hosted cluster name (HC_CLUSTER_NAME)`.
    pub what: &'static str,
    /// The site key, e.g. `[hosted_cluster] name`.
    pub key: &'static str,
    /// The flag, e.g. `--hc-name`.
    pub flag: &'static str,
}

fn missing_message(origin: &str, missing: &[MissingValue]) -> String {
    let mut s = format!("{origin}: {} required value(s) missing:", missing.len());
    for m in missing {
        s.push_str(&format!("\n  - {}: set {} or pass {}", m.what, m.key, m.flag));
    }
    s
}

/// What to do with the hosted cluster's nodes on restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Nodes {
    /// Keep the existing worker machines and let them rejoin.
    #[default]
    Reuse,
    /// Restore the control plane only.
    ControlPlaneOnly,
}

impl Nodes {
    /// The parameter value: `reuse` or `control-plane-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Nodes::Reuse => "reuse",
            Nodes::ControlPlaneOnly => "control-plane-only",
        }
    }
}

impl fmt::Display for Nodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Nodes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reuse" => Ok(Nodes::Reuse),
            "control-plane-only" => Ok(Nodes::ControlPlaneOnly),
            other => Err(format!("`{other}` is not one of: reuse, control-plane-only")),
        }
    }
}

/// `[clusters]`: the three clusters of a DR run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteClusters {
    /// The source management cluster (`MGMT_KUBECONFIG`).
    pub source: Option<ClusterConfig>,
    /// The destination management cluster (`MGMT2_KUBECONFIG`).
    pub destination: Option<ClusterConfig>,
    /// The hosted cluster's own API (`HC_KUBECONFIG`).
    pub hosted: Option<ClusterConfig>,
}

/// `[hosted_cluster]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostedClusterSection {
    /// The HostedCluster namespace (`HC_CLUSTER_NS`); default `clusters`.
    pub namespace: Option<String>,
    /// The HostedCluster name (`HC_CLUSTER_NAME`); required.
    pub name: Option<String>,
    /// What to do with the nodes; default `reuse`.
    pub nodes: Option<Nodes>,
    /// Teardown deletes the shared namespace once nothing else lives in it, as the
    /// documented procedure does. Default false: the namespace is shared, and the
    /// policy must grant it too (`policies/examples/delete-empty-hc-namespace.cedar`).
    pub delete_empty_namespace: Option<bool>,
}

/// `[backup]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    /// Local backup directory (`BACKUP_DIR`); default `./backup` next to the site file.
    pub dir: Option<PathBuf>,
    /// The S3 bucket for backups (`BUCKET_NAME`); required. Not the OIDC bucket.
    pub bucket: Option<String>,
    /// S3 key prefix; default `hosted-clusters`.
    pub prefix: Option<String>,
    /// Lifetime of the presigned snapshot URL; default 3600.
    pub presign_seconds: Option<u64>,
    /// age recipients (`age1…`) the local backup folder is encrypted to; it holds every
    /// Secret of the control plane. `ferry backup keygen` makes a key pair.
    #[serde(default)]
    pub encrypt_to: Vec<String>,
    /// The age identity file that reads the local backup back (restore from a local copy,
    /// `ferry backup decrypt`). Not needed to back up.
    pub age_identity: Option<PathBuf>,
}

/// `[dns]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSection {
    /// The Route53 hosted zone id (`AWS_ZONE_ID`); required.
    pub zone_id: Option<String>,
    /// The external-dns domain (`EXTERNAL_DNS_DOMAIN`); required.
    pub external_dns_domain: Option<String>,
    /// external-dns `--txt-suffix`; default `-external-dns`.
    pub txt_suffix: Option<String>,
}

/// `[timeouts]`, in seconds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSection {
    /// Each wait on DNS (records released, published); default: what the external-dns doing
    /// the work is configured to need (a start and twice its `--interval`).
    pub dns_seconds: Option<u64>,
    /// The restored control plane becoming available; default 1200.
    pub restore_seconds: Option<u64>,
    /// Nodes rejoining; default 1200.
    pub nodes_seconds: Option<u64>,
}

/// A whole site config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// SHA-256 of the text it was read from: a plan applies only to the same site.
    #[serde(skip)]
    pub source_sha256: Option<String>,
    /// The clusters.
    #[serde(default)]
    pub clusters: SiteClusters,
    /// The hosted cluster.
    #[serde(default)]
    pub hosted_cluster: HostedClusterSection,
    /// Where backups go.
    #[serde(default)]
    pub backup: BackupSection,
    /// Route53 and external-dns.
    #[serde(default)]
    pub dns: DnsSection,
    /// AWS settings, exactly the run config's `[aws]`.
    #[serde(default)]
    pub aws: AwsConfig,
    /// Timeouts the guest waits with.
    #[serde(default)]
    pub timeouts: TimeoutsSection,
    /// Limits of each phase's run.
    #[serde(default)]
    pub limits: Limits,
    /// The guest's clock.
    #[serde(default)]
    pub clock: ClockConfig,
    /// Extra parameters passed through to the guest.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Site hooks (`[[hooks]]`, as in the run config), called in this order.
    #[serde(default)]
    pub hooks: Vec<ferry::config::HookConfig>,
    /// The file it was read from (messages, relative paths).
    #[serde(skip)]
    pub origin: Option<PathBuf>,
    /// `--param` overrides; they win over everything.
    #[serde(skip)]
    pub param_overrides: BTreeMap<String, String>,
}

/// Command-line overrides of a site config: each flag wins over its site setting. The CLI
/// flattens it into every DR command, so the flags and this type cannot drift apart.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SiteOverrides {
    /// HostedCluster name ([hosted_cluster] name).
    #[arg(long)]
    pub hc_name: Option<String>,
    /// HostedCluster namespace ([hosted_cluster] namespace).
    #[arg(long)]
    pub hc_namespace: Option<String>,
    /// `reuse` or `control-plane-only` ([hosted_cluster] nodes).
    #[arg(long)]
    pub nodes: Option<Nodes>,
    /// S3 bucket for backups ([backup] bucket).
    #[arg(long)]
    pub bucket: Option<String>,
    /// S3 key prefix ([backup] prefix).
    #[arg(long)]
    pub s3_prefix: Option<String>,
    /// Route53 hosted zone id ([dns] zone_id).
    #[arg(long)]
    pub zone_id: Option<String>,
    /// external-dns domain ([dns] external_dns_domain).
    #[arg(long)]
    pub external_dns_domain: Option<String>,
    /// Local backup directory ([backup] dir).
    #[arg(long)]
    pub backup_dir: Option<PathBuf>,
    /// Source management cluster kubeconfig ([clusters.source] kubeconfig).
    #[arg(long)]
    pub source_kubeconfig: Option<PathBuf>,
    /// Destination management cluster kubeconfig ([clusters.destination] kubeconfig).
    #[arg(long)]
    pub destination_kubeconfig: Option<PathBuf>,
    /// Hosted cluster kubeconfig ([clusters.hosted] kubeconfig).
    #[arg(long)]
    pub hosted_kubeconfig: Option<PathBuf>,
    /// AWS region ([aws] region).
    #[arg(long)]
    pub region: Option<String>,
    /// A run parameter (repeatable); wins over the site.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
}

/// Parameters the site sets itself; `[params]` may not set them.
const CORE_PARAMS: &[&str] = &[
    "source",
    "destination",
    "hosted",
    "hc_namespace",
    "hc_name",
    "nodes",
    "delete_empty_hc_namespace",
    "bucket",
    "s3_prefix",
    "presign_seconds",
    "zone_id",
    "external_dns_domain",
    "txt_suffix",
    "dns_timeout_seconds",
    "restore_timeout_seconds",
    "nodes_timeout_seconds",
    "txt_api",
    "txt_api_cname",
    "txt_api_a",
    "txt_oauth",
    "txt_oauth_cname",
    "txt_oauth_a",
    "txt_konnectivity",
    "txt_konnectivity_cname",
    "txt_konnectivity_a",
    "txt_ignition",
    "txt_ignition_cname",
    "txt_ignition_a",
];

/// The services `hypershift create cluster aws` publishes under the external-dns domain, as
/// `<service>-<name>.<domain>` (`cmd/cluster/aws/create.go`).
const PUBLISHED_SERVICES: [&str; 4] = ["api", "oauth", "konnectivity", "ignition"];

/// The ownership TXT record names external-dns gives the hostnames of hosted cluster
/// `hc_name` ([`PUBLISHED_SERVICES`]), as the params `txt_<service>` (legacy format: the
/// suffix after the first label), `txt_<service>_cname` and `txt_<service>_a` (the newer
/// format, record type in front; `registry/txt.go` `toTXTName`/`toNewTXTName`): the names
/// the stock policy's `dns-handover` grant links, so that the guest may rewrite the owner of
/// this hosted cluster's records and of no other's. Empty without a domain.
pub fn ownership_txt_names(hc_name: &str, domain: &str, suffix: &str) -> Vec<(String, String)> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let mut out = Vec::new();
    for service in PUBLISHED_SERVICES {
        let host = format!("{service}-{}.{domain}", hc_name.to_ascii_lowercase());
        let legacy = match (domain.is_empty(), host.split_once('.')) {
            (false, Some((first, rest))) => format!("{first}{suffix}.{rest}"),
            _ => String::new(),
        };
        let prefixed = |t: &str| {
            if legacy.is_empty() {
                String::new()
            } else {
                format!("{t}-{legacy}")
            }
        };
        out.push((format!("txt_{service}_cname"), prefixed("cname")));
        out.push((format!("txt_{service}_a"), prefixed("a")));
        out.push((format!("txt_{service}"), legacy));
    }
    out
}

impl SiteConfig {
    /// Reads a site file; relative paths inside are resolved against its folder.
    pub fn load(path: &Path) -> Result<Self, SiteError> {
        let text = std::fs::read_to_string(path).map_err(|source| SiteError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut site = Self::parse(&text, path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        site.resolve_relative(&base);
        site.origin = Some(path.to_path_buf());
        Ok(site)
    }

    /// Parses site text; `origin` only names it in messages (paths stay as written).
    pub fn parse(text: &str, origin: &Path) -> Result<Self, SiteError> {
        let mut site: SiteConfig = toml::from_str(text).map_err(|e| SiteError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        site.source_sha256 = Some(ferry::plan::sha256_hex(text.as_bytes()));
        Ok(site)
    }

    fn resolve_relative(&mut self, base: &Path) {
        for c in [
            &mut self.clusters.source,
            &mut self.clusters.destination,
            &mut self.clusters.hosted,
        ]
        .into_iter()
        .flatten()
        {
            if let Some(k) = &c.kubeconfig
                && k.is_relative()
            {
                c.kubeconfig = Some(base.join(k));
            }
        }
        let dir = self.backup.dir.clone().unwrap_or_else(|| PathBuf::from("backup"));
        self.backup.dir = Some(if dir.is_relative() { base.join(dir) } else { dir });
        if let Some(id) = &self.backup.age_identity
            && id.is_relative()
        {
            self.backup.age_identity = Some(base.join(id));
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

    fn origin_name(&self) -> String {
        match &self.origin {
            Some(p) => format!("site config {}", p.display()),
            None => "the command line".to_string(),
        }
    }

    /// Applies command-line overrides (paths in them are taken as given,
    /// i.e. relative to the working directory).
    pub fn apply(&mut self, o: &SiteOverrides) -> Result<(), SiteError> {
        fn set<T: Clone>(slot: &mut Option<T>, value: &Option<T>) {
            if let Some(v) = value {
                *slot = Some(v.clone());
            }
        }
        set(&mut self.hosted_cluster.name, &o.hc_name);
        set(&mut self.hosted_cluster.namespace, &o.hc_namespace);
        set(&mut self.hosted_cluster.nodes, &o.nodes);
        set(&mut self.backup.bucket, &o.bucket);
        set(&mut self.backup.prefix, &o.s3_prefix);
        set(&mut self.backup.dir, &o.backup_dir);
        set(&mut self.dns.zone_id, &o.zone_id);
        set(&mut self.dns.external_dns_domain, &o.external_dns_domain);
        set(&mut self.aws.region, &o.region);
        for (slot, path) in [
            (&mut self.clusters.source, &o.source_kubeconfig),
            (&mut self.clusters.destination, &o.destination_kubeconfig),
            (&mut self.clusters.hosted, &o.hosted_kubeconfig),
        ] {
            if let Some(path) = path {
                let context = slot.as_ref().and_then(|c| c.context.clone());
                *slot = Some(ClusterConfig {
                    kubeconfig: Some(path.clone()),
                    context,
                });
            }
        }
        for p in &o.params {
            let (k, v) = p
                .split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or_else(|| SiteError::Invalid {
                    origin: "the command line".into(),
                    key: format!("--param `{p}`"),
                    message: "is not of the form key=value".into(),
                })?;
            self.param_overrides.insert(k.trim().to_string(), v.to_string());
        }
        Ok(())
    }

    /// Checks the site and builds the run config of a DR phase. Every missing
    /// required value is reported in one error.
    pub fn run_config(&self) -> Result<RunConfig, SiteError> {
        let origin = self.origin_name();
        let mut missing = Vec::new();
        let mut need = |value: bool, what, key, flag| {
            if !value {
                missing.push(MissingValue { what, key, flag });
            }
        };
        let non_empty = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        need(
            non_empty(&self.hosted_cluster.name),
            "hosted cluster name (HC_CLUSTER_NAME)",
            "[hosted_cluster] name",
            "--hc-name",
        );
        need(
            non_empty(&self.backup.bucket),
            "S3 bucket for backups (BUCKET_NAME)",
            "[backup] bucket",
            "--bucket",
        );
        need(
            non_empty(&self.dns.zone_id),
            "Route53 hosted zone id (AWS_ZONE_ID)",
            "[dns] zone_id",
            "--zone-id",
        );
        need(
            non_empty(&self.dns.external_dns_domain),
            "external-dns domain (EXTERNAL_DNS_DOMAIN)",
            "[dns] external_dns_domain",
            "--external-dns-domain",
        );
        need(
            self.clusters.source.is_some(),
            "source management cluster (MGMT_KUBECONFIG)",
            "[clusters.source] kubeconfig",
            "--source-kubeconfig",
        );
        need(
            self.clusters.destination.is_some(),
            "destination management cluster (MGMT2_KUBECONFIG)",
            "[clusters.destination] kubeconfig",
            "--destination-kubeconfig",
        );
        need(
            self.clusters.hosted.is_some(),
            "hosted cluster API (HC_KUBECONFIG)",
            "[clusters.hosted] kubeconfig",
            "--hosted-kubeconfig",
        );
        if !missing.is_empty() {
            return Err(SiteError::Missing { origin, missing });
        }
        for key in self.params.keys() {
            if CORE_PARAMS.contains(&key.as_str()) {
                return Err(SiteError::Invalid {
                    origin,
                    key: format!("[params] {key}"),
                    message: "is set by the site's own sections; set it there (or pass --param to override)".into(),
                });
            }
        }
        if let Err(e) = ferry::config::age_recipients(&self.backup.encrypt_to) {
            return Err(SiteError::Invalid {
                origin,
                key: "[backup] encrypt_to".into(),
                message: e,
            });
        }
        if let Some(problem) = self.aws.encryption_problem() {
            return Err(SiteError::Invalid {
                origin,
                key: "[aws]".into(),
                message: problem,
            });
        }
        let presign = self.backup.presign_seconds.unwrap_or(3600);
        if presign == 0 {
            return Err(SiteError::Invalid {
                origin,
                key: "[backup] presign_seconds".into(),
                message: "must be more than 0".into(),
            });
        }

        let get = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.to_string());
        let hc_namespace = get(&self.hosted_cluster.namespace, "clusters");
        let hc_name = get(&self.hosted_cluster.name, "");
        let each = |t: &str| fill_in(t, &hc_namespace, &hc_name);
        let mut clusters = BTreeMap::new();
        for (alias, c) in [
            ("source", &self.clusters.source),
            ("destination", &self.clusters.destination),
            ("hosted", &self.clusters.hosted),
        ] {
            if let Some(c) = c {
                clusters.insert(
                    alias.to_string(),
                    ClusterConfig {
                        kubeconfig: c.kubeconfig.as_ref().map(|k| PathBuf::from(each(&k.to_string_lossy()))),
                        context: c.context.as_deref().map(each),
                    },
                );
            }
        }
        let mut params: BTreeMap<String, String> = [
            ("source", "source".to_string()),
            ("destination", "destination".to_string()),
            ("hosted", "hosted".to_string()),
            ("hc_namespace", hc_namespace.clone()),
            ("hc_name", hc_name.clone()),
            ("nodes", self.hosted_cluster.nodes.unwrap_or_default().to_string()),
            (
                "delete_empty_hc_namespace",
                self.hosted_cluster.delete_empty_namespace.unwrap_or(false).to_string(),
            ),
            ("bucket", get(&self.backup.bucket, "")),
            ("s3_prefix", get(&self.backup.prefix, "hosted-clusters")),
            ("presign_seconds", presign.to_string()),
            ("zone_id", get(&self.dns.zone_id, "")),
            ("external_dns_domain", get(&self.dns.external_dns_domain, "")),
            ("txt_suffix", get(&self.dns.txt_suffix, "-external-dns")),
            (
                "restore_timeout_seconds",
                self.timeouts.restore_seconds.unwrap_or(1200).to_string(),
            ),
            (
                "nodes_timeout_seconds",
                self.timeouts.nodes_seconds.unwrap_or(1200).to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let domain = get(&self.dns.external_dns_domain, "");
        let suffix = get(&self.dns.txt_suffix, "-external-dns");
        params.extend(ownership_txt_names(&hc_name, &domain, &suffix));
        // Unset, each DNS wait is bounded by what that external-dns is configured to need.
        if let Some(d) = self.timeouts.dns_seconds {
            params.insert("dns_timeout_seconds".into(), d.to_string());
        }
        params.extend(self.params.clone());
        params.extend(self.param_overrides.clone());
        Ok(RunConfig {
            clusters,
            aws: self.aws.clone(),
            etcd: BTreeMap::new(),
            workspace: Some(WorkspaceConfig {
                dir: PathBuf::from(each(&self.backup_dir().to_string_lossy())),
                encrypt_to: self.backup.encrypt_to.clone(),
                identity: self.backup.age_identity.clone(),
            }),
            params,
            limits: self.limits.clone(),
            clock: self.clock.clone(),
            hooks: self.hooks.clone(),
            source_sha256: self.source_sha256.clone(),
        })
    }
}

impl SiteConfig {
    /// The local backup directory's template: `[backup] dir`, with `{namespace}/{name}` added
    /// unless it names the hosted cluster itself. Backup ids are timestamps, so two hosted
    /// clusters backed up in the same second from one site file must not share a directory.
    fn backup_dir(&self) -> PathBuf {
        let dir = self.backup.dir.clone().unwrap_or_else(|| PathBuf::from("backup"));
        if dir.to_string_lossy().contains("{name}") {
            dir
        } else {
            dir.join("{namespace}").join("{name}")
        }
    }
}

/// `{namespace}` and `{name}` in a site path or context replaced by the hosted cluster's: one
/// site file serves every hosted cluster of a management cluster (each has its own API and its
/// own local backup directory).
fn fill_in(template: &str, namespace: &str, name: &str) -> String {
    template.replace("{namespace}", namespace).replace("{name}", name)
}

impl SiteConfig {
    /// This site for hosted cluster `namespace/name` (a fleet member), checked to keep each
    /// member's API and local backup directory apart.
    pub fn for_hosted_cluster(&self, namespace: &str, name: &str) -> Result<SiteConfig, SiteError> {
        let per_cluster = |v: Option<&str>| v.is_some_and(|v| v.contains("{name}"));
        let hosted = self.clusters.hosted.as_ref();
        if !per_cluster(hosted.and_then(|h| h.kubeconfig.as_deref()).and_then(Path::to_str))
            && !per_cluster(hosted.and_then(|h| h.context.as_deref()))
        {
            return Err(SiteError::Invalid {
                origin: self.origin_name(),
                key: "[clusters.hosted]".into(),
                message: "names one hosted cluster's API, but a fleet has one per hosted cluster: write `{name}` \
                          (and `{namespace}`) in its kubeconfig path or context, e.g. \
                          kubeconfig = \"hosted/{namespace}/{name}.kubeconfig\""
                    .into(),
            });
        }
        let mut site = self.clone();
        site.hosted_cluster.namespace = Some(namespace.to_string());
        site.hosted_cluster.name = Some(name.to_string());
        Ok(site)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_and_becomes_a_run_config() {
        let site = SiteConfig::parse(EXAMPLE, Path::new("example.toml")).expect("the example is valid");
        let config = site.run_config().expect("the example is complete");
        assert_eq!(config.params["hc_name"], "my.cluster");
        assert_eq!(config.params["hc_namespace"], "clusters");
        assert_eq!(config.params["nodes"], "reuse");
        assert_eq!(config.params["bucket"], "dr-backups");
        assert_eq!(config.params["s3_prefix"], "hosted-clusters");
        assert_eq!(config.params["zone_id"], "Z0123");
        assert_eq!(config.params["txt_suffix"], "-external-dns");
        // external-dns puts the suffix after the first label, wherever the name has dots.
        assert_eq!(
            config.params["txt_api"],
            "api-my-external-dns.cluster.guest.example.com"
        );
        assert_eq!(
            config.params["txt_oauth_cname"],
            "cname-oauth-my-external-dns.cluster.guest.example.com"
        );
        assert!(
            !config.params.contains_key("dns_timeout_seconds"),
            "unset: each DNS wait is bounded by its external-dns's own configuration"
        );
        assert_eq!(config.params["source"], "source");
        assert_eq!(config.clusters.len(), 3);
        assert_eq!(config.clusters["source"].context.as_deref(), Some("admin"));
        assert_eq!(config.aws.region.as_deref(), Some("us-east-1"));
    }

    /// One site serves a fleet: `{namespace}`/`{name}` become each hosted cluster's in the
    /// hosted API's kubeconfig and context and in the backup directory (which is per hosted
    /// cluster even without them); a site naming one hosted API cannot serve a fleet.
    #[test]
    fn one_site_fills_in_each_hosted_cluster() {
        let text = EXAMPLE.replace(
            "kubeconfig = \"hosted.kubeconfig\"",
            "kubeconfig = \"hosted/{namespace}/{name}.kubeconfig\"\ncontext = \"{name}-admin\"",
        );
        let site = SiteConfig::parse(&text, Path::new("site.toml")).expect("valid");
        let config = site
            .for_hosted_cluster("team-a", "db")
            .and_then(|s| s.run_config())
            .expect("complete");
        let hosted = &config.clusters["hosted"];
        assert_eq!(
            hosted.kubeconfig.as_deref(),
            Some(Path::new("hosted/team-a/db.kubeconfig"))
        );
        assert_eq!(hosted.context.as_deref(), Some("db-admin"));
        assert_eq!(config.params["hc_name"], "db");
        assert_eq!(config.params["hc_namespace"], "team-a");
        let dir = &config.workspace.as_ref().expect("a workspace").dir;
        assert_eq!(dir, Path::new("./backup/team-a/db"));

        let single = SiteConfig::parse(EXAMPLE, Path::new("site.toml")).expect("valid");
        let err = single
            .for_hosted_cluster("team-a", "db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("[clusters.hosted]") && err.contains("{name}"), "{err}");
        let dir = single
            .run_config()
            .expect("complete")
            .workspace
            .expect("a workspace")
            .dir;
        assert_eq!(dir, Path::new("./backup/clusters/my.cluster"));
    }

    /// A recipient that is not an age key would leave Secrets in the clear, or fail mid-run:
    /// refused up front, naming it; a real one and its identity reach the workspace.
    #[test]
    fn backup_encryption_keys_are_checked_and_reach_the_workspace() {
        let with = |extra: &str| {
            let text = EXAMPLE.replacen("[backup]\n", &format!("[backup]\n{extra}\n"), 1);
            SiteConfig::parse(&text, Path::new("site.toml")).and_then(|s| s.run_config())
        };
        let err = with("encrypt_to = [\"ssh-ed25519 AAAA\"]")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("[backup] encrypt_to") && err.contains("ssh-ed25519 AAAA"),
            "{err}"
        );
        let key = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        let config = with(&format!("encrypt_to = [\"{key}\"]\nage_identity = \"backup.agekey\"")).expect("valid");
        let ws = config.workspace.expect("workspace");
        assert_eq!(ws.encrypt_to, [key]);
        assert_eq!(ws.identity.as_deref(), Some(Path::new("backup.agekey")));
    }

    #[test]
    fn relative_paths_follow_the_site_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("site.toml");
        std::fs::write(&path, EXAMPLE).expect("write");
        let config = SiteConfig::load(&path).expect("load").run_config().expect("complete");
        assert_eq!(
            config.clusters["destination"].kubeconfig.as_deref(),
            Some(dir.path().join("destination.kubeconfig").as_path())
        );
        assert_eq!(
            config.workspace.map(|w| w.dir),
            Some(dir.path().join("./backup/clusters/my.cluster"))
        );
    }

    #[test]
    fn unknown_keys_name_the_file_line_and_key() {
        let text = "[hosted_cluster]\nname = \"a\"\n[backup]\nbukcet = \"x\"\n";
        let e = SiteConfig::parse(text, Path::new("/etc/ferry/site.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/ferry/site.toml"), "{e}");
        assert!(e.contains("line 4"), "{e}");
        assert!(e.contains("bukcet"), "{e}");
        let e = SiteConfig::parse("[hosted_cluster]\nnodes = \"all\"\n", Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("all") && e.contains("control-plane-only"), "{e}");
    }

    #[test]
    fn missing_values_are_reported_at_once_with_key_and_flag() {
        let site = SiteConfig::parse("[hosted_cluster]\nnamespace = \"x\"\n", Path::new("s.toml")).expect("valid");
        let e = site.run_config().unwrap_err();
        let SiteError::Missing { missing, .. } = &e else {
            panic!("expected missing values, got {e}");
        };
        let flags: Vec<&str> = missing.iter().map(|m| m.flag).collect();
        assert_eq!(
            flags,
            [
                "--hc-name",
                "--bucket",
                "--zone-id",
                "--external-dns-domain",
                "--source-kubeconfig",
                "--destination-kubeconfig",
                "--hosted-kubeconfig"
            ]
        );
        let text = e.to_string();
        assert!(text.contains("[hosted_cluster] name"), "{text}");
        assert!(text.contains("7 required value(s) missing"), "{text}");
    }

    #[test]
    fn flags_override_the_file() {
        let mut site = SiteConfig::parse(EXAMPLE, Path::new("s.toml")).expect("valid");
        site.apply(&SiteOverrides {
            hc_name: Some("other".into()),
            nodes: Some(Nodes::ControlPlaneOnly),
            bucket: Some("b2".into()),
            source_kubeconfig: Some(PathBuf::from("/k/src")),
            region: Some("eu-west-1".into()),
            params: vec!["extra=1".into(), "zone_id=Z9".into()],
            ..Default::default()
        })
        .expect("valid overrides");
        let c = site.run_config().expect("complete");
        assert_eq!(c.params["hc_name"], "other");
        assert_eq!(c.params["nodes"], "control-plane-only");
        assert_eq!(c.params["bucket"], "b2");
        assert_eq!(c.params["extra"], "1");
        assert_eq!(c.params["zone_id"], "Z9");
        assert_eq!(c.aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.clusters["source"].kubeconfig.as_deref(), Some(Path::new("/k/src")));
        assert_eq!(c.clusters["source"].context.as_deref(), Some("admin"));
        assert!(
            site.apply(&SiteOverrides {
                params: vec!["novalue".into()],
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn flags_alone_are_enough() {
        let mut site = SiteConfig::default();
        site.apply(&SiteOverrides {
            hc_name: Some("a".into()),
            bucket: Some("b".into()),
            zone_id: Some("Z".into()),
            external_dns_domain: Some("d.example.com".into()),
            source_kubeconfig: Some("s".into()),
            destination_kubeconfig: Some("d".into()),
            hosted_kubeconfig: Some("h".into()),
            ..Default::default()
        })
        .expect("valid");
        let c = site.run_config().expect("complete");
        assert_eq!(c.params["external_dns_domain"], "d.example.com");
    }

    #[test]
    fn site_params_may_not_shadow_the_sections() {
        let text = format!("{EXAMPLE}\nhc_name = \"sneaky\"\n");
        let site = SiteConfig::parse(&text, Path::new("s.toml")).expect("valid toml");
        let e = site.run_config().unwrap_err().to_string();
        assert!(e.contains("[params] hc_name"), "{e}");
    }
}
