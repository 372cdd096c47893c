//! One file per command family.

pub mod audit;
pub mod backup;
pub mod dr;
pub mod drill;
pub mod fleet;
pub mod fleet_render;
pub mod lab;
pub mod new;
pub mod plan;
pub mod policy;
pub mod run;
