//! The run's side of a plan: a plan run records into it, an apply run is checked against it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::{ApprovedPlan, Entry, Inputs, PlanError, PlanFile, Read, sha256_hex};
use crate::policy::Action;

/// What one run does with a plan: records it (a plan run) or enforces an approved one (apply).
pub struct PlanBook {
    mode: Mode,
    state: Mutex<State>,
}

enum Mode {
    Record,
    Enforce(Box<ApprovedPlan>),
}

#[derive(Default)]
struct State {
    /// Record: the plan being written.
    plan: Option<PlanFile>,
    /// Enforce: which of the plan's mutations happened.
    used: Vec<bool>,
    /// Run-determined values handed out in this run: (name, value).
    values: Vec<(&'static str, String)>,
    /// Targets read so far (the first read of each is the one compared).
    read: BTreeSet<String>,
    /// Targets this run changed (their later reads are not the cluster changing).
    mutated: BTreeSet<String>,
    /// Enforce: what the cluster shows that the plan's reads did not.
    changes: Vec<String>,
}

/// A mutation an approved plan does not hold: denied before any I/O.
#[derive(Debug)]
pub struct Unplanned {
    /// Why, naming the plan, what changed since it was made, and what to do.
    pub reason: String,
}

impl PlanBook {
    /// A plan run's book: every allowed mutation is written down.
    pub fn recording() -> Self {
        PlanBook {
            mode: Mode::Record,
            state: Mutex::new(State::default()),
        }
    }

