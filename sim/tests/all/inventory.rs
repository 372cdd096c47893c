//! The fidelity inventory (`sim/inventory.toml`): every object HyperShift's installer puts on a
//! management cluster, every controller the DR path meets and every annotation they act on,
//! each `modelled` (with the tests that show it), `refused` (by the stock guest's preflight),
//! `not-relevant` or a `gap`, with the reason. These tests keep it honest: rows are well formed,
//! the tests they name exist, and every object `install::install` writes has a row.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use ferry_sim::hypershift::install::{self, ExternalDnsInstall, InstallOptions};
use ferry_sim::kube::crd::CrdSource;
use ferry_sim::kube::registry::{self, Registry};
use ferry_sim::{ListOptions, Store, WriteOptions};

use crate::support;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Status {
    Modelled,
    Refused,
    NotRelevant,
    Gap,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Modelled => "modelled",
            Status::Refused => "refused",
            Status::NotRelevant => "not-relevant",
            Status::Gap => "gap",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inventory {
    installer: Vec<InstallerRow>,
    controller: Vec<ControllerRow>,
    annotation: Vec<AnnotationRow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallerRow {
    kind: String,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    upstream: String,
    behaviour: String,
    status: Status,
    #[serde(default)]
    tests: Vec<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControllerRow {
    component: String,
    name: String,
    upstream: String,
    reads_writes: String,
    status: Status,
    #[serde(default)]
    tests: Vec<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnnotationRow {
    key: String,
    on: String,
    acted_on_by: String,
    upstream: String,
    status: Status,
    #[serde(default)]
    tests: Vec<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

/// The controllers a `[[controller]]` row may belong to.
const COMPONENTS: &[&str] = &[
    "hypershift-operator",
    "control-plane-operator",
    "hosted-cluster-config-operator",
    "cluster-api",
    "capa",
    "external-dns",
    "kube-apiserver",
    "kubelet",
    "kube-controller-manager",
];

/// What every row has, whatever its section.
struct Row<'a> {
    what: String,
    required: Vec<(&'static str, &'a str)>,
    upstream: &'a str,
    status: Status,
    tests: &'a [String],
    reason: Option<&'a str>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the sim crate sits in the workspace")
        .to_path_buf()
}

fn inventory_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory.toml")
}

fn load() -> Inventory {
    let path = inventory_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{} is malformed: {e}", path.display()))
}

fn rows(inv: &Inventory) -> Vec<Row<'_>> {
    let mut out = Vec::new();
    for r in &inv.installer {
        let ns = r.namespace.as_deref().map(|n| format!("{n}/")).unwrap_or_default();
        out.push(Row {
            what: format!("[[installer]] {} {ns}{}", r.kind, r.name),
            required: vec![("kind", &r.kind), ("name", &r.name), ("behaviour", &r.behaviour)],
            upstream: &r.upstream,
            status: r.status,
            tests: &r.tests,
            reason: r.reason.as_deref(),
        });
    }
    for r in &inv.controller {
        out.push(Row {
            what: format!("[[controller]] {} \"{}\"", r.component, r.name),
            required: vec![
                ("component", &r.component),
                ("name", &r.name),
                ("reads_writes", &r.reads_writes),
            ],
            upstream: &r.upstream,
            status: r.status,
            tests: &r.tests,
            reason: r.reason.as_deref(),
        });
    }
    for r in &inv.annotation {
        out.push(Row {
            what: format!("[[annotation]] \"{}\" on {}", r.key, r.on),
            required: vec![("key", &r.key), ("on", &r.on), ("acted_on_by", &r.acted_on_by)],
            upstream: &r.upstream,
            status: r.status,
            tests: &r.tests,
            reason: r.reason.as_deref(),
        });
    }
    out
}

/// Whether `<file>::<fn>` names a function that exists: the file, relative to the workspace
/// root, contains `fn <name>(`. Files are read once.
fn test_exists(cache: &mut HashMap<String, Option<String>>, test: &str) -> Result<(), String> {
    let Some((file, name)) = test.rsplit_once("::") else {
        return Err(format!("`{test}` is not \"<file>::<fn name>\""));
    };
    if file.is_empty() || name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`{test}` is not \"<file>::<fn name>\""));
    }
    let text = cache
        .entry(file.to_string())
        .or_insert_with(|| std::fs::read_to_string(workspace_root().join(file)).ok());
    match text {
        None => Err(format!("names {test}, but {file} does not exist")),
        Some(t) if !t.contains(&format!("fn {name}(")) => Err(format!("names {test}, but {file} has no `fn {name}(`")),
        Some(_) => Ok(()),
    }
}

