//! Glue for other crates' types, each behind a cargo feature of the same
//! name; re-exported at the crate root (`rampart::axum`, `rampart::reqwest`,
//! `rampart::tonic`, `rampart::tower_http`).

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "reqwest")]
pub mod reqwest;
#[cfg(feature = "tonic")]
pub mod tonic;
#[cfg(feature = "tower-http")]
pub mod tower_http;
