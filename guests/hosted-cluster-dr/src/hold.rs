//! A Deployment stopped for as long as some hosted clusters' phases need it, and started
//! again at the replicas it had: the source's HyperShift operator during teardown, a
//! management cluster's external-dns while it restarts with a fresh cache. Both serve every
//! hosted cluster of their management cluster, and a fleet moves several at once.
//!
//! Before it is scaled, the Deployment is noted (annotations, under the resourceVersion read,
//! so that of two runs noting themselves at once one reads again and neither is lost) with
//! its replicas and the hosted clusters that need it stopped. A crash after the note still
//! knows the replicas to restore; a run that finishes while another still needs it stopped
//! leaves it so, and the last one starts it.

use ferry_sdk::ObjectRef;
use ferry_sdk::k8s::{Cluster, describe, str_at};
use ferry_sdk::{Error, Result, manifest};
use serde_json::{Value, json};

use crate::ctx::{Ctx, Done};
use crate::workloads;

/// How often a note is read again after losing a race with another run.
pub const NOTE_ATTEMPTS: usize = 20;

/// One Deployment and how it is noted.
pub struct Hold<'a> {
    /// The cluster.
    pub cluster: &'a Cluster,
    /// The Deployment.
    pub deployment: ObjectRef,
    /// Its name for messages ("the source's HyperShift operator").
    pub what: String,
    /// The annotation holding its replicas before the first holder stopped it.
    pub replicas_annotation: &'static str,
    /// The annotation listing the hosted clusters (`namespace/name`) that need it stopped.
    pub holders_annotation: &'static str,
    /// The progress step of the wait for its pods to go.
    pub step: &'a str,
    /// Why it must not run meanwhile.
    pub why: &'a str,
}

/// This run's hosted cluster, as holders name it.
pub fn this_hosted_cluster(c: &Ctx) -> String {
    format!("{}/{}", c.hc.ns, c.hc.name)
}

