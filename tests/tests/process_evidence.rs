//! Evidence across nodes: two `anju serve` processes on one PostgreSQL database keep their evidence in a real S3-compatible server on loopback (s3s-fs over a temporary directory, in this test's process) and serve each other's uploads.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::json;

use anju_tests::{Backend, photos, t0};

mod process_support;
use process_support::*;

const KEY: &str = "anju-test";
const SECRET: &str = "anju-test-secret";

/// A real S3 server (s3s-fs) over `root` on a free loopback port, with one bucket.
async fn s3_server(root: &Path) -> SocketAddr {
    std::fs::create_dir_all(root.join("anju")).unwrap();
    let fs = s3s_fs::FileSystem::new(root).unwrap();
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(KEY, SECRET));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    addr
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_serve_each_others_uploads_from_s3() {
    if !anju_tests::postgres_available().await {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let s3 = s3_server(root.path()).await;
    let db = seeded(Backend::Postgres).await;
    let city = token(&db, "supervisor", 1);
    let other_landlord = token(&db, "landlord", 2);
    let endpoint = format!("http://{s3}");
    let env = [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_REGION", "us-east-1"),
    ];
    let store = ["--evidence-store", "s3://anju/evidence"];
    let a = Server::start_env(&db, t0(), false, &store, &env);
    let b = Server::start_env(&db, t0(), false, &store, &env);

    // An upload to A…
    let photo = photos::jpeg(800, 600, 9, None);
    let form = reqwest::multipart::Form::new().text("kind", "photo").part(
        "file",
        reqwest::multipart::Part::bytes(photo.clone())
            .file_name("site.jpg")
            .mime_str("image/jpeg")
            .unwrap(),
    );
    let uploaded = a
        .client
        .post(format!("{}/api/v1/evidence", a.base))
        .bearer_auth(&city)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let id = uploaded.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // …is kept in the object store, the file and its thumbnail…
    let stored = files_under(&root.path().join("anju"));
    assert!(
        stored
            .iter()
            .any(|p| p.to_string_lossy().contains("evidence/blobs/")),
        "{stored:?}"
    );
    assert!(
        stored
            .iter()
            .any(|p| p.to_string_lossy().contains("evidence/thumbnails/"))
    );
    // …and served by B, byte for byte.
    let get = |server: &Server, path: String, token: String| {
        let request = server
            .client
            .get(format!("{}{path}", server.base))
            .bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    let from_b = get(&b, format!("/api/v1/evidence/{id}/file"), city.clone()).await;
    assert_eq!(from_b.status(), 200);
    assert_eq!(from_b.bytes().await.unwrap().to_vec(), photo);
    // An inspection on B references it; A serves it with the case, and to nobody else.
    let unit = b.get("/api/v1/units/1", &city).await;
    let inspected = b
        .post(
            "/api/v1/inspections",
            &city,
            json!({ "unit_id": 1, "point": { "lon": unit["lon"], "lat": unit["lat"] },
                    "findings": [{ "category": "wiring", "evidence": [id] }] }),
        )
        .await;
    let case = inspected["cases"][0]["id"].as_i64().expect("a case");
    let view = a.get(&format!("/api/v1/cases/{case}"), &city).await;
    assert_eq!(view["evidence"][0]["reference"], id.as_str(), "{view}");
    assert_eq!(view["evidence"][0]["verified"], true);
    let thumb = get(&a, format!("/api/v1/evidence/{id}/thumbnail"), city.clone()).await;
    assert_eq!(thumb.status(), 200);
    let stranger = get(&a, format!("/api/v1/evidence/{id}/file"), other_landlord).await;
    assert_eq!(stranger.status(), 404);
}
