//! groupetl: group-level analytics tables from product-analytics exports.

pub mod calendar;
pub mod intern;
pub mod job;
pub mod tables;
pub mod sources;
pub mod normalize;
pub mod fold;
pub mod attribute;
pub mod sinks;
pub mod runner;
pub mod cli;
