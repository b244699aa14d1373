//! Inspections on the runtime: an inspection checked (role, unit, point, findings, campaign), merged with the open cases of its unit, graded, and sent to the writer as one request.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::auth::Principal;
use crate::domain::{Actor, CaseId, InspectorId, Point, Role, UnitId};
use crate::error::{Error, FieldError, Result};
use crate::grading::{Checklist, OpenHazard};
use crate::machine::{self, CaseSnapshot, Context};
use crate::metrics::Metrics;
use crate::planning::{ATTEMPT_RETRY, VisitOutcome};
use crate::spatial::crs::Crs;
use crate::store::{
    Attachment, GradeUpdate, IdempotencyKey, Idempotent, NewCase, NewInspection, RecordedInspection,
};
use crate::workflow::HAZARD_CASE;

use super::writer::InspectionJob;

use super::Runtime;
use super::units::GradeView;
use super::writer::Work;

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
    /// In WGS-84, whatever the device reported in.
    pub point: Point,
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

/// An inspection and the cases it opened.
#[derive(Debug, Clone, Serialize)]
pub struct InspectionOutcome {
    pub inspection_id: crate::domain::InspectionId,
    pub unit_id: UnitId,
    pub distance_m: f64,
    pub off_site: bool,
    /// The cases opened.
    pub cases: Vec<CaseSnapshot>,
    /// For each opened case, the indexes of the findings it holds.
    pub findings_of_cases: Vec<Vec<usize>>,
    /// Findings attached to the unit's open case of the same category.
    pub attached: Vec<AttachedFinding>,
    /// Open cases of the same category on other units of the building, close by.
    pub possible_duplicates: Vec<PossibleDuplicate>,
    /// The unit's grade after the inspection.
    pub grade: GradeView,
}

/// A finding attached to an open case instead of opening another.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AttachedFinding {
    pub finding: usize,
    pub case_id: CaseId,
}

/// An open case that a finding may duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PossibleDuplicate {
    pub finding: usize,
    pub case_id: CaseId,
    pub unit_id: UnitId,
    pub distance_m: f64,
}

/// The findings of one category in an inspection, merged into one hazard.
pub(super) struct Hazard {
    category: String,
    severity: String,
    note: Option<String>,
    evidence: Vec<String>,
    /// Indexes of the findings in the inspection.
    findings: Vec<usize>,
}

/// The category of a unit without a responsibility agreement in force.
pub const NO_AGREEMENT: &str = "no_agreement";

/// How close an open case of the same category on another unit of the building must be
/// to be offered as a possible duplicate.
pub const DUPLICATE_RADIUS_M: f64 = 50.0;

/// The most findings one inspection may carry.
pub const MAX_FINDINGS: usize = 20;

impl Runtime {
    /// Inspections in the caller's scope: supervisors see their area's, an inspector
    /// only their own.
    pub async fn list_inspections(
        &self,
        principal: &Principal,
        mut filter: crate::store::InspectionFilter,
    ) -> Result<Vec<crate::store::InspectionRecord>> {
        match principal.role {
            Role::Supervisor => {}
            Role::Inspector => {
                if filter
                    .inspector_id
                    .is_some_and(|i| i.0 != principal.subject)
                {
                    return Err(Error::Forbidden(
                        "an inspector sees their own inspections".into(),
                    ));
                }
                filter.inspector_id = Some(InspectorId(principal.subject));
            }
            _ => {
                return Err(Error::Forbidden(
                    "inspections are listed for supervisors and inspectors".into(),
                ));
            }
        }
        Ok(self
            .shared
            .store
            .list_inspections(&filter, &principal.scope)
            .await?)
    }

    // ----- cases ------------------------------------------------------------------------

