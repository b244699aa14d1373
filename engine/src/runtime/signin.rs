//! Sign-in without an operator: a person asks for a code by their registered e-mail address or phone, receives it at once on a channel they have, and exchanges it for a session token that expires; where one address belongs to several accounts, they choose which to act as. Codes are single use, short-lived, rate-limited per address and per client, and the answers never tell a registered address from another.

use std::sync::Arc;

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
    /// address). The answer is the same whether the address is registered or not; a
    /// registered person receives the code at once on a channel they have an address on
    /// (never held for quiet hours or a digest). Refused when the address, or the client,
    /// asked for too many codes in the last hour.
    pub async fn request_signin_code(
        &self,
        raw: &str,
        client: &str,
        channels: &[Arc<dyn Channel>],
    ) -> Result<()> {
        let address = Address::parse(raw).map_err(|e| Error::invalid("address", e))?;
        let code = signin::new_code();
        let now = self.now();
        let store = &self.shared.store;
        let issued = store
            .issue_code(
                address.as_str(),
                &signin::code_digest(&address, &code),
                client,
                (signin::CODES_PER_ADDRESS, signin::CODES_PER_CLIENT),
                now - signin::RATE_WINDOW,
                now + signin::CODE_TTL,
                now,
            )
            .await?;
        let id = match issued {
            CodeRequest::Issued(id) => id,
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
            return Ok(());
        };
        // One message to the address, whichever accounts share it; sent in the
        // background so that the answer takes as long for an address nobody has.
        let who = Addressee {
            recipient: format!("account:{}", first.id),
            name: first.name.clone(),
            email: matches!(address, Address::Email(_)).then(|| address.as_str().to_string()),
            phone: matches!(address, Address::Phone(_)).then(|| address.as_str().to_string()),
            channels: None,
            digest: false,
        };
        let Some((channel, to)) = channels
            .iter()
            .find_map(|c| c.address(&who).map(|a| (c.clone(), a)))
        else {
            tracing::warn!(
                code = id,
                "no channel reaches this address; the sign-in code was not sent"
            );
            return Ok(());
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
        tokio::spawn(async move {
            if let Err(f) = channel.send(&job, now).await {
                tracing::warn!(code = id, answer = %f.answer, "a sign-in code was not delivered");
            }
        });
        Ok(())
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

    /// Exchanges a code for a session token. A wrong code counts against the code, which
    /// is spent after `MAX_WRONG_CODES` wrong tries; a used, spent or expired code, and
    /// any code for an address nobody has, get the same refusal. Where the address
    /// belongs to several accounts, `account` chooses one; without it the answer lists
    /// them and the code still holds.
    pub async fn sign_in(&self, raw: &str, code: &str, account: Option<i64>) -> Result<SignIn> {
        let address = Address::parse(raw).map_err(|e| Error::invalid("address", e))?;
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid("code", "the six digits sent to you"));
        }
        let now = self.now();
        let store = &self.shared.store;
        let Some(live) = store.live_code(address.as_str(), now).await? else {
            return Err(refused());
        };
        if live.digest != signin::code_digest(&address, code) {
            store
                .wrong_code(live.id, signin::MAX_WRONG_CODES, now)
                .await?;
            return Err(refused());
        }
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
