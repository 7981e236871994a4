//! groupetl: group-level analytics tables from product-analytics exports.

pub mod attribute;
pub mod calendar;
pub mod cli;
pub mod fold;
pub mod intern;
pub mod job;
pub mod normalize;
pub mod runner;
pub mod sinks;
pub mod sources;
pub mod storage;
pub mod tables;