    /// Records an inspection of a unit; every finding opens a case on the newest hazard
    /// case workflow, attributed to the unit's responsible party at this moment.
    pub async fn record_inspection(
        &self,
        principal: &Principal,
        input: InspectionInput,
        idem: Option<&IdempotencyKey>,
        respond: fn(&InspectionOutcome) -> Value,
    ) -> Result<Idempotent<InspectionOutcome>> {
        crate::policy::check(principal, crate::policy::Act::RecordInspection)?;
        let taxonomy = &self.shared.taxonomy;
        let mut errors = Vec::new();
        if input.findings.len() > MAX_FINDINGS {
            errors.push(FieldError::new(
                "findings",
                format!("at most {MAX_FINDINGS} findings per inspection"),
            ));
        }
        let mut findings = Vec::with_capacity(input.findings.len());
        for (i, f) in input.findings.iter().enumerate() {
            let at = |field: &str| format!("findings[{i}].{field}");
            let category = match taxonomy.parse_category(&f.category, &at("category")) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let severity = match &f.severity {
                Some(s) => match taxonomy.parse_severity(s, &at("severity")) {
                    Ok(s) => s.to_string(),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                },
                None => category.severity.clone(),
            };
            if f.note
                .as_deref()
                .is_some_and(|n| n.chars().count() > machine::MAX_TEXT)
            {
                errors.push(FieldError::new(
                    at("note"),
                    format!("at most {} characters", machine::MAX_TEXT),
                ));
            }
            if f.evidence.len() > machine::MAX_EVIDENCE
                || f.evidence
                    .iter()
                    .any(|e| e.trim().is_empty() || e.chars().count() > machine::MAX_EVIDENCE_LEN)
            {
                errors.push(FieldError::new(
                    at("evidence"),
                    format!(
                        "at most {} references of 1 to {} characters",
                        machine::MAX_EVIDENCE,
                        machine::MAX_EVIDENCE_LEN
                    ),
                ));
            }
            findings.push((category.code.clone(), severity, f));
        }
        if input
            .note
            .as_deref()
            .is_some_and(|n| n.chars().count() > machine::MAX_TEXT)
        {
            errors.push(FieldError::new(
                "note",
                format!("at most {} characters", machine::MAX_TEXT),
            ));
        }
        if let Some(list) = &input.checklist
            && let Err(mut e) = self.shared.rubric.parse_checklist(list, "checklist")
        {
            errors.append(&mut e);
        }
        let attempt = input.outcome != VisitOutcome::Inspected;
        if attempt {
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
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let store = &self.shared.store;
        // A unit the caller may not see is, to them, no unit.
        let unit = match store.unit(input.unit_id).await? {
            Some(u) if principal.covers(u.place()) => u,
            _ => {
                return Err(Error::invalid(
                    "unit_id",
                    format!("no unit {}", input.unit_id),
                ));
            }
        };
        let (definition_id, definition) = self
            .latest_definition(HAZARD_CASE)
            .expect("the hazard case workflow is always loaded");
        let now = self.now();
        if let Some(checks) = &input.campaign_checks {
            let items = store.open_campaign_checklists(unit.id, now).await?;
            if items.is_empty() {
                return Err(Error::invalid(
                    "campaign_checks",
                    "the unit is in no running campaign that has yet to visit it",
                ));
            }
            if let Some(unknown) = checks.keys().find(|k| !items.iter().any(|i| &i.code == *k)) {
                let known: Vec<&str> = items.iter().map(|i| i.code.as_str()).collect();
                return Err(Error::invalid(
                    format!("campaign_checks.{unknown}"),
                    format!(
                        "not on the campaign's checklist; known: {}",
                        known.join(", ")
                    ),
                ));
            }
        }
        let routing = self.routing();
        let ctx = Context {
            definition: &definition,
            taxonomy,
            routing: &routing,
            calendar: &self.shared.calendar,
            now,
        };
        let actor = Actor {
            role: principal.role,
            id: principal.actor_id(),
        };
        // The case belongs to the inspector who found it, or, when a supervisor records
        // the inspection, to the inspector who covers the unit's grid.
        let inspector_id = if principal.role == Role::Inspector {
            Some(InspectorId(principal.subject))
        } else {
            match unit.grid_id {
                Some(grid) => store.grid_inspectors(grid).await?.first().copied(),
                None => None,
            }
        };
        // Still recorded when far from the unit, but flagged, so that supervisors can
        // see inspections that were not made on site.
        let distance_m = unit.point().distance_m(input.point);
        let off_site = distance_m > self.shared.config.off_site_m;
        // Findings of one category are one hazard: merged within this inspection,
        // and attached to the unit's open case of that category if it has one.
        let mut merged: Vec<Hazard> = Vec::new();
        for (i, (category, severity, f)) in findings.into_iter().enumerate() {
            let evidence = f.evidence.iter().map(|e| e.trim().to_string());
            match merged.iter_mut().find(|m| m.category == category) {
                Some(m) => {
                    m.evidence.extend(evidence);
                    m.evidence.truncate(machine::MAX_EVIDENCE);
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
        // A unit whose party has signed no responsibility agreement in force is a
        // finding of its own (压实主体责任).
        if self.shared.config.agreement_findings
            && !attempt
            && !merged.iter().any(|m| m.category == NO_AGREEMENT)
            && let Some(party) = unit.party_id
            && let Some(category) = taxonomy.category(NO_AGREEMENT)
            && !crate::responsibility::agreement_in_force(
                &store.agreements(unit.id).await?,
                party,
                self.today(),
            )
        {
            merged.push(Hazard {
                category: NO_AGREEMENT.to_string(),
                severity: category.severity.clone(),
                note: Some(
                    "系统核查：无有效的安全管理责任书 / No responsibility agreement in force on record"
                        .into(),
                ),
                evidence: Vec::new(),
                findings: Vec::new(),
            });
        }
        let open = store.open_cases_in_building(unit.building_id).await?;
        let here = input.point;
        let mut cases = Vec::new();
        let mut new_findings = Vec::new();
        let mut attachments = Vec::new();
        let mut attached = Vec::new();
        let mut duplicates = Vec::new();
        for Hazard {
            category,
            severity,
            note,
            evidence,
            findings: indexes,
        } in merged
        {
            let data = json!({
                "category": category,
                "severity": severity,
                "note": note,
                "evidence": evidence,
                "party_id": unit.party_id,
                "point": { "lon": here.lon(), "lat": here.lat() },
                "findings": indexes,
            });
            if let Some(existing) = open
                .iter()
                .find(|c| c.unit_id == unit.id && c.snapshot.category == category)
            {
                attachments.push(Attachment {
                    case_id: existing.snapshot.id,
                    version: existing.snapshot.version,
                    state: existing.snapshot.state.clone(),
                    actor: actor.clone(),
                    data,
                });
                attached.extend(indexes.iter().map(|i| AttachedFinding {
                    finding: *i,
                    case_id: existing.snapshot.id,
                }));
                continue;
            }
            // A hazard of the same kind close by in the same building may be the same
            // one, reported on a neighbouring unit: offered, not decided.
            for other in open
                .iter()
                .filter(|c| c.unit_id != unit.id && c.snapshot.category == category)
            {
                let d = here.distance_m(Point::parse(other.lon, other.lat, "case").unwrap_or(here));
                if d <= DUPLICATE_RADIUS_M {
                    duplicates.extend(indexes.iter().map(|i| PossibleDuplicate {
                        finding: *i,
                        case_id: other.snapshot.id,
                        unit_id: other.unit_id,
                        distance_m: (d * 10.0).round() / 10.0,
                    }));
                }
            }
            let snapshot = CaseSnapshot {
                id: CaseId(0),
                state: definition.initial.clone(),
                version: 1,
                category: category.clone(),
                severity: severity.clone(),
                address: unit.address.clone(),
                district_code: unit.district_code.clone(),
                street_id: unit.street_id,
                grid_id: unit.grid_id,
                party_id: unit.party_id,
                inspector_id,
                department_id: None,
                deadline_at: None,
                order_no: 0,
                escalation: 0,
                reopen_count: 0,
                closed_at: None,
                priority: 0,
                review_required: false,
                rule_mark: 0,
                acted_version: 1,
            };
            let timer = machine::opening_timers(ctx, &snapshot).into_iter().next();
            new_findings.push(indexes);
            cases.push(NewCase {
                definition_id,
                note,
                data,
                evidence,
                lon: here.lon(),
                lat: here.lat(),
                actor: actor.clone(),
                timer,
                snapshot,
            });
        }
        // The grade after this inspection: its checklist (or the last one) and the
        // hazards the unit has open once its findings are recorded.
        let rubric = &self.shared.rubric;
        let hazards: Vec<OpenHazard> = open
            .iter()
            .filter(|c| c.unit_id == unit.id)
            .map(|c| (&c.snapshot.category, &c.snapshot.severity))
            .chain(
                cases
                    .iter()
                    .map(|c| (&c.snapshot.category, &c.snapshot.severity)),
            )
            .map(|(category, severity)| OpenHazard {
                category: category.clone(),
                severity: severity.clone(),
            })
            .collect();
        let checklist = input.checklist.as_ref().or(unit.checklist.as_ref());
        let grade = if attempt {
            crate::grading::Grade {
                stars: unit.stars,
                score: unit.score,
                dimensions: Default::default(),
                reasons: Vec::new(),
            }
        } else {
            rubric.grade(checklist, &hazards)
        };
        // An attempt leaves the grade and the last inspection as they were, and brings
        // the unit back soon.
        let next_due_at = if attempt {
            Some(now + ATTEMPT_RETRY)
        } else {
            rubric.next_due(grade.stars, Some(now), unit.last_closed_at)
        };
        let grade_update = GradeUpdate {
            unit_id: unit.id,
            stars: grade.stars,
            score: grade.score,
            checklist: input.checklist.clone(),
            reasons: grade.reasons.clone(),
            changed: grade.stars != unit.stars,
            cause: if attempt {
                input.outcome.as_str().into()
            } else {
                "inspection".into()
            },
            last_inspected_at: (!attempt).then_some(now),
            last_closed_at: None,
            next_due_at,
            at: now,
        };
        let grade_view = GradeView {
            stars: grade.stars,
            score: grade.score,
            reasons: grade.reasons,
            changed: grade_update.changed,
            next_due_at,
        };
        let grade_update_stars = grade_update.stars;
        let inspection = NewInspection {
            grade: grade_update,
            unit_id: unit.id,
            inspector_id: (principal.role == Role::Inspector)
                .then_some(InspectorId(principal.subject)),
            at: now,
            lon: input.point.lon(),
            lat: input.point.lat(),
            distance_m,
            off_site,
            crs: input.crs,
            note: input.note.clone(),
            findings: u32::try_from(input.findings.len()).unwrap_or(u32::MAX),
            campaign_checks: input.campaign_checks.clone(),
            rule_event: crate::grading::grade_event(unit.stars, grade_update_stars),
            outcome: input.outcome,
        };
        let snapshots: Vec<CaseSnapshot> = cases.iter().map(|c| c.snapshot.clone()).collect();
        let unit_id = unit.id;
        let outcome_of = move |recorded: &RecordedInspection| InspectionOutcome {
            inspection_id: recorded.inspection_id,
            unit_id,
            distance_m,
            off_site,
            cases: recorded
                .case_ids
                .iter()
                .zip(&snapshots)
                .map(|(id, snapshot)| CaseSnapshot {
                    id: *id,
                    ..snapshot.clone()
                })
                .collect(),
            findings_of_cases: new_findings.clone(),
            attached: attached.clone(),
            possible_duplicates: duplicates.clone(),
            grade: grade_view.clone(),
        };
        let outcome_of = Arc::new(outcome_of);
        let respond_recorded = {
            let outcome_of = outcome_of.clone();
            Box::new(move |r: &RecordedInspection| respond(&outcome_of(r)))
        };
        // The whole inspection is written by the writer (one transaction), so that the
        // cases it changes change only there.
        let (reply, rx) = oneshot::channel();
        self.queue
            .send(Work::Inspection(InspectionJob {
                inspection,
                cases,
                attachments,
                idem: idem.cloned(),
                respond: respond_recorded,
                reply,
            }))
            .await
            .map_err(|_| Error::ShuttingDown)?;
        let result = rx.await.map_err(|_| Error::ShuttingDown)??;
        Ok(match result {
            Idempotent::Created(recorded) => {
                Metrics::add(
                    &self.shared.metrics.cases_opened,
                    recorded.case_ids.len() as u64,
                );
                Idempotent::Created(outcome_of(&recorded))
            }
            Idempotent::Replayed(v) => Idempotent::Replayed(v),
        })
    }
}
