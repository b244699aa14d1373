//! The pages people use, rendered on the server (maud), Chinese first then English: sign-in with a code into a cookie session (HttpOnly, SameSite, Secure behind https), the caller's home, a case with its timeline and exactly the commands the caller may issue now, the printable order, my messages, a landlord's units, an inspector's plan, and sign-out. Every form of a signed-in page carries a CSRF token; every page shows what the API would show the same person, and a page the caller may not see answers as one that does not exist.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use sha2::{Digest, Sha256};

use anju_engine::auth::{Principal, Scope};

use crate::http::problem::ApiError;
use crate::state::AppState;

mod assets;
mod cases;
mod dashboard;
mod declare;
mod desk;
mod inspect;
mod order;
mod signin;

/// The most a form with files may carry (several phone photos, or a scanned decision).
const FORM_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

type EvidencePath = axum::extract::Path<String>;

/// An upload, for a visitor who may see it (as the API serves it).
async fn evidence_file(
    axum::extract::State(app): axum::extract::State<AppState>,
    visitor: Visitor,
    axum::extract::Path(id): EvidencePath,
) -> Response {
    serve_evidence(&app, &visitor, &id, false).await
}

/// An upload's thumbnail, for a visitor who may see it.
async fn evidence_thumbnail(
    axum::extract::State(app): axum::extract::State<AppState>,
    visitor: Visitor,
    axum::extract::Path(id): EvidencePath,
) -> Response {
    serve_evidence(&app, &visitor, &id, true).await
}

async fn serve_evidence(app: &AppState, visitor: &Visitor, id: &str, thumbnail: bool) -> Response {
    match app
        .runtime
        .evidence_file(&visitor.principal, id, thumbnail)
        .await
    {
        Ok((record, bytes)) => crate::routes::evidence::file_response(&record, bytes, thumbnail),
        Err(e) => error_page(e.into()),
    }
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "anju_session";

pub use assets::MapSettings;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/assets/leaflet/leaflet.js", get(assets::leaflet_js))
        .route("/assets/leaflet/leaflet.css", get(assets::leaflet_css))
        .route("/assets/anju.js", get(assets::anju_js))
        .route("/assets/heic2any.min.js", get(assets::heic2any_js))
        .route("/assets/echarts.min.js", get(assets::echarts_js))
        .route("/assets/dashboard.js", get(assets::dashboard_js))
        .route("/assets/plan.js", get(assets::plan_js))
        .route("/assets/heic.html", get(assets::heic_frame))
        .route("/assets/heic-frame.js", get(assets::heic_frame_js))
        .route("/dashboard", get(dashboard::dashboard))
        .route("/sw.js", get(assets::service_worker))
        .route("/", get(cases::home))
        .route("/signin", get(signin::form_page).post(signin::submit))
        .route("/signin/code", post(signin::ask_code))
        .route("/signout", post(signin::sign_out))
        .route("/cases/{id}", get(cases::case_page))
        .route(
            "/cases/{id}/commands",
            post(cases::command).layer(DefaultBodyLimit::max(FORM_UPLOAD_BYTES)),
        )
        .route("/evidence/{id}", get(evidence_file))
        .route("/evidence/{id}/thumbnail", get(evidence_thumbnail))
        .route("/cases/{id}/order", get(order::order_page))
        .route("/messages", get(desk::messages))
        .route("/messages/{id}/read", post(desk::mark_read))
        .route("/units", get(desk::units))
        .route("/units/{id}", get(desk::unit_page))
        .route("/units/{id}/declarations", post(declare::submit))
        .route("/u/{code}/declare", get(declare::from_placard))
        .route(
            "/units/{id}/inspect",
            get(inspect::form_page)
                .post(inspect::submit)
                .layer(DefaultBodyLimit::max(FORM_UPLOAD_BYTES)),
        )
        .route("/plan", get(desk::plan))
        .route("/blacklist", get(desk::blacklist))
        .route("/blacklist/{id}/appeal", post(desk::appeal))
}

/// A signed-in visitor: who they are, and the session's secret (for the CSRF token).
#[derive(Debug, Clone)]
pub struct Visitor {
    pub principal: Principal,
    secret: String,
}

impl Visitor {
    /// The token every form of this session carries.
    pub fn csrf(&self) -> String {
        csrf_for(&self.secret)
    }

    /// A form this visitor posted, once its CSRF token proved it came from a page of
    /// this session; otherwise the refusal to answer with (a post from another site
    /// carries no token).
    pub fn posted(&self, body: &[u8]) -> Result<Posted, Box<Response>> {
        let posted = Posted(form(body).unwrap_or_default());
        match posted.get("csrf") {
            Some(token) if token == self.csrf() => Ok(posted),
            _ => Err(Box::new(refused_form())),
        }
    }
}

