//! Sign-in pages: ask for a code by registered e-mail or phone, enter it (or open the link in the code's message, which fills the form in), choose whom to act as where the address has several accounts; the session goes into a cookie. Signing out revokes it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use anju_engine::runtime::SignIn;

use super::{Visitor, form, page, session_cookie};
use crate::http::problem::ApiError;
use crate::http::serve::ClientAddr;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub(super) struct SigninForm {
    #[serde(default)]
    address: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    account_id: Option<i64>,
    #[serde(default)]
    next: String,
    #[serde(default)]
    csrf: String,
}

const TITLE: &str = "登录安居 / Sign in to Anju";

/// Where to go after signing in: a path of this site only. Printable ASCII alone (no
/// tab, newline, space or backslash, which browsers drop or turn into `/` and so make
/// `/\t/host` another host), one leading `/` (never `//`), and not too long; else `/`.
pub(super) fn next_path(next: &str) -> &str {
    let ok = next.len() <= 2000
        && next.starts_with('/')
        && !next[1..].starts_with('/')
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if ok { next } else { "/" }
}

/// The cookie that ties a sign-in form to the browser that opened it: the forms carry
/// a token derived from it, so that another site cannot sign a visitor in (login
/// CSRF).
const PRESESSION_COOKIE: &str = "anju_signin";

/// The browser's sign-in cookie, if it sent one.
fn presession(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == PRESESSION_COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The browser's sign-in cookie, or a new one to set.
struct Presession {
    value: String,
    new: bool,
}

impl Presession {
    fn of(headers: &HeaderMap) -> Presession {
        match presession(headers) {
            Some(value) => Presession { value, new: false },
            None => Presession {
                value: anju_engine::auth::new_token().digest[..32].to_string(),
                new: true,
            },
        }
    }

    fn token(&self) -> String {
        super::csrf_for(&format!("signin\n{}", self.value))
    }

    /// Whether a posted form came from a sign-in page of this browser.
    fn vouches(&self, posted: &str) -> bool {
        !self.new && !posted.is_empty() && posted == self.token()
    }

    /// The page, with the cookie set when it is new.
    fn answer(&self, app: &AppState, mut r: Response) -> Response {
        if self.new {
            let value = format!(
                "{PRESESSION_COOKIE}={}; Path=/signin; HttpOnly; SameSite=Strict; Max-Age=86400{}",
                self.value,
                if app.secure { "; Secure" } else { "" }
            );
            if let Ok(v) = HeaderValue::from_str(&value) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        r
    }
}

/// A sign-in form that did not come from this browser's sign-in page: a new form.
fn forged(app: &AppState, pre: &Presession, f: &SigninForm) -> Response {
    pre.answer(
        app,
        page(
            StatusCode::FORBIDDEN,
            TITLE,
            None,
            signin_form(
                f,
                &pre.token(),
                Some(
                    "登录表单已失效，请重新提交。 / This sign-in form has expired; send it again.",
                ),
            ),
        ),
    )
}

fn signin_form(f: &SigninForm, token: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.err role="alert" { (e) } }
        form method="post" action="/signin" {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="next" value=(next_path(&f.next));
            label for="address" { "登记的邮箱或手机号 / Registered e-mail or phone" }
            input type="text" id="address" name="address" value=(f.address) autocomplete="username" required;
            label for="code" { "验证码 / Code" }
            input type="text" id="code" name="code" value=(f.code) inputmode="numeric" autocomplete="one-time-code" required;
            button type="submit" { "登录 / Sign in" }
            // The same form, to the code's address: the address typed above goes with it.
            p { "没有验证码？填写上面的地址后点击： / No code? Fill in your address above, then:" }
            button #send-code type="submit" formaction="/signin/code" formnovalidate { "发送验证码 / Send me a code" }
        }
    }
}

/// The sign-in form, filled in from the link in a code's message.
pub(super) async fn form_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let f: SigninForm = uri
        .query()
        .and_then(|q| form(q.as_bytes()))
        .unwrap_or_default();
    let pre = Presession::of(&headers);
    pre.answer(
        &app,
        page(
            StatusCode::OK,
            TITLE,
            None,
            signin_form(&f, &pre.token(), None),
        ),
    )
}

