//! ferry's main job, as a product on the generic host: the disaster recovery of HyperShift
//! hosted clusters.
//!
//! - [`stock`]: the embedded stock guest `hosted-cluster-dr` and its policy;
//! - [`site`]: the site config (what the documented procedure's env file held);
//! - [`phases`]: running its phases (`backup`, `restore`, `teardown`, `finish`, `abort`)
//!   and `migrate`;
//! - [`fleet`]: a management cluster's hosted clusters at once, each its own migration;
//! - [`lease`]: one ferry at a time per hosted cluster.
//!
//! The rehearsal against the simulator lives apart, in `ferry-drill`, so nothing here builds
//! the simulator.

pub mod fleet;
pub mod lease;
pub mod owned;
pub mod phases;
pub mod site;
pub mod stock;

pub use phases::{DrOptions, GuestChoice, MigrateOptions, MigrateReport, Phase, PhaseArgs, PhaseReport};
