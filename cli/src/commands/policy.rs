//! `ferry policy check|explain|test`: a policy read without running a guest.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use ferry::policy::{
    Action, CallContext, Decision, GuestIdentity, OwnedObject, Ownership, PolicyEngine, ResourceRef, request,
};
use ferry::runtime::{Exit, Runtime};
use ferry_dr::site::SiteConfig;

use super::run::load_config;
use crate::exit;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy against the schema and, with --component, against a
    /// component's imports.
    Check(PolicyArgs),
    /// Say in plain words what a guest may do under a policy.
    Explain(PolicyArgs),
    /// Ask whether a call would be allowed, and which policies decide it.
    ///
    /// Exit code 0 when every answer is the expected one (a lone request: allowed),
    /// 1 otherwise. Example: `ferry policy test --site site.toml k8s:delete source
    /// Namespace clusters`. Requests are written as below.
    #[command(after_help = request::FORMS)]
    Test(TestArgs),
    /// Derive the Kubernetes Roles and ClusterRoles a policy's grants need, per cluster.
    ///
    /// Every call the policy allows on the clusters, namespaces, kinds and names it mentions
    /// (and the --owned objects) becomes the RBAC verb the API server checks for it, with
    /// `resourceNames` where the policy grants named objects only. One source of least
    /// privilege for both layers. With --site, what the DR runner does on its own account
    /// (the ownership resolver's lists, its Lease) is added. Manifests are YAML, one Role per
    /// cluster and namespace, a ClusterRole per cluster; each names its cluster in the
    /// `ferry.dev/cluster` annotation.
    Rbac(RbacArgs),
}

/// The policy a request is asked of: the file (or the stock one), its parameters, the
/// principal and what the run's owner owns.
#[derive(clap::Args)]
pub struct EngineArgs {
    /// The Cedar policy file (default with --site: the site's stock policy).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// A DR site config: its hosted cluster, bucket and zone become the parameters,
    /// and the guest is the stock `hosted-cluster-dr` unless --name says otherwise.
    #[arg(long, conflicts_with = "config")]
    site: Option<PathBuf>,
    /// The run config whose [params] link the templates.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A parameter (repeatable; wins over --site and --config).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// The guest's name, i.e. the principal (default: `guest`, or the stock guest with --site).
    #[arg(long)]
    name: Option<String>,
    /// An object the run's owner owns, as the DR runner resolves before each phase
    /// (repeatable): `CLUSTER KIND NAMESPACE/NAME`, e.g. `source Secret clusters/prod-a-pull`.
    /// The owner is the `hc_name` parameter; grants `in Ferry::Owner` reach only these.
    #[arg(long = "owned", value_name = "CLUSTER KIND NAMESPACE/NAME")]
    owned: Vec<String>,
}

#[derive(clap::Args)]
pub struct TestArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Ask as a plan run would (`context.plan`).
    #[arg(long)]
    plan: bool,
    /// Ask as a server-side dry run would (`context.dryRun`).
    #[arg(long)]
    dry_run: bool,
    /// The phase (`context.phase`).
    #[arg(long, default_value = "")]
    phase: String,
    /// A field a patch sets (`context.patchFields`, repeatable), e.g. `metadata.annotations`.
    #[arg(long = "patch-field", value_name = "FIELD")]
    patch_fields: Vec<String>,
    /// The lifetime an `objects:presign` asks for (`context.presignSeconds`).
    #[arg(long, value_name = "SECONDS")]
    presign_seconds: Option<u64>,
    /// A file of expected answers, one `allow REQUEST` or `deny REQUEST` per line
    /// (`#` starts a comment): a policy's own test suite. An `owned CLUSTER KIND
    /// NAMESPACE/NAME` line declares an object as --owned does.
    #[arg(long, conflicts_with = "request")]
    cases: Option<PathBuf>,
    /// One request, e.g. `k8s:delete source Namespace clusters`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present = "cases"
    )]
    request: Vec<String>,
}

#[derive(clap::Args)]
pub struct RbacArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// The name of the Roles and ClusterRoles (default: `ferry-<guest>`).
    #[arg(long)]
    role_name: Option<String>,
    /// YAML manifests (for `kubectl apply -f -`), or one JSON document.
    #[arg(long, value_enum, default_value_t = crate::output::Output::Text)]
    output: crate::output::Output,
}

#[derive(clap::Args)]
pub struct PolicyArgs {
    /// The Cedar policy file.
    #[arg(long)]
    policy: PathBuf,
    /// A component whose imports to check.
    #[arg(long)]
    component: Option<PathBuf>,
    /// The run config whose [params] link the templates.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A parameter (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// The guest's name (default: the component's file stem, or `guest`).
    #[arg(long)]
    name: Option<String>,
}

