//! Gateways over HTTP: a signed JSON POST per delivery to a configured URL, as an SMS gateway (registered template code, its parameters and the rendered text, to a phone; quiet hours kept) or as a platform (粤政易, a street command platform) that takes messages for the recipients it serves.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};

use super::{Channel, Failure};
use crate::notices::SmsTemplates;
use crate::store::{Addressee, DeliveryJob};

/// What a gateway takes.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayKind {
    /// An SMS gateway: deliveries go to people's phones, as registered templates, and
    /// wait out the quiet hours.
    Sms,
    /// A platform that takes messages for the recipients of these kinds (`department`,
    /// `supervisor`, `inspector`, `party`), addressed by their name (`department:5`).
    Platform { serves: Vec<String> },
}

/// A gateway reached by signed POSTs.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The channel's name, recorded with each delivery (`sms`, `yzy`, …).
    pub name: String,
    pub url: String,
    /// The shared secret of the HMAC-SHA256 signature.
    pub secret: String,
    pub kind: GatewayKind,
    /// Links in messages start with this (`ANJU_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// How long one POST may take.
    pub timeout: Duration,
}

/// The header with the time a request was signed, in seconds since 1970.
pub const TIMESTAMP_HEADER: &str = "x-anju-timestamp";
/// The header with `sha256=` and the hex HMAC-SHA256 of `{timestamp}.{body}`.
pub const SIGNATURE_HEADER: &str = "x-anju-signature";

/// The signature of a request: HMAC-SHA256 with the shared secret over the timestamp, a
/// dot, and the body, as `sha256=<hex>`. A gateway computes the same and compares (and
/// refuses timestamps far from its clock, so that a request cannot be replayed later).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A gateway reached over HTTP(S) with signed JSON POSTs.
pub struct WebhookChannel {
    settings: WebhookSettings,
    client: reqwest::Client,
    sms: SmsTemplates,
}

impl std::fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("name", &self.settings.name)
            .field("url", &self.settings.url)
            .finish_non_exhaustive()
    }
}

impl WebhookChannel {
    pub fn new(settings: WebhookSettings) -> Result<WebhookChannel, String> {
        let url = reqwest::Url::parse(&settings.url).map_err(|e| format!("url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("url: `{}` is not http(s)", settings.url));
        }
        if settings.secret.len() < 16 {
            return Err("secret: at least 16 characters".into());
        }
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(WebhookChannel {
            settings,
            client,
            sms: SmsTemplates::builtin(),
        })
    }

    /// The JSON a delivery is posted as.
    fn payload(&self, job: &DeliveryJob) -> serde_json::Value {
        let link = job.link(self.public_url());
        let notice = job.notice(link.as_deref());
        let mut body = serde_json::json!({
            "message_id": job.message_id,
            "delivery": job.id,
            "attempt": job.attempts + 1,
            "case": job.case_id.0,
            "recipient": job.recipient,
            "to": job.address,
            "template": job.template,
        });
        match &self.settings.kind {
            GatewayKind::Sms => {
                let sms = self.sms.render(&notice);
                body["template_code"] = sms.template_code.into();
                body["params"] = serde_json::json!(sms.params);
                body["text"] = sms.text.into();
            }
            GatewayKind::Platform { .. } => {
                body["subject"] = job.subject.clone().into();
                body["text"] = job.body.clone().into();
                body["severity"] = job.severity.clone().into();
                body["deadline_at"] = serde_json::json!(job.deadline_at);
                body["link"] = serde_json::json!(link);
            }
        }
        body
    }
}

#[async_trait]
impl Channel for WebhookChannel {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn address(&self, who: &Addressee) -> Option<String> {
        match &self.settings.kind {
            GatewayKind::Sms => who.phone.clone().filter(|p| {
                let digits = p.strip_prefix('+').unwrap_or(p);
                (5..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
            }),
            GatewayKind::Platform { serves } => {
                let kind = who.recipient.split(':').next().unwrap_or("");
                serves
                    .iter()
                    .any(|s| s == kind)
                    .then(|| who.recipient.clone())
            }
        }
    }

    fn public_url(&self) -> Option<&str> {
        self.settings.public_url.as_deref()
    }

    fn quiet_hours(&self) -> bool {
        self.settings.kind == GatewayKind::Sms
    }

    async fn send(&self, job: &DeliveryJob, now: DateTime<Utc>) -> Result<String, Failure> {
        let body = serde_json::to_vec(&self.payload(job)).map_err(|e| Failure {
            answer: format!("payload: {e}"),
            permanent: true,
        })?;
        let timestamp = now.timestamp();
        let response = self
            .client
            .post(&self.settings.url)
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                SIGNATURE_HEADER,
                signature(&self.settings.secret, timestamp, &body),
            )
            .header("x-anju-message-id", &job.message_id)
            .header("idempotency-key", &job.message_id)
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::transient(format!("{}: {e}", self.settings.name)))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let answer: String = format!("{} {}", status.as_u16(), text.trim())
            .chars()
            .take(300)
            .collect();
        if status.is_success() {
            Ok(answer)
        } else {
            // A gateway that is down or busy may come back; one that refuses the request
            // (a bad number, an unregistered template) will refuse it again.
            let permanent = status.is_client_error()
                && status != reqwest::StatusCode::TOO_MANY_REQUESTS
                && status != reqwest::StatusCode::REQUEST_TIMEOUT;
            Err(Failure { answer, permanent })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let a = signature("a shared secret!", 1_772_000_000, b"{\"x\":1}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64, "{a}");
        assert_eq!(
            a,
            signature("a shared secret!", 1_772_000_000, b"{\"x\":1}")
        );
        assert_ne!(
            a,
            signature("a shared secret!", 1_772_000_001, b"{\"x\":1}")
        );
        assert_ne!(
            a,
            signature("a shared secret!", 1_772_000_000, b"{\"x\":2}")
        );
        assert_ne!(
            a,
            signature("another secret!!", 1_772_000_000, b"{\"x\":1}")
        );
    }
}
