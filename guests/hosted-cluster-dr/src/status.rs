//! `status`: where a migration of this hosted cluster stands, read from the clusters alone
//! (ferry's marker on the source, the restored HostedCluster's notes on the destination,
//! what is left of the source), so that `ferry migrate` run again after a crash carries on
//! from the first phase not done, without the operator knowing which. Changes nothing.

use ferry_sdk::{Error, Result, manifest};
use serde_json::{Value, json};

use crate::backup::Marker;
use crate::ctx::{Ctx, Done};
use crate::model::*;

/// Runs the status phase: `next` is the first phase not done (`backup`, `restore`,
/// `teardown`, `finish`) or `done`, and `why` says what showed it.
pub fn run(args: &[(String, String)]) -> Result<Value> {
    let mut c = Ctx::new("status", args)?;
    let src = c.open("source")?;
    let dst = c.open("destination")?;
    let mut found = (String::new(), String::new());
    c.step("locate", |c| {
        found = locate(c, &src, &dst)?;
        Ok(Done::Checked(format!("next: {} ({})", found.0, found.1)))
    })?;
    c.out.insert("next".into(), json!(found.0));
    c.out.insert("why".into(), json!(found.1));
    Ok(c.summary())
}

fn locate(c: &Ctx, src: &ferry_sdk::k8s::Cluster, dst: &ferry_sdk::k8s::Cluster) -> Result<(String, String)> {
    let at = |next: &str, why: String| Ok((next.to_string(), why));
    let restored = dst
        .get(&c.hc.hc_ref())?
        .filter(|hc| manifest::annotation(hc, BACKUP_ID_ANNOTATION).is_some());
    let Some(hc) = restored else {
        // Nothing restored yet: backup, from wherever its marker says it is.
        return match Marker::read(c, src)? {
            Some(m) if m.state == "complete" => at(
                "restore",
                format!(
                    "backup {} is complete and the destination has no HostedCluster from it",
                    m.backup_id
                ),
            ),
            Some(m) if m.state != "aborted" => at("backup", format!("backup {} is {}", m.backup_id, m.state)),
            _ => at("backup", "no backup of this hosted cluster is in progress".into()),
        };
    };
    let id = manifest::annotation(&hc, BACKUP_ID_ANNOTATION).unwrap_or_default();
    if let Some(t) = manifest::annotation(&hc, FINISHED_ANNOTATION) {
        return at("done", format!("the migration finished at {t} (backup {id})"));
    }
    if manifest::annotation(&hc, RESTORE_COMPLETE_ANNOTATION).is_none() {
        return at(
            "restore",
            format!("the destination's HostedCluster was created from backup {id}; its restore is not complete"),
        );
    }
    let source_left = match src.get(&c.hc.hc_ref()) {
        Ok(Some(_)) => true,
        Ok(None) => src.get(&r(NAMESPACE, None, &c.hc.hcp_ns))?.is_some(),
        Err(e @ Error::Denied(_)) => return Err(e),
        Err(e) => {
            return Err(ferry_sdk::context(
                e,
                format!(
                    "the destination restored backup {id}; whether the source `{}` still holds the hosted cluster \
                     cannot be read",
                    c.alias("source")
                ),
            ));
        }
    };
    if source_left {
        return at(
            "teardown",
            format!("the destination restored backup {id}; the source still holds the old control plane"),
        );
    }
    at(
        "finish",
        format!("the destination restored backup {id} and nothing of it is left on the source"),
    )
}