fn guest_identity(
    args: &PolicyArgs,
    runtime: &Runtime,
) -> anyhow::Result<(GuestIdentity, Option<ferry::runtime::Guest>)> {
    match &args.component {
        Some(path) => {
            let guest = runtime.load_file(path, args.name.as_deref())?;
            Ok((guest.identity.clone(), Some(guest)))
        }
        None => Ok((
            GuestIdentity {
                name: args.name.clone().unwrap_or_else(|| "guest".into()),
                sha256: String::new(),
            },
            None,
        )),
    }
}

/// Runs the command.
pub fn cmd_policy(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    let (args, explain) = match cmd {
        PolicyCommand::Check(a) => (a, false),
        PolicyCommand::Explain(a) => (a, true),
        PolicyCommand::Test(a) => return cmd_test(a),
        PolicyCommand::Rbac(a) => return cmd_rbac(a),
    };
    let config = load_config(args.config.as_ref(), &args.params)?;
    let runtime = Runtime::new(ferry::runtime::cache::default_dir())?;
    let (identity, guest) = guest_identity(&args, &runtime)?;
    let policy = match PolicyEngine::load(&args.policy, &config.params, &identity) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit(Exit::BadInput.code()));
        }
    };
    if explain {
        println!("{}", policy.explain());
        return Ok(ExitCode::SUCCESS);
    }
    println!("policy {}: valid against the ferry schema", args.policy.display());
    if let Some(guest) = guest {
        let imports = guest.imports(runtime.engine());
        match runtime.check_imports(&guest, &policy) {
            Ok(()) => println!(
                "component {}: all {} imports are provided and granted",
                identity.name,
                imports.len()
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(exit(Exit::ImportsRefused.code()));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The engine `ferry policy test` asks: the policy linked with the parameters a
/// run would have, for the principal the run would have, with `owned` (`--owned` and a
/// cases file's `owned` lines) as what the run's owner owns.
fn test_engine(args: &EngineArgs, owned: &[String]) -> anyhow::Result<PolicyEngine> {
    let mut config = match &args.site {
        Some(path) => SiteConfig::load(path)?.run_config()?,
        None => load_config(args.config.as_ref(), &[])?,
    };
    config.apply_params(&args.params)?;
    let identity = GuestIdentity {
        name: args.name.clone().unwrap_or_else(|| match args.site {
            Some(_) => ferry_dr::stock::GUEST_NAME.to_string(),
            None => "guest".to_string(),
        }),
        sha256: String::new(),
    };
    let ownership = ownership(owned, config.params.get("hc_name"))?;
    Ok(match (&args.policy, &args.site) {
        (Some(path), _) => PolicyEngine::load(path, &config.params, &identity)?,
        (None, Some(_)) => PolicyEngine::from_source(
            ferry_dr::stock::policy_text(),
            ferry_dr::stock::POLICY_ORIGIN,
            &config.params,
            &identity,
        )?,
        (None, None) => anyhow::bail!("say which policy to test: --policy FILE, or --site FILE for the stock policy"),
    }
    .with_ownership(ownership))
}

/// The `--owned` objects, owned by hosted cluster `owner`.
fn ownership(owned: &[String], owner: Option<&String>) -> anyhow::Result<Ownership> {
    let mut out = Ownership::default();
    if owned.is_empty() {
        return Ok(out);
    }
    let Some(owner) = owner.filter(|o| !o.is_empty()) else {
        anyhow::bail!("--owned needs the owner: set the hc_name parameter (--site, or --param hc_name=NAME)");
    };
    out.owner = owner.clone();
    for o in owned {
        let bad = || {
            anyhow::anyhow!(
                "--owned `{o}`: write CLUSTER KIND NAMESPACE/NAME, e.g. `source Secret clusters/prod-a-pull`"
            )
        };
        match request::parse(&format!("k8s:get {o}")).map_err(|_| bad())? {
            (
                _,
                ResourceRef::K8s {
                    cluster,
                    group,
                    kind,
                    namespace: Some(namespace),
                    name: Some(name),
                    ..
                },
            ) => {
                out.objects.insert(OwnedObject {
                    cluster,
                    group,
                    kind,
                    namespace,
                    name,
                });
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// One answer, as a reviewer reads it.
fn answer_line(decision: &Decision, action: Action, resource: &ResourceRef) -> String {
    let verdict = if decision.allowed { "allow" } else { "deny" };
    format!("{verdict}: {}", decision.denial_reason(action, resource))
}

/// A cases file's lines that are cases (comments and blanks dropped), by line number, and
/// the objects its `owned CLUSTER KIND NAMESPACE/NAME` lines declare.
fn case_lines(text: &str) -> (Vec<(usize, &str)>, Vec<String>) {
    let mut cases = Vec::new();
    let mut owned = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        match line.strip_prefix("owned ") {
            Some(o) => owned.push(o.trim().to_string()),
            None if line.is_empty() => {}
            None => cases.push((n + 1, line)),
        }
    }
    (cases, owned)
}

fn cmd_test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let text = match &args.cases {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
        None => String::new(),
    };
    let (cases, mut owned) = case_lines(&text);
    owned.extend(args.engine.owned.iter().cloned());
    let engine = match test_engine(&args.engine, &owned) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit(Exit::BadInput.code()));
        }
    };
    let ctx = CallContext {
        plan: args.plan,
        dry_run: args.dry_run,
        phase: args.phase.clone(),
        patch_fields: (!args.patch_fields.is_empty()).then(|| args.patch_fields.clone()),
        presign_seconds: args.presign_seconds,
    };
    let Some(path) = &args.cases else {
        let line = args.request.join(" ");
        let (action, resource) = match request::parse(&line) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(exit(Exit::BadInput.code()));
            }
        };
        let decision = engine.authorize(action, &resource, &ctx);
        println!("{}", answer_line(&decision, action, &resource));
        return Ok(if decision.allowed {
            ExitCode::SUCCESS
        } else {
            exit(Exit::GuestFailed.code())
        });
    };
    let (mut passed, mut failed) = (0, 0);
    for (n, line) in cases {
        let at = format!("{}:{n}", path.display());
        let (expect, req) = match line.split_once(char::is_whitespace) {
            Some(("allow", req)) => (true, req),
            Some(("deny", req)) => (false, req),
            _ => {
                eprintln!("error: {at}: a case starts with `allow` or `deny`, then the request");
                return Ok(exit(Exit::BadInput.code()));
            }
        };
        let (action, resource) = match request::parse(req) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {at}: {e}");
                return Ok(exit(Exit::BadInput.code()));
            }
        };
        let decision = engine.authorize(action, &resource, &ctx);
        if decision.allowed == expect {
            passed += 1;
            println!("ok    {req}");
        } else {
            failed += 1;
            println!(
                "FAIL  {req}\n      expected {}, got {}",
                if expect { "allow" } else { "deny" },
                answer_line(&decision, action, &resource)
            );
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        exit(Exit::GuestFailed.code())
    })
}

