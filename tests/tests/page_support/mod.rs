//! What the page tests share: a client that shows redirects, forms posted as a browser posts them (URL-encoded, or multipart with files), a page fetched with a session cookie, a hidden field read from a page.
#![allow(dead_code)]

use reqwest::StatusCode;

use anju_tests::TestApp;

/// A client that shows redirects instead of following them.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub(crate) fn form_post(
    client: &reqwest::Client,
    url: String,
    cookie: Option<&str>,
    body: String,
) -> reqwest::RequestBuilder {
    let mut r = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    r
}

/// A file a form sends: its field, name, type and bytes.
pub(crate) type FormFile = (&'static str, &'static str, &'static str, Vec<u8>);

/// A form with files as a browser sends it (multipart): the fields of `body` (written
/// as a query string) and the files.
pub(crate) fn multipart_post(
    client: &reqwest::Client,
    url: String,
    cookie: Option<&str>,
    body: String,
    files: Vec<FormFile>,
) -> reqwest::RequestBuilder {
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in form_urlencoded::parse(body.as_bytes()) {
        form = form.text(k.into_owned(), v.into_owned());
    }
    for (field, name, media, bytes) in files {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name)
            .mime_str(media)
            .unwrap();
        form = form.part(field, part);
    }
    let mut r = client.post(url).multipart(form);
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    r
}

pub(crate) async fn get(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
) -> (StatusCode, String, Option<String>) {
    let mut r = client.get(format!("{}{path}", app.base));
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    (status, resp.text().await.unwrap(), location)
}

/// The value of a hidden field in a page.
pub(crate) fn field(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// What a browser holds after opening the sign-in page: its sign-in cookie (as a
/// `Cookie` header's value) and the form's token.
pub(crate) async fn signin_page(client: &reqwest::Client, app: &TestApp) -> (String, String) {
    let resp = client
        .get(format!("{}/signin", app.base))
        .send()
        .await
        .unwrap();
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("anju_signin="))
        .expect("the sign-in page sets its cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = resp.text().await.unwrap();
    (cookie, field(&html, "csrf"))
}

/// Posts a sign-in form (`path`: `/signin` or `/signin/code`) as the sign-in page
/// sends it: opened first, with its cookie and token.
pub(crate) async fn signin_post(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
    body: &str,
) -> reqwest::Response {
    let (cookie, token) = signin_page(client, app).await;
    form_post(
        client,
        format!("{}{path}", app.base),
        Some(&cookie),
        format!("{body}&csrf={token}"),
    )
    .send()
    .await
    .unwrap()
}
