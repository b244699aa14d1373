//! Anju's engine: everything but HTTP. The pure state machine, the store with its SQLite
//! and PostgreSQL backends, the runtime that commits transitions with their effects, and
//! the timer and outbox workers.

pub mod access;
pub mod auth;
pub mod calendar;
pub mod clock;
pub mod directory;
pub mod domain;
pub mod error;
pub mod escalation;
pub mod grading;
pub mod machine;
pub mod metrics;
pub mod outbox;
pub mod patrol;
pub mod places;
pub mod planning;
pub mod registry;
pub mod responsibility;
pub mod routing;
pub mod rules;
pub mod runtime;
pub mod seed;
pub mod spatial;
pub mod store;
pub mod taxonomy;
pub mod text;
pub mod workflow;

pub use error::{Error, Result};
