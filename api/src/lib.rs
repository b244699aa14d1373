//! Anju's HTTP service and command line. Only this crate knows HTTP and problem+json;
//! everything else is in `anju-engine`.

pub mod app;
pub mod bench;
pub mod bench_city;
pub mod bench_http;
pub mod bench_rules;
pub mod cli;
pub mod extract;
pub mod patrol;
pub mod places;
pub mod problem;
pub mod public;
pub mod responsibility;
pub mod routes;
pub mod serve;

pub use app::{AppState, Application, Settings};
