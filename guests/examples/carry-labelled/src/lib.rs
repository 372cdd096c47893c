//! Example site hook `carry-labelled` (point `select-objects`).
//!
//! During backup it lists the ServiceMonitors (`monitoring.coreos.com/v1`)
//! and ConfigMaps of the hosted control plane namespace that match a label
//! selector, and returns them so the backup carries them to the destination.
//!
//! The event payload names the hosted cluster:
//! `{"hc_namespace": "...", "hc_name": "...", "hcp_namespace": "...", "source": "<cluster alias>"}`.
//!
//! Parameters:
//! - `carry_selector`: the label selector (default `ferry.dev/carry=true`).
//!
//! Its policy (`policy.cedar`) grants the `context` and `k8s` imports, opening
//! the `{source}` cluster and listing those two kinds in `{hcp_namespace}`
//! only: no reads elsewhere, no writes at all.

ferry_sdk::hook_world!("../../../wit");

use ferry_sdk::hooks::{self, Point};
use ferry_sdk::k8s::Cluster;
use ferry_sdk::params::Params;
use ferry_sdk::{ResultExt, invalid, log};

/// The selector used when `carry_selector` is not set.
pub const DEFAULT_SELECTOR: &str = "ferry.dev/carry=true";

/// The kinds carried: (apiVersion, kind, optional — a missing CRD is skipped).
pub const KINDS: &[(&str, &str, bool)] = &[
    ("monitoring.coreos.com/v1", "ServiceMonitor", true),
    ("v1", "ConfigMap", false),
];

struct Hook;

impl Guest for Hook {
    fn on_event(event: Event) -> ferry_sdk::Result<Outcome> {
        if event.point != Point::SelectObjects {
            return Ok(Outcome::Proceed);
        }
        let payload = hooks::cluster_payload(&event)?;
        if payload.hcp_namespace.is_empty() {
            return Err(invalid(format!(
                "carry-labelled: the select-objects payload of {}/{} names no hcp_namespace",
                event.phase, event.step
            )));
        }
        let params = Params::load(&[]);
        let selector = params.or("carry_selector", DEFAULT_SELECTOR);
        let alias = if payload.source.is_empty() {
            params.or("source", "source").to_string()
        } else {
            payload.source.clone()
        };
        let cluster = Cluster::open(&alias).ctx(format!("opening cluster `{alias}`"))?;
        let namespace = payload.hcp_namespace.as_str();
        let mut listed = Vec::new();
        for (api_version, kind, optional) in KINDS {
            match cluster.list(api_version, kind, Some(namespace), Some(selector)) {
                Ok(items) => listed.extend(items),
                // The monitoring CRDs are not installed everywhere.
                Err(ferry_sdk::Error::NotFound(m)) if *optional => {
                    log::debug("kind not served, skipped", &[("kind", kind), ("error", &m)]);
                }
                Err(e) => {
                    return Err(ferry_sdk::context(
                        e,
                        format!("listing {kind} in {alias}/{namespace} with `{selector}`"),
                    ));
                }
            }
        }
        let count = listed.len().to_string();
        log::info(
            "carrying labelled objects",
            &[("namespace", namespace), ("selector", selector), ("count", &count)],
        );
        hooks::objects(&listed)
    }
}

export!(Hook);
