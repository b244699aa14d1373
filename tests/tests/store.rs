//! The store conformance suite: the same assertions against the SQLite and the PostgreSQL implementation of `Store`.

use chrono::TimeDelta;
use serde_json::{Map, Value, json};

use anju_engine::auth::{Principal, Scope};
use anju_engine::domain::{Actor, CaseId, DepartmentId, GridId, PartyId, Role, UnitId};
use anju_engine::machine::{self, CaseSnapshot, Command, Context};
use anju_engine::registry::{Record, UnitRow};
use anju_engine::routing::Routing;
use anju_engine::store::{
    Applied, CaseFilter, IdempotencyKey, Idempotent, NewCase, NewInspection, RuleStep, SharedStore,
    TransitionRequest,
};
use anju_engine::taxonomy::Taxonomy;
use anju_engine::workflow;
use anju_tests::{Backend, TestDb, backend_tests, seed, t0};

struct Fixture {
    _db: TestDb,
    store: SharedStore,
    definition_id: i64,
}

async fn fixture(backend: Backend) -> Fixture {
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
    async fn open(&self, unit: i64, categories: &[&str]) -> Vec<CaseId> {
        let u = self.store.unit(UnitId(unit)).await.unwrap().unwrap();
        let cases: Vec<NewCase> = categories
            .iter()
            .map(|c| NewCase {
                definition_id: self.definition_id,
                snapshot: CaseSnapshot {
                    id: CaseId(0),
                    state: "discovered".into(),
                    version: 1,
                    category: c.to_string(),
                    severity: "major".into(),
                    address: u.address.clone(),
                    district_code: u.district_code.clone(),
                    street_id: u.street_id,
                    grid_id: u.grid_id,
                    party_id: u.party_id,
                    inspector_id: None,
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
            lon: u.lon,
            lat: u.lat,
            distance_m: 0.0,
            off_site: false,
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

    /// Applies commands (as the city supervisor or system) through the pure machine.
    async fn apply(
        &self,
        requests: &[(CaseId, &str, Value, Option<i64>)],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<anju_engine::Result<Applied>> {
        self.apply_marked(requests, &[], now).await
    }

    /// Applies requests, the i-th as rule step `marks[i]` if there is one.
    async fn apply_marked(
        &self,
        requests: &[(CaseId, &str, Value, Option<i64>)],
        marks: &[i64],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<anju_engine::Result<Applied>> {
        self.apply_tampered(requests, marks, &|_, _| {}, now).await
    }

    /// Applies requests, letting `tamper` change the i-th decision before it is written
    /// (to make values the database refuses).
    async fn apply_tampered(
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
        self.store.apply(&batch, &decide, now).await.unwrap()
    }
}

/// The place of a unit standing in this building's grid.
fn building_point_place(
    b: &anju_engine::registry::BuildingPlace,
) -> anju_engine::spatial::grids::PointPlace {
    anju_engine::spatial::grids::PointPlace {
        grid_id: Some(b.grid_id),
        community_id: Some(b.community_id),
        street_id: Some(b.street_id),
        district_code: b.district_code.clone(),
    }
}

fn state_of(r: &anju_engine::Result<Applied>) -> String {
    match r {
        Ok(Applied::Done { decision, .. }) => decision.next.state.clone(),
        Ok(Applied::TimerGone) => "timer-gone".into(),
        Ok(Applied::AlreadyApplied) => "already-applied".into(),
        Err(e) => format!("error: {e}"),
    }
}

/// A rule's action carries a step number; the case remembers the last step applied, so
/// a step retried (a rule job run again after a crash, or by a second process) is
/// skipped and changes nothing, in the same transaction that would have applied it.
async fn a_rule_step_is_applied_once(backend: Backend) {
    let f = fixture(backend).await;
    let id = f.open(1, &["wiring"]).await[0];
    let r = f
        .apply_marked(&[(id, "notify", json!({}), None)], &[5 * 1024 + 1], t0())
        .await;
    assert_eq!(state_of(&r[0]), "notified");
    let before = f.store.fingerprint().await.unwrap();
    // The same step again, even as another command: skipped, nothing written.
    let r = f
        .apply_marked(&[(id, "cancel", json!({}), None)], &[5 * 1024 + 1], t0())
        .await;
    assert_eq!(state_of(&r[0]), "already-applied");
    assert_eq!(f.store.fingerprint().await.unwrap(), before);
    // An earlier step is skipped too; the next one applies.
    let r = f
        .apply_marked(
            &[
                (id, "cancel", json!({}), None),
                (id, "cancel", json!({}), None),
            ],
            &[4 * 1024 + 9, 5 * 1024 + 2],
            t0(),
        )
        .await;
    assert_eq!(state_of(&r[0]), "already-applied");
    assert_eq!(state_of(&r[1]), "cancelled");
    // The events carry the rule's attribution.
    let events = f.store.case_events(id).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.command, "cancel");
    assert_eq!(last.data["rule"]["name"], "test_rule");
    assert_eq!(last.data["rule"]["version"], 2);
    assert_eq!(events.len(), 3, "open, notify, cancel");
}

/// A command whose values the database refuses (here a referral to a department that
/// does not exist, against a foreign key) fails alone: the batch is applied again one
/// command per transaction, and the other commands of the batch commit.
async fn a_command_the_database_refuses_fails_alone(backend: Backend) {
    let f = fixture(backend).await;
    let ids = f.open(1, &["wiring", "gas_heater", "sanitation"]).await;
    let requests: Vec<(CaseId, &str, Value, Option<i64>)> = ids
        .iter()
        .map(|id| (*id, "notify", json!({}), Some(1)))
        .collect();
    let tamper = |i: usize, d: &mut machine::Decision| {
        if i == 1 {
            d.referral = Some(anju_engine::machine::ReferralChange::Open {
                department_id: DepartmentId(987_654),
            });
        }
    };
    let r = f.apply_tampered(&requests, &[], &tamper, t0()).await;
    assert_eq!(state_of(&r[0]), "notified");
    assert!(
        matches!(&r[1], Err(anju_engine::Error::Store(_))),
        "{}",
        state_of(&r[1])
    );
    assert_eq!(state_of(&r[2]), "notified");
    for (id, state, events) in [
        (ids[0], "notified", 2),
        (ids[1], "discovered", 1),
        (ids[2], "notified", 2),
    ] {
        let case = f.store.case(id).await.unwrap().unwrap();
        assert_eq!(case.snapshot.state, state, "case {id}");
        assert_eq!(
            f.store.case_events(id).await.unwrap().len(),
            events,
            "case {id}"
        );
    }
    assert!(f.store.case_referrals(ids[1]).await.unwrap().is_empty());
    // The refused case is still usable: the same command, untampered, commits.
    let r = f
        .apply(&[(ids[1], "notify", json!({}), Some(1))], t0())
        .await;
    assert_eq!(state_of(&r[0]), "notified");
}

/// A case's rule jobs form a queue worked off in order: a claim takes the oldest pending
/// job of a case (its head) and, with room left, the jobs behind it; no other claim
/// takes any job of that case while they are held; a job added behind held ones waits
/// for the next claim; a claim left unfinished is taken again after its lease.
async fn rule_jobs_run_in_order_per_case(backend: Backend) {
    let f = fixture(backend).await;
    let ids = f.open(1, &["wiring", "gas_heater"]).await;
    let (a, b) = (ids[0], ids[1]);
    // Two days' sweeps: a job for each case, then another behind a's.
    assert!(
        f.store
            .add_sweep_jobs("2026-03-01", &[b, a], t0())
            .await
            .unwrap()
    );
    assert!(
        f.store
            .add_sweep_jobs("2026-03-02", &[a], t0())
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .add_sweep_jobs("2026-03-02", &[a], t0())
            .await
            .unwrap(),
        "once a day"
    );
    let lease = TimeDelta::seconds(60);
    let claim = |now: chrono::DateTime<chrono::Utc>, limit: u32, worker: &'static str| {
        let store = f.store.clone();
        async move {
            let jobs = store
                .claim_rule_jobs(now, limit, now + lease, worker)
                .await
                .unwrap();
            jobs.into_iter()
                .map(|j| (j.case_id, j.id))
                .collect::<Vec<_>>()
        }
    };
    // Room for one: a's head only.
    let one = claim(t0(), 1, "w1").await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].0, a);
    // Another worker gets b's head, never a's second job.
    let other = claim(t0(), 10, "w2").await;
    assert_eq!(other.iter().map(|j| j.0).collect::<Vec<_>>(), [b]);
    assert!(
        claim(t0(), 10, "w3").await.is_empty(),
        "claimed jobs are held"
    );
    assert_eq!(f.store.pending_rule_jobs().await.unwrap(), 3);
    // a's first job done: its second is the head, and the next claim takes it.
    f.store
        .finish_rule_jobs(&[(one[0].1, json!({}))], t0())
        .await
        .unwrap();
    let next = claim(t0(), 10, "w1").await;
    assert_eq!(next.iter().map(|j| j.0).collect::<Vec<_>>(), [a]);
    assert!(next[0].1 > one[0].1);
    // Jobs added behind held ones wait.
    assert!(
        f.store
            .add_sweep_jobs("2026-03-03", &[a, b], t0())
            .await
            .unwrap()
    );
    assert!(claim(t0(), 10, "w3").await.is_empty());
    // After the lease, one claim takes each case's head and the job behind it.
    let later = t0() + lease + TimeDelta::seconds(1);
    let all = claim(later, 10, "w3").await;
    let cases: Vec<CaseId> = all.iter().map(|j| j.0).collect();
    assert_eq!(cases.iter().filter(|c| **c == a).count(), 2, "{all:?}");
    assert_eq!(cases.iter().filter(|c| **c == b).count(), 2, "{all:?}");
    assert!(all.contains(&next[0]) && all.contains(&other[0]), "{all:?}");
    let done: Vec<(i64, serde_json::Value)> = all.iter().map(|j| (j.1, json!({}))).collect();
    f.store.finish_rule_jobs(&done, later).await.unwrap();
    assert!(claim(later + lease * 2, 10, "w1").await.is_empty());
    assert_eq!(f.store.pending_rule_jobs().await.unwrap(), 0);
}

async fn definitions_are_stored_once_and_never_silently_changed(backend: Backend) {
    let f = fixture(backend).await;
    let def = &workflow::builtin()[0];
    let body = serde_json::to_value(def).unwrap();
    let again = f
        .store
        .register_definition(&def.name, def.version, &def.content_hash(), &body, t0())
        .await
        .unwrap();
    assert_eq!(again, f.definition_id);
    let err = f
        .store
        .register_definition(&def.name, def.version, "0000", &body, t0())
        .await
        .unwrap_err();
    assert!(matches!(err, anju_engine::Error::Conflict(_)), "{err}");
    let stored = f.store.definitions().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1, body);
}

async fn imports_are_all_or_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let before = f.store.fingerprint().await.unwrap();
    let bad = vec![
        Record::Party {
            id: PartyId(80_001),
            kind: "landlord".into(),
            name: "赵六".into(),
            phone: None,
            email: None,
        },
        Record::Unit {
            id: UnitId(80_001),
            address_code: "Z-1".into(),
            building_id: anju_engine::domain::BuildingId(999_999),
            address: "无楼".into(),
            lon: 113.3,
            lat: 23.1,
            floor_area: 20.0,
            occupants: 1,
            party_id: Some(PartyId(80_001)),
            evening_only: false,
            stars: None,
            checklist: None,
            last_inspected_at: None,
            next_due_at: None,
        },
    ];
    let err = f.store.import(&bad, t0()).await.unwrap_err();
    assert!(matches!(err, anju_engine::Error::Invalid(_)), "{err}");
    assert_eq!(f.store.fingerprint().await.unwrap(), before);
    let good = vec![
        bad[0].clone(),
        Record::Unit {
            id: UnitId(80_001),
            address_code: "Z-1".into(),
            building_id: anju_engine::domain::BuildingId(1),
            address: "一号楼".into(),
            lon: 113.3,
            lat: 23.1,
            floor_area: 20.0,
            occupants: 1,
            party_id: Some(PartyId(80_001)),
            evening_only: false,
            stars: None,
            checklist: None,
            last_inspected_at: None,
            next_due_at: None,
        },
    ];
    let counts = f.store.import(&good, t0()).await.unwrap();
    assert_eq!((counts.parties, counts.units), (1, 1));
    f.store.finish_import().await.unwrap();
    // Ids created after an import continue past the imported ones.
    let place = f.store.building_place(1).await.unwrap().unwrap();
    let row = UnitRow {
        address_code: "Z-2".into(),
        address: "一号楼 2".into(),
        point: anju_engine::domain::Point::parse(113.3, 23.1, "p").unwrap(),
        floor_area: 30.0,
        occupants: 2,
        building_id: place.building_id,
        place: building_point_place(&place),
        party_id: None,
    };
    let created = match f
        .store
        .create_unit(&row, None, &|_| json!({}), t0())
        .await
        .unwrap()
    {
        Idempotent::Created(u) => u,
        Idempotent::Replayed(_) => unreachable!(),
    };
    assert_eq!(created.id, UnitId(80_002));
    let dup = f
        .store
        .create_unit(&row, None, &|_| json!({}), t0())
        .await
        .unwrap_err();
    assert!(matches!(dup, anju_engine::Error::Conflict(_)), "{dup}");
}

