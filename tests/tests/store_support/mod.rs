//! The store conformance suite's fixture, shared by its files: a fresh store of each backend with the test city seeded and the workflow registered, and helpers that open cases and apply commands straight through the store.
// Each test file uses a part of the fixture.
#![allow(dead_code)]

use serde_json::{Map, Value, json};

use anju_engine::auth::{Principal, Scope};
use anju_engine::domain::{Actor, CaseId, Role, UnitId};
use anju_engine::machine::{self, CaseSnapshot, Command, Context};
use anju_engine::routing::Routing;
use anju_engine::store::{
    Applied, Idempotent, NewCase, NewInspection, RuleStep, SharedStore, TransitionRequest,
};
use anju_engine::taxonomy::Taxonomy;
use anju_engine::workflow;
use anju_tests::{Backend, TestDb, seed, t0};

pub(crate) struct Fixture {
    pub _db: TestDb,
    pub store: SharedStore,
    pub definition_id: i64,
}

pub(crate) async fn fixture(backend: Backend) -> Fixture {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    seed(&store).await;
    let def = &workflow::builtin()[0];
    let body = serde_json::to_value(def).unwrap();
    let definition_id = store
        .register_definition(&def.name, def.version, &def.content_hash(), &body, t0())
        .await
        .unwrap();
    Fixture {
        _db: db,
        store,
        definition_id,
    }
}

impl Fixture {
    /// Opens one case per category on `unit`, straight through the store.
    pub(crate) async fn open(&self, unit: i64, categories: &[&str]) -> Vec<CaseId> {
        let u = self.store.unit(UnitId(unit)).await.unwrap().unwrap();
        let cases: Vec<NewCase> = categories
            .iter()
            .map(|c| NewCase {
                definition_id: self.definition_id,
                snapshot: CaseSnapshot {
                    street_id: u.street_id,
                    grid_id: u.grid_id,
                    party_id: u.party_id,
                    ..CaseSnapshot::opened("discovered", c, "major", &u.address, &u.district_code)
                },
                note: None,
                evidence: vec!["photo:x".into()],
                lon: u.lon,
                lat: u.lat,
                actor: Actor::system("test"),
                data: json!({}),
                timer: None,
            })
            .collect();
        let inspection = NewInspection {
            unit_id: u.id,
            inspector_id: None,
            at: t0(),
            recorded_at: t0(),
            lon: u.lon,
            lat: u.lat,
            distance_m: 0.0,
            off_site: false,
            located: true,
            crs: anju_engine::spatial::crs::Crs::Wgs84,
            note: None,
            findings: cases.len() as u32,
            campaign_checks: None,
            rule_event: None,
            outcome: Default::default(),
            grade: anju_engine::store::GradeUpdate {
                unit_id: u.id,
                stars: None,
                score: None,
                checklist: None,
                reasons: vec![],
                changed: false,
                cause: "inspection".into(),
                last_inspected_at: Some(t0()),
                last_closed_at: None,
                next_due_at: None,
                at: t0(),
            },
        };
        match self
            .store
            .record_inspection(&inspection, &cases, &[], None, &|_| json!({}))
            .await
            .unwrap()
        {
            Idempotent::Created(r) => r.case_ids,
            Idempotent::Replayed(_) => unreachable!(),
        }
    }

    /// Grades `unit` from `checklist` (and the hazards given as open) by an inspection
    /// that finds nothing; returns the stars written.
    pub(crate) async fn grade(
        &self,
        unit: i64,
        checklist: anju_engine::grading::Checklist,
        open: &[anju_engine::grading::OpenHazard],
    ) -> Option<u8> {
        let u = self.store.unit(UnitId(unit)).await.unwrap().unwrap();
        let rubric = anju_engine::grading::Rubric::builtin();
        let grade = rubric.grade(Some(&checklist), open);
        let inspection = NewInspection {
            unit_id: u.id,
            inspector_id: None,
            at: t0(),
            recorded_at: t0(),
            lon: u.lon,
            lat: u.lat,
            distance_m: 0.0,
            off_site: false,
            located: true,
            crs: anju_engine::spatial::crs::Crs::Wgs84,
            note: None,
            findings: 0,
            campaign_checks: None,
            rule_event: None,
            outcome: Default::default(),
            grade: anju_engine::store::GradeUpdate {
                unit_id: u.id,
                stars: grade.stars,
                score: grade.score,
                checklist: Some(checklist),
                reasons: grade.reasons,
                changed: grade.stars != u.stars,
                cause: "inspection".into(),
                last_inspected_at: Some(t0()),
                last_closed_at: None,
                next_due_at: rubric.next_due(grade.stars, Some(t0()), None),
                at: t0(),
            },
        };
        self.store
            .record_inspection(&inspection, &[], &[], None, &|_| json!({}))
            .await
            .unwrap();
        grade.stars
    }

