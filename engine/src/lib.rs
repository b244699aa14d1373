//! Anju's engine: everything but HTTP. The pure state machine, the store with its SQLite
//! and PostgreSQL backends, the runtime that commits transitions with their effects, and
//! the timer and outbox workers.

pub mod auth;
pub mod clock;
pub mod domain;
pub mod error;
pub mod machine;
pub mod routing;
pub mod taxonomy;
pub mod workflow;

pub mod store {
    //! Placeholder until the store lands.
    #[derive(Debug, thiserror::Error)]
    #[error("store")]
    pub struct Error;
}

pub use error::{Error, Result};
