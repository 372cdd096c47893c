//! The state of one phase run: parameters, the hosted cluster's names, plan
//! mode, and the record of steps (with `stop_after` for rehearsing
//! interruptions).

use ferry_sdk::hooks::{self, Outcome, Point};
use ferry_sdk::log;
use ferry_sdk::params::Params;
use ferry_sdk::{Error, Result};
use serde_json::{Map, Value, json};

use crate::model::HcId;

/// What a step did.
pub enum Done {
    /// It changed something.
    Did(String),
    /// The end state was already there.
    Already(String),
    /// It does not apply to this cluster or variant.
    Skipped(String),
    /// Plan mode: what it would do.
    Planned(String),
    /// A check that passed (changes nothing).
    Checked(String),
}

impl Done {
    /// The outcome of a step that changes each of `items`: `Already` (with
    /// `already`) when there is none to change, `Planned` in a plan, else `Did`.
    pub fn of_changes(items: &[String], plan: bool, already: impl Into<String>, verb: &str, past: &str) -> Done {
        match (items.is_empty(), plan) {
            (true, _) => Done::Already(already.into()),
            (false, true) => Done::Planned(format!("would {verb} {}", items.join(", "))),
            (false, false) => Done::Did(format!("{past} {}", items.join(", "))),
        }
    }
}

/// One phase run.
pub struct Ctx {
    /// Parameters and arguments.
    pub p: Params,
    /// The hosted cluster.
    pub hc: HcId,
    /// Plan mode (nothing is changed).
    pub plan: bool,
    phase: &'static str,
    stop_after: Option<String>,
    steps: Vec<Value>,
    changed: bool,
    /// Extra summary fields.
    pub out: Map<String, Value>,
    /// Plan mode: objects as this run's earlier dry-run writes would have left them, by
    /// description, so later steps plan the writes the real run will make.
    pub planned: std::collections::BTreeMap<String, Value>,
    /// When this run started (ms since the epoch, the host's clock).
    pub started_at: u64,
    /// Since when the hosted cluster's API is down (backup stopped its writers), when it is.
    pub api_down_since: Option<u64>,
    /// When the destination served a write again, when it did.
    pub api_up_at: Option<u64>,
}

impl Ctx {
    /// Reads parameters and names for `phase`.
    pub fn new(phase: &'static str, args: &[(String, String)]) -> Result<Ctx> {
        let p = Params::load(args);
        let hc = HcId::from_params(&p)?;
        let stop_after = p.get("stop_after").map(str::to_string);
        Ok(Ctx {
            plan: ferry_sdk::context::is_plan(),
            p,
            hc,
            phase,
            stop_after,
            steps: Vec::new(),
            changed: false,
            out: Map::new(),
            planned: std::collections::BTreeMap::new(),
            started_at: ferry_sdk::context::now(),
            api_down_since: None,
            api_up_at: None,
        })
    }

    /// A cluster alias parameter (`source`, `destination`, `hosted`).
    pub fn alias(&self, role: &str) -> String {
        self.p.or(role, role).to_string()
    }

    /// Opens the cluster of `role`; in plan mode every mutation is a dry run.
    pub fn open(&self, role: &str) -> Result<ferry_sdk::k8s::Cluster> {
        Ok(ferry_sdk::k8s::Cluster::open(&self.alias(role))?.dry_run(self.plan))
    }

    /// Runs one step, records and reports it; stops the phase after it when
    /// `stop_after` names it.
    pub fn step(&mut self, name: &str, f: impl FnOnce(&mut Ctx) -> Result<Done>) -> Result<()> {
        let label = format!("{}/{name}", self.phase);
        let began = ferry_sdk::context::now();
        log::progress(&label, self.steps.len() as u64, None, "started");
        self.hook(Point::BeforeStep, name, json!({}))?;
        let done = f(self).map_err(|e| ferry_sdk::context(e, format!("step {label}")))?;
        let (result, detail) = match done {
            Done::Did(d) => {
                self.changed = true;
                ("done", d)
            }
            Done::Already(d) => ("already", d),
            Done::Skipped(d) => ("skipped", d),
            Done::Planned(d) => ("planned", d),
            Done::Checked(d) => ("checked", d),
        };
        log::progress(
            &label,
            self.steps.len() as u64 + 1,
            None,
            &format!("{result}: {detail}"),
        );
        let ms = ferry_sdk::context::now().saturating_sub(began);
        self.steps
            .push(json!({"step": name, "result": result, "detail": detail, "ms": ms}));
        self.hook(Point::AfterStep, name, json!({"result": result, "detail": detail}))?;
        if self.stop_after.as_deref() == Some(name) {
            log::warn(
                &format!("stopped after step {label} as asked; run the phase again to continue"),
                &[("stop_after", name)],
            );
            let mut summary = self.to_value();
            if let Some(o) = summary.as_object_mut() {
                o.insert("stopped_after".into(), json!(name));
            }
            if let Ok(mut slot) = STOPPED.lock() {
                *slot = Some(summary);
            }
            return Err(Error::Other(STOPPED_MARKER.into()));
        }
        Ok(())
    }

