//! A walkthrough of one hazard case through the whole loop, in-process on a scratch SQLite file: patrol → discover → notify → overdue → refer → enforce → feedback → closed. Run with `cargo run -p anju-engine --example walkthrough`.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta};
use serde_json::{Map, json};

use anju_engine::Result;
use anju_engine::auth::Principal;
use anju_engine::domain::{CaseId, Point, Role, UnitId};
use anju_engine::evidence::EvidenceKind::{Document, Photo};
use anju_engine::machine::Command;
use anju_engine::runtime::{self, Finding, InspectionInput, Runtime};
use anju_engine::seed::DemoCity;
use anju_engine::store::{self, Idempotent};
use anju_engine::time::ManualClock;
use anju_engine::time::local_time;

/// The photo of the finding and the scanned penalty decision.
const STAIRWELL: &[u8] = include_bytes!("evidence/stairwell.jpg");
const DECISION: &[u8] = include_bytes!("evidence/penalty-decision-001.pdf");

#[tokio::main]
async fn main() -> Result<()> {
    let path = std::env::temp_dir().join(format!("anju-walkthrough-{}.db", std::process::id()));
    let url = path.display().to_string();
    let store = store::open(&url).await?;
    store.migrate().await?;

    // A small demo city of Guangzhou.
    let start = DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
        .expect("valid time")
        .to_utc();
    let city = DemoCity::new(500, 2026);
    store.import(city.skeleton(), start).await?;
    for chunk in city.chunks(10_000) {
        store.import(&chunk, start).await?;
    }
    store.finish_import().await?;

    let clock = ManualClock::new(start);
    let rt = Runtime::start(
        store.clone(),
        Arc::new(clock.clone()),
        runtime::Config::default(),
    )
    .await?;
    let as_ = |role, subject| {
        let rt = rt.clone();
        async move {
            rt.principal(role, subject)
                .await
                .map(|p| p.expect("demo principal exists"))
        }
    };
    let inspector = as_(Role::Inspector, 1).await?;
    let fire = as_(Role::Department, 1).await?;

    // Patrol and discover: inspector 1 finds e-bikes charging indoors in unit 1.
    let unit = store.unit(UnitId(1)).await?.expect("unit 1");
    println!("巡查 Patrol: {} ({})", unit.address, unit.address_code);
    // The photo is uploaded first; the finding references its id.
    let photo = rt
        .upload_evidence(&inspector, Photo, None, "stairwell.jpg", STAIRWELL.to_vec())
        .await?;
    let input = InspectionInput {
        unit_id: unit.id,
        point: Some(Point::parse(unit.lon, unit.lat, "point")?),
        observed_at: None,
        crs: anju_engine::spatial::crs::Crs::Wgs84,
        checklist: None,
        campaign_checks: None,
        note: Some("楼道内 3 辆电动车充电".into()),
        findings: vec![Finding {
            category: "ebike_indoor".into(),
            severity: None,
            note: Some("一楼楼梯间飞线充电".into()),
            evidence: vec![photo.id],
        }],
        outcome: Default::default(),
    };
    let Idempotent::Created(outcome) = rt
        .record_inspection(&inspector, input, None, |_| json!({}))
        .await?
    else {
        unreachable!("no idempotency key was given");
    };
    let case = outcome.cases[0].id;

    let step = |name: &'static str, data: serde_json::Value| Command {
        name: name.into(),
        data: data.as_object().cloned().unwrap_or_else(Map::new),
        reason: None,
    };
    // Notify: a rectification order with a 24-hour deadline.
    let c = rt
        .execute(
            &inspector,
            case,
            step("notify", json!({ "requirements": "电动车移出室内" })),
            None,
        )
        .await?;
    println!(
        "告知 Notified: deadline {}",
        c.case
            .snapshot
            .deadline_at
            .map(local_time)
            .unwrap_or_default()
    );

    // The landlord does nothing; a day later the deadline timer fires.
    clock.advance(TimeDelta::hours(25));
    let tick = rt.fire_due_timers().await?;
    println!("逾期 Overdue: {} timer fired", tick.fired);

    // The escalation rules run on the events so far (the rule worker of `anju serve`
    // does this in the background): the critical hazard took the unit down to one star,
    // so a rule tells the landlord and asks for a supervisor's review.
    let mut rules = anju_engine::escalation::RuleTick::default();
    loop {
        let step = rt.run_rule_jobs().await?;
        if step.jobs == 0 {
            break;
        }
        rules.add(&step);
    }
    println!(
        "规则 Rules: {} events, {} actions applied",
        rules.jobs, rules.applied
    );

    // Enforce: referred to the district's fire brigade, accepted, fined.
    rt.execute(&inspector, case, step("refer", json!({})), None)
        .await?;
    rt.execute(&fire, case, step("accept", json!({})), None)
        .await?;
    let decision = rt
        .upload_evidence(&fire, Document, None, "decision.pdf", DECISION.to_vec())
        .await?;
    rt.execute(
        &fire,
        case,
        step(
            "record_result",
            json!({ "result": "fine", "fine_amount": 2000, "evidence": [decision.id] }),
        ),
        None,
    )
    .await?;

    // Feedback: the inspector verifies on site and closes the case.
    clock.advance(TimeDelta::hours(4));
    rt.execute(
        &inspector,
        case,
        step("close", json!({ "outcome": "fixed" })),
        None,
    )
    .await?;

    print_case(&rt, &inspector, case).await?;

    rt.shutdown().await;
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{url}{suffix}"));
    }
    Ok(())
}

/// Prints the case's history and the messages it wrote.
async fn print_case(rt: &Runtime, inspector: &Principal, case: CaseId) -> Result<()> {
    let view = rt.case_view(inspector, case).await?;
    println!(
        "\n案件 Case {} — {} / {}",
        case, view.names.state_zh, view.names.state_en
    );
    println!(
        "{:<26} {:<22} {:<22} {:<24}",
        "at (UTC+8)", "actor", "command", "state"
    );
    for e in &view.history {
        println!(
            "{:<26} {:<30} {:<18} {} → {}",
            local_time(e.at),
            format!("{}:{}", e.actor.role, e.actor.id),
            e.command,
            e.from_state.as_deref().unwrap_or("-"),
            e.to_state
        );
    }
    println!("\n发出的消息 Messages written to the outbox:");
    for (m, _deliveries) in rt.case_outbox(inspector, case).await? {
        println!("  to {:<10} {}", m.recipient_kind, m.subject);
    }
    Ok(())
}
