//! Sign-in over HTTP: ask for a code by e-mail address or phone, exchange it for a session token (choosing the account where an address has several), sign out; the caller's account and how they want to be told.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use anju_engine::model::AccountRecord;
use anju_engine::runtime::SignIn;

use crate::http::extract::{Body, Caller, OwnToken};
use crate::http::problem::{ApiError, ApiResult};
use crate::http::serve::ClientAddr;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CodeBody {
    /// A registered e-mail address or phone number.
    address: String,
}

/// The network address a request came from, as the rate limits count it.
pub(crate) fn client_of(client: Option<axum::Extension<ClientAddr>>) -> String {
    client
        .map(|axum::Extension(ClientAddr(ip))| ip.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Asks for a sign-in code: 202 with the same answer whether the address is
/// registered or not.
/// The answer to a code request, the same whether the address is registered or not.
#[derive(Serialize, utoipa::ToSchema)]
struct CodeAccepted {
    status: &'static str,
    detail: &'static str,
    expires_in_s: i64,
}

#[utoipa::path(post, path = "/auth/code", tag = "auth", request_body = CodeBody, responses((status = 202, description = "accepted: a code goes out if the address is registered (the same answer either way)", body = CodeAccepted)))]
pub(super) async fn request_code(
    State(app): State<AppState>,
    client: Option<axum::Extension<ClientAddr>>,
    body: Body<CodeBody>,
) -> ApiResult<Response> {
    app.runtime
        .request_signin_code(&body.value.address, &client_of(client), &app.channels)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!(CodeAccepted {
            status: "accepted",
            detail: "若该地址已登记，验证码已发出，10 分钟内有效。 / If this address is registered, a code is on its way; it is valid for 10 minutes.",
            expires_in_s: anju_engine::signin::CODE_TTL.num_seconds(),
        })),
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SessionBody {
    address: String,
    code: String,
    /// Which account to act as, where the address has several.
    account_id: Option<i64>,
}

/// An account as its owner sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AccountOut<'a> {
    id: i64,
    name: &'a str,
    role: &'static str,
    subject_id: i64,
    email: Option<&'a str>,
    phone: Option<&'a str>,
    channels: Option<&'a [String]>,
    digest: bool,
}

impl<'a> AccountOut<'a> {
    pub(crate) fn of(a: &'a AccountRecord) -> AccountOut<'a> {
        AccountOut {
            id: a.id,
            name: &a.name,
            role: a.role.as_str(),
            subject_id: a.subject,
            email: a.email.as_deref(),
            phone: a.phone.as_deref(),
            channels: a.channels.as_deref(),
            digest: a.digest,
        }
    }
}

/// A session made by a sign-in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SessionOut<'a> {
    token: &'a str,
    expires_at: DateTime<Utc>,
    account: AccountOut<'a>,
}

/// The accounts an address may act as, for the person to choose.
pub(crate) fn choices(accounts: &[AccountRecord]) -> Value {
    json!(
        accounts
            .iter()
            .map(|a| json!({ "account_id": a.id, "name": a.name, "role": a.role.as_str(), "subject_id": a.subject }))
            .collect::<Vec<_>>()
    )
}

/// Exchanges a code for a session token (201), or lists the accounts to choose from
/// (409 problem with `choices`).
#[utoipa::path(post, path = "/auth/session", tag = "auth", request_body = SessionBody, responses((status = 201, description = "a session token for the account", body = SessionOut)))]
pub(super) async fn create_session(
    State(app): State<AppState>,
    client: Option<axum::Extension<ClientAddr>>,
    body: Body<SessionBody>,
) -> ApiResult<Response> {
    let b = body.value;
    match app
        .runtime
        .sign_in(&b.address, &b.code, b.account_id, &client_of(client))
        .await?
    {
        SignIn::Session(s) => Ok((
            StatusCode::CREATED,
            Json(json!(SessionOut {
                token: &s.token,
                expires_at: s.expires_at,
                account: AccountOut::of(&s.account),
            })),
        )
            .into_response()),
        SignIn::Choose(accounts) => Err(ApiError::ChooseAccount(choices(&accounts))),
    }
}

/// Signs out: the caller's token stops working.
#[utoipa::path(delete, path = "/auth/session", tag = "auth", responses((status = 204, description = "signed out: the token sent is revoked")))]
pub(super) async fn delete_session(
    State(app): State<AppState>,
    OwnToken(token): OwnToken,
) -> ApiResult<StatusCode> {
    app.runtime.sign_out(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own account (a person who signed in), else `null`.
#[utoipa::path(get, path = "/me/account", tag = "auth", responses((status = 200, description = "the caller's account: channels, digest, addresses", body = MyAccount)))]
pub(super) async fn my_account(
    State(app): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    let account = app.runtime.account(caller.account).await?;
    Ok(Json(json!(MyAccount {
        account: account.as_ref().map(AccountOut::of)
    })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PreferencesBody {
    /// The channels to be told on; `null` for every channel the person has an address on.
    channels: Option<Vec<String>>,
    /// One daily digest instead of single messages.
    #[serde(default)]
    digest: bool,
}

/// Sets how the caller wants to be told.
#[utoipa::path(put, path = "/me/preferences", tag = "auth", request_body = PreferencesBody, responses((status = 200, description = "the caller's account with its new preferences", body = MyAccount)))]
pub(super) async fn set_preferences(
    State(app): State<AppState>,
    Caller(caller): Caller,
    body: Body<PreferencesBody>,
) -> ApiResult<Json<Value>> {
    let known: Vec<String> = app.channels.iter().map(|c| c.name().to_string()).collect();
    let b = body.value;
    let account = app
        .runtime
        .set_preferences(caller.account, b.channels, b.digest, &known)
        .await?;
    Ok(Json(json!(MyAccount {
        account: Some(AccountOut::of(&account))
    })))
}

/// The caller's account (none for a token made without one).
#[derive(Serialize, utoipa::ToSchema)]
struct MyAccount<'a> {
    account: Option<AccountOut<'a>>,
}
