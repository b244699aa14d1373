//! The engine's error type: what went wrong, in terms a caller can act on.

use serde::Serialize;

/// One invalid value in a request, named by its path (`findings[0].category`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Errors of the engine. Only `Store` is the engine's own fault; every other variant is
/// a refusal of the caller's request and changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("command `{command}` is not allowed in state `{state}`{detail}")]
    IllegalTransition {
        state: String,
        command: String,
        detail: String,
    },
    #[error("stale version: expected {expected}, the case is at version {actual}")]
    StaleVersion { expected: i64, actual: i64 },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("the service is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        Error::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Error::Invalid(vec![e])
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
