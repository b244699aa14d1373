//! The pure code's errors: refusals of a caller's request, in terms a caller can act on. The engine's own error adds what can fail in I/O.

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

/// Refusals of pure code: each is the caller's request being refused and changes
/// nothing. The engine's `Error` has the same variants and adds its own faults.
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
