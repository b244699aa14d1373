//! Real `anju serve` processes delivering notices to a real SMTP server on loopback: `kill -9` in the middle of delivering 1,000 e-mails, then a restart (each delivered at least once, the duplicates at most the batch in flight, their number printed), and two processes on one PostgreSQL database sending each of 1,000 messages exactly once.

use std::time::Duration;

use chrono::TimeDelta;
use serde_json::json;

use anju_tests::{Backend, TestDb, t0};

mod process_support;
use process_support::*;

/// Messages in the crash test.
const MESSAGES: usize = 1_000;

/// The flags that send a process's e-mail to the test's SMTP server on `port`.
fn mail_args(port: &str) -> [&str; 6] {
    [
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        port,
        "--smtp-tls",
        "none",
    ]
}

/// Queues `MESSAGES` notices to landlord 1 in the outbox of a seeded database, on a case
/// opened through a real process, with e-mail configured before they were written.
async fn queue_messages(db: &TestDb) {
    let inspector = token(db, "inspector", 1);
    let a = Server::start(db, t0(), false);
    let unit = a.get("/api/v1/units/1", &inspector).await;
    let opened = a
        .post(
            "/api/v1/inspections",
            &inspector,
            json!({ "unit_id": 1, "point": { "lon": unit["lon"], "lat": unit["lat"] }, "findings": [{ "category": "wiring" }] }),
        )
        .await;
    let case = opened["cases"][0]["id"].as_i64().unwrap();
    a.kill();
    let at = t0().timestamp_millis();
    let mut statements = vec![
        format!(
            "INSERT INTO channels (name, since) VALUES ('email', {})",
            at - 1000
        ),
        "DELETE FROM outbox".to_string(),
    ];
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(250) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "({case}, 1, 'landlord', 1, 'case_fixed', '通知 {i} / Notice {i}', '正文 {i} / Body {i}', {at}, {at})"
                )
            })
            .collect();
        statements.push(format!(
            "INSERT INTO outbox (case_id, event_seq, recipient_kind, recipient_id, template, \
             subject, body, created_at, next_attempt_at) VALUES {}",
            rows.join(", ")
        ));
    }
    execute(db, &statements).await;
}

/// The Message-IDs a sink received, with how many times each.
fn received_ids(smtp: &anju_tests::mail::Smtp) -> std::collections::HashMap<String, usize> {
    let mut seen = std::collections::HashMap::new();
    for m in smtp.mails.lock().unwrap().iter() {
        let parsed = mail_parser::MessageParser::default()
            .parse(&m.data)
            .unwrap();
        *seen
            .entry(parsed.message_id().unwrap().to_string())
            .or_default() += 1;
    }
    seen
}

/// Two `anju serve` processes with their workers on one PostgreSQL database, in normal
/// operation: each of 1,000 messages reaches the SMTP server exactly once. (The test
/// waits, real time, at most 90 s for the mail, and 600 ms more for both workers to step
/// again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_send_each_message_once() {
    if !anju_tests::postgres_available().await {
        return;
    }
    let db = seeded(Backend::Postgres).await;
    let smtp = anju_tests::mail::smtp();
    queue_messages(&db).await;
    let port = smtp.port.to_string();
    let mail_args = mail_args(&port);
    let b = Server::start_with(&db, t0(), true, &mail_args);
    let c = Server::start_with(&db, t0(), true, &mail_args);
    let waited = std::time::Instant::now();
    while received_ids(&smtp).len() < MESSAGES {
        assert!(
            waited.elapsed() < Duration::from_secs(90),
            "only {} of {MESSAGES} messages arrived",
            received_ids(&smtp).len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    drop((b, c));
    let seen = received_ids(&smtp);
    assert_eq!(seen.len(), MESSAGES);
    assert!(seen.values().all(|n| *n == 1), "a message was sent twice");
    assert_eq!(smtp.mails.lock().unwrap().len(), MESSAGES);
}

/// `kill -9` of `anju serve` in the middle of delivering 1,000 e-mails, then a restart:
/// every message reaches the SMTP server at least once, and those that reach it twice
/// (sent, not yet recorded when the process died) are at most the batch in flight
/// (`outbox_batch`, 200). The number is printed. The loopback server takes 5 ms of real
/// time per message, so that the kill lands mid-way; the test waits (real time, at most
/// 90 s) for the mail to arrive. The restarted process's clock is moved past the dead
/// process's leases, as time would pass.
async fn kill_nine_while_delivering(backend: Backend) {
    let db = seeded(backend).await;
    let smtp = anju_tests::mail::smtp();
    smtp.delay_ms.store(5, std::sync::atomic::Ordering::SeqCst);
    queue_messages(&db).await;

    let port = smtp.port.to_string();
    let mail_args = mail_args(&port);
    let received = || smtp.mails.lock().unwrap().len();
    let b = Server::start_with(&db, t0(), true, &mail_args);
    let waited = std::time::Instant::now();
    while received() < 150 {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "no mail arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.kill();
    let at_kill = received();
    assert!(
        at_kill < MESSAGES,
        "the kill came after every message was sent"
    );

    let c = Server::start_with(&db, t0(), true, &mail_args);
    c.set_clock(t0() + TimeDelta::minutes(5)).await;
    let ids = || received_ids(&smtp);
    let waited = std::time::Instant::now();
    let mut minutes = 5;
    while ids().len() < MESSAGES {
        assert!(
            waited.elapsed() < Duration::from_secs(90),
            "only {} of {MESSAGES} messages arrived",
            ids().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Time passes for the service too: a delivery that failed is tried again.
        minutes += 1;
        c.set_clock(t0() + TimeDelta::minutes(minutes)).await;
    }
    // Every delivery recorded as sent once the last results are written (at most 30 s).
    let sent_sql = "SELECT COUNT(*) FROM deliveries WHERE channel = 'email' AND state = 'sent'";
    let waited = std::time::Instant::now();
    while count(&db, sent_sql).await < MESSAGES as i64 {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "not every delivery was recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(c);
    let seen = ids();
    let twice: usize = seen.values().map(|n| n - 1).sum();
    println!(
        "kill -9 after {at_kill} of {MESSAGES} e-mails: all {} delivered, {twice} twice",
        seen.len()
    );
    assert_eq!(seen.len(), MESSAGES);
    assert!(
        twice <= 200,
        "{twice} duplicates: more than the batch in flight"
    );
    assert_eq!(count(&db, sent_sql).await, MESSAGES as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_nine_while_delivering() {
    kill_nine_while_delivering(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_nine_while_delivering() {
    if anju_tests::postgres_available().await {
        kill_nine_while_delivering(Backend::Postgres).await;
    }
}
