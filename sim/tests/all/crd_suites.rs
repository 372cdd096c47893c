//! HyperShift's own CRD validation suites (`../shared/upstream/hypershift/crd-tests`), every
//! file of the folder, driven through the simulator's HTTP API as `ferry-sim crd-tests` does.
//! Every case must pass or be listed, with its reason, in `sim/crd-tests.known-divergences.toml`.

use crate::support;

use anyhow::Result;
use ferry_sim::crd_tests::{self, Outcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upstream_suite_passes() -> Result<()> {
    let upstream = support::upstream_dir();
    let mut files: Vec<_> = std::fs::read_dir(upstream.join("hypershift/crd-tests"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no suite in {}", upstream.display());
    let known = crd_tests::load_known(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crd-tests.known-divergences.toml"),
    )?;
    let results = crd_tests::run(&support::upstream_crds(), &files, &known).await?;
    let failures: Vec<String> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Fail(_)))
        .map(ToString::to_string)
        .collect();
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every suite file ran cases (a suite whose CRD is missing must not pass by running nothing).
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        assert!(results.iter().any(|r| r.suite == name), "suite {name} ran no case");
    }
    // A divergence that no longer happens must leave the list.
    for k in &known {
        assert!(
            results
                .iter()
                .any(|r| r.suite == k.suite && r.name == k.case && matches!(r.outcome, Outcome::Known(_))),
            "known divergence {}/{} no longer diverges: remove it from the list",
            k.suite,
            k.case
        );
    }
    Ok(())
}

/// A CRD with a boolean, a bounded integer and a string, for [`SUITE`].
const WIDGETS_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.ferry.test
spec:
  group: ferry.test
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            properties:
              enabled: {type: boolean}
              size: {type: integer, maximum: 10}
              label: {type: string}
"#;

/// A suite written as upstream's loader (`loadSuiteFile`: sigs.k8s.io/yaml over go-yaml v2)
/// lets one write it: duplicate keys (the last wins), field names in another case, unknown
/// fields, YAML 1.1 booleans in the objects, a number as a case name.
const SUITE: &str = r#"Name: widgets
CRDName: widgets.ferry.test
version: v2
version: v1
description: an unknown field, ignored
Tests:
  onCreate:
  - name: yes is a boolean
    owner: an unknown field of a case, ignored
    initial: |
      apiVersion: ferry.test/v1
      kind: Widget
      spec:
        enabled: yes
        size: 0x3
        size: 4
    expected: |
      apiVersion: ferry.test/v1
      kind: Widget
      spec:
        enabled: true
        size: 4
  - name: on is a boolean, refused for a string
    initial: |
      apiVersion: ferry.test/v1
      kind: Widget
      spec:
        label: on
    ExpectedError: "spec.label in body must be of type string"
  - Name: 42
    Initial: |
      apiVersion: ferry.test/v1
      kind: Widget
      spec:
        size: 3
    initial: |
      apiVersion: ferry.test/v1
      kind: Widget
      spec:
        size: 50
    expectedError: "spec.size in body should be less than or equal to 10"
  - name: only the last initial is created
    initial: |
      apiVersion: ferry.test/v1
      kind: Widget
      spec:
        size: 3
    initial: |
      apiVersion: ferry.test/v1
      kind: Widget
      spec:
        size: 50
  OnUpdate:
  - name: off is false
    Initial: |
      apiVersion: ferry.test/v1
      kind: Widget
      spec:
        enabled: on
    UPDATED: |
      apiVersion: ferry.test/v1
      kind: Widget
      spec:
        enabled: off
    Expected: |
      apiVersion: ferry.test/v1
      kind: Widget
      spec:
        enabled: false
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_runs_with_the_meaning_upstreams_loader_gives_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let crds = dir.path().join("crds");
    std::fs::create_dir(&crds)?;
    std::fs::write(crds.join("widgets.crd.yaml"), WIDGETS_CRD)?;
    let file = dir.path().join("widgets.testsuite.yaml");
    std::fs::write(&file, SUITE)?;

    let suite = crd_tests::load_suite(&file)?;
    assert_eq!(suite.name, "widgets");
    assert_eq!(suite.crd_name, "widgets.ferry.test");
    assert_eq!(suite.version.as_deref(), Some("v1"), "the last `version` wins");
    let names: Vec<&str> = suite.tests.on_create.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "yes is a boolean",
            "on is a boolean, refused for a string",
            "42",
            "only the last initial is created"
        ]
    );
    assert_eq!(
        suite.tests.on_create[1].expected_error,
        "spec.label in body must be of type string"
    );
    // `initial` sorts after `Initial`, and the second `initial` is the last.
    assert!(suite.tests.on_create[2].initial.contains("size: 50"));
    assert!(suite.tests.on_create[3].initial.contains("size: 50"));
    let update = &suite.tests.on_update[0];
    assert_eq!(update.name, "off is false");
    assert!(update.updated.contains("enabled: off") && update.expected.contains("enabled: false"));

    let results = crd_tests::run(&crds, &[file], &[]).await?;
    let outcome = |name: &str| {
        results
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.outcome.clone())
            .unwrap_or_else(|| panic!("no result for {name}"))
    };
    assert_eq!(results.len(), 5);
    for name in [
        "yes is a boolean",
        "on is a boolean, refused for a string",
        "42",
        "off is false",
    ] {
        assert_eq!(outcome(name), Outcome::Pass, "{name}");
    }
    // Upstream creates the last `initial`, which the CRD refuses: the case fails as it would there.
    match outcome("only the last initial is created") {
        Outcome::Fail(why) => assert!(why.contains("should be less than or equal to 10"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    Ok(())
}
