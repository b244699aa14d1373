//! The batch writer's decision, pure and compiled once for both backends: each command of a batch decided in arrival order against the cases as loaded in the transaction, and what the batch then writes (cases, events, messages, referrals, orders' document numbers, rule jobs, blacklist proposals), gathered per table.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::{Actor, Role, UnitId};
use crate::grading::{OpenHazard, Rubric};
use crate::machine::{CaseSnapshot, Decision, MessageDraft, ReferralChange, Regrade};
use crate::registry::Unit;
use crate::rules::Trigger;
use crate::store::{
    Applied, CaseRecord, Decider, EventRecord, GradeUpdate, NewCase, TimerRecord, TransitionRequest,
};

/// A case as a batch leaves it: its version before the batch (the update is guarded by
/// it), and its state and running timer after.
pub(crate) struct CaseWrite {
    pub before: i64,
    pub after: CaseSnapshot,
    pub definition_id: i64,
    pub timer: Option<TimerRecord>,
    pub timer_seq: i64,
}

/// How a column's value is read off a case as a batch leaves it.
pub(crate) type CellOf = fn(&CaseWrite) -> Cell;

/// A value of a case column as a batch or an opening writes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Int(i64),
    MaybeInt(Option<i64>),
    MaybeText(Option<String>),
    Text(String),
    Real(f64),
    Json(Value),
}

/// A case as an inspection opens it, with what only an opening writes.
pub(crate) struct Opening<'a> {
    pub case: &'a NewCase,
    pub unit_id: i64,
    pub inspection_id: i64,
    pub at: DateTime<Utc>,
}

/// How a column's value is read off a case as an inspection opens it.
pub(crate) type OpenCellOf = fn(&Opening<'_>) -> Cell;

/// The columns of `cases` only an opening writes (a batch never changes them; a case
/// that moves has its place's columns rewritten by a statement of its own). A case is
/// inserted with these and `CASE_UPDATES`, and read back by `case_columns()`, which
/// lists `id`, these and `CASE_UPDATES` in this order: a new column is one line here
/// or there, with its migration and its field in `case_from_row`.
pub(crate) const CASE_OPENS: &[(&str, OpenCellOf)] = &[
    ("definition_id", |o| Cell::Int(o.case.definition_id)),
    ("unit_id", |o| Cell::Int(o.unit_id)),
    ("inspection_id", |o| Cell::MaybeInt(Some(o.inspection_id))),
    ("category", |o| Cell::Text(o.case.snapshot.category.clone())),
    ("severity", |o| Cell::Text(o.case.snapshot.severity.clone())),
    ("address", |o| Cell::Text(o.case.snapshot.address.clone())),
    ("district_code", |o| {
        Cell::Text(o.case.snapshot.district_code.clone())
    }),
    // 0 stands for none in the place's columns (see `some_id`).
    ("street_id", |o| {
        Cell::Int(o.case.snapshot.street_id.map_or(0, |i| i.0))
    }),
    ("grid_id", |o| {
        Cell::Int(o.case.snapshot.grid_id.map_or(0, |i| i.0))
    }),
    ("party_id", |o| {
        Cell::MaybeInt(o.case.snapshot.party_id.map(|p| p.0))
    }),
    ("inspector_id", |o| {
        Cell::MaybeInt(o.case.snapshot.inspector_id.map(|i| i.0))
    }),
    ("note", |o| Cell::MaybeText(o.case.note.clone())),
    ("evidence", |o| {
        Cell::Json(Value::from(o.case.evidence.clone()))
    }),
    ("lon", |o| Cell::Real(o.case.lon)),
    ("lat", |o| Cell::Real(o.case.lat)),
    ("opened_at", |o| Cell::Int(o.at.timestamp_millis())),
    ("updated_at", |o| Cell::Int(o.at.timestamp_millis())),
];

impl Opening<'_> {
    /// The case as it is opened, for the columns a batch also writes.
    pub(crate) fn as_write(&self) -> CaseWrite {
        let timer = self.case.timer.as_ref().map(|t| TimerRecord {
            case_id: self.case.snapshot.id,
            seq: 1,
            kind: t.kind.clone(),
            fire_command: t.fire.clone(),
            due_at: t.due_at,
            from_at: Some(t.from),
            provisional: false,
        });
        CaseWrite {
            before: 0,
            after: self.case.snapshot.clone(),
            definition_id: self.case.definition_id,
            timer_seq: i64::from(timer.is_some()),
            timer,
        }
    }
}

