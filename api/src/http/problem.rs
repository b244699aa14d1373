//! Errors on the wire: RFC 9457 problem details (`application/problem+json`) naming the field at fault.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use anju_engine::error::FieldError;

/// Every way a request can fail, as the HTTP layer sees it.
#[derive(Debug)]
pub enum ApiError {
    /// The engine refused or failed.
    Engine(anju_engine::Error),
    /// The body is not JSON, or not JSON of the expected shape.
    Malformed {
        field: Option<String>,
        detail: String,
    },
    /// The body is JSON of the right shape with a wrong value in it.
    Unprocessable {
        field: String,
        detail: String,
    },
    Unauthorized(String),
    /// One address belongs to several accounts: the person chooses which to act as.
    ChooseAccount(serde_json::Value),
    UnsupportedMediaType,
    NotFound(String),
    MethodNotAllowed,
    PayloadTooLarge,
    /// The body did not arrive within the body timeout.
    RequestTimeout,
}

impl From<anju_engine::Error> for ApiError {
    fn from(e: anju_engine::Error) -> Self {
        ApiError::Engine(e)
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Engine(e.into())
    }
}

#[derive(Debug, Serialize)]
struct Problem {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    choices: Option<serde_json::Value>,
}

impl Problem {
    fn new(status: StatusCode, slug: &str, title: &'static str, detail: String) -> Problem {
        Problem {
            kind: format!("/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail,
            field: None,
            errors: Vec::new(),
            current_version: None,
            choices: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            ApiError::Engine(e) => engine_problem(e),
            ApiError::ChooseAccount(choices) => Problem {
                field: Some("account_id".into()),
                choices: Some(choices),
                ..Problem::new(
                    StatusCode::CONFLICT,
                    "choose-account",
                    "请选择身份 / Choose whom to act as",
                    "this address belongs to several accounts: send the code again with the \
                     account_id of one of `choices`"
                        .into(),
                )
            },
            ApiError::Malformed { field, detail } => Problem {
                field,
                ..Problem::new(
                    StatusCode::BAD_REQUEST,
                    "malformed-request",
                    "请求格式错误 / Malformed request",
                    detail,
                )
            },
            ApiError::Unprocessable { field, detail } => Problem {
                errors: vec![FieldError::new(field.clone(), detail.clone())],
                field: Some(field),
                ..Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-request",
                    "请求无效 / Invalid request",
                    detail,
                )
            },
            ApiError::Unauthorized(detail) => Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "未认证 / Unauthorized",
                detail,
            ),
            ApiError::UnsupportedMediaType => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "不支持的内容类型 / Unsupported media type",
                "send the body as application/json".into(),
            ),
            ApiError::NotFound(detail) => Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "未找到 / Not found",
                detail,
            ),
            ApiError::PayloadTooLarge => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "请求体过大 / Payload too large",
                format!("a body may be at most {} bytes", crate::http::MAX_BODY),
            ),
            ApiError::RequestTimeout => Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "请求超时 / Request timeout",
                "the body did not arrive in time; nothing was changed".into(),
            ),
            ApiError::MethodNotAllowed => Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "不支持的方法 / Method not allowed",
                "this method is not allowed on this resource".into(),
            ),
        };
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The problem of an engine's refusal or failure.
fn engine_problem(e: anju_engine::Error) -> Problem {
    use anju_engine::Error as E;
    match e {
        E::Invalid(errors) => Problem {
            field: errors.first().map(|e| e.field.clone()),
            errors: errors.clone(),
            ..Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-request",
                "请求无效 / Invalid request",
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        },
        e @ E::NotFound { .. } => Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "未找到 / Not found",
            e.to_string(),
        ),
        E::Forbidden(detail) => Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "无权操作 / Forbidden",
            detail,
        ),
        e @ E::IllegalTransition { .. } => Problem {
            field: Some("command".into()),
            ..Problem::new(
                StatusCode::CONFLICT,
                "illegal-transition",
                "当前状态不允许该操作 / Command not allowed in this state",
                e.to_string(),
            )
        },
        e @ E::StaleVersion { actual, .. } => Problem {
            field: Some("expected_version".into()),
            current_version: Some(actual),
            ..Problem::new(
                StatusCode::CONFLICT,
                "stale-version",
                "案件已被修改 / The case has changed",
                e.to_string(),
            )
        },
        e @ E::IdempotencyKeyReused => Problem {
            field: Some("Idempotency-Key".into()),
            ..Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "幂等键已用于其他请求 / Idempotency key reused",
                e.to_string(),
            )
        },
        E::SignInRefused { field, detail } => Problem {
            field: Some(field.into()),
            ..Problem::new(
                StatusCode::UNAUTHORIZED,
                "sign-in-refused",
                "登录失败 / Sign-in refused",
                detail,
            )
        },
        E::TooManyRequests { field, detail } => Problem {
            field: Some(field.into()),
            ..Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "请求过于频繁 / Too many requests",
                detail,
            )
        },
        E::NotSent { field, detail } => Problem {
            field: Some(field.into()),
            ..Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-sent",
                "未能发出 / Not sent",
                detail,
            )
        },
        E::Conflict(detail) => {
            Problem::new(StatusCode::CONFLICT, "conflict", "冲突 / Conflict", detail)
        }
        E::ShuttingDown => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "服务暂不可用 / Service unavailable",
            "the service is shutting down; retry shortly".into(),
        ),
        e @ (E::Store(_) | E::Internal(_)) => {
            // The cause goes to the log, not to the client.
            tracing::error!(error = %e, "engine failure");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "内部错误 / Internal error",
                "the request could not be completed; nothing was changed".into(),
            )
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
