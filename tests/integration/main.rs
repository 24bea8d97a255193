//! Ferry's integration tests: one binary, the real router and real databases.

pub mod helpers;

mod api_docs;
mod auth;
mod blob_stores;
mod browser;
mod config_docs;
mod devices;
mod events;
pub mod garage;
mod health;
mod items;
mod layers;
mod object_store;
mod openapi;
mod operations;
mod outages;
mod own_postgres;
mod phone;
mod process;
mod resume;
mod security;
mod shares;
mod space;
mod store;
mod uploads;
