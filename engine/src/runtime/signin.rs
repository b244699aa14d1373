//! Sign-in without an operator: a person asks for a code by their registered e-mail address or phone, receives it at once on a channel they have, and exchanges it for a session token that expires; where one address belongs to several accounts, they choose which to act as. Codes are single use, short-lived, rate-limited per address and per client, and the answers never tell a registered address from another.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};

use crate::domain::CaseId;
use crate::error::{Error, Result};
use crate::outbox::Channel;
use crate::signin::{self, Address};
use crate::store::{AccountRecord, Addressee, CodeRequest, DeliveryJob};

use super::Runtime;

/// A session made by a sign-in: the token's secret (shown once), when it expires, and
/// the account it acts as.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub account: AccountRecord,
}

/// How an exchange of a code ended.
#[derive(Debug, Clone)]
pub enum SignIn {
    Session(Session),
    /// The address belongs to several accounts and none was chosen: the code still
    /// holds; the person sends it again with one of these.
    Choose(Vec<AccountRecord>),
}

/// How long a sign-in code's send may take before the person is told it was not sent.
const CODE_SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long, after a server failed to take a code, every request is told that codes
/// cannot be sent now.
const CHANNEL_DOWN_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// A code that could not be sent: the person is told, in the page's words.
fn not_sent() -> Error {
    Error::NotSent {
        field: "address",
        detail: "验证码未能发出：发送服务暂时不可用或未接收该地址，请稍后重试或联系管理员。 / The code could not be sent: the sending service is unavailable or did not take this address; try again later or contact the office.".into(),
    }
}

/// The refusal of a code that is wrong, used, expired, or for an address nobody has:
/// one answer for all of them.
fn refused() -> Error {
    Error::SignInRefused {
        field: "code",
        detail: "the code is wrong, used or expired; ask for a new one".into(),
    }
}

impl Runtime {
    /// Asks for a sign-in code for the address typed, from `client` (its network
    /// address). A registered person receives the code at once on a channel they have
    /// an address on (never held for quiet hours or a digest), and the answer waits for
    /// the send: a code the channel refused is said to be not sent (`NotSent`), never
    /// "on its way". For an address nobody has, the answer is the same as a code sent,
    /// after about as long as a send takes here. Refused when this client asked for too
    /// many codes for the address, the address was sent too many in all, or the client
    /// asked for too many, in the last hour (counted under a lock in every process).
    pub async fn request_signin_code(
        &self,
        raw: &str,
        client: &str,
        channels: &[Arc<dyn Channel>],
    ) -> Result<()> {
        let address = Address::parse(raw).map_err(|e| Error::invalid("address", e))?;
        // No channel can reach this kind of address at all (a phone with no SMS
        // gateway): said for every address alike, so it tells nobody who is registered.
        let probe = Addressee {
            recipient: String::new(),
            name: String::new(),
            email: matches!(address, Address::Email(_)).then(|| address.as_str().to_string()),
            phone: matches!(address, Address::Phone(_)).then(|| address.as_str().to_string()),
            channels: None,
            digest: false,
        };
        if !channels.iter().any(|c| c.address(&probe).is_some()) {
            return Err(Error::NotSent {
                field: "address",
                detail: "这类地址目前无法接收验证码，请改用登记的邮箱或手机号。 / Codes cannot be sent to this kind of address here; use your registered e-mail address or phone number.".into(),
            });
        }
        // While the channel is down (the last code could not be handed to the server),
        // every address gets the same answer: that no code can be sent now.
        if self.code_channel_down() {
            return Err(not_sent());
        }
        let code = signin::new_code();
        let now = self.now();
        let store = &self.shared.store;
        let issued = store
            .issue_code(
                address.as_str(),
                &signin::code_digest(&address, &code),
                client,
                (
                    signin::CODES_PER_REQUESTER,
                    signin::CODES_PER_ADDRESS,
                    signin::CODES_PER_CLIENT,
                ),
                now - signin::RATE_WINDOW,
                now + signin::CODE_TTL,
                now,
            )
            .await?;
        let id = match issued {
            CodeRequest::Issued(id) => id,
            CodeRequest::RequesterLimited => {
                return Err(Error::TooManyRequests {
                    field: "address",
                    detail: format!(
                        "at most {} codes an hour for one address from one client; use the last one sent, or try again later",
                        signin::CODES_PER_REQUESTER
                    ),
                });
            }
            CodeRequest::AddressLimited => {
                return Err(Error::TooManyRequests {
                    field: "address",
                    detail: format!(
                        "at most {} codes an hour for one address; use the last one sent, or try again later",
                        signin::CODES_PER_ADDRESS
                    ),
                });
            }
            CodeRequest::ClientLimited => {
                return Err(Error::TooManyRequests {
                    field: "address",
                    detail: format!(
                        "at most {} codes an hour from one client; try again later",
                        signin::CODES_PER_CLIENT
                    ),
                });
            }
        };
        let accounts = store.accounts_at(address.as_str()).await?;
        let Some(first) = accounts.first() else {
            // As long as a send takes, so that the answer's time tells nothing.
            let typical = self.shared.code_send_ms.load(Ordering::Relaxed).min(3_000);
            tokio::time::sleep(std::time::Duration::from_millis(typical)).await;
            return Ok(());
        };
        // One message to the address, whichever accounts share it.
        let who = Addressee {
            recipient: format!("account:{}", first.id),
            name: first.name.clone(),
            ..probe
        };
        let Some((channel, to)) = channels
            .iter()
            .find_map(|c| c.address(&who).map(|a| (c.clone(), a)))
        else {
            return Err(Error::Internal(
                "a channel reached the address, then did not".into(),
            ));
        };
        let job = self.code_message(
            id,
            &code,
            &address,
            &who,
            channel.name(),
            &to,
            channel.domain(),
        );
        let started = std::time::Instant::now();
        let sent = match tokio::time::timeout(CODE_SEND_TIMEOUT, channel.send(&job, now)).await {
            Ok(sent) => sent,
            Err(_) => Err(crate::outbox::Failure::transient(format!(
                "no answer within {} s",
                CODE_SEND_TIMEOUT.as_secs()
            ))),
        };
        match sent {
            Ok(_) => {
                // A moving average of how long a send takes (in real time: it is the
                // answer's time the person sees).
                let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                let was = self.shared.code_send_ms.load(Ordering::Relaxed);
                let avg = if was == 0 { took } else { (was * 7 + took) / 8 };
                self.shared.code_send_ms.store(avg, Ordering::Relaxed);
                *self.shared.code_channel_down.lock().expect("lock") = None;
                Ok(())
            }
            Err(f) => {
                tracing::warn!(code = id, answer = %f.answer, permanent = f.permanent, "a sign-in code was not delivered");
                // The server itself failed (not this one address): every address is
                // told so for a while, registered or not.
                if !f.permanent {
                    *self.shared.code_channel_down.lock().expect("lock") =
                        Some(std::time::Instant::now() + CHANNEL_DOWN_FOR);
                }
                // The code is not spent by the failure: a retry counts as a new request.
                Err(not_sent())
            }
        }
    }

