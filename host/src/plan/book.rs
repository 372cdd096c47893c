//! The run's side of a plan: a plan run records into it, an apply run is checked against it.

use std::collections::BTreeSet;
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
    /// Enforce: the entry the last mutation matched (the same call again right after it is a
    /// retry of it).
    last: Option<usize>,
    /// Run-determined values handed out in this run: (name, value).
    values: Vec<(&'static str, String)>,
    /// The times the run was handed.
    stamps: Stamps,
    /// Targets read so far (a plan records the first read of each).
    read: BTreeSet<String>,
}

/// What times are this run's ([`PlanBook::clock_read`], [`PlanBook::expiry`]): its clock
/// readings, first and last (ms since the epoch), and the lifetimes (ms) of the URLs it
/// presigned, whose expiries the guest computes from a reading of its own.
#[derive(Default, Clone)]
struct Stamps {
    clock: Option<(u64, u64)>,
    lifetimes: Vec<u64>,
}

impl Stamps {
    /// Whether `ms`, rendered to the second, is within a second of a clock reading, or of a
    /// reading plus a lifetime the run gave a URL.
    fn stamped(&self, ms: u64) -> bool {
        let Some((lo, hi)) = self.clock else { return false };
        let near = |t: u64| t + 1000 >= lo && t <= hi + 1000;
        near(ms) || self.lifetimes.iter().any(|l| ms.checked_sub(*l).is_some_and(near))
    }
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

    /// The facts of an artifact the run made (an etcd snapshot's digest, size and revision), as
    /// JSON fields (`name`, its value as JSON): a record of them (a marker) carries them as
    /// `⟨artifact-content⟩`, plain or in a JSON string.
    pub fn artifact_facts(&self, fields: &[(&str, String)]) {
        let mut s = self.state();
        for (name, value) in fields {
            let escaped = value.replace('"', "\\\"");
            // Compact or pretty JSON, plain or inside a JSON string.
            for fragment in [
                format!("\"{name}\":{value}"),
                format!("\"{name}\": {value}"),
                format!("\\\"{name}\\\":{escaped}"),
                format!("\\\"{name}\\\": {escaped}"),
            ] {
                if !s.values.iter().any(|(_, v)| *v == fragment) {
                    s.values.push(("artifact-content", fragment));
                }
            }
        }
        s.values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    }

    /// A clock reading handed to the guest: times it renders from it are run stamps.
    pub fn clock_read(&self, ms: u64) {
        let mut s = self.state();
        s.stamps.clock = Some(match s.stamps.clock {
            Some((lo, hi)) => (lo.min(ms), hi.max(ms)),
            None => (ms, ms),
        });
    }

    /// A lifetime the run gave (a presigned URL's, in ms, read at `now`): its expiry, which the
    /// guest computes from its own reading of the clock, is a run stamp too.
    pub fn expiry(&self, now: u64, lifetime_ms: u64) {
        self.clock_read(now);
        let mut s = self.state();
        if !s.stamps.lifetimes.contains(&lifetime_ms) {
            s.stamps.lifetimes.push(lifetime_ms);
        }
    }