/// The hosted clusters noted in `annotation` of `d`.
pub fn holders(d: &Value, annotation: &str) -> Vec<String> {
    manifest::annotation(d, annotation)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `me` stopped `d` (or an older ferry did, which noted only the replicas) and has
/// not started it again.
pub fn stopped_for(d: &Value, me: &str, holders_annotation: &str, replicas_annotation: &str) -> bool {
    let noted = holders(d, holders_annotation);
    noted.iter().any(|h| h == me) || (noted.is_empty() && manifest::annotation(d, replicas_annotation).is_some())
}

impl Hold<'_> {
    /// Whether this run's hosted cluster holds it stopped now.
    pub fn held_by_me(&self, c: &Ctx) -> Result<bool> {
        let me = this_hosted_cluster(c);
        Ok(self
            .read(c)?
            .is_some_and(|d| stopped_for(&d, &me, self.holders_annotation, self.replicas_annotation)))
    }

    /// The Deployment as this run sees it: in a plan, as the plan's earlier writes would have
    /// left it (they were dry runs), so the plan holds the writes the real run makes.
    fn read(&self, c: &Ctx) -> Result<Option<Value>> {
        if c.plan
            && let Some(d) = c.planned.get(&describe(&self.deployment))
        {
            return Ok(Some(d.clone()));
        }
        self.cluster.get(&self.deployment)
    }

    /// In a plan: what a merge patch (a note, or `spec.replicas` for a scale) would leave on
    /// it, applied as the API server applies one (RFC 7386: `null` removes a key).
    fn plan(&self, c: &mut Ctx, d: &Value, patch: &Value) {
        if c.plan {
            let mut after = d.clone();
            merge(&mut after, patch);
            c.planned.insert(describe(&self.deployment), after);
        }
    }

    /// Notes `annotations` under the resourceVersion `d` was read at; `false` on a conflict.
    fn note(&self, d: &Value, annotations: Value) -> Result<bool> {
        let rv = str_at(d, "/metadata/resourceVersion").unwrap_or_default();
        match self.cluster.merge_patch(
            &self.deployment,
            &json!({"metadata": {"resourceVersion": rv, "annotations": annotations}}),
        ) {
            Ok(_) => Ok(true),
            Err(Error::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn lost_races(&self) -> Error {
        Error::Unavailable(format!(
            "{} kept changing while ferry noted itself on it ({NOTE_ATTEMPTS} tries); re-run",
            describe(&self.deployment)
        ))
    }

    /// Notes this run's hosted cluster on the Deployment, then scales it to zero and waits for
    /// its pods to go.
    pub fn stop(&self, c: &mut Ctx) -> Result<Done> {
        let me = this_hosted_cluster(c);
        let mut noted = None;
        for _ in 0..NOTE_ATTEMPTS {
            let Some(d) = self.read(c)? else {
                return Ok(Done::Skipped(format!("no Deployment {}", describe(&self.deployment))));
            };
            let replicas = d.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
            let mut others = holders(&d, self.holders_annotation);
            let recorded = manifest::annotation(&d, self.replicas_annotation).is_some();
            if others.contains(&me) && recorded {
                noted = Some(replicas);
                break;
            }
            // Noted before it is scaled: a crash after this still knows the replicas to
            // restore, and another run finishing meanwhile knows not to start it.
            if !others.contains(&me) {
                others.push(me.clone());
                others.sort();
            }
            let mut annotations = json!({self.holders_annotation: others.join(",")});
            if !recorded {
                // Found stopped by someone else: it was stopped, and stays so afterwards.
                annotations[self.replicas_annotation] = json!(replicas.to_string());
            }
            if self.note(&d, annotations.clone())? {
                self.plan(c, &d, &json!({"metadata": {"annotations": annotations}}));
                noted = Some(replicas);
                break;
            }
        }
        let Some(replicas) = noted else {
            return Err(self.lost_races());
        };
        if replicas == 0 {
            return Ok(Done::Already(format!("{} is stopped", self.what)));
        }
        self.cluster.scale(&self.deployment, 0)?;
        if c.plan {
            let d = self.read(c)?.unwrap_or_default();
            self.plan(c, &d, &json!({"spec": {"replicas": 0}}));
            return Ok(Done::Planned(format!(
                "would note this hosted cluster on {} and scale it from {replicas} to 0",
                self.what
            )));
        }
        let ns = self.deployment.namespace.clone().unwrap_or_default();
        workloads::wait_pods_gone(
            c,
            self.cluster,
            &ns,
            &[self.deployment.name.as_str()],
            self.step,
            self.why,
        )?;
        Ok(Done::Did(format!("scaled {} from {replicas} to 0", self.what)))
    }

    /// Starts it again at the replicas it had, unless another hosted cluster still needs it
    /// stopped (then that one starts it). It is scaled before the notes are cleared: a run
    /// that notes itself in between finds the replicas to restore, and its own scale-down
    /// stops it again.
    pub fn start(&self, c: &mut Ctx) -> Result<Done> {
        let me = this_hosted_cluster(c);
        let mut scaled: Option<u32> = None;
        for _ in 0..NOTE_ATTEMPTS {
            let Some(d) = self.read(c)? else {
                return Ok(Done::Skipped(format!("no Deployment {}", describe(&self.deployment))));
            };
            let Some(recorded) = manifest::annotation(&d, self.replicas_annotation).map(str::to_string) else {
                return Ok(match scaled {
                    Some(n) => Done::Did(format!("scaled {} back to {n}", self.what)),
                    None => Done::Already(format!("{} runs as before", self.what)),
                });
            };
            let others: Vec<String> = holders(&d, self.holders_annotation)
                .into_iter()
                .filter(|h| *h != me)
                .collect();
            if !others.is_empty() {
                let note = json!({self.holders_annotation: others.join(",")});
                if self.note(&d, note.clone())? {
                    self.plan(c, &d, &json!({"metadata": {"annotations": note}}));
                    if c.plan {
                        return Ok(Done::Planned(format!(
                            "would leave {} stopped for {}",
                            self.what,
                            others.join(", ")
                        )));
                    }
                    return Ok(Done::Already(format!(
                        "{} stays stopped: {} still need it stopped, and start it again when done",
                        self.what,
                        others.join(", ")
                    )));
                }
                continue;
            }
            let replicas: u32 = recorded.parse().map_err(|_| {
                Error::Invalid(format!(
                    "annotation {}={recorded:?} on {} is not a number; scale it by hand",
                    self.replicas_annotation,
                    describe(&self.deployment)
                ))
            })?;
            if scaled.is_none() {
                self.cluster.scale(&self.deployment, replicas)?;
                self.plan(c, &d, &json!({"spec": {"replicas": replicas}}));
                scaled = Some(replicas);
                // Read again: the notes are cleared under the resourceVersion after the scale.
                continue;
            }
            let cleared = json!({self.holders_annotation: null, self.replicas_annotation: null});
            if self.note(&d, cleared.clone())? {
                self.plan(c, &d, &json!({"metadata": {"annotations": cleared}}));
                if c.plan {
                    return Ok(Done::Planned(format!(
                        "would scale {} back to {replicas} and clear the notes",
                        self.what
                    )));
                }
                return Ok(Done::Did(format!("scaled {} back to {replicas}", self.what)));
            }
        }
        Err(self.lost_races())
    }
}

fn merge(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Some(t) = target.as_object_mut() {
        for (k, v) in fields {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{OPERATOR_HOLDERS_ANNOTATION, OPERATOR_REPLICAS_ANNOTATION};

    /// A plan's copy of a Deployment takes a note or a scale as the API server would.
    #[test]
    fn a_merge_patch_sets_nested_fields_and_null_removes() {
        let mut d =
            json!({"metadata": {"annotations": {"a": "1", "b": "2"}, "name": "operator"}, "spec": {"replicas": 2}});
        merge(
            &mut d,
            &json!({"metadata": {"annotations": {"a": null, "c": "3"}}, "spec": {"replicas": 0}}),
        );
        assert_eq!(
            d,
            json!({"metadata": {"annotations": {"b": "2", "c": "3"}, "name": "operator"}, "spec": {"replicas": 0}})
        );
    }

    /// Which hosted clusters hold a Deployment stopped, as noted on it; an older ferry noted
    /// only the replicas, and its run counts as this one's.
    #[test]
    fn a_deployment_is_held_by_the_hosted_clusters_noted_on_it() {
        let noted = |h: Option<&str>, replicas: Option<&str>| {
            let mut a = serde_json::Map::new();
            if let Some(h) = h {
                a.insert(OPERATOR_HOLDERS_ANNOTATION.into(), json!(h));
            }
            if let Some(r) = replicas {
                a.insert(OPERATOR_REPLICAS_ANNOTATION.into(), json!(r));
            }
            json!({"metadata": {"annotations": a}})
        };
        let d = noted(Some("clusters/a, team-b/db,"), Some("2"));
        assert_eq!(holders(&d, OPERATOR_HOLDERS_ANNOTATION), ["clusters/a", "team-b/db"]);
        let stopped_for =
            |d: &Value, me: &str| stopped_for(d, me, OPERATOR_HOLDERS_ANNOTATION, OPERATOR_REPLICAS_ANNOTATION);
        assert!(stopped_for(&d, "team-b/db"));
        assert!(!stopped_for(&d, "clusters/b"));
        assert!(stopped_for(&noted(None, Some("2")), "clusters/b"));
        assert!(!stopped_for(&noted(None, None), "clusters/b"));
        assert!(holders(&noted(Some(""), Some("0")), OPERATOR_HOLDERS_ANNOTATION).is_empty());
    }
}
