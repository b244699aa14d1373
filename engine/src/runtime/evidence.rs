//! Evidence on the runtime: uploads checked (by the pure core), stored once per content in the blob store with a thumbnail, referenced by commands and inspections only where the caller may, served only to those who may see an event that references them, and judged (on site, off site, unknown) where a case shows them.

use std::collections::BTreeMap;
use std::io::Cursor;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::blobs::{blob_key, thumbnail_key};
use crate::domain::{Point, UnitId};
use crate::error::{Error, Result};
use crate::evidence::{self, EvidenceKind, PhotoCheck};
use crate::store::{CaseFilter, CaseRecord, EventRecord, EvidenceRecord};

use super::Runtime;

/// The longest side of a thumbnail, in pixels.
const THUMBNAIL_SIDE: u32 = 480;

/// An evidence reference as a case shows it: an upload (verified: its bytes are held
/// and were checked) with how its photo was judged, or a string stored before uploads
/// existed (unverified).
#[derive(Debug, Clone)]
pub struct EvidenceView {
    pub reference: String,
    pub record: Option<EvidenceRecord>,
    /// For photos: whether it was taken at the unit on the day of the event that
    /// references it.
    pub check: Option<PhotoCheck>,
    /// The event that first references it.
    pub event_seq: Option<i64>,
}

