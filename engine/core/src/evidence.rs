//! Evidence, pure: what an upload may be (kinds, types told by their bytes, size and pixel limits checked before anything is decoded), evidence ids, a photo's EXIF position and time, and whether a photo was taken on site and on the inspection's day.

use std::io::Cursor;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rand::TryRng;

use crate::domain::Point;
use crate::error::{Error, Result};

/// What an upload is for: a photo (from a phone's camera) or a document (a scanned
/// penalty decision, a signed proof of service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    Photo,
    Document,
}

impl EvidenceKind {
    pub fn parse(s: &str) -> Option<EvidenceKind> {
        match s {
            "photo" => Some(EvidenceKind::Photo),
            "document" => Some(EvidenceKind::Document),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Photo => "photo",
            EvidenceKind::Document => "document",
        }
    }

    /// The most bytes one upload of this kind may have. Phone photos are 3–12 MB;
    /// scanned decisions of several pages can be larger.
    pub fn max_bytes(self) -> usize {
        match self {
            EvidenceKind::Photo => 16 * 1024 * 1024,
            EvidenceKind::Document => 40 * 1024 * 1024,
        }
    }
}

/// The most bytes any upload may have (the request body limit of the upload route).
pub const MAX_UPLOAD_BYTES: usize = 40 * 1024 * 1024 + 64 * 1024;

/// The most pixels an image may have (a 200-megapixel phone sensor is 16,320 × 12,240):
/// checked from the header before decoding, so that a small file claiming a huge image
/// (a decompression bomb) is refused before it costs memory.
pub const MAX_PIXELS: u64 = 200_000_000;

/// The longest side an image may have.
pub const MAX_SIDE: u32 = 20_000;

/// The most memory reading one image may take (its pixels once decoded, and a
/// progressive JPEG's coefficients besides), told from its header before anything is
/// decoded: a 48-megapixel phone photo (8,064 × 6,048, a standard JPEG) takes about
/// 146 MB, a 12-megapixel one about 37 MB. An image that would take more is refused.
pub const MAX_DECODE_BYTES: u64 = 160 * 1024 * 1024;

/// What reading an image will cost in memory, told from its header alone: the
/// decoded pixels (the decoder's output: three or four bytes a pixel for a JPEG; a
/// PNG's channels × bytes per channel), plus, for a progressive JPEG or one whose
/// first scan does not hold every component, its coefficients (two bytes a sample
/// per component, kept for the whole image), each side rounded up to whole blocks.
/// `None` for a header that does not say.
pub fn decode_cost(media_type: MediaType, bytes: &[u8]) -> Option<u64> {
    match media_type {
        MediaType::Jpeg => jpeg_cost(bytes),
        MediaType::Png => png_cost(bytes),
        MediaType::Pdf => Some(0),
    }
}

/// The JPEG marker at `i` (after any fill bytes): the marker, where it starts and
/// where its segment ends (a marker without a length ends after its two bytes). `None`
/// where no marker stands or its segment runs past the end.
fn jpeg_marker(b: &[u8], mut i: usize) -> Option<(u8, usize, usize)> {
    while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
        i += 1;
    }
    if *b.get(i)? != 0xFF {
        return None;
    }
    let marker = *b.get(i + 1)?;
    if matches!(marker, 0x01 | 0xD0..=0xD9) {
        return Some((marker, i, i + 2));
    }
    let len = usize::from(u16::from_be_bytes([*b.get(i + 2)?, *b.get(i + 3)?]));
    if len < 2 {
        return None;
    }
    let end = i + 2 + len;
    b.get(i..end)?;
    Some((marker, i, end))
}

