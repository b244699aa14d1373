//! The OpenAPI 3.1 document of the HTTP API, generated from the code: every route of `/api/v1` and the public pages is registered through utoipa-axum from its handler's `#[utoipa::path]`, so a route cannot be served without being described; then every operation gets the problem responses it can give (RFC 9457 `application/problem+json`, 429 and 503 included) and the bearer-token security. Served at `/api/v1/openapi.json`, with a Swagger UI page at `/api/v1/docs` whose assets are compiled into the binary (works offline).

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, ResponseBuilder, SecurityRequirement};
use utoipa::{OpenApi as _, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";

/// Where the docs page is served.
pub const DOCS_PATH: &str = "/api/v1/docs";

/// The problem types the service answers with (`/problems/<slug>`).
pub const PROBLEM_TYPES: &[&str] = &[
    "choose-account",
    "conflict",
    "forbidden",
    "idempotency-key-reused",
    "illegal-transition",
    "internal",
    "invalid-request",
    "malformed-request",
    "method-not-allowed",
    "not-found",
    "payload-too-large",
    "request-timeout",
    "sign-in-refused",
    "stale-version",
    "too-many-requests",
    "unauthorized",
    "unavailable",
    "unsupported-media-type",
];

/// A field at fault in a request.
#[derive(ToSchema)]
#[allow(dead_code)]
struct FieldProblem {
    /// The field, as a path into the request (`data.extension_hours`, `findings[0].category`).
    field: String,
    message: String,
}

/// RFC 9457 problem details, as every error is answered.
#[derive(ToSchema)]
#[allow(dead_code)]
struct Problem {
    /// `/problems/<slug>`: one of the problem types listed in the document's description.
    #[schema(rename = "type", pattern = "^/problems/[a-z-]+$")]
    kind: String,
    /// Chinese, then English.
    title: String,
    status: u16,
    detail: String,
    /// The first field at fault, when the request was at fault.
    field: Option<String>,
    /// Every field at fault.
    errors: Option<Vec<FieldProblem>>,
    /// A stale version's current version (409).
    current_version: Option<i64>,
    /// The accounts to choose from (409 `choose-account`).
    #[schema(value_type = Option<Vec<Object>>)]
    choices: Option<serde_json::Value>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "安居 Anju",
        description = "Rental hazard inspection: the closed loop of patrol, discovery, notification, enforcement and feedback over Guangzhou's rental units. Errors are RFC 9457 problem details (`application/problem+json`) whose `type` is `/problems/<slug>`; the slugs are listed in the `Problem` schema's description.",
    ),
    components(schemas(Problem, FieldProblem))
)]
struct ApiDoc;

/// The API's routes and their document.
pub fn split(routes: OpenApiRouter<AppState>) -> (Router<AppState>, OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes)
        .split_for_parts();
    finish(&mut doc);
    (router, doc)
}

/// The statuses every operation may answer with besides its own, and what they mean.
const PROBLEMS: &[(&str, &str)] = &[
    ("400", "the body is not JSON or not of the expected shape"),
    ("401", "no valid token (or session)"),
    ("403", "the caller's role can never do this"),
    (
        "404",
        "no such resource, or one outside the caller's scope (the same answer)",
    ),
    ("405", "another method is served on this path"),
    (
        "409",
        "a conflict: a stale version, a reused idempotency key, a duplicate",
    ),
    ("413", "the body is too large"),
    ("415", "the body's media type is not accepted"),
    ("422", "a value is wrong; `field` names it"),
    (
        "429",
        "too many requests; `Retry-After` says when to come back",
    ),
    ("500", "an internal error (nothing was changed)"),
    (
        "503",
        "the service is saturated or stopping; `Retry-After` says when to come back",
    ),
];

/// Operations served without a token.
const PUBLIC: &[&str] = &[
    "/api/v1/auth/code",
    "/u/{code}",
    "/u/{code}/qr.svg",
    "/u/{code}/tip",
    "/c/{code}",
    "/named",
];

/// Adds the problem responses and the security to every operation, the problem types
/// to the Problem schema, and the bearer scheme to the components.
fn finish(doc: &mut OpenApi) {
    let problem = || {
        ContentBuilder::new()
            .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                "Problem",
            ))))
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        // Open311 answers its errors as Open311 does (`[{"code", "description"}]`, in
        // JSON or XML by the path's extension); a request the service refuses before
        // the route (a malformed path or query) is a problem as everywhere.
        let open311 = path.starts_with("/open311/");
        let public = open311 || PUBLIC.contains(&path.as_str());
        let operations = [
            (&mut item.get, public),
            // Signing in needs no token; signing out does.
            (&mut item.post, public || path == "/api/v1/auth/session"),
            (&mut item.put, public),
            (&mut item.delete, public),
        ];
        for (op, public) in operations {
            let Some(op) = op.as_mut() else { continue };
            for (status, why) in PROBLEMS {
                op.responses
                    .responses
                    .entry((*status).to_string())
                    .or_insert_with(|| {
                        let mut response = ResponseBuilder::new()
                            .description(*why)
                            .content("application/problem+json", problem());
                        if open311 {
                            response = response
                                .content(
                                    "application/json",
                                    ContentBuilder::new().schema(Some(open311_errors())).build(),
                                )
                                .content("text/xml", ContentBuilder::new().build());
                        }
                        RefOr::T(response.build())
                    });
            }
            if !public {
                op.security = Some(vec![SecurityRequirement::new(
                    "token",
                    Vec::<String>::new(),
                )]);
            }
        }
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "token",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API token or a session token (`anju_…`): `Authorization: Bearer <token>`",
                ))
                .build(),
        ),
    );
    if let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(o))) =
        components.schemas.get_mut("Problem")
    {
        o.description = Some(format!(
            "RFC 9457 problem details. `type` is one of: {}",
            PROBLEM_TYPES
                .iter()
                .map(|t| format!("`/problems/{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}

/// Open311's errors: `[{"code": 400, "description": "…"}]`.
fn open311_errors() -> RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .property("code", ObjectBuilder::new().schema_type(Type::Integer))
                .property(
                    "description",
                    ObjectBuilder::new().schema_type(Type::String),
                )
                .required("code")
                .required("description"),
        )
        .into()
}

/// The docs page (Swagger UI, assets in the binary) and the document it reads.
pub fn docs(doc: OpenApi) -> Router<AppState> {
    utoipa_swagger_ui::SwaggerUi::new(DOCS_PATH)
        .url(DOCUMENT_PATH, doc)
        .into()
}
