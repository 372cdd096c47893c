//! The generic host's integration tests: its providers against real services (moto, etcd, the SigV4 S3) and its policy engine.
//!
//! One test binary per crate (as ripgrep and wasmtime do): helpers are written once and
//! linked once. Run one module with `cargo test -p <crate> --test all <module>::`.

mod backends_dns;
mod backends_etcd;
mod backends_s3;
mod backends_s3_sigv4;
mod policy;