async fn idempotent_creates_replay_the_stored_response(backend: Backend) {
    let f = fixture(backend).await;
    let place = f.store.building_place(1).await.unwrap().unwrap();
    let row = UnitRow {
        address_code: "IDEM-1".into(),
        address: "幂等 1".into(),
        point: anju_engine::domain::Point::parse(113.3, 23.1, "p").unwrap(),
        floor_area: 30.0,
        occupants: 2,
        building_id: place.building_id,
        place: building_point_place(&place),
        party_id: Some(PartyId(1)),
    };
    let key = IdempotencyKey {
        subject: "inspector:1".into(),
        key: "k1".into(),
        request_hash: "h1".into(),
    };
    let respond = |u: &anju_engine::registry::Unit| json!({ "id": u.id, "code": u.address_code });
    let first = f
        .store
        .create_unit(&row, Some(&key), &respond, t0())
        .await
        .unwrap();
    let Idempotent::Created(unit) = first else {
        panic!("first create replayed")
    };
    let again = f
        .store
        .create_unit(&row, Some(&key), &respond, t0())
        .await
        .unwrap();
    let Idempotent::Replayed(body) = again else {
        panic!("retry created again")
    };
    assert_eq!(body, json!({ "id": unit.id, "code": "IDEM-1" }));
    let other = IdempotencyKey {
        request_hash: "h2".into(),
        ..key.clone()
    };
    assert!(matches!(
        f.store
            .create_unit(&row, Some(&other), &respond, t0())
            .await,
        Err(anju_engine::Error::IdempotencyKeyReused)
    ));
    // Unit 1's current party was recorded in the responsibility history.
    let u = f.store.unit(unit.id).await.unwrap().unwrap();
    assert_eq!(u.party_id, Some(PartyId(1)));
}

