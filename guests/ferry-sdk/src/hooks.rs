//! Site hooks: dispatching events from a full guest, and helpers for hook
//! authors.
//!
//! A full guest calls [`dispatch`] at its extension points; the host runs
//! the hooks the run config lists for the point, each in its own sandbox, and
//! combines their outcomes. A hook (world `hook`, see [`crate::hook_world!`])
//! receives one [`Event`] and answers with an [`Outcome`]:
//!
//! ```ignore
//! ferry_sdk::hook_world!("../wit");
//!
//! use ferry_sdk::hooks::{self, Event, Outcome, Point};
//!
//! struct Hook;
//! impl Guest for Hook {
//!     fn on_event(event: Event) -> ferry_sdk::Result<Outcome> {
//!         if event.point != Point::Verify {
//!             return Ok(Outcome::Proceed);
//!         }
//!         let payload = hooks::cluster_payload(&event)?;
//!         Ok(hooks::veto(format!("{} is frozen", payload.hc_name)))
//!     }
//! }
//! export!(Hook);
//! ```

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bindings::ferry::host::hook_dispatch;
use crate::{Result, invalid};

pub use crate::bindings::ferry::host::hooks::{Event, Outcome, Point};

/// Dispatches one event to the site's hooks and returns their combined
/// outcome (`proceed` when no hook handles the point).
///
/// The first `veto` wins, `objects` lists are concatenated and `replaced`
/// manifests chain; see the `hook-dispatch` interface.
pub fn dispatch(point: Point, phase: &str, step: &str, payload: &Value) -> Result<Outcome> {
    let payload = if payload.is_null() {
        String::new()
    } else {
        payload.to_string()
    };
    hook_dispatch::dispatch(&Event {
        point,
        phase: phase.to_string(),
        step: step.to_string(),
        payload,
    })
}

/// The WIT name of a point (`before-step`, `select-objects`, ...).
pub fn point_name(point: Point) -> &'static str {
    match point {
        Point::BeforeStep => "before-step",
        Point::AfterStep => "after-step",
        Point::SelectObjects => "select-objects",
        Point::TransformObject => "transform-object",
        Point::Verify => "verify",
    }
}

/// An event's payload as JSON; an empty payload is `null`.
pub fn payload(event: &Event) -> Result<Value> {
    parse_payload(&event.payload)
}

/// An event's payload parsed into any serde type.
pub fn payload_as<T: DeserializeOwned>(event: &Event) -> Result<T> {
    serde_json::from_value(payload(event)?).map_err(|e| {
        invalid(format!(
            "the {} payload of {}/{} has an unexpected shape: {e}",
            point_name(event.point),
            event.phase,
            event.step
        ))
    })
}

fn parse_payload(text: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| invalid(format!("the event payload is not JSON: {e}")))
}

/// The payload the stock guest sends with every event: which hosted cluster
/// the run is about and the cluster aliases (plus point-specific fields,
/// ignored here). Fields it does not send are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ClusterPayload {
    /// The HostedCluster's namespace, e.g. `clusters`.
    pub hc_namespace: String,
    /// The HostedCluster's name.
    pub hc_name: String,
    /// The hosted control plane namespace, e.g. `clusters-prod`.
    pub hcp_namespace: String,
    /// The alias of the source management cluster (e.g. `source`).
    pub source: String,
    /// The alias of the destination management cluster, when sent.
    pub destination: String,
    /// The alias of the hosted cluster itself, when sent.
    pub hosted: String,
}

/// An event's payload as a [`ClusterPayload`]; `null` gives empty fields.
pub fn cluster_payload(event: &Event) -> Result<ClusterPayload> {
    match payload(event)? {
        Value::Null => Ok(ClusterPayload::default()),
        v => serde_json::from_value(v).map_err(|e| invalid(format!("the event payload is not a cluster payload: {e}"))),
    }
}

/// A `veto` outcome; the text should say why and how to proceed.
pub fn veto(reason: impl Into<String>) -> Outcome {
    Outcome::Veto(reason.into())
}

/// An `objects` outcome naming the given manifests (as listed by
/// [`crate::k8s::Cluster::list`]).
pub fn objects(manifests: &[Value]) -> Result<Outcome> {
    let refs = manifests.iter().map(crate::k8s::ref_of).collect::<Result<Vec<_>>>()?;
    Ok(Outcome::Objects(refs))
}

/// A `replaced` outcome carrying a rewritten manifest.
pub fn replaced(manifest: &Value) -> Outcome {
    Outcome::Replaced(manifest.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(payload: &str) -> Event {
        Event {
            point: Point::SelectObjects,
            phase: "backup".into(),
            step: "dump-objects".into(),
            payload: payload.into(),
        }
    }

    #[test]
    fn payloads_parse() {
        assert_eq!(payload(&event("")).unwrap(), Value::Null);
        assert_eq!(payload(&event("{\"a\":1}")).unwrap(), json!({"a": 1}));
        assert!(payload(&event("{")).is_err());
        let p = cluster_payload(&event(
            r#"{"hc_namespace":"clusters","hc_name":"prod","hcp_namespace":"clusters-prod","source":"source","extra":1}"#,
        ))
        .unwrap();
        assert_eq!(p.hcp_namespace, "clusters-prod");
        assert_eq!(p.source, "source");
        assert_eq!(cluster_payload(&event("")).unwrap(), ClusterPayload::default());
        assert!(cluster_payload(&event("[1]")).is_err());
        let typed: std::collections::BTreeMap<String, u32> = payload_as(&event("{\"a\":1}")).unwrap();
        assert_eq!(typed["a"], 1);
        assert!(payload_as::<u32>(&event("\"x\"")).is_err());
    }

    #[test]
    fn outcomes() {
        let listed = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}}),
            json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "b", "namespace": "ns"}}),
        ];
        match objects(&listed).unwrap() {
            Outcome::Objects(refs) => {
                assert_eq!(refs.len(), 2);
                assert_eq!(refs[1].kind, "ServiceMonitor");
                assert_eq!(refs[0].namespace.as_deref(), Some("ns"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(objects(&[json!({"kind": "ConfigMap"})]).is_err());
        assert!(matches!(veto("no"), Outcome::Veto(t) if t == "no"));
        assert!(matches!(replaced(&json!({"a": 1})), Outcome::Replaced(t) if t == "{\"a\":1}"));
        assert_eq!(point_name(Point::TransformObject), "transform-object");
    }
}
