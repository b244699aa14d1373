//! What the service needs of HTTP besides its routes: request extractors whose failures are problem+json, the problem types themselves, the security headers, and the listener with its connection caps and timeouts.

pub mod extract;
pub mod headers;
pub mod problem;
pub mod serve;

/// The largest request body accepted, in bytes.
pub const MAX_BODY: usize = 1 << 20;
