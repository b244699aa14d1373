//! Inspections on the runtime: an inspection checked (role, unit, point, findings, campaign), merged with the open cases of its unit, graded, and sent to the writer as one request.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::auth::Principal;
use crate::domain::{Actor, InspectorId, Point, Role, UnitId};
use crate::error::{Error, Result};
use crate::grading::{OpenHazard, Rubric};
use crate::inspection;
pub use crate::inspection::{
    AttachedFinding, DUPLICATE_RADIUS_M, Finding, Hazard, InspectionInput, MAX_FINDINGS,
    NO_AGREEMENT, PossibleDuplicate,
};
use crate::machine::{self, CaseSnapshot, Context};
use crate::metrics::Metrics;
use crate::planning::{ATTEMPT_RETRY, VisitOutcome};
use crate::registry::Unit;
use crate::store::{
    Attachment, CaseRecord, GradeUpdate, IdempotencyKey, Idempotent, NewCase, NewInspection,
    RecordedInspection,
};
use crate::workflow::HAZARD_CASE;

use super::writer::InspectionJob;

use super::Runtime;
use super::units::GradeView;
use super::writer::Work;

/// An inspection and the cases it opened.
#[derive(Debug, Clone)]
pub struct InspectionOutcome {
    pub inspection_id: crate::domain::InspectionId,
    pub unit_id: UnitId,
    pub distance_m: f64,
    pub off_site: bool,
    /// The phone gave a position.
    pub located: bool,
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

impl Runtime {
    /// Inspections in the caller's scope: supervisors see their area's, an inspector
    /// only their own.
    pub async fn list_inspections(
        &self,
        principal: &Principal,
        mut filter: crate::store::InspectionFilter,
    ) -> Result<Vec<crate::store::InspectionRecord>> {
        crate::policy::check(
            principal,
            crate::policy::Act::ListInspections(filter.inspector_id),
        )?;
        if let Some(own) = crate::policy::own_inspections(principal) {
            filter.inspector_id = Some(own);
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
        let checked = inspection::check(
            &input,
            &self.shared.taxonomy,
            &self.shared.rubric,
            self.now(),
        )?;
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
        let now = self.now();
        self.check_campaign_checks(&unit, &input, now).await?;
        let uploads: Vec<(String, String)> = input
            .findings
            .iter()
            .enumerate()
            .flat_map(|(i, f)| {
                f.evidence
                    .iter()
                    .enumerate()
                    .map(move |(j, e)| (format!("findings[{i}].evidence[{j}]"), e.trim().into()))
            })
            .collect();
        self.check_evidence(principal, &uploads, unit.id).await?;
        let attempt = input.outcome != VisitOutcome::Inspected;
        let mut merged = inspection::merge(&input.findings, checked);
        // A unit whose party has signed no responsibility agreement in force is a
        // finding of its own (压实主体责任).
        if self.shared.config.agreement_findings
            && !attempt
            && let Some(party) = unit.party_id
            && let Some(hazard) = inspection::missing_agreement(&self.shared.taxonomy, &merged)
            && !crate::responsibility::agreement_in_force(
                &store.agreements(unit.id).await?,
                party,
                self.today(),
            )
        {
            merged.push(hazard);
        }
        let open = store.open_cases_in_building(unit.building_id).await?;
        let (definition_id, definition) = self
            .latest_definition(HAZARD_CASE)
            .ok_or_else(|| Error::Internal("the hazard case workflow is not loaded".into()))?;
        let (routing, calendar) = (self.routing(), self.calendar());
        let facts = InspectionFacts {
            ctx: Context {
                definition: &definition,
                taxonomy: &self.shared.taxonomy,
                routing: &routing,
                calendar: &calendar,
                now,
            },
            definition_id,
            rubric: &self.shared.rubric,
            unit: &unit,
            open: &open,
            actor: Actor {
                role: principal.role,
                id: principal.actor_id(),
            },
            inspector_id: self.case_inspector(principal, &unit).await?,
            input: &input,
        };
        let InspectionDecision {
            plan,
            grade: grade_update,
            view: grade_view,
            rule_event,
        } = decide_inspection(&facts, merged);
        // Still recorded when far from the unit, but flagged, so that supervisors can
        // see inspections that were not made on site.
        // Without a position from the phone, the visit is recorded at the unit's point,
        // flagged as not located (neither on nor off site).
        let located = input.point.is_some();
        let point = input.point.unwrap_or_else(|| unit.point());
        let distance_m = unit.point().distance_m(point);
        let off_site = distance_m > self.shared.config.off_site_m;
        let inspection = NewInspection {
            rule_event,
            grade: grade_update,
            unit_id: unit.id,
            inspector_id: (principal.role == Role::Inspector)
                .then_some(InspectorId(principal.subject)),
            at: input.observed_at.unwrap_or(now),
            recorded_at: now,
            lon: point.lon(),
            lat: point.lat(),
            distance_m,
            off_site,
            located,
            crs: input.crs,
            note: input.note.clone(),
            findings: u32::try_from(input.findings.len()).unwrap_or(u32::MAX),
            campaign_checks: input.campaign_checks.clone(),
            outcome: input.outcome,
        };
        self.submit_inspection(inspection, plan, grade_view, idem, respond)
            .await
    }

    /// Answers to a campaign's checklist need a running campaign that has yet to visit
    /// the unit, and only that campaign's items.
    async fn check_campaign_checks(
        &self,
        unit: &Unit,
        input: &InspectionInput,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let Some(checks) = &input.campaign_checks else {
            return Ok(());
        };
        let items = self
            .shared
            .store
            .open_campaign_checklists(unit.id, now)
            .await?;
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
        Ok(())
    }

    /// The inspector a new case belongs to: the one who found it, or, when a supervisor
    /// records the inspection, the one who covers the unit's grid.
    async fn case_inspector(
        &self,
        principal: &Principal,
        unit: &Unit,
    ) -> Result<Option<InspectorId>> {
        if principal.role == Role::Inspector {
            return Ok(Some(InspectorId(principal.subject)));
        }
        Ok(match unit.grid_id {
            Some(grid) => self
                .shared
                .store
                .grid_inspectors(grid)
                .await?
                .first()
                .copied(),
            None => None,
        })
    }

    /// Sends the whole inspection to the writer (one transaction), so that the cases it
    /// changes change only there, and answers with what was recorded.
    async fn submit_inspection(
        &self,
        inspection: NewInspection,
        plan: CasePlan,
        grade: GradeView,
        idem: Option<&IdempotencyKey>,
        respond: fn(&InspectionOutcome) -> Value,
    ) -> Result<Idempotent<InspectionOutcome>> {
        let CasePlan {
            cases,
            new_findings,
            attachments,
            attached,
            duplicates,
        } = plan;
        let snapshots: Vec<CaseSnapshot> = cases.iter().map(|c| c.snapshot.clone()).collect();
        let (unit_id, distance_m, off_site, located) = (
            inspection.unit_id,
            inspection.distance_m,
            inspection.off_site,
            inspection.located,
        );
        let outcome_of = move |recorded: &RecordedInspection| InspectionOutcome {
            inspection_id: recorded.inspection_id,
            unit_id,
            distance_m,
            off_site,
            located,
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
            grade: grade.clone(),
        };
        let outcome_of = Arc::new(outcome_of);
        let respond_recorded = {
            let outcome_of = outcome_of.clone();
            Box::new(move |r: &RecordedInspection| respond(&outcome_of(r)))
        };
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

/// What an inspection's hazards do to the unit's cases.
#[derive(Default)]
struct CasePlan {
    /// The cases to open.
    cases: Vec<NewCase>,
    /// For each case to open, the indexes of the findings it holds.
    new_findings: Vec<Vec<usize>>,
    /// Findings attached to the unit's open cases, as events of those cases.
    attachments: Vec<Attachment>,
    attached: Vec<AttachedFinding>,
    duplicates: Vec<PossibleDuplicate>,
}

/// What an inspection is decided from, all read before the decision: the workflow and
/// the directory (`ctx`), the unit, the open cases of its building, who records it and
/// whose new cases they are, and the inspection as submitted.
pub(crate) struct InspectionFacts<'a> {
    pub ctx: Context<'a>,
    pub definition_id: i64,
    pub rubric: &'a Rubric,
    pub unit: &'a Unit,
    pub open: &'a [CaseRecord],
    pub actor: Actor,
    pub inspector_id: Option<InspectorId>,
    pub input: &'a InspectionInput,
}

/// Everything an inspection does, decided before anything is written: the cases it
/// opens and the findings it attaches, the unit's grade, and the rule event a drop of
/// the grade raises.
pub(crate) struct InspectionDecision {
    plan: CasePlan,
    grade: GradeUpdate,
    view: GradeView,
    rule_event: Option<crate::rules::RuleEvent>,
}

/// The whole inspection as one pure decision over its facts and its hazards (the
/// findings merged, and the missing agreement added where there is one). Each hazard is
/// attached to the unit's open case of its category, or opens a case on the newest
/// hazard case workflow (open cases of the same category close by on other units of
/// the building are offered as possible duplicates); the unit is graded on its
/// checklist and the hazards it has open afterwards.
pub(crate) fn decide_inspection(
    f: &InspectionFacts<'_>,
    hazards: Vec<Hazard>,
) -> InspectionDecision {
    let (unit, open) = (f.unit, f.open);
    let here = f.input.point.unwrap_or_else(|| unit.point());
    let mut plan = CasePlan::default();
    for hazard in hazards {
        let data = json!({
            "category": hazard.category,
            "severity": hazard.severity,
            "note": hazard.note,
            "evidence": hazard.evidence,
            "party_id": unit.party_id,
            "point": { "lon": here.lon(), "lat": here.lat() },
            "findings": hazard.findings,
        });
        if let Some(existing) = open
            .iter()
            .find(|c| c.unit_id == unit.id && c.snapshot.category == hazard.category)
        {
            plan.attachments.push(Attachment {
                case_id: existing.snapshot.id,
                version: existing.snapshot.version,
                state: existing.snapshot.state.clone(),
                actor: f.actor.clone(),
                data,
            });
            plan.attached
                .extend(hazard.findings.iter().map(|i| AttachedFinding {
                    finding: *i,
                    case_id: existing.snapshot.id,
                }));
            continue;
        }
        plan.duplicates
            .extend(possible_duplicates(unit, open, &hazard, here));
        let snapshot = new_snapshot(&f.ctx.definition.initial, unit, &hazard, f.inspector_id);
        let timer = machine::opening_timers(f.ctx, &snapshot).into_iter().next();
        plan.new_findings.push(hazard.findings);
        plan.cases.push(NewCase {
            definition_id: f.definition_id,
            note: hazard.note,
            data,
            evidence: hazard.evidence,
            lon: here.lon(),
            lat: here.lat(),
            actor: f.actor.clone(),
            timer,
            snapshot,
        });
    }
    // The visit is dated when it was observed on site.
    let visited = f.input.observed_at.unwrap_or(f.ctx.now);
    let (grade, view) = grade_after(f.rubric, unit, f.input, open, &plan.cases, visited);
    InspectionDecision {
        rule_event: crate::grading::grade_event(unit.stars, grade.stars),
        plan,
        grade,
        view,
    }
}

/// The grade after this inspection: its checklist (or the last one) and the hazards
/// the unit has open once its findings are recorded. An attempt leaves the grade and
/// the last inspection as they were, and brings the unit back soon.
fn grade_after(
    rubric: &Rubric,
    unit: &Unit,
    input: &InspectionInput,
    open: &[CaseRecord],
    opened: &[NewCase],
    now: DateTime<Utc>,
) -> (GradeUpdate, GradeView) {
    let attempt = input.outcome != VisitOutcome::Inspected;
    let hazards: Vec<OpenHazard> = open
        .iter()
        .filter(|c| c.unit_id == unit.id)
        .map(|c| (&c.snapshot.category, &c.snapshot.severity))
        .chain(
            opened
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
    let next_due_at = if attempt {
        Some(now + ATTEMPT_RETRY)
    } else {
        rubric.next_due(grade.stars, Some(now), unit.last_closed_at)
    };
    let update = GradeUpdate {
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
    let view = GradeView {
        stars: grade.stars,
        score: grade.score,
        reasons: grade.reasons,
        changed: update.changed,
        next_due_at,
    };
    (update, view)
}

/// A hazard of the same kind close by in the same building may be the same one,
/// reported on a neighbouring unit: offered, not decided.
fn possible_duplicates(
    unit: &Unit,
    open: &[CaseRecord],
    hazard: &Hazard,
    here: Point,
) -> Vec<PossibleDuplicate> {
    let mut out = Vec::new();
    for other in open
        .iter()
        .filter(|c| c.unit_id != unit.id && c.snapshot.category == hazard.category)
    {
        let d = here.distance_m(Point::parse(other.lon, other.lat, "case").unwrap_or(here));
        if d <= DUPLICATE_RADIUS_M {
            out.extend(hazard.findings.iter().map(|i| PossibleDuplicate {
                finding: *i,
                case_id: other.snapshot.id,
                unit_id: other.unit_id,
                distance_m: (d * 10.0).round() / 10.0,
            }));
        }
    }
    out
}

/// A new case of `hazard` on `unit`, in the workflow's initial state.
fn new_snapshot(
    initial: &str,
    unit: &Unit,
    hazard: &Hazard,
    inspector_id: Option<InspectorId>,
) -> CaseSnapshot {
    CaseSnapshot {
        street_id: unit.street_id,
        grid_id: unit.grid_id,
        party_id: unit.party_id,
        inspector_id,
        ..CaseSnapshot::opened(
            initial,
            &hazard.category,
            &hazard.severity,
            &unit.address,
            &unit.district_code,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BuildingId, CaseId, PartyId};
    use chrono::TimeZone;

    fn unit(id: i64, stars: Option<u8>, checklist: Option<crate::grading::Checklist>) -> Unit {
        Unit {
            id: UnitId(id),
            address_code: format!("u{id}"),
            building_id: BuildingId(1),
            address: format!("{id}号"),
            lon: 113.26,
            lat: 23.13,
            floor_area: 30.0,
            occupants: 2,
            grid_id: None,
            community_id: None,
            street_id: None,
            district_code: "440103".into(),
            party_id: Some(PartyId(7)),
            created_at: Utc.timestamp_opt(0, 0).unwrap(),
            stars,
            score: None,
            checklist,
            last_inspected_at: None,
            last_closed_at: None,
            next_due_at: None,
            evening_only: false,
            public_code: format!("p{id}"),
        }
    }

    fn open_case(id: i64, unit: &Unit, category: &str) -> CaseRecord {
        let mut snapshot =
            new_snapshot("discovered", unit, &hazard(category, "major", vec![]), None);
        snapshot.id = CaseId(id);
        snapshot.version = 3;
        CaseRecord {
            snapshot,
            definition_id: 1,
            unit_id: unit.id,
            inspection_id: None,
            note: None,
            evidence: vec![],
            lon: unit.lon,
            lat: unit.lat,
            opened_at: Utc.timestamp_opt(0, 0).unwrap(),
            updated_at: Utc.timestamp_opt(0, 0).unwrap(),
            timer: None,
            timer_seq: 0,
        }
    }

    fn hazard(category: &str, severity: &str, findings: Vec<usize>) -> Hazard {
        Hazard {
            category: category.into(),
            severity: severity.into(),
            note: None,
            evidence: vec!["ev_11111111111111111111111111111111".into()],
            findings,
        }
    }

    /// One inspection, decided without a database: a finding of a category the unit has
    /// open is attached to that case; a new one opens a case in the workflow's initial
    /// state (with its first timer), offering a neighbour's open case of the category as
    /// a possible duplicate; the critical hazard caps the grade, and the drop raises a
    /// typed rule event.
    #[test]
    fn an_inspection_is_decided_whole_before_anything_is_written() {
        let rubric = Rubric::builtin();
        let definitions = crate::workflow::builtin();
        let definition = definitions.last().unwrap();
        let (taxonomy, routing, calendar) = (
            crate::taxonomy::Taxonomy::builtin(),
            crate::routing::Routing::default(),
            crate::calendar::Calendar::builtin(),
        );
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap();
        let here = unit(1, Some(5), Some(rubric.checklist_for(5, |_| 0)));
        let neighbour = unit(2, None, None);
        let open = [
            open_case(10, &here, "wiring"),
            open_case(11, &neighbour, "gas_heater"),
        ];
        let input = InspectionInput {
            unit_id: here.id,
            point: Some(here.point()),
            observed_at: None,
            crs: crate::spatial::crs::Crs::Wgs84,
            checklist: None,
            campaign_checks: None,
            note: None,
            findings: vec![],
            outcome: VisitOutcome::Inspected,
        };
        let facts = InspectionFacts {
            ctx: Context {
                definition,
                taxonomy: &taxonomy,
                routing: &routing,
                calendar: &calendar,
                now,
            },
            definition_id: 4,
            rubric: &rubric,
            unit: &here,
            open: &open,
            actor: Actor {
                role: Role::Inspector,
                id: "3".into(),
            },
            inspector_id: Some(InspectorId(3)),
            input: &input,
        };
        let d = decide_inspection(
            &facts,
            vec![
                hazard("wiring", "major", vec![0]),
                hazard("gas_heater", "critical", vec![1, 2]),
            ],
        );
        let attached: Vec<(CaseId, i64)> = d
            .plan
            .attachments
            .iter()
            .map(|a| (a.case_id, a.version))
            .collect();
        assert_eq!(attached, [(CaseId(10), 3)]);
        assert_eq!(d.plan.cases.len(), 1);
        let opened = &d.plan.cases[0];
        assert_eq!(opened.snapshot.state, definition.initial);
        assert_eq!(opened.snapshot.category, "gas_heater");
        assert_eq!(opened.snapshot.inspector_id, Some(InspectorId(3)));
        assert_eq!(opened.definition_id, 4);
        assert_eq!(
            opened.timer,
            machine::opening_timers(facts.ctx, &opened.snapshot)
                .into_iter()
                .next()
        );
        assert_eq!(d.plan.new_findings, [vec![1, 2]]);
        let duplicates: Vec<(usize, CaseId)> = d
            .plan
            .duplicates
            .iter()
            .map(|p| (p.finding, p.case_id))
            .collect();
        assert_eq!(duplicates, [(1, CaseId(11)), (2, CaseId(11))]);
        // Graded on the unit's last checklist, capped by the open hazards.
        let expected = rubric.grade(
            here.checklist.as_ref(),
            &[
                OpenHazard {
                    category: "wiring".into(),
                    severity: "major".into(),
                },
                OpenHazard {
                    category: "gas_heater".into(),
                    severity: "critical".into(),
                },
            ],
        );
        assert!(expected.stars < Some(5), "{expected:?}");
        assert_eq!(d.grade.stars, expected.stars);
        assert_eq!(d.view.stars, expected.stars);
        assert!(d.grade.changed);
        assert_eq!(d.grade.last_inspected_at, Some(now));
        assert_eq!(
            d.rule_event.map(|e| e.trigger),
            Some(crate::rules::Trigger::GradeDrop)
        );

        // A visit where no one was home decides no case and keeps the grade.
        let absent = InspectionInput {
            outcome: VisitOutcome::NoOneHome,
            ..input.clone()
        };
        let facts = InspectionFacts {
            input: &absent,
            ..facts
        };
        let d = decide_inspection(&facts, vec![]);
        assert!(d.plan.cases.is_empty() && d.plan.attachments.is_empty());
        assert_eq!(d.grade.stars, Some(5));
        assert!(!d.grade.changed && d.rule_event.is_none());
        assert_eq!(d.grade.last_inspected_at, None);
    }
}
