//! Test support for black-box tests: fresh SQLite files and PostgreSQL databases, the real HTTP server on a random port with a manual clock, and a small client.

pub mod mail;
pub mod photos;
pub mod proxy;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use anju_api::{Application, Settings};
use anju_engine::domain::Role;
use anju_engine::outbox::LogChannel;
use anju_engine::runtime::{self, Runtime};
use anju_engine::seed::DemoCity;
use anju_engine::store::{self, SharedStore, postgres};
use anju_engine::time::ManualClock;

/// The database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests use; trust auth on loopback.
pub fn postgres_admin_url() -> String {
    std::env::var("ANJU_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Whether PostgreSQL tests must run (CI sets `ANJU_REQUIRE_POSTGRES=1`).
pub fn postgres_required() -> bool {
    std::env::var("ANJU_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Whether PostgreSQL is reachable. When it is not and it is not required, the caller
/// skips the test and says so loudly.
pub async fn postgres_available() -> bool {
    let reachable = async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&postgres_admin_url())
            .await
            .ok()?;
        pool.close().await;
        Some(())
    }
    .await
    .is_some();
    if !reachable {
        if postgres_required() {
            panic!(
                "PostgreSQL is required (ANJU_REQUIRE_POSTGRES=1) but {} is not reachable",
                postgres_admin_url()
            );
        }
        eprintln!(
            "\n*** SKIPPED: PostgreSQL at {} is not reachable; this PostgreSQL test did not run ***\n",
            postgres_admin_url()
        );
    }
    reachable
}

/// Runs a test body once per backend: `backend_tests!(name, other, …)` where each name
/// is an `async fn name(backend: Backend)` in scope.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::postgres_available().await {
                        super::$name($crate::Backend::Postgres).await
                    }
                }
            )*
        }
    };
}

/// A fresh, empty database: a file in a temporary directory, or a new PostgreSQL
/// database that is dropped with this value.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = dir.path().join("anju.db").display().to_string();
                TestDb {
                    url,
                    backend,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!("anju_test_{}", unique());
                let url = postgres::create_database(&postgres_admin_url(), &name)
                    .await
                    .expect("create a test database");
                TestDb {
                    url,
                    backend,
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    pub async fn store(&self) -> SharedStore {
        let s = store::open(&self.url)
            .await
            .expect("open the test database");
        s.migrate().await.expect("migrate");
        s
    }
}

/// The store checks every backend test ends with (run as the test's database is
/// dropped): no outbox message handed over without a delivery or a dead letter.
/// Returns what it found wrong.
pub async fn store_faults(url: &str) -> Vec<String> {
    let Ok(store) = store::open(url).await else {
        return Vec::new();
    };
    let mut faults = Vec::new();
    // A database never migrated has no outbox to check.
    if let Ok(ids) = store.silent_messages().await
        && !ids.is_empty()
    {
        faults.push(format!(
            "outbox messages handed over with no delivery and no dead letter: {ids:?}"
        ));
    }
    faults
}

/// Runs `work` on a thread of its own with a runtime of its own, so that it works from
/// inside or outside a runtime (a `Drop`).
fn on_own_runtime<T: Send + 'static>(
    work: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>
    + Send
    + 'static,
) -> Option<T> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(work())
    })
    .join()
    .ok()
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let faults = if std::thread::panicking() {
            Vec::new()
        } else {
            let url = self.url.clone();
            on_own_runtime(move || Box::pin(async move { store_faults(&url).await }))
                .unwrap_or_default()
        };
        if let Some(name) = self.pg_name.take() {
            on_own_runtime(move || {
                Box::pin(async move {
                    let _ = postgres::drop_database(&postgres_admin_url(), &name).await;
                })
            });
        }
        assert!(
            faults.is_empty(),
            "store check after the test: {}",
            faults.join("; ")
        );
    }
}

