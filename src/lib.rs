//! Ferry: a self-hosted drop box for notes and files that appear live on every device.

pub mod app;
pub mod auth;
pub mod blobs;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod metrics;
pub mod ops;
pub mod partials;
pub mod startup;
pub mod store;
pub mod telemetry;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_REVISION: &str = env!("FERRY_GIT_REVISION");
