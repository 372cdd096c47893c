//! Approved plans: apply exactly what was reviewed.
//!
//! A plan run (`--plan`) changes nothing; with a [`PlanBook`] recording, every mutation the
//! policy allowed is written down as the host saw it (the action, its target, a digest of its
//! body or patch), with the reads that decided it (resourceVersions) and the run's inputs. The
//! file is reviewed (`ferry plan show`), approved with the audit key (`ferry plan approve`), and
//! an apply run (`--apply FILE`) checks every mutation against it before any I/O: one the plan
//! does not hold is denied as a policy denial is, naming the plan.
//!
//! Values no plan can know are the only things that may differ, from a short fixed list
//! ([`RUN_DETERMINED`]): a presigned URL and a time read from the host's clock are recorded as
//! `⟨presigned-url⟩` and `⟨run-stamp⟩` wherever a mutation carries them (the host handed them
//! out, so it knows them), and a file named by the run's stamp (a backup's) is checked by its
//! name, its content being what the cluster holds when it runs. Apply compares the rest byte
//! for byte.

mod book;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::AuditKey;

pub use book::{PlanBook, Unplanned};

/// The schema of a plan file; raised when a field changes meaning.
pub const SCHEMA: &str = "ferry.plan/v1";

/// The values a plan may leave to the run, and why each cannot be known before it.
pub const RUN_DETERMINED: &[(&str, &str)] = &[
    (
        "presigned-url",
        "a presigned URL carries its own signature and expiry, made when it is asked for",
    ),
    (
        "run-stamp",
        "a time the run read from the host's clock (or a URL's expiry), as the SDK writes it: a backup id, a time noted in an annotation",
    ),
    (
        "read-version",
        "a resourceVersion a patch carries as its precondition: the version the run read, which its own earlier writes move on",
    ),
    (
        "artifact-content",
        "the content of a file the run names by its run stamp (a backup's manifests, snapshot and index): what the cluster holds when it runs",
    ),
];

/// Why a plan file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file cannot be read or parsed.
    #[error("cannot read the plan {path}: {why}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// Another schema (another ferry).
    #[error("the plan {path} has schema `{found}`; this ferry reads `{SCHEMA}`")]
    Schema {
        /// The file.
        path: PathBuf,
        /// The schema it names.
        found: String,
    },
    /// Never approved.
    #[error(
        "the plan {path} is not approved: a reviewer runs `ferry plan approve {path} --key KEY` after `ferry plan show {path}`"
    )]
    NotApproved {
        /// The file.
        path: PathBuf,
    },
    /// Approved, but not with the key given.
    #[error(
        "the plan {path} was approved with key {approved_with}, not with the key given ({given}): it was not approved here"
    )]
    OtherKey {
        /// The file.
        path: PathBuf,
        /// The approval's key id.
        approved_with: String,
        /// The given key's id.
        given: String,
    },
    /// The content does not match its approval.
    #[error(
        "the plan {path} changed after it was approved (its approval does not match its content): it is refused; make a new plan and have it approved"
    )]
    Tampered {
        /// The file.
        path: PathBuf,
    },
    /// Apply needs the key to check the approval.
    #[error(
        "--apply needs the key the plan was approved with, to check the approval: give --audit-key or set FERRY_AUDIT_KEY_FILE"
    )]
    NoKey,
    /// The cluster changed since the plan was made: objects it read are new or gone.
    #[error(
        "the cluster changed since the plan {path} was made; it is refused before anything runs:\n{}\nMake a new plan (--plan --plan-out FILE) and have it approved",
        .changes.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n")
    )]
    Stale {
        /// The file.
        path: PathBuf,
        /// One line per object that is new or gone.
        changes: Vec<String>,
    },
    /// The run is not the one planned.
    #[error("the plan {path} was made for another run; it is refused before anything runs:\n{}", .differences.join("\n"))]
    OtherRun {
        /// The file.
        path: PathBuf,
        /// One line per input that differs.
        differences: Vec<String>,
    },
}

/// A plan: the run's inputs, the mutations it would make and the reads that decided them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    /// [`SCHEMA`].
    pub schema: String,
    /// What the run was: apply refuses any other.
    pub inputs: Inputs,
    /// Every mutation, in the order the plan run made it.
    pub mutations: Vec<Entry>,
    /// The Kubernetes reads of the plan run, first read of each target.
    pub reads: Vec<Read>,
    /// The approval, once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// The inputs of a run: a plan applies only to the same guest, policy, parameters and config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// The ferry that made the plan.
    pub ferry_version: String,
    /// The guest's name (its policy principal).
    pub guest: String,
    /// The guest component's SHA-256.
    pub guest_sha256: String,
    /// The policy text's SHA-256.
    pub policy_sha256: String,
    /// The config (run config or site) text's SHA-256, when it came from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_sha256: Option<String>,
    /// The phase.
    pub phase: String,
    /// The phase's arguments.
    pub args: BTreeMap<String, String>,
    /// The run's parameters (config and `--param`).
    pub params: BTreeMap<String, String>,
    /// When the plan was made (not compared: information for the reviewer).
    pub planned_at: String,
}

