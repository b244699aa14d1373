//! Files for the evidence tests, made here rather than checked in: real JPEGs (with or without the EXIF position and time a phone's camera writes), photos carrying their position in every other metadata block (XMP, IPTC, comments, PNG text), images whose header declares far more pixels than their bytes hold (decompression bombs, JPEG and PNG), a minimal PDF.

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

/// A real JPEG whose frame header declares `w` × `h` pixels (its data is a tiny image's):
/// a decoder that trusts the header allocates for the declared size.
pub fn jpeg_declaring(w: u16, h: u16) -> Vec<u8> {
    let mut b = jpeg(16, 16, 7, None);
    let at = b
        .windows(2)
        .position(|m| m == [0xFF, 0xC0])
        .expect("a baseline frame");
    b[at + 5..at + 7].copy_from_slice(&h.to_be_bytes());
    b[at + 7..at + 9].copy_from_slice(&w.to_be_bytes());
    b
}

/// A valid PNG of `w` × `h` black RGB pixels, compressed (a few hundred KB for tens of
/// megapixels), written row by row so that making it costs no memory.
pub fn png_of_zeros(w: u32, h: u32) -> Vec<u8> {
    use std::io::Write as _;
    let chunk = |out: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    };
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let row = vec![0u8; 1 + 3 * w as usize];
    for _ in 0..h {
        z.write_all(&row).unwrap();
    }
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A real JPEG that carries its position in every block but EXIF: an XMP packet
/// (APP1), IPTC (APP13) and a comment, and a second image after its end.
pub fn jpeg_with_xmp_gps() -> Vec<u8> {
    let base = jpeg(64, 48, 9, None);
    let seg = |marker: u8, payload: &[u8]| {
        let mut v = vec![0xFF, marker];
        v.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        v.extend_from_slice(payload);
        v
    };
    let mut out = base[..2].to_vec();
    out.extend(seg(
        0xE1,
        b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><rdf:Description exif:GPSLatitude=\"23,8.4N\" exif:GPSLongitude=\"113,19.5E\"/></x:xmpmeta>",
    ));
    out.extend(seg(0xED, b"Photoshop 3.0\08BIM\x04\x04GPSLatitude 23.14"));
    out.extend(seg(0xFE, b"GPSLatitude 23.14 in a comment"));
    out.extend_from_slice(&base[2..]);
    out.extend_from_slice(&jpeg(
        8,
        8,
        1,
        Some(Exif {
            lon: 113.3,
            lat: 23.1,
            taken: "2026:03:02 09:00:00",
            offset: None,
        }),
    ));
    out
}

/// A real PNG that carries its position in an XMP packet (iTXt), a text chunk and raw
/// EXIF (eXIf).
pub fn png_with_xmp_gps() -> Vec<u8> {
    let img = image::RgbImage::from_fn(32, 24, |x, y| image::Rgb([x as u8, y as u8, 9]));
    let mut plain = Vec::new();
    img.write_to(&mut Cursor::new(&mut plain), image::ImageFormat::Png)
        .unwrap();
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut v = (data.len() as u32).to_be_bytes().to_vec();
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        v.extend_from_slice(kind);
        v.extend_from_slice(data);
        v.extend_from_slice(&crc.sum().to_be_bytes());
        v
    };
    // After IHDR (8 bytes of signature, 25 of IHDR).
    let mut out = plain[..33].to_vec();
    out.extend(chunk(
        b"iTXt",
        b"XML:com.adobe.xmp\0\0\0\0\0<rdf:Description exif:GPSLatitude=\"23,8.4N\"/>",
    ));
    out.extend(chunk(b"tEXt", b"Comment\0GPSLatitude 23.14"));
    out.extend(chunk(b"eXIf", b"MM\0*\0\0\0\x08GPSLatitude"));
    out.extend_from_slice(&plain[33..]);
    out
}
