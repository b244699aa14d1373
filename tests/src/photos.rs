//! Files for the evidence tests, made here rather than checked in: real JPEGs (with or without the EXIF position and time a phone's camera writes), a PNG that declares a huge image in a few bytes (a decompression bomb), a minimal PDF.

use std::io::Cursor;

use exif::experimental::Writer;
use exif::{Field, In, Rational, Tag, Value};

/// Where and when a camera says a photo was taken.
#[derive(Debug, Clone, Copy)]
pub struct Exif<'a> {
    pub lon: f64,
    pub lat: f64,
    /// `YYYY:MM:DD HH:MM:SS`, the camera's local time.
    pub taken: &'a str,
    /// `+08:00`, when the camera writes its offset.
    pub offset: Option<&'a str>,
}

/// A real JPEG of `w` × `h` pixels (its colours from `seed`, so that different seeds
/// are different files), with the EXIF block when given.
pub fn jpeg(w: u32, h: u32, seed: u8, exif: Option<Exif<'_>>) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x as u8).wrapping_add(seed),
            (y as u8).wrapping_mul(3),
            seed,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .expect("encode a JPEG");
    match exif {
        Some(e) => with_exif(out, e),
        None => out,
    }
}

/// A photo taken at a point at a time (China time, offset written).
pub fn photo_at(lon: f64, lat: f64, taken: &str, seed: u8) -> Vec<u8> {
    jpeg(
        64,
        48,
        seed,
        Some(Exif {
            lon,
            lat,
            taken,
            offset: Some("+08:00"),
        }),
    )
}

fn dms(v: f64) -> Vec<Rational> {
    let v = v.abs();
    let d = v.trunc();
    let m = ((v - d) * 60.0).trunc();
    let s = ((v - d) * 60.0 - m) * 60.0;
    vec![
        Rational::from((d as u32, 1)),
        Rational::from((m as u32, 1)),
        Rational::from(((s * 10_000.0).round() as u32, 10_000)),
    ]
}

/// Puts an APP1 EXIF segment right after the JPEG's start-of-image marker.
fn with_exif(jpeg: Vec<u8>, e: Exif<'_>) -> Vec<u8> {
    let ascii = |s: &str| Value::Ascii(vec![s.as_bytes().to_vec()]);
    let mut fields = vec![
        Field {
            tag: Tag::GPSLatitudeRef,
            ifd_num: In::PRIMARY,
            value: ascii(if e.lat < 0.0 { "S" } else { "N" }),
        },
        Field {
            tag: Tag::GPSLatitude,
            ifd_num: In::PRIMARY,
            value: Value::Rational(dms(e.lat)),
        },
        Field {
            tag: Tag::GPSLongitudeRef,
            ifd_num: In::PRIMARY,
            value: ascii(if e.lon < 0.0 { "W" } else { "E" }),
        },
        Field {
            tag: Tag::GPSLongitude,
            ifd_num: In::PRIMARY,
            value: Value::Rational(dms(e.lon)),
        },
        Field {
            tag: Tag::DateTimeOriginal,
            ifd_num: In::PRIMARY,
            value: ascii(e.taken),
        },
    ];
    if let Some(o) = e.offset {
        fields.push(Field {
            tag: Tag::OffsetTimeOriginal,
            ifd_num: In::PRIMARY,
            value: ascii(o),
        });
    }
    let mut writer = Writer::new();
    for f in &fields {
        writer.push_field(f);
    }
    let mut tiff = Cursor::new(Vec::new());
    writer.write(&mut tiff, false).expect("write EXIF");
    let tiff = tiff.into_inner();
    let mut out = Vec::with_capacity(jpeg.len() + tiff.len() + 10);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A PNG of a few hundred bytes whose header declares 60,000 × 60,000 pixels.
pub fn png_bomb() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    b.extend_from_slice(&60_000u32.to_be_bytes());
    b.extend_from_slice(&60_000u32.to_be_bytes());
    b.extend_from_slice(&[8, 2, 0, 0, 0]);
    b.extend_from_slice(&[0u8; 4]);
    b.extend_from_slice(&[0u8; 256]);
    b
}

/// A small PDF (a penalty decision's scan stands in).
pub fn pdf(text: &str) -> Vec<u8> {
    format!(
        "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% {text}\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )
    .into_bytes()
}
