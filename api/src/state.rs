//! The state every handler can reach: the runtime, the channels notices go out on, and which clock it runs on.

use std::sync::Arc;

use anju_engine::outbox::Channels;
use anju_engine::runtime::Runtime;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Runtime,
    /// `system` in production; `manual` only in test builds that install such a clock.
    pub clock_kind: &'static str,
    /// The channels of this process: sign-in codes go out on them at once.
    pub channels: Arc<Channels>,
    /// Pages are reached over https (TLS here, or `ANJU_PUBLIC_URL` is https behind a
    /// proxy): session cookies are `Secure`.
    pub secure: bool,
    /// The maps' tiles.
    pub map: Arc<crate::web::MapSettings>,
}
