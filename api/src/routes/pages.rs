//! The minimal pages links in messages land on until the full pages exist: sign in with a code (`/signin`, prefilled from the link in the code's message), and a case (`/cases/{id}`) read through the API with the session token kept in the browser tab. Chinese first, then English; no external assets.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use anju_engine::notices::escape as esc;
use anju_engine::runtime::SignIn;

use crate::http::problem::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signin", get(signin_form).post(signin_submit))
        .route("/cases/{id}", get(case_page))
}

/// A page in the one frame of these pages.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>\
         body{{font-family:'PingFang SC','Microsoft YaHei',sans-serif;max-width:34rem;margin:0 auto;padding:1rem;line-height:1.6;color:#1f2328}}\
         label{{display:block;margin:.6rem 0 .2rem}}input[type=text]{{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}}\
         button{{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem}}.err{{color:#b42318}}code{{word-break:break-all}}\
         </style></head><body><h1>{title}</h1>{body}</body></html>",
        title = esc(title),
    );
    (status, Html(html)).into_response()
}

#[derive(Debug, Default, Deserialize)]
struct SigninQuery {
    #[serde(default)]
    address: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    account_id: Option<i64>,
}

fn form(q: &SigninQuery, error: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(e) = error {
        body.push_str(&format!("<p class=\"err\" role=\"alert\">{}</p>", esc(e)));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/signin\">\
         <label for=\"address\">登记的邮箱或手机号 / Registered e-mail or phone</label>\
         <input type=\"text\" id=\"address\" name=\"address\" value=\"{}\" autocomplete=\"username\" required>\
         <label for=\"code\">验证码 / Code</label>\
         <input type=\"text\" id=\"code\" name=\"code\" value=\"{}\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required>\
         <button type=\"submit\">登录 / Sign in</button></form>\
         <p>没有验证码？请通过 <code>POST /api/v1/auth/code</code> 申请。 / No code? Ask for one with <code>POST /api/v1/auth/code</code>.</p>",
        esc(&q.address),
        esc(&q.code),
    ));
    body
}

/// The sign-in form, prefilled from the link in a code's message.
async fn signin_form(uri: axum::http::Uri) -> Response {
    let q: SigninQuery = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    page(
        StatusCode::OK,
        "登录安居 / Sign in to Anju",
        &form(&q, None),
    )
}

/// Exchanges the code; shows the session token (kept in this browser tab for the case
/// pages), the accounts to choose from, or what went wrong.
async fn signin_submit(State(app): State<AppState>, body: Bytes) -> Response {
    let q: SigninQuery = match serde_urlencoded::from_bytes(&body) {
        Ok(q) => q,
        Err(e) => {
            return page(
                StatusCode::BAD_REQUEST,
                "登录安居 / Sign in to Anju",
                &form(
                    &SigninQuery::default(),
                    Some(&format!("表单无效 / Bad form: {e}")),
                ),
            );
        }
    };
    let title = "登录安居 / Sign in to Anju";
    match app.runtime.sign_in(&q.address, &q.code, q.account_id).await {
        Ok(SignIn::Session(s)) => {
            let token = esc(&s.token);
            page(
                StatusCode::OK,
                "已登录 / Signed in",
                &format!(
                    "<p>您好，{name}。您已以“{role}”身份登录，会话至 {until} 有效。 / Hello {name}: you are signed in as {role} until {until}.</p>\
                     <p>会话令牌 / Session token (API: <code>Authorization: Bearer …</code>):</p>\
                     <p><code id=\"token\">{token}</code></p>\
                     <script>sessionStorage.setItem('anju_token', document.getElementById('token').textContent);</script>\
                     <p>消息中的案件链接现在可以在本标签页打开。 / Case links from your messages now open in this tab.</p>",
                    name = esc(&s.account.name),
                    role = s.account.role.as_str(),
                    until = anju_engine::time::local_time(s.expires_at),
                ),
            )
        }
        Ok(SignIn::Choose(accounts)) => {
            let mut body = String::from(
                "<p>该地址对应多个身份，请选择： / This address acts for several accounts; choose one:</p>\
                 <form method=\"post\" action=\"/signin\">",
            );
            body.push_str(&format!(
                "<input type=\"hidden\" name=\"address\" value=\"{}\"><input type=\"hidden\" name=\"code\" value=\"{}\">",
                esc(&q.address),
                esc(&q.code)
            ));
            for (i, a) in accounts.iter().enumerate() {
                body.push_str(&format!(
                    "<label><input type=\"radio\" name=\"account_id\" value=\"{}\"{}> {} ({} {})</label>",
                    a.id,
                    if i == 0 { " checked" } else { "" },
                    esc(&a.name),
                    a.role.as_str(),
                    a.subject
                ));
            }
            body.push_str("<button type=\"submit\">继续 / Continue</button></form>");
            page(StatusCode::OK, title, &body)
        }
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
                    "请求过于频繁，请稍后再试。 / Too many tries; try again later."
                }
                _ => {
                    "暂时无法登录，请稍后再试。 / Sign-in is not possible right now; try again later."
                }
            };
            page(status, title, &form(&q, Some(message)))
        }
    }
}

/// A case, read in the browser through the API with the token kept by `/signin`; a
/// landlord can acknowledge an order from it.
async fn case_page(Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return page(
            StatusCode::NOT_FOUND,
            "未找到 / Not found",
            "<p>没有这个案件。 / No such case.</p>",
        );
    };
    page(
        StatusCode::OK,
        &format!("案件 {id} / Case {id}"),
        &format!(
            "<div id=\"case\" data-id=\"{id}\"><p>请先<a href=\"/signin\">登录</a>。 / Please <a href=\"/signin\">sign in</a> first.</p></div>\
             <script>{CASE_SCRIPT}</script>"
        ),
    )
}

/// Reads the case with the tab's token and shows it; offers Acknowledge on an order.
const CASE_SCRIPT: &str = r#"(function(){
var box=document.getElementById('case'),id=box.dataset.id,t=sessionStorage.getItem('anju_token');
if(!t)return;
function text(s){var d=document.createElement('div');d.textContent=s==null?'—':String(s);return d.innerHTML;}
function show(){fetch('/api/v1/cases/'+id,{headers:{Authorization:'Bearer '+t}}).then(function(r){return r.json().then(function(j){return [r.status,j];});}).then(function(a){
var s=a[0],c=a[1].case||a[1];
if(s!==200){box.innerHTML='<p>'+text(c.title)+'</p>';return;}
var h='<dl><dt>地址 / Address</dt><dd>'+text(c.address)+'</dd><dt>隐患 / Hazard</dt><dd>'+text(c.category)+' ('+text(c.severity)+')</dd>'+
'<dt>状态 / State</dt><dd>'+text(c.state)+'</dd><dt>整改期限 / Deadline</dt><dd>'+text(c.deadline_at)+'</dd></dl>';
if(c.state==='notified'){h+='<button id="ack">签收整改通知书 / Acknowledge the order</button>';}
box.innerHTML=h;
var b=document.getElementById('ack');
if(b){b.onclick=function(){fetch('/api/v1/cases/'+id+'/commands',{method:'POST',headers:{Authorization:'Bearer '+t,'Content-Type':'application/json'},body:JSON.stringify({command:'acknowledge',expected_version:c.version})}).then(show);};}
});}
show();})();"#;
