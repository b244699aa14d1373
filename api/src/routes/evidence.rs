//! Evidence over HTTP: uploads as multipart (a `kind` and a `file`), an upload's description, and its bytes or thumbnail for those who may see it; the multipart reading and the file answer are shared with the pages.

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use anju_engine::evidence::EvidenceKind;
use anju_engine::model::EvidenceRecord;

use crate::http::extract::{Caller, FormData};
use crate::http::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// A file part of a multipart body.
#[derive(Debug)]
pub struct FilePart {
    /// The form field it came in.
    pub field: String,
    pub file_name: String,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// A multipart body read whole: its text fields in order and its files (empty files,
/// which browsers send for a file input with nothing chosen, are left out).
pub async fn read_multipart(
    mut multipart: Multipart,
) -> Result<(Vec<(String, String)>, Vec<FilePart>), ApiError> {
    let (mut fields, mut files) = (Vec::new(), Vec::new());
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e)),
        };
        let name = field.name().unwrap_or_default().to_string();
        match field.file_name().map(str::to_string) {
            Some(file_name) => {
                let content_type = field.content_type().map(str::to_string);
                let bytes = field.bytes().await.map_err(multipart_error)?;
                if !bytes.is_empty() {
                    files.push(FilePart {
                        field: name,
                        file_name,
                        content_type,
                        bytes: bytes.to_vec(),
                    });
                }
            }
            None => {
                let text = field.text().await.map_err(multipart_error)?;
                fields.push((name, text));
            }
        }
    }
    Ok((fields, files))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::Malformed {
            field: None,
            detail: format!("the multipart body cannot be read: {}", e.body_text()),
        }
    }
}

/// Reads the kind an upload names (`photo` unless told).
pub fn kind_of(fields: &[(String, String)]) -> Result<EvidenceKind, ApiError> {
    match fields
        .iter()
        .find(|(k, _)| k == "kind")
        .map(|(_, v)| v.trim())
    {
        None | Some("") => Ok(EvidenceKind::Photo),
        Some(k) => EvidenceKind::parse(k).ok_or_else(|| ApiError::Unprocessable {
            field: "kind".into(),
            detail: "must be photo or document".into(),
        }),
    }
}

/// `POST /api/v1/evidence`: one file (field `file`) of a kind (field `kind`: `photo`,
/// the default, or `document`). Answers 201 with the new upload's id, which commands
/// and inspections reference.
#[utoipa::path(post, path = "/evidence", tag = "evidence", request_body(content_type = "multipart/form-data", description = "the file (`file`) and its `kind`", content = String), responses((status = 201, description = "the upload, to reference as evidence", body = EvidenceOut)))]
pub(super) async fn upload(
    State(app): State<AppState>,
    Caller(caller): Caller,
    FormData(multipart): FormData,
) -> ApiResult<Response> {
    let (fields, mut files) = read_multipart(multipart).await?;
    let kind = kind_of(&fields)?;
    if files.len() != 1 {
        return Err(ApiError::Unprocessable {
            field: "file".into(),
            detail: format!("send exactly one file; this body has {}", files.len()),
        });
    }
    let file = files.remove(0);
    let record = app
        .runtime
        .upload_evidence(
            &caller,
            kind,
            file.content_type.as_deref(),
            &file.file_name,
            file.bytes,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(evidence_json(&record))).into_response())
}

/// `GET /api/v1/evidence/{id}`: what an upload is.
#[utoipa::path(get, path = "/evidence/{id}", tag = "evidence", params(("id" = String, Path)), responses((status = 200, description = "the upload described", body = EvidenceOut)))]
pub(super) async fn describe(
    State(app): State<AppState>,
    Caller(caller): Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<Json<Value>> {
    let (record, _) = app.runtime.evidence_file(&caller, &id, false).await?;
    Ok(Json(evidence_json(&record)))
}

/// `GET /api/v1/evidence/{id}/file`: the bytes as uploaded.
#[utoipa::path(get, path = "/evidence/{id}/file", tag = "evidence", params(("id" = String, Path)), responses((status = 200, description = "the file as uploaded", content((Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"), (Vec<u8> = "application/pdf")))))]
pub(super) async fn file(
    State(app): State<AppState>,
    Caller(caller): Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<Response> {
    let (record, bytes) = app.runtime.evidence_file(&caller, &id, false).await?;
    Ok(file_response(&record, bytes, false))
}

/// `GET /api/v1/evidence/{id}/thumbnail`: a JPEG of at most 480 pixels a side.
#[utoipa::path(get, path = "/evidence/{id}/thumbnail", tag = "evidence", params(("id" = String, Path)), responses((status = 200, description = "a JPEG of at most 480 pixels a side", content((Vec<u8> = "image/jpeg")))))]
pub(super) async fn thumbnail(
    State(app): State<AppState>,
    Caller(caller): Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<Response> {
    let (record, bytes) = app.runtime.evidence_file(&caller, &id, true).await?;
    Ok(file_response(&record, bytes, true))
}

/// An upload as the API describes it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct EvidenceOut<'a> {
    /// `ev_…`: what a command's evidence field references.
    id: &'a str,
    /// `photo` or `document`.
    kind: &'static str,
    media_type: &'static str,
    bytes: i64,
    width: Option<u32>,
    height: Option<u32>,
    file_name: &'a str,
    uploaded_by: &'a str,
    uploaded_at: chrono::DateTime<chrono::Utc>,
    exif: ExifOut,
    thumbnail: bool,
}

/// Where and when the photo says it was taken (its EXIF), if it says.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct ExifOut {
    lon: Option<f64>,
    lat: Option<f64>,
    taken_at: Option<String>,
}

/// An upload as the API describes it.
pub fn evidence_json(e: &EvidenceRecord) -> Value {
    json!(EvidenceOut {
        id: &e.id,
        kind: e.kind.as_str(),
        media_type: e.media_type.as_str(),
        bytes: e.bytes,
        width: e.width,
        height: e.height,
        file_name: &e.file_name,
        uploaded_by: &e.uploaded_by,
        uploaded_at: e.uploaded_at,
        exif: ExifOut {
            lon: e.facts.point.map(|p| p.lon()),
            lat: e.facts.point.map(|p| p.lat()),
            taken_at: e.facts.taken.map(|t| t.stored()),
        },
        thumbnail: e.has_thumbnail,
    })
}

/// The bytes of an upload (or its thumbnail) as the answer: its type, shown inline
/// under its own name, never sniffed as another type, kept only in the caller's cache,
/// and a PDF sandboxed.
pub fn file_response(record: &EvidenceRecord, bytes: Vec<u8>, thumbnail: bool) -> Response {
    let media = if thumbnail {
        "image/jpeg"
    } else {
        record.media_type.as_str()
    };
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    let name = percent_encoding::utf8_percent_encode(
        &record.file_name,
        percent_encoding::NON_ALPHANUMERIC,
    );
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename*=UTF-8''{name}")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; img-src 'self'"),
    );
    r
}
