//! Fault injection (`ferry_sim::kube::faults`) seen through kube-rs: injected errors are real API
//! errors with `Status` bodies, a 429 carries `Retry-After`, outages are scoped, dropped
//! connections surface as transport errors, and `every(k)` hits exactly every k-th request.
//! kube 5 clients retry 429/503/504 by default; the tests turn that off except where they show it.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, Config};
use serde_json::json;

use ferry_sim::Sim;
use ferry_sim::kube::faults::{FaultAction, FaultRule, InjectedError, RuleStats, Verb};

/// A server and a client *without* kube's default retry of 429/503/504, so that every
/// injected error reaches the test.
async fn start() -> Result<(Sim, Client)> {
    let sim = Sim::start("faults").await?;
    let mut config = Config::new(sim.url().parse()?);
    config.default_retry = false;
    let client = Client::try_from(config)?;
    Ok((sim, client))
}

fn api_err<T: std::fmt::Debug>(r: kube::Result<T>) -> Result<kube::core::Status> {
    match r {
        Err(kube::Error::Api(e)) => Ok(*e),
        other => Err(anyhow!("expected an API error, got {other:?}")),
    }
}

async fn make_cm(client: &Client, name: &str) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}}))?;
    cms.create(&PostParams::default(), &cm).await?;
    Ok(())
}

#[tokio::test]
async fn internal_error_on_get_until_cleared() -> Result<()> {
    let (sim, client) = start().await?;
    make_cm(&client, "a").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let id = sim.faults().add(
        FaultRule::error(InjectedError::InternalError)
            .verb(Verb::Get)
            .resource("configmaps"),
    );
    let st = api_err(cms.get("a").await)?;
    assert_eq!((st.code, st.reason.as_str()), (500, "InternalError"));
    // A LIST is another verb: not affected.
    assert_eq!(cms.list(&ListParams::default()).await?.items.len(), 1);
    assert_eq!(sim.faults().stats(id), Some(RuleStats { matched: 1, fired: 1 }));
    sim.faults().clear();
    assert_eq!(cms.get("a").await?.data.unwrap()["k"], "v");
    Ok(())
}

#[tokio::test]
async fn conflict_is_a_status_conflict() -> Result<()> {
    let (sim, client) = start().await?;
    sim.faults().add(
        FaultRule::error(InjectedError::Conflict)
            .verb(Verb::Post)
            .resource("ConfigMap"),
    );
    let err = make_cm(&client, "c").await.unwrap_err();
    let st = match err.downcast::<kube::Error>()? {
        kube::Error::Api(st) => st,
        other => return Err(anyhow!("expected an API error, got {other:?}")),
    };
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    // Nothing was created.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    assert!(cms.get_opt("c").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() -> Result<()> {
    let (sim, client) = start().await?;
    make_cm(&client, "a").await?;
    sim.faults().add(
        FaultRule::error(InjectedError::TooManyRequests { retry_after_secs: 7 })
            .resource("configmaps")
            .namespace("default"),
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let st = api_err(cms.get("a").await)?;
    assert_eq!((st.code, st.reason.as_str()), (429, "TooManyRequests"));
    // The raw response has the header and the Status details.
    let req = http::Request::get("/api/v1/namespaces/default/configmaps/a").body(Vec::new())?;
    let resp = client.send(req.map(kube::client::Body::from)).await?;
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    Ok(())
}

#[tokio::test]
async fn outage_of_one_kind_spares_the_others() -> Result<()> {
    let (sim, client) = start().await?;
    make_cm(&client, "a").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let id = sim.faults().outage(Some("configmaps"), None);
    for _ in 0..3 {
        assert_eq!(api_err(cms.get("a").await)?.code, 503);
        assert_eq!(api_err(cms.list(&ListParams::default()).await)?.code, 503);
        assert!(secrets.list(&ListParams::default()).await?.items.is_empty());
    }
    assert!(sim.faults().remove(id));
    cms.get("a").await?;

    // A bounded whole-server outage: the next 2 requests fail, whatever they are.
    sim.faults().outage(None, Some(2));
    assert_eq!(api_err(secrets.list(&ListParams::default()).await)?.code, 503);
    assert_eq!(api_err(cms.get("a").await)?.code, 503);
    cms.get("a").await?;
    secrets.list(&ListParams::default()).await?;
    Ok(())
}

#[tokio::test]
async fn dropped_connection_is_a_transport_error() -> Result<()> {
    let (sim, client) = start().await?;
    make_cm(&client, "a").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    sim.faults().add(
        FaultRule::new(FaultAction::DropConnection)
            .verb(Verb::Get)
            .resource("configmaps")
            .times(1),
    );
    match cms.get("a").await {
        Err(kube::Error::HyperError(_) | kube::Error::Service(_)) => {}
        other => return Err(anyhow!("expected a transport error, got {other:?}")),
    }
    // The rule is spent; the client reconnects and succeeds.
    cms.get("a").await?;
    Ok(())
}

#[tokio::test]
async fn every_kth_request_fails_exactly() -> Result<()> {
    let (sim, client) = start().await?;
    make_cm(&client, "a").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let id = sim.faults().add(
        FaultRule::error(InjectedError::ServiceUnavailable {
            retry_after_secs: Some(1),
        })
        .every(3),
    );
    let mut failed = Vec::new();
    for n in 1..=9 {
        if let Err(e) = cms.get("a").await {
            assert!(matches!(&e, kube::Error::Api(st) if st.code == 503), "{e:?}");
            failed.push(n);
        }
    }
    assert_eq!(failed, vec![3, 6, 9]);
    assert_eq!(sim.faults().stats(id), Some(RuleStats { matched: 9, fired: 3 }));
    Ok(())
}

#[tokio::test]
async fn latency_delays_only_matching_requests() -> Result<()> {
    let (sim, client) = start().await?;
    make_cm(&client, "a").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    sim.faults().add(
        FaultRule::new(FaultAction::Delay(Duration::from_millis(300)))
            .verb(Verb::List)
            .resource("configmaps"),
    );
    let t = Instant::now();
    assert_eq!(cms.list(&ListParams::default()).await?.items.len(), 1);
    assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());
    Ok(())
}

#[tokio::test]
async fn kube_default_retry_rides_out_a_bounded_outage() -> Result<()> {
    let (sim, _) = start().await?;
    // A default kube client (default_retry = true).
    let client = Client::try_from(Config::new(sim.url().parse()?))?;
    make_cm(&client, "a").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let id = sim.faults().outage(Some("configmaps"), Some(2));
    cms.get("a").await?;
    assert_eq!(sim.faults().stats(id), Some(RuleStats { matched: 2, fired: 2 }));
    Ok(())
}
