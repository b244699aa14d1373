//! Evidence over HTTP on both backends: uploads stored once per content but each with its own id, files refused for their size, their false type or their declared size (a PNG bomb), commands and inspections that reference only uploads the caller may use, files served only to those who see an event that references them, photos judged on site or off site from their EXIF, and strings stored before uploads shown as unverified.

use std::path::Path;

use anju_engine::blobs::Blobs;
use anju_engine::runtime;
use anju_tests::photos::{self, Exif};
use anju_tests::{Backend, TestApp, backend_tests, spawn_app_with};
use serde_json::{Value, json};

mod process_support;
use process_support::execute;

/// A service whose blobs are kept in a directory, so that the test can count them.
async fn app_with_dir(backend: Backend, dir: &Path) -> TestApp {
    let config = runtime::Config {
        blobs: Blobs::open(dir.to_str().unwrap()).unwrap(),
        ..runtime::Config::default()
    };
    spawn_app_with(backend, config).await
}

/// The files under a directory, recursively.
fn files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        files_under(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

async fn uploads_are_stored_once_and_checked_before_decoding(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_dir(backend, dir.path()).await;
    let t = &app.tokens;
    let photo = photos::jpeg(640, 480, 3, None);
    let a = app
        .upload(&t.inspector, "photo", "a.jpg", "image/jpeg", photo.clone())
        .await
        .expect(201);
    assert_eq!(
        (a["width"].as_i64(), a["height"].as_i64()),
        (Some(640), Some(480))
    );
    assert_eq!(a["media_type"], "image/jpeg");
    assert_eq!(a["thumbnail"], true);
    let stored = files_under(dir.path());
    assert_eq!(stored, 2, "the file and its thumbnail");
    // The same photo from someone else: a new id, the same bytes stored once.
    let b = app
        .upload(&t.landlord, "photo", "b.jpg", "image/jpeg", photo.clone())
        .await
        .expect(201);
    assert_ne!(a["id"], b["id"]);
    assert_eq!(files_under(dir.path()), stored);
    // The answer says nothing of the other upload: the same fields as the first.
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&a), keys(&b));

    // Refused, each naming the file, nothing stored.
    let mut big = photos::jpeg(64, 48, 1, None);
    big.resize(17 * 1024 * 1024, 0);
    let too_big = app
        .upload(&t.inspector, "photo", "big.jpg", "image/jpeg", big)
        .await
        .problem(422, Some("file"));
    assert!(
        too_big["detail"].as_str().unwrap().contains("16 MB"),
        "{too_big}"
    );
    let fake = app
        .upload(
            &t.inspector,
            "photo",
            "x.jpg",
            "image/jpeg",
            b"<html>not a photo</html>".to_vec(),
        )
        .await
        .problem(422, Some("file"));
    assert!(
        fake["detail"]
            .as_str()
            .unwrap()
            .contains("claims to be image/jpeg"),
        "{fake}"
    );
    let bomb = app
        .upload(
            &t.inspector,
            "photo",
            "bomb.png",
            "image/png",
            photos::png_bomb(),
        )
        .await
        .problem(422, Some("file"));
    assert!(
        bomb["detail"].as_str().unwrap().contains("60000 × 60000"),
        "{bomb}"
    );
    // A header that reads but data that does not decode.
    let mut broken = photos::jpeg(64, 48, 2, None);
    broken.truncate(200);
    app.upload(&t.inspector, "photo", "broken.jpg", "image/jpeg", broken)
        .await
        .problem(422, Some("file"));
    app.upload(&t.inspector, "poster", "a.jpg", "image/jpeg", photo.clone())
        .await
        .problem(422, Some("kind"));
    app.upload(
        &t.inspector,
        "photo",
        "d.pdf",
        "application/pdf",
        photos::pdf("x"),
    )
    .await
    .problem(422, Some("kind"));
    assert_eq!(
        files_under(dir.path()),
        stored,
        "nothing refused was stored"
    );
    // Nobody without a role that uploads.
    let placard = app
        .client
        .post(format!("{}/api/v1/evidence", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(placard.status(), 401);
}

async fn evidence_is_referenced_and_served_only_where_it_may_be(backend: Backend) {
    let app = anju_tests::spawn_app(backend).await;
    let t = &app.tokens;
    let unit = app.unit_of(1);
    let id = app.ordered(unit, "wiring", "重新布线").await;
    app.command(id, &t.landlord, "acknowledge", json!({}))
        .await
        .expect(200);
    // A reference that is not an upload, one that does not exist, another landlord's:
    // each refused naming the item, nothing changes.
    let theirs = app.photo(&t.other_landlord).await;
    let before = app.fingerprint().await;
    for (evidence, field) in [
        (json!(["photo:after-1"]), "data.evidence"),
        (
            json!([format!("ev_{}", "0".repeat(32))]),
            "data.evidence[0]",
        ),
        (json!([theirs]), "data.evidence[0]"),
    ] {
        app.command(
            id,
            &t.landlord,
            "report_fix",
            json!({ "evidence": evidence }),
        )
        .await
        .problem(422, Some(field));
    }
    assert_eq!(app.fingerprint().await, before);

    let mine = app.photo(&t.landlord).await;
    let fixed = app
        .command(id, &t.landlord, "report_fix", json!({ "evidence": [mine] }))
        .await
        .expect(200);
    assert_eq!(fixed["case"]["state"], "rectification_reported");
    let file = |token: &str, id: &str| {
        let (app, token, id) = (&app, token.to_string(), id.to_string());
        async move {
            app.client
                .get(format!("{}/api/v1/evidence/{id}/file", app.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    // Those who see the case's event see the photo; the district's supervisor too.
    for token in [&t.landlord, &t.inspector, &t.district] {
        let r = file(token, &mine).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/jpeg");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    }
    // Another landlord, another department, another inspector: exactly as a missing one.
    let missing = file(&t.other_landlord, &format!("ev_{}", "0".repeat(32))).await;
    let (status, body) = (missing.status(), missing.text().await.unwrap());
    for token in [
        &t.other_landlord,
        &t.other_fire,
        &t.other_inspector,
        &t.fire,
    ] {
        let r = file(token, &mine).await;
        assert_eq!(r.status(), status);
        assert_eq!(
            r.text().await.unwrap(),
            body.replace(&"0".repeat(32), &mine[3..])
        );
    }
    // An upload nobody referenced is its uploader's alone.
    assert_eq!(file(&t.other_landlord, &theirs).await.status(), 200);
    assert_eq!(file(&t.landlord, &theirs).await.status(), 404);
    // The thumbnail too.
    let thumb = app
        .client
        .get(format!("{}/api/v1/evidence/{mine}/thumbnail", app.base))
        .bearer_auth(&t.inspector)
        .send()
        .await
        .unwrap();
    assert_eq!(thumb.status(), 200);
    assert!(
        thumb
            .bytes()
            .await
            .unwrap()
            .starts_with(&[0xFF, 0xD8, 0xFF])
    );

    // The case lists its evidence: this upload verified.
    let case = app.case(id, &t.inspector).await;
    let listed = case["evidence"].as_array().unwrap();
    let item = listed
        .iter()
        .find(|e| e["reference"] == mine.as_str())
        .unwrap();
    assert_eq!(item["verified"], true);
    assert_eq!(
        item["photo_check"], "unknown",
        "a photo without EXIF is never off site"
    );
}

async fn photos_are_judged_on_site_from_their_exif(backend: Backend) {
    let app = anju_tests::spawn_app(backend).await;
    let t = &app.tokens;
    let unit_id = app.unit_of(1);
    let u = app
        .store()
        .unit(anju_engine::domain::UnitId(unit_id))
        .await
        .unwrap()
        .unwrap();
    let upload = |bytes: Vec<u8>| async {
        app.upload(&t.inspector, "photo", "p.jpg", "image/jpeg", bytes)
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // The test day is 2 March 2026, 09:00 China time.
    let here = upload(photos::photo_at(u.lon, u.lat, "2026:03:02 08:45:00", 1)).await;
    let far = upload(photos::photo_at(
        u.lon + 0.02,
        u.lat,
        "2026:03:02 08:50:00",
        2,
    ))
    .await;
    let yesterday = upload(photos::photo_at(u.lon, u.lat, "2026:03:01 17:00:00", 3)).await;
    // 2 March 18:30 UTC is 3 March in China: another day, by the offset it carries.
    let utc = photos::jpeg(
        64,
        48,
        4,
        Some(Exif {
            lon: u.lon,
            lat: u.lat,
            taken: "2026:03:02 18:30:00",
            offset: Some("+00:00"),
        }),
    );
    let next_day = upload(utc).await;
    let plain = upload(photos::jpeg(64, 48, 5, None)).await;
    let body = json!({
        "unit_id": unit_id,
        "point": { "lon": u.lon, "lat": u.lat },
        "findings": [{ "category": "wiring", "evidence": [here, far, yesterday, next_day, plain] }],
    });
    let done = app
        .post("/api/v1/inspections", &t.inspector, &body)
        .await
        .expect(201);
    let id = done["cases"][0]["id"].as_i64().unwrap();
    let case = app.case(id, &t.inspector).await;
    let check = |reference: &str| {
        case["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["reference"] == reference)
            .cloned()
            .unwrap_or_else(|| panic!("{reference} listed: {case}"))
    };
    assert_eq!(check(&here)["photo_check"], "on_site");
    let f = check(&far);
    assert_eq!(f["photo_check"], "off_site");
    let d = f["distance_m"].as_f64().unwrap();
    assert!(
        (1900.0..2200.0).contains(&d),
        "0.02° of longitude at 23° N is ~2 km: {d}"
    );
    assert_eq!(check(&yesterday)["photo_check"], "off_site");
    assert_eq!(check(&yesterday)["other_day"], true);
    assert_eq!(check(&next_day)["photo_check"], "off_site");
    assert_eq!(check(&plain)["photo_check"], "unknown");

    // The landlord sees the photos, not where or when they were taken: no judgement,
    // and the file without its EXIF (the inspector's has it).
    let landlord = app.case(id, &t.landlord).await;
    let seen = landlord["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reference"] == far.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{landlord}"));
    assert_eq!(seen["verified"], true);
    assert!(
        seen["photo_check"].is_null() && seen["distance_m"].is_null(),
        "{seen}"
    );
    let file = |token: &str| {
        let request = app
            .client
            .get(format!("{}/api/v1/evidence/{far}/file", app.base))
            .bearer_auth(token);
        async move {
            request
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec()
        }
    };
    let (theirs, staff) = (file(&t.landlord).await, file(&t.inspector).await);
    assert!(anju_engine::evidence::photo_facts(&staff).point.is_some());
    assert_eq!(
        anju_engine::evidence::photo_facts(&theirs),
        anju_engine::evidence::PhotoFacts::default()
    );
    assert!(theirs.len() < staff.len());
    assert!(image::load_from_memory(&theirs).is_ok(), "still a photo");
    let described = app
        .get(&format!("/api/v1/evidence/{far}"), &t.landlord)
        .await
        .expect(200);
    assert!(described["exif"]["lat"].is_null(), "{described}");

    // A string stored before uploads existed stays readable, unverified.
    execute(
        &app.db,
        &[format!(
            "UPDATE case_events SET data = '{{\"evidence\": [\"photo:sha256:9f2c\"]}}' \
             WHERE case_id = {id} AND seq = 1"
        )],
    )
    .await;
    let case = app.case(id, &t.inspector).await;
    let old = case["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reference"] == "photo:sha256:9f2c")
        .cloned()
        .unwrap_or_else(|| panic!("{case}"));
    assert_eq!(old["verified"], false);
}

/// Issue 22, 5: a command the writer refuses, and an inspection refused after its
/// evidence was checked, leave no row behind in any table: the links from the unit to
/// the uploads they name are written with the transition, in its transaction.
async fn a_refused_command_or_inspection_leaves_no_row(backend: Backend) {
    let app = spawn_app_with(backend, runtime::Config::default()).await;
    let t = &app.tokens;
    let unit = app.unit_of(1);
    let case = app.inspect(&t.inspector, unit, &["wiring"]).await[0];
    // The landlord's photo, uploaded before: its own row is not what is counted.
    let photo = app.photo(&t.landlord).await;
    let before = app.store().table_counts().await.unwrap();
    // No order yet: the writer refuses a fix report in `discovered`.
    let refused = app
        .command(
            case,
            &t.landlord,
            "report_fix",
            json!({ "evidence": [photo] }),
        )
        .await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(app.store().table_counts().await.unwrap(), before);

    // An inspection under a key already used for another: refused after its evidence
    // was checked.
    let u = app
        .store()
        .unit(anju_engine::domain::UnitId(unit))
        .await
        .unwrap()
        .unwrap();
    let point = json!({ "lon": u.lon, "lat": u.lat });
    let first = app
        .send(
            app.client
                .post(format!("{}/api/v1/inspections", app.base))
                .bearer_auth(&t.inspector)
                .header("idempotency-key", "visit-22-5")
                .json(&json!({ "unit_id": unit, "point": point, "findings": [] })),
        )
        .await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let fresh = app.photo(&t.inspector).await;
    let before = app.store().table_counts().await.unwrap();
    let reused = app
        .send(
            app.client
                .post(format!("{}/api/v1/inspections", app.base))
                .bearer_auth(&t.inspector)
                .header("idempotency-key", "visit-22-5")
                .json(&json!({
                    "unit_id": unit,
                    "point": point,
                    "findings": [{ "category": "gas_heater", "evidence": [fresh] }],
                })),
        )
        .await;
    assert!(reused.status.as_u16() >= 400, "{:?}", reused.body);
    assert_eq!(app.store().table_counts().await.unwrap(), before);
}

/// Issue 22, 12: a photo's position reaches a landlord in no metadata block: XMP,
/// IPTC, comments, a second image (JPEG), text chunks and raw EXIF (PNG) are gone from
/// their copy, which still shows the same picture; the inspector's copy is the file as
/// uploaded.
async fn a_landlords_copy_carries_no_metadata(backend: Backend) {
    let app = spawn_app_with(backend, runtime::Config::default()).await;
    let t = &app.tokens;
    let unit = app.unit_of(1);
    let u = app
        .store()
        .unit(anju_engine::domain::UnitId(unit))
        .await
        .unwrap()
        .unwrap();
    for (name, media, bytes) in [
        ("xmp.jpg", "image/jpeg", photos::jpeg_with_xmp_gps()),
        ("xmp.png", "image/png", photos::png_with_xmp_gps()),
    ] {
        assert!(String::from_utf8_lossy(&bytes).contains("GPSLatitude"));
        let up = app
            .upload(&t.inspector, "photo", name, media, bytes.clone())
            .await
            .expect(201);
        let id = up["id"].as_str().unwrap().to_string();
        app.post(
            "/api/v1/inspections",
            &t.inspector,
            &json!({ "unit_id": unit, "point": { "lon": u.lon, "lat": u.lat },
                     "findings": [{ "category": "wiring", "evidence": [id] }] }),
        )
        .await
        .expect(201);
        let fetch = |token: &str| {
            app.client
                .get(format!("{}/api/v1/evidence/{id}/file", app.base))
                .bearer_auth(token)
                .send()
        };
        let landlords = fetch(&t.landlord).await.unwrap();
        assert_eq!(landlords.status(), 200, "{name}");
        let copy = landlords.bytes().await.unwrap().to_vec();
        let text = String::from_utf8_lossy(&copy);
        assert!(
            !text.contains("GPS") && !text.contains("xap") && !text.contains("Exif"),
            "{name}: metadata left in the landlord's copy"
        );
        let (a, b) = (
            image::load_from_memory(&bytes).unwrap(),
            image::load_from_memory(&copy).unwrap(),
        );
        assert_eq!((a.width(), a.height()), (b.width(), b.height()), "{name}");
        assert_eq!(a.to_rgb8(), b.to_rgb8(), "{name}: the same picture");
        let inspectors = fetch(&t.inspector).await.unwrap().bytes().await.unwrap();
        assert_eq!(
            inspectors.to_vec(),
            bytes,
            "{name}: the inspector's copy is the upload"
        );
    }
}

backend_tests!(
    a_landlords_copy_carries_no_metadata,
    a_refused_command_or_inspection_leaves_no_row,
    uploads_are_stored_once_and_checked_before_decoding,
    evidence_is_referenced_and_served_only_where_it_may_be,
    photos_are_judged_on_site_from_their_exif,
);
