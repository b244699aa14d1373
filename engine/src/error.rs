//! The engine's error type: the core's refusals, and the engine's own faults (storage, internal).

pub use anju_core::error::FieldError;

/// Errors of the engine. `Store` and `Internal` are the engine's own faults; every other
/// variant is a refusal of the caller's request and changes nothing. The refusals are
/// those of the pure core (`anju_core::Error`, converted variant by variant) plus the
/// engine's own (`IdempotencyKeyReused`, `ShuttingDown`, the sign-in's refusals).
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
    /// The Idempotency-Key was already used by this caller for a different request.
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("the service is shutting down")]
    ShuttingDown,
    /// A sign-in refused: a wrong, used or expired code. The field at fault is named;
    /// the answer never says whether an address is registered.
    #[error("{field}: {detail}")]
    SignInRefused { field: &'static str, detail: String },
    /// Too many requests of a kind from one address or client; try again later.
    #[error("{field}: {detail}")]
    TooManyRequests { field: &'static str, detail: String },
    /// A message the person asked for (a sign-in code) that its channel did not take:
    /// said, so that nobody waits for a code that will not come.
    #[error("{field}: {detail}")]
    NotSent { field: &'static str, detail: String },
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// A failure that is not about stored data: a worker thread that could not start or
    /// panicked, a batch rolled back for a reason the engine cannot name.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<anju_core::Error> for Error {
    fn from(e: anju_core::Error) -> Self {
        use anju_core::Error as Core;
        match e {
            Core::Invalid(fields) => Error::Invalid(fields),
            Core::NotFound { what, id } => Error::NotFound { what, id },
            Core::Forbidden(why) => Error::Forbidden(why),
            Core::IllegalTransition {
                state,
                command,
                detail,
            } => Error::IllegalTransition {
                state,
                command,
                detail,
            },
            Core::StaleVersion { expected, actual } => Error::StaleVersion { expected, actual },
            Core::Conflict(why) => Error::Conflict(why),
        }
    }
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
