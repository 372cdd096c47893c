//! `ferry:host/dns`: Route53 hosted zones by id.

use super::ZoneHandle;
use wasmtime::component::Resource;

use crate::capabilities::View;
use crate::capabilities::bindings::automation::ferry::host::dns::{Change, ChangeAction, Host, HostZone, RecordSet};
use crate::capabilities::dns::provider::{self as backend, normalize_name, normalize_zone_id};
use crate::capabilities::{HostError, HostResult};
use crate::policy::{Action, ResourceRef};

fn to_wit(r: backend::RecordSet) -> RecordSet {
    RecordSet {
        name: r.name,
        record_type: r.rtype,
        ttl: r.ttl,
        // An alias record's one value is the name it points at.
        values: r.alias_target.map_or(r.values, |a| vec![a]),
    }
}

impl View<'_> {
    fn zone_id(&self, h: &Resource<ZoneHandle>) -> HostResult<String> {
        Ok(self.table.get(h)?.id.clone())
    }
}

impl Host for View<'_> {
    async fn open_zone(&mut self, id: String) -> HostResult<Resource<ZoneHandle>> {
        let id = normalize_zone_id(&id).to_string();
        if id.is_empty() {
            return Err(HostError::Invalid("hosted zone id is empty".into()));
        }
        let approved = self
            .authorize(Action::DnsOpen, ResourceRef::Zone { zone: id.clone() }, false)
            .await?;
        self.finish(approved, Ok(()))?;
        Ok(self.table.push(ZoneHandle { id })?)
    }
}

impl HostZone for View<'_> {
    async fn id(&mut self, h: Resource<ZoneHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&h)?.id.clone())
    }

    async fn list_record_sets(
        &mut self,
        h: Resource<ZoneHandle>,
        name_filter: Option<String>,
    ) -> HostResult<Vec<RecordSet>> {
        let zone = self.zone_id(&h)?;
        let approved = self
            .authorize(Action::DnsList, ResourceRef::Zone { zone: zone.clone() }, false)
            .await?;
        let client = self.env.clients.route53(&self.env.config).await;
        let result = backend::list_record_sets(&client, &zone, name_filter.as_deref())
            .await
            .map(|l| l.into_iter().map(to_wit).collect())
            .map_err(HostError::from);
        self.finish(approved, result)
    }

    async fn change_record_sets(&mut self, h: Resource<ZoneHandle>, changes: Vec<Change>) -> HostResult<String> {
        let zone = self.zone_id(&h)?;
        if changes.is_empty() {
            return Err(HostError::Invalid("a change batch needs at least one change".into()));
        }
        let plan = self.env.plan;
        // Every record of the batch must be allowed before anything is sent:
        // Route53 applies a batch atomically, and so does the policy.
        let mut approvals = Vec::with_capacity(changes.len());
        for c in &changes {
            let resource = ResourceRef::RecordSet {
                zone: zone.clone(),
                name: normalize_name(&c.record_set.name),
                rtype: c.record_set.record_type.to_ascii_uppercase(),
            };
            let how = format!(
                "{} ttl {} values {}",
                backend_action(c.action).name(),
                c.record_set.ttl.map_or_else(|| "-".to_string(), |t| t.to_string()),
                c.record_set.values.join(" ")
            );
            let facts = crate::capabilities::Facts {
                change: crate::capabilities::Change::new(how.clone(), how),
                ..Default::default()
            };
            match self.authorize_with(Action::DnsChange, resource, plan, facts).await {
                Ok(approved) => approvals.push(approved),
                Err(denied) => {
                    // The records allowed so far were decided too: audit them
                    // with the outcome of the batch, which did not happen.
                    let result = Err(denied);
                    for a in approvals {
                        self.audit(a, &result);
                    }
                    return result;
                }
            }
        }
        let result = if plan {
            tracing::info!(%zone, changes = changes.len(), "plan: would change record sets");
            Ok("plan".to_string())
        } else {
            let client = self.env.clients.route53(&self.env.config).await;
            let batch = changes
                .into_iter()
                .map(|c| backend::Change {
                    action: backend_action(c.action),
                    record: backend::RecordSet {
                        name: c.record_set.name,
                        rtype: c.record_set.record_type,
                        ttl: c.record_set.ttl,
                        values: c.record_set.values,
                        alias_target: None,
                        set_identifier: None,
                    },
                })
                .collect();
            backend::change_record_sets(&client, &zone, batch)
                .await
                .map_err(HostError::from)
        };
        for a in approvals {
            self.audit(a, &result);
        }
        result
    }

    async fn drop(&mut self, h: Resource<ZoneHandle>) -> wasmtime::Result<()> {
        self.table.delete(h)?;
        Ok(())
    }
}

/// The guest's change action as the provider's.
fn backend_action(action: ChangeAction) -> backend::ChangeAction {
    match action {
        ChangeAction::Create => backend::ChangeAction::Create,
        ChangeAction::Upsert => backend::ChangeAction::Upsert,
        ChangeAction::Delete => backend::ChangeAction::Delete,
    }
}