/// The Kubernetes objects of derived roles: a ClusterRole per cluster, a Role per cluster and
/// namespace, each naming its cluster alias.
pub fn rbac_manifests(roles: &[ferry::policy::rbac::DerivedRole], name: &str, origin: &str) -> Vec<serde_json::Value> {
    roles
        .iter()
        .map(|r| {
            let mut metadata = serde_json::json!({
                "name": name,
                "annotations": {
                    "ferry.dev/cluster": r.cluster,
                    "ferry.dev/derived-from": origin,
                },
            });
            let kind = match &r.namespace {
                Some(ns) => {
                    metadata["namespace"] = serde_json::json!(ns);
                    "Role"
                }
                None => "ClusterRole",
            };
            serde_json::json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": kind,
                "metadata": metadata,
                "rules": r.rules,
            })
        })
        .collect()
}

fn cmd_rbac(args: RbacArgs) -> anyhow::Result<ExitCode> {
    let engine = match test_engine(&args.engine, &args.engine.owned) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit(Exit::BadInput.code()));
        }
    };
    let mut roles = ferry::policy::rbac::derive(&engine);
    if args.engine.site.is_some() {
        // The DR runner's own reads and its Lease, which no policy decides.
        roles = ferry::policy::rbac::merge(roles, ferry_dr::owned::rbac(engine.params()));
    }
    let name = args
        .role_name
        .clone()
        .unwrap_or_else(|| format!("ferry-{}", engine.guest().name));
    let manifests = rbac_manifests(&roles, &name, engine.origin());
    match args.output {
        crate::output::Output::Json => crate::output::print_json("rbac", serde_json::json!({ "items": manifests }))?,
        crate::output::Output::Text => {
            let mut by_cluster = String::new();
            for (m, r) in manifests.iter().zip(&roles) {
                by_cluster.push_str(&format!("---\n# apply to cluster `{}`\n", r.cluster));
                by_cluster.push_str(&serde_saphyr::to_string(m)?);
            }
            print!("{by_cluster}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