/// Every column a case is read with, in one order: `id`, `CASE_OPENS`, `CASE_UPDATES`.
pub(crate) fn case_columns() -> &'static str {
    static COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        std::iter::once("id")
            .chain(CASE_OPENS.iter().map(|(c, _)| *c))
            .chain(CASE_UPDATES.iter().map(|(c, _)| *c))
            .collect::<Vec<_>>()
            .join(", ")
    });
    &COLUMNS
}

/// The columns of `cases` a batch updates, each with how it is read off a case as the
/// batch leaves it: the one list both backends build their statements from (SQLite's
/// multi-row VALUES, PostgreSQL's arrays), so that a new column a batch writes is one
/// line here (with its migration and its field in `case_from_row`).
/// `id` and the version before (`before`) key the update; `updated_at` is the batch's
/// time and the timer's claim is cleared.
pub(crate) const CASE_UPDATES: &[(&str, CellOf)] = &[
    ("state", |w| Cell::Text(w.after.state.clone())),
    ("version", |w| Cell::Int(w.after.version)),
    ("department_id", |w| {
        Cell::MaybeInt(w.after.department_id.map(|d| d.0))
    }),
    ("deadline_at", |w| {
        Cell::MaybeInt(w.after.deadline_at.map(|t| t.timestamp_millis()))
    }),
    ("order_no", |w| Cell::Int(i64::from(w.after.order_no))),
    ("escalation", |w| Cell::Int(i64::from(w.after.escalation))),
    ("reopen_count", |w| {
        Cell::Int(i64::from(w.after.reopen_count))
    }),
    ("closed_at", |w| {
        Cell::MaybeInt(w.after.closed_at.map(|t| t.timestamp_millis()))
    }),
    ("timer_seq", |w| Cell::Int(w.timer_seq)),
    ("timer_kind", |w| {
        Cell::MaybeText(w.timer.as_ref().map(|t| t.kind.clone()))
    }),
    ("timer_fire", |w| {
        Cell::MaybeText(w.timer.as_ref().map(|t| t.fire_command.clone()))
    }),
    ("timer_from_at", |w| {
        Cell::MaybeInt(
            w.timer
                .as_ref()
                .and_then(|t| t.from_at)
                .map(|t| t.timestamp_millis()),
        )
    }),
    ("timer_due_at", |w| {
        Cell::MaybeInt(w.timer.as_ref().map(|t| t.due_at.timestamp_millis()))
    }),
    ("priority", |w| Cell::Int(i64::from(w.after.priority))),
    ("review_required", |w| {
        Cell::Int(i64::from(w.after.review_required))
    }),
    ("rule_mark", |w| Cell::Int(w.after.rule_mark)),
    ("acted_version", |w| Cell::Int(w.after.acted_version)),
    ("objected_order", |w| {
        Cell::Int(i64::from(w.after.objected_order))
    }),
    ("order_hours", |w| Cell::Int(i64::from(w.after.order_hours))),
];

/// What a batch of decisions writes, gathered so that each table is written with one
/// multi-row statement per batch instead of one statement per command.
#[derive(Default)]
pub(crate) struct Writes {
    /// By case id.
    pub cases: BTreeMap<i64, CaseWrite>,
    pub events: Vec<EventRow>,
    /// (case, event seq, message).
    pub messages: Vec<(i64, i64, MessageDraft)>,
    /// (case, event seq, change).
    pub referrals: Vec<(i64, i64, ReferralChange)>,
    /// (case, event seq, trigger): events the escalation rules listen to.
    pub rule_jobs: Vec<(i64, i64, Trigger)>,
    /// Blacklist proposals: (party, reason, source, case, district).
    pub blacklist: Vec<Proposal>,
    /// (unit, case, why): units whose grade the batch changes, as a case of theirs was
    /// closed (its cap lifted, a return visit due) or reopened (its cap back).
    pub regrades: Vec<(i64, i64, Regrade)>,
    /// Orders issued: each gets its office's next document number for its year.
    pub orders: Vec<IssuedOrder>,
    /// (upload, unit): the evidence the batch's events reference, linked to the unit
    /// whose cases now reference it, in the batch's transaction (so that a refused
    /// command links nothing). Sorted and distinct once the batch is decided.
    pub evidence_links: Vec<(String, i64)>,
    /// Cases whose place (grid, street, district) or workflow version changed: written
    /// by a statement of their own, so that the common update leaves the columns of
    /// the place indexes alone.
    pub moved: std::collections::BTreeSet<i64>,
}

