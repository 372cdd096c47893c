//! `ferry fleet render` and `ferry fleet run-index`: a fleet migration run by Kubernetes, on
//! the cluster the site already operates, instead of on one machine.
//!
//! The rendered Job is Indexed: Kubernetes runs one pod per hosted cluster (`completions`),
//! `parallelism` at a time, and gives each its `JOB_COMPLETION_INDEX`; `ferry fleet run-index`
//! migrates the hosted cluster at that index of the rendered list. `backoffLimitPerIndex: 0`
//! keeps a failed index from being retried blindly or from failing the others (a failed
//! migration needs a person, and its pod log ends with the command that resumes it).
//!
//! In the pod, the cluster the Job runs on is reached in-cluster (its ServiceAccount, bound to
//! the Roles the policy derives for that cluster); the others through kubeconfigs from a
//! Secret; AWS through the standard chain (IRSA's web identity, or a credentials Secret).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use ferry::policy::{GuestIdentity, OwnedObject, Ownership, PolicyEngine};
use ferry::runtime::Exit;
use ferry_dr::fleet::{FleetOptions, Member};
use ferry_dr::site::SiteConfig;
use serde_json::{Value, json};

use super::fleet::FleetArgs;
use crate::exit;
use crate::output::Output;

/// Where the pod finds what the manifests mount.
const SITE_DIR: &str = "/etc/ferry/site";
const KUBECONFIG_DIR: &str = "/etc/ferry/kubeconfigs";
const AUDIT_KEY_DIR: &str = "/etc/ferry/audit-key";
const STATE_DIR: &str = "/var/lib/ferry";

#[derive(clap::Args)]
pub struct RenderArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    /// The ferry container image.
    #[arg(long)]
    image: String,
    /// The namespace the Job runs in (it must exist).
    #[arg(long, default_value = "ferry")]
    namespace: String,
    /// The name of the Job, its ServiceAccount, ConfigMap and RBAC.
    #[arg(long, default_value = "ferry-fleet")]
    job_name: String,
    /// The site's cluster the Job runs on, reached in-cluster (usually the destination: the
    /// source may be what failed).
    #[arg(long, default_value = "destination")]
    in_cluster: String,
    /// The Secret with the other clusters' kubeconfigs: `<alias>.kubeconfig` for the
    /// management clusters and `hosted.<namespace>.<name>.kubeconfig` for each hosted cluster.
    #[arg(long, default_value = "ferry-kubeconfigs")]
    kubeconfig_secret: String,
    /// IRSA: the IAM role the ServiceAccount assumes (the standard web-identity chain).
    #[arg(long, conflicts_with = "aws_credentials_secret")]
    aws_role_arn: Option<String>,
    /// A Secret with `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and optionally
    /// `AWS_SESSION_TOKEN`), when IRSA is not available.
    #[arg(long)]
    aws_credentials_secret: Option<String>,
    /// A Secret whose `key` signs the audit trails' checkpoints.
    #[arg(long)]
    audit_key_secret: Option<String>,
}

/// `ferry fleet run-index`: what the rendered Job's pod runs.
#[derive(clap::Args)]
pub struct RunIndexArgs {
    /// The site config (in the pod: the rendered ConfigMap's).
    #[arg(long)]
    site: PathBuf,
    /// The rendered list: one `namespace/name` per line, in Job index order.
    #[arg(long)]
    list: PathBuf,
    /// The index to migrate (set by Kubernetes in an Indexed Job).
    #[arg(long, env = "JOB_COMPLETION_INDEX")]
    index: usize,
    /// Keep the audit trail in DIR/<namespace>/<name>.jsonl.
    #[arg(long, value_name = "DIR")]
    audit_dir: Option<PathBuf>,
    /// Sign each phase's checkpoint in the audit trail with this key file.
    #[arg(long, env = "FERRY_AUDIT_KEY_FILE")]
    audit_key: Option<PathBuf>,
    /// Another Cedar policy instead of the embedded stock one.
    #[arg(long)]
    policy: Option<PathBuf>,
}

/// The kubeconfig Secret's key of `alias`'s kubeconfig; hosted ones name their cluster.
fn kubeconfig_key(alias: &str) -> String {
    if alias == "hosted" {
        "hosted.{namespace}.{name}.kubeconfig".to_string()
    } else {
        format!("{alias}.kubeconfig")
    }
}

