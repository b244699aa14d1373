//! The pages in a real browser: Debian's Chromium, headless, driven through chromedriver (WebDriver, the fantoccini crate), one browser for this test binary. An inspector signs in with a code from a real SMTP server, opens the plan, records an inspection with a photo at a position given to the browser's geolocation and issues the order; the landlord acknowledges and reports the fix with a photo and an iPhone's HEIC photo (converted to JPEG in the page); the department accepts a referral and records a fine with its decision; the inspector closes the case; each step is checked on the page and in the database. A cross-site form without the CSRF token is refused. The offline form: the service stopped, the form sent (kept in the browser), the service started again on the same address: recorded once. The city supervisor's dashboard draws its charts and street map, and a click on a street opens its open cases. A tenant reports a hazard on a placard page, without signing in, and the unit appears on the inspector's plan as a priority stop. Screenshots of each role's main page (and the dashboard) at phone and desk widths are saved under `target/screenshots/`. Waits are for the browser (real time, bounded, polling every 100 ms), never for the service's clock.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use anju_engine::runtime::Config;
use anju_tests::mail::smtp;
use anju_tests::{Backend, TestApp, photos, spawn_app_on};

/// How long the browser may take for one thing (a page, an element).
const PATIENCE: Duration = Duration::from_secs(20);

/// chromedriver on a free port, killed with this value.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts chromedriver and a headless Chromium session at phone width; `None` when
/// the browser is not installed (and not required).
async fn browser() -> Option<(Driver, Client)> {
    let present = |p: &str| std::path::Path::new(p).exists();
    if !present("/usr/bin/chromium") || !present("/usr/bin/chromedriver") {
        assert!(
            std::env::var("ANJU_REQUIRE_BROWSER").is_err(),
            "ANJU_REQUIRE_BROWSER is set but chromium or chromedriver is missing"
        );
        eprintln!("*** SKIPPED: chromium and chromedriver are not installed ***");
        return None;
    }
    let port = free_port();
    let child = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver {
        child,
        url: url.clone(),
        _profile: profile,
    };
    let status = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(r) = status.get(format!("{url}/status")).send().await
            && r.status().is_success()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "chromedriver did not start");
    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                format!("--user-data-dir={}", driver._profile.path().display()),
                "--window-size=390,844", "--lang=zh-CN"
            ]
        }
    }))
    .unwrap();
    // The connection to chromedriver is plain HTTP; rustls needs a provider named.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let client = ClientBuilder::rustls()
        .expect("a TLS connector")
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session");
    Some((driver, client))
}

/// A Chrome DevTools command through chromedriver (`goog/cdp/execute`).
#[derive(Debug)]
struct Cdp(&'static str, Value);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "cmd": self.0, "params": self.1 }).to_string()),
        )
    }
}

/// The phone's position, as the browser's geolocation gives it, granted to `origin`.
async fn place_phone(c: &Client, origin: &str, lon: f64, lat: f64) {
    c.issue_cmd(Cdp(
        "Browser.grantPermissions",
        json!({ "origin": origin, "permissions": ["geolocation"] }),
    ))
    .await
    .expect("grant geolocation");
    c.issue_cmd(Cdp(
        "Emulation.setGeolocationOverride",
        json!({ "latitude": lat, "longitude": lon, "accuracy": 5 }),
    ))
    .await
    .expect("set the position");
}