fn jpeg_cost(b: &[u8]) -> Option<u64> {
    let mut i = 2;
    let mut frame: Option<(u64, u64, u64, bool)> = None;
    loop {
        let (marker, start, end) = jpeg_marker(b, i)?;
        let segment = &b[(start + 4).min(end)..end];
        match marker {
            // The image ended before its first scan.
            0xD9 => return None,
            0xC0..=0xCF if ![0xC4, 0xC8, 0xCC].contains(&marker) => {
                let h = u64::from(u16::from_be_bytes([*segment.get(1)?, *segment.get(2)?]));
                let w = u64::from(u16::from_be_bytes([*segment.get(3)?, *segment.get(4)?]));
                let components = u64::from(*segment.get(5)?);
                let progressive = matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
                frame = Some((w, h, components, progressive));
            }
            0xDA => {
                let (w, h, components, progressive) = frame?;
                let in_first_scan = u64::from(*segment.first()?);
                let (w, h) = (w.div_ceil(16) * 16, h.div_ceil(16) * 16);
                let pixels = w * h * components.max(3);
                let coefficients = if progressive || in_first_scan < components {
                    w * h * components * 2
                } else {
                    0
                };
                return Some(pixels + coefficients);
            }
            _ => {}
        }
        i = end;
    }
}

fn png_cost(b: &[u8]) -> Option<u64> {
    if b.get(12..16)? != b"IHDR" {
        return None;
    }
    let w = u64::from(u32::from_be_bytes(b.get(16..20)?.try_into().ok()?));
    let h = u64::from(u32::from_be_bytes(b.get(20..24)?.try_into().ok()?));
    let depth = *b.get(24)?;
    let channels = match *b.get(25)? {
        0 => 1,
        2 => 3,
        // A palette is expanded to RGBA at most.
        3 => 4,
        4 => 2,
        _ => 4,
    };
    let per_channel = if depth == 16 { 2 } else { 1 };
    // The image, and a row or two of the decoder's own.
    Some(w * h * channels * per_channel + 2 * w * channels * per_channel)
}

/// How long a file name may be.
const MAX_NAME: usize = 200;

/// The media types evidence may have, told by the file's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Jpeg,
    Png,
    Pdf,
}

impl MediaType {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
            MediaType::Pdf => "application/pdf",
        }
    }

    pub fn parse(s: &str) -> Option<MediaType> {
        match s {
            "image/jpeg" => Some(MediaType::Jpeg),
            "image/png" => Some(MediaType::Png),
            "application/pdf" => Some(MediaType::Pdf),
            _ => None,
        }
    }

    pub fn is_image(self) -> bool {
        matches!(self, MediaType::Jpeg | MediaType::Png)
    }

    /// The type the bytes are, whatever the upload claimed.
    pub fn sniff(bytes: &[u8]) -> Option<MediaType> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(MediaType::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(MediaType::Png)
        } else if bytes.starts_with(b"%PDF-") {
            Some(MediaType::Pdf)
        } else {
            None
        }
    }
}

/// Whether the bytes are a HEIC/HEIF image (an iPhone's photo), which the page converts
/// to JPEG before sending.
fn is_heic(bytes: &[u8]) -> bool {
    bytes.len() > 12
        && &bytes[4..8] == b"ftyp"
        && [&b"heic"[..], b"heix", b"mif1", b"msf1", b"heim", b"hevc"].contains(&&bytes[8..12])
}

/// An upload found acceptable: its type from its bytes, its dimensions for images.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedUpload {
    pub media_type: MediaType,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub file_name: String,
}

