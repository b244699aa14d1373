//! A real SMTP server on loopback for tests (mailin-embedded, in the test process): it keeps what it receives, can refuse every mail, and comes with the e-mail channel that sends to it.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mailin_embedded::response::{NO_SERVICE, OK};
use mailin_embedded::{Handler, Response, Server};

use anju_engine::outbox::{Channel, Channels, EmailChannel, SmtpSettings, SmtpTls};

/// A message the sink received: its recipients and its raw bytes.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

/// A real SMTP server's handler that keeps what it receives, and refuses every mail
/// (421, service not available) while `refuse` is set.
#[derive(Clone)]
struct Sink {
    mails: Arc<Mutex<Vec<Received>>>,
    refuse: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
    current: Received,
}

impl Handler for Sink {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, _from: &str) -> Response {
        if self.refuse.load(Ordering::SeqCst) {
            return NO_SERVICE;
        }
        self.current = Received::default();
        OK
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current.to = to.to_vec();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.current.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        // A slow server: each message takes this long to accept (real time).
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        let mail = std::mem::take(&mut self.current);
        self.mails.lock().unwrap().push(mail);
        OK
    }
}

/// An SMTP server on a free loopback port, and the e-mail channel that sends to it.
pub struct Smtp {
    pub mails: Arc<Mutex<Vec<Received>>>,
    pub refuse: Arc<AtomicBool>,
    /// Milliseconds each message takes the server to accept.
    pub delay_ms: Arc<AtomicU64>,
    pub port: u16,
    pub channels: Channels,
}

pub fn smtp() -> Smtp {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = Sink {
        mails: Arc::default(),
        refuse: Arc::default(),
        delay_ms: Arc::default(),
        current: Received::default(),
    };
    let (mails, refuse, delay_ms) = (
        sink.mails.clone(),
        sink.refuse.clone(),
        sink.delay_ms.clone(),
    );
    let mut server = Server::new(sink);
    // A thread per connection: more than the pools of the processes a test runs.
    server
        .with_name("sink.test")
        .with_num_threads(32)
        .with_tcp_listener(listener);
    // `serve` never returns; the thread ends with the test process.
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    Smtp {
        mails,
        refuse,
        delay_ms,
        port,
        channels: email_to(port, std::time::Duration::from_secs(5)),
    }
}

/// The e-mail channel to a server on a loopback port, plain, links under
/// `https://anju.example`.
pub fn email_to(port: u16, timeout: std::time::Duration) -> Channels {
    let email = EmailChannel::new(&SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        user: None,
        password: None,
        from: "安居 <notices@anju.example>".into(),
        public_url: Some("https://anju.example/".into()),
        pool: 2,
        timeout,
    })
    .unwrap();
    vec![Arc::new(email) as Arc<dyn Channel>]
}

impl Smtp {
    /// The mails received for `address`.
    pub fn to(&self, address: &str) -> Vec<Received> {
        self.mails
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.to.iter().any(|t| t == address))
            .cloned()
            .collect()
    }

    /// Waits for the `n`-th sign-in mail to `address` (polling every 10 ms, at most 5 s
    /// of real time: codes go out in the background) and returns its code, its text and
    /// its Message-ID.
    pub async fn sign_in_code(&self, address: &str, n: usize) -> (String, String, String) {
        for _ in 0..500 {
            let mails = self.to(address);
            let codes: Vec<_> = mails
                .iter()
                .filter_map(|m| mail_parser::MessageParser::default().parse(&m.data))
                .filter(|p| p.subject().is_some_and(|s| s.contains("登录验证码")))
                .collect();
            if let Some(parsed) = codes.get(n - 1) {
                let text = parsed.body_text(0).expect("a text part").to_string();
                let at = text.find("验证码为 ").expect("the code in the text") + "验证码为 ".len();
                let code: String = text[at..].chars().take(6).collect();
                assert!(code.chars().all(|c| c.is_ascii_digit()), "{text}");
                assert!(parsed.subject().unwrap_or("").contains("sign-in code"));
                let id = parsed.message_id().unwrap_or("").to_string();
                return (code, text, id);
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let subjects: Vec<String> = self
            .to(address)
            .iter()
            .filter_map(|m| mail_parser::MessageParser::default().parse(&m.data))
            .map(|p| p.subject().unwrap_or("").to_string())
            .collect();
        panic!("no sign-in mail {n} to {address}; its mails: {subjects:?}");
    }
}
