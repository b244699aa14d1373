//! An inspection, pure: its fields checked (findings, notes, evidence, the checklist, what a visit attempt may carry), its findings merged into one hazard per category, and the finding of a missing responsibility agreement.

use crate::domain::{CaseId, Point, UnitId};
use crate::error::{Error, FieldError};
use crate::grading::{Checklist, Rubric};
use crate::machine::{MAX_EVIDENCE, MAX_TEXT};
use crate::planning::VisitOutcome;
use crate::spatial::crs::Crs;
use crate::taxonomy::Taxonomy;

/// How long after a visit it may still be recorded (a form kept on a phone without
/// network).
pub const MAX_OBSERVED_AGE: chrono::TimeDelta = chrono::TimeDelta::hours(72);

/// How far ahead of the service's clock a phone's may run.
const OBSERVED_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// One hazard found on an inspection.
#[derive(Debug, Clone)]
pub struct Finding {
    pub category: String,
    pub severity: Option<String>,
    pub note: Option<String>,
    pub evidence: Vec<String>,
}

/// An inspection as submitted, already parsed.
#[derive(Debug, Clone)]
pub struct InspectionInput {
    pub unit_id: UnitId,
    /// In WGS-84, whatever the device reported in; `None` when the phone gave no
    /// position (the inspection is recorded, flagged as not located).
    pub point: Option<Point>,
    /// When the visit was observed on site (a form filled in without network is sent
    /// later): not after now, not more than [`MAX_OBSERVED_AGE`] before; `None`: now.
    pub observed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The datum the device reported in.
    pub crs: Crs,
    /// A grading checklist, if the inspection graded the unit.
    pub checklist: Option<Checklist>,
    /// Answers to the checklist of the campaign the visit counts for.
    pub campaign_checks: Option<std::collections::BTreeMap<String, bool>>,
    pub note: Option<String>,
    pub findings: Vec<Finding>,
    /// How the visit ended.
    pub outcome: VisitOutcome,
}

/// A finding attached to an open case instead of opening another.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttachedFinding {
    pub finding: usize,
    pub case_id: CaseId,
}

/// An open case that a finding may duplicate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PossibleDuplicate {
    pub finding: usize,
    pub case_id: CaseId,
    pub unit_id: UnitId,
    pub distance_m: f64,
}

/// The findings of one category in an inspection, merged into one hazard.
pub struct Hazard {
    pub category: String,
    pub severity: String,
    pub note: Option<String>,
    pub evidence: Vec<String>,
    /// Indexes of the findings in the inspection.
    pub findings: Vec<usize>,
}

/// The category of a unit without a responsibility agreement in force.
pub const NO_AGREEMENT: &str = "no_agreement";

/// How close an open case of the same category on another unit of the building must be
/// to be offered as a possible duplicate.
pub const DUPLICATE_RADIUS_M: f64 = 50.0;

/// The most findings one inspection may carry.
pub const MAX_FINDINGS: usize = 20;