    /// The payload every hook event carries, plus `extra`.
    pub fn hook_payload(&self, extra: Value) -> Value {
        let mut o = Map::new();
        o.insert("hc_namespace".into(), json!(self.hc.ns));
        o.insert("hc_name".into(), json!(self.hc.name));
        o.insert("hcp_namespace".into(), json!(self.hc.hcp_ns));
        for role in ["source", "destination", "hosted"] {
            o.insert(role.into(), json!(self.alias(role)));
        }
        if let Value::Object(extra) = extra {
            o.extend(extra);
        }
        Value::Object(o)
    }

    /// Calls the site's hooks at `point` of `step`; a veto stops the phase
    /// (before the step's changes for `before-step` and `verify`).
    pub fn hook(&self, point: Point, step: &str, extra: Value) -> Result<Outcome> {
        let outcome = hooks::dispatch(point, self.phase, step, &self.hook_payload(extra))?;
        if let Outcome::Veto(why) = &outcome {
            let when = if matches!(point, Point::AfterStep) {
                " after the step"
            } else {
                " before the step changed anything"
            };
            return Err(Error::Invalid(format!(
                "{}. The phase stopped at {}/{step}{when}; run it again once the hook allows it",
                why.trim_end_matches('.'),
                self.phase
            )));
        }
        Ok(outcome)
    }

    fn to_value(&self) -> Value {
        let mut o = Map::new();
        o.insert("phase".into(), json!(self.phase));
        o.insert(
            "hosted_cluster".into(),
            json!(format!("{}/{}", self.hc.ns, self.hc.name)),
        );
        o.insert("plan".into(), json!(self.plan));
        o.insert("already_done".into(), json!(!self.changed && !self.plan));
        o.insert("steps".into(), Value::Array(self.steps.clone()));
        if let Some(down) = self.api_down_ms() {
            o.insert("api_down_ms".into(), json!(down));
        }
        o.extend(self.out.clone());
        Value::Object(o)
    }

    /// How long the hosted cluster's API was down during this run: from its start, or from
    /// when backup stopped the writers if later, to the first write the destination served,
    /// or to now. `None` when the API was up throughout.
    pub fn api_down_ms(&self) -> Option<u64> {
        let since = self.api_down_since?.max(self.started_at);
        let until = self.api_up_at.unwrap_or_else(ferry_sdk::context::now);
        Some(until.saturating_sub(since))
    }

    /// The JSON summary of the phase.
    pub fn summary(self) -> Value {
        self.to_value()
    }
}

/// The error text that carries a `stop_after` stop out of a phase.
const STOPPED_MARKER: &str = "ferry:stopped-after";

/// The summary of a phase stopped by `stop_after`.
static STOPPED: std::sync::Mutex<Option<Value>> = std::sync::Mutex::new(None);

/// Whether `e` is a `stop_after` stop (a rehearsed interruption), not a failure.
pub fn is_stop(e: &Error) -> bool {
    matches!(e, Error::Other(m) if m.contains(STOPPED_MARKER))
}

/// Turns a `stop_after` stop into the phase's (successful) summary, with
/// `stopped_after` naming the step; other results pass through.
pub fn finish(result: Result<Value>) -> Result<Value> {
    match result {
        Err(Error::Other(m)) if m.contains(STOPPED_MARKER) => STOPPED
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or_else(|| Error::Other("stopped after a step, but its summary is lost".into())),
        other => other,
    }
}