/// Asks for a code. The page says the same whether the address is registered or not,
/// unless the code could not be sent: then it says so, and why.
pub(super) async fn ask_code(
    State(app): State<AppState>,
    client: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f: SigninForm = super::form(&body).unwrap_or_default();
    let pre = Presession::of(&headers);
    if !pre.vouches(&f.csrf) {
        return forged(&app, &pre, &f);
    }
    let client = crate::routes::client_of(client);
    let token = pre.token();
    match app
        .runtime
        .request_signin_code(&f.address, &client, &app.channels)
        .await
    {
        Ok(()) => page(
            StatusCode::OK,
            TITLE,
            None,
            html! {
                p role="status" { "若该地址已登记，验证码已发出，10 分钟内有效。 / If this address is registered, a code is on its way; it is valid for 10 minutes." }
                (signin_form(&f, &token, None))
            },
        ),
        Err(e) => {
            let not_sent = match &e {
                anju_engine::Error::NotSent { detail, .. } => Some(detail.clone()),
                _ => None,
            };
            let status = ApiError::from(e).into_response().status();
            let message = match (not_sent, status) {
                (Some(detail), _) => detail,
                (None, StatusCode::TOO_MANY_REQUESTS) => {
                    "请求过于频繁，请稍后再试。 / Too many codes asked for; try again later.".into()
                }
                (None, StatusCode::UNPROCESSABLE_ENTITY) => {
                    "请填写登记的邮箱或手机号。 / Give your registered e-mail address or phone number.".into()
                }
                _ => "暂时无法发送验证码，请稍后再试。 / No code can be sent right now; try again later.".into(),
            };
            page(status, TITLE, None, signin_form(&f, &token, Some(&message)))
        }
    }
}

/// Exchanges the code: the session goes into a cookie and the visitor on to where they
/// were going; or the accounts to choose from; or what went wrong.
pub(super) async fn submit(
    State(app): State<AppState>,
    client: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pre = Presession::of(&headers);
    let token = pre.token();
    let Some(f) = super::form::<SigninForm>(&body) else {
        return pre.answer(
            &app,
            page(
                StatusCode::BAD_REQUEST,
                TITLE,
                None,
                signin_form(&SigninForm::default(), &token, Some("表单无效 / Bad form")),
            ),
        );
    };
    if !pre.vouches(&f.csrf) {
        return forged(&app, &pre, &f);
    }
    let client = crate::routes::client_of(client);
    match app
        .runtime
        .sign_in(&f.address, &f.code, f.account_id, &client)
        .await
    {
        Ok(SignIn::Session(s)) => {
            let max_age = (s.expires_at - app.runtime.now()).num_seconds();
            let mut r = Redirect::to(next_path(&f.next)).into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie(&app, Some(&s.token), max_age),
            );
            r
        }
        Ok(SignIn::Choose(accounts)) => page(
            StatusCode::OK,
            TITLE,
            None,
            html! {
                p { "该地址对应多个身份，请选择： / This address acts for several accounts; choose one:" }
                form method="post" action="/signin" {
                    input type="hidden" name="csrf" value=(token);
                    input type="hidden" name="address" value=(f.address);
                    input type="hidden" name="code" value=(f.code);
                    input type="hidden" name="next" value=(next_path(&f.next));
                    @for (i, a) in accounts.iter().enumerate() {
                        label {
                            input type="radio" name="account_id" value=(a.id) checked[i == 0];
                            " " (a.name) " (" (a.role.as_str()) " " (a.subject) ")"
                        }
                    }
                    button type="submit" { "继续 / Continue" }
                }
            },
        ),
        Err(e) => {
            let status = ApiError::from(e).into_response().status();
            let message = match status {
                StatusCode::UNAUTHORIZED => {
                    "验证码错误、已使用或已过期，请重新申请。 / The code is wrong, used or expired; ask for a new one."
                }
                StatusCode::UNPROCESSABLE_ENTITY => {
                    "请填写登记的邮箱或手机号，以及收到的 6 位验证码。 / Give your registered e-mail or phone and the six-digit code."
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    "错误次数过多，请稍后再试或重新申请验证码。 / Too many wrong codes; wait, or ask for a new code."
                }
                _ => {
                    "暂时无法登录，请稍后再试。 / Sign-in is not possible right now; try again later."
                }
            };
            page(status, TITLE, None, signin_form(&f, &token, Some(message)))
        }
    }
}

/// Signs out: the session is revoked and its cookie cleared.
pub(super) async fn sign_out(
    State(app): State<AppState>,
    visitor: Visitor,
    body: Bytes,
) -> Response {
    if let Err(refused) = visitor.posted(&body) {
        return *refused;
    }
    if let Err(e) = app.runtime.sign_out(&visitor.secret).await {
        return super::error_page(e.into());
    }
    let mut r = Redirect::to("/signin").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&app, None, 0));
    r
}
