//! Request extractors whose failures are problem+json: JSON bodies, multipart forms, query strings, numeric ids, the caller's token and the Idempotency-Key.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use anju_engine::auth::Principal;
use anju_engine::model::IdempotencyKey;

use crate::http::problem::ApiError;
use crate::state::AppState;

/// A `multipart/form-data` body (a form with files). Any other body is answered with a
/// problem (415), not with axum's plain-text rejection.
pub struct FormData(pub axum::extract::Multipart);

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Multipart::from_request(req, state)
            .await
            .map(FormData)
            .map_err(|_| ApiError::UnsupportedMediaType)
    }
}

/// A JSON body of type `T`. Unknown fields, malformed JSON and control characters are
/// refused with the path of the offending value; `digest` identifies the parsed request
/// (for idempotency).
#[derive(Debug)]
pub struct Body<T> {
    pub value: T,
    pub digest: String,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim())
            .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else if timed_out(&e) {
                ApiError::RequestTimeout
            } else {
                ApiError::Malformed {
                    field: None,
                    detail: format!("could not read the body: {}", e.body_text()),
                }
            }
        })?;
        let parsed: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::Malformed {
                field: None,
                detail: format!("the body is not valid JSON: {e}"),
            })?;
        if anju_engine::text::json_may_hold_forbidden(&bytes) {
            refuse_control_characters(&parsed)?;
        }
        // The request is identified by its parsed value, not its bytes: the same JSON
        // sent again with other whitespace or key order is the same request.
        let mut hasher = Sha256::new();
        hasher.update(method.as_str());
        hasher.update(b" ");
        hasher.update(path.as_bytes());
        hasher.update(b"\n");
        hasher.update(serde_json::to_vec(&parsed).expect("a JSON value serializes"));
        let value = from_value(parsed)?;
        Ok(Body {
            value,
            digest: hex::encode(hasher.finalize()),
        })
    }
}

/// Whether reading the body failed because it did not arrive in time.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = err.source();
    }
    false
}

/// Refuses a value holding a control character in any string or key, naming where.
pub fn refuse_control_characters(value: &serde_json::Value) -> Result<(), ApiError> {
    match anju_engine::text::find_forbidden(value) {
        None => Ok(()),
        Some((path, c)) => Err(ApiError::Unprocessable {
            field: if path.is_empty() { "body".into() } else { path },
            detail: format!(
                "holds the control character U+{:04X}; text may not hold control characters other than tab and line breaks",
                c as u32
            ),
        }),
    }
}

/// Reads a parsed JSON value into `T`, reporting where it went wrong: a value of the
/// wrong type or an unknown or missing field names its path.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let inner = e.inner();
        let mut field = e.path().to_string();
        if field == "." {
            field.clear();
        }
        let message = inner.to_string();
        // serde names an unknown or missing field only in its message; put it in
        // the path.
        if let Some(name) = message
            .strip_prefix("unknown field `")
            .or_else(|| message.strip_prefix("missing field `"))
            .and_then(|rest| rest.split('`').next())
        {
            if field.is_empty() {
                field = name.to_string();
            } else if !field.ends_with(name) {
                field = format!("{field}.{name}");
            }
        }
        let field = if field.is_empty() {
            "body".into()
        } else {
            field
        };
        let detail = strip_position(&message);
        // The body's shape is wrong (a field unknown, missing or of the wrong JSON
        // type): 400. The shape is right but a value is not allowed (an unknown enum
        // value, a number out of range, a date out of range): 422.
        let shape = [
            "invalid type",
            "invalid length",
            "unknown field",
            "missing field",
            "duplicate field",
        ]
        .iter()
        .any(|p| message.starts_with(p));
        if shape {
            ApiError::Malformed {
                field: Some(field),
                detail,
            }
        } else {
            ApiError::Unprocessable { field, detail }
        }
    })
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Refuses, for every route, a request whose path or query string is not UTF-8 once
/// percent-decoded (400) or holds a control character (422), naming the query
/// parameter or `path`.
pub async fn check_target(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    match check_uri(req.uri()) {
        Ok(()) => next.run(req).await,
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}

fn check_uri(uri: &axum::http::Uri) -> Result<(), ApiError> {
    let decoded = |raw: &str, field: &str| -> Result<String, ApiError> {
        let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
        let text = String::from_utf8(bytes).map_err(|_| ApiError::Malformed {
            field: Some(field.to_string()),
            detail: "not UTF-8 once percent-decoded".into(),
        })?;
        if let Err(e) = anju_engine::text::check_chars(field, &text) {
            return Err(ApiError::Unprocessable {
                field: e.field,
                detail: e.message,
            });
        }
        Ok(text)
    };
    decoded(uri.path(), "path")?;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decoded(&key.replace('+', " "), "query")?;
        decoded(&value.replace('+', " "), &key)?;
    }
    Ok(())
}

/// A query string of type `T`, refused with the name of the bad parameter.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Params)
            .map_err(|e| {
                let message = e.inner().to_string();
                let field = message
                    .strip_prefix("unknown field `")
                    .or_else(|| message.strip_prefix("missing field `"))
                    .and_then(|rest| rest.split('`').next())
                    .map(String::from)
                    .unwrap_or_else(|| e.path().to_string());
                ApiError::Unprocessable {
                    field,
                    detail: message,
                }
            })
    }
}

/// A numeric id in the path; anything else is "not found".
#[derive(Debug, Clone, Copy)]
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::NotFound(e.body_text()))?;
        raw.parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(Id)
            .ok_or_else(|| ApiError::NotFound(format!("`{raw}` is not an id")))
    }
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("send `Authorization: Bearer <token>`".into()))?;
    header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 200)
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header is not a bearer token".into())
        })
}

/// The caller's own token, for signing out.
#[derive(Debug, Clone)]
pub struct OwnToken(pub String);

impl FromRequestParts<AppState> for OwnToken {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?.to_string();
        match state.runtime.authenticate(&token).await? {
            Some(_) => Ok(OwnToken(token)),
            None => Err(ApiError::Unauthorized("unknown or revoked token".into())),
        }
    }
}

/// The authenticated caller, from `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        match state.runtime.authenticate(token).await? {
            Some(p) => Ok(Caller(p)),
            None => Err(ApiError::Unauthorized("unknown or revoked token".into())),
        }
    }
}

/// The optional `Idempotency-Key` header of a create.
#[derive(Debug, Clone)]
pub struct IdemHeader(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdemHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdemHeader(None));
        };
        let key = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 200)
            .ok_or_else(|| ApiError::Malformed {
                field: Some("Idempotency-Key".into()),
                detail: "an Idempotency-Key is 1 to 200 visible ASCII characters".into(),
            })?;
        Ok(IdemHeader(Some(key.to_string())))
    }
}

impl IdemHeader {
    /// The key bound to this caller and this exact request.
    pub fn for_request(&self, caller: &Principal, digest: &str) -> Option<IdempotencyKey> {
        self.0.as_ref().map(|key| IdempotencyKey {
            subject: format!("{}:{}", caller.role, caller.subject),
            key: key.clone(),
            request_hash: digest.to_string(),
        })
    }
}
