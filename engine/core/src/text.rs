//! Text hygiene shared by every way in (HTTP bodies, query strings, paths, imports): which characters a stored string may hold, required and optional text, phone numbers, e-mail addresses and calendar days.

use chrono::{Datelike, NaiveDate};
use serde_json::Value;

use crate::error::FieldError;

/// Whether `c` may not appear in any text Anju takes: the C0 control characters
/// (U+0000–U+001F) except tab, line feed and carriage return, and DEL (U+007F).
/// PostgreSQL cannot store U+0000 in text at all; the others are refused alike so that
/// both backends keep the same data.
pub fn is_forbidden(c: char) -> bool {
    (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{7f}'
}

/// Refuses `s` if it holds a forbidden character, naming `field`.
pub fn check_chars(field: &str, s: &str) -> Result<(), FieldError> {
    match s.chars().find(|c| is_forbidden(*c)) {
        None => Ok(()),
        Some(c) => Err(FieldError::new(
            field,
            format!(
                "holds the control character U+{:04X}; text may not hold control characters other than tab and line breaks",
                c as u32
            ),
        )),
    }
}

/// The path (`findings[0].note`, `data.reason`) of the first string or object key in
/// `value` that holds a forbidden character, if any.
pub fn find_forbidden(value: &Value) -> Option<(String, char)> {
    fn walk(value: &Value, path: &mut String) -> Option<char> {
        match value {
            Value::String(s) => s.chars().find(|c| is_forbidden(*c)),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    if let Some(c) = walk(item, path) {
                        return Some(c);
                    }
                    path.truncate(len);
                }
                None
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    // A bad key is named by a printable form of itself.
                    if let Some(c) = key.chars().find(|c| is_forbidden(*c)) {
                        path.push_str(&key.escape_debug().to_string());
                        return Some(c);
                    }
                    path.push_str(key);
                    if let Some(c) = walk(item, path) {
                        return Some(c);
                    }
                    path.truncate(len);
                }
                None
            }
            _ => None,
        }
    }
    let mut path = String::new();
    walk(value, &mut path).map(|c| (path, c))
}

/// Whether JSON text may hold a forbidden character once parsed: raw DEL, or an escape
/// `\u0000`–`\u001f` (other than tab, line feed, carriage return) or `\u007f`. Raw
/// control characters are not valid inside JSON strings at all. A cheap scan that lets
/// most bodies skip the walk over the parsed value; it may answer yes for an escaped
/// backslash followed by such text, which the walk then clears.
pub fn json_may_hold_forbidden(bytes: &[u8]) -> bool {
    if bytes.contains(&0x7f) {
        return true;
    }
    bytes.windows(6).any(|w| {
        w[0] == b'\\' && w[1] == b'u' && w[2] == b'0' && w[3] == b'0' && {
            let hi = w[4];
            let lo = w[5].to_ascii_lowercase();
            match hi {
                b'0' => !matches!(lo, b'9' | b'a' | b'd'),
                b'1' => lo.is_ascii_hexdigit(),
                b'7' => lo == b'f',
                _ => false,
            }
        }
    })
}

/// Trimmed text of 1 to `max` characters.
pub fn required<'a>(field: &str, text: &'a str, max: usize) -> Result<&'a str, FieldError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(FieldError::new(field, "required"));
    }
    optional(field, text, max)
}

/// Trimmed text of at most `max` characters (possibly empty).
pub fn optional<'a>(field: &str, text: &'a str, max: usize) -> Result<&'a str, FieldError> {
    check_chars(field, text)?;
    let text = text.trim();
    if text.chars().count() > max {
        return Err(FieldError::new(field, format!("at most {max} characters")));
    }
    Ok(text)
}

/// A phone number: digits with optional `+`, spaces and `-`, holding 5 to 20 digits. A
/// blank number is refused (omit the field instead).
pub fn phone<'a>(field: &str, text: &'a str) -> Result<&'a str, FieldError> {
    let text = text.trim();
    let digits = text.chars().filter(char::is_ascii_digit).count();
    let shape_ok = text
        .chars()
        .all(|c| c.is_ascii_digit() || "+- ".contains(c))
        && !text[1.min(text.len())..].contains('+');
    if text.is_empty() || !shape_ok || !(5..=20).contains(&digits) || text.len() > 32 {
        return Err(FieldError::new(
            field,
            "a phone number of 5 to 20 digits (with +, - and spaces); omit the field if there is none",
        ));
    }
    Ok(text)
}

/// An e-mail address: one `@` with text on both sides and a dot in the domain, no
/// spaces, at most 200 characters. A blank address is refused.
pub fn email<'a>(field: &str, text: &'a str) -> Result<&'a str, FieldError> {
    let text = text.trim();
    let ok = text.len() <= 200
        && !text.chars().any(|c| c.is_whitespace() || is_forbidden(c))
        && text.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(text)
    } else {
        Err(FieldError::new(
            field,
            "an e-mail address such as name@example.cn; omit the field if there is none",
        ))
    }
}

