//! The delivery side of the outbox: channels that send one delivery (a message to one person on one channel) and answer with the server's reply, the log channel used when no other is configured, e-mail over SMTP (`email.rs`), and SMS and platform gateways over signed HTTP POSTs (`webhook.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::store::{Addressee, DeliveryJob};

mod email;
mod webhook;

pub use email::{EmailChannel, SmtpSettings, SmtpTls};
pub use webhook::{
    GatewayKind, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookChannel, WebhookSettings, signature,
};

/// Why an attempt failed, and whether trying again could help (a refused address will
/// not become valid; a server that is down may come back).
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub answer: String,
    pub permanent: bool,
}

impl Failure {
    pub fn transient(answer: impl Into<String>) -> Failure {
        Failure {
            answer: answer.into(),
            permanent: false,
        }
    }
}

/// A way of reaching people. Delivery is at least once: a delivery whose result was not
/// recorded (a crash between sending and recording) is sent again with the same
/// Message-ID, which lets a reader or a gateway recognise it as the same message.
#[async_trait]
pub trait Channel: Send + Sync + 'static {
    /// The channel's name (`log`, `email`, …), recorded with each delivery.
    fn name(&self) -> &str;

    /// The person's address on this channel, if they have one.
    fn address(&self, who: &Addressee) -> Option<String>;

    /// The domain of this channel's Message-IDs.
    fn domain(&self) -> &str {
        "anju.local"
    }

    /// The public address links in this channel's messages start with.
    fn public_url(&self) -> Option<&str> {
        None
    }

    /// Whether deliveries wait out the night (22:00–08:00 China time): SMS does.
    fn quiet_hours(&self) -> bool {
        false
    }

    /// Sends one delivery at `now`; the server's answer, or why it failed.
    async fn send(&self, job: &DeliveryJob, now: DateTime<Utc>) -> Result<String, Failure>;
}

/// The channels a service delivers on.
pub type Channels = Vec<Arc<dyn Channel>>;

/// Writes each delivery to the service log: the channel used when no other is
/// configured, so that messages are handed over and stay readable on their case.
#[derive(Debug, Default)]
pub struct LogChannel;

#[async_trait]
impl Channel for LogChannel {
    fn name(&self) -> &str {
        "log"
    }

    fn address(&self, who: &Addressee) -> Option<String> {
        Some(who.recipient.clone())
    }

    async fn send(&self, job: &DeliveryJob, _now: DateTime<Utc>) -> Result<String, Failure> {
        if job.code.is_some() {
            // With no channel configured (a demo, a development machine), a sign-in
            // code can be read only here.
            tracing::info!(to = %job.address, body = %job.body, "sign-in code");
            return Ok("logged".into());
        }
        tracing::info!(
            delivery = job.id,
            message = job.outbox_id,
            case_id = %job.case_id,
            to = %job.address,
            subject = %job.subject,
            "outbox message"
        );
        Ok("logged".into())
    }
}