/// One mutation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The policy action (`k8s:patch`, `objects:put`, `dns:change`, `workspace:write`, …).
    pub action: String,
    /// What it acts on, as the audit trail names it (cluster alias, apiVersion, kind,
    /// namespace and name; bucket and key; zone, type and name; path).
    pub target: String,
    /// What it does: the change's own words (`merge patch`, `replicas 0`, `UPSERT 300 …`).
    pub change: String,
    /// SHA-256 of the body, patch or data, with run-determined values as `⟨name⟩`.
    pub digest: String,
    /// The run-determined values it carries, by name ([`RUN_DETERMINED`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_determined: Vec<String>,
}

/// A Kubernetes read that decided the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Read {
    /// The object (or, for a list, the kind and namespace) read, as the audit trail names it.
    pub target: String,
    /// What apply reads again before it starts.
    pub query: Query,
    /// The object's resourceVersion; `None`: it did not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// For a list: each item's name and resourceVersion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<BTreeMap<String, String>>,
}

/// A Kubernetes read as the guest made it: one object (`name`), or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// The cluster alias.
    pub cluster: String,
    /// `group/version` (or `v1`).
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// The namespace, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's name; `None`: a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A list's label selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// A list's field selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_selector: Option<String>,
}

/// Kinds whose objects come and go with their controllers (a restarted pod, an event, a node
/// that joins or is replaced with its machine): the plan's reads of them are checks, not what
/// it changes, and are not compared. What a plan would change there is still held mutation by
/// mutation.
pub const EPHEMERAL_KINDS: &[&str] = &["Pod", "Node", "Event", "Lease", "EndpointSlice", "Endpoints"];

impl Read {
    /// How the cluster differs now (`now`, the same query read again) from this read: objects
    /// that are new or gone, the only changes that make a plan stale (content changes are
    /// checked mutation by mutation).
    pub fn changes(&self, now: &Read) -> Vec<String> {
        let mut out = Vec::new();
        if EPHEMERAL_KINDS.contains(&self.query.kind.as_str()) {
            return out;
        }
        match (&self.items, &now.items) {
            (Some(before), Some(after)) => {
                let item = |name: &str| self.target.replace("/*", &format!("/{name}"));
                for name in after.keys().filter(|n| !before.contains_key(*n)) {
                    out.push(format!("{} is new", item(name)));
                }
                for name in before.keys().filter(|n| !after.contains_key(*n)) {
                    out.push(format!("{} is gone", item(name)));
                }
            }
            _ => match (&self.resource_version, &now.resource_version) {
                (None, Some(_)) => out.push(format!("{} exists now", self.target)),
                (Some(_), None) => out.push(format!("{} is gone", self.target)),
                _ => {}
            },
        }
        out
    }
}

/// A reviewer's approval: an HMAC with the audit key over the plan's canonical text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The key's id (never the key).
    pub key_id: String,
    /// Who approved, as they said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When.
    pub approved_at: String,
    /// HMAC-SHA256 over the canonical plan and the fields above.
    pub mac: String,
}

/// A plan whose approval was checked with the key given: the only kind apply takes.
#[derive(Debug, Clone)]
pub struct ApprovedPlan {
    /// The plan.
    pub plan: PlanFile,
    /// Where it came from (named in denials).
    pub path: PathBuf,
    /// A short id of its content, named in denials and the trail.
    pub id: String,
}

impl PlanFile {
    /// A new, empty plan of `inputs`.
    pub fn new(inputs: Inputs) -> Self {
        PlanFile {
            schema: SCHEMA.into(),
            inputs,
            mutations: Vec::new(),
            reads: Vec::new(),
            approval: None,
        }
    }

