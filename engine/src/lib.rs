//! Anju's engine: everything but HTTP. The store with its SQLite and PostgreSQL
//! backends, the runtime that commits transitions with their effects, and the timer,
//! rule and outbox workers. The pure core (`anju-core`) is re-exported under the same
//! module names, so that callers need one crate.

pub use anju_core::{
    auth, calendar, domain, evidence, grading, inspection, intake, machine, notices, planning,
    policy, records, registry, routing, rules, seed, signin, spatial, stats, taxonomy, text, time,
    workflow,
};

pub mod blobs;
pub mod error;
pub mod metrics;
pub mod model;
pub mod outbox;
pub mod runtime;

// The runtime's concerns keep their short paths (`anju_engine::patrol`, …).
pub use runtime::{directory, escalation, patrol, places, responsibility};
pub mod store;

pub use error::{Error, Result};
