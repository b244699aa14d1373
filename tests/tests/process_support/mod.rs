//! Real `anju` processes for black-box tests, shared by their files: `anju-test-server` started on a database with a manual clock (and killed with `kill -9`), the command line, tokens made by it, and SQL run on the test database of either backend.
// Each test file uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use anju_tests::{Backend, TestDb, seed, t0};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_anju-test-server");

/// A running `anju serve` process with a manual clock.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
}

impl Server {
    pub(crate) fn start(db: &TestDb, clock: DateTime<Utc>, workers: bool) -> Server {
        Server::start_with(db, clock, workers, &[])
    }

    pub(crate) fn start_with(
        db: &TestDb,
        clock: DateTime<Utc>,
        workers: bool,
        extra: &[&str],
    ) -> Server {
        Server::start_env(db, clock, workers, extra, &[])
    }

    /// A server with more arguments and environment variables.
    pub(crate) fn start_env(
        db: &TestDb,
        clock: DateTime<Utc>,
        workers: bool,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.envs(env.iter().copied());
        cmd.args([
            "serve",
            "--database-url",
            &db.url,
            "--bind",
            "127.0.0.1:0",
            "--no-agreement-findings",
        ])
        .args(extra)
        .env("ANJU_TEST_CLOCK_START", clock.to_rfc3339())
        .env("ANJU_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        if !workers {
            cmd.arg("--no-workers");
        }
        let mut child = cmd.spawn().expect("start anju-test-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server said where it listens");
        Server {
            child,
            base,
            client: reqwest::Client::new(),
        }
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> Value {
        let (status, body) = self
            .call(reqwest::Method::POST, path, token, Some(body))
            .await;
        assert!(status < 300, "{path}: {status} {body}");
        body
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, token, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// Issues a command at the case's current version, as a client would: read the
    /// case, send, and read again if the case moved meanwhile (the rule worker may add
    /// events of its own).
    pub(crate) async fn command(&self, id: i64, token: &str, name: &str) -> Value {
        for _ in 0..10 {
            let version =
                self.get(&format!("/api/v1/cases/{id}"), token).await["case"]["version"].clone();
            let (status, body) = self
                .call(
                    reqwest::Method::POST,
                    &format!("/api/v1/cases/{id}/commands"),
                    token,
                    Some(json!({ "command": name, "expected_version": version })),
                )
                .await;
            if status != 409 {
                assert!(status < 300, "{name} on case {id}: {status} {body}");
                return body;
            }
        }
        panic!("case {id} kept changing");
    }

    pub(crate) async fn set_clock(&self, now: DateTime<Utc>) {
        self.post("/__test/clock", "", json!({ "now": now.to_rfc3339() }))
            .await;
    }

    pub(crate) async fn tick(&self) -> Value {
        self.post("/__test/timers/tick", "", json!({})).await
    }

    pub(crate) async fn rules_tick(&self) -> Value {
        self.post("/__test/rules/tick", "", json!({})).await
    }

    /// The process's id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process without letting it shut down.
    pub(crate) fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reap");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the command line; returns (exit success, stdout, stderr).
pub(crate) fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("ANJU_TEST_CLOCK_START", t0().to_rfc3339())
        .env("ANJU_LOG", "error")
        .output()
        .expect("run the command line");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

pub(crate) fn token(db: &TestDb, role: &str, subject: i64) -> String {
    let (ok, out, err) = cli(&[
        "token",
        "create",
        "--database-url",
        &db.url,
        "--role",
        role,
        "--subject",
        &subject.to_string(),
    ]);
    assert!(ok, "token create failed: {err}");
    assert!(out.starts_with("anju_"), "{out}");
    out
}

pub(crate) async fn seeded(backend: Backend) -> TestDb {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    seed(&store).await;
    db
}

/// Runs SQL statements on the test database, whichever its backend.
pub(crate) async fn execute(db: &TestDb, statements: &[String]) {
    match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.url))
                .await
                .unwrap();
            for s in statements {
                sqlx::query(sqlx::AssertSqlSafe(s.as_str()))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            for s in statements {
                sqlx::query(sqlx::AssertSqlSafe(s.as_str()))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
    }
}

/// One number read from the test database.
pub(crate) async fn count(db: &TestDb, sql: &str) -> i64 {
    match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.url))
                .await
                .unwrap();
            let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            n
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            n
        }
    }
}