    /// Reads a plan file.
    pub fn load(path: &Path) -> Result<Self, PlanError> {
        let unreadable = |why: String| PlanError::Unreadable {
            path: path.to_path_buf(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
        let found = value.get("schema").and_then(|s| s.as_str()).unwrap_or_default();
        if found != SCHEMA {
            return Err(PlanError::Schema {
                path: path.to_path_buf(),
                found: found.to_string(),
            });
        }
        serde_json::from_value(value).map_err(|e| unreadable(e.to_string()))
    }

    /// Writes it, pretty-printed (one field per line diffs well).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(path, text)
    }

    /// The canonical text the approval covers: everything but the approval.
    fn canonical(&self) -> String {
        let mut bare = self.clone();
        bare.approval = None;
        serde_json::to_string(&bare).unwrap_or_default()
    }

    /// A short id of the content (what the approval covers).
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.canonical().as_bytes())[..6])
    }

    /// Approves it with `key`, replacing any approval before.
    pub fn approve(&mut self, key: &AuditKey, by: Option<String>, now: String) {
        let canonical = self.canonical();
        let by_text = by.clone().unwrap_or_default();
        let mac = key.plan_mac(&[&canonical, &key.id(), &by_text, &now]);
        self.approval = Some(Approval {
            key_id: key.id(),
            by,
            approved_at: now,
            mac,
        });
    }

    /// Loads a plan and checks its approval with `key`: what `--apply` starts from.
    pub fn load_approved(path: &Path, key: Option<&AuditKey>) -> Result<ApprovedPlan, PlanError> {
        let plan = Self::load(path)?;
        let Some(approval) = &plan.approval else {
            return Err(PlanError::NotApproved {
                path: path.to_path_buf(),
            });
        };
        let key = key.ok_or(PlanError::NoKey)?;
        if approval.key_id != key.id() {
            return Err(PlanError::OtherKey {
                path: path.to_path_buf(),
                approved_with: approval.key_id.clone(),
                given: key.id(),
            });
        }
        let by = approval.by.clone().unwrap_or_default();
        if !key.verifies_plan(
            &[&plan.canonical(), &approval.key_id, &by, &approval.approved_at],
            &approval.mac,
        ) {
            return Err(PlanError::Tampered {
                path: path.to_path_buf(),
            });
        }
        let id = plan.id();
        Ok(ApprovedPlan {
            plan,
            path: path.to_path_buf(),
            id,
        })
    }

    /// The plan in plain words, for a reviewer.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let i = &self.inputs;
        let mut out = String::new();
        let _ = writeln!(out, "Plan {} of guest `{}`, phase `{}`", self.id(), i.guest, i.phase);
        let _ = writeln!(out, "  made {} by ferry {}", i.planned_at, i.ferry_version);
        let _ = writeln!(out, "  guest sha256  {}", i.guest_sha256);
        let _ = writeln!(out, "  policy sha256 {}", i.policy_sha256);
        if let Some(c) = &i.config_sha256 {
            let _ = writeln!(out, "  config sha256 {c}");
        }
        for (what, map) in [("arguments", &i.args), ("parameters", &i.params)] {
            if !map.is_empty() {
                let list: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = writeln!(out, "  {what}: {}", list.join(", "));
            }
        }
        match &self.approval {
            Some(a) => {
                let by = a.by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default();
                let _ = writeln!(out, "  approved{by} at {} with key {}", a.approved_at, a.key_id);
            }
            None => {
                let _ = writeln!(out, "  NOT APPROVED");
            }
        }
        let _ = writeln!(out);
        if self.mutations.is_empty() {
            let _ = writeln!(out, "It changes nothing.");
        } else {
            let _ = writeln!(out, "It changes {} thing(s), in this order:", self.mutations.len());
        }
        for (n, e) in self.mutations.iter().enumerate() {
            let _ = writeln!(out, "  {:>3}. {:<16} {}", n + 1, e.action, e.target);
            let _ = writeln!(out, "       {} (sha256 {})", e.change, short(&e.digest));
            if !e.run_determined.is_empty() {
                let _ = writeln!(out, "       known only when it runs: {}", e.run_determined.join(", "));
            }
        }
        if !self.reads.is_empty() {
            let _ = writeln!(
                out,
                "\nDecided by {} read(s); apply reports any of them that changed:",
                self.reads.len()
            );
            for r in &self.reads {
                let state = match (&r.items, &r.resource_version) {
                    (Some(items), _) => format!("{} item(s)", items.len()),
                    (None, Some(rv)) => format!("resourceVersion {rv}"),
                    (None, None) => "absent".into(),
                };
                let _ = writeln!(out, "       {}: {state}", r.target);
            }
        }
        out
    }
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// The SHA-256 (hex) of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The inputs of one run, as a plan records them and an apply compares them.
pub fn inputs(
    guest: &crate::policy::GuestIdentity,
    policy_sha256: String,
    config: &crate::config::RunConfig,
    phase: &str,
    args: &[(String, String)],
    now: String,
) -> Inputs {
    Inputs {
        ferry_version: env!("CARGO_PKG_VERSION").into(),
        guest: guest.name.clone(),
        guest_sha256: guest.sha256.clone(),
        policy_sha256,
        config_sha256: config.source_sha256.clone(),
        phase: phase.into(),
        args: args.iter().cloned().collect(),
        params: config.params.clone(),
        planned_at: now,
    }
}