async fn a_batch_applies_in_order_and_refusals_write_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let ids = f.open(1, &["wiring", "sanitation"]).await;
    let (a, b) = (ids[0], ids[1]);
    let before = f.store.fingerprint().await.unwrap();
    let results = f
        .apply(
            &[
                (b, "notify", json!({}), Some(1)),
                (a, "notify", json!({}), Some(1)),
                (a, "notify", json!({}), Some(2)), // illegal in `notified`
                (a, "refer", json!({}), Some(1)),  // stale: a is at version 2 now
                (CaseId(999_999), "notify", json!({}), None), // no such case
                (a, "cancel", json!({}), Some(2)),
            ],
            t0(),
        )
        .await;
    let states: Vec<String> = results.iter().map(state_of).collect();
    assert_eq!(states[0], "notified");
    assert_eq!(states[1], "notified");
    assert!(
        states[2].contains("not allowed in state `notified`"),
        "{}",
        states[2]
    );
    assert!(
        states[3].contains("stale version: expected 1, the case is at version 2"),
        "{}",
        states[3]
    );
    assert!(states[4].contains("case 999999 not found"), "{}", states[4]);
    assert_eq!(states[5], "cancelled");
    let after = f.store.fingerprint().await.unwrap();
    let get = |fp: &[(String, i64)], k: &str| fp.iter().find(|(n, _)| n == k).unwrap().1;
    assert_eq!(
        get(&after, "case_events") - get(&before, "case_events"),
        3,
        "three commands were applied"
    );
    let events = f.store.case_events(a).await.unwrap();
    let seq: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seq, [1, 2, 3]);
    assert_eq!(events[2].reason.as_deref(), Some("测试"));
    assert!(
        f.store.case_timers(a).await.unwrap().is_empty(),
        "cancel removed a's deadline"
    );
    assert_eq!(f.store.case_timers(b).await.unwrap().len(), 1);
    assert_eq!(f.store.case_outbox(b).await.unwrap().len(), 1);
}