/// The days Anju accepts in requests: years 2000 to 2099. Dates such as `0000-01-01`
/// or `9999-12-31` are typing errors, not plans.
pub const FIRST_YEAR: i32 = 2000;
pub const LAST_YEAR: i32 = 2099;

/// Refuses a day outside [`FIRST_YEAR`]..=[`LAST_YEAR`].
pub fn check_day(field: &str, day: NaiveDate) -> Result<NaiveDate, FieldError> {
    if (FIRST_YEAR..=LAST_YEAR).contains(&day.year()) {
        Ok(day)
    } else {
        Err(FieldError::new(
            field,
            format!("a date from {FIRST_YEAR}-01-01 to {LAST_YEAR}-12-31"),
        ))
    }
}

/// A calendar day as requests carry it (`YYYY-MM-DD`), in the accepted range; refused
/// with a message naming the range otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub NaiveDate);

impl<'de> serde::Deserialize<'de> for Day {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        parse_day("", &text)
            .map(Day)
            .map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// Parses `YYYY-MM-DD` and checks its range.
pub fn parse_day(field: &str, text: &str) -> Result<NaiveDate, FieldError> {
    let day = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        FieldError::new(
            field,
            format!("a date as YYYY-MM-DD from {FIRST_YEAR}-01-01 to {LAST_YEAR}-12-31"),
        )
    })?;
    check_day(field, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn control_characters_are_forbidden_but_tab_and_line_breaks_are_not() {
        for c in [
            '\0', '\u{1}', '\u{8}', '\u{b}', '\u{c}', '\u{1b}', '\u{1f}', '\u{7f}',
        ] {
            assert!(is_forbidden(c), "{c:?}");
        }
        for c in ['\t', '\n', '\r', ' ', 'a', '安', '\u{80}', '\u{a0}'] {
            assert!(!is_forbidden(c), "{c:?}");
        }
    }

    #[test]
    fn the_path_of_the_bad_string_or_key_is_named() {
        let cases = [
            (json!({"reason": "a\u{0}b"}), Some("reason")),
            (
                json!({"data": {"evidence": ["ok", "x\u{7f}"]}}),
                Some("data.evidence[1]"),
            ),
            (
                json!({"findings": [{"note": "ok"}, {"note": "\u{1b}[31m"}]}),
                Some("findings[1].note"),
            ),
            (json!({"data": {"a\u{0}": 1}}), Some("data.a\\0")),
            (json!({"note": "line\nbreak\ttab\r"}), None),
            (json!([1, "x", {"y": null}]), None),
        ];
        for (value, path) in cases {
            assert_eq!(
                find_forbidden(&value).map(|(p, _)| p).as_deref(),
                path,
                "{value}"
            );
        }
    }

    #[test]
    fn the_byte_scan_finds_every_escape_the_walk_would() {
        for text in [
            r#"{"a":"\u0000"}"#,
            r#"{"a":"\u001F"}"#,
            r#"{"a":"\u001b"}"#,
            r#"{"a":"\u007f"}"#,
            r#"{"a":"\u000B"}"#,
            "{\"a\":\"\u{7f}\"}",
        ] {
            assert!(json_may_hold_forbidden(text.as_bytes()), "{text}");
            let v: Value = serde_json::from_str(text).unwrap();
            assert!(find_forbidden(&v).is_some(), "{text}");
        }
        for text in [
            r#"{"a":"\u0009\u000a\u000D\u0020\u4e2d"}"#,
            r#"{"a":"plain"}"#,
        ] {
            assert!(!json_may_hold_forbidden(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn phones_emails_and_days() {
        assert!(phone("phone", "13800000000").is_ok());
        assert!(phone("phone", "+86 20-8888 1234").is_ok());
        for bad in [
            "",
            "   ",
            "12",
            "138-abc",
            "1+3800000000",
            "+86 +20 88881234",
        ] {
            assert!(phone("phone", bad).is_err(), "{bad:?}");
        }
        assert!(email("email", "li@example.cn").is_ok());
        for bad in [
            "", " ", "li", "li@", "@x.cn", "li@cn", "li @x.cn", "a@b@c.cn",
        ] {
            assert!(email("email", bad).is_err(), "{bad:?}");
        }
        assert!(parse_day("date", "2026-11-30").is_ok());
        for bad in ["0000-01-01", "9999-12-31", "1999-12-31", "2026-13-01", "x"] {
            assert!(parse_day("date", bad).is_err(), "{bad}");
        }
        assert_eq!(required("name", "  王  ", 10).unwrap(), "王");
        assert!(required("name", "   ", 10).is_err());
        assert!(optional("note", "a\u{0}", 10).is_err());
    }
}