/// Checks an upload before it is stored or decoded: its kind, the type its bytes are
/// (which must be the type it claims, when it claims one), its size, and for images
/// the dimensions its header declares. Every refusal names the field at fault.
pub fn check_upload(
    kind: EvidenceKind,
    claimed: Option<&str>,
    file_name: &str,
    bytes: &[u8],
) -> Result<CheckedUpload> {
    // A browser may send a whole path (`C:\\fakepath\\a.jpg`): the name is its last part.
    let file_name: String = file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !crate::text::is_forbidden(*c))
        .collect::<String>()
        .trim()
        .to_string();
    if file_name.chars().count() > MAX_NAME {
        return Err(Error::invalid(
            "file",
            format!("the file name may have at most {MAX_NAME} characters"),
        ));
    }
    if bytes.is_empty() {
        return Err(Error::invalid("file", "the file is empty"));
    }
    if bytes.len() > kind.max_bytes() {
        return Err(Error::invalid(
            "file",
            format!(
                "a {} may have at most {} MB; this file has {:.1} MB",
                kind.as_str(),
                kind.max_bytes() / (1024 * 1024),
                bytes.len() as f64 / (1024.0 * 1024.0)
            ),
        ));
    }
    let Some(media_type) = MediaType::sniff(bytes) else {
        if is_heic(bytes) {
            return Err(Error::invalid(
                "file",
                "HEIC photos are taken as JPEG: convert the photo (the page does it) \
                 and send it again",
            ));
        }
        let what = match claimed {
            Some(c) if !c.is_empty() => format!("the file claims to be {c} but is not"),
            _ => "the file is not a JPEG, PNG or PDF".to_string(),
        };
        return Err(Error::invalid("file", what));
    };
    if let Some(claimed) = claimed.map(str::trim).filter(|c| {
        !c.is_empty() && *c != "application/octet-stream" && !c.starts_with("multipart/")
    }) {
        let claimed_base = claimed.split(';').next().unwrap_or_default().trim();
        let agrees = MediaType::parse(&claimed_base.to_ascii_lowercase())
            .or(match claimed_base.to_ascii_lowercase().as_str() {
                "image/jpg" | "image/pjpeg" => Some(MediaType::Jpeg),
                _ => None,
            })
            .is_some_and(|m| m == media_type);
        if !agrees {
            return Err(Error::invalid(
                "file",
                format!(
                    "the file claims to be {claimed_base} but is {}",
                    media_type.as_str()
                ),
            ));
        }
    }
    if kind == EvidenceKind::Photo && !media_type.is_image() {
        return Err(Error::invalid(
            "kind",
            "a photo must be a JPEG or PNG image; send a PDF as a document",
        ));
    }
    let (width, height) = if media_type.is_image() {
        let size = imagesize::blob_size(bytes).map_err(|_| {
            Error::invalid(
                "file",
                format!("the {} image's header cannot be read", media_type.as_str()),
            )
        })?;
        let (w, h) = (size.width as u64, size.height as u64);
        if w == 0 || h == 0 {
            return Err(Error::invalid("file", "the image has no pixels"));
        }
        if w > MAX_SIDE as u64 || h > MAX_SIDE as u64 || w * h > MAX_PIXELS {
            return Err(Error::invalid(
                "file",
                format!(
                    "the image declares {w} × {h} pixels; at most {} megapixels and \
                     {MAX_SIDE} pixels a side are taken",
                    MAX_PIXELS / 1_000_000
                ),
            ));
        }
        let cost = decode_cost(media_type, bytes).ok_or_else(|| {
            Error::invalid(
                "file",
                format!("the {} image's header cannot be read", media_type.as_str()),
            )
        })?;
        if cost > MAX_DECODE_BYTES {
            return Err(Error::invalid(
                "file",
                format!(
                    "reading this image ({w} × {h} pixels) would take {} MB, more than the {} MB                      one upload may: send a smaller photo, or save it as a standard (not                      progressive) JPEG",
                    cost.div_ceil(1024 * 1024),
                    MAX_DECODE_BYTES / (1024 * 1024)
                ),
            ));
        }
        (Some(w as u32), Some(h as u32))
    } else {
        (None, None)
    };
    Ok(CheckedUpload {
        media_type,
        width,
        height,
        file_name: if file_name.is_empty() {
            format!("{}.{}", kind.as_str(), extension(media_type))
        } else {
            file_name
        },
    })
}

fn extension(m: MediaType) -> &'static str {
    match m {
        MediaType::Jpeg => "jpg",
        MediaType::Png => "png",
        MediaType::Pdf => "pdf",
    }
}

/// The prefix of every evidence id.
const ID_PREFIX: &str = "ev_";

/// A new evidence id: 128 random bits. Each upload gets its own, even of a file stored
/// before, so that nobody learns whether someone else uploaded the same file.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system provides randomness");
    format!("{ID_PREFIX}{}", hex::encode(bytes))
}

/// What a reference that is not an evidence id is told.
pub const NOT_AN_ID: &str = "must be the id of an uploaded file (ev_…, from POST /api/v1/evidence)";

