//! Anju's pure core: everything that decides without I/O. Domain ids and points, time
//! (China time, the clock), the taxonomy, the working-day calendar, grading, planning,
//! registry records and their checks, the workflow model and the state machine, the
//! rules sandbox, and geometry. Cargo keeps it pure: this crate depends on no tokio,
//! sqlx, axum or hyper, so the machine can never touch a database.

pub mod auth;
pub mod calendar;
pub mod domain;
pub mod error;
pub mod evidence;
pub mod grading;
pub mod inspection;
pub mod intake;
pub mod machine;
pub mod notices;
pub mod planning;
pub mod policy;
pub mod records;
pub mod registry;
pub mod routing;
pub mod rules;
pub mod seed;
pub mod signin;
pub mod spatial;
pub mod stats;
pub mod taxonomy;
pub mod text;
pub mod time;
pub mod workflow;

pub use error::{Error, FieldError, Result};