/// Checks an inspection's fields, all at once: each finding's category and severity,
/// notes and evidence within their limits, the checklist against the rubric, and that
/// a visit attempt (no one home, entry refused) carries nothing it could not have
/// seen. Returns each finding's category code and severity (the category's own when
/// none is given), in order.
pub fn check(
    input: &InspectionInput,
    taxonomy: &Taxonomy,
    rubric: &Rubric,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(String, String)>, Error> {
    let mut errors = Vec::new();
    if let Some(at) = input.observed_at {
        if at > now + OBSERVED_SKEW {
            errors.push(FieldError::new(
                "observed_at",
                "cannot be after now (check the phone's clock)",
            ));
        } else if at < now - MAX_OBSERVED_AGE {
            errors.push(FieldError::new(
                "observed_at",
                format!(
                    "at most {} hours before now; record an older visit anew",
                    MAX_OBSERVED_AGE.num_hours()
                ),
            ));
        }
    }
    if input.findings.len() > MAX_FINDINGS {
        errors.push(FieldError::new(
            "findings",
            format!("at most {MAX_FINDINGS} findings per inspection"),
        ));
    }
    let mut findings = Vec::with_capacity(input.findings.len());
    for (i, f) in input.findings.iter().enumerate() {
        match check_finding(i, f, taxonomy, &mut errors) {
            Some(checked) => findings.push(checked),
            None => continue,
        }
    }
    if too_long(input.note.as_deref()) {
        errors.push(FieldError::new(
            "note",
            format!("at most {MAX_TEXT} characters"),
        ));
    }
    if let Some(list) = &input.checklist
        && let Err(mut e) = rubric.parse_checklist(list, "checklist")
    {
        errors.append(&mut e);
    }
    if input.outcome != VisitOutcome::Inspected {
        // No one home, or entry refused: nothing was inspected.
        for (field, given) in [
            ("findings", !input.findings.is_empty()),
            ("checklist", input.checklist.is_some()),
            ("campaign_checks", input.campaign_checks.is_some()),
        ] {
            if given {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "a visit that ended `{}` inspected nothing",
                        input.outcome.as_str()
                    ),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(findings)
    } else {
        Err(Error::Invalid(errors))
    }
}

fn too_long(text: Option<&str>) -> bool {
    text.is_some_and(|n| n.chars().count() > MAX_TEXT)
}

/// One finding's category and severity, or `None` with its errors noted when either is
/// unknown; its note and evidence are checked too.
fn check_finding(
    i: usize,
    f: &Finding,
    taxonomy: &Taxonomy,
    errors: &mut Vec<FieldError>,
) -> Option<(String, String)> {
    let at = |field: &str| format!("findings[{i}].{field}");
    let category = match taxonomy.parse_category(&f.category, &at("category")) {
        Ok(c) => c,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let severity = match &f.severity {
        Some(s) => match taxonomy.parse_severity(s, &at("severity")) {
            Ok(s) => s.to_string(),
            Err(e) => {
                errors.push(e);
                return None;
            }
        },
        None => category.severity.clone(),
    };
    if too_long(f.note.as_deref()) {
        errors.push(FieldError::new(
            at("note"),
            format!("at most {MAX_TEXT} characters"),
        ));
    }
    if f.evidence.len() > MAX_EVIDENCE {
        errors.push(FieldError::new(
            at("evidence"),
            format!("at most {MAX_EVIDENCE} uploaded files"),
        ));
    } else if let Some(i) = f
        .evidence
        .iter()
        .position(|e| !crate::evidence::is_id(e.trim()))
    {
        errors.push(FieldError::new(
            at(&format!("evidence[{i}]")),
            crate::evidence::NOT_AN_ID,
        ));
    }
    Some((category.code.clone(), severity))
}

/// Findings of one category are one hazard: merged within the inspection (evidence
/// up to its limit, notes one per line), in the order each category first appears.
/// `checked` is what [`check`] returned for `findings`.
pub fn merge(findings: &[Finding], checked: Vec<(String, String)>) -> Vec<Hazard> {
    let mut merged: Vec<Hazard> = Vec::new();
    for (i, ((category, severity), f)) in checked.into_iter().zip(findings).enumerate() {
        let evidence = f.evidence.iter().map(|e| e.trim().to_string());
        match merged.iter_mut().find(|m| m.category == category) {
            Some(m) => {
                m.evidence.extend(evidence);
                m.evidence.truncate(MAX_EVIDENCE);
                if let Some(note) = &f.note {
                    m.note = Some(match m.note.take() {
                        Some(first) => format!("{first}\n{note}"),
                        None => note.clone(),
                    });
                }
                m.findings.push(i);
            }
            None => merged.push(Hazard {
                category,
                severity,
                note: f.note.clone(),
                evidence: evidence.collect(),
                findings: vec![i],
            }),
        }
    }
    merged
}

/// The hazard of a unit whose party has signed no responsibility agreement in force
/// (压实主体责任), when the taxonomy has the category and the inspection found no such
/// hazard itself.
pub fn missing_agreement(taxonomy: &Taxonomy, merged: &[Hazard]) -> Option<Hazard> {
    if merged.iter().any(|m| m.category == NO_AGREEMENT) {
        return None;
    }
    let category = taxonomy.category(NO_AGREEMENT)?;
    Some(Hazard {
        category: NO_AGREEMENT.to_string(),
        severity: category.severity.clone(),
        note: Some(
            "系统核查：无有效的安全管理责任书 / No responsibility agreement in force on record"
                .into(),
        ),
        evidence: Vec::new(),
        findings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(category: &str, note: Option<&str>, evidence: &[&str]) -> Finding {
        Finding {
            category: category.into(),
            severity: None,
            note: note.map(str::to_string),
            evidence: evidence.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn input(findings: Vec<Finding>) -> InspectionInput {
        InspectionInput {
            unit_id: UnitId(1),
            point: Some(Point::parse(113.3, 23.1, "point").unwrap()),
            observed_at: None,
            crs: Crs::Wgs84,
            checklist: None,
            campaign_checks: None,
            note: None,
            findings,
            outcome: VisitOutcome::Inspected,
        }
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
            .unwrap()
            .to_utc()
    }

    /// A visit is observed on site at most 72 hours before it is recorded, and never
    /// after.
    #[test]
    fn observed_times_are_bounded() {
        let (taxonomy, rubric) = (Taxonomy::builtin(), Rubric::builtin());
        let at = |hours: i64| {
            let mut i = input(vec![]);
            i.observed_at = Some(now() + chrono::TimeDelta::hours(hours));
            check(&i, &taxonomy, &rubric, now())
        };
        assert!(at(-72).is_ok() && at(0).is_ok());
        for hours in [-73, 1] {
            let Err(Error::Invalid(errors)) = at(hours) else {
                panic!("refused");
            };
            assert_eq!(errors[0].field, "observed_at");
        }
    }

    /// Every bad field is named at once; an attempt carries no findings.
    #[test]
    fn fields_are_checked_together() {
        let (taxonomy, rubric) = (Taxonomy::builtin(), Rubric::builtin());
        let mut bad = input(vec![
            finding("nonsense", None, &[]),
            finding("wiring", Some(&"长".repeat(MAX_TEXT + 1)), &[" "]),
        ]);
        bad.note = Some("x".repeat(MAX_TEXT + 1));
        let Err(Error::Invalid(errors)) = check(&bad, &taxonomy, &rubric, now()) else {
            panic!("refused");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "findings[0].category",
                "findings[1].note",
                "findings[1].evidence[0]",
                "note"
            ]
        );
        let mut attempt = input(vec![finding("wiring", None, &[])]);
        attempt.outcome = VisitOutcome::NoOneHome;
        let Err(Error::Invalid(errors)) = check(&attempt, &taxonomy, &rubric, now()) else {
            panic!("refused");
        };
        assert_eq!(errors[0].field, "findings");
    }

    /// Findings of one category become one hazard holding all their indexes, notes and
    /// evidence; the agreement finding is added only when none was found.
    #[test]
    fn findings_of_one_category_are_one_hazard() {
        let (taxonomy, rubric) = (Taxonomy::builtin(), Rubric::builtin());
        let i = input(vec![
            finding(
                "wiring",
                Some("一"),
                &["ev_11111111111111111111111111111111"],
            ),
            finding("ebike_indoor", None, &[]),
            finding(
                "wiring",
                Some("二"),
                &[" ev_22222222222222222222222222222222 "],
            ),
        ]);
        let checked = check(&i, &taxonomy, &rubric, now()).unwrap();
        let merged = merge(&i.findings, checked);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].category, "wiring");
        assert_eq!(merged[0].findings, [0, 2]);
        assert_eq!(merged[0].note.as_deref(), Some("一\n二"));
        assert_eq!(
            merged[0].evidence,
            [
                "ev_11111111111111111111111111111111",
                "ev_22222222222222222222222222222222"
            ]
        );
        assert_eq!(merged[1].findings, [1]);
        let added = missing_agreement(&taxonomy, &merged).unwrap();
        assert_eq!(added.category, NO_AGREEMENT);
        assert!(missing_agreement(&taxonomy, &[added]).is_none());
    }
}