    /// Applies commands (as the city supervisor or system) through the pure machine.
    pub(crate) async fn apply(
        &self,
        requests: &[(CaseId, &str, Value, Option<i64>)],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<anju_engine::Result<Applied>> {
        self.apply_marked(requests, &[], now).await
    }

    /// Applies requests, the i-th as rule step `marks[i]` if there is one.
    pub(crate) async fn apply_marked(
        &self,
        requests: &[(CaseId, &str, Value, Option<i64>)],
        marks: &[i64],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<anju_engine::Result<Applied>> {
        self.apply_tampered(requests, marks, &|_, _| {}, now).await
    }

    /// Applies requests, letting `tamper` change the i-th decision before it is written
    /// (to make values the database refuses).
    pub(crate) async fn apply_tampered(
        &self,
        requests: &[(CaseId, &str, Value, Option<i64>)],
        marks: &[i64],
        tamper: &(dyn Fn(usize, &mut machine::Decision) + Sync),
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<anju_engine::Result<Applied>> {
        let def = &workflow::builtin()[0];
        let taxonomy = Taxonomy::builtin();
        let routing = Routing::new(self.store.departments().await.unwrap());
        let batch: Vec<TransitionRequest> = requests
            .iter()
            .enumerate()
            .map(|(i, (id, name, _, version))| TransitionRequest {
                case_id: *id,
                expected_version: *version,
                timer_seq: None,
                actor: Actor {
                    role: Role::Supervisor,
                    id: "1".into(),
                },
                command: name.to_string(),
                reason: Some("测试".into()),
                rule: marks.get(i).map(|m| RuleStep {
                    mark: *m,
                    attribution: json!({ "name": "test_rule", "version": 2 }),
                }),
            })
            .collect();
        let decide = |i: usize, case: &anju_engine::store::CaseRecord| {
            let (_, name, data, _) = &requests[i];
            let role = if def.commands[*name].roles.contains(&Role::System) {
                Role::System
            } else {
                Role::Supervisor
            };
            let principal = Principal {
                role,
                subject: 1,
                scope: if role == Role::System {
                    Scope::System
                } else {
                    Scope::City
                },
                account: None,
            };
            let cmd = Command {
                name: name.to_string(),
                data: data.as_object().cloned().unwrap_or_else(Map::new),
                reason: Some("测试".into()),
            };
            machine::decide(
                Context {
                    definition: def,
                    taxonomy: &taxonomy,
                    routing: &routing,
                    calendar: &anju_engine::calendar::Calendar::builtin(),
                    now,
                },
                &case.snapshot,
                &principal,
                &cmd,
            )
            .map(|mut d| {
                tamper(i, &mut d);
                d
            })
        };
        self.store
            .apply(
                &batch,
                &decide,
                &anju_engine::grading::Rubric::builtin(),
                now,
            )
            .await
            .unwrap()
    }
}

/// The place of a unit standing in this building's grid.
pub(crate) fn building_point_place(
    b: &anju_engine::registry::BuildingPlace,
) -> anju_engine::spatial::grids::PointPlace {
    anju_engine::spatial::grids::PointPlace {
        grid_id: Some(b.grid_id),
        community_id: Some(b.community_id),
        street_id: Some(b.street_id),
        district_code: b.district_code.clone(),
    }
}

pub(crate) fn state_of(r: &anju_engine::Result<Applied>) -> String {
    match r {
        Ok(Applied::Done { decision, .. }) => decision.next.state.clone(),
        Ok(Applied::TimerGone) => "timer-gone".into(),
        Ok(Applied::AlreadyApplied) => "already-applied".into(),
        Err(e) => format!("error: {e}"),
    }
}
