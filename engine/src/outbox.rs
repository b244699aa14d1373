//! The delivery side of the outbox: a pluggable `Deliverer`, and the default one that records messages in the log.

use async_trait::async_trait;

use crate::store::OutboxMessage;

/// Hands an outbox message to the outside world. Delivery is at least once: a message
/// whose delivery was interrupted is offered again, so a deliverer must tolerate seeing
/// the same message twice (the message id is stable and can be used to deduplicate).
#[async_trait]
pub trait Deliverer: Send + Sync + 'static {
    /// The channel name recorded with a delivered message (`log`, `email`, …).
    fn channel(&self) -> &str;

    async fn deliver(&self, message: &OutboxMessage) -> Result<(), String>;
}

/// Writes each message to the service log. The default until a real channel (e-mail,
/// SMS, the hotline platform) is configured; the messages stay readable in the case's
/// outbox either way.
#[derive(Debug, Default)]
pub struct LogDeliverer;

#[async_trait]
impl Deliverer for LogDeliverer {
    fn channel(&self) -> &str {
        "log"
    }

    async fn deliver(&self, m: &OutboxMessage) -> Result<(), String> {
        tracing::info!(
            message_id = m.id,
            case_id = %m.case_id,
            to = %m.recipient_kind,
            recipient_id = ?m.recipient_id,
            subject = %m.subject,
            "outbox message"
        );
        Ok(())
    }
}
