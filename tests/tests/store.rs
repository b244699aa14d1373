//! The store conformance suite: the same assertions against the SQLite and the PostgreSQL implementation of `Store`.

use chrono::TimeDelta;
use serde_json::{Value, json};

use anju_engine::auth::Principal;
use anju_engine::domain::{Actor, CaseId, DepartmentId, PartyId, Role, UnitId};
use anju_engine::grading::Rubric;
use anju_engine::machine::{self, Command, Context};
use anju_engine::registry::{Record, UnitRow};
use anju_engine::routing::Routing;
use anju_engine::store::{IdempotencyKey, Idempotent, TransitionRequest};
use anju_engine::taxonomy::Taxonomy;
use anju_engine::workflow;
use anju_tests::{Backend, TestDb, backend_tests, t0};

mod store_support;
use store_support::*;

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

/// Closing a case regrades its unit in the transition's transaction: the cap the case
/// put on the grade lifts, the closure dates the unit's return visit, and the history
/// says which case; reopening puts the cap back. A transition the database refuses
/// leaves the grade as it was.
async fn a_closure_regrades_its_unit_with_the_transition(backend: Backend) {
    use anju_engine::grading::OpenHazard;
    let f = fixture(backend).await;
    let ids = f.open(1, &["wiring"]).await;
    let rubric = Rubric::builtin();
    let list = rubric.checklist_for(5, |_| 0);
    let hazard = OpenHazard {
        category: "wiring".into(),
        severity: "major".into(),
    };
    let capped = f
        .grade(1, list.clone(), std::slice::from_ref(&hazard))
        .await;
    let free = rubric.grade(Some(&list), &[]).stars;
    assert_ne!(capped, free, "a major hazard caps a five-star unit");
    let stars = async || f.store.unit(UnitId(1)).await.unwrap().unwrap().stars;
    assert_eq!(stars().await, capped);
    let history = f.store.unit_grades(UnitId(1)).await.unwrap().len();

    // Refused by the database (the batch is split, and the closure fails alone):
    // neither the closure nor the regrade is written.
    let other = f.open(2, &["sanitation"]).await[0];
    let break_referral = |i: usize, d: &mut machine::Decision| {
        if i == 0 {
            d.referral = Some(machine::ReferralChange::Open {
                department_id: DepartmentId(987_654),
            });
        }
    };
    let later = t0() + TimeDelta::hours(3);
    let batch = [
        (ids[0], "cancel", json!({}), None),
        (other, "notify", json!({}), None),
    ];
    let r = f.apply_tampered(&batch, &[], &break_referral, later).await;
    assert_eq!(state_of(&r[1]), "notified");
    assert!(r[0].is_err(), "{}", state_of(&r[0]));
    assert_eq!(stars().await, capped);
    let unit = f.store.unit(UnitId(1)).await.unwrap().unwrap();
    assert_eq!(unit.last_closed_at, None);
    assert_eq!(f.store.unit_grades(UnitId(1)).await.unwrap().len(), history);

    // Closed: the cap lifts with the transition.
    let r = f.apply(&[(ids[0], "cancel", json!({}), None)], later).await;
    assert_eq!(state_of(&r[0]), "cancelled");
    let unit = f.store.unit(UnitId(1)).await.unwrap().unwrap();
    assert_eq!(unit.stars, free);
    assert_eq!(unit.last_closed_at, Some(later));
    assert_eq!(
        unit.next_due_at,
        rubric.next_due(free, Some(t0()), Some(later))
    );
    let grades = f.store.unit_grades(UnitId(1)).await.unwrap();
    assert_eq!(grades.len(), history + 1);
    assert_eq!(
        grades.last().unwrap().cause,
        format!("case {} closed", ids[0])
    );

    // Reopened: the cap is back.
    let r = f.apply(&[(ids[0], "reopen", json!({}), None)], later).await;
    assert_eq!(state_of(&r[0]), "discovered");
    assert_eq!(stars().await, capped);
    let grades = f.store.unit_grades(UnitId(1)).await.unwrap();
    assert_eq!(
        grades.last().unwrap().cause,
        format!("case {} reopened", ids[0])
    );
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
        .apply(
            &[fire(timer), fire(timer)],
            &decide,
            &Rubric::builtin(),
            later,
        )
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
    // Handed over with its delivery, never without one.
    let delivery = anju_engine::store::NewDelivery {
        outbox_id: again[0].id,
        recipient: "party:1".into(),
        channel: "log".into(),
        address: "party:1".into(),
        message_id: "m1@anju.test".into(),
        dead: None,
        kept: None,
        digest_at: None,
    };
    f.store
        .fan_out(&[delivery], &[again[0].id], retry_at)
        .await
        .unwrap();
    let stored = f.store.case_outbox(ids[0]).await.unwrap();
    assert_eq!(stored[0].channel.as_deref(), Some("deliveries"));
    assert_eq!(stored[0].attempts, 2);
    assert!(
        f.store
            .claim_outbox(retry_at + TimeDelta::hours(1), 10, lease, "w3")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn tokens_resolve_only_by_digest(backend: Backend) {
    let f = fixture(backend).await;
    let t = anju_engine::auth::new_token();
    f.store
        .insert_token(
            &t.digest,
            Role::Inspector,
            1,
            Some("phone"),
            None,
            None,
            t0(),
        )
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

backend_tests!(
    a_rule_step_is_applied_once,
    definitions_are_stored_once_and_never_silently_changed,
    imports_are_all_or_nothing,
    idempotent_creates_replay_the_stored_response,
    a_batch_applies_in_order_and_refusals_write_nothing,
    due_timers_are_claimed_oldest_first_under_a_lease,
    outbox_rows_are_claimed_delivered_and_retried,
    tokens_resolve_only_by_digest,
    a_command_the_database_refuses_fails_alone,
    a_closure_regrades_its_unit_with_the_transition,
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
