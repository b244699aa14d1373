//! Request extractors whose failures are problem+json: JSON bodies, query strings, numeric ids, the caller's token and the Idempotency-Key.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use anju_engine::auth::Principal;
use anju_engine::store::IdempotencyKey;

use crate::app::AppState;
use crate::problem::ApiError;

/// The largest JSON body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// A JSON body of type `T`. Unknown fields and malformed JSON are refused with the path
/// of the offending value; `digest` identifies the exact bytes (for idempotency).
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
            } else {
                ApiError::Malformed {
                    field: None,
                    detail: format!("could not read the body: {}", e.body_text()),
                }
            }
        })?;
        let value = parse_json(&bytes)?;
        let mut hasher = Sha256::new();
        hasher.update(method.as_str());
        hasher.update(b" ");
        hasher.update(path.as_bytes());
        hasher.update(b"\n");
        hasher.update(&bytes);
        Ok(Body {
            value,
            digest: hex::encode(hasher.finalize()),
        })
    }
}

/// Parses JSON, reporting where it went wrong: a syntax error is a malformed request;
/// a value of the wrong type or an unknown field names its path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize::<_, T>(&mut de);
    if parsed.is_ok() {
        de.end().map_err(|e| ApiError::Malformed {
            field: None,
            detail: format!("the body is not valid JSON: {e}"),
        })?;
    }
    match parsed {
        Ok(v) => Ok(v),
        Err(e) => {
            let inner = e.inner();
            let mut field = e.path().to_string();
            if field == "." {
                field.clear();
            }
            if inner.is_syntax() || inner.is_eof() || inner.is_io() {
                return Err(ApiError::Malformed {
                    field: None,
                    detail: format!("the body is not valid JSON: {inner}"),
                });
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
            Err(ApiError::Malformed {
                field: Some(if field.is_empty() {
                    "body".into()
                } else {
                    field
                }),
                detail: strip_position(&message),
            })
        }
    }
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
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

/// The authenticated caller, from `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("send `Authorization: Bearer <token>`".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 200)
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header is not a bearer token".into())
            })?;
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