async fn due_timers_are_claimed_oldest_first_under_a_lease(backend: Backend) {
    let f = fixture(backend).await;
    let ids = f.open(1, &["wiring", "ebike_indoor", "sanitation"]).await;
    // Deadlines in 30, 10 and 50 hours.
    f.apply(
        &[(ids[0], "notify", json!({ "deadline_hours": 30 }), None)],
        t0(),
    )
    .await;
    f.apply(
        &[(ids[1], "notify", json!({ "deadline_hours": 10 }), None)],
        t0(),
    )
    .await;
    f.apply(
        &[(ids[2], "notify", json!({ "deadline_hours": 50 }), None)],
        t0(),
    )
    .await;
    let at = t0() + TimeDelta::hours(40);
    let lease = at + TimeDelta::seconds(60);
    let claimed = f.store.claim_due_timers(at, 10, lease, "w1").await.unwrap();
    let cases: Vec<CaseId> = claimed.iter().map(|t| t.case_id).collect();
    assert_eq!(cases, [ids[1], ids[0]], "due ones only, oldest first");
    assert!(
        f.store
            .claim_due_timers(at, 10, lease, "w2")
            .await
            .unwrap()
            .is_empty(),
        "held by w1's lease"
    );
    let later = at + TimeDelta::seconds(61);
    let reclaimed = f
        .store
        .claim_due_timers(later, 1, later + TimeDelta::seconds(60), "w2")
        .await
        .unwrap();
    assert_eq!(
        reclaimed.len(),
        1,
        "an expired lease is taken over, within the limit"
    );
    assert_eq!(reclaimed[0].case_id, ids[1]);
    let backlog = f.store.timer_backlog(at).await.unwrap();
    assert_eq!((backlog.pending, backlog.due), (3, 2));

    // Firing consumes the timer in the transition's transaction; a second firing of the
    // same timer finds it gone and does nothing.
    let timer = reclaimed[0].seq;
    let fire = |timer: i64| TransitionRequest {
        case_id: ids[1],
        expected_version: None,
        timer_seq: Some(timer),
        actor: Actor::system("timer:order_deadline"),
        command: "deadline_passed".into(),
        reason: None,
        rule: None,
    };
    let def = &workflow::builtin()[0];
    let taxonomy = Taxonomy::builtin();
    let routing = Routing::default();
    let decide = |_: usize, case: &anju_engine::store::CaseRecord| {
        machine::decide(
            Context {
                definition: def,
                taxonomy: &taxonomy,
                routing: &routing,
                calendar: &anju_engine::calendar::Calendar::builtin(),
                now: later,
            },
            &case.snapshot,
            &Principal::system(),
            &Command {
                name: "deadline_passed".into(),
                ..Command::default()
            },
        )
    };
    let results = f
        .store
        .apply(&[fire(timer), fire(timer)], &decide, later)
        .await
        .unwrap();
    let states: Vec<String> = results.iter().map(state_of).collect();
    assert_eq!(states, ["overdue", "timer-gone"]);
    assert_eq!(f.store.case_events(ids[1]).await.unwrap().len(), 3);
}