    /// A mutation the policy allowed, before any I/O: recorded (plan), or checked against the
    /// approved plan (apply). `change` says what it does; `body` is what it carries.
    pub fn mutation(&self, action: Action, target: &str, change: &str, body: &[u8]) -> Result<(), Unplanned> {
        let mut s = self.state();
        let (target_n, mut names) = normalize(&s.values, &s.stamps, target.as_bytes());
        let (body_n, body_names) = normalize(&s.values, &s.stamps, body);
        names.extend(body_names);
        // A file named by the run's stamp is this run's artifact: its content is the run's.
        let artifact = matches!(
            action,
            Action::ObjectsPut | Action::ObjectsSnapshotUpload | Action::WorkspaceWrite
        ) && target_n.windows(STAMP.len()).any(|w| w == STAMP.as_bytes());
        if artifact {
            names.insert("artifact-content".into());
        }
        let entry = Entry {
            action: action.name().to_string(),
            target: String::from_utf8_lossy(&target_n).into_owned(),
            change: change.to_string(),
            digest: sha256_hex(&body_n),
            run_determined: names.into_iter().collect(),
        };
        // The same call again right after itself is a retry (a conflict read again, an answer
        // lost): one change, in the plan and in its apply.
        let same = |e: &Entry| {
            e.action == entry.action
                && e.target == entry.target
                && (e.digest == entry.digest || (artifact && e.run_determined.iter().any(|n| n == "artifact-content")))
        };
        match &self.mode {
            Mode::Record => {
                if let Some(plan) = s.plan.as_mut()
                    && !plan.mutations.last().is_some_and(same)
                {
                    plan.mutations.push(entry);
                }
                Ok(())
            }
            Mode::Enforce(approved) => {
                let mutations = &approved.plan.mutations;
                if s.last.is_some_and(|i| same(&mutations[i])) {
                    return Ok(());
                }
                let found = mutations.iter().enumerate().position(|(i, e)| !s.used[i] && same(e));
                s.last = found;
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

    /// A Kubernetes read of a plan run, first of its target: what apply checks again before it
    /// starts. An apply's own reads are not recorded.
    pub fn read(&self, read: Read) {
        if self.enforces() {
            return;
        }
        let mut s = self.state();
        if !s.read.insert(read.target.clone()) {
            return;
        }
        if let Some(plan) = s.plan.as_mut() {
            plan.reads.push(read);
        }
    }

    /// The plan being kept to (an apply run).
    pub fn approved(&self) -> Option<&ApprovedPlan> {
        match &self.mode {
            Mode::Enforce(a) => Some(a),
            Mode::Record => None,
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
}

/// A resourceVersion a body carries (a patch's precondition).
static RESOURCE_VERSION: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r#""resourceVersion":"[^"]*""#).expect("the resourceVersion pattern compiles")
});

/// How a run stamp stands in a plan.
const STAMP: &str = "⟨run-stamp⟩";

/// Times as the SDK writes them (`ferry_sdk::time`): RFC 3339 (seconds, optionally with a
/// fraction), the compact form of names and keys, and milliseconds since the epoch.
static TIME: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?Z|(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z|\b(\d{13})\b",
    )
    .expect("the time pattern compiles")
});

/// Milliseconds since the epoch of a [`TIME`] match.
fn time_ms(c: &regex::Captures<'_>) -> Option<u64> {
    if let Some(ms) = c.get(13) {
        return ms.as_str().parse().ok();
    }
    let n = |a: usize, b: usize| -> Option<u32> { c.get(a).or_else(|| c.get(b)).and_then(|m| m.as_str().parse().ok()) };
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(n(1, 7)?).ok()?, n(2, 8)?, n(3, 9)?)?;
    let t = date.and_hms_opt(n(4, 10)?, n(5, 11)?, n(6, 12)?)?;
    u64::try_from(t.and_utc().timestamp_millis()).ok()
}