/// Whether a reference is an evidence id (as opposed to a string stored before uploads
/// existed, such as `photo:sha256:9f2c`).
pub fn is_id(s: &str) -> bool {
    s.strip_prefix(ID_PREFIX).is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Every evidence reference in an event's data: the `evidence` lists at any depth.
pub fn evidence_refs(data: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    collect(data, &mut out);
    out
}

fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("evidence", serde_json::Value::Array(items)) => {
                        for s in items.iter().filter_map(serde_json::Value::as_str) {
                            if !out.iter().any(|o| o == s) {
                                out.push(s.to_string());
                            }
                        }
                    }
                    _ => collect(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
        _ => {}
    }
}

/// When a photo says it was taken: the camera's local time, and its offset when the
/// camera wrote one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakenAt {
    pub local: NaiveDateTime,
    pub offset: Option<FixedOffset>,
}

impl TakenAt {
    /// The instant, reading a time without an offset as China time.
    pub fn instant(self) -> DateTime<Utc> {
        let zone = self.offset.unwrap_or_else(crate::time::china_time);
        zone.from_local_datetime(&self.local)
            .single()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| self.local.and_utc())
    }

    /// As stored: `2026-11-30T10:15:00+08:00`, or without an offset when the camera
    /// wrote none.
    pub fn stored(self) -> String {
        match self.offset {
            Some(o) => o
                .from_local_datetime(&self.local)
                .single()
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| self.local.format("%Y-%m-%dT%H:%M:%S").to_string()),
            None => self.local.format("%Y-%m-%dT%H:%M:%S").to_string(),
        }
    }

    pub fn parse_stored(s: &str) -> Option<TakenAt> {
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Some(TakenAt {
                local: t.naive_local(),
                offset: Some(*t.offset()),
            });
        }
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
            .ok()
            .map(|local| TakenAt {
                local,
                offset: None,
            })
    }
}

/// What a photo's EXIF says of where and when it was taken (each `None` when the
/// camera wrote nothing, or nothing readable).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PhotoFacts {
    pub point: Option<Point>,
    pub taken: Option<TakenAt>,
}

/// Reads a photo's EXIF position and time. A photo without EXIF, or with EXIF that
/// does not parse, has no facts: never an error.
pub fn photo_facts(bytes: &[u8]) -> PhotoFacts {
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) else {
        return PhotoFacts::default();
    };
    let field = |tag| exif.get_field(tag, exif::In::PRIMARY).map(|f| &f.value);
    let ascii = |tag| match field(tag) {
        Some(exif::Value::Ascii(v)) => v.first().cloned(),
        _ => None,
    };
    let degrees = |tag| match field(tag) {
        Some(exif::Value::Rational(v)) if v.len() == 3 && v.iter().all(|r| r.denom != 0) => {
            Some(v[0].to_f64() + v[1].to_f64() / 60.0 + v[2].to_f64() / 3600.0)
        }
        _ => None,
    };
    let point = (|| {
        let mut lat = degrees(exif::Tag::GPSLatitude)?;
        let mut lon = degrees(exif::Tag::GPSLongitude)?;
        if ascii(exif::Tag::GPSLatitudeRef)?.first() == Some(&b'S') {
            lat = -lat;
        }
        if ascii(exif::Tag::GPSLongitudeRef)?.first() == Some(&b'W') {
            lon = -lon;
        }
        Point::parse(lon, lat, "exif").ok()
    })();
    let taken = (|| {
        let raw = ascii(exif::Tag::DateTimeOriginal).or_else(|| ascii(exif::Tag::DateTime))?;
        let mut dt = exif::DateTime::from_ascii(&raw).ok()?;
        if let Some(off) = ascii(exif::Tag::OffsetTimeOriginal) {
            let _ = dt.parse_offset(&off);
        }
        let local = NaiveDate::from_ymd_opt(dt.year.into(), dt.month.into(), dt.day.into())?
            .and_hms_opt(dt.hour.into(), dt.minute.into(), dt.second.into())?;
        let offset = dt
            .offset
            .and_then(|m| FixedOffset::east_opt(i32::from(m) * 60));
        Some(TakenAt { local, offset })
    })();
    PhotoFacts { point, taken }
}