impl Inputs {
    /// What differs between the planned run and this one (`planned_at` aside).
    pub fn differences(&self, now: &Inputs) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |what: &str, planned: String, running: String| {
            if planned != running {
                out.push(format!("  {what}: planned {planned}, now {running}"));
            }
        };
        cmp("ferry version", self.ferry_version.clone(), now.ferry_version.clone());
        cmp("guest", self.guest.clone(), now.guest.clone());
        cmp("guest sha256", self.guest_sha256.clone(), now.guest_sha256.clone());
        cmp("policy sha256", self.policy_sha256.clone(), now.policy_sha256.clone());
        cmp(
            "config sha256",
            self.config_sha256.clone().unwrap_or_else(|| "(none)".into()),
            now.config_sha256.clone().unwrap_or_else(|| "(none)".into()),
        );
        cmp("phase", self.phase.clone(), now.phase.clone());
        let pairs = |m: &BTreeMap<String, String>| -> String {
            let v: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("[{}]", v.join(", "))
        };
        cmp("arguments", pairs(&self.args), pairs(&now.args));
        cmp("parameters", pairs(&self.params), pairs(&now.params));
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    fn key(byte: u8) -> AuditKey {
        AuditKey::from_bytes(vec![byte; 32]).unwrap()
    }

    /// The inputs of a made-up run, for the tests of plans.
    pub(crate) fn inputs() -> Inputs {
        Inputs {
            ferry_version: "0".into(),
            guest: "g".into(),
            guest_sha256: "a".into(),
            policy_sha256: "b".into(),
            config_sha256: None,
            phase: "script".into(),
            args: BTreeMap::new(),
            params: BTreeMap::new(),
            planned_at: "t".into(),
        }
    }

    fn plan() -> PlanFile {
        let mut p = PlanFile::new(inputs());
        p.mutations.push(Entry {
            action: "k8s:create".into(),
            target: "k8s c:/v1/ConfigMap ns/x".into(),
            change: "create".into(),
            digest: sha256_hex(b"{}"),
            run_determined: Vec::new(),
        });
        p
    }

    fn saved(p: &PlanFile) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        p.save(&path).unwrap();
        (dir, path)
    }

    #[test]
    fn an_approved_plan_loads_only_with_its_key_and_untouched() {
        let mut p = plan();
        let (_d, path) = saved(&p);
        assert!(matches!(
            PlanFile::load_approved(&path, Some(&key(1))),
            Err(PlanError::NotApproved { .. })
        ));
        p.approve(&key(1), Some("reviewer".into()), "now".into());
        let (_d, path) = saved(&p);
        let ok = PlanFile::load_approved(&path, Some(&key(1))).unwrap();
        assert_eq!(ok.plan, p);
        assert!(matches!(
            PlanFile::load_approved(&path, Some(&key(2))),
            Err(PlanError::OtherKey { .. })
        ));
        assert!(matches!(PlanFile::load_approved(&path, None), Err(PlanError::NoKey)));
        // One changed field anywhere, the approver's name included, is refused.
        for tamper in [
            |p: &mut PlanFile| p.mutations[0].digest = sha256_hex(b"[]"),
            |p: &mut PlanFile| {
                p.inputs.params.insert("x".into(), "y".into());
            },
            |p: &mut PlanFile| p.mutations.clear(),
            |p: &mut PlanFile| p.approval.as_mut().unwrap().by = Some("someone else".into()),
        ] {
            let mut t = p.clone();
            tamper(&mut t);
            let (_d, path) = saved(&t);
            let err = PlanFile::load_approved(&path, Some(&key(1))).unwrap_err();
            assert!(matches!(err, PlanError::Tampered { .. }), "{err}");
        }
    }

    #[test]
    fn another_schema_or_an_unknown_field_is_refused() {
        let p = plan();
        let (_d, path) = saved(&p);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace(SCHEMA, "ferry.plan/v9")).unwrap();
        assert!(matches!(PlanFile::load(&path), Err(PlanError::Schema { .. })));
        std::fs::write(&path, text.replace("\"mutations\"", "\"extra\": 1, \"mutations\"")).unwrap();
        assert!(matches!(PlanFile::load(&path), Err(PlanError::Unreadable { .. })));
    }

    #[test]
    fn inputs_name_each_difference() {
        let a = plan().inputs;
        let mut b = a.clone();
        b.guest_sha256 = "c".into();
        b.params.insert("zone_id".into(), "Z2".into());
        b.planned_at = "later".into();
        let d = a.differences(&b);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].contains("guest sha256: planned a, now c"), "{d:?}");
        assert!(d[1].contains("zone_id=Z2"), "{d:?}");
    }
}
