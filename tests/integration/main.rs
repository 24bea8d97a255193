//! Ferry's integration tests: one binary, the real router and real databases.

pub mod helpers;

mod api_docs;
mod auth;
mod browser;
mod config_docs;
mod events;
mod health;
mod items;
mod layers;
mod operations;
mod process;
mod resume;
mod security;
mod shares;
mod store;
mod uploads;
