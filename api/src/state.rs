//! The state every handler can reach: the runtime, and which clock it runs on.

use anju_engine::runtime::Runtime;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Runtime,
    /// `system` in production; `manual` only in test builds that install such a clock.
    pub clock_kind: &'static str,
}