/// The image without any metadata block, for those who may see a photo but not where
/// it was taken or by what: only what draws the picture is kept (allowlisted), so that
/// a block no one thought of cannot carry a position through. A JPEG keeps its frame,
/// tables and scans (and the JFIF, Adobe and ICC colour segments), up to its first end
/// of image, dropping EXIF and XMP (APP1), IPTC (APP13), comments, every other
/// application segment and anything after the image (a second image, a motion clip). A
/// PNG keeps its critical and colour chunks up to IEND, dropping text (tEXt, zTXt,
/// iTXt: XMP, raw EXIF profiles), eXIf, tIME and every unknown chunk. `None` when the
/// file does not parse as that: it is then not served as it is (fail closed). A PDF is
/// served as it is.
pub fn without_metadata(media_type: MediaType, bytes: &[u8]) -> Option<Vec<u8>> {
    match media_type {
        MediaType::Jpeg => jpeg_without_metadata(bytes),
        MediaType::Png => png_without_metadata(bytes),
        MediaType::Pdf => Some(bytes.to_vec()),
    }
}

fn jpeg_without_metadata(b: &[u8]) -> Option<Vec<u8>> {
    if b.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..2]);
    let mut i = 2;
    loop {
        let (marker, start, end) = jpeg_marker(b, i)?;
        let segment = &b[start..end];
        let payload = &b[(start + 4).min(end)..end];
        let keep = match marker {
            // The end of the (first) image: nothing after it is kept.
            0xD9 => {
                out.extend_from_slice(segment);
                return Some(out);
            }
            // Frames, tables, restart interval, scans, and markers without a length.
            0xC0..=0xCF | 0xDB | 0xDD | 0xDA | 0x01 | 0xD0..=0xD7 => true,
            // JFIF (APP0), Adobe's colour transform (APP14), an ICC profile (APP2).
            0xE0 => payload.starts_with(b"JFIF\0") || payload.starts_with(b"JFXX\0"),
            0xEE => payload.starts_with(b"Adobe"),
            0xE2 => payload.starts_with(b"ICC_PROFILE\0"),
            // Every other application segment (EXIF, XMP, IPTC, MPF, …), comments and
            // anything unknown.
            _ => false,
        };
        if keep {
            out.extend_from_slice(segment);
        }
        i = end;
        if marker == 0xDA {
            // The scan's entropy-coded data runs to the next marker that is neither a
            // stuffed byte (FF 00) nor a restart (FF D0–D7).
            let start = i;
            let mut j = i;
            loop {
                let at = j + b.get(j..)?.iter().position(|x| *x == 0xFF)?;
                match *b.get(at + 1)? {
                    0x00 | 0xD0..=0xD7 => j = at + 2,
                    0xFF => j = at + 1,
                    _ => {
                        out.extend_from_slice(&b[start..at]);
                        i = at;
                        break;
                    }
                }
            }
        }
    }
}

fn png_without_metadata(b: &[u8]) -> Option<Vec<u8>> {
    if b.get(..8)? != b"\x89PNG\r\n\x1a\n" {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..8]);
    let mut i = 8;
    loop {
        let len = u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?) as usize;
        let end = i.checked_add(12)?.checked_add(len)?;
        let chunk = b.get(i..end)?;
        let kind = &chunk[4..8];
        let keep = matches!(
            kind,
            b"IHDR"
                | b"PLTE"
                | b"IDAT"
                | b"IEND"
                | b"tRNS"
                | b"gAMA"
                | b"cHRM"
                | b"sRGB"
                | b"iCCP"
                | b"sBIT"
                | b"pHYs"
                | b"bKGD"
                | b"cICP"
                | b"acTL"
                | b"fcTL"
                | b"fdAT"
        );
        if keep {
            out.extend_from_slice(chunk);
        }
        if kind == b"IEND" {
            return Some(out);
        }
        i = end;
    }
}

/// Whether a photo of an inspection was taken where and when the inspection was.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PhotoCheck {
    /// Within the distance of the unit and on the inspection's day.
    OnSite,
    /// Taken farther than the distance from the unit (metres), or on another day (China
    /// time): flagged on the case as an off-site inspection is.
    OffSite {
        distance_m: Option<f64>,
        other_day: bool,
    },
    /// The photo carries no position and no time: neither on nor off site.
    Unknown,
}