/// `bytes` with each run-determined value replaced by `⟨name⟩`, and the names replaced: the
/// values handed out, then every time within a second of the run's stamps.
fn normalize(values: &[(&'static str, String)], stamps: &Stamps, bytes: &[u8]) -> (Vec<u8>, BTreeSet<String>) {
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
    // A precondition is checked by the server against what the run read; its value is the run's.
    let versioned = RESOURCE_VERSION.replace_all(&text, "\"resourceVersion\":\"⟨read-version⟩\"");
    if versioned != text {
        names.insert("read-version".into());
        text = versioned.into_owned();
    }
    if stamps.clock.is_some() {
        let replaced = TIME.replace_all(&text, |c: &regex::Captures<'_>| match time_ms(c) {
            Some(ms) if stamps.stamped(ms) => STAMP.to_string(),
            _ => c[0].to_string(),
        });
        if replaced != text {
            names.insert("run-stamp".into());
            text = replaced.into_owned();
        }
    }
    (text.into_bytes(), names)
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
    why.push_str(
        ". Nothing was changed by this call. The automation decided otherwise than when it was planned (what it \
         read is not what the plan run read); make a new plan (--plan --plan-out FILE) and have it approved",
    );
    why
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::super::tests::inputs;
    use super::*;
    use crate::audit::AuditKey;

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
        rec.mutation(Action::K8sPatch, CM, "merge patch", br#"{"a":1}"#)
            .unwrap();
        let plan = rec.recorded().unwrap();
        assert_eq!(plan.mutations.len(), 1);

        let book = PlanBook::enforcing(approved(plan.clone()));
        book.start(inputs()).unwrap();
        book.mutation(Action::K8sPatch, CM, "merge patch", br#"{"a":1}"#)
            .unwrap();
        // Right after itself it is a retry of the same change; after another call, once more
        // than planned.
        book.mutation(Action::K8sPatch, CM, "merge patch", br#"{"a":1}"#)
            .unwrap();
        assert!(
            book.mutation(Action::K8sPatch, "k8s c:v1/ConfigMap ns/z", "merge patch", b"{}")
                .is_err()
        );
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
        let body = book
            .mutation(Action::K8sPatch, CM, "merge patch", br#"{"a":2}"#)
            .unwrap_err();
        assert!(body.reason.contains("another body"), "{}", body.reason);
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
    fn run_stamps_read_versions_and_artifacts_are_the_only_other_things_that_vary() {
        // 2026-12-07T08:00:00Z and its renderings.
        let t = 1_796_630_400_000_u64;
        let body = |stamp_ms: u64, rv: &str, extra: &str| {
            let secs = stamp_ms / 1000;
            let dt = chrono::DateTime::from_timestamp(secs as i64, 0).unwrap();
            format!(
                r#"{{"metadata":{{"resourceVersion":"{rv}","annotations":{{"at":"{}","id":"{}","ms":"{stamp_ms}"}}}},"x":"{extra}"}}"#,
                dt.format("%Y-%m-%dT%H:%M:%SZ"),
                dt.format("%Y%m%dT%H%M%SZ")
            )
        };
        let rec = PlanBook::recording();
        rec.start(inputs()).unwrap();
        rec.clock_read(t);
        rec.mutation(Action::K8sPatch, CM, "merge patch", body(t, "10", "same").as_bytes())
            .unwrap();
        rec.mutation(
            Action::WorkspaceWrite,
            "workspace 20261207T080000Z/index.json",
            "write",
            b"planned",
        )
        .unwrap();
        // An old time (not read from this run's clock) is compared like any other byte.
        rec.mutation(
            Action::K8sPatch,
            "k8s c:v1/ConfigMap ns/old",
            "merge patch",
            body(t - 86_400_000, "1", "o").as_bytes(),
        )
        .unwrap();
        let plan = rec.recorded().unwrap();
        assert_eq!(plan.mutations[0].run_determined, ["read-version", "run-stamp"]);
        assert_eq!(plan.mutations[1].run_determined, ["artifact-content", "run-stamp"]);
        assert_eq!(plan.mutations[1].target, "workspace ⟨run-stamp⟩/index.json");
        // Every name a plan can carry is one the reviewer can look up.
        let listed: Vec<&str> = super::super::RUN_DETERMINED.iter().map(|(n, _)| *n).collect();
        for name in plan.mutations.iter().flat_map(|e| &e.run_determined) {
            assert!(listed.contains(&name.as_str()), "{name} is not in RUN_DETERMINED");
        }

        let later = t + 3_600_000;
        let book = PlanBook::enforcing(approved(plan.clone()));
        book.clock_read(later);
        book.mutation(
            Action::K8sPatch,
            CM,
            "merge patch",
            body(later, "57", "same").as_bytes(),
        )
        .unwrap();
        book.mutation(
            Action::WorkspaceWrite,
            "workspace 20261207T090000Z/index.json",
            "write",
            b"what the run wrote",
        )
        .unwrap();
        let old = body(t - 86_400_000, "1", "o");
        book.mutation(
            Action::K8sPatch,
            "k8s c:v1/ConfigMap ns/old",
            "merge patch",
            old.as_bytes(),
        )
        .unwrap();

        // Anything else in the body: denied.
        let book = PlanBook::enforcing(approved(plan.clone()));
        book.clock_read(later);
        assert!(
            book.mutation(
                Action::K8sPatch,
                CM,
                "merge patch",
                body(later, "57", "other").as_bytes()
            )
            .is_err()
        );
        // An old time changed: denied (it is no run stamp).
        let moved = body(t - 2 * 86_400_000, "1", "o");
        assert!(
            book.mutation(
                Action::K8sPatch,
                "k8s c:v1/ConfigMap ns/old",
                "merge patch",
                moved.as_bytes()
            )
            .is_err()
        );
        // An expiry the guest computes from its own reading after a presign is a stamp too.
        let rec = PlanBook::recording();
        rec.start(inputs()).unwrap();
        rec.expiry(t, 3_600_000);
        let expiring = |ms: u64| format!(r#"{{"expires":"{ms}"}}"#);
        rec.mutation(
            Action::K8sCreate,
            CM,
            "create",
            expiring(t + 3_600_000 + 400).as_bytes(),
        )
        .unwrap();
        let plan = rec.recorded().unwrap();
        assert_eq!(plan.mutations[0].run_determined, ["run-stamp"]);
        let apply = PlanBook::enforcing(approved(plan));
        apply.expiry(later, 3_600_000);
        apply
            .mutation(
                Action::K8sCreate,
                CM,
                "create",
                expiring(later + 3_600_000 + 700).as_bytes(),
            )
            .unwrap();
        // Content is the run's only for a file named by the run's stamp.
        assert!(
            book.mutation(Action::WorkspaceWrite, "workspace notes.txt", "write", b"x")
                .is_err()
        );
    }

    #[test]
    fn a_stale_read_names_what_is_new_and_what_is_gone() {
        let query = super::super::Query {
            cluster: "c".into(),
            api_version: "v1".into(),
            kind: "Secret".into(),
            namespace: Some("ns".into()),
            name: None,
            label_selector: None,
            field_selector: None,
        };
        let read = |names: &[&str]| Read {
            target: "k8s c:v1/Secret ns/*".into(),
            query: query.clone(),
            resource_version: None,
            items: Some(names.iter().map(|n| (n.to_string(), "1".to_string())).collect()),
        };
        let changes = read(&["a", "b"]).changes(&read(&["b", "c"]));
        assert_eq!(changes, ["k8s c:v1/Secret ns/c is new", "k8s c:v1/Secret ns/a is gone"]);
        assert!(read(&["a"]).changes(&read(&["a"])).is_empty());
        let mut pods = read(&["a"]);
        pods.query.kind = "Pod".into();
        assert!(pods.changes(&read(&[])).is_empty(), "pods come and go");
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
