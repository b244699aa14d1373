//! E-mail over SMTP through lettre: settings (host, port, TLS, credentials, sender), a pooled transport, and each delivery sent as a multipart text + HTML message, Chinese first, with its stable Message-ID and a link to the case under the public address.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
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

/// Sends deliveries as e-mail.
pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
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
        let tls = match s.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls | SmtpTls::Tls => {
                let params = TlsParameters::new(s.host.clone())
                    .map_err(|e| format!("TLS for {}: {e}", s.host))?;
                if s.tls == SmtpTls::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
            .port(s.port)
            .tls(tls)
            .timeout(Some(s.timeout))
            .pool_config(PoolConfig::new().max_size(s.pool.max(1)));
        if let (Some(user), Some(password)) = (&s.user, &s.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(EmailChannel {
            transport: builder.build(),
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

    async fn send(&self, job: &DeliveryJob) -> Result<String, Failure> {
        let link = self
            .public_url
            .as_ref()
            .map(|u| format!("{u}/cases/{}", job.case_id));
        let mail = crate::notices::mail(&job.template, &job.subject, &job.body, link.as_deref());
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
        match self.transport.send(message).await {
            Ok(response) => Ok(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) => Err(Failure {
                answer: e.to_string(),
                permanent: e.is_permanent(),
            }),
        }
    }
}