/// The commands of a case's history (`GET /cases/{id}`), in order.
pub fn history_commands(case: &serde_json::Value) -> Vec<String> {
    case["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| e["command"].as_str().expect("command").to_string())
        .collect()
}

/// When the case's acceptance SLA falls due (`GET /cases/{id}`).
pub fn acceptance_due(case: &serde_json::Value) -> DateTime<Utc> {
    let timer = case["timers"]
        .as_array()
        .expect("timers")
        .iter()
        .find(|t| t["kind"] == "acceptance_sla")
        .expect("an acceptance SLA timer");
    DateTime::parse_from_rfc3339(timer["due_at"].as_str().expect("due_at"))
        .expect("a time")
        .to_utc()
}

/// A process-wide unique suffix for names.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = Utc::now().timestamp_subsec_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// The moment every test starts at: a Monday morning in Guangzhou.
pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
        .expect("valid time")
        .to_utc()
}

/// Units in every test's demo city.
pub const TEST_UNITS: u64 = 400;

/// Seeds the small demo city every test uses (seed 42).
pub async fn seed(store: &SharedStore) -> DemoCity {
    let city = DemoCity::new(TEST_UNITS, 42);
    store
        .import(city.skeleton(), t0())
        .await
        .expect("seed skeleton");
    for chunk in city.chunks(10_000) {
        store.import(&chunk, t0()).await.expect("seed units");
    }
    store.finish_import().await.expect("finish import");
    city
}

/// Tokens for the demo principals of the seeded city.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// Inspector 1, covering grids 1 and 2.
    pub inspector: String,
    /// Inspector 2, covering other grids.
    pub other_inspector: String,
    /// Party 1, responsible for the first building's units.
    pub landlord: String,
    /// Party 2, responsible for the second building.
    pub other_landlord: String,
    /// Department 1: the fire brigade of the first district.
    pub fire: String,
    /// Department 2: the fire brigade of the second district.
    pub other_fire: String,
    /// Supervisor 2: the first district's.
    pub district: String,
    /// Supervisor 1: the city's.
    pub city: String,
}

/// A running service on a fresh database, with a manual clock at [`t0`].
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub db: TestDb,
    pub tokens: Tokens,
    pub city: DemoCity,
    config: runtime::Config,
    /// What a restart starts the service with again.
    limits: anju_api::http::serve::Limits,
    channels: anju_engine::outbox::Channels,
    app: Option<Application>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, runtime::Config::default()).await
}

/// A running service as [`spawn_app`], with these runtime settings.
pub async fn spawn_app_with(backend: Backend, config: runtime::Config) -> TestApp {
    spawn_app_on(backend, config, vec![Arc::new(LogChannel)]).await
}

/// A running service as [`spawn_app_with`], whose notices (sign-in codes among them) go
/// out on `channels`.
pub async fn spawn_app_on(
    backend: Backend,
    config: runtime::Config,
    channels: anju_engine::outbox::Channels,
) -> TestApp {
    let limits = anju_api::http::serve::Limits::default();
    spawn_app_full(backend, config, limits, channels).await
}

/// A running service as [`spawn_app_on`], with these connection limits (and trusted
/// proxies).
pub async fn spawn_app_full(
    backend: Backend,
    config: runtime::Config,
    limits: anju_api::http::serve::Limits,
    channels: anju_engine::outbox::Channels,
) -> TestApp {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let city = seed(&store).await;
    drop(store);
    let clock = ManualClock::new(t0());
    let app = start_full(
        &db,
        &clock,
        config.clone(),
        limits.clone(),
        channels.clone(),
        None,
    )
    .await;
    let rt = &app.runtime;
    let token = |role, subject| async move {
        rt.create_token(role, subject, Some("test"))
            .await
            .expect("token")
    };
    let tokens = Tokens {
        inspector: token(Role::Inspector, 1).await,
        other_inspector: token(Role::Inspector, 2).await,
        landlord: token(Role::Landlord, 1).await,
        other_landlord: token(Role::Landlord, 2).await,
        fire: token(Role::Department, 1).await,
        other_fire: token(Role::Department, 2).await,
        district: token(Role::Supervisor, 2).await,
        city: token(Role::Supervisor, 1).await,
    };
    TestApp {
        addr: app.addr,
        base: format!("http://{}", app.addr),
        client: reqwest::Client::new(),
        clock,
        db,
        tokens,
        city,
        config,
        limits,
        channels,
        app: Some(app),
    }
}

