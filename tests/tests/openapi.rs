//! The OpenAPI document over the real HTTP server: OpenAPI 3.1 at `/api/v1/openapi.json`, every documented operation is served (the route answers its documented method, not the fallback's 404 or 405), every operation lists the problem responses with their schema (429 and 503 included) and, but for the public ones, the bearer token; the docs page works offline (no asset from another host, its own assets served); the API's routes are registered only with their descriptions. SQLite only: the document does not depend on the backend. Schemathesis fuzzes the API against this document in `.ci/schemathesis`.

use serde_json::Value;

use anju_tests::{Backend, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_every_route_it_serves() {
    let app = spawn_app(Backend::Sqlite).await;
    let client = reqwest::Client::new();
    let doc: Value = client
        .get(format!("{}/api/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "delete"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let responses = op["responses"].as_object().unwrap();
            let problems = if path.starts_with("/open311/") {
                // Open311 answers its own errors, besides the problems of a request
                // refused before its route.
                vec!["400", "401", "404", "429", "500", "503"]
            } else {
                vec!["401", "404", "422", "429", "500", "503"]
            };
            for status in problems {
                let content = &responses
                    .get(status)
                    .unwrap_or_else(|| panic!("{method} {path}: no {status}"))["content"];
                // A tenant's refused report is a page (the placard's form).
                if path == "/u/{code}/tip" && content.get("text/html").is_some() {
                    continue;
                }
                let problem = &content["application/problem+json"]["schema"]["$ref"];
                assert_eq!(
                    problem, "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
            }
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}: no success response"
            );
            let public = path.starts_with("/u/")
                || path.starts_with("/open311/")
                || path.starts_with("/c/")
                || path == "/named"
                || path == "/api/v1/auth/code"
                || (path == "/api/v1/auth/session" && method == "post");
            assert_eq!(op.get("security").is_none(), public, "{method} {path}");
            // The route is served: its method is answered by it, not by the fallback
            // (404 "no such resource") or as another method's path (405).
            let url = format!(
                "{}{}",
                app.base,
                path.replace("{id}", "1")
                    .replace("{date}", "2026-03-02")
                    .replace("{code}", "x")
                    .replace("{file}", "requests.json")
            );
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = client.request(method.clone(), &url).send().await.unwrap();
            assert_ne!(r.status(), 405, "{method} {path}");
            if r.status() == 404 {
                let body: Value = r.json().await.unwrap_or_default();
                assert_ne!(
                    body["detail"], "no such resource",
                    "{method} {path} is documented but not served"
                );
            }
        }
    }
    assert!(operations >= 72, "{operations} operations");
    let problem = &doc["components"]["schemas"]["Problem"];
    assert!(
        problem["description"]
            .as_str()
            .unwrap()
            .contains("/problems/stale-version")
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["token"]["scheme"],
        "bearer"
    );

    // The docs page and its assets come from this server only.
    let page = client
        .get(format!("{}/api/v1/docs/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    for attr in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attr) {
            let target = &html[at + attr.len()..];
            let target = &target[..target.find('"').unwrap()];
            assert!(
                !target.starts_with("http") && !target.starts_with("//"),
                "{target} is fetched from elsewhere"
            );
            let url = format!(
                "{}/api/v1/docs/{}",
                app.base,
                target.trim_start_matches("./")
            );
            let r = client.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{url}");
        }
    }
    let init = client
        .get(format!("{}/api/v1/docs/swagger-initializer.js", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/api/v1/openapi.json"), "{init}");
}

/// The API's routes are registered only through `routes!` (each from its handler's
/// `#[utoipa::path]`), never with a plain `.route(`, which would serve a route the
/// document does not describe.
#[test]
fn api_routes_are_registered_with_their_description() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/src/routes");
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        files += 1;
        for (n, line) in text.lines().enumerate() {
            assert!(
                !line.contains(".route(") && !line.contains(".route_service("),
                "{}:{}: a route without its description: {line}",
                path.display(),
                n + 1
            );
        }
    }
    assert!(files > 10);
}

/// Two described types of the same name would be one schema in the document (the
/// last registered wins), and one route's answers would be checked against another's:
/// the names of the API's described types are unique.
#[test]
fn described_types_have_unique_names() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/src/routes");
    let mut seen = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let Some(at) = line.find("struct ").or_else(|| line.find("enum ")) else {
                continue;
            };
            let described = lines[n.saturating_sub(4)..n]
                .iter()
                .any(|l| l.contains("ToSchema") || l.contains("IntoParams"));
            if !described || line.trim_start().starts_with("//") {
                continue;
            }
            let name: String = line[at..]
                .split_whitespace()
                .nth(1)
                .unwrap()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if let Some(other) = seen.insert(name.clone(), path.display().to_string()) {
                panic!("{name} is described in {other} and {}", path.display());
            }
        }
    }
    assert!(seen.len() > 40, "{seen:?}");
}
