//! A command's data and reason checked against the fields its workflow defines, every problem reported at once with the field at fault.

use serde_json::{Map, Value, json};

use super::{MAX_EVIDENCE, MAX_TEXT};
use crate::domain::{CaseId, DepartmentId};
use crate::error::Error;
use crate::error::FieldError;
use crate::routing::Routing;
use crate::workflow::{CommandDef, FieldKind, FieldSpec};

pub(super) fn validate_reason<'a>(
    spec: &CommandDef,
    reason: Option<&'a str>,
) -> Result<&'a str, Error> {
    let reason = reason.map(str::trim).unwrap_or_default();
    if spec.reason_required && reason.is_empty() {
        return Err(Error::invalid("reason", "this command needs a reason"));
    }
    if reason.chars().count() > MAX_TEXT {
        return Err(Error::invalid(
            "reason",
            format!("at most {MAX_TEXT} characters"),
        ));
    }
    Ok(reason)
}

/// Checks a command's data against the command's field specs, reporting every problem
/// at once. Returns the data with text trimmed.
pub fn validate_data(
    spec: &CommandDef,
    data: &Map<String, Value>,
    routing: &Routing,
    case_id: CaseId,
) -> Result<Map<String, Value>, Error> {
    let mut errors = Vec::new();
    let mut clean = Map::new();
    for key in data.keys() {
        if !spec.fields.contains_key(key) {
            let known: Vec<_> = spec.fields.keys().map(String::as_str).collect();
            errors.push(FieldError::new(
                format!("data.{key}"),
                if known.is_empty() {
                    "unknown field: this command takes no data".to_string()
                } else {
                    format!("unknown field; this command takes: {}", known.join(", "))
                },
            ));
        }
    }
    for (name, field) in &spec.fields {
        let path = format!("data.{name}");
        match data.get(name) {
            None | Some(Value::Null) => {
                let required_now = field.required
                    || (!field.required_if.is_empty()
                        && field
                            .required_if
                            .iter()
                            .all(|(k, v)| data.get(k) == Some(v)));
                if required_now {
                    errors.push(FieldError::new(path, "required"));
                }
            }
            Some(value) => match check_value(field, value, routing, case_id) {
                Ok(v) => {
                    clean.insert(name.clone(), v);
                }
                Err(message) => errors.push(FieldError::new(path, message)),
            },
        }
    }
    if errors.is_empty() {
        Ok(clean)
    } else {
        Err(Error::Invalid(errors))
    }
}

fn check_value(
    spec: &FieldSpec,
    value: &Value,
    routing: &Routing,
    case_id: CaseId,
) -> Result<Value, String> {
    let in_range = |x: f64| -> Result<(), String> {
        if let Some(min) = spec.min
            && x < min
        {
            return Err(format!("must be at least {min}"));
        }
        if let Some(max) = spec.max
            && x > max
        {
            return Err(format!("must be at most {max}"));
        }
        Ok(())
    };
    match spec.kind {
        FieldKind::Bool => value
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| "must be true or false".to_string()),
        FieldKind::Integer => {
            let n = value
                .as_i64()
                .ok_or_else(|| "must be a whole number".to_string())?;
            in_range(n as f64)?;
            Ok(json!(n))
        }
        FieldKind::Money => {
            let x = value
                .as_f64()
                .ok_or_else(|| "must be an amount in yuan".to_string())?;
            if x < 0.0 {
                return Err("cannot be negative".into());
            }
            if ((x * 100.0).round() - x * 100.0).abs() > 1e-6 {
                return Err("at most two decimals (fen)".into());
            }
            in_range(x)?;
            Ok(json!(x))
        }
        FieldKind::Text => {
            let s = value
                .as_str()
                .ok_or_else(|| "must be text".to_string())?
                .trim();
            let max = spec.max_len.unwrap_or(MAX_TEXT);
            if s.chars().count() > max {
                return Err(format!("at most {max} characters"));
            }
            if s.is_empty() && spec.required {
                return Err("cannot be empty".into());
            }
            Ok(json!(s))
        }
        FieldKind::Enum => {
            let s = value.as_str().unwrap_or_default();
            if spec.values.iter().any(|v| v == s) {
                Ok(json!(s))
            } else {
                Err(format!("must be one of: {}", spec.values.join(", ")))
            }
        }
        FieldKind::Evidence => {
            let items = value
                .as_array()
                .ok_or_else(|| "must be a list of evidence references".to_string())?;
            if items.is_empty() && spec.required {
                return Err("needs at least one evidence reference".into());
            }
            if items.len() > MAX_EVIDENCE {
                return Err(format!("at most {MAX_EVIDENCE} references"));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let s = item.as_str().map(str::trim).unwrap_or_default();
                if !crate::evidence::is_id(s) {
                    return Err(format!("item {i} {}", crate::evidence::NOT_AN_ID));
                }
                if !out.iter().any(|o| o == s) {
                    out.push(json!(s));
                }
            }
            Ok(Value::Array(out))
        }
        FieldKind::Department => {
            let id = value
                .as_i64()
                .ok_or_else(|| "must be a department id".to_string())?;
            if routing.get(DepartmentId(id)).is_none() {
                return Err(format!("no department {id}"));
            }
            Ok(json!(id))
        }
        FieldKind::Case => {
            let id = value
                .as_i64()
                .filter(|id| *id > 0)
                .ok_or_else(|| "must be a case id".to_string())?;
            if id == case_id.0 {
                return Err("a case cannot refer to itself".into());
            }
            Ok(json!(id))
        }
    }
}
