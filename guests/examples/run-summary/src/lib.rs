//! Example site hook `run-summary` (point `after-step`).
//!
//! After the `report` step of phase `finish`, or after any step named
//! `complete`, it writes a small JSON summary of the run to S3, next to the
//! backup:
//!
//! `<s3_prefix>/<hc_namespace>/<hc_name>/run-summaries/<phase>-<now>.json`
//!
//! (`now` in milliseconds on the host's clock), then proceeds. In a plan run
//! it only logs what it would write.
//!
//! Parameters: `bucket` (required), `s3_prefix` (may be empty), and
//! `hc_namespace`/`hc_name` when the event payload does not name them.
//!
//! Its policy (`policy.cedar`) grants the `context` and `objects` imports,
//! opening `{bucket}` and `objects:put` under
//! `{bucket}/{s3_prefix}/{hc_namespace}/{hc_name}/run-summaries/` only.

ferry_sdk::hook_world!("../../../wit");

use ferry_sdk::hooks::{self, Point};
use ferry_sdk::objects::{self, PutOptions};
use ferry_sdk::params::Params;
use ferry_sdk::{Result, ResultExt, invalid, log};
use serde_json::{Value, json};

/// Whether the hook writes a summary after this step.
pub fn wanted(point: Point, phase: &str, step: &str) -> bool {
    point == Point::AfterStep && ((phase == "finish" && step == "report") || step == "complete")
}

/// The object key of a summary.
pub fn summary_key(s3_prefix: &str, hc_namespace: &str, hc_name: &str, phase: &str, now_millis: u64) -> String {
    let prefix = s3_prefix.trim_matches('/');
    let tail = format!("{hc_namespace}/{hc_name}/run-summaries/{phase}-{now_millis}.json");
    if prefix.is_empty() {
        tail
    } else {
        format!("{prefix}/{tail}")
    }
}

/// The summary document.
pub fn summary(event: &Event, hc_namespace: &str, hc_name: &str, source: &str, plan: bool, now_millis: u64) -> Value {
    json!({
        "kind": "ferry.dev/run-summary",
        "hostedCluster": { "namespace": hc_namespace, "name": hc_name },
        "source": source,
        "phase": event.phase,
        "step": event.step,
        "plan": plan,
        "at": ferry_sdk::time::rfc3339(now_millis),
        "atMillis": now_millis,
    })
}

struct Hook;

impl Guest for Hook {
    fn on_event(event: Event) -> Result<Outcome> {
        if !wanted(event.point, &event.phase, &event.step) {
            return Ok(Outcome::Proceed);
        }
        let params = Params::load(&[]);
        let payload = hooks::cluster_payload(&event)?;
        let pick = |from_payload: &str, name: &str| -> Result<String> {
            if from_payload.is_empty() {
                params.require(name).map(str::to_string)
            } else {
                Ok(from_payload.to_string())
            }
        };
        let hc_namespace = pick(&payload.hc_namespace, "hc_namespace")?;
        let hc_name = pick(&payload.hc_name, "hc_name")?;
        if hc_namespace.contains('/') || hc_name.contains('/') {
            return Err(invalid("run-summary: hc_namespace and hc_name cannot contain `/`"));
        }
        let bucket_name = params.require("bucket")?;
        let now = ferry_sdk::context::now();
        let plan = ferry_sdk::context::is_plan();
        let key = summary_key(params.or("s3_prefix", ""), &hc_namespace, &hc_name, &event.phase, now);
        let doc = summary(&event, &hc_namespace, &hc_name, &payload.source, plan, now);
        if plan {
            log::info(
                "plan: would write the run summary",
                &[("bucket", bucket_name), ("key", &key)],
            );
            return Ok(Outcome::Proceed);
        }
        let bucket = objects::open_bucket(bucket_name).ctx(format!("opening bucket `{bucket_name}`"))?;
        let body = serde_json::to_vec_pretty(&doc).map_err(|e| invalid(e.to_string()))?;
        let options = PutOptions {
            content_type: Some("application/json".into()),
            create_only: true,
            seal: false,
        };
        bucket
            .put(&key, &body, &options)
            .ctx(format!("writing the run summary s3://{bucket_name}/{key}"))?;
        log::info("run summary written", &[("bucket", bucket_name), ("key", &key)]);
        Ok(Outcome::Proceed)
    }
}

export!(Hook);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_it_runs() {
        assert!(wanted(Point::AfterStep, "finish", "report"));
        assert!(wanted(Point::AfterStep, "backup", "complete"));
        assert!(!wanted(Point::AfterStep, "backup", "report"));
        assert!(!wanted(Point::BeforeStep, "finish", "report"));
    }

    #[test]
    fn keys_and_times() {
        assert_eq!(
            summary_key("dr/", "clusters", "prod", "finish", 5),
            "dr/clusters/prod/run-summaries/finish-5.json"
        );
        assert_eq!(
            summary_key("", "c", "p", "backup", 1),
            "c/p/run-summaries/backup-1.json"
        );
        assert_eq!(ferry_sdk::time::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(ferry_sdk::time::rfc3339(1_709_210_096_000), "2024-02-29T12:34:56Z");
        let event = Event {
            point: Point::AfterStep,
            phase: "finish".into(),
            step: "report".into(),
            payload: String::new(),
        };
        let doc = summary(&event, "c", "p", "source", false, 0);
        assert_eq!(doc["hostedCluster"]["name"], "p");
        assert_eq!(doc["at"], "1970-01-01T00:00:00Z");
    }
}