/// Every row is well formed: its fields are set, `upstream` is "file: function", a modelled row
/// names tests that exist, every other row says why. Prints the counts per status.
#[test]
fn every_row_is_well_formed_and_names_tests_that_exist() {
    let inv = load();
    let mut problems = Vec::new();
    let mut cache = HashMap::new();
    for c in &inv.controller {
        if !COMPONENTS.contains(&c.component.as_str()) {
            problems.push(format!(
                "[[controller]] \"{}\": unknown component `{}` (one of {})",
                c.name,
                c.component,
                COMPONENTS.join(", ")
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for r in &inv.installer {
        let key = (r.kind.clone(), r.namespace.clone().unwrap_or_default(), r.name.clone());
        if !seen.insert(key) {
            problems.push(format!(
                "[[installer]] {} {}/{} appears twice",
                r.kind,
                r.namespace.as_deref().unwrap_or(""),
                r.name
            ));
        }
    }
    for row in rows(&inv) {
        for (field, value) in &row.required {
            if value.trim().is_empty() {
                problems.push(format!("{}: `{field}` is empty", row.what));
            }
        }
        let upstream_ok = row.upstream.split("; ").all(|seg| {
            seg.split_once(": ")
                .is_some_and(|(f, rest)| !f.trim().is_empty() && !rest.trim().is_empty())
        });
        if !upstream_ok {
            problems.push(format!(
                "{}: `upstream` is not \"file: function\" (\"; \" between several): {:?}",
                row.what, row.upstream
            ));
        }
        let reason = row.reason.map(str::trim).filter(|r| !r.is_empty());
        match row.status {
            Status::Modelled if row.tests.is_empty() => {
                problems.push(format!("{}: modelled, but names no test", row.what));
            }
            Status::Refused | Status::NotRelevant | Status::Gap if reason.is_none() => {
                problems.push(format!("{}: {}, but gives no reason", row.what, row.status.as_str()));
            }
            _ => {}
        }
        for t in row.tests {
            if let Err(e) = test_exists(&mut cache, t) {
                problems.push(format!("{}: {e}", row.what));
            }
        }
    }
    let mut counts: BTreeMap<(&str, Status), usize> = BTreeMap::new();
    for r in &inv.installer {
        *counts.entry(("installer", r.status)).or_default() += 1;
    }
    for r in &inv.controller {
        *counts.entry(("controller", r.status)).or_default() += 1;
    }
    for r in &inv.annotation {
        *counts.entry(("annotation", r.status)).or_default() += 1;
    }
    for section in ["installer", "controller", "annotation"] {
        let line: Vec<String> = [Status::Modelled, Status::Refused, Status::NotRelevant, Status::Gap]
            .iter()
            .map(|s| format!("{} {}", counts.get(&(section, *s)).copied().unwrap_or(0), s.as_str()))
            .collect();
        eprintln!("inventory {section}: {}", line.join(", "));
    }
    assert!(
        problems.is_empty(),
        "{} has {} problem(s):\n  - {}",
        inventory_path().display(),
        problems.len(),
        problems.join("\n  - ")
    );
}

/// The most complete install the simulator writes (MCE's webhooks, external-dns) on a store
/// serving HyperShift's upstream CRDs, so that `setupCRDs` has CRDs to convert.
fn installed() -> Store {
    let store = Store::new(Registry::builtin(), 1000);
    let crds = CrdSource::Dir(support::upstream_crds())
        .load()
        .expect("the upstream CRDs load");
    for (origin, crd) in crds {
        store
            .create(
                &registry::CUSTOM_RESOURCE_DEFINITION,
                None,
                crd,
                &WriteOptions::default(),
            )
            .unwrap_or_else(|e| panic!("cannot create the CRD of {origin}: {e}"));
    }
    let mut opts = InstallOptions::mce("quay.io/hypershift/hypershift-operator:3ee9615");
    opts.external_dns = Some(ExternalDnsInstall {
        domain_filter: "guest.example.com".into(),
        txt_owner_id: "owner-a".into(),
        interval: "1m".into(),
    });
    install::install(&store, &opts).expect("install");
    store
}

/// Every object `install::install` leaves in a fresh store (and every CRD it served) has an
/// `[[installer]]` row of its kind, namespace and name.
#[test]
fn every_object_the_installer_writes_has_a_row() {
    let inv = load();
    let rows: BTreeSet<(String, String, String)> = inv
        .installer
        .iter()
        .map(|r| (r.kind.clone(), r.namespace.clone().unwrap_or_default(), r.name.clone()))
        .collect();
    let store = installed();
    let mut written = BTreeSet::new();
    let mut listed = BTreeSet::new();
    for kind in store.registry().kinds() {
        if !kind.allows("list") || !listed.insert((kind.group.clone(), kind.plural.clone())) {
            continue;
        }
        let objects = store
            .list(kind, None, &ListOptions::default())
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", kind.qualified_resource()));
        for o in objects.items {
            let s = |p: &str| {
                o.pointer(p)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            written.insert((kind.kind.clone(), s("/metadata/namespace"), s("/metadata/name")));
        }
    }
    assert!(
        written.iter().any(|(k, _, _)| k == "Deployment"),
        "the install wrote no Deployment: {written:?}"
    );
    let missing: Vec<String> = written
        .difference(&rows)
        .map(|(kind, ns, name)| {
            let at = if ns.is_empty() {
                name.clone()
            } else {
                format!("{ns}/{name}")
            };
            format!("{kind} {at}")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "install::install wrote {} object(s) with no [[installer]] row in {}:\n  - {}",
        missing.len(),
        inventory_path().display(),
        missing.join("\n  - ")
    );
    eprintln!(
        "inventory: {} objects written by install::install, each with a row",
        written.len()
    );
}