/// Starts the real service (without background workers: tests step them) on `db`.
pub async fn start(db: &TestDb, clock: &ManualClock) -> Application {
    start_with(db, clock, runtime::Config::default()).await
}

/// Starts the real service as [`start`], with these runtime settings.
pub async fn start_with(db: &TestDb, clock: &ManualClock, config: runtime::Config) -> Application {
    start_limited(db, clock, config, anju_api::http::serve::Limits::default()).await
}

/// Starts the real service as [`start_with`], with these connection limits.
pub async fn start_limited(
    db: &TestDb,
    clock: &ManualClock,
    config: runtime::Config,
    limits: anju_api::http::serve::Limits,
) -> Application {
    start_full(db, clock, config, limits, vec![Arc::new(LogChannel)], None).await
}

/// Starts the real service as [`start_limited`], with notices going out on `channels`,
/// over TLS when given a certificate and key.
pub async fn start_full(
    db: &TestDb,
    clock: &ManualClock,
    config: runtime::Config,
    limits: anju_api::http::serve::Limits,
    channels: anju_engine::outbox::Channels,
    tls: Option<anju_api::http::serve::TlsFiles>,
) -> Application {
    let any_port = "127.0.0.1:0".parse().expect("address");
    start_bound(db, clock, config, limits, channels, tls, any_port).await
}

/// Starts the real service on `bind`, with everything [`start_full`] takes.
async fn start_bound(
    db: &TestDb,
    clock: &ManualClock,
    config: runtime::Config,
    limits: anju_api::http::serve::Limits,
    channels: anju_engine::outbox::Channels,
    tls: Option<anju_api::http::serve::TlsFiles>,
    bind: SocketAddr,
) -> Application {
    let settings = Settings {
        database_url: db.url.clone(),
        bind,
        workers: false,
        limits,
        tls,
        map: Default::default(),
        runtime: config,
    };
    Application::build(
        settings,
        Arc::new(clock.clone()),
        "manual",
        channels,
        |_| test_routes(),
    )
    .await
    .expect("start the service")
}

/// Routes only the tests' services have: `/__test/unescaped?html=…` answers the HTML
/// given, unescaped, as a page of the service (with the service's own headers), so that
/// a test can show the Content-Security-Policy stops what one missed escape lets in.
fn test_routes() -> axum::Router {
    axum::Router::new().route(
        "/__test/unescaped",
        axum::routing::get(
            |axum::extract::Query(q): axum::extract::Query<
                std::collections::HashMap<String, String>,
            >| async move {
                axum::response::Html(q.get("html").cloned().unwrap_or_default())
            },
        ),
    )
}

/// A response: status and JSON body (`Value::Null` when there is none).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl Reply {
    /// The body, after checking the status.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }

    /// Asserts a problem+json response with this status naming `field`.
    #[track_caller]
    pub fn problem(self, status: u16, field: Option<&str>) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.content_type, "application/problem+json",
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
        if let Some(field) = field {
            assert_eq!(self.body["field"], field, "body: {}", self.body);
        }
        self.body
    }
}

impl TestApp {
    pub fn runtime(&self) -> &Runtime {
        &self.app.as_ref().expect("running").runtime
    }

    pub fn store(&self) -> &SharedStore {
        self.runtime().store()
    }

    /// Stops the service and starts it again on the same database, with other runtime
    /// settings.
    pub async fn restart_with(&mut self, config: runtime::Config) {
        self.config = config;
        self.restart().await;
    }