    /// Whether the last sign-in code could not be handed to its server, recently.
    fn code_channel_down(&self) -> bool {
        let mut down = self.shared.code_channel_down.lock().expect("lock");
        match *down {
            Some(until) if until > std::time::Instant::now() => true,
            Some(_) => {
                *down = None;
                false
            }
            None => false,
        }
    }

    /// The message that carries a sign-in code, with a link that signs in.
    #[allow(clippy::too_many_arguments)]
    fn code_message(
        &self,
        id: i64,
        code: &str,
        address: &Address,
        who: &Addressee,
        channel: &str,
        to: &str,
        domain: &str,
    ) -> DeliveryJob {
        let link = self.shared.config.public_url.as_ref().map(|u| {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("address", address.as_str())
                .append_pair("code", code)
                .finish();
            format!("{}/signin?{query}", u.trim_end_matches('/'))
        });
        let minutes = signin::CODE_TTL.num_minutes();
        let mut body = format!(
            "您的安居登录验证码为 {code}，{minutes} 分钟内有效，仅可使用一次。如非本人操作，请忽略本邮件。\n\n\
             Your Anju sign-in code is {code}. It is valid for {minutes} minutes and can be used once. \
             If you did not ask for it, ignore this message."
        );
        if let Some(link) = &link {
            body.push_str(&format!("\n\n直接登录 / Sign in: {link}"));
        }
        DeliveryJob {
            id: 0,
            outbox_id: 0,
            case_id: CaseId(0),
            recipient: who.recipient.clone(),
            channel: channel.to_string(),
            address: to.to_string(),
            attempts: 0,
            message_id: format!("anju.signin.{id}@{domain}"),
            template: "signin_code".into(),
            subject: "安居登录验证码 / Anju sign-in code".into(),
            body,
            order_no: 0,
            unit_address: String::new(),
            severity: String::new(),
            deadline_at: None,
            inspector: None,
            code: Some(code.to_string()),
            digest: false,
        }
    }