/// The site as the pod reads it: the in-cluster alias without a kubeconfig, the others from
/// the Secret, the backup directory in the pod's volume, the CA bundle beside it.
fn pod_site(path: &std::path::Path, in_cluster: &str) -> anyhow::Result<(String, Option<String>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut site: toml::Table = toml::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))?;
    if site.get("hooks").is_some() {
        anyhow::bail!(
            "{}: the site has [[hooks]]; their components are files that a rendered Job cannot carry yet. \
             Build an image with them, or run `ferry fleet migrate` on a machine",
            path.display()
        );
    }
    let clusters = site
        .entry("clusters")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    let Some(clusters) = clusters.as_table_mut() else {
        anyhow::bail!("{}: [clusters] is not a table", path.display());
    };
    if !clusters.contains_key(in_cluster) {
        anyhow::bail!(
            "{}: --in-cluster `{in_cluster}` is not one of the site's clusters ({})",
            path.display(),
            clusters.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    for (alias, c) in clusters.iter_mut() {
        let Some(c) = c.as_table_mut() else { continue };
        if alias == in_cluster {
            c.clear();
        } else {
            c.insert(
                "kubeconfig".into(),
                toml::Value::String(format!("{KUBECONFIG_DIR}/{}", kubeconfig_key(alias))),
            );
        }
    }
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let mut ca = None;
    if let Some(aws) = site.get_mut("aws").and_then(toml::Value::as_table_mut)
        && let Some(bundle) = aws.get("ca_bundle").and_then(toml::Value::as_str)
    {
        let file = base.join(bundle);
        ca = Some(
            std::fs::read_to_string(&file).with_context(|| format!("cannot read the CA bundle {}", file.display()))?,
        );
        aws.insert(
            "ca_bundle".into(),
            toml::Value::String(format!("{SITE_DIR}/ca-bundle.pem")),
        );
    }
    let backup = site
        .entry("backup")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    if let Some(b) = backup.as_table_mut() {
        b.insert("dir".into(), toml::Value::String(format!("{STATE_DIR}/backup")));
        if b.remove("age_identity").is_some() {
            tracing::warn!(
                "[backup] age_identity is left out of the rendered site: the Job never reads the local copy back"
            );
        }
    }
    Ok((toml::to_string(&site)?, ca))
}

/// What each member owns now on the source, the same names on the in-cluster alias (restore
/// creates them there): the derived Roles name them.
async fn owned_now(
    config: &ferry::config::RunConfig,
    clients: &ferry::capabilities::Clients,
    in_cluster: &str,
) -> anyhow::Result<Ownership> {
    let source = ferry_dr::owned::resolve(config, clients, "source", false, None, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut objects = source.objects.clone();
    for o in &source.objects {
        objects.insert(OwnedObject {
            cluster: in_cluster.to_string(),
            ..o.clone()
        });
    }
    Ok(Ownership {
        owner: source.owner,
        objects,
    })
}

/// Runs `fleet render`.
pub async fn cmd_render(args: RenderArgs) -> anyhow::Result<ExitCode> {
    if args.fleet.guest.is_some() {
        eprintln!("error: a rendered Job runs the image's stock guest; --guest is for `ferry fleet migrate`");
        return Ok(exit(Exit::BadInput.code()));
    }
    let (site, members) = match args.fleet.members().await {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let (site_text, ca) = match pod_site(&args.fleet.site, &args.in_cluster) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(exit(Exit::BadInput.code()));
        }
    };
    let policy_text = match &args.fleet.policy {
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?),
        None => None,
    };
    // The RBAC the in-cluster identity needs for every member: the policy's grants there, with
    // each member's objects as owned now, and the runner's own reads and Lease.
    let identity = GuestIdentity {
        name: args
            .fleet
            .name
            .clone()
            .unwrap_or_else(|| ferry_dr::stock::GUEST_NAME.to_string()),
        sha256: String::new(),
    };
    let mut roles = Vec::new();
    // One client of the source for every member's reads (the members share its kubeconfig).
    let clients = ferry::capabilities::Clients::default();
    for m in &members {
        let config = site.for_hosted_cluster(&m.namespace, &m.name)?.run_config()?;
        let engine = match &policy_text {
            Some(text) => PolicyEngine::from_source(text, "--policy", &config.params, &identity)?,
            None => PolicyEngine::from_source(
                ferry_dr::stock::policy_text(),
                ferry_dr::stock::POLICY_ORIGIN,
                &config.params,
                &identity,
            )?,
        }
        .with_ownership(owned_now(&config, &clients, &args.in_cluster).await?);
        let derived = ferry::policy::rbac::merge(
            ferry::policy::rbac::derive(&engine),
            ferry_dr::owned::rbac(engine.params()),
        );
        roles = ferry::policy::rbac::merge(
            roles,
            derived.into_iter().filter(|r| r.cluster == args.in_cluster).collect(),
        );
    }
    // Kubernetes binds a Role only in a namespace that exists, and the migration creates each
    // hosted cluster's namespaces on the destination (its control-plane namespace must not
    // exist before restore): their rules go to the ClusterRole, still naming objects where the
    // policy does.
    let created: std::collections::BTreeSet<String> = members
        .iter()
        .flat_map(|m| [m.namespace.clone(), ferry::policy::hcp_namespace(&m.namespace, &m.name)])
        .collect();
    let roles = ferry::policy::rbac::merge(
        Vec::new(),
        roles
            .into_iter()
            .map(|mut r| {
                if r.namespace.as_ref().is_some_and(|ns| created.contains(ns)) {
                    r.namespace = None;
                }
                r
            })
            .collect(),
    );
    let mut docs = manifests(&args, &members, &site_text, ca.as_deref(), policy_text.as_deref());
    let origin = args.fleet.policy.as_ref().map_or_else(
        || ferry_dr::stock::POLICY_ORIGIN.to_string(),
        |p| p.display().to_string(),
    );
    for role in super::policy::rbac_manifests(&roles, &args.job_name, &origin) {
        let binding = binding_of(&role, &args);
        docs.push(role);
        docs.push(binding);
    }
    match args.fleet.output() {
        Output::Json => crate::output::print_json("fleet-render", json!({"items": docs}))?,
        Output::Text => {
            println!(
                "# ferry fleet render: {} hosted clusters, {} at a time, run on `{}`.\n\
                 # Before applying: the namespace {ns}, and the Secret {secret} in it with {keys}.\n\
                 # The other clusters' identities need their own RBAC: `ferry policy rbac --site SITE`.",
                members.len(),
                args.fleet.concurrency,
                args.in_cluster,
                ns = args.namespace,
                secret = args.kubeconfig_secret,
                keys = secret_keys(&site, &args.in_cluster, &members).join(", "),
            );
            for d in &docs {
                print!("---\n{}", serde_saphyr::to_string(d)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The keys the kubeconfig Secret must hold.
fn secret_keys(site: &SiteConfig, in_cluster: &str, members: &[Member]) -> Vec<String> {
    let mut keys = Vec::new();
    for (alias, present) in [
        ("source", site.clusters.source.is_some()),
        ("destination", site.clusters.destination.is_some()),
    ] {
        if present && alias != in_cluster {
            keys.push(kubeconfig_key(alias));
        }
    }
    if in_cluster != "hosted" {
        keys.extend(
            members
                .iter()
                .map(|m| format!("hosted.{}.{}.kubeconfig", m.namespace, m.name)),
        );
    }
    keys
}

/// The binding of a derived Role or ClusterRole to the Job's ServiceAccount.
fn binding_of(role: &Value, args: &RenderArgs) -> Value {
    let kind = role["kind"].as_str().unwrap_or("Role");
    let mut metadata = json!({"name": args.job_name});
    if let Some(ns) = role["metadata"]["namespace"].as_str() {
        metadata["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": format!("{kind}Binding"),
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": args.job_name},
        "subjects": [{"kind": "ServiceAccount", "name": args.job_name, "namespace": args.namespace}],
    })
}

/// The ServiceAccount, the ConfigMap and the Indexed Job.
fn manifests(args: &RenderArgs, members: &[Member], site: &str, ca: Option<&str>, policy: Option<&str>) -> Vec<Value> {
    let labels = json!({"app.kubernetes.io/name": "ferry", "app.kubernetes.io/instance": args.job_name});
    let mut sa = json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": args.job_name, "namespace": args.namespace, "labels": labels},
    });
    if let Some(arn) = &args.aws_role_arn {
        sa["metadata"]["annotations"] = json!({"eks.amazonaws.com/role-arn": arn});
    }
    let list: String = members.iter().map(|m| format!("{m}\n")).collect();
    let mut data = json!({"site.toml": site, "fleet.txt": list});
    if let Some(ca) = ca {
        data["ca-bundle.pem"] = json!(ca);
    }
    if let Some(p) = policy {
        data["policy.cedar"] = json!(p);
    }
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{}-site", args.job_name), "namespace": args.namespace, "labels": labels},
        "data": data,
    });
    let mut command = vec![
        "fleet".to_string(),
        "run-index".into(),
        "--site".into(),
        format!("{SITE_DIR}/site.toml"),
        "--list".into(),
        format!("{SITE_DIR}/fleet.txt"),
        "--audit-dir".into(),
        format!("{STATE_DIR}/audit"),
    ];
    if policy.is_some() {
        command.extend(["--policy".to_string(), format!("{SITE_DIR}/policy.cedar")]);
    }
    let mut env = vec![json!({"name": "XDG_CACHE_HOME", "value": format!("{STATE_DIR}/cache")})];
    let mut volumes = vec![
        json!({"name": "site", "configMap": {"name": format!("{}-site", args.job_name)}}),
        json!({"name": "kubeconfigs", "secret": {"secretName": args.kubeconfig_secret}}),
        json!({"name": "state", "emptyDir": {}}),
    ];
    let mut mounts = vec![
        json!({"name": "site", "mountPath": SITE_DIR, "readOnly": true}),
        json!({"name": "kubeconfigs", "mountPath": KUBECONFIG_DIR, "readOnly": true}),
        json!({"name": "state", "mountPath": STATE_DIR}),
    ];
    if let Some(secret) = &args.audit_key_secret {
        env.push(json!({"name": "FERRY_AUDIT_KEY_FILE", "value": format!("{AUDIT_KEY_DIR}/key")}));
        volumes.push(json!({"name": "audit-key", "secret": {"secretName": secret}}));
        mounts.push(json!({"name": "audit-key", "mountPath": AUDIT_KEY_DIR, "readOnly": true}));
    }
    let mut container = json!({
        "name": "ferry",
        "image": args.image,
        "args": command,
        "env": env,
        "volumeMounts": mounts,
        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
    });
    if let Some(secret) = &args.aws_credentials_secret {
        container["envFrom"] = json!([{"secretRef": {"name": secret}}]);
    }
    let completions = members.len();
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": args.job_name, "namespace": args.namespace, "labels": labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": completions,
            "parallelism": usize::from(args.fleet.concurrency).min(completions.max(1)),
            "backoffLimitPerIndex": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": args.job_name,
                    "restartPolicy": "Never",
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    });
    vec![sa, cm, job]
}