    /// Starts the service on the same database with the same settings, channels and
    /// limits, bound to `bind`.
    async fn launch(&self, bind: SocketAddr) -> Application {
        start_bound(
            &self.db,
            &self.clock,
            self.config.clone(),
            self.limits.clone(),
            self.channels.clone(),
            None,
            bind,
        )
        .await
    }

    /// Stops the service and starts it again on the same database, with the same
    /// channels and limits.
    pub async fn restart(&mut self) {
        self.stop().await;
        let app = self.launch("127.0.0.1:0".parse().expect("address")).await;
        self.addr = app.addr;
        self.base = format!("http://{}", app.addr);
        self.app = Some(app);
    }

    /// Stops the service (its address is then refused).
    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
    }

    /// Starts the service again on the same database and the same address (a browser
    /// holding pages of it finds it where it was), with the same channels and limits.
    pub async fn start_again(&mut self) {
        self.app = Some(self.launch(self.addr).await);
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            content_type,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(
            self.client
                .get(format!("{}{path}", self.base))
                .bearer_auth(token),
        )
        .await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    /// Posts a form as a browser does (URL-encoded, no session): the status and the body.
    pub async fn post_form<V: AsRef<str>>(&self, path: &str, form: &[(&str, V)]) -> (u16, String) {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_ref())))
            .finish();
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("the server answers");
        (r.status().as_u16(), r.text().await.expect("a body"))
    }

    /// Posts raw bytes with a content type (for malformed bodies).
    pub async fn post_raw(&self, path: &str, token: &str, content_type: &str, body: &str) -> Reply {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .bearer_auth(token)
                .header("content-type", content_type)
                .body(body.to_string()),
        )
        .await
    }

    /// Uploads a file as evidence (`kind`: photo or document) with the type it claims.
    pub async fn upload(
        &self,
        token: &str,
        kind: &str,
        file_name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Reply {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_string())
            .mime_str(content_type)
            .expect("a media type");
        let form = reqwest::multipart::Form::new()
            .text("kind", kind.to_string())
            .part("file", part);
        self.send(
            self.client
                .post(format!("{}/api/v1/evidence", self.base))
                .bearer_auth(token)
                .multipart(form),
        )
        .await
    }

    /// Uploads a fresh photo (no EXIF) as `token`; its evidence id.
    pub async fn photo(&self, token: &str) -> String {
        static SEED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
        let seed = SEED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let jpeg = photos::jpeg(32, 24, seed, None);
        self.uploaded(token, "photo", "现场.jpg", "image/jpeg", jpeg)
            .await
    }

    /// Uploads a small PDF as a document by `token`; its evidence id.
    pub async fn document(&self, token: &str, text: &str) -> String {
        let pdf = photos::pdf(text);
        self.uploaded(token, "document", "决定书.pdf", "application/pdf", pdf)
            .await
    }

    /// Uploads a file that must be taken; its evidence id.
    async fn uploaded(
        &self,
        token: &str,
        kind: &str,
        name: &str,
        media: &str,
        bytes: Vec<u8>,
    ) -> String {
        let body = self
            .upload(token, kind, name, media, bytes)
            .await
            .expect(201);
        body["id"].as_str().expect("an id").to_string()
    }

    /// The units of inspector 1's grids (1 and 2), by id.
    pub async fn inspector_units(&self) -> Vec<i64> {
        let mut units = Vec::new();
        for grid in [1, 2] {
            let found = self
                .store()
                .grid_units(anju_engine::domain::GridId(grid), None, 100)
                .await
                .expect("grid units");
            units.extend(found.iter().map(|u| u.id.0));
        }
        units
    }

    /// The first unit that `party` answers for in the seeded city.
    pub fn unit_of(&self, party: i64) -> i64 {
        self.units_of(party)[0]
    }

    /// Every unit that `party` answers for in the seeded city.
    pub fn units_of(&self, party: i64) -> Vec<i64> {
        use anju_engine::registry::Record;
        self.city
            .chunks(10_000)
            .flatten()
            .filter_map(|r| match r {
                Record::Unit {
                    id,
                    party_id: Some(p),
                    ..
                } if p.0 == party => Some(id.0),
                _ => None,
            })
            .collect()
    }

    /// A token for any principal.
    pub async fn token(&self, role: Role, subject: i64) -> String {
        self.runtime()
            .create_token(role, subject, Some("test"))
            .await
            .expect("token")
    }

    /// Records an inspection of `unit` by `token` with findings of these categories, at
    /// the unit's own location; returns the ids of the opened cases.
    pub async fn inspect(&self, token: &str, unit: i64, categories: &[&str]) -> Vec<i64> {
        let u = self
            .store()
            .unit(anju_engine::domain::UnitId(unit))
            .await
            .expect("unit")
            .expect("unit exists");
        let photo = self.photo(token).await;
        let findings: Vec<Value> = categories
            .iter()
            .map(|c| json!({ "category": c, "note": "现场发现", "evidence": [photo] }))
            .collect();
        let body = self
            .post(
                "/api/v1/inspections",
                token,
                &json!({ "unit_id": unit, "point": { "lon": u.lon, "lat": u.lat }, "findings": findings }),
            )
            .await
            .expect(201);
        body["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .map(|c| c["id"].as_i64().expect("id"))
            .collect()
    }

    /// A case of `unit` with one finding of `category` and its rectification order,
    /// issued by inspector 1 with these requirements.
    pub async fn ordered(&self, unit: i64, category: &str, requirements: &str) -> i64 {
        let id = self
            .inspect(&self.tokens.inspector, unit, &[category])
            .await[0];
        self.command(
            id,
            &self.tokens.inspector,
            "notify",
            json!({ "requirements": requirements }),
        )
        .await
        .expect(200);
        id
    }

    pub async fn case(&self, id: i64, token: &str) -> Value {
        self.get(&format!("/api/v1/cases/{id}"), token)
            .await
            .expect(200)
    }

    /// Issues a command at the case's current version.
    pub async fn command(&self, id: i64, token: &str, name: &str, data: Value) -> Reply {
        self.command_with_reason(id, token, name, data, None).await
    }

    pub async fn command_with_reason(
        &self,
        id: i64,
        token: &str,
        name: &str,
        data: Value,
        reason: Option<&str>,
    ) -> Reply {
        let version = self
            .store()
            .case(anju_engine::domain::CaseId(id))
            .await
            .expect("case")
            .map_or(1, |c| c.snapshot.version);
        let mut body = json!({ "command": name, "expected_version": version, "data": data });
        if let Some(r) = reason {
            body["reason"] = json!(r);
        }
        self.post(&format!("/api/v1/cases/{id}/commands"), token, &body)
            .await
    }

    /// The state of a case as its inspector sees it.
    pub async fn state(&self, id: i64) -> String {
        self.case(id, &self.tokens.city).await["case"]["state"]
            .as_str()
            .expect("state")
            .to_string()
    }

    /// Fires what is due now; returns how many timers fired.
    pub async fn tick(&self) -> usize {
        let mut fired = 0;
        loop {
            let t = self.runtime().fire_due_timers().await.expect("tick");
            fired += t.fired;
            if t.claimed == 0 {
                return fired;
            }
        }
    }

    /// Works off every pending rule job (as the rule worker would); returns what was
    /// done.
    pub async fn rules_tick(&self) -> anju_engine::escalation::RuleTick {
        let mut sum = anju_engine::escalation::RuleTick::default();
        loop {
            let t = self.runtime().run_rule_jobs().await.expect("rule jobs");
            if t.jobs == 0 {
                return sum;
            }
            sum.add(&t);
        }
    }

    /// The database's fingerprint: equal before and after means nothing changed.
    pub async fn fingerprint(&self) -> Vec<(String, i64)> {
        self.store().fingerprint().await.expect("fingerprint")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The server task dies with the test's runtime; the database is dropped by
        // `TestDb`.
        self.app.take();
    }
}
