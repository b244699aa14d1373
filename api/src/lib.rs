//! Anju API.