impl Writes {
    /// The orders issued, in the order their offices' counters are taken: by office and
    /// year (then case), the same in every batch, so that two batches numbering orders
    /// of the same offices cannot wait on each other's counters (PostgreSQL found such
    /// deadlocks at 64 clients).
    pub(crate) fn orders_in_lock_order(&self) -> Vec<&IssuedOrder> {
        let mut orders: Vec<&IssuedOrder> = self.orders.iter().collect();
        orders.sort_by(|a, b| {
            (&a.office, a.year, a.case, a.order_no).cmp(&(&b.office, b.year, b.case, b.order_no))
        });
        orders
    }
}

/// A rectification order issued by a command of the batch.
pub(crate) struct IssuedOrder {
    pub case: i64,
    pub seq: i64,
    pub order_no: i32,
    /// The issuing office: the case's district (its rental office).
    pub office: String,
    /// The year in China time.
    pub year: i32,
}

/// A blacklist proposal a rule's command made, written with the batch.
pub(crate) struct Proposal {
    pub party: i64,
    pub reason: String,
    /// The rule that proposed it (`rule:<name>@v<version>`).
    pub source: String,
    pub case: i64,
    pub district: String,
}

pub(crate) struct EventRow {
    pub case_id: i64,
    pub seq: i64,
    pub actor: Actor,
    pub command: String,
    pub from: String,
    pub to: String,
    pub reason: Option<String>,
    pub data: Value,
}

impl Writes {
    pub(crate) fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// Notes the case's state after a change (a transition, or a timer consumed);
    /// `before` is its version before the batch.
    pub(crate) fn touch(&mut self, before: i64, case: &CaseRecord) {
        self.cases.insert(
            case.snapshot.id.0,
            CaseWrite {
                before,
                after: case.snapshot.clone(),
                definition_id: case.definition_id,
                timer: case.timer.clone(),
                timer_seq: case.timer_seq,
            },
        );
    }

    /// Notes what a decision writes, and returns its event as it will be stored.
    pub(crate) fn record(
        &mut self,
        req: &TransitionRequest,
        before: &CaseSnapshot,
        d: &Decision,
        at: DateTime<Utc>,
    ) -> EventRecord {
        let id = d.next.id.0;
        if (&before.district_code, before.street_id, before.grid_id)
            != (&d.next.district_code, d.next.street_id, d.next.grid_id)
        {
            self.moved.insert(id);
        }
        let row = EventRow {
            case_id: id,
            seq: d.next.version,
            actor: req.actor.clone(),
            command: req.command.clone(),
            from: d.from.clone(),
            to: d.next.state.clone(),
            reason: req.reason.clone().filter(|r| !r.trim().is_empty()),
            data: match (&req.rule, &d.data) {
                (Some(step), Value::Object(data)) => {
                    let mut data = data.clone();
                    data.insert("rule".into(), step.attribution.clone());
                    Value::Object(data)
                }
                _ => d.data.clone(),
            },
        };
        let event = EventRecord {
            seq: row.seq,
            at,
            actor: row.actor.clone(),
            command: row.command.clone(),
            from_state: Some(row.from.clone()),
            to_state: row.to.clone(),
            reason: row.reason.clone(),
            data: row.data.clone(),
        };
        self.events.push(row);
        if let Some(trigger) = d.trigger {
            self.rule_jobs.push((id, d.next.version, trigger));
        }
        if let (Some(reason), Some(party)) = (&d.blacklist, d.next.party_id) {
            let at = self.blacklist.partition_point(|e| e.party <= party.0);
            self.blacklist.insert(
                at,
                Proposal {
                    party: party.0,
                    reason: reason.clone(),
                    source: req.actor.id.clone(),
                    case: id,
                    district: d.next.district_code.clone(),
                },
            );
        }
        if d.next.order_no > before.order_no {
            use chrono::Datelike;
            self.orders.push(IssuedOrder {
                case: id,
                seq: d.next.version,
                order_no: d.next.order_no,
                office: d.next.district_code.clone(),
                year: at.with_timezone(&crate::time::china_time()).year(),
            });
        }
        self.messages
            .extend(d.messages.iter().map(|m| (id, d.next.version, m.clone())));
        if let Some(change) = &d.referral {
            self.referrals.push((id, d.next.version, change.clone()));
        }
        event
    }
}