    /// An apply run's book: every mutation must be in `plan`.
    pub fn enforcing(plan: ApprovedPlan) -> Self {
        let used = vec![false; plan.plan.mutations.len()];
        PlanBook {
            mode: Mode::Enforce(Box::new(plan)),
            state: Mutex::new(State {
                used,
                ..State::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether this book enforces an approved plan.
    pub fn enforces(&self) -> bool {
        matches!(self.mode, Mode::Enforce(_))
    }

    /// Starts the run: a recording book takes its inputs; an enforcing one refuses a run whose
    /// inputs are not the plan's.
    pub fn start(&self, inputs: Inputs) -> Result<(), PlanError> {
        match &self.mode {
            Mode::Record => {
                self.state().plan = Some(PlanFile::new(inputs));
                Ok(())
            }
            Mode::Enforce(approved) => {
                let differences = approved.plan.inputs.differences(&inputs);
                if differences.is_empty() {
                    Ok(())
                } else {
                    Err(PlanError::OtherRun {
                        path: approved.path.clone(),
                        differences,
                    })
                }
            }
        }
    }

    /// Notes a value the run determined (`name` from [`super::RUN_DETERMINED`]): from now on
    /// it stands as `⟨name⟩` in what mutations carry.
    pub fn run_value(&self, name: &'static str, value: &str) {
        if value.is_empty() {
            return;
        }
        let mut s = self.state();
        if !s.values.iter().any(|(_, v)| v == value) {
            s.values.push((name, value.to_string()));
            // Longest first, so a value inside another is replaced after it.
            s.values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        }
    }

    /// A mutation the policy allowed, before any I/O: recorded (plan), or checked against the
    /// approved plan (apply). `change` says what it does; `body` is what it carries.
    pub fn mutation(&self, action: Action, target: &str, change: &str, body: &[u8]) -> Result<(), Unplanned> {
        let mut s = self.state();
        let (target_n, mut names) = normalize(&s.values, target.as_bytes());
        let (body_n, body_names) = normalize(&s.values, body);
        names.extend(body_names);
        let entry = Entry {
            action: action.name().to_string(),
            target: String::from_utf8_lossy(&target_n).into_owned(),
            change: change.to_string(),
            digest: sha256_hex(&body_n),
            run_determined: names.into_iter().collect(),
        };
        s.mutated.insert(target.to_string());
        match &self.mode {
            Mode::Record => {
                if let Some(plan) = s.plan.as_mut() {
                    plan.mutations.push(entry);
                }
                Ok(())
            }
            Mode::Enforce(approved) => {
                let found = approved.plan.mutations.iter().enumerate().position(|(i, e)| {
                    !s.used[i] && e.action == entry.action && e.target == entry.target && e.digest == entry.digest
                });
                if let Some(i) = found {
                    s.used[i] = true;
                    return Ok(());
                }
                Err(Unplanned {
                    reason: unplanned_reason(approved, &entry, &s),
                })
            }
        }
    }

    /// A Kubernetes read: `resource_version` of the object (`None`: absent), or a list's
    /// items by name.
    pub fn read(&self, target: &str, resource_version: Option<&str>, items: Option<BTreeMap<String, String>>) {
        let mut s = self.state();
        if !s.read.insert(target.to_string()) {
            return;
        }
        let read = Read {
            target: target.to_string(),
            resource_version: resource_version.map(str::to_string),
            items,
        };
        match &self.mode {
            Mode::Record => {
                if let Some(plan) = s.plan.as_mut() {
                    plan.reads.push(read);
                }
            }
            Mode::Enforce(approved) => {
                let Some(planned) = approved.plan.reads.iter().find(|r| r.target == target) else {
                    return;
                };
                for change in changes(planned, &read, &s.mutated) {
                    if !s.changes.contains(&change) {
                        s.changes.push(change);
                    }
                }
            }
        }
    }

    /// The recorded plan (a plan run), with the run's end.
    pub fn recorded(&self) -> Option<PlanFile> {
        self.state().plan.clone()
    }

    /// What the approved plan held that did not happen (an apply run), in plain words.
    pub fn not_done(&self) -> Vec<String> {
        let s = self.state();
        match &self.mode {
            Mode::Record => Vec::new(),
            Mode::Enforce(approved) => approved
                .plan
                .mutations
                .iter()
                .zip(&s.used)
                .filter(|(_, used)| !**used)
                .map(|(e, _)| format!("{} {} ({})", e.action, e.target, e.change))
                .collect(),
        }
    }

    /// What the cluster showed in this apply run that differs from the plan's reads.
    pub fn changes(&self) -> Vec<String> {
        self.state().changes.clone()
    }
}

/// `bytes` with each run-determined value replaced by `⟨name⟩`, and the names replaced.
fn normalize(values: &[(&'static str, String)], bytes: &[u8]) -> (Vec<u8>, BTreeSet<String>) {
    let mut names = BTreeSet::new();
    let Ok(text) = std::str::from_utf8(bytes) else {
        return (bytes.to_vec(), names);
    };
    let mut text = text.to_string();
    for (name, value) in values {
        if text.contains(value.as_str()) {
            text = text.replace(value.as_str(), &format!("⟨{name}⟩"));
            names.insert((*name).to_string());
        }
    }
    (text.into_bytes(), names)
}

/// How a read differs from the plan's read of the same target (items this run changed aside).
fn changes(planned: &Read, now: &Read, mutated: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    match (&planned.items, &now.items) {
        (Some(before), Some(after)) => {
            let item = |name: &str| planned.target.replace("/*", &format!("/{name}"));
            for (name, rv) in after {
                let t = item(name);
                if mutated.contains(&t) {
                    continue;
                }
                match before.get(name) {
                    None => out.push(format!("{t} is new")),
                    Some(old) if old != rv => out.push(format!("{t} changed (resourceVersion {old} → {rv})")),
                    Some(_) => {}
                }
            }
            for name in before.keys().filter(|n| !after.contains_key(*n)) {
                let t = item(name);
                if !mutated.contains(&t) {
                    out.push(format!("{t} is gone"));
                }
            }
        }
        _ => match (&planned.resource_version, &now.resource_version) {
            (None, Some(_)) => out.push(format!("{} exists now", now.target)),
            (Some(_), None) => out.push(format!("{} is gone", now.target)),
            (Some(a), Some(b)) if a != b => out.push(format!("{} changed (resourceVersion {a} → {b})", now.target)),
            _ => {}
        },
    }
    out
}

fn unplanned_reason(approved: &ApprovedPlan, entry: &Entry, s: &State) -> String {
    let mut why = format!(
        "not in the approved plan {} (plan {}): {} {} ({})",
        approved.path.display(),
        approved.id,
        entry.action,
        entry.target,
        entry.change
    );
    let other_body = approved
        .plan
        .mutations
        .iter()
        .enumerate()
        .any(|(i, e)| !s.used[i] && e.action == entry.action && e.target == entry.target);
    if other_body {
        why.push_str("; the plan holds this call with another body or patch");
    }
    if s.changes.is_empty() {
        why.push_str(". Nothing it read changed since the plan was made");
    } else {
        why.push_str(&format!(". Since the plan was made: {}", s.changes.join("; ")));
    }
    why.push_str(". Nothing was changed by this call; make a new plan (--plan --plan-out FILE) and have it approved");
    why
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use crate::audit::AuditKey;

    fn inputs() -> Inputs {
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

    fn approved(plan: PlanFile) -> ApprovedPlan {
        let key = AuditKey::from_bytes(vec![7; 32]).unwrap();
        let mut plan = plan;
        plan.approve(&key, None, "now".into());
        ApprovedPlan {
            id: plan.id(),
            plan,
            path: "plan.json".into(),
        }
    }

    const CM: &str = "k8s c:v1/ConfigMap ns/x";

    #[test]
    fn apply_takes_each_planned_mutation_once_and_nothing_else() {
        let rec = PlanBook::recording();
        rec.start(inputs()).unwrap();
        rec.read(
            "k8s c:v1/Secret ns/*",
            None,
            Some([("s1".to_string(), "5".to_string())].into()),
        );
        rec.mutation(Action::K8sPatch, CM, "merge patch", br#"{"a":1}"#)
            .unwrap();
        let plan = rec.recorded().unwrap();
        assert_eq!(plan.mutations.len(), 1);

        let book = PlanBook::enforcing(approved(plan.clone()));
        book.start(inputs()).unwrap();
        book.mutation(Action::K8sPatch, CM, "merge patch", br#"{"a":1}"#)
            .unwrap();
        // Twice is once more than planned.
        let again = book
            .mutation(Action::K8sPatch, CM, "merge patch", br#"{"a":1}"#)
            .unwrap_err();
        assert!(
            again.reason.contains("not in the approved plan plan.json"),
            "{}",
            again.reason
        );
        assert!(book.not_done().is_empty());

        // Another body, another target or another action: each denied.
        let book = PlanBook::enforcing(approved(plan.clone()));
        book.read(
            "k8s c:v1/Secret ns/*",
            None,
            Some([("s1".to_string(), "5".to_string()), ("s2".to_string(), "9".to_string())].into()),
        );
        let body = book
            .mutation(Action::K8sPatch, CM, "merge patch", br#"{"a":2}"#)
            .unwrap_err();
        assert!(body.reason.contains("another body"), "{}", body.reason);
        assert!(body.reason.contains("k8s c:v1/Secret ns/s2 is new"), "{}", body.reason);
        assert!(body.reason.contains("make a new plan"), "{}", body.reason);
        assert!(
            book.mutation(
                Action::K8sPatch,
                "k8s c:v1/ConfigMap ns/y",
                "merge patch",
                br#"{"a":1}"#
            )
            .is_err()
        );
        assert!(
            book.mutation(Action::K8sDelete, CM, "merge patch", br#"{"a":1}"#)
                .is_err()
        );
        assert_eq!(book.not_done().len(), 1, "what the plan held and did not happen");

        let mut other = inputs();
        other.phase = "other".into();
        assert!(matches!(book.start(other), Err(PlanError::OtherRun { .. })));
    }

    #[test]
    fn only_run_determined_values_may_differ() {
        let rec = PlanBook::recording();
        rec.start(inputs()).unwrap();
        rec.run_value("presigned-url", "https://b.s3/k?X-Amz-Signature=aaa");
        rec.mutation(
            Action::K8sApply,
            CM,
            "server-side apply",
            br#"{"url":"https://b.s3/k?X-Amz-Signature=aaa","n":1}"#,
        )
        .unwrap();
        let plan = rec.recorded().unwrap();
        assert_eq!(plan.mutations[0].run_determined, vec!["presigned-url".to_string()]);

        let book = PlanBook::enforcing(approved(plan.clone()));
        book.run_value("presigned-url", "https://b.s3/k?X-Amz-Signature=bbb");
        book.mutation(
            Action::K8sApply,
            CM,
            "server-side apply",
            br#"{"url":"https://b.s3/k?X-Amz-Signature=bbb","n":1}"#,
        )
        .unwrap();
        // The same URL, any other byte changed: denied.
        let book = PlanBook::enforcing(approved(plan));
        book.run_value("presigned-url", "https://b.s3/k?X-Amz-Signature=bbb");
        assert!(
            book.mutation(
                Action::K8sApply,
                CM,
                "server-side apply",
                br#"{"url":"https://b.s3/k?X-Amz-Signature=bbb","n":2}"#,
            )
            .is_err()
        );
    }
}
