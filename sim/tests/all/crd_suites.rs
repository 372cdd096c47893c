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