/// The hosted cluster at `index` of a rendered list (`path` names it in errors).
fn member_at(list: &str, path: &std::path::Path, index: usize) -> Result<Member, String> {
    let members: Vec<&str> = list.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let Some(line) = members.get(index) else {
        return Err(format!(
            "index {index} is past the fleet list {} ({} hosted clusters)",
            path.display(),
            members.len()
        ));
    };
    line.parse()
        .map_err(|e: ferry_dr::fleet::FleetError| format!("{}:{}: {e}", path.display(), index + 1))
}

/// Runs `fleet run-index`: the hosted cluster at `--index` of the list, as one migration.
pub async fn cmd_run_index(args: RunIndexArgs) -> anyhow::Result<ExitCode> {
    let bad = |e: String| {
        eprintln!("error: {e}");
        Ok(exit(Exit::BadInput.code()))
    };
    let list = match std::fs::read_to_string(&args.list) {
        Ok(l) => l,
        Err(e) => return bad(format!("cannot read the fleet list {}: {e}", args.list.display())),
    };
    let member = match member_at(&list, &args.list, args.index) {
        Ok(m) => m,
        Err(e) => return bad(e),
    };
    let site = match SiteConfig::load(&args.site) {
        Ok(s) => s,
        Err(e) => return bad(e.to_string()),
    };
    let audit_key = match super::audit::key(args.audit_key.as_deref()) {
        Ok(k) => k,
        Err(e) => return bad(e.to_string()),
    };
    eprintln!("ferry fleet run-index {}: {member}", args.index);
    let view = Arc::new(crate::fleet_view::Fleet::Lines);
    let opts = ferry_dr::phases::DrOptions {
        guest: super::dr::guest_choice(None, None, args.policy.as_ref()),
        audit_key,
        ..Default::default()
    };
    let fopts = FleetOptions {
        concurrency: 1,
        audit_dir: args.audit_dir.clone(),
        command: ferry_dr::phases::migrate_command(&args.site),
        args: Default::default(),
        view: Some(Arc::new(crate::fleet_view::View(view))),
    };
    let report = ferry_dr::fleet::migrate(&site, std::slice::from_ref(&member), &opts, &fopts).await;
    println!("{}", report.to_text());
    Ok(exit(report.exit_code()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    /// An index outside the list, or a line that is not NAMESPACE/NAME, is refused naming the
    /// list and the line.
    #[test]
    fn an_index_names_one_hosted_cluster_of_the_list() {
        let list = "clusters/a\n\nteam-b/db\nnot-a-member\n";
        let path = std::path::Path::new("/etc/ferry/site/fleet.txt");
        assert_eq!(member_at(list, path, 1).unwrap().to_string(), "team-b/db");
        let past = member_at(list, path, 3).unwrap_err();
        assert_eq!(
            past,
            "index 3 is past the fleet list /etc/ferry/site/fleet.txt (3 hosted clusters)"
        );
        let bad = member_at(list, path, 2).unwrap_err();
        assert!(
            bad.starts_with("/etc/ferry/site/fleet.txt:3: ") && bad.contains("NAMESPACE/NAME"),
            "{bad}"
        );
    }

    fn site_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\n").unwrap();
        (dir, path)
    }

    /// The pod's site: its own cluster in-cluster, the others from the Secret, the backups in
    /// its volume, the CA bundle beside the site; everything else as written.
    #[test]
    fn the_pods_site_points_at_its_mounts() {
        let (_dir, path) = site_file(
            "[clusters.source]\nkubeconfig = \"src.kubeconfig\"\ncontext = \"admin\"\n\
             [clusters.destination]\nkubeconfig = \"dst.kubeconfig\"\n\
             [clusters.hosted]\nkubeconfig = \"hosted/{namespace}/{name}.kubeconfig\"\n\
             [backup]\ndir = \"./backup\"\nbucket = \"b\"\nage_identity = \"backup.agekey\"\n\
             [aws]\nca_bundle = \"ca.pem\"\n",
        );
        let (text, ca) = pod_site(&path, "destination").unwrap();
        let site: toml::Table = toml::from_str(&text).unwrap();
        assert!(site["clusters"]["destination"].as_table().unwrap().is_empty());
        assert_eq!(
            site["clusters"]["source"]["kubeconfig"].as_str(),
            Some("/etc/ferry/kubeconfigs/source.kubeconfig")
        );
        assert_eq!(site["clusters"]["source"]["context"].as_str(), Some("admin"));
        assert_eq!(
            site["clusters"]["hosted"]["kubeconfig"].as_str(),
            Some("/etc/ferry/kubeconfigs/hosted.{namespace}.{name}.kubeconfig")
        );
        assert_eq!(site["backup"]["dir"].as_str(), Some("/var/lib/ferry/backup"));
        assert_eq!(site["backup"]["bucket"].as_str(), Some("b"));
        assert!(site["backup"].get("age_identity").is_none());
        assert_eq!(site["aws"]["ca_bundle"].as_str(), Some("/etc/ferry/site/ca-bundle.pem"));
        assert_eq!(ca.as_deref(), Some("-----BEGIN CERTIFICATE-----\n"));
    }

    /// A site the pod cannot run is refused with the reason.
    #[test]
    fn sites_a_job_cannot_run_are_refused() {
        let (_dir, path) = site_file("[clusters.source]\nkubeconfig = \"s\"\n");
        let e = format!("{:#}", pod_site(&path, "destination").unwrap_err());
        assert!(
            e.contains("--in-cluster `destination` is not one of the site's clusters (source)"),
            "{e}"
        );
        let (_dir, path) = site_file("[clusters.destination]\n[[hooks]]\nname = \"h\"\ncomponent = \"h.wasm\"\n");
        let e = format!("{:#}", pod_site(&path, "destination").unwrap_err());
        assert!(
            e.contains("the site has [[hooks]]") && e.contains("ferry fleet migrate"),
            "{e}"
        );
    }
}