impl PhotoCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            PhotoCheck::OnSite => "on_site",
            PhotoCheck::OffSite { .. } => "off_site",
            PhotoCheck::Unknown => "unknown",
        }
    }
}

/// Judges a photo against the unit it documents and the day (China time) of the
/// inspection: farther than `max_m` metres, or taken on another day, is off site; a
/// photo that says nothing is unknown; one that says only one of the two is judged by
/// that one.
pub fn check_photo(facts: PhotoFacts, unit: Point, day: NaiveDate, max_m: f64) -> PhotoCheck {
    if facts.point.is_none() && facts.taken.is_none() {
        return PhotoCheck::Unknown;
    }
    let distance_m = facts.point.map(|p| p.distance_m(unit));
    let far = distance_m.is_some_and(|d| d > max_m);
    let other_day = facts.taken.is_some_and(|t| {
        t.instant()
            .with_timezone(&crate::time::china_time())
            .date_naive()
            != day
    });
    if far || other_day {
        PhotoCheck::OffSite {
            distance_m: distance_m.filter(|_| far),
            other_day,
        }
    } else {
        PhotoCheck::OnSite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_header() -> Vec<u8> {
        jpeg_frame(0xC0, 4000, 3000, 3)
    }

    /// SOI, a frame (`sof`: 0xC0 baseline, 0xC2 progressive) of `w` × `h`, and a scan
    /// holding `in_scan` of its three components: enough for the header readers.
    fn jpeg_frame(sof: u8, w: u16, h: u16, in_scan: u8) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, sof, 0x00, 0x11, 0x08];
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        let len = 6 + 2 * u16::from(in_scan);
        b.extend_from_slice(&[0xFF, 0xDA]);
        b.extend_from_slice(&len.to_be_bytes());
        b.push(in_scan);
        for c in 1..=in_scan {
            b.extend_from_slice(&[c, 0x00]);
        }
        b.extend_from_slice(&[0x00, 0x3F, 0x00]);
        b.extend_from_slice(&[0xFF, 0xD9]);
        b
    }

    /// Issue 22, 12: what those who may not see where a photo was taken are served has
    /// no metadata block at all: EXIF, XMP, IPTC, comments, other application segments
    /// and a second image after the first are dropped; what draws the picture stays; a
    /// file that does not parse is not served as it is.
    #[test]
    fn every_metadata_block_is_stripped() {
        let seg = |marker: u8, payload: &[u8]| {
            let mut v = vec![0xFF, marker];
            v.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
            v.extend_from_slice(payload);
            v
        };
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(seg(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
        jpeg.extend(seg(0xE1, b"Exif\0\0GPSLatitude-exif"));
        jpeg.extend(seg(
            0xE1,
            b"http://ns.adobe.com/xap/1.0/\0<exif:GPSLatitude>23,8.1N</exif:GPSLatitude>",
        ));
        jpeg.extend(seg(0xED, b"Photoshop 3.0\08BIM GPS-iptc"));
        jpeg.extend(seg(0xFE, b"GPS in a comment"));
        jpeg.extend(seg(0xE2, b"MPF\0GPS"));
        jpeg.extend(seg(0xDB, &[0; 65]));
        jpeg.extend(seg(0xC0, &[8, 0, 16, 0, 16, 1, 1, 0x11, 0]));
        jpeg.extend(seg(0xDD, &[0, 4]));
        jpeg.extend(seg(0xDA, &[1, 1, 0, 0, 63, 0]));
        // Entropy-coded data with a stuffed byte and a restart marker.
        let data = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56];
        jpeg.extend_from_slice(&data);
        jpeg.extend_from_slice(&[0xFF, 0xD9]);
        // A second image after the first (a phone's MPF or gain map) with its own EXIF.
        jpeg.extend_from_slice(&[0xFF, 0xD8]);
        jpeg.extend(seg(0xE1, b"Exif\0\0GPS-second"));
        jpeg.extend_from_slice(&[0xFF, 0xD9]);
        let clean = without_metadata(MediaType::Jpeg, &jpeg).unwrap();
        let text = String::from_utf8_lossy(&clean);
        assert!(
            !text.contains("GPS") && !text.contains("Exif") && !text.contains("xap"),
            "{text}"
        );
        assert!(clean.starts_with(&[0xFF, 0xD8, 0xFF, 0xE0]));
        assert!(
            clean.windows(data.len()).any(|w| w == data),
            "the scan stays whole"
        );
        assert!(clean.ends_with(&[0x56, 0xFF, 0xD9]));
        assert!(
            clean.windows(2).any(|w| w == [0xFF, 0xC0])
                && clean.windows(2).any(|w| w == [0xFF, 0xDB])
        );

        let chunk = |kind: &[u8], data: &[u8]| {
            let mut v = (data.len() as u32).to_be_bytes().to_vec();
            v.extend_from_slice(kind);
            v.extend_from_slice(data);
            v.extend_from_slice(&[0, 0, 0, 0]);
            v
        };
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]));
        png.extend(chunk(
            b"iTXt",
            b"XML:com.adobe.xmp\0\0\0\0\0<exif:GPSLatitude>",
        ));
        png.extend(chunk(b"tEXt", b"Comment\0GPS"));
        png.extend(chunk(b"zTXt", b"Raw profile type exif\0\0GPS"));
        png.extend(chunk(b"eXIf", b"MM\0*GPS"));
        png.extend(chunk(b"tIME", &[7, 234, 12, 7, 0, 0, 0]));
        png.extend(chunk(b"IDAT", &[1, 2, 3]));
        png.extend(chunk(b"IEND", &[]));
        png.extend_from_slice(b"trailing GPS");
        let clean = without_metadata(MediaType::Png, &png).unwrap();
        let text = String::from_utf8_lossy(&clean);
        assert!(
            !text.contains("GPS") && !text.contains("tIME") && !text.contains("trailing"),
            "{text}"
        );
        assert!(
            text.contains("IHDR")
                && text.contains("IDAT")
                && clean.ends_with(&[b'I', b'E', b'N', b'D', 0, 0, 0, 0])
        );
        // A file that does not parse is not passed through.
        assert_eq!(without_metadata(MediaType::Jpeg, &jpeg[..40]), None);
        assert_eq!(without_metadata(MediaType::Png, &png[..30]), None);
    }

    /// Issue 22, 8: what an image costs to read is told from its header, and one that
    /// would take more than one upload may is refused before anything is decoded: a
    /// 48-megapixel standard JPEG is taken; the same as a progressive JPEG, one whose
    /// first scan holds one component, a 200-megapixel one, and a 16-bit PNG of 25
    /// megapixels are not.
    #[test]
    fn images_are_refused_by_what_reading_them_would_cost() {
        let take = |b: &[u8]| check_upload(EvidenceKind::Photo, None, "x", b);
        assert!(take(&jpeg_frame(0xC0, 8064, 6048, 3)).is_ok());
        for bomb in [
            jpeg_frame(0xC2, 8064, 6048, 3),
            jpeg_frame(0xC0, 8064, 6048, 1),
            jpeg_frame(0xC0, 14142, 14142, 3),
        ] {
            let e = take(&bomb).unwrap_err().to_string();
            assert!(e.contains("would take") && e.contains("160 MB"), "{e}");
        }
        assert_eq!(
            decode_cost(MediaType::Jpeg, &jpeg_frame(0xC0, 4032, 3024, 3)),
            Some(4032 * 3024 * 3)
        );
        let mut deep = png_header(5000, 5000);
        deep[24] = 16;
        deep[25] = 6;
        assert!(take(&deep).unwrap_err().to_string().contains("would take"));
        assert!(take(&png_header(5000, 5000)).is_ok());
        // A header that does not say is not guessed at.
        assert!(take(&[0xFF, 0xD8, 0xFF, 0xD9]).is_err());
    }

    fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        b
    }

    #[test]
    fn types_are_told_by_their_bytes() {
        let ok = check_upload(
            EvidenceKind::Photo,
            Some("image/jpeg"),
            "a.jpg",
            &jpeg_header(),
        )
        .unwrap();
        assert_eq!(ok.media_type, MediaType::Jpeg);
        assert_eq!((ok.width, ok.height), (Some(4000), Some(3000)));
        let fake = check_upload(
            EvidenceKind::Photo,
            Some("image/jpeg"),
            "a.jpg",
            b"GIF89a....",
        );
        assert!(
            fake.unwrap_err()
                .to_string()
                .contains("claims to be image/jpeg")
        );
        let liar = check_upload(
            EvidenceKind::Photo,
            Some("image/png"),
            "a.png",
            &jpeg_header(),
        );
        assert!(liar.unwrap_err().to_string().contains("but is image/jpeg"));
        let pdf_photo = check_upload(EvidenceKind::Photo, None, "a.pdf", b"%PDF-1.7\n");
        assert!(
            pdf_photo
                .unwrap_err()
                .to_string()
                .starts_with("invalid request: kind")
        );
        assert!(check_upload(EvidenceKind::Document, None, "d.pdf", b"%PDF-1.7\n").is_ok());
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
        assert!(
            check_upload(EvidenceKind::Photo, None, "x.heic", heic)
                .unwrap_err()
                .to_string()
                .contains("HEIC")
        );
    }

    #[test]
    fn sizes_and_bombs_are_refused_before_decoding() {
        let bomb = png_header(100_000, 100_000);
        let e = check_upload(EvidenceKind::Photo, Some("image/png"), "b.png", &bomb)
            .unwrap_err()
            .to_string();
        assert!(e.contains("100000 × 100000"), "{e}");
        assert!(check_upload(EvidenceKind::Photo, None, "p.png", &png_header(4000, 3000)).is_ok());
        let mut big = jpeg_header();
        big.resize(EvidenceKind::Photo.max_bytes() + 1, 0);
        let e = check_upload(EvidenceKind::Photo, None, "big.jpg", &big)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 16 MB"), "{e}");
        assert!(check_upload(EvidenceKind::Photo, None, "e.jpg", b"").is_err());
    }

    #[test]
    fn ids_are_random_and_recognised() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(is_id(&a) && is_id(&b));
        assert!(!is_id("photo:sha256:9f2c"));
        assert!(!is_id("ev_XYZ"));
    }

    #[test]
    fn photos_are_judged_by_place_and_day() {
        let unit = Point::parse(113.3245, 23.1291, "p").unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let at = |h, offset: Option<i32>| TakenAt {
            local: day.and_hms_opt(h, 0, 0).unwrap(),
            offset: offset.map(|s| FixedOffset::east_opt(s).unwrap()),
        };
        let near = Point::parse(113.3250, 23.1292, "p").unwrap();
        let far = Point::parse(113.3345, 23.1291, "p").unwrap();
        let check = |point, taken| check_photo(PhotoFacts { point, taken }, unit, day, 100.0);
        assert_eq!(check(None, None), PhotoCheck::Unknown);
        assert_eq!(check(Some(near), Some(at(10, None))), PhotoCheck::OnSite);
        assert!(matches!(
            check(Some(far), Some(at(10, None))),
            PhotoCheck::OffSite { distance_m: Some(d), other_day: false } if d > 1000.0
        ));
        // 20:00 UTC on the 30th is 04:00 on 1 December in China: another day.
        assert!(matches!(
            check(Some(near), Some(at(20, Some(0)))),
            PhotoCheck::OffSite {
                distance_m: None,
                other_day: true
            }
        ));
        // Without a zone, the time is read as China time: 23:00 is still the 30th.
        assert_eq!(check(None, Some(at(23, None))), PhotoCheck::OnSite);
        let stored = at(9, Some(8 * 3600)).stored();
        assert_eq!(stored, "2026-11-30T09:00:00+08:00");
        assert_eq!(TakenAt::parse_stored(&stored), Some(at(9, Some(8 * 3600))));
        assert_eq!(
            TakenAt::parse_stored("2026-11-30T09:00:00"),
            Some(at(9, None))
        );
    }
}
