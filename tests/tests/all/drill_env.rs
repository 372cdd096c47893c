//! `ferry_drill::Drill` starts everything a drill needs on loopback, serves
//! it through the kubeconfigs and site config it writes, and shuts down.
//! (The full migration e2e tests live elsewhere, once the stock guest lands.)

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use ferry_drill::{Drill, DrillOptions};
use ferry_sim::kube::registry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_starts_serves_and_shuts_down() {
    ferry_tests::init_logging();
    let drill = Drill::start(DrillOptions {
        install_moto: false,
        crds: ferry_tests::upstream_crds(),
        ..Default::default()
    })
    .await
    .unwrap();
    let config = drill.run_config().clone();
    let hc = drill.env().scenario.hosted_cluster.clone();

    // The site config and its run config.
    assert!(drill.site_path().is_file());
    assert_eq!(config.params["hc_name"], hc.name);
    assert_eq!(config.params["bucket"], "ferry-drill-backups");
    assert_eq!(config.params["zone_id"], drill.zone_id());
    assert_eq!(config.params["external_dns_domain"], hc.external_dns_domain);
    assert_eq!(config.aws.endpoint_url.as_deref(), Some(drill.s3().url().as_str()));
    assert_eq!(config.aws.route53_endpoint_url, Some(drill.moto_url()));

    // The kubeconfigs reach the simulated clusters (source has the hosted cluster).
    for alias in ["source", "destination", "hosted"] {
        let kc = config.clusters[alias].kubeconfig.clone().unwrap();
        assert!(kc.is_file(), "{alias}: {}", kc.display());
    }
    let text = std::fs::read_to_string(config.clusters["source"].kubeconfig.as_ref().unwrap()).unwrap();
    assert!(text.contains(&drill.env().source().sim.url()), "{text}");
    let text = std::fs::read_to_string(config.clusters["destination"].kubeconfig.as_ref().unwrap()).unwrap();
    assert!(text.contains(&drill.env().destination().unwrap().sim.url()), "{text}");
    drill
        .env()
        .source()
        .sim
        .store()
        .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
        .unwrap();

    // The bucket exists and checks signatures; the zone exists in moto.
    let s3 = drill.s3_client().await;
    s3.head_bucket().bucket(drill.bucket()).send().await.unwrap();
    let zone = drill
        .route53()
        .get_hosted_zone()
        .id(drill.zone_id())
        .send()
        .await
        .unwrap();
    assert_eq!(
        zone.hosted_zone().unwrap().name().trim_end_matches('.'),
        hc.external_dns_domain
    );

    // external-dns: the Deployment the guest's preflight reads, and a controller per cluster.
    for c in &drill.env().clusters {
        let name = c.sim.name();
        let d = c
            .sim
            .store()
            .get(&registry::DEPLOYMENT, Some("hypershift"), "external-dns")
            .unwrap();
        let args: Vec<&str> = d["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let owner = format!("--txt-owner-id=ferry-drill-{name}");
        let domain = format!("--domain-filter={}", hc.external_dns_domain);
        assert!(args.contains(&owner.as_str()), "{args:?}");
        assert!(args.contains(&domain.as_str()), "{args:?}");
        assert!(args.contains(&"--txt-suffix=-external-dns"), "{args:?}");
        assert!(args.contains(&"--source=openshift-route"), "{args:?}");
        let ed = drill.external_dns(name).unwrap();
        assert_eq!(
            ed.owner_id(),
            Some(format!("ferry-drill-{name}")),
            "its process runs with its arguments"
        );
    }
    // The source's external-dns publishes the seeded control plane's routes.
    let report = drill.source_external_dns().unwrap().reconcile_now().await.unwrap();
    assert!(report.errors.is_empty(), "{report:?}");

    // Before any migration, verify fails with named checks (nothing moved yet).
    let checks = drill.verify().await;
    assert!(!checks.passed());
    assert!(!checks.check("source-clean").unwrap().passed);
    assert!(checks.check("no-deletion-flow").unwrap().passed);

    let dir = drill.dir().to_path_buf();
    drill.shutdown().await;
    assert!(!dir.exists(), "the temporary directory is removed");
}