impl Visitor {
    /// A multipart form this visitor posted (a form with files), once its CSRF token
    /// proved it came from a page of this session: its fields and its files.
    pub async fn posted_multipart(
        &self,
        multipart: axum::extract::Multipart,
    ) -> Result<(Posted, Vec<FilePart>), Box<Response>> {
        let (fields, files) = crate::routes::evidence::read_multipart(multipart)
            .await
            .map_err(|e| Box::new(error_page(e)))?;
        let posted = Posted(fields);
        match posted.get("csrf") {
            Some(token) if token == self.csrf() => Ok((posted, files)),
            _ => Err(Box::new(refused_form())),
        }
    }

    /// Uploads a form's files (PDFs as documents, images as photos) as this visitor;
    /// their evidence ids by form field, or the page that says which file was refused
    /// and why.
    pub async fn upload(
        &self,
        app: &AppState,
        files: Vec<FilePart>,
    ) -> Result<Vec<(String, String)>, Box<Response>> {
        let mut ids = Vec::with_capacity(files.len());
        for f in files {
            let kind = match anju_engine::evidence::MediaType::sniff(&f.bytes) {
                Some(anju_engine::evidence::MediaType::Pdf) => {
                    anju_engine::evidence::EvidenceKind::Document
                }
                _ => anju_engine::evidence::EvidenceKind::Photo,
            };
            let name = f.file_name.clone();
            match app
                .runtime
                .upload_evidence(
                    &self.principal,
                    kind,
                    f.content_type.as_deref(),
                    &name,
                    f.bytes,
                )
                .await
            {
                Ok(record) => ids.push((f.field, record.id)),
                Err(anju_engine::Error::Invalid(errors)) => {
                    self.discard(app, &ids).await;
                    let why: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
                    return Err(Box::new(page(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "文件未能接收 / File refused",
                        Some(self),
                        html! {
                            p { "「" (name) "」: " (why.join("; ")) }
                            p { "请返回，换一个文件再提交。 / Go back and send another file." }
                        },
                    )));
                }
                Err(e) => {
                    self.discard(app, &ids).await;
                    return Err(Box::new(error_page(e.into())));
                }
            }
        }
        Ok(ids)
    }

    /// Forgets uploads of a form that was refused: nothing of it stays behind.
    pub async fn discard(&self, app: &AppState, uploads: &[(String, String)]) {
        let ids: Vec<String> = uploads.iter().map(|(_, id)| id.clone()).collect();
        if let Err(e) = app.runtime.discard_uploads(&self.principal, &ids).await {
            tracing::warn!(error = %e, "the uploads of a refused form could not be removed");
        }
    }
}

pub use crate::routes::evidence::FilePart;

/// The page a form without this session's CSRF token gets.
fn refused_form() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "请求被拒绝 / Request refused",
        None,
        html! { p { "表单已过期或来自其他网站，请返回重试。 / The form expired or came from another site; go back and try again." } },
    )
}

/// The fields of a posted form, in order.
#[derive(Debug, Clone, Default)]
pub struct Posted(Vec<(String, String)>);

impl Posted {
    /// The first value of `key`, trimmed; `None` if it is missing or blank.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `key` (a group of checkboxes), trimmed.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .collect()
    }

    /// Every field, in order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.0
    }
}

/// Data for a page's script, as a JSON block it reads as text (`JSON.parse` of the
/// element's `textContent`): never run, and no `</script>` or comment opener can be
/// formed by what a name holds.
pub(super) fn script_data(id: &str, data: &serde_json::Value) -> Markup {
    let text = data
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    html! {
        script type="application/json" id=(id) { (maud::PreEscaped(text)) }
    }
}

/// The CSRF token of a session: derived from its secret, so that only a page of the
/// session can know it.
pub(super) fn csrf_for(secret: &str) -> String {
    let digest = Sha256::digest(format!("anju-csrf\n{secret}").as_bytes());
    hex::encode(&digest[..16])
}

/// The session token in the request's cookies.
fn session_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 200)
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let to_signin = || {
            // Back to the page after signing in; a form's address is no page to go back
            // to (the form was not sent).
            let next = if parts.method == axum::http::Method::GET {
                parts.uri.path()
            } else {
                "/"
            };
            Redirect::to(&format!(
                "/signin?next={}",
                percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
            ))
            .into_response()
        };
        let Some(secret) = session_token(parts) else {
            return Err(to_signin());
        };
        match state.runtime.authenticate(&secret).await {
            Ok(Some(principal)) => Ok(Visitor { principal, secret }),
            Ok(None) => Err(to_signin()),
            Err(e) => Err(error_page(e.into())),
        }
    }
}

/// The `Set-Cookie` of a session: HttpOnly, SameSite=Lax, Secure when the service is
/// reached over https; `None` clears it.
pub fn session_cookie(state: &AppState, token: Option<&str>, max_age_s: i64) -> HeaderValue {
    let secure = state.secure;
    let value = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        token.unwrap_or(""),
        if token.is_some() { max_age_s } else { 0 },
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&value).expect("a cookie of safe characters")
}