    /// Exchanges a code for a session token. Any live code of the address signs in (a
    /// code a stranger asked for does not void the person's). A wrong code counts
    /// against `client` for the address, which is refused after `MAX_WRONG_CODES`
    /// wrong tries within a code's lifetime (other requesters are not), and against the
    /// address's live codes, spent after `MAX_WRONG_TOTAL` wrong tries from everyone; a
    /// used, spent or expired code, and any code for an address nobody has, get the
    /// same refusal. Where the address belongs to several accounts, `account` chooses
    /// one; without it the answer lists them and the code still holds.
    pub async fn sign_in(
        &self,
        raw: &str,
        code: &str,
        account: Option<i64>,
        client: &str,
    ) -> Result<SignIn> {
        let address = Address::parse(raw).map_err(|e| Error::invalid("address", e))?;
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid("code", "the six digits sent to you"));
        }
        let now = self.now();
        let store = &self.shared.store;
        let tries = store
            .wrong_tries(address.as_str(), client, now - signin::CODE_TTL)
            .await?;
        if tries >= signin::MAX_WRONG_CODES {
            return Err(Error::TooManyRequests {
                field: "code",
                detail: format!(
                    "{} wrong codes from here in {} minutes; wait, or ask for a new code",
                    signin::MAX_WRONG_CODES,
                    signin::CODE_TTL.num_minutes()
                ),
            });
        }
        let live_codes = store.live_codes(address.as_str(), now).await?;
        let digest = signin::code_digest(&address, code);
        let Some(live) = live_codes.iter().find(|c| c.digest == digest).cloned() else {
            if !live_codes.is_empty() {
                let ids: Vec<i64> = live_codes.iter().map(|c| c.id).collect();
                store
                    .wrong_code(address.as_str(), client, &ids, signin::MAX_WRONG_TOTAL, now)
                    .await?;
            }
            return Err(refused());
        };
        let accounts = store.accounts_at(address.as_str()).await?;
        let chosen = match (accounts.len(), account) {
            (0, _) => return Err(refused()),
            (1, None) => accounts[0].clone(),
            (_, None) => return Ok(SignIn::Choose(accounts)),
            (_, Some(id)) => accounts
                .iter()
                .find(|a| a.id == id)
                .cloned()
                .ok_or_else(|| {
                    Error::invalid("account_id", "not one of the accounts of this address")
                })?,
        };
        if self.principal(chosen.role, chosen.subject).await?.is_none() {
            return Err(refused());
        }
        if !store.spend_code(live.id, now).await? {
            return Err(refused());
        }
        let token = crate::auth::new_token();
        let expires_at = now + signin::SESSION_TTL;
        store
            .insert_token(
                &token.digest,
                chosen.role,
                chosen.subject,
                Some(&format!("session of account {}", chosen.id)),
                Some(expires_at),
                Some(chosen.id),
                now,
            )
            .await?;
        Ok(SignIn::Session(Session {
            token: token.secret,
            expires_at,
            account: chosen,
        }))
    }

    /// The account of a person who signed in; `None` for a token made for an office.
    pub async fn account(&self, id: Option<i64>) -> Result<Option<AccountRecord>> {
        match id {
            Some(id) => Ok(self.shared.store.account(id).await?),
            None => Ok(None),
        }
    }

    /// Sets how the person behind a session wants to be told: on which channels (of
    /// those the service knows), and whether in a daily digest.
    pub async fn set_preferences(
        &self,
        account: Option<i64>,
        channels: Option<Vec<String>>,
        digest: bool,
        known: &[String],
    ) -> Result<AccountRecord> {
        let Some(id) = account else {
            return Err(Error::Conflict(
                "preferences are a person's: sign in with your own account (POST /api/v1/auth/code)"
                    .into(),
            ));
        };
        if let Some(bad) = channels.iter().flatten().find(|c| !known.contains(c)) {
            return Err(Error::invalid(
                "channels",
                format!(
                    "`{bad}` is not a channel of this service ({})",
                    known.join(", ")
                ),
            ));
        }
        let store = &self.shared.store;
        store
            .set_preferences(id, channels.as_deref(), digest)
            .await?;
        store
            .account(id)
            .await?
            .ok_or_else(|| Error::not_found("account", id))
    }

    /// Signs out: the caller's own token is revoked (every process refuses it within
    /// `TOKEN_RECHECK`).
    pub async fn sign_out(&self, secret: &str) -> Result<()> {
        let digest = crate::auth::token_digest(secret);
        self.shared.store.revoke_tokens(&digest, self.now()).await?;
        self.shared
            .tokens
            .write()
            .expect("tokens lock")
            .remove(&digest);
        Ok(())
    }
}
