//! E-mail over SMTP through lettre: settings (host, port, TLS, credentials, sender), pooled connections (our own, with TCP_NODELAY, for plain and STARTTLS; lettre's pool for TLS from the first byte), and each delivery sent as a multipart text + HTML message, Chinese first, with its stable Message-ID and a link to the case under the public address.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Channel, Failure};
use crate::store::{Addressee, DeliveryJob};

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (a relay on loopback or inside a trusted network only).
    None,
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl std::str::FromStr for SmtpTls {
    type Err = String;

    fn from_str(s: &str) -> Result<SmtpTls, String> {
        match s {
            "none" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" => Ok(SmtpTls::Tls),
            other => Err(format!("`{other}`: one of none, starttls, tls")),
        }
    }
}

/// Where and how to send e-mail.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The sender, `安居 <notices@example.cn>` or a bare address.
    pub from: String,
    /// Links in messages start with this (`ANJU_PUBLIC_URL`), e.g. `https://anju.example`.
    pub public_url: Option<String>,
    /// Connections kept open to the server.
    pub pool: u32,
    /// How long one SMTP exchange may take.
    pub timeout: Duration,
}

/// How messages reach the server.
enum Sender {
    /// lettre's pooled transport (TLS from the first byte).
    Transport(AsyncSmtpTransport<Tokio1Executor>),
    /// Connections of our own, with `TCP_NODELAY` (plain or STARTTLS): lettre writes a
    /// message and its final `.` separately, and without it the final `.` waits for
    /// the server's delayed acknowledgement, about 40 ms a message per connection.
    Direct(Direct),
}

/// A pool of SMTP connections made with `TCP_NODELAY`.
struct Direct {
    host: String,
    port: u16,
    starttls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    idle: Mutex<Vec<AsyncSmtpConnection>>,
    keep: usize,
}

impl Direct {
    async fn connect(&self) -> Result<AsyncSmtpConnection, Failure> {
        let transient =
            |what: &str, e: &dyn std::fmt::Display| Failure::transient(format!("{what}: {e}"));
        let stream = tokio::time::timeout(
            self.timeout,
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|e| transient("connecting", &e))?
        .map_err(|e| transient("connecting", &e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| transient("TCP_NODELAY", &e))?;
        let mut conn = tokio::time::timeout(
            self.timeout,
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello),
        )
        .await
        .map_err(|e| transient("greeting", &e))?
        .map_err(|e| transient("greeting", &e))?;
        if let Some(tls) = &self.starttls {
            conn.starttls(tls.clone(), &self.hello)
                .await
                .map_err(|e| transient("STARTTLS", &e))?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| Failure {
                    answer: format!("authentication: {e}"),
                    permanent: e.is_permanent(),
                })?;
        }
        Ok(conn)
    }

    /// Sends on an idle connection, or a new one; a connection that fails is dropped, and
    /// one found closed while idle is replaced once.
    async fn send(&self, message: &Message) -> Result<String, Failure> {
        let envelope = message.envelope();
        let raw = message.formatted();
        let reused = self.idle.lock().expect("smtp pool").pop();
        let fresh = reused.is_none();
        let mut conn = match reused {
            Some(c) => c,
            None => self.connect().await?,
        };
        let timed_out = || Failure::transient(format!("no answer within {:?}", self.timeout));
        let mut result = tokio::time::timeout(self.timeout, conn.send(envelope, &raw))
            .await
            .map_err(|_| timed_out())?;
        if result.as_ref().is_err_and(|e| !e.is_permanent()) && !fresh {
            conn.abort().await;
            conn = self.connect().await?;
            result = tokio::time::timeout(self.timeout, conn.send(envelope, &raw))
                .await
                .map_err(|_| timed_out())?;
        }
        match result {
            Ok(response) => {
                let mut idle = self.idle.lock().expect("smtp pool");
                if idle.len() < self.keep {
                    idle.push(conn);
                }
                Ok(answer(&response))
            }
            Err(e) => {
                conn.abort().await;
                Err(Failure {
                    answer: e.to_string(),
                    permanent: e.is_permanent(),
                })
            }
        }
    }
}

fn answer(response: &lettre::transport::smtp::response::Response) -> String {
    format!(
        "{} {}",
        response.code(),
        response.message().collect::<Vec<_>>().join(" ")
    )
}

/// Sends deliveries as e-mail.
pub struct EmailChannel {
    sender: Sender,
    from: Mailbox,
    domain: String,
    public_url: Option<String>,
}

impl std::fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChannel")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl EmailChannel {
    /// A channel from its settings; the first connection is made when the first message
    /// is sent.
    pub fn new(s: &SmtpSettings) -> Result<EmailChannel, String> {
        let from: Mailbox = s
            .from
            .parse()
            .map_err(|e| format!("sender `{}`: {e}", s.from))?;
        let tls_params =
            || TlsParameters::new(s.host.clone()).map_err(|e| format!("TLS for {}: {e}", s.host));
        let credentials = match (&s.user, &s.password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password.clone())),
            _ => None,
        };
        let sender = if s.tls == SmtpTls::Tls {
            let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
                .port(s.port)
                .tls(Tls::Wrapper(tls_params()?))
                .timeout(Some(s.timeout))
                .pool_config(PoolConfig::new().max_size(s.pool.max(1)));
            if let Some(c) = credentials {
                builder = builder.credentials(c);
            }
            Sender::Transport(builder.build())
        } else {
            Sender::Direct(Direct {
                host: s.host.clone(),
                port: s.port,
                starttls: match s.tls {
                    SmtpTls::StartTls => Some(tls_params()?),
                    _ => None,
                },
                credentials,
                hello: ClientId::default(),
                timeout: s.timeout,
                idle: Mutex::new(Vec::new()),
                keep: s.pool.max(1) as usize,
            })
        };
        Ok(EmailChannel {
            sender,
            domain: from.email.domain().to_string(),
            from,
            public_url: s
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
        })
    }
}

#[async_trait]
impl Channel for EmailChannel {
    fn name(&self) -> &str {
        "email"
    }

    fn address(&self, who: &Addressee) -> Option<String> {
        who.email.clone().filter(|e| e.contains('@'))
    }

    fn domain(&self) -> &str {
        &self.domain
    }

    fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    async fn send(
        &self,
        job: &DeliveryJob,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, Failure> {
        let link = job.link(self.public_url());
        let mail = crate::notices::mail(&job.notice(link.as_deref()));
        let to: Mailbox = job.address.parse().map_err(|e| Failure {
            answer: format!("address `{}`: {e}", job.address),
            permanent: true,
        })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .message_id(Some(format!("<{}>", job.message_id)))
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
            .map_err(|e| Failure {
                answer: format!("message: {e}"),
                permanent: true,
            })?;
        match &self.sender {
            Sender::Direct(direct) => direct.send(&message).await,
            Sender::Transport(transport) => transport
                .send(message)
                .await
                .map(|r| answer(&r))
                .map_err(|e| Failure {
                    answer: e.to_string(),
                    permanent: e.is_permanent(),
                }),
        }
    }
}