/// A page in the one frame: the title, the visitor's sign-out form, the body.
pub fn page(status: StatusCode, title: &str, visitor: Option<&Visitor>, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · 安居 Anju" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/" { "安居 Anju" }
                    @if let Some(v) = visitor {
                        nav {
                            a href="/" { "案件 Cases" }
                            a href="/messages" { "消息 Messages" }
                            @match v.principal.scope {
                                Scope::Party(_) => {
                                    a href="/units" { "我的出租屋 My units" }
                                    a href="/blacklist" { "黑名单 Blacklist" }
                                },
                                Scope::Grids(_) => {
                                    a href="/plan" { "今日巡查 Today's plan" }
                                    a href="/dashboard" { "统计 Dashboard" }
                                },
                                _ => a href="/dashboard" { "统计 Dashboard" },
                            }
                        }
                        form method="post" action="/signout" class="signout" {
                            input type="hidden" name="csrf" value=(v.csrf());
                            button type="submit" { "退出 / Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    p #outbox role="status" {}
                    (body)
                }
                script src="/assets/anju.js" defer {}
            }
        }
    };
    html_response(status, markup)
}

/// A rendered page as the answer: personal pages are never cached.
pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, Html(markup.into_string())).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An API error as a page: the same statuses as the API, a page that does not exist for
/// what the caller may not see.
pub fn error_page(e: ApiError) -> Response {
    // What is wrong with the visitor's own form is theirs to read.
    let fields: Vec<String> = match &e {
        ApiError::Engine(anju_engine::Error::Invalid(fields)) => fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect(),
        ApiError::Unprocessable { field, detail } => vec![format!("{field}: {detail}")],
        _ => Vec::new(),
    };
    let status = e.into_response().status();
    let message = match status {
        StatusCode::NOT_FOUND => "没有这个页面。 / No such page.",
        StatusCode::FORBIDDEN => "您无权执行此操作。 / You may not do this.",
        StatusCode::CONFLICT => {
            "案件已变化或当前状态不允许该操作，请刷新后重试。 / The case has changed or does not allow this now; reload and try again."
        }
        StatusCode::UNPROCESSABLE_ENTITY => {
            "填写的内容有误。 / Something in the form is not right."
        }
        _ => "暂时无法完成，请稍后再试。 / This could not be done now; try again later.",
    };
    page(
        status,
        if status == StatusCode::NOT_FOUND {
            "未找到 / Not found"
        } else {
            "未能完成 / Not done"
        },
        None,
        html! {
            p { (message) }
            @if !fields.is_empty() {
                ul.err { @for f in &fields { li { (f) } } }
            }
        },
    )
}

/// Reads a form body; `None` if it is not one.
pub fn form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_urlencoded::from_bytes(body).ok()
}

const STYLE: &str = "body{font-family:'PingFang SC','Microsoft YaHei',sans-serif;margin:0;color:#1f2328;line-height:1.6}\
header{display:flex;justify-content:space-between;align-items:center;padding:.5rem 1rem;background:#0b5cab}\
header a{color:#fff;font-weight:bold;text-decoration:none;margin-right:.8rem}nav{flex:1;padding-left:1rem}nav a{font-weight:normal}.unread h2{font-weight:bold}header button{font-size:.9rem}\
main{max-width:48rem;margin:0 auto;padding:1rem}h1{font-size:1.3rem}\
label{display:block;margin:.6rem 0 .2rem}input[type=text],textarea{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}\
button{padding:.5rem 1rem;font-size:1rem;margin:.3rem 0}.err{color:#b42318}.late{color:#b42318;font-weight:bold}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #d8dee4;padding:.3rem;text-align:left;vertical-align:top}\
.signout{margin:0}.chart{height:320px;margin:.6rem 0}.chart.map{height:460px}.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(9.5rem,1fr));gap:.5rem}\
.tiles div{border:1px solid #d8dee4;border-radius:4px;padding:.4rem}.tiles dt{font-size:.8rem;color:#57606a}.tiles dd{margin:0;font-size:1.3rem;font-weight:bold}.period label{display:inline-block;margin-right:.6rem}@media (max-width:480px){main{padding:.6rem}td,th{font-size:.9rem}}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_data_cannot_close_its_element() {
        let hostile = serde_json::json!({ "name": "</script><script>alert(1)</script><!--&" });
        let markup = script_data("d", &hostile).into_string();
        let inner = &markup[markup.find('>').unwrap() + 1..markup.rfind("</script>").unwrap()];
        assert!(!inner.contains('<') && !inner.contains('>') && !inner.contains('&'));
        let back: serde_json::Value = serde_json::from_str(inner).unwrap();
        assert_eq!(back, hostile);
    }
}