async fn find(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// Waits until the page's text holds `needle`; the page's text.
async fn page_with(c: &Client, needle: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        let text = c.source().await.unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the page never showed {needle:?}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits the command form of `command` on the case page that is open.
async fn command_form(c: &Client, command: &str) -> Element {
    find(
        c,
        &format!("form.command:has(input[name=command][value={command}])"),
    )
    .await
}

async fn submit(form: &Element) {
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Signs in through the pages with a code sent by e-mail.
async fn sign_in(
    c: &Client,
    app: &TestApp,
    smtp: &anju_tests::mail::Smtp,
    address: &str,
    n: usize,
) {
    c.goto(&format!("{}/signin", app.base)).await.unwrap();
    find(c, "#address").await.send_keys(address).await.unwrap();
    find(c, "#send-code").await.click().await.unwrap();
    page_with(c, "验证码已发出").await;
    let (code, _, _) = smtp.sign_in_code(address, n).await;
    find(c, "#code").await.send_keys(&code).await.unwrap();
    find(
        c,
        "form[action='/signin'] button[type=submit]:not([formaction])",
    )
    .await
    .click()
    .await
    .unwrap();
    page_with(c, "退出 / Sign out").await;
}

/// Saves the page at phone and desk widths as `target/screenshots/{name}-{width}.png`.
async fn screenshots(c: &Client, name: &str) {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/screenshots"
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for (width, height) in [(390, 844), (1280, 900)] {
        c.set_window_size(width, height).await.unwrap();
        let png = c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(dir.join(format!("{name}-{width}.png")), png).unwrap();
    }
    c.set_window_size(390, 844).await.unwrap();
}

/// Runs a script until it returns something other than null (real time, bounded).
async fn wait_for_js(c: &Client, script: &str) -> Value {
    let start = std::time::Instant::now();
    loop {
        let v = c.execute(script, vec![]).await.unwrap();
        if !v.is_null() {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "the page never gave: {script}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn case_state(app: &TestApp, id: i64) -> String {
    app.case(id, &app.tokens.city).await["case"]["state"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits until the database has the case in `state` (the browser's form is on its way).
async fn wait_state(app: &TestApp, id: i64, state: &str) {
    let started = std::time::Instant::now();
    while case_state(app, id).await != state {
        assert!(
            started.elapsed() < PATIENCE,
            "case {id} never reached {state}: {}",
            case_state(app, id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The case page's id from the browser's address.
async fn case_in_view(c: &Client) -> i64 {
    let started = std::time::Instant::now();
    loop {
        let url = c.current_url().await.unwrap();
        if let Some(id) = url
            .path()
            .strip_prefix("/cases/")
            .and_then(|s| s.parse().ok())
        {
            return id;
        }
        if started.elapsed() > PATIENCE {
            panic!(
                "no case page: {url}: {}",
                c.source().await.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Serves one HTML page from another port of this host (another origin, same site);
/// its address.
async fn serve_html(html: &str) -> String {
    let html = html.to_string();
    let router = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/")
}

/// How many inspections a unit has had.
async fn inspections_of(app: &TestApp, unit: i64) -> usize {
    app.get(
        &format!("/api/v1/inspections?unit_id={unit}"),
        &app.tokens.city,
    )
    .await
    .expect(200)["inspections"]
        .as_array()
        .unwrap()
        .len()
}

/// A photo file for the browser to send.
fn photo_file(dir: &tempfile::TempDir, name: &str, at: (f64, f64, &str), seed: u8) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, photos::photo_at(at.0, at.1, at.2, seed)).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_works_in_the_browser() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let smtp = smtp();
    let mut app = spawn_app_on(Backend::Sqlite, Config::default(), smtp.channels.clone()).await;
    // The browser's pages date what they send by the browser's clock (a visit's
    // observed time): the service's manual clock is set to the real time here.
    let now = chrono::Utc::now();
    app.clock.set(now);
    let taken = now
        .with_timezone(&anju_engine::time::china_time())
        .format("%Y:%m:%d %H:%M:%S")
        .to_string();
    let files = tempfile::tempdir().unwrap();
    let unit_id = app.unit_of(1);
    let unit = app
        .store()
        .unit(anju_engine::domain::UnitId(unit_id))
        .await
        .unwrap()
        .unwrap();
    app.runtime()
        .plan_around(
            anju_engine::domain::InspectorId(1),
            now.with_timezone(&anju_engine::time::china_time())
                .date_naive(),
        )
        .await
        .unwrap();

    // The inspector signs in and opens the day's plan.
    sign_in(&c, &app, &smtp, "inspector1@anju.example", 1).await;
    c.goto(&format!("{}/plan", app.base)).await.unwrap();
    let plan = page_with(&c, "今日巡查").await;
    assert!(plan.contains("/units/"), "the plan lists units: {plan}");
    screenshots(&c, "inspector-plan").await;

    // Records an inspection of unit 1: the position from the browser, two hazards, a
    // photo; the case page opens with the photo judged on site.
    place_phone(&c, &app.base, unit.lon, unit.lat).await;
    c.goto(&format!("{}/units/{unit_id}/inspect", app.base))
        .await
        .unwrap();
    page_with(&c, "已定位 / Position").await;
    find(&c, "input[name=finding][value=wiring]")
        .await
        .click()
        .await
        .unwrap();
    find(&c, "input[name=finding][value=three_in_one]")
        .await
        .click()
        .await
        .unwrap();
    let photo = photo_file(&files, "wiring.jpg", (unit.lon, unit.lat, &taken), 1);
    find(&c, "input[name=photos]")
        .await
        .send_keys(&photo)
        .await
        .unwrap();
    find(&c, "#inspection button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let case = case_in_view(&c).await;
    page_with(&c, "现场拍摄 / Taken on site").await;
    let view = app.case(case, &app.tokens.city).await;
    assert_eq!(view["evidence"][0]["verified"], true, "{view}");
    let cases = app
        .get(
            &format!("/api/v1/cases?unit_id={unit_id}"),
            &app.tokens.city,
        )
        .await
        .expect(200);
    let by_category = |category: &str| {
        cases["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["category"] == category)
            .and_then(|k| k["id"].as_i64())
            .unwrap_or_else(|| panic!("a {category} case: {cases}"))
    };
    let (wiring, three) = (by_category("wiring"), by_category("three_in_one"));
    let inspections = app
        .get(
            &format!("/api/v1/inspections?unit_id={unit_id}"),
            &app.tokens.city,
        )
        .await
        .expect(200);
    assert_eq!(inspections["inspections"][0]["located"], true);
    assert_eq!(inspections["inspections"][0]["off_site"], false);

    // Issues the order on the wiring case.
    c.goto(&format!("{}/cases/{wiring}", app.base))
        .await
        .unwrap();
    let notify = command_form(&c, "notify").await;
    if let Ok(requirements) = notify
        .find(Locator::Css("textarea[name='f.requirements']"))
        .await
    {
        requirements
            .send_keys("拆除飞线 / Remove the loose wiring")
            .await
            .unwrap();
    }
    submit(&notify).await;
    wait_state(&app, wiring, "notified").await;
    page_with(&c, "整改通知书（可打印）").await;
    screenshots(&c, "inspector-case").await;
    // A cross-site form (another origin posting to this one) carries no CSRF token:
    // refused, nothing changes.
    let version = app.case(wiring, &app.tokens.city).await["case"]["version"].clone();
    let forged = format!(
        "data:text/html;charset=utf-8,<form id=f method=post enctype=multipart/form-data \
         action='{}/cases/{wiring}/commands'><input name=command value=mark_duplicate>\
         <input name=f.duplicate_of value={three}><input name=expected_version value={version}>\
         </form><script>f.submit()</script>",
        app.base
    );
    c.goto(&forged).await.unwrap();
    // From another site the session cookie (SameSite) does not go with it: the sign-in
    // page, nothing done.
    page_with(&c, "登录安居 / Sign in to Anju").await;
    assert_eq!(case_state(&app, wiring).await, "notified");
    // From another origin of the same site (another port) the cookie goes, and the
    // missing CSRF token refuses it.
    let other_origin = serve_html(forged.trim_start_matches("data:text/html;charset=utf-8,")).await;
    c.goto(&other_origin).await.unwrap();
    page_with(&c, "请求被拒绝").await;
    assert_eq!(case_state(&app, wiring).await, "notified");

    // The landlord signs in, sees the order, acknowledges and reports the fix with a
    // photo.
    c.goto(&format!("{}/", app.base)).await.unwrap();
    find(&c, "form.signout button").await.click().await.unwrap();
    page_with(&c, "登录").await;
    sign_in(&c, &app, &smtp, "party1@anju.example", 1).await;
    let home = page_with(&c, &format!("/cases/{wiring}")).await;
    assert!(home.contains("剩余"), "the deadline counted down: {home}");
    screenshots(&c, "landlord-home").await;
    c.goto(&format!("{}/cases/{wiring}", app.base))
        .await
        .unwrap();
    submit(&command_form(&c, "acknowledge").await).await;
    wait_state(&app, wiring, "acknowledged").await;
    let fix = command_form(&c, "report_fix").await;
    // A JPEG, and an iPhone's HEIC photo that the page converts to JPEG before sending.
    let after = photo_file(&files, "after.jpg", (unit.lon, unit.lat, &taken), 2);
    let heic = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/site.heic");
    fix.find(Locator::Css("input[type=file]"))
        .await
        .unwrap()
        .send_keys(&format!("{after}\n{heic}"))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let converted = c
            .execute(
                "return document.querySelector('form.command:has(input[name=command][value=report_fix]) input[type=file]').dataset.converted || ''",
                vec![],
            )
            .await
            .unwrap();
        if converted == json!("2") {
            break;
        }
        if started.elapsed() > PATIENCE {
            let said = c
                .execute(
                    "return document.getElementById('outbox').textContent",
                    vec![],
                )
                .await
                .unwrap();
            panic!("the HEIC photo was not converted: {said}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    submit(&fix).await;
    wait_state(&app, wiring, "rectification_reported").await;
    page_with(&c, "已报整改").await;
    let view = app.case(wiring, &app.tokens.city).await;
    let evidence = view["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), 3, "{view}");
    assert!(
        evidence.iter().all(|e| e["media_type"] == "image/jpeg"),
        "the HEIC photo arrived as a JPEG: {view}"
    );
    assert!(
        evidence.iter().any(|e| e["file_name"] == "site.jpg"),
        "{view}"
    );

    // The inspector refers the three-in-one case (a critical hazard).
    app.command(three, &app.tokens.inspector, "refer", json!({}))
        .await
        .expect(200);

    // The department signs in, accepts and records a fine with the decision as a
    // document.
    find(&c, "form.signout button").await.click().await.unwrap();
    page_with(&c, "登录").await;
    // An officer of the district's fire brigade, registered, signs in as themselves.
    app.store()
        .import(
            &[anju_engine::registry::Record::Officer {
                department_id: anju_engine::domain::DepartmentId(1),
                name: "执法员 张三".into(),
                phone: None,
                email: Some("zhang.officer@fire.example".into()),
            }],
            app.runtime().now(),
        )
        .await
        .unwrap();
    sign_in(&c, &app, &smtp, "zhang.officer@fire.example", 1).await;
    page_with(&c, &format!("/cases/{three}")).await;
    screenshots(&c, "department-inbox").await;
    c.goto(&format!("{}/cases/{three}", app.base))
        .await
        .unwrap();
    submit(&command_form(&c, "accept").await).await;
    wait_state(&app, three, "accepted").await;
    let result = command_form(&c, "record_result").await;
    result
        .find(Locator::Css("select[name='f.result'] option[value=fine]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    result
        .find(Locator::Css("input[name='f.fine_amount']"))
        .await
        .unwrap()
        .send_keys("5000")
        .await
        .unwrap();
    result
        .find(Locator::Css("textarea[name='f.decision_no']"))
        .await
        .unwrap()
        .send_keys("穗消罚决字〔2026〕001号")
        .await
        .unwrap();
    let decision = files.path().join("决定书.pdf");
    std::fs::write(&decision, photos::pdf("穗消罚决字〔2026〕001号")).unwrap();
    result
        .find(Locator::Css("input[type=file]"))
        .await
        .unwrap()
        .send_keys(&decision.display().to_string())
        .await
        .unwrap();
    submit(&result).await;
    wait_state(&app, three, "enforced").await;
    page_with(&c, "决定书.pdf").await;

    // The inspector closes it.
    find(&c, "form.signout button").await.click().await.unwrap();
    page_with(&c, "登录").await;
    sign_in(&c, &app, &smtp, "inspector1@anju.example", 2).await;
    c.goto(&format!("{}/cases/{three}", app.base))
        .await
        .unwrap();
    let close = command_form(&c, "close").await;
    if let Ok(outcome) = close
        .find(Locator::Css("select[name='f.outcome'] option[value=fixed]"))
        .await
    {
        outcome.click().await.unwrap();
    }
    submit(&close).await;
    wait_state(&app, three, "fixed").await;
    let closed = app.case(three, &app.tokens.city).await;
    assert_eq!(closed["terminal"], true, "{closed}");

    // The city supervisor's dashboard: the charts and the street map are drawn; a
    // click on the unit's street on the map opens that street's open cases.
    find(&c, "form.signout button").await.click().await.unwrap();
    page_with(&c, "登录").await;
    sign_in(&c, &app, &smtp, "city@anju.example", 1).await;
    c.goto(&format!("{}/dashboard", app.base)).await.unwrap();
    page_with(&c, "监管看板").await;
    let street = unit.street_id.unwrap().0;
    let open = app
        .get(
            &format!("/api/v1/cases?street_id={street}&open=true"),
            &app.tokens.city,
        )
        .await
        .expect(200)["cases"]
        .as_array()
        .unwrap()
        .len();
    assert!(open > 0, "unit 1's street has open cases");
    let drawn = wait_for_js(
        &c,
        "var ids=['chart-trend','chart-category','chart-departments','chart-stars','chart-map'];\
         if(!window.echarts)return null;var n=0;ids.forEach(function(i){\
         if(echarts.getInstanceByDom(document.getElementById(i)))n++;});\
         if(n<ids.length)return null;var m=echarts.getInstanceByDom(document.getElementById('chart-map'));\
         return m.getOption().series[0].data;",
    )
    .await;
    let on_map = drawn
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["street_id"] == street)
        .expect("the unit's street is on the map")
        .clone();
    assert_eq!(on_map["value"], open as i64, "{on_map}");
    screenshots(&c, "supervisor-dashboard").await;
    c.execute(
        "document.getElementById('chart-map').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    screenshots(&c, "supervisor-dashboard-map").await;
    let offset = c
        .execute(
            "var el=document.getElementById('chart-map');el.scrollIntoView();\
             var m=echarts.getInstanceByDom(el);var p=m.convertToPixel({seriesIndex:0},[arguments[0],arguments[1]]);\
             return [p[0]-el.clientWidth/2,p[1]-el.clientHeight/2];",
            vec![json!(unit.lon), json!(unit.lat)],
        )
        .await
        .unwrap();
    let map = find(&c, "#chart-map").await;
    let click = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: map,
            duration: None,
            x: offset[0].as_f64().unwrap(),
            y: offset[1].as_f64().unwrap(),
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    c.perform_actions(click).await.unwrap();
    let listed = page_with(&c, "我的案件").await;
    let url = c.current_url().await.unwrap();
    assert_eq!(
        url.query(),
        Some(format!("street_id={street}&open=true").as_str())
    );
    assert_eq!(listed.matches("href=\"/cases/").count(), open, "{listed}");

    // A tenant scans a placard and reports a hazard (no sign-in); the unit enters the
    // inspector's plan of the day as a priority stop.
    let day = now
        .with_timezone(&anju_engine::time::china_time())
        .date_naive();
    let plan_units = |plan: &Value| -> Vec<i64> {
        plan["stops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["unit_id"].as_i64().unwrap())
            .collect()
    };
    // A unit of the inspector's plan, planned for its patrol (the test city's day
    // plans every unit of the inspector's grids; a unit planned for no one is appended,
    // as `tests/tests/open311.rs` shows).
    let plan = app
        .get(
            &format!("/api/v1/inspectors/1/plan?date={day}"),
            &app.tokens.inspector,
        )
        .await
        .expect(200);
    let tipped = plan_units(&plan)[1];
    assert_ne!(plan["stops"][1]["reason"], "tip");
    let tipped_unit = app
        .store()
        .unit(anju_engine::domain::UnitId(tipped))
        .await
        .unwrap()
        .unwrap();
    c.goto(&format!("{}/u/{}", app.base, tipped_unit.public_code))
        .await
        .unwrap();
    page_with(&c, "举报安全隐患").await;
    find(&c, "#tip select[name=category] option[value=ebike_indoor]")
        .await
        .click()
        .await
        .unwrap();
    find(&c, "#tip textarea[name=description]")
        .await
        .send_keys("楼道里有电动车在充电")
        .await
        .unwrap();
    find(&c, "#tip button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    page_with(&c, "已收到").await;
    // The supervisor signs out (from a signed-in page); the inspector signs in.
    c.goto(&format!("{}/", app.base)).await.unwrap();
    find(&c, "form.signout button").await.click().await.unwrap();
    page_with(&c, "登录").await;
    sign_in(&c, &app, &smtp, "inspector1@anju.example", 3).await;
    c.goto(&format!("{}/plan", app.base)).await.unwrap();
    let plan = page_with(&c, "群众举报").await;
    assert!(
        plan.contains(&format!("/units/{tipped}\"")),
        "the reported unit is on the plan: {plan}"
    );
    screenshots(&c, "inspector-plan-with-tip").await;

    // Offline: the form is open, the service stops, the form is sent (kept in the
    // browser), the service starts again on the same address and the browser sends it
    // again: one inspection.
    place_phone(&c, &app.base, unit.lon, unit.lat).await;
    let other = app.units_of(1)[1];
    c.goto(&format!("{}/units/{other}/inspect", app.base))
        .await
        .unwrap();
    page_with(&c, "已定位 / Position").await;
    find(&c, "input[name=finding][value=sanitation]")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(inspections_of(&app, other).await, 0);
    app.stop().await;
    find(&c, "#inspection button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    page_with(&c, "已保存在本机").await;
    app.start_again().await;
    c.execute("return window.anjuFlush()", vec![])
        .await
        .unwrap();
    c.execute("return window.anjuFlush()", vec![])
        .await
        .unwrap();
    assert_eq!(inspections_of(&app, other).await, 1, "recorded once");
    let status = c
        .execute(
            "return document.getElementById('outbox').textContent",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(""), "nothing left waiting");
    hostile_text_runs_nowhere(&c, &app, &smtp).await;
    c.close().await.unwrap();
}

/// Script in text: an image whose error handler runs, and a script element after a
/// closed attribute. Each that runs counts one in `window.__xss`.
const HOSTILE: &str = r#"<img src=x onerror="window.__xss=(window.__xss||0)+1">"><script>window.__xss=(window.__xss||0)+1</script>"#;

/// Hostile text for fields held to a few dozen characters.
const SHORT_HOSTILE: &str = r#"<img src=x onerror=window.__xss=1>"#;

/// Whether any hostile text ran on the open page.
async fn ran(c: &Client) -> Value {
    c.execute(
        "return window.__xss === undefined ? null : window.__xss",
        vec![],
    )
    .await
    .unwrap()
}

/// Issue 22, 9: hostile text in every field a landlord, a tenant at the placard and
/// the hotline (Open311) write — and in a unit's address, which the plan's map shows
/// on a marker — runs nowhere when staff open the pages (the map's markers hovered);
/// a page of the service that forgot to escape (the tests' own) is stopped by the
/// service's Content-Security-Policy, where the same page elsewhere runs it.
async fn hostile_text_runs_nowhere(c: &Client, app: &TestApp, smtp: &anju_tests::mail::Smtp) {
    let t = &app.tokens;
    let near = app
        .store()
        .unit(anju_engine::domain::UnitId(app.unit_of(1)))
        .await
        .unwrap()
        .unwrap();
    let unit = app
        .post(
            "/api/v1/units",
            &t.inspector,
            &json!({ "building_id": near.building_id.0, "address_code": "XSS-0001",
                     "address": format!("南洲街道 {HOSTILE} 号"), "lon": near.lon, "lat": near.lat,
                     "floor_area": 40.0, "occupants": 3, "party_id": 1 }),
        )
        .await
        .expect(201);
    let unit_id = unit["id"].as_i64().unwrap();
    let code = unit["public_code"].as_str().unwrap().to_string();
    let case = app.inspect(&t.inspector, unit_id, &["wiring"]).await[0];
    app.command(case, &t.inspector, "notify", json!({}))
        .await
        .expect(200);
    app.command(case, &t.landlord, "acknowledge", json!({}))
        .await
        .expect(200);
    app.command_with_reason(
        case,
        &t.landlord,
        "object",
        json!({ "kind": "extension", "extension_hours": 24 }),
        Some(HOSTILE),
    )
    .await
    .expect(200);
    let photo = app
        .upload(
            &t.landlord,
            "photo",
            &format!("{HOSTILE}.jpg"),
            "image/jpeg",
            photos::jpeg(32, 24, 5, None),
        )
        .await
        .expect(201);
    app.command(
        case,
        &t.landlord,
        "report_fix",
        json!({ "evidence": [photo["id"]], "note": HOSTILE }),
    )
    .await
    .expect(200);
    app.post(
        &format!("/api/v1/units/{unit_id}/declarations"),
        &t.landlord,
        &json!({ "kind": "occupancy", "rooms": 2, "occupants": 3, "note": HOSTILE }),
    )
    .await
    .expect(201);
    app.post(
        &format!("/api/v1/units/{unit_id}/policies"),
        &t.landlord,
        &json!({ "insurer": SHORT_HOSTILE, "policy_no": SHORT_HOSTILE, "coverage_yuan": 1000.0,
                 "starts_on": "2026-01-01", "ends_on": "2027-12-31" }),
    )
    .await
    .expect(201);
    // A tenant at the placard, and the hotline, a few minutes after the visit (a tip
    // is open until a visit after it).
    app.clock.advance(chrono::TimeDelta::minutes(5));
    let (status, _) = app
        .post_form(
            &format!("/u/{code}/tip"),
            &[("category", "wiring"), ("description", HOSTILE)],
        )
        .await;
    assert_eq!(status, 200);
    let (_, key) = app
        .runtime()
        .create_integration("xss-12345", None)
        .await
        .unwrap();
    let (status, body) = app
        .post_form(
            "/open311/v2/requests.json",
            &[
                ("api_key", key.as_str()),
                ("service_code", "ebike_indoor"),
                ("address_id", "XSS-0001"),
                ("address_string", HOSTILE),
                ("description", HOSTILE),
                ("first_name", SHORT_HOSTILE),
                ("last_name", SHORT_HOSTILE),
                ("attribute[room]", HOSTILE),
            ],
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // Staff open the pages, signed in through them: the city supervisor, then the
    // inspector.
    for (address, n, pages) in [
        (
            "city@anju.example",
            2,
            vec![
                "/dashboard".to_string(),
                "/".into(),
                format!("/cases/{case}"),
                format!("/units/{unit_id}"),
                "/messages".into(),
            ],
        ),
        (
            "inspector1@anju.example",
            4,
            vec![
                "/plan".to_string(),
                "/".into(),
                format!("/units/{unit_id}"),
                format!("/units/{unit_id}/inspect"),
                format!("/cases/{case}"),
                format!("/cases/{case}/order"),
                "/messages".into(),
            ],
        ),
    ] {
        c.goto(&format!("{}/", app.base)).await.unwrap();
        find(c, "form.signout button").await.click().await.unwrap();
        page_with(c, "登录").await;
        sign_in(c, app, smtp, address, n).await;
        for path in pages {
            c.goto(&format!("{}{path}", app.base)).await.unwrap();
            page_with(c, "安居").await;
            // The map's markers show their address on hover.
            c.execute(
                "document.querySelectorAll('.leaflet-interactive').forEach(function (m) {\
                   m.dispatchEvent(new MouseEvent('mouseover', { bubbles: true })); });\
                 return true;",
                vec![],
            )
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(ran(c).await, Value::Null, "hostile text ran on {path}");
        }
    }
    // The plan's map showed the hostile address, as text.
    c.goto(&format!("{}/plan", app.base)).await.unwrap();
    page_with(c, "今日巡查").await;
    let tooltips = wait_for_js(
        c,
        "document.querySelectorAll('.leaflet-interactive').forEach(function (m) {\
           m.dispatchEvent(new MouseEvent('mouseover', { bubbles: true })); });\
         var t = Array.prototype.map.call(document.querySelectorAll('.leaflet-tooltip'), function (e) { return e.textContent; }).join('|');\
         return t.indexOf('onerror') >= 0 ? t : null;",
    )
    .await;
    assert!(
        tooltips.as_str().unwrap().contains("<img src=x"),
        "{tooltips}"
    );
    assert_eq!(ran(c).await, Value::Null);

    // A page that forgot to escape: stopped by the service's policy; elsewhere it runs.
    let raw = percent_encoding::utf8_percent_encode(HOSTILE, percent_encoding::NON_ALPHANUMERIC);
    c.goto(&format!("{}/__test/unescaped?html={raw}", app.base))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ran(c).await,
        Value::Null,
        "the policy stopped the unescaped page"
    );
    let elsewhere = serve_html(HOSTILE).await;
    c.goto(&elsewhere).await.unwrap();
    let counted = wait_for_js(c, "return window.__xss === undefined ? null : window.__xss").await;
    assert_eq!(counted, json!(2), "without the policy, both ran");
}
