//! The service: builds the runtime over a store, binds the HTTP listener (port 0 gives a random port), runs the workers, and shuts down cleanly.

use std::net::SocketAddr;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::trace::TraceLayer;

use anju_engine::outbox::Channels;
use anju_engine::runtime::{self, Runtime};
use anju_engine::store;
use anju_engine::time::SharedClock;

use crate::http::MAX_BODY;
use crate::http::problem::ApiError;
pub use crate::state::AppState;

/// How to run the service.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub bind: SocketAddr,
    /// Run the timer and outbox workers in this process.
    pub workers: bool,
    /// Connection caps and timeouts of the listener.
    pub limits: crate::http::serve::Limits,
    /// Serve HTTPS with this certificate and key (phones give their position and
    /// camera to secure pages only); plain HTTP without it (behind a reverse proxy).
    pub tls: Option<crate::http::serve::TlsFiles>,
    /// The maps' tiles (none by default: a plain background).
    pub map: crate::web::MapSettings,
    pub runtime: runtime::Config,
}

/// A running service.
pub struct Application {
    pub addr: SocketAddr,
    pub runtime: Runtime,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
}

/// Opens and migrates the store named by `url`.
pub async fn open_store(url: &str) -> anyhow::Result<store::SharedStore> {
    let store = store::open(url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", redact(url)))?;
    store
        .migrate()
        .await
        .map_err(|e| anyhow::anyhow!("cannot migrate the database: {e}"))?;
    Ok(store)
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Application {
    /// Starts the service. `extra` may add routes (test builds add clock control); the
    /// production binary adds none.
    pub async fn build(
        settings: Settings,
        clock: SharedClock,
        clock_kind: &'static str,
        channels: Channels,
        extra: impl FnOnce(Runtime) -> Router,
    ) -> anyhow::Result<Application> {
        let tls = match &settings.tls {
            Some(files) => Some(files.acceptor().map_err(|e| anyhow::anyhow!(e))?),
            None => None,
        };
        let store = open_store(&settings.database_url).await?;
        let runtime = Runtime::start(store, clock, settings.runtime.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the engine: {e}"))?;
        runtime
            .record_channels(&channels)
            .await
            .map_err(|e| anyhow::anyhow!("cannot record the notice channels: {e}"))?;
        let state = AppState {
            runtime: runtime.clone(),
            clock_kind,
            channels: std::sync::Arc::new(channels.clone()),
            secure: settings.tls.is_some()
                || settings
                    .runtime
                    .public_url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("https://")),
            map: std::sync::Arc::new(settings.map.clone()),
        };
        // The security headers go on every answer, the extra routes' too.
        let policy = std::sync::Arc::new(crate::http::headers::Policy::new(
            state.secure,
            state.map.tile_url.as_deref(),
        ));
        let app = router(state)
            .merge(extra(runtime.clone()))
            .layer(axum::middleware::from_fn(move |request, next| {
                crate::http::headers::apply(policy.clone(), request, next)
            }));
        let listener = tokio::net::TcpListener::bind(settings.bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.bind))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let workers = if settings.workers {
            runtime.spawn_workers(channels, stopped.clone())
        } else {
            Vec::new()
        };
        let mut shutdown = stopped;
        let limits = settings.limits;
        let server = tokio::spawn(crate::http::serve::serve(
            listener,
            app,
            limits,
            tls,
            async move {
                let _ = shutdown.wait_for(|s| *s).await;
            },
            std::time::Duration::from_secs(30),
        ));
        Ok(Application {
            addr,
            runtime,
            stop,
            server,
            workers,
        })
    }

    /// Stops accepting requests, lets the workers finish their step, and commits what
    /// is queued.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        for w in self.workers {
            let _ = w.await;
        }
        self.runtime.shutdown().await;
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let (api, document) = crate::openapi::split(
        utoipa_axum::router::OpenApiRouter::new()
            .nest("/api/v1", crate::routes::router())
            .merge(crate::routes::public::router())
            .merge(crate::routes::open311::router()),
    );
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(api)
        .merge(crate::openapi::docs(document))
        .merge(crate::web::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(
            crate::http::extract::check_target,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn healthz(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "backend": app.runtime.backend(),
        "clock": app.clock_kind,
        "now": app.runtime.now(),
    }))
}

async fn metrics(State(app): State<AppState>) -> Result<Response, ApiError> {
    let text = app.runtime.render_metrics().await?;
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(r)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such resource".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://anju:s3cret@db:5432/anju"),
            "postgres://anju:***@db:5432/anju"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(redact("anju.db"), "anju.db");
    }
}