/// How many statements a batch's rule jobs and blacklist proposals take. Proposals
/// are written in party order (see `Writes::record`), so that two batches proposing
/// the same parties wait for each other in one order and cannot deadlock.
pub(crate) fn rule_writes_of(writes: &Writes) -> usize {
    writes.rule_jobs.len() + writes.blacklist.len()
}

/// The distinct case ids of a batch, ascending (the order cases are locked in).
pub(crate) fn case_ids(batch: &[TransitionRequest]) -> Vec<i64> {
    let mut ids: Vec<i64> = batch.iter().map(|r| r.case_id.0).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Decides a batch in arrival order, each command seeing the case as the ones before it
/// in the batch left it. Pure: `cases` are the loaded cases, updated in place. A refusal
/// leaves nothing to write, except that a fired timer is consumed even if its command
/// is refused (it belonged to a state the case has left).
pub(crate) fn decide_batch(
    batch: &[TransitionRequest],
    cases: &mut BTreeMap<i64, CaseRecord>,
    decide: &Decider<'_>,
    now: DateTime<Utc>,
) -> (Vec<crate::Result<Applied>>, Writes) {
    let mut writes = Writes::default();
    let mut results = Vec::with_capacity(batch.len());
    // The version each case had before the batch: its update is guarded by it.
    let before: BTreeMap<i64, i64> = cases
        .iter()
        .map(|(id, c)| (*id, c.snapshot.version))
        .collect();
    for (i, req) in batch.iter().enumerate() {
        let result = (|| {
            let case = cases
                .get_mut(&req.case_id.0)
                .ok_or_else(|| crate::Error::not_found("case", req.case_id))?;
            let was = before[&req.case_id.0];
            if let Some(seq) = req.timer_seq {
                if case.timer.as_ref().is_none_or(|t| t.seq != seq) {
                    return Ok(Applied::TimerGone);
                }
                case.timer = None;
                writes.touch(was, case);
            }
            if let Some(step) = &req.rule
                && step.mark <= case.snapshot.rule_mark
            {
                return Ok(Applied::AlreadyApplied);
            }
            // The caller's scope is checked (inside `decide`) before the version: a case
            // the caller may not see answers "not found" whatever the request says.
            let outcome = decide(i, case);
            if let Err(e @ anju_core::Error::NotFound { .. }) = outcome {
                return Err(e.into());
            }
            if let Some(expected) = req.expected_version {
                check_version(expected, &case.snapshot, &outcome)?;
            }
            let mut decision = outcome?;
            if let Some(step) = &req.rule {
                decision.next.rule_mark = step.mark;
            }
            if let Some(definition) = decision.definition_id {
                case.definition_id = definition;
                writes.moved.insert(req.case_id.0);
            }
            if req.actor.role != Role::System {
                decision.next.acted_version = decision.next.version;
            }
            let event = writes.record(req, &case.snapshot, &decision, now);
            for id in crate::evidence::evidence_refs(&event.data) {
                if crate::evidence::is_id(&id) {
                    writes.evidence_links.push((id, case.unit_id.0));
                }
            }
            if let Some(regrade) = decision.regrade {
                writes
                    .regrades
                    .push((case.unit_id.0, req.case_id.0, regrade));
            }
            case.snapshot = decision.next.clone();
            case.apply_timers(&decision.cancel_timers, &decision.schedule_timers);
            case.updated_at = now;
            writes.touch(was, case);
            Ok(Applied::Done {
                decision: Box::new(decision),
                at: now,
                case: Box::new(case.clone()),
                event: Box::new(event),
            })
        })();
        results.push(result);
    }
    writes.evidence_links.sort();
    writes.evidence_links.dedup();
    (results, writes)
}

/// A unit a batch regrades, as stored before the batch, with its open cases by id.
pub(crate) struct UnitBefore {
    pub unit: Unit,
    pub open: BTreeMap<i64, OpenHazard>,
}

/// The units' grades after a batch that closed or reopened cases of theirs. Pure: the
/// units and their open cases as stored before the batch, corrected by the batch's
/// cases as it leaves them (a case closed by the batch no longer caps its unit, one
/// reopened does again). A closure also dates the unit's last closed case, from which
/// its return visit is due.
pub(crate) fn grade_units(
    regrades: &[(i64, i64, Regrade)],
    cases: &BTreeMap<i64, CaseRecord>,
    units: Vec<UnitBefore>,
    rubric: &Rubric,
    now: DateTime<Utc>,
) -> Vec<GradeUpdate> {
    units
        .into_iter()
        .filter_map(|UnitBefore { unit, mut open }| {
            let ours: Vec<&(i64, i64, Regrade)> =
                regrades.iter().filter(|r| r.0 == unit.id.0).collect();
            let &&(_, last_case, last) = ours.last()?;
            for case in cases.values().filter(|c| c.unit_id == unit.id) {
                if case.snapshot.closed_at.is_none() {
                    open.insert(
                        case.snapshot.id.0,
                        OpenHazard {
                            category: case.snapshot.category.clone(),
                            severity: case.snapshot.severity.clone(),
                        },
                    );
                } else {
                    open.remove(&case.snapshot.id.0);
                }
            }
            let hazards: Vec<OpenHazard> = open.into_values().collect();
            let grade = rubric.grade(unit.checklist.as_ref(), &hazards);
            let closed = ours.iter().any(|r| r.2 == Regrade::Closed);
            let last_closed = if closed {
                Some(now)
            } else {
                unit.last_closed_at
            };
            Some(GradeUpdate {
                unit_id: UnitId(unit.id.0),
                next_due_at: rubric.next_due(grade.stars, unit.last_inspected_at, last_closed),
                changed: grade.stars != unit.stars,
                stars: grade.stars,
                score: grade.score,
                checklist: None,
                reasons: grade.reasons,
                cause: match last {
                    Regrade::Closed => format!("case {last_case} closed"),
                    Regrade::Reopened => format!("case {last_case} reopened"),
                },
                last_inspected_at: None,
                last_closed_at: closed.then_some(now),
                at: now,
            })
        })
        .collect()
}

/// Optimistic concurrency over what people do. A command names the version of the case
/// its sender saw. It is refused as stale if a person has acted on the case since (two
/// people acting on one case conflict), or if events the system added since (a timer,
/// a rule, a finding attached by an inspection) made the command illegal. A command
/// still legal after system events only is applied: rules add events of their own right
/// after transitions, and a client should not lose that race against the engine.
pub(crate) fn check_version(
    expected: i64,
    case: &CaseSnapshot,
    outcome: &anju_core::Result<Decision>,
) -> anju_core::Result<()> {
    let stale = anju_core::Error::StaleVersion {
        expected,
        actual: case.version,
    };
    if expected == case.version {
        return Ok(());
    }
    if expected > case.version || expected < case.acted_version {
        return Err(stale);
    }
    match outcome {
        Err(anju_core::Error::IllegalTransition { .. }) => Err(stale),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL's update sends each column of `CASE_UPDATES` as an array of integers
    /// or of texts: no other kind of cell may be there.
    #[test]
    fn a_batch_updates_integers_and_texts_only() {
        let write = CaseWrite {
            before: 1,
            after: CaseSnapshot {
                id: crate::domain::CaseId(1),
                version: 2,
                acted_version: 0,
                ..CaseSnapshot::opened("s", "c", "minor", "a", "440103")
            },
            definition_id: 1,
            timer: None,
            timer_seq: 0,
        };
        for (column, cell) in CASE_UPDATES {
            assert!(
                matches!(
                    cell(&write),
                    Cell::Int(_) | Cell::MaybeInt(_) | Cell::Text(_) | Cell::MaybeText(_)
                ),
                "{column}"
            );
        }
        let columns = case_columns();
        assert!(
            columns.starts_with("id, definition_id, unit_id,"),
            "{columns}"
        );
        assert!(
            columns.ends_with("rule_mark, acted_version, objected_order, order_hours"),
            "{columns}"
        );
    }
}
