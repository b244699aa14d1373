//! Anju's HTTP service and command line. Only this crate knows HTTP and problem+json;
//! everything else is in `anju-engine`.

pub mod app;
pub mod bench;
pub mod cli;
pub mod http;
pub mod openapi;
pub mod report;
pub mod routes;
pub mod state;
pub mod web;

pub use app::{AppState, Application, Settings};
