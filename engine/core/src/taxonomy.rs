//! The hazard taxonomy: categories, severities, deadlines and competent departments, loaded from `workflows/taxonomy.toml`.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// The taxonomy shipped with this build.
pub const BUILTIN: &str = include_str!("../../../workflows/taxonomy.toml");

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Severity {
    pub zh: String,
    pub en: String,
    /// Higher is worse.
    pub rank: u8,
    pub deadline_hours: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentKind {
    pub zh: String,
    pub en: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub code: String,
    pub zh: String,
    pub en: String,
    /// Default severity of a finding in this category.
    pub severity: String,
    /// Deadline of an order for a finding of the default severity.
    pub deadline_hours: u32,
    /// Kind of the competent department.
    pub department: String,
    #[serde(default)]
    pub legal_basis: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Taxonomy {
    pub version: u32,
    pub severities: BTreeMap<String, Severity>,
    pub departments: BTreeMap<String, DepartmentKind>,
    pub categories: Vec<Category>,
}

/// A taxonomy file that does not hold together.
#[derive(Debug, thiserror::Error)]
#[error("taxonomy: {0}")]
pub struct Invalid(pub String);

impl Taxonomy {
    /// The taxonomy compiled into this build; it is validated by a unit test, so this
    /// cannot fail at run time.
    pub fn builtin() -> Taxonomy {
        Taxonomy::parse(BUILTIN).expect("the built-in taxonomy is valid")
    }

    pub fn parse(text: &str) -> Result<Taxonomy, Invalid> {
        let t: Taxonomy = toml::from_str(text).map_err(|e| Invalid(e.to_string()))?;
        t.validate()?;
        Ok(t)
    }

    fn validate(&self) -> Result<(), Invalid> {
        if self.categories.is_empty() {
            return Err(Invalid("no categories".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.categories {
            if !seen.insert(c.code.as_str()) {
                return Err(Invalid(format!("category {} appears twice", c.code)));
            }
            if !self.severities.contains_key(&c.severity) {
                return Err(Invalid(format!(
                    "category {} has unknown severity {}",
                    c.code, c.severity
                )));
            }
            if !self.departments.contains_key(&c.department) {
                return Err(Invalid(format!(
                    "category {} has unknown department kind {}",
                    c.code, c.department
                )));
            }
            if c.deadline_hours == 0 {
                return Err(Invalid(format!("category {} has a zero deadline", c.code)));
            }
        }
        if let Some((code, _)) = self.severities.iter().find(|(_, s)| s.deadline_hours == 0) {
            return Err(Invalid(format!("severity {code} has a zero deadline")));
        }
        Ok(())
    }

    pub fn category(&self, code: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.code == code)
    }

    pub fn severity(&self, code: &str) -> Option<&Severity> {
        self.severities.get(code)
    }

    /// Parses a category code from a request field.
    pub fn parse_category(&self, code: &str, field: &str) -> Result<&Category, FieldError> {
        self.category(code).ok_or_else(|| {
            FieldError::new(
                field,
                format!(
                    "unknown hazard category `{code}`; known: {}",
                    self.categories
                        .iter()
                        .map(|c| c.code.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    /// Parses a severity code from a request field.
    pub fn parse_severity(&self, code: &str, field: &str) -> Result<&str, FieldError> {
        self.severities
            .get_key_value(code)
            .map(|(k, _)| k.as_str())
            .ok_or_else(|| {
                FieldError::new(
                    field,
                    format!(
                        "unknown severity `{code}`; known: {}",
                        self.severities
                            .keys()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    }

    /// How long a landlord has to fix a hazard of this category and severity: the
    /// category's own deadline at its default severity, the severity's otherwise.
    pub fn deadline(&self, category: &str, severity: &str) -> TimeDelta {
        let hours = match self.category(category) {
            Some(c) if c.severity == severity => c.deadline_hours,
            _ => self
                .severity(severity)
                .map(|s| s.deadline_hours)
                .unwrap_or(168),
        };
        TimeDelta::hours(i64::from(hours))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_taxonomy_is_valid_and_has_the_briefs_categories() {
        let t = Taxonomy::builtin();
        assert_eq!(t.categories.len(), 14);
        assert_eq!(t.category("ebike_indoor").unwrap().department, "fire");
        assert_eq!(t.category("gas_heater").unwrap().department, "gas");
    }

    #[test]
    fn deadline_comes_from_category_at_default_severity_else_from_severity() {
        let t = Taxonomy::builtin();
        assert_eq!(t.deadline("ebike_indoor", "critical"), TimeDelta::hours(24));
        assert_eq!(t.deadline("change_of_use", "general"), TimeDelta::days(15));
        // A sanitation finding judged major gets the major deadline, not 15 days.
        assert_eq!(t.deadline("sanitation", "major"), TimeDelta::hours(72));
    }

    #[test]
    fn a_category_with_an_unknown_severity_is_rejected() {
        let bad = BUILTIN.replacen("severity = \"critical\"", "severity = \"apocalyptic\"", 1);
        let err = Taxonomy::parse(&bad).unwrap_err();
        assert!(err.0.contains("apocalyptic"), "{err}");
    }

    #[test]
    fn unknown_codes_get_field_errors_that_list_the_known_ones() {
        let t = Taxonomy::builtin();
        let e = t.parse_category("ufo", "findings[0].category").unwrap_err();
        assert_eq!(e.field, "findings[0].category");
        assert!(e.message.contains("ebike_indoor"));
        assert!(t.parse_severity("huge", "s").is_err());
    }
}
