//! The integration tests: one binary (`autotests = false`), one module per concern.

mod cli;
mod common;
mod formats;
mod golden;
mod model;
mod runner;
mod s3;