async fn outbox_rows_are_claimed_delivered_and_retried(backend: Backend) {
    let f = fixture(backend).await;
    let ids = f.open(1, &["wiring"]).await;
    f.apply(&[(ids[0], "notify", json!({}), None)], t0()).await;
    let lease = t0() + TimeDelta::seconds(60);
    let claimed = f.store.claim_outbox(t0(), 10, lease, "w1").await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].template, "rectification_order");
    assert!(
        f.store
            .claim_outbox(t0(), 10, lease, "w2")
            .await
            .unwrap()
            .is_empty()
    );
    let retry_at = t0() + TimeDelta::minutes(5);
    f.store
        .outbox_failed(claimed[0].id, "smtp down", retry_at)
        .await
        .unwrap();
    assert!(
        f.store
            .claim_outbox(t0() + TimeDelta::minutes(4), 10, lease, "w2")
            .await
            .unwrap()
            .is_empty(),
        "not before its retry time"
    );
    let again = f
        .store
        .claim_outbox(retry_at, 10, retry_at + TimeDelta::seconds(60), "w2")
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("smtp down"));
    f.store
        .outbox_delivered(again[0].id, "log", retry_at)
        .await
        .unwrap();
    let stored = f.store.case_outbox(ids[0]).await.unwrap();
    assert_eq!(stored[0].channel.as_deref(), Some("log"));
    assert_eq!(stored[0].attempts, 2);
    assert!(
        f.store
            .claim_outbox(retry_at + TimeDelta::hours(1), 10, lease, "w3")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn lists_respect_every_scope_and_filter(backend: Backend) {
    let f = fixture(backend).await;
    let near = f.open(1, &["wiring", "sanitation"]).await;
    let far_unit = anju_tests::TEST_UNITS as i64;
    let far = f.open(far_unit, &["wiring"]).await;
    let unit1 = f.store.unit(UnitId(1)).await.unwrap().unwrap();
    let far_u = f.store.unit(UnitId(far_unit)).await.unwrap().unwrap();
    f.apply(
        &[
            (near[0], "notify", json!({ "deadline_hours": 1 })),
            (far[0], "refer", json!({})),
        ]
        .map(|(a, b, c)| (a, b, c, None)),
        t0(),
    )
    .await;
    let list = |filter: CaseFilter, scope: Scope| {
        let store = f.store.clone();
        async move {
            store
                .list_cases(
                    &CaseFilter {
                        limit: if filter.limit == 0 { 100 } else { filter.limit },
                        ..filter
                    },
                    &scope,
                )
                .await
                .unwrap()
                .iter()
                .map(|c| c.snapshot.id)
                .collect::<Vec<_>>()
        }
    };
    let all = [far[0], near[1], near[0]];
    assert_eq!(list(CaseFilter::default(), Scope::City).await, all);
    assert_eq!(
        list(
            CaseFilter::default(),
            Scope::District(unit1.district_code.clone())
        )
        .await,
        [near[1], near[0]]
    );
    assert_eq!(
        list(
            CaseFilter::default(),
            Scope::Street(far_u.street_id.unwrap())
        )
        .await,
        [far[0]]
    );
    assert_eq!(
        list(
            CaseFilter::default(),
            Scope::Grids([unit1.grid_id.unwrap(), GridId(999)].into())
        )
        .await,
        [near[1], near[0]]
    );
    assert!(
        list(CaseFilter::default(), Scope::Grids(Default::default()))
            .await
            .is_empty()
    );
    assert_eq!(
        list(CaseFilter::default(), Scope::Party(unit1.party_id.unwrap())).await,
        [near[1], near[0]]
    );
    let far_case = f.store.case(far[0]).await.unwrap().unwrap();
    let dept = far_case.snapshot.department_id.expect("referred");
    assert_eq!(
        list(CaseFilter::default(), Scope::Department(dept)).await,
        [far[0]]
    );
    assert!(
        list(CaseFilter::default(), Scope::Department(DepartmentId(999)))
            .await
            .is_empty()
    );
    assert_eq!(
        list(
            CaseFilter {
                state: Some("referred".into()),
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await,
        [far[0]]
    );
    assert_eq!(
        list(
            CaseFilter {
                category: Some("sanitation".into()),
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await,
        [near[1]]
    );
    assert_eq!(
        list(
            CaseFilter {
                unit_id: Some(UnitId(far_unit)),
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await,
        [far[0]]
    );
    assert_eq!(
        list(
            CaseFilter {
                department_id: Some(dept),
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await,
        [far[0]]
    );
    assert_eq!(
        list(
            CaseFilter {
                before: Some(far[0]),
                limit: 1,
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await,
        [near[1]]
    );
    let overdue = |wanted, hours| anju_engine::store::Overdue {
        wanted,
        states: vec!["overdue".into()],
        deadline_states: vec!["notified".into(), "acknowledged".into()],
        now: t0() + TimeDelta::hours(hours),
    };
    assert!(
        list(
            CaseFilter {
                overdue: Some(overdue(true, 0)),
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await
        .is_empty()
    );
    assert_eq!(
        list(
            CaseFilter {
                overdue: Some(overdue(true, 2)),
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await,
        [near[0]]
    );
    assert_eq!(
        list(
            CaseFilter {
                overdue: Some(overdue(false, 2)),
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await,
        [far[0], near[1]]
    );
}

async fn tokens_resolve_only_by_digest(backend: Backend) {
    let f = fixture(backend).await;
    let t = anju_engine::auth::new_token();
    f.store
        .insert_token(&t.digest, Role::Inspector, 1, Some("phone"), t0())
        .await
        .unwrap();
    let found = f.store.token(&t.digest).await.unwrap().unwrap();
    assert_eq!((found.role, found.subject), (Role::Inspector, 1));
    assert!(
        f.store.token(&t.secret).await.unwrap().is_none(),
        "the secret itself is not a key"
    );
    assert!(
        f.store
            .token("0".repeat(64).as_str())
            .await
            .unwrap()
            .is_none()
    );
}

async fn plans_and_campaigns_round_trip(backend: Backend) {
    use anju_engine::domain::InspectorId;
    use anju_engine::planning;
    use anju_engine::store::{CampaignArea, CheckItem, NewCampaign};
    use anju_engine::time::day_bounds;
    let f = fixture(backend).await;
    // An inspector with a capacity of their own; the others get the default.
    f.store
        .import(
            &[Record::Inspector {
                id: InspectorId(9001),
                name: "周敏".into(),
                phone: None,
                email: None,
                shift: "evening".into(),
                capacity: Some(3),
                grids: vec![GridId(1)],
            }],
            t0(),
        )
        .await
        .unwrap();
    let planners = f.store.planners().await.unwrap();
    let mine = planners.iter().find(|p| p.id == InspectorId(9001)).unwrap();
    assert_eq!((mine.capacity, mine.shift.as_str()), (3, "evening"));
    assert_eq!(mine.grids, vec![GridId(1)]);
    assert!(
        planners
            .iter()
            .filter(|p| p.id != InspectorId(9001))
            .all(|p| p.capacity == 25)
    );

    // Candidates: exactly the units due by the end of the day (or never graded).
    let date = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let (start, end) = day_bounds(date);
    let all = f.store.plan_candidates(None, start, end).await.unwrap();
    let mut expected = Vec::new();
    for id in 1..=anju_tests::TEST_UNITS as i64 {
        let u = f.store.unit(UnitId(id)).await.unwrap().unwrap();
        if u.next_due_at.is_none_or(|d| d < end) {
            expected.push(id);
        }
    }
    let mut got: Vec<i64> = all.iter().map(|c| c.id.0).collect();
    got.sort();
    assert_eq!(got, expected);
    let in_grid = f
        .store
        .plan_candidates(Some(&[GridId(1)]), start, end)
        .await
        .unwrap();
    assert!(!in_grid.is_empty() && in_grid.iter().all(|c| c.grid_id == GridId(1)));
    assert!(in_grid.iter().all(|c| c.campaign_from.is_none()));

    // A campaign over grid 1 makes every unit of the grid a candidate, once.
    let grid_units = f.store.grid_units(GridId(1), None, 1000).await.unwrap();
    let campaign = f
        .store
        .create_campaign(
            &NewCampaign {
                name: "八查".into(),
                area: CampaignArea::Grid(GridId(1)),
                area_json: json!({ "grid": 1 }),
                starts_on: date,
                ends_on: date + TimeDelta::days(6),
                checklist: vec![CheckItem {
                    code: "wiring".into(),
                    zh: "查电气线路".into(),
                    en: "Wiring".into(),
                }],
                created_by: "supervisor:1".into(),
                at: t0(),
            },
            &Scope::City,
        )
        .await
        .unwrap();
    assert_eq!(campaign.units, grid_units.len() as i64);
    let in_grid = f
        .store
        .plan_candidates(Some(&[GridId(1)]), start, end)
        .await
        .unwrap();
    assert_eq!(in_grid.len(), grid_units.len());
    assert!(in_grid.iter().all(|c| c.campaign_from == Some(start)));
    let checks = f
        .store
        .open_campaign_checklists(grid_units[0].id, t0())
        .await
        .unwrap();
    assert_eq!(checks.len(), 1);
    // Outside the campaign's jurisdiction nothing is created.
    let refused = f
        .store
        .create_campaign(
            &NewCampaign {
                name: "x".into(),
                area: CampaignArea::Grid(GridId(1)),
                area_json: json!({ "grid": 1 }),
                starts_on: date,
                ends_on: date,
                checklist: vec![],
                created_by: "supervisor:9".into(),
                at: t0(),
            },
            &Scope::District("440118".into()),
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(f.store.campaigns(&Scope::City).await.unwrap().len(), 1);
    // Another district oversees none of its units: it does not see it.
    let elsewhere = Scope::District("440118".into());
    assert!(f.store.campaigns(&elsewhere).await.unwrap().is_empty());
    assert!(
        f.store
            .campaign(campaign.id, &elsewhere)
            .await
            .unwrap()
            .is_none()
    );

    // A stored plan reads back as planned; storing the day again keeps the routes
    // stored (none are added twice), and replacing it writes them anew.
    let plan = planning::plan_day(date, all, &planners);
    assert_eq!(
        f.store
            .save_plan(&plan, t0(), anju_engine::store::PlanSave::City)
            .await
            .unwrap(),
        plan.routes.len()
    );
    assert_eq!(
        f.store
            .save_plan(&plan, t0(), anju_engine::store::PlanSave::City)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        f.store
            .save_plan(&plan, t0(), anju_engine::store::PlanSave::ReplaceCity)
            .await
            .unwrap(),
        plan.routes.len()
    );
    for r in &plan.routes {
        let stored = f
            .store
            .stored_route(date, r.inspector_id)
            .await
            .unwrap()
            .unwrap();
        let ids: Vec<UnitId> = stored.stops.iter().map(|s| s.unit_id).collect();
        let planned: Vec<UnitId> = r.stops.iter().map(|s| s.unit_id).collect();
        assert_eq!(ids, planned);
        assert!((stored.length_m - r.length_m).abs() < 1e-6);
        assert!(stored.stops.iter().all(|s| s.visited_at.is_none()));
    }
    let backlog = f
        .store
        .stored_backlog(date, &Scope::City)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(backlog.len(), plan.backlog.len());
    assert!(
        f.store
            .stored_route(date + TimeDelta::days(1), InspectorId(1))
            .await
            .unwrap()
            .is_none()
    );
}

backend_tests!(
    a_rule_step_is_applied_once,
    plans_and_campaigns_round_trip,
    definitions_are_stored_once_and_never_silently_changed,
    imports_are_all_or_nothing,
    idempotent_creates_replay_the_stored_response,
    a_batch_applies_in_order_and_refusals_write_nothing,
    due_timers_are_claimed_oldest_first_under_a_lease,
    outbox_rows_are_claimed_delivered_and_retried,
    lists_respect_every_scope_and_filter,
    tokens_resolve_only_by_digest,
    a_command_the_database_refuses_fails_alone,
    rule_jobs_run_in_order_per_case,
);

/// SQLite keeps the cases it wrote in memory. If another process writes the same file,
/// the cache is stale: the batch's guard refuses to commit, the cases are re-read and
/// the batch is decided again on what is really stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_cache_stale_from_another_writer_is_detected_and_reloaded() {
    let f = fixture(Backend::Sqlite).await;
    let other = Fixture {
        store: anju_engine::store::open(&f._db.url).await.unwrap(),
        definition_id: f.definition_id,
        _db: TestDb::new(Backend::Sqlite).await,
    };
    let id = f.open(1, &["wiring"]).await[0];
    // This store caches the case at version 2.
    let r = f.apply(&[(id, "notify", json!({}), None)], t0()).await;
    assert_eq!(state_of(&r[0]), "notified");
    // Another store on the same file moves it to version 3 behind the first's back.
    let r = other.apply(&[(id, "cancel", json!({}), None)], t0()).await;
    assert_eq!(state_of(&r[0]), "cancelled");
    // The first store's cache says `notified` at version 2; deciding `cancel` again
    // from there would be wrong. It must see `cancelled` and refuse.
    let r = f.apply(&[(id, "cancel", json!({}), None)], t0()).await;
    assert!(
        state_of(&r[0]).contains("not allowed in state `cancelled`"),
        "{}",
        state_of(&r[0])
    );
    let r = f.apply(&[(id, "reopen", json!({}), None)], t0()).await;
    assert_eq!(state_of(&r[0]), "discovered");
    let seq: Vec<i64> = f
        .store
        .case_events(id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seq, [1, 2, 3, 4], "no event lost or duplicated");
    assert_eq!(f.store.case(id).await.unwrap().unwrap().snapshot.version, 4);
}
