//! The simulator's integration tests: conformance through kube-rs and kubectl, HyperShift's CRD
//! suites, the HyperShift world, hosted etcd, external-dns, faults and the fidelity inventory
//! (`sim/inventory.toml`).
//!
//! One test binary per crate (as ripgrep and wasmtime do): helpers are written once and
//! linked once. Run one module with `cargo test -p <crate> --test all <module>::`.

mod support;

mod conformance_kube;
mod conformance_kubectl;
mod crd_suites;
mod external_dns;
mod faults;
mod hosted_etcd;
mod hypershift;
mod inventory;
