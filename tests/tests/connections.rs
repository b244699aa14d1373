//! Half-sent requests cannot take the service down (issue 9, item 3): one client address holding many slow connections leaves room for others, slow headers and bodies are cut off, and connections past the caps are closed at once. These tests wait a short, configured real time (1 s timeouts), since what they test is the network's own clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use anju_api::http::serve::Limits;
use anju_engine::time::ManualClock;
use anju_tests::{Backend, TestDb, seed, start_limited, t0};

/// A connection from `from` (a loopback address) to the service.
async fn connect(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Sends a whole `GET /healthz` on `stream` and reads the status line.
async fn healthz(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: anju\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Whether the server closed `stream` within `within` (reading gives end of file or
/// an error).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // An answer (a 408, say) before the close.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_from_one_address_leave_room_for_others() {
    let db = TestDb::new(Backend::Sqlite).await;
    seed(&db.store().await).await;
    let clock = ManualClock::new(t0());
    let limits = Limits {
        max_connections: 300,
        max_per_client: 100,
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        trusted_proxies: Vec::new(),
    };
    let app = start_limited(&db, &clock, Default::default(), limits).await;
    let addr = app.addr;

    // 250 connections from 127.0.0.1, each sending half a request.
    let mut slow = Vec::new();
    for _ in 0..250 {
        let mut s = connect("127.0.0.1", addr).await;
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: an").await;
        slow.push(s);
    }
    // Another address is served at once.
    let started = Instant::now();
    let mut other = connect("127.0.0.2", addr).await;
    assert_eq!(healthz(&mut other).await, "HTTP/1.1 200 OK");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // The first address holds at most its cap: the connections past it were closed
    // at once.
    let mut closed_at_once = 0;
    for s in slow.iter_mut().skip(100) {
        if closed_within(s, Duration::from_millis(300)).await {
            closed_at_once += 1;
        }
    }
    assert_eq!(closed_at_once, 150);

    // The slow ones within the cap are closed once their headers are late.
    for s in slow.iter_mut().take(100) {
        assert!(closed_within(s, Duration::from_secs(3)).await);
    }
    // Once they are gone, the first address is served again.
    let mut again = connect("127.0.0.1", addr).await;
    assert_eq!(healthz(&mut again).await, "HTTP/1.1 200 OK");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_is_refused_and_changes_nothing() {
    let db = TestDb::new(Backend::Sqlite).await;
    seed(&db.store().await).await;
    let clock = ManualClock::new(t0());
    let limits = Limits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let app = start_limited(&db, &clock, Default::default(), limits).await;
    let token = app
        .runtime
        .create_token(anju_engine::domain::Role::Inspector, 1, None)
        .await
        .unwrap();
    let before = app.runtime.store().fingerprint().await.unwrap();
    let mut s = connect("127.0.0.1", app.addr).await;
    let head = format!(
        "POST /api/v1/inspections HTTP/1.1\r\nHost: anju\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"unit_id\": 1,"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert_eq!(app.runtime.store().fingerprint().await.unwrap(), before);
    app.shutdown().await;
}

/// The service raises its soft open-files limit to the hard one and keeps its
/// connection cap below it.
#[test]
fn the_open_files_limit_is_raised_and_the_cap_fits_under_it() {
    let raised = anju_api::http::serve::raise_open_files_limit();
    let (soft, hard) = open_files_limits();
    assert_eq!(soft, hard, "the soft limit is raised to the hard one");
    assert_eq!(raised, soft);
    let limits = Limits::default().within_open_files(raised);
    assert!((limits.max_connections as u64) < raised);
}

/// The soft and hard open-files limits of this process, as the kernel reports them.
fn open_files_limits() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}
