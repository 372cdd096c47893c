//! One file per command family.

pub mod dr;
pub mod drill;
pub mod new;
pub mod policy;
pub mod run;
