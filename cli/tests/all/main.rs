//! The `ferry` command line, run as a process.
//!
//! One test binary per crate (as ripgrep and wasmtime do): helpers are written once and
//! linked once. Run one module with `cargo test -p <crate> --test all <module>::`.

mod cli;
mod cli_site;
mod crash;
mod fleet;
mod lab;
mod plans;
mod scaffold;
