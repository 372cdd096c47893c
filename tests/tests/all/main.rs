//! End to end: real guests through the real host against moto, etcd and ferry-sim (capabilities, runtime limits, hooks, migrations, abort, upstream behaviour).
//!
//! One test binary per crate (as ripgrep and wasmtime do): helpers are written once and
//! linked once. Run one module with `cargo test -p <crate> --test all <module>::`.

mod abort;
mod capabilities;
mod drill_env;
mod faults;
mod fleet;
mod hook_python;
mod hooks;
mod installed;
mod k8s;
mod migrate;
mod owned;
mod plan;
mod rbac;
mod restore;
mod runtime;
mod upstream;