impl Runtime {
    /// Stores an upload: checked before anything is decoded, its bytes stored once per
    /// SHA-256, a thumbnail made for images (decoded within limits: an image that does
    /// not decode is refused), its EXIF position and time read, and a row of its own
    /// with a new random id.
    pub async fn upload_evidence(
        &self,
        principal: &Principal,
        kind: EvidenceKind,
        claimed: Option<&str>,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> Result<EvidenceRecord> {
        crate::policy::check(principal, crate::policy::Act::UploadEvidence)?;
        let checked = evidence::check_upload(kind, claimed, file_name, &bytes)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let (bytes, thumbnail, facts) = if checked.media_type.is_image() {
            // Decodes share one memory budget: each waits until what it will take (told
            // from its header, at most `MAX_DECODE_BYTES`) is free, so that however
            // many uploads arrive at once, decoding them holds at most the budget.
            let cost = evidence::decode_cost(checked.media_type, &bytes).unwrap_or(0);
            let megabytes = u32::try_from(cost.div_ceil(1024 * 1024).max(1)).unwrap_or(u32::MAX);
            let permit = self
                .shared
                .decode_budget
                .clone()
                .acquire_many_owned(megabytes.min(DECODE_BUDGET_MB))
                .await
                .map_err(|_| Error::ShuttingDown)?;
            tokio::task::spawn_blocking(move || {
                let thumbnail = thumbnail(&bytes, cost);
                let facts = evidence::photo_facts(&bytes);
                drop(permit);
                (bytes, thumbnail, facts)
            })
            .await
            .map_err(|e| Error::Internal(format!("thumbnail: {e}")))?
        } else {
            (bytes, Ok(Vec::new()), evidence::PhotoFacts::default())
        };
        let thumbnail = thumbnail.map_err(|why| Error::invalid("file", why))?;
        let size = bytes.len() as i64;
        let blobs = &self.shared.config.blobs;
        blobs
            .put_once(&blob_key(&sha256), bytes)
            .await
            .map_err(fault)?;
        let has_thumbnail = !thumbnail.is_empty();
        if has_thumbnail {
            blobs
                .put_once(&thumbnail_key(&sha256), thumbnail)
                .await
                .map_err(fault)?;
        }
        let record = EvidenceRecord {
            id: evidence::new_id(),
            sha256,
            kind,
            media_type: checked.media_type,
            bytes: size,
            width: checked.width,
            height: checked.height,
            file_name: checked.file_name,
            owner_role: principal.role,
            owner_subject: principal.subject,
            uploaded_by: principal.actor_id(),
            uploaded_at: self.now(),
            facts,
            has_thumbnail,
        };
        self.shared.store.insert_evidence(&record).await?;
        Ok(record)
    }

    /// Forgets the caller's own uploads that nothing references, and their bytes where
    /// no other upload has the same content: the files of a page form that was refused
    /// (or answered from its first sending), so that a refusal leaves none behind.
    pub async fn discard_uploads(&self, principal: &Principal, ids: &[String]) -> Result<()> {
        let unused = self
            .shared
            .store
            .discard_evidence(ids, (principal.role, principal.subject))
            .await?;
        let blobs = &self.shared.config.blobs;
        for digest in unused {
            blobs.delete(&blob_key(&digest)).await.map_err(fault)?;
            blobs.delete(&thumbnail_key(&digest)).await.map_err(fault)?;
        }
        Ok(())
    }

    /// An upload and its bytes (or its thumbnail's), for a caller who uploaded it or who
    /// may see an event of a case that references it; to anyone else, exactly as an
    /// upload that does not exist.
    pub async fn evidence_file(
        &self,
        principal: &Principal,
        id: &str,
        thumbnail: bool,
    ) -> Result<(EvidenceRecord, Vec<u8>)> {
        let missing = || Error::not_found("evidence", id);
        if !evidence::is_id(id) {
            return Err(missing());
        }
        let record = self
            .shared
            .store
            .evidence(&[id.to_string()])
            .await?
            .pop()
            .ok_or_else(missing)?;
        if !owns(principal, &record) && !self.sees_reference(principal, id).await? {
            return Err(missing());
        }
        let key = if thumbnail && record.has_thumbnail {
            thumbnail_key(&record.sha256)
        } else if thumbnail {
            return Err(missing());
        } else {
            blob_key(&record.sha256)
        };
        let bytes = self
            .shared
            .config
            .blobs
            .get(&key)
            .await
            .map_err(fault)?
            .ok_or_else(|| Error::Internal(format!("the blob of evidence {id} is missing")))?;
        if crate::policy::sees_where_photos_were_taken(principal, uploader(&record)) {
            return Ok((record, bytes));
        }
        // Thumbnails are made from the pixels alone; the file loses every metadata
        // block. One that does not parse is not served with what it may carry: its
        // thumbnail (pixels only) stands for it, or nothing.
        let bytes = if thumbnail {
            bytes
        } else {
            match evidence::without_metadata(record.media_type, &bytes) {
                Some(clean) => clean,
                None => {
                    return Err(Error::invalid(
                        "file",
                        "this file can be shown to you only as its thumbnail (its metadata could not be removed)",
                    ));
                }
            }
        };
        let record = EvidenceRecord {
            facts: evidence::PhotoFacts::default(),
            ..record
        };
        Ok((record, bytes))
    }

    /// Whether some case the caller may see, of a unit whose cases reference the upload,
    /// has an event the caller may see that references it (its history only: not the
    /// whole view of the case).
    async fn sees_reference(&self, principal: &Principal, id: &str) -> Result<bool> {
        for unit in self.shared.store.evidence_units(id).await? {
            let filter = CaseFilter {
                unit_id: Some(unit),
                limit: 500,
                ..CaseFilter::default()
            };
            for case in self.list_cases(principal, &filter).await? {
                let history = match self
                    .case_events_after(principal, case.snapshot.id, 0, u32::MAX)
                    .await
                {
                    Ok(h) => h,
                    Err(Error::NotFound { .. }) => continue,
                    Err(e) => return Err(e),
                };
                if history.iter().any(|e| references(&e.data, id)) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Checks the evidence a command or an inspection references, for `unit`: each an
    /// upload that exists and that the caller uploaded or that the unit's cases already
    /// reference. `field` names the list in the request. The links from the unit to
    /// them are written with the command's or the inspection's own writes, in their
    /// transaction, so that a refused command links nothing.
    pub(super) async fn check_evidence(
        &self,
        principal: &Principal,
        refs: &[(String, String)],
        unit: UnitId,
    ) -> Result<()> {
        if refs.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<String> = refs.iter().map(|(_, id)| id.clone()).collect();
        ids.sort();
        ids.dedup();
        let found: BTreeMap<String, (EvidenceRecord, bool)> = self
            .shared
            .store
            .evidence_on_unit(&ids, unit)
            .await?
            .into_iter()
            .map(|(e, linked)| (e.id.clone(), (e, linked)))
            .collect();
        let mut errors = Vec::new();
        for (field, id) in refs {
            let usable = found
                .get(id)
                .is_some_and(|(e, linked)| *linked || owns(principal, e));
            if !usable {
                errors.push(crate::error::FieldError::new(
                    field.clone(),
                    format!("no uploaded file {id}"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        Ok(())
    }

    /// The evidence a case's history (as the caller sees it) and its own record
    /// reference, each judged: photos against the unit's point and the day of the event
    /// that references them.
    pub async fn evidence_views(
        &self,
        case: &CaseRecord,
        history: &[EventRecord],
    ) -> Result<Vec<EvidenceView>> {
        let unit_point = Point::parse(case.lon, case.lat, "unit").ok();
        let mut refs: Vec<(String, Option<&EventRecord>)> = Vec::new();
        for e in history {
            for r in evidence::evidence_refs(&e.data) {
                if !refs.iter().any(|(x, _)| *x == r) {
                    refs.push((r, Some(e)));
                }
            }
        }
        for r in &case.evidence {
            if !refs.iter().any(|(x, _)| x == r) {
                refs.push((r.clone(), history.first()));
            }
        }
        let ids: Vec<String> = refs
            .iter()
            .filter(|(r, _)| evidence::is_id(r))
            .map(|(r, _)| r.clone())
            .collect();
        let mut found: BTreeMap<String, EvidenceRecord> = self
            .shared
            .store
            .evidence(&ids)
            .await?
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect();
        let max_m = self.shared.config.off_site_m;
        Ok(refs
            .into_iter()
            .map(|(reference, event)| {
                let record = found.remove(&reference);
                let check = match (&record, unit_point, event) {
                    (Some(r), Some(p), Some(e)) if r.media_type.is_image() => {
                        let day = e.at.with_timezone(&crate::time::china_time()).date_naive();
                        let day = observed_day(&e.data).unwrap_or(day);
                        Some(evidence::check_photo(r.facts, p, day, max_m))
                    }
                    _ => None,
                };
                EvidenceView {
                    reference,
                    record,
                    check,
                    event_seq: event.map(|e| e.seq),
                }
            })
            .collect())
    }
}

/// Who uploaded an upload: their role and subject.
fn uploader(record: &EvidenceRecord) -> (crate::domain::Role, i64) {
    (record.owner_role, record.owner_subject)
}

/// Whether `principal` uploaded it.
fn owns(principal: &Principal, record: &EvidenceRecord) -> bool {
    uploader(record) == (principal.role, principal.subject)
}

/// The evidence of a case as `principal` may see it: where and when photos were taken
/// (their EXIF, their judgement) only for those who may know it.
pub(super) fn as_seen_by(principal: &Principal, views: Vec<EvidenceView>) -> Vec<EvidenceView> {
    views
        .into_iter()
        .map(|mut v| {
            let sees = v.record.as_ref().is_none_or(|r| {
                crate::policy::sees_where_photos_were_taken(principal, uploader(r))
            });
            if !sees {
                v.check = None;
                if let Some(r) = &mut v.record {
                    r.facts = evidence::PhotoFacts::default();
                }
            }
            v
        })
        .collect()
}

/// The day (China time) an event's data says its visit was observed on site.
fn observed_day(data: &Value) -> Option<chrono::NaiveDate> {
    let at = data.get("observed_at")?.as_str()?;
    let t = chrono::DateTime::parse_from_rfc3339(at).ok()?;
    Some(t.with_timezone(&crate::time::china_time()).date_naive())
}

fn references(data: &Value, id: &str) -> bool {
    evidence::evidence_refs(data).iter().any(|r| r == id)
}

fn fault(e: crate::blobs::BlobError) -> Error {
    Error::Internal(e.to_string())
}

/// A JPEG thumbnail of an image, decoded within limits; the reason when it does not
/// decode.
/// The memory all decodes of a process share at once, in megabytes (one decode takes
/// at most `evidence::MAX_DECODE_BYTES`, 160 MB).
pub(super) const DECODE_BUDGET_MB: u32 = 192;

fn thumbnail(bytes: &[u8], cost: u64) -> std::result::Result<Vec<u8>, String> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("the image cannot be read: {e}"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(evidence::MAX_SIDE);
    limits.max_image_height = Some(evidence::MAX_SIDE);
    // What the header said it would take, with room for the decoder's own buffers.
    limits.max_alloc = Some(cost.max(1 << 20).saturating_mul(5) / 4);
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|e| format!("the image cannot be decoded: {e}"))?;
    let small = image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE).to_rgb8();
    let mut out = Vec::new();
    small
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .map_err(|e| format!("the thumbnail cannot be made: {e}"))?;
    Ok(out)
}
