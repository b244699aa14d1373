//! The state machine, pure: (definition, case, command, now) → (new case, effects). No I/O here. A command's data is checked in `fields`, messages are worded in `render`.

mod fields;
mod render;

pub use fields::validate_data;
use fields::validate_reason;
pub use render::order_text;
use render::render;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::auth::{Place, Principal};
use crate::domain::{CaseId, DepartmentId, GridId, InspectorId, PartyId, Role, StreetId};
use crate::error::Error;
use crate::routing::Routing;
use crate::taxonomy::Taxonomy;
use crate::workflow::{CommandDef, DeadlineGuard, Definition, Effect, Recipient, TimerDue};

/// The longest free text a command may carry in `reason` or a text field without its own limit.
pub const MAX_TEXT: usize = 2000;
/// How many evidence references one command may carry.
pub const MAX_EVIDENCE: usize = 20;

/// A case as the machine sees it: everything a decision may depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseSnapshot {
    pub id: CaseId,
    pub state: String,
    pub version: i64,
    pub category: String,
    pub severity: String,
    pub address: String,
    pub district_code: String,
    /// The street and grid of the case's unit; `None` for a unit outside every grid.
    pub street_id: Option<StreetId>,
    pub grid_id: Option<GridId>,
    pub party_id: Option<PartyId>,
    pub inspector_id: Option<InspectorId>,
    pub department_id: Option<DepartmentId>,
    pub deadline_at: Option<DateTime<Utc>>,
    pub order_no: i32,
    pub escalation: i32,
    pub reopen_count: i32,
    pub closed_at: Option<DateTime<Utc>>,
    /// Raised by rules (and supervisors): 0 is normal.
    pub priority: i32,
    /// Whether the case waits for a supervisor's review.
    pub review_required: bool,
    /// The last rule step applied (job * 1024 + action); a step at or below it was applied.
    pub rule_mark: i64,
    /// The version of the last event a person made by a command (not a timer, a rule,
    /// a finding attached by an inspection or a system correction): a command that names
    /// an older version conflicts with that person's act.
    pub acted_version: i64,
    /// The last order objected to (or asked more time for): an order may be objected to
    /// once.
    pub objected_order: i32,
    /// The time limit of the current order, in hours: its deadline runs from its
    /// service when it waits to be served in person (`awaiting_service`).
    pub order_hours: i32,
}

impl CaseSnapshot {
    /// A new case of `category` at `address` in its workflow's initial `state`: version
    /// 1, nothing ordered, referred, escalated or closed yet, not yet stored (id 0), in
    /// no street, grid or party's hands until the caller says.
    pub fn opened(
        state: &str,
        category: &str,
        severity: &str,
        address: &str,
        district_code: &str,
    ) -> CaseSnapshot {
        CaseSnapshot {
            id: CaseId(0),
            state: state.to_string(),
            version: 1,
            category: category.to_string(),
            severity: severity.to_string(),
            address: address.to_string(),
            district_code: district_code.to_string(),
            street_id: None,
            grid_id: None,
            party_id: None,
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
            objected_order: 0,
            order_hours: 0,
            acted_version: 1,
        }
    }

    pub fn place(&self) -> Place<'_> {
        Place {
            district_code: &self.district_code,
            street_id: self.street_id,
            grid_id: self.grid_id,
            party_id: self.party_id,
            department_id: self.department_id,
        }
    }
}

/// A command as issued: its name, its data and the reason given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Command {
    pub name: String,
    pub data: Map<String, Value>,
    pub reason: Option<String>,
}

/// Everything a decision reads besides the case and the command.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub definition: &'a Definition,
    pub taxonomy: &'a Taxonomy,
    pub routing: &'a Routing,
    /// Which days are worked, for deadlines in working days.
    pub calendar: &'a crate::calendar::Calendar,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimerDraft {
    pub kind: String,
    pub fire: String,
    pub due_at: DateTime<Utc>,
    /// When it started counting: a timer in working days is dated again from here when
    /// a new calendar is published.
    pub from: DateTime<Utc>,
}

/// An outgoing message, rendered when the transition is decided so that the outbox row
/// is complete on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageDraft {
    pub recipient: Recipient,
    /// The party, inspector or department; `None` for supervisors, who are found by the
    /// case's district when the message is delivered.
    pub recipient_id: Option<i64>,
    pub template: String,
    pub subject: String,
    pub body: String,
}

/// What happens to the case's referral to a department.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ReferralChange {
    Open {
        department_id: DepartmentId,
    },
    Accept,
    Return {
        reason_code: String,
    },
    Complete {
        result: Value,
    },
    /// The case closed while with a department (cancelled, say): its open referral
    /// (pending or accepted) is withdrawn, so that the department's list does not keep
    /// it as pending.
    Withdraw,
}

/// The outcome of a command: the case after it, the event's data, and the effects to
/// commit with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub from: String,
    pub next: CaseSnapshot,
    pub data: Value,
    pub cancel_timers: Vec<String>,
    pub schedule_timers: Vec<TimerDraft>,
    pub messages: Vec<MessageDraft>,
    pub referral: Option<ReferralChange>,
    /// The rule event the transition raises, if any.
    pub trigger: Option<crate::rules::Trigger>,
    /// A blacklist proposal for the case's party, with its reason.
    pub blacklist: Option<String>,
    /// The workflow definition the case moves to (an upgrade); `None` for every
    /// ordinary command.
    pub definition_id: Option<i64>,
    /// The case closed or reopened: the unit's grade follows its open hazards.
    pub regrade: Option<Regrade>,
}

/// Why a unit is graded again after a transition of one of its cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regrade {
    /// The case closed: its cap on the grade is lifted, and a return visit is due.
    Closed,
    /// The case reopened: its cap is back.
    Reopened,
}

/// The system command that moves an open case to a newer version of its workflow.
pub const UPGRADE: &str = "upgrade";

/// Moves an open case from definition `from` to `to` (stored as `to_id`): an event of
/// its own, in the case's state, which the new version must have. Its running timer
/// runs on as scheduled; what it does and what comes next are the new version's.
pub fn upgrade(
    case: &CaseSnapshot,
    from: &Definition,
    to: &Definition,
    to_id: i64,
) -> Result<Decision, Error> {
    if to.name != from.name || to.version <= from.version {
        return Err(Error::Conflict(format!(
            "{} v{} is not a later version of {} v{}",
            to.name, to.version, from.name, from.version
        )));
    }
    if !to.states.contains_key(&case.state) || to.is_terminal(&case.state) {
        return Err(Error::IllegalTransition {
            state: case.state.clone(),
            command: UPGRADE.into(),
            detail: format!(" (version {} has no open state of that name)", to.version),
        });
    }
    let mut next = case.clone();
    next.version = case.version + 1;
    Ok(Decision {
        from: case.state.clone(),
        next,
        data: json!({ "from_version": from.version, "to_version": to.version }),
        cancel_timers: Vec::new(),
        schedule_timers: Vec::new(),
        messages: Vec::new(),
        referral: None,
        trigger: None,
        blacklist: None,
        definition_id: Some(to_id),
        regrade: None,
    })
}

/// The system command that dates a running timer in working days again under the
/// calendar in force (a year published since it was scheduled).
pub const REDATE: &str = "redate";

/// A running timer, as `redate` sees it: its kind, when it falls due and when it
/// started counting.
#[derive(Debug, Clone, Copy)]
pub struct RunningTimer<'a> {
    pub kind: &'a str,
    pub due_at: DateTime<Utc>,
    pub from: DateTime<Utc>,
}

/// The running timer counted again in the calendar of `ctx` (working-day timers only:
/// an order's deadline in hours never depends on the calendar): an event of its own,
/// the case in its state, with the old and new due times and the calendar's version.
/// `None` when the timer does not count working days or falls due as it was: nothing
/// to write, so that a calendar version re-dates each timer once.
pub fn redate(ctx: Context<'_>, case: &CaseSnapshot, timer: RunningTimer<'_>) -> Option<Decision> {
    let def = ctx.definition.timers.get(timer.kind)?;
    let days = def.after_working_days?;
    let due_at = ctx.calendar.add_working_days(timer.from, days);
    if due_at == timer.due_at {
        return None;
    }
    let mut next = case.clone();
    next.version = case.version + 1;
    Some(Decision {
        from: case.state.clone(),
        next,
        data: json!({
            "timer": timer.kind,
            "due_before": timer.due_at,
            "due_at": due_at,
            "calendar_version": ctx.calendar.version,
            "provisional": ctx.calendar.provisional(due_at),
        }),
        cancel_timers: vec![timer.kind.to_string()],
        schedule_timers: vec![TimerDraft {
            kind: timer.kind.to_string(),
            fire: def.fire.clone(),
            due_at,
            from: timer.from,
        }],
        messages: Vec::new(),
        referral: None,
        trigger: None,
        blacklist: None,
        definition_id: None,
        regrade: None,
    })
}

/// Decides what `cmd`, issued by `principal`, does to `case`. Refusals are errors and
/// leave nothing to write.
pub fn decide(
    ctx: Context<'_>,
    case: &CaseSnapshot,
    principal: &Principal,
    cmd: &Command,
) -> Result<Decision, Error> {
    let Admitted {
        spec,
        data,
        reason,
        candidates,
    } = admit(ctx, case, principal, cmd)?;
    // The first candidate whose deadline guard holds once its effects are applied (a
    // decision on an objection after the old deadline passed goes overdue at once).
    for transition in &candidates {
        let mut out = Outcome {
            next: case.clone(),
            event: data.clone(),
            referral: None,
            blacklist: None,
            messages: Vec::new(),
        };
        out.next.state = Definition::target(transition, &case.state).to_string();
        out.next.version = case.version + 1;
        for effect in &transition.effects {
            out.apply(ctx, case, principal, spec, &data, reason, effect)?;
        }
        if let Some(guard) = transition.deadline {
            let passed = out.next.deadline_at.is_some_and(|d| d <= ctx.now);
            if passed != (guard == DeadlineGuard::Passed) {
                continue;
            }
        }
        return Ok(out.finish(ctx, case, transition));
    }
    Err(Error::IllegalTransition {
        state: case.state.clone(),
        command: cmd.name.clone(),
        detail: " (not with the order's deadline where it stands)".into(),
    })
}

/// A command admitted on a case: its definition, its checked data and reason, and the
/// transition it takes.
struct Admitted<'a> {
    spec: &'a CommandDef,
    data: Map<String, Value>,
    reason: &'a str,
    /// The transitions it may take, in file order; the first whose deadline guard
    /// holds is taken.
    candidates: Vec<&'a crate::workflow::TransitionDef>,
}

/// What a refusal says of a case waiting for a supervisor's review.
pub const REVIEW_PENDING: &str = " (the case waits for a supervisor's review required by a rule (督导复核): it cannot be closed until a supervisor completes it with `complete_review`)";

/// Whether a transition ends the case.
fn closes(t: &crate::workflow::TransitionDef) -> bool {
    t.effects.contains(&Effect::Close)
}

/// Checks that `cmd` may be issued by `principal` on `case` (the command exists, the
/// role may issue it, the case is in the principal's jurisdiction, its data and reason
/// are valid) and finds the transition it takes from the case's state.
fn admit<'a>(
    ctx: Context<'a>,
    case: &'a CaseSnapshot,
    principal: &Principal,
    cmd: &'a Command,
) -> Result<Admitted<'a>, Error> {
    let def = ctx.definition;
    let spec = def.commands.get(&cmd.name).ok_or_else(|| {
        Error::invalid(
            "command",
            format!(
                "unknown command `{}`; the {} workflow knows: {}",
                cmd.name,
                def.name,
                def.commands
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    if !spec.roles.contains(&principal.role) {
        return Err(Error::Forbidden(format!(
            "`{}` may be issued by {} (you are: {})",
            cmd.name,
            spec.roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
            principal.role
        )));
    }
    if !principal.covers(case.place()) {
        return Err(Error::Forbidden(format!(
            "case {} is outside what this {} may act on",
            case.id, principal.role
        )));
    }
    if cmd.name == DECIDE_OBJECTION && !ctx.routing.decides_objections(principal, &case.place()) {
        return Err(Error::Forbidden(
            "objections are decided by the supervisor of the case's street (the district's where the street has none) / 异议由案件所在街道的督导决定（无街道督导的由区督导决定）".into(),
        ));
    }
    let data = validate_data(spec, &cmd.data, ctx.routing, case.id)?;
    let reason = validate_reason(spec, cmd.reason.as_deref())?;

    let has_party = case.party_id.is_some();
    let candidates: Vec<&crate::workflow::TransitionDef> = def
        .transitions_for(&cmd.name, &case.state)
        .filter(|t| t.when.iter().all(|(k, v)| data.get(k) == Some(v)))
        .filter(|t| t.party.is_none_or(|p| p == has_party))
        .collect();
    if candidates.is_empty() {
        let guarded = def.transitions_for(&cmd.name, &case.state).next().is_some();
        return Err(Error::IllegalTransition {
            state: case.state.clone(),
            command: cmd.name.clone(),
            detail: if guarded {
                format!(" with this data ({})", Value::Object(data.clone()))
            } else {
                String::new()
            },
        });
    }
    // A review a rule required holds the case open: a person cannot close it first
    // (the review could then never be completed).
    if case.review_required
        && principal.role != Role::System
        && candidates.iter().any(|t| closes(t))
    {
        return Err(Error::IllegalTransition {
            state: case.state.clone(),
            command: cmd.name.clone(),
            detail: REVIEW_PENDING.into(),
        });
    }

    Ok(Admitted {
        spec,
        data,
        reason,
        candidates,
    })
}

/// What a transition makes of a case, effect by effect.
struct Outcome {
    next: CaseSnapshot,
    event: Map<String, Value>,
    referral: Option<ReferralChange>,
    blacklist: Option<String>,
    messages: Vec<MessageDraft>,
}

impl Outcome {
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        ctx: Context<'_>,
        case: &CaseSnapshot,
        principal: &Principal,
        spec: &CommandDef,
        data: &Map<String, Value>,
        reason: &str,
        effect: &Effect,
    ) -> Result<(), Error> {
        let Outcome {
            next,
            event,
            referral,
            blacklist,
            messages,
        } = self;
        match effect {
            Effect::IssueOrder => {
                let hours = data.get("deadline_hours").and_then(Value::as_i64);
                let span = hours
                    .map(TimeDelta::hours)
                    .unwrap_or_else(|| ctx.taxonomy.deadline(&case.category, &case.severity));
                next.deadline_at = Some(ctx.now + span);
                next.order_no += 1;
                next.order_hours = i32::try_from(span.num_hours()).unwrap_or(i32::MAX);
                event.insert("deadline_at".into(), json!(next.deadline_at));
                event.insert("order_no".into(), json!(next.order_no));
            }
            Effect::AwaitService => {
                // Nobody on record to notify: the order is served in person, and its
                // deadline runs from that service.
                next.deadline_at = None;
                event.remove("deadline_at");
                event.insert("service".into(), json!("in_person"));
                event.insert("deadline_hours".into(), json!(next.order_hours));
            }
            Effect::ServeOrder => {
                let deadline = ctx.now + TimeDelta::hours(i64::from(next.order_hours.max(1)));
                next.deadline_at = Some(deadline);
                event.insert("served_at".into(), json!(ctx.now));
                event.insert("deadline_at".into(), json!(deadline));
            }
            Effect::Refer => {
                let department = refer_to(ctx, case, principal, data, reason)?;
                next.department_id = Some(department.id);
                event.insert("department_id".into(), json!(department.id));
                event.insert("department".into(), json!(department.name));
                *referral = Some(ReferralChange::Open {
                    department_id: department.id,
                });
            }
            Effect::ReferralAccepted => *referral = Some(ReferralChange::Accept),
            Effect::ReferralReturned => {
                *referral = Some(ReferralChange::Return {
                    reason_code: data
                        .get("reason_code")
                        .and_then(Value::as_str)
                        .unwrap_or("other")
                        .to_string(),
                });
                next.department_id = None;
            }
            Effect::EnforcementResult => {
                *referral = Some(ReferralChange::Complete {
                    result: Value::Object(data.clone()),
                });
            }
            Effect::Escalate => {
                next.escalation += 1;
                event.insert("escalation".into(), json!(next.escalation));
            }
            Effect::Close => {
                next.closed_at = Some(ctx.now);
                next.deadline_at = None;
            }
            Effect::Reopen => {
                next.closed_at = None;
                next.deadline_at = None;
                next.department_id = None;
                next.reopen_count += 1;
                event.insert("reopen_count".into(), json!(next.reopen_count));
            }
            Effect::MoveDeadline => {
                let hours = data.get("hours").and_then(Value::as_i64).unwrap_or(0);
                if let Some(deadline) = next.deadline_at {
                    let moved = moved_deadline(deadline, hours, ctx.now);
                    next.deadline_at = Some(moved);
                    event.insert("deadline_before".into(), json!(deadline));
                    event.insert("deadline_at".into(), json!(moved));
                }
            }
            Effect::Relocate => {
                let id = |field: &str| data.get(field).and_then(Value::as_i64).filter(|id| *id > 0);
                event.insert("grid_before".into(), json!(case.grid_id));
                event.insert("district_before".into(), json!(case.district_code));
                next.grid_id = id("grid_id").map(GridId);
                next.street_id = id("street_id").map(StreetId);
                if let Some(d) = data.get("district_code").and_then(Value::as_str) {
                    next.district_code = d.to_string();
                }
            }
            Effect::RaisePriority => {
                next.priority += 1;
                event.insert("priority".into(), json!(next.priority));
            }
            Effect::Objection => {
                if case.order_no > 0 && case.objected_order >= case.order_no {
                    return Err(Error::Conflict(
                        "this order was objected to already: once per order (每份整改通知书只能提出一次异议或延期申请)"
                            .into(),
                    ));
                }
                next.objected_order = case.order_no;
                event.insert("objected_order".into(), json!(case.order_no));
            }
            Effect::RequireReview => next.review_required = true,
            Effect::Reviewed => next.review_required = false,
            Effect::ProposeBlacklist => {
                if next.party_id.is_some() {
                    *blacklist = Some(if reason.is_empty() {
                        format!("case {}", case.id)
                    } else {
                        reason.to_string()
                    });
                } else {
                    event.insert("no_party".into(), json!(true));
                }
            }
            Effect::Notify { to, template } => {
                notify(
                    ctx,
                    case,
                    next,
                    event,
                    messages,
                    (spec, data, reason),
                    *to,
                    template,
                );
            }
        }
        Ok(())
    }

    fn finish(
        self,
        ctx: Context<'_>,
        case: &CaseSnapshot,
        transition: &crate::workflow::TransitionDef,
    ) -> Decision {
        let Outcome {
            next,
            event,
            mut referral,
            blacklist,
            messages,
        } = self;
        if next.closed_at.is_some()
            && case.closed_at.is_none()
            && referral.is_none()
            && referral_open(ctx.definition, case)
        {
            referral = Some(ReferralChange::Withdraw);
        }
        let (cancel_timers, schedule_timers) = timer_changes(ctx, case, &next);
        let closed = next.closed_at.is_some();
        Decision {
            from: case.state.clone(),
            next,
            data: Value::Object(event),
            cancel_timers,
            schedule_timers,
            messages,
            referral,
            trigger: transition.trigger,
            blacklist,
            definition_id: None,
            regrade: match (case.closed_at.is_some(), closed) {
                (false, true) => Some(Regrade::Closed),
                (true, false) => Some(Regrade::Reopened),
                _ => None,
            },
        }
    }
}

/// The department a referral goes to: the one named (checked against the directory),
/// or the one the routing table gives for the kind a rule named or the category's.
fn refer_to<'a>(
    ctx: Context<'a>,
    case: &CaseSnapshot,
    principal: &Principal,
    data: &Map<String, Value>,
    reason: &str,
) -> Result<&'a crate::routing::DepartmentInfo, Error> {
    Ok(match data.get("department_id").and_then(Value::as_i64) {
        Some(id) => {
            let department = ctx
                .routing
                .get(DepartmentId(id))
                .expect("validated department");
            check_referral_target(ctx, case, principal, department, reason)?;
            department
        }
        None => {
            // A rule names the kind of department; otherwise the category's
            // routing decides.
            let kind = match data.get("department_kind").and_then(Value::as_str) {
                Some(kind) => kind,
                None => ctx
                    .taxonomy
                    .category(&case.category)
                    .map(|c| c.department.as_str())
                    .unwrap_or_default(),
            };
            ctx.routing.route(kind, &case.district_code).ok_or_else(|| {
                            Error::invalid(
                                "data.department_id",
                                format!(
                                    "no `{kind}` department serves district {}; name one with department_id",
                                    case.district_code
                                ),
                            )
                        })?
        }
    })
}

/// Renders a message to `to` from `template`, or notes in the event that there is
/// nobody to tell.
#[allow(clippy::too_many_arguments)]
fn notify(
    ctx: Context<'_>,
    case: &CaseSnapshot,
    next: &CaseSnapshot,
    event: &mut Map<String, Value>,
    messages: &mut Vec<MessageDraft>,
    (spec, data, reason): (&CommandDef, &Map<String, Value>, &str),
    to: Recipient,
    template: &String,
) {
    let recipient_id = match to {
        Recipient::Landlord => next.party_id.map(|p| p.0),
        Recipient::Inspector => next.inspector_id.map(|i| i.0),
        Recipient::Department => next.department_id.map(|d| d.0),
        Recipient::Supervisor => None,
    };
    if recipient_id.is_none() && to != Recipient::Supervisor {
        // Nobody to tell: the event records it, so that a supervisor can see
        // that the landlord (say) was never notified.
        let undelivered = event
            .entry("undelivered")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = undelivered {
            list.push(json!({ "to": to.as_str(), "template": template }));
        }
        return;
    }
    let department = next.department_id.or(case.department_id);
    let (subject, body) = render(ctx, next, spec, data, reason, department, template);
    messages.push(MessageDraft {
        recipient: to,
        recipient_id,
        template: template.clone(),
        subject,
        body,
    });
}

/// Whether the case's referral is open (pending or accepted): the case is with a
/// department that still has a command of its own in the case's state.
fn referral_open(definition: &Definition, case: &CaseSnapshot) -> bool {
    case.department_id.is_some()
        && definition.transitions.iter().any(|t| {
            t.from.contains(&case.state)
                && definition
                    .commands
                    .get(&t.command)
                    .is_some_and(|c| c.roles.contains(&Role::Department))
        })
}

/// A deadline moved by `hours`. Moved later, it is simply later (if it had passed, it
/// may still have: the order timer then fires at its next step). Moved sooner, it never
/// ends later than it was, and never sooner than an hour from now unless it already
/// was: max(deadline + hours, min(deadline, now + 1 h)).
pub fn moved_deadline(deadline: DateTime<Utc>, hours: i64, now: DateTime<Utc>) -> DateTime<Utc> {
    (deadline + TimeDelta::hours(hours)).max(deadline.min(now + TimeDelta::hours(1)))
}

/// A referral or re-route naming its department goes to one serving the case's district
/// (any kind; a reason is needed when it is not the routing table's choice for the
/// case's category), or to a city-level department. A department of another district
/// takes it only when a supervisor sends it, with a reason.
fn check_referral_target(
    ctx: Context<'_>,
    case: &CaseSnapshot,
    principal: &Principal,
    department: &crate::routing::DepartmentInfo,
    reason: &str,
) -> Result<(), Error> {
    let field = "data.department_id";
    match department.district_code.as_deref() {
        Some(district) if district != case.district_code => {
            if principal.role != Role::Supervisor {
                return Err(Error::invalid(
                    field,
                    format!(
                        "department {} serves district {district}, not the case's ({}); only a \
                         supervisor may refer a case to another district's department",
                        department.id, case.district_code
                    ),
                ));
            }
            if reason.is_empty() {
                return Err(Error::invalid(
                    "reason",
                    "a referral to another district's department needs a reason",
                ));
            }
        }
        _ => {
            let choice = ctx
                .taxonomy
                .category(&case.category)
                .and_then(|c| ctx.routing.route(&c.department, &case.district_code))
                .map(|d| d.id);
            if choice != Some(department.id) && reason.is_empty() {
                return Err(Error::invalid(
                    "reason",
                    "the routing table sends this category elsewhere; give a reason for this department",
                ));
            }
        }
    }
    Ok(())
}

/// The timers to schedule when a case is opened in the definition's initial state.
pub fn opening_timers(ctx: Context<'_>, case: &CaseSnapshot) -> Vec<TimerDraft> {
    ctx.definition
        .timers
        .iter()
        .filter(|(_, t)| t.states.contains(&case.state))
        .filter_map(|(kind, t)| timer_draft(ctx, kind, t, case))
        .collect()
}

/// Timers are scoped to sets of states: one is scheduled when the case enters its set and
/// cancelled when the case leaves it; moving within the set leaves it running, unless
/// the timer runs to the order deadline and the deadline moved.
fn timer_changes(
    ctx: Context<'_>,
    case: &CaseSnapshot,
    next: &CaseSnapshot,
) -> (Vec<String>, Vec<TimerDraft>) {
    let mut cancel = Vec::new();
    let mut schedule = Vec::new();
    for (kind, timer) in &ctx.definition.timers {
        let was = timer.states.contains(&case.state);
        let is = timer.states.contains(&next.state);
        let moved = timer.due == Some(TimerDue::Deadline) && case.deadline_at != next.deadline_at;
        if was && (!is || moved) {
            cancel.push(kind.clone());
        }
        if is && (!was || moved) {
            schedule.extend(timer_draft(ctx, kind, timer, next));
        }
    }
    (cancel, schedule)
}

fn timer_draft(
    ctx: Context<'_>,
    kind: &str,
    timer: &crate::workflow::TimerDef,
    case: &CaseSnapshot,
) -> Option<TimerDraft> {
    let due_at = match (timer.due, timer.after_hours, timer.after_working_days) {
        (Some(TimerDue::Deadline), _, _) => case.deadline_at?,
        (None, Some(hours), _) => ctx.now + TimeDelta::hours(i64::from(hours)),
        (None, None, Some(days)) => ctx.calendar.add_working_days(ctx.now, days),
        (None, None, None) => return None,
    };
    Some(TimerDraft {
        kind: kind.to_string(),
        fire: timer.fire.clone(),
        due_at,
        from: ctx.now,
    })
}

/// The command that decides an objection or a request for more time: only the
/// supervisors of the case's street (the district's where it has none) issue it.
pub const DECIDE_OBJECTION: &str = "decide_objection";

/// The commands `principal` may issue on `case` in its state (for listing the commands
/// a caller can use on a case): their role may, a transition leaves the state, and an
/// objection is theirs to decide.
pub fn allowed_commands<'a>(
    def: &'a Definition,
    case: &'a CaseSnapshot,
    principal: &'a Principal,
    routing: &'a Routing,
) -> impl Iterator<Item = &'a str> + 'a {
    def.commands
        .iter()
        .filter(move |(name, c)| {
            let has_party = case.party_id.is_some();
            let mut ways = def
                .transitions_for(name, &case.state)
                .filter(move |t| t.party.is_none_or(|p| p == has_party));
            c.roles.contains(&principal.role)
                && match ways.next() {
                    None => false,
                    // A case waiting for a review is not offered to be closed.
                    Some(t) => !(case.review_required && closes(t)),
                }
                && (name.as_str() != DECIDE_OBJECTION
                    || routing.decides_objections(principal, &case.place()))
        })
        .map(|(name, _)| name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scope;
    use crate::routing::DepartmentInfo;
    use crate::workflow;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
            .unwrap()
            .to_utc()
    }

    fn routing() -> Routing {
        Routing::new([
            DepartmentInfo {
                id: DepartmentId(11),
                name: "天河区消防救援大队".into(),
                kind: "fire".into(),
                district_code: Some("440106".into()),
            },
            DepartmentInfo {
                id: DepartmentId(12),
                name: "广州市燃气管理办公室".into(),
                kind: "gas".into(),
                district_code: None,
            },
            DepartmentInfo {
                id: DepartmentId(21),
                name: "越秀区消防救援大队".into(),
                kind: "fire".into(),
                district_code: Some("440104".into()),
            },
        ])
    }

    fn case(category: &str, severity: &str) -> CaseSnapshot {
        CaseSnapshot {
            id: CaseId(1),
            street_id: Some(StreetId(3)),
            grid_id: Some(GridId(30)),
            party_id: Some(PartyId(500)),
            inspector_id: Some(InspectorId(70)),
            ..CaseSnapshot::opened(
                "discovered",
                category,
                severity,
                "天河区石牌街道 1 号 101 房",
                "440106",
            )
        }
    }

    fn who(role: Role) -> Principal {
        let (subject, scope) = match role {
            Role::Inspector => (70, Scope::Grids([GridId(30)].into())),
            Role::Landlord => (500, Scope::Party(PartyId(500))),
            Role::Department => (11, Scope::Department(DepartmentId(11))),
            Role::Supervisor => (1, Scope::District("440106".into())),
            Role::System => (0, Scope::System),
        };
        Principal {
            role,
            subject,
            scope,
            account: None,
        }
    }

    /// One step of a `check` script: who issues what, with which data.
    struct Step(Role, &'static str, Value);

    /// Runs a script of commands from `discovered`, moving the clock by `gap` between
    /// steps, and returns the trace: one line per step with the resulting state and the
    /// effects, or the error.
    fn check(category: &str, steps: &[Step], gap: TimeDelta) -> Vec<String> {
        run(category, steps, gap, |_| {})
    }

    /// Runs a script as [`check`] does, handing each decision to `seen` as well.
    fn run(
        category: &str,
        steps: &[Step],
        gap: TimeDelta,
        mut seen: impl FnMut(&Decision),
    ) -> Vec<String> {
        let def = &workflow::builtin()[0];
        let taxonomy = Taxonomy::builtin();
        let routing = routing();
        let mut now = t0();
        let mut c = case(
            category,
            &taxonomy.category(category).unwrap().severity.clone(),
        );
        let mut trace = Vec::new();
        for Step(role, name, data) in steps {
            let ctx = Context {
                definition: def,
                taxonomy: &taxonomy,
                routing: &routing,
                calendar: &crate::calendar::Calendar::builtin(),
                now,
            };
            let mut data = data.as_object().cloned().unwrap_or_default();
            let reason = data
                .remove("reason")
                .and_then(|r| r.as_str().map(String::from));
            let cmd = Command {
                name: name.to_string(),
                data,
                reason,
            };
            match decide(ctx, &c, &who(*role), &cmd) {
                Ok(d) => {
                    seen(&d);
                    let mut line = format!("{name}: {} -> {}", d.from, d.next.state);
                    for k in &d.cancel_timers {
                        line.push_str(&format!(" -timer:{k}"));
                    }
                    for t in &d.schedule_timers {
                        line.push_str(&format!(
                            " +timer:{}@{}h",
                            t.kind,
                            (t.due_at - now).num_hours()
                        ));
                    }
                    for m in &d.messages {
                        line.push_str(&format!(" msg:{}:{}", m.recipient.as_str(), m.template));
                    }
                    if let Some(r) = &d.referral {
                        line.push_str(&format!(
                            " referral:{}",
                            serde_json::to_value(r).unwrap()["change"].as_str().unwrap()
                        ));
                    }
                    trace.push(line);
                    c = d.next;
                }
                Err(e) => trace.push(format!("{name}: error: {e}")),
            }
            now += gap;
        }
        trace
    }

    #[test]
    fn fixed_on_first_reinspection() {
        let trace = check(
            "ebike_indoor",
            &[
                Step(Role::Inspector, "notify", json!({})),
                Step(Role::Landlord, "acknowledge", json!({})),
                Step(
                    Role::Landlord,
                    "report_fix",
                    json!({"evidence": ["ev_11111111111111111111111111111111"]}),
                ),
                Step(Role::Inspector, "reinspect", json!({"passed": true})),
            ],
            TimeDelta::hours(1),
        );
        assert_eq!(
            trace,
            [
                "notify: discovered -> notified +timer:order_deadline@24h msg:landlord:rectification_order",
                "acknowledge: notified -> acknowledged msg:inspector:order_acknowledged",
                "report_fix: acknowledged -> rectification_reported -timer:order_deadline +timer:reinspection_due@72h msg:inspector:fix_reported",
                "reinspect: rectification_reported -> fixed -timer:reinspection_due msg:landlord:case_fixed",
            ]
        );
    }

    #[test]
    fn failed_reinspection_issues_a_new_order_with_a_new_deadline() {
        let trace = check(
            "gas_heater",
            &[
                Step(Role::Inspector, "notify", json!({})),
                Step(
                    Role::Landlord,
                    "report_fix",
                    json!({"evidence": ["ev_11111111111111111111111111111111"]}),
                ),
                Step(
                    Role::Inspector,
                    "reinspect",
                    json!({"passed": false, "deadline_hours": 48}),
                ),
                Step(Role::Inspector, "reinspect", json!({"passed": false})),
            ],
            TimeDelta::hours(1),
        );
        assert_eq!(
            trace,
            [
                "notify: discovered -> notified +timer:order_deadline@72h msg:landlord:rectification_order",
                "report_fix: notified -> rectification_reported -timer:order_deadline +timer:reinspection_due@72h msg:inspector:fix_reported",
                "reinspect: rectification_reported -> notified -timer:reinspection_due +timer:order_deadline@48h msg:landlord:rectification_order",
                "reinspect: error: command `reinspect` is not allowed in state `notified` with this data ({\"passed\":false})",
            ]
        );
    }

    #[test]
    fn overdue_referral_enforcement_feedback_closed() {
        let trace = check(
            "ebike_indoor",
            &[
                Step(Role::Inspector, "notify", json!({})),
                Step(Role::System, "deadline_passed", json!({})),
                Step(Role::Inspector, "refer", json!({})),
                Step(Role::System, "acceptance_overdue", json!({})),
                Step(Role::Department, "accept", json!({})),
                Step(
                    Role::Department,
                    "record_result",
                    json!({"result": "fine", "fine_amount": 5000}),
                ),
                Step(Role::Inspector, "close", json!({"outcome": "fixed"})),
            ],
            TimeDelta::hours(25),
        );
        assert_eq!(
            trace,
            [
                "notify: discovered -> notified +timer:order_deadline@24h msg:landlord:rectification_order",
                "deadline_passed: notified -> overdue -timer:order_deadline msg:landlord:order_overdue msg:inspector:order_overdue_inspector",
                "refer: overdue -> referred +timer:acceptance_sla@72h msg:department:referral referral:open",
                "acceptance_overdue: referred -> referred msg:supervisor:referral_sla_breached",
                "accept: referred -> accepted -timer:acceptance_sla referral:accept",
                "record_result: accepted -> enforced msg:inspector:enforcement_feedback referral:complete",
                "close: enforced -> fixed",
            ]
        );
    }

    /// A case closed while with a department withdraws its open referral (an effect of
    /// the decision, not of the store); closing after the department's result does not.
    #[test]
    fn closure_withdraws_an_open_referral() {
        let cancel = |after: &[Step]| {
            let mut steps = vec![
                Step(Role::Inspector, "notify", json!({})),
                Step(Role::System, "deadline_passed", json!({})),
                Step(Role::Inspector, "refer", json!({})),
            ];
            steps.extend(after.iter().map(|Step(r, n, d)| Step(*r, n, d.clone())));
            steps.push(Step(
                Role::Supervisor,
                "cancel",
                json!({"reason": "录入错误"}),
            ));
            check("ebike_indoor", &steps, TimeDelta::hours(25))
                .pop()
                .unwrap()
        };
        assert_eq!(
            cancel(&[]),
            "cancel: referred -> cancelled -timer:acceptance_sla referral:withdraw"
        );
        assert_eq!(
            cancel(&[Step(Role::Department, "accept", json!({}))]),
            "cancel: accepted -> cancelled referral:withdraw"
        );
        assert_eq!(
            cancel(&[
                Step(Role::Department, "accept", json!({})),
                Step(
                    Role::Department,
                    "record_result",
                    json!({"result": "warning"})
                ),
            ]),
            "cancel: enforced -> cancelled"
        );
        assert_eq!(
            cancel(&[Step(
                Role::Department,
                "return_referral",
                json!({"reason_code": "wrong_department", "reason": "属燃气范畴"})
            )]),
            "cancel: returned -> cancelled"
        );
    }

    /// Closing a case and reopening it regrade its unit: the machine says so, on the
    /// case's own definition; other transitions do not.
    #[test]
    fn closing_and_reopening_regrade_the_unit() {
        let mut regrades = Vec::new();
        let trace = run(
            "wiring",
            &[
                Step(Role::Inspector, "notify", json!({})),
                Step(Role::Supervisor, "cancel", json!({"reason": "录入错误"})),
                Step(Role::Supervisor, "reopen", json!({"reason": "复核"})),
            ],
            TimeDelta::hours(1),
            |d| regrades.push(d.regrade),
        );
        assert_eq!(trace.len(), 3, "{trace:?}");
        assert!(trace.iter().all(|l| !l.contains("error")), "{trace:?}");
        assert_eq!(
            regrades,
            [None, Some(Regrade::Closed), Some(Regrade::Reopened)]
        );
    }

    /// A referral goes to a department serving the case's district; another kind than
    /// the routing table's needs a reason; another district's department is for a
    /// supervisor with a reason only (issue 9, item 7).
    #[test]
    fn referrals_go_to_departments_that_serve_the_case() {
        let one = |role: Role, data: Value| {
            check(
                "ebike_indoor",
                &[Step(role, "refer", data)],
                TimeDelta::hours(1),
            )
            .remove(0)
        };
        let refused = |line: String, field: &str| {
            assert!(
                line.starts_with(&format!("refer: error: invalid request: {field}:")),
                "{line}"
            );
        };
        // The table's choice (the district's fire brigade), by routing or by id.
        assert!(one(Role::Inspector, json!({})).contains("-> referred"));
        assert!(one(Role::Inspector, json!({"department_id": 11})).contains("-> referred"));
        // Another kind, city-wide: with a reason only.
        refused(one(Role::Inspector, json!({"department_id": 12})), "reason");
        assert!(
            one(
                Role::Inspector,
                json!({"department_id": 12, "reason": "燃气"})
            )
            .contains("-> referred")
        );
        // Another district's brigade: never an inspector; a supervisor with a reason.
        refused(
            one(
                Role::Inspector,
                json!({"department_id": 21, "reason": "就近"}),
            ),
            "data.department_id",
        );
        refused(
            one(Role::Supervisor, json!({"department_id": 21})),
            "reason",
        );
        assert!(
            one(
                Role::Supervisor,
                json!({"department_id": 21, "reason": "跨区协查"})
            )
            .contains("-> referred")
        );
    }

    /// A deadline moved sooner never ends later than it was, nor sooner than an hour
    /// from now unless it already was; moved later it is later (issue 9, item 6).
    #[test]
    fn deadlines_move_within_their_bounds() {
        let now = t0();
        let h = TimeDelta::hours;
        let cases = [
            // (deadline from now, hours moved, expected from now)
            (h(48), -24, h(24)),
            (h(48), -47, h(1)),
            (h(48), -100, h(1)),
            (h(30) / 60, -5, h(30) / 60),
            (h(-2), -5, h(-2)),
            (h(-2), 24, h(22)),
            (h(-30), 24, h(-6)),
            (h(10), 6, h(16)),
        ];
        for (deadline, hours, expected) in cases {
            assert_eq!(
                moved_deadline(now + deadline, hours, now),
                now + expected,
                "deadline {deadline}, moved {hours} h"
            );
        }
    }

    #[test]
    fn returned_referral_goes_back_to_the_inspector_and_can_be_rerouted() {
        let trace = check(
            "ebike_indoor",
            &[
                Step(Role::Inspector, "refer", json!({})),
                Step(
                    Role::Department,
                    "return_referral",
                    json!({"reason_code": "wrong_department", "reason": "属燃气范畴"}),
                ),
                Step(Role::Department, "accept", json!({})),
                Step(
                    Role::Inspector,
                    "refer",
                    json!({"department_id": 12, "reason": "燃气热水器起火风险"}),
                ),
                Step(Role::Inspector, "close", json!({"outcome": "not_fixed"})),
            ],
            TimeDelta::hours(1),
        );
        assert_eq!(
            trace,
            [
                "refer: discovered -> referred +timer:acceptance_sla@72h msg:department:referral referral:open",
                "return_referral: referred -> returned -timer:acceptance_sla msg:inspector:referral_returned referral:return",
                // The department that returned the case no longer covers it.
                "accept: error: forbidden: case 1 is outside what this department may act on",
                "refer: returned -> referred +timer:acceptance_sla@72h msg:department:referral referral:open",
                "close: error: command `close` is not allowed in state `referred`",
            ]
        );
    }

    #[test]
    fn reopen_and_terminal_states() {
        let trace = check(
            "sanitation",
            &[
                Step(Role::Inspector, "dismiss", json!({})),
                Step(
                    Role::Inspector,
                    "dismiss",
                    json!({"reason": "只是临时堆放"}),
                ),
                Step(Role::Inspector, "notify", json!({})),
                Step(
                    Role::Supervisor,
                    "reopen",
                    json!({"reason": "居民再次投诉"}),
                ),
                Step(Role::Inspector, "notify", json!({})),
            ],
            TimeDelta::hours(1),
        );
        assert_eq!(
            trace,
            [
                "dismiss: error: invalid request: reason: this command needs a reason",
                "dismiss: discovered -> not_a_hazard",
                "notify: error: command `notify` is not allowed in state `not_a_hazard`",
                "reopen: not_a_hazard -> discovered",
                "notify: discovered -> notified +timer:order_deadline@360h msg:landlord:rectification_order",
            ]
        );
    }

    #[test]
    fn roles_are_enforced() {
        let trace = check(
            "wiring",
            &[
                Step(Role::Landlord, "notify", json!({})),
                Step(Role::Department, "dismiss", json!({"reason": "x"})),
                Step(Role::Inspector, "deadline_passed", json!({})),
                Step(Role::Inspector, "cancel", json!({"reason": "x"})),
                Step(Role::Supervisor, "cancel", json!({"reason": "录入错误"})),
            ],
            TimeDelta::hours(1),
        );
        assert_eq!(
            trace,
            [
                "notify: error: forbidden: `notify` may be issued by inspector or supervisor (you are: landlord)",
                "dismiss: error: forbidden: `dismiss` may be issued by inspector or supervisor (you are: department)",
                "deadline_passed: error: forbidden: `deadline_passed` may be issued by system (you are: inspector)",
                "cancel: error: forbidden: `cancel` may be issued by supervisor (you are: inspector)",
                "cancel: discovered -> cancelled",
            ]
        );
    }

    #[test]
    fn data_is_checked_field_by_field() {
        let trace = check(
            "wiring",
            &[
                Step(
                    Role::Inspector,
                    "notify",
                    json!({"deadline_hours": 0, "colour": "red"}),
                ),
                Step(Role::Inspector, "refer", json!({"department_id": 999})),
                Step(
                    Role::Inspector,
                    "mark_duplicate",
                    json!({"duplicate_of": 1}),
                ),
                Step(Role::Inspector, "refer", json!({})),
                Step(Role::Department, "accept", json!({})),
                Step(Role::Department, "record_result", json!({"result": "fine"})),
                Step(
                    Role::Department,
                    "record_result",
                    json!({"result": "fine", "fine_amount": 1.005}),
                ),
                Step(
                    Role::Department,
                    "record_result",
                    json!({"result": "sealing", "evidence": []}),
                ),
            ],
            TimeDelta::hours(1),
        );
        assert_eq!(
            trace,
            [
                "notify: error: invalid request: data.colour: unknown field; this command takes: deadline_hours, requirements; data.deadline_hours: must be at least 1",
                "refer: error: invalid request: data.department_id: no department 999",
                "mark_duplicate: error: invalid request: data.duplicate_of: a case cannot refer to itself",
                "refer: discovered -> referred +timer:acceptance_sla@72h msg:department:referral referral:open",
                "accept: referred -> accepted -timer:acceptance_sla referral:accept",
                "record_result: error: invalid request: data.fine_amount: required",
                "record_result: error: invalid request: data.fine_amount: at most two decimals (fen)",
                "record_result: accepted -> enforced msg:inspector:enforcement_feedback referral:complete",
            ]
        );
    }

    #[test]
    fn a_case_without_a_landlord_records_that_nobody_was_notified() {
        let def = &workflow::builtin()[0];
        let taxonomy = Taxonomy::builtin();
        let routing = routing();
        let ctx = Context {
            definition: def,
            taxonomy: &taxonomy,
            routing: &routing,
            calendar: &crate::calendar::Calendar::builtin(),
            now: t0(),
        };
        let mut c = case("wiring", "major");
        c.party_id = None;
        let cmd = Command {
            name: "notify".into(),
            ..Command::default()
        };
        let d = decide(ctx, &c, &who(Role::Inspector), &cmd).unwrap();
        assert!(d.messages.is_empty());
        assert_eq!(d.data["undelivered"][0]["to"], "landlord");
        assert_eq!(d.data["order_no"], 1);
    }

    #[test]
    fn orders_are_rendered_in_chinese_first_with_the_deadline_in_beijing_time() {
        let def = &workflow::builtin()[0];
        let taxonomy = Taxonomy::builtin();
        let routing = routing();
        let ctx = Context {
            definition: def,
            taxonomy: &taxonomy,
            routing: &routing,
            calendar: &crate::calendar::Calendar::builtin(),
            now: t0(),
        };
        let mut data = Map::new();
        data.insert("requirements".into(), json!("清理楼道电动车"));
        let cmd = Command {
            name: "notify".into(),
            data,
            reason: None,
        };
        let d = decide(
            ctx,
            &case("ebike_indoor", "critical"),
            &who(Role::Inspector),
            &cmd,
        )
        .unwrap();
        let m = &d.messages[0];
        assert_eq!(m.subject, "整改通知书 第1-1号 / Rectification order 1-1");
        assert!(m.body.starts_with("您的出租屋 天河区石牌街道 1 号 101 房 经检查发现安全隐患：电动自行车违规停放充电（重大）"), "{}", m.body);
        assert!(m.body.contains("2026-03-03 09:00 (UTC+8)"), "{}", m.body);
        assert!(m.body.contains("整改要求 Requirements: 清理楼道电动车"));
        assert!(m.body.find("您的出租屋").unwrap() < m.body.find("Your rental unit").unwrap());
    }

    #[test]
    fn allowed_commands_depend_on_state_and_role() {
        let def = &workflow::builtin()[0];
        let routing = routing();
        let at = |state: &str| CaseSnapshot {
            state: state.into(),
            department_id: Some(DepartmentId(11)),
            ..case("ebike_indoor", "major")
        };
        let (notified, referred) = (at("notified"), at("referred"));
        let landlord = who(Role::Landlord);
        let listed: Vec<_> = allowed_commands(def, &notified, &landlord, &routing).collect();
        assert_eq!(listed, ["acknowledge", "report_fix"]);
        let dept = who(Role::Department);
        let listed: Vec<_> = allowed_commands(def, &referred, &dept, &routing).collect();
        assert_eq!(listed, ["accept", "return_referral"]);
    }

    /// An objection is decided by the supervisor of the case's street; by the
    /// district's only where the street has no supervisor of its own; never by the
    /// city's or another street's.
    #[test]
    fn objections_are_decided_by_the_streets_supervisor() {
        let def = workflow::builtin()
            .into_iter()
            .find(|d| d.commands.contains_key(DECIDE_OBJECTION))
            .expect("a version with objections");
        let pending = CaseSnapshot {
            state: "objection_pending".into(),
            ..case("ebike_indoor", "major")
        };
        let supervisor = |scope| Principal {
            role: Role::Supervisor,
            subject: 9,
            scope,
            account: None,
        };
        let street = supervisor(Scope::Street(StreetId(3)));
        let other_street = supervisor(Scope::Street(StreetId(4)));
        let district = supervisor(Scope::District("440106".into()));
        let city = supervisor(Scope::City);
        let supervised = routing().with_supervised_streets([StreetId(3)]);
        let unsupervised = routing().with_supervised_streets([StreetId(4)]);
        let may = |p: &Principal, r: &Routing| {
            allowed_commands(&def, &pending, p, r).any(|c| c == DECIDE_OBJECTION)
        };
        assert!(may(&street, &supervised));
        assert!(!may(&other_street, &supervised));
        assert!(!may(&district, &supervised));
        assert!(may(&district, &unsupervised));
        assert!(!may(&city, &supervised) && !may(&city, &unsupervised));
        // Issued, the command is refused in the same cases, and taken in the others.
        let taxonomy = Taxonomy::builtin();
        let calendar = crate::calendar::Calendar::builtin();
        let cmd = Command {
            name: DECIDE_OBJECTION.into(),
            data: serde_json::json!({ "granted": false })
                .as_object()
                .unwrap()
                .clone(),
            reason: Some("经核实".into()),
        };
        let decide_as = |p: &Principal, r: &Routing| {
            let ctx = Context {
                definition: &def,
                taxonomy: &taxonomy,
                routing: r,
                calendar: &calendar,
                now: t0(),
            };
            decide(ctx, &pending, p, &cmd).map(|d| d.next.state)
        };
        assert_eq!(decide_as(&street, &supervised).unwrap(), "acknowledged");
        assert_eq!(decide_as(&district, &unsupervised).unwrap(), "acknowledged");
        for (p, r) in [(&district, &supervised), (&city, &supervised)] {
            assert!(matches!(decide_as(p, r), Err(Error::Forbidden(_))));
        }
    }

    #[test]
    fn a_rule_moves_the_deadline_and_its_timer_and_the_case_stays() {
        let def = &workflow::builtin()[2];
        let taxonomy = Taxonomy::builtin();
        let routing = routing();
        let calendar = crate::calendar::Calendar::builtin();
        let ctx = Context {
            definition: def,
            taxonomy: &taxonomy,
            routing: &routing,
            calendar: &calendar,
            now: t0(),
        };
        let command = |name: &str, hours: Option<i64>| Command {
            name: name.into(),
            data: hours
                .map(|h| [("hours".to_string(), json!(h))].into_iter().collect())
                .unwrap_or_default(),
            reason: Some("规则".into()),
        };
        let c = case("ebike_indoor", "critical");
        let notified = decide(ctx, &c, &who(Role::Inspector), &command("notify", None)).unwrap();
        assert_eq!(notified.trigger, Some(crate::rules::Trigger::NewHazard));
        let deadline = notified.next.deadline_at.unwrap();
        let moved = decide(
            ctx,
            &notified.next,
            &who(Role::System),
            &command("rule_move_deadline", Some(-12)),
        )
        .unwrap();
        assert_eq!(moved.next.state, "notified");
        assert_eq!(moved.trigger, None);
        assert_eq!(
            moved.next.deadline_at,
            Some(deadline - TimeDelta::hours(12))
        );
        assert_eq!(moved.cancel_timers, ["order_deadline"]);
        assert_eq!(
            moved.schedule_timers[0].due_at,
            deadline - TimeDelta::hours(12)
        );
        assert_eq!(moved.messages[0].template, "deadline_moved");
        // Never into the past: an hour from now at the soonest.
        let floor = decide(
            ctx,
            &moved.next,
            &who(Role::System),
            &command("rule_move_deadline", Some(-100)),
        )
        .unwrap();
        assert_eq!(floor.next.deadline_at, Some(t0() + TimeDelta::hours(1)));
        // Only the engine issues rule commands.
        assert!(matches!(
            decide(
                ctx,
                &moved.next,
                &who(Role::Supervisor),
                &command("rule_move_deadline", Some(1))
            ),
            Err(Error::Forbidden(_))
        ));
        // A blacklist proposal names the case's party; a priority rises by one.
        let proposed = decide(
            ctx,
            &moved.next,
            &who(Role::System),
            &command("rule_propose_blacklist", None),
        )
        .unwrap();
        assert_eq!(proposed.blacklist.as_deref(), Some("规则"));
        let raised = decide(
            ctx,
            &proposed.next,
            &who(Role::System),
            &command("rule_raise_priority", None),
        )
        .unwrap();
        assert_eq!(raised.next.priority, 1);
        assert_eq!(raised.next.state, "notified");
    }

    /// Decides one command on version 6 at `now`.
    fn v6(
        c: &CaseSnapshot,
        role: Role,
        name: &str,
        data: Value,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Decision, Error> {
        let def = workflow::builtin()
            .into_iter()
            .find(|d| d.version == 6)
            .expect("version 6");
        let taxonomy = Taxonomy::builtin();
        let routing = routing().with_supervised_streets([StreetId(3)]);
        let ctx = Context {
            definition: &def,
            taxonomy: &taxonomy,
            routing: &routing,
            calendar: &crate::calendar::Calendar::builtin(),
            now,
        };
        let principal = match role {
            Role::Supervisor => Principal {
                role,
                subject: 9,
                scope: Scope::Street(StreetId(3)),
                account: None,
            },
            _ => who(role),
        };
        let cmd = Command {
            name: name.into(),
            data: data.as_object().cloned().unwrap_or_default(),
            reason: reason.map(String::from),
        };
        decide(ctx, c, &principal, &cmd)
    }

    /// Issue 22, 2: an order on a unit with nobody on record is issued for service in
    /// person: no message to nobody, no deadline running, a reminder instead; the
    /// service recorded starts the deadline for the order's hours.
    #[test]
    fn an_order_to_nobody_waits_for_its_service_in_person() {
        let nobody = CaseSnapshot {
            party_id: None,
            ..case("wiring", "major")
        };
        let issued = v6(&nobody, Role::Inspector, "notify", json!({}), None, t0()).unwrap();
        assert_eq!(issued.next.state, "awaiting_service");
        assert_eq!(issued.next.deadline_at, None);
        assert_eq!(issued.next.order_no, 1);
        assert_eq!(issued.next.order_hours, 72);
        assert!(issued.messages.is_empty());
        assert_eq!(issued.data["service"], "in_person");
        let timers: Vec<_> = issued
            .schedule_timers
            .iter()
            .map(|t| t.kind.as_str())
            .collect();
        assert_eq!(timers, ["service_reminder"]);
        // A landlord on record: the order goes to them as before.
        let notified = v6(
            &case("wiring", "major"),
            Role::Inspector,
            "notify",
            json!({}),
            None,
            t0(),
        )
        .unwrap();
        assert_eq!(notified.next.state, "notified");
        assert_eq!(notified.messages.len(), 1);
        // Left at the premises needs a witness.
        let waiting = issued.next.clone();
        let later = t0() + TimeDelta::hours(5);
        let err = v6(
            &waiting,
            Role::Inspector,
            "record_service",
            json!({ "method": "left", "recipient": "租户 张三" }),
            None,
            later,
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Invalid(f) if f[0].field == "data.witness"),
            "{err:?}"
        );
        let served = v6(
            &waiting,
            Role::Inspector,
            "record_service",
            json!({ "method": "direct", "recipient": "租户 张三" }),
            None,
            later,
        )
        .unwrap();
        assert_eq!(served.next.state, "notified");
        assert_eq!(served.next.deadline_at, Some(later + TimeDelta::hours(72)));
        let timers: Vec<_> = served
            .schedule_timers
            .iter()
            .map(|t| (t.kind.as_str(), t.due_at))
            .collect();
        assert_eq!(timers, [("order_deadline", later + TimeDelta::hours(72))]);
        assert_eq!(served.cancel_timers, ["service_reminder"]);
        // The printed order says the deadline runs from service.
        let def = workflow::builtin()
            .into_iter()
            .find(|d| d.version == 6)
            .unwrap();
        let taxonomy = Taxonomy::builtin();
        let routing = routing();
        let ctx = Context {
            definition: &def,
            taxonomy: &taxonomy,
            routing: &routing,
            calendar: &crate::calendar::Calendar::builtin(),
            now: t0(),
        };
        let (_, body) = order_text(ctx, &waiting, Some("拆除飞线")).unwrap();
        assert!(body.contains("自送达之日起72小时内"), "{body}");
        assert!(body.contains("拆除飞线"), "{body}");
    }

    /// Issue 22, 6: a review a rule required holds the case open: closing is refused,
    /// naming the review, and not offered; once completed, the case closes.
    #[test]
    fn a_pending_review_refuses_closing() {
        let waiting = CaseSnapshot {
            state: "enforced".into(),
            review_required: true,
            department_id: Some(DepartmentId(11)),
            ..case("wiring", "major")
        };
        let err = v6(
            &waiting,
            Role::Inspector,
            "close",
            json!({ "outcome": "fixed" }),
            None,
            t0(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::IllegalTransition { detail, .. } if detail.contains("督导复核") && detail.contains("complete_review")),
            "{err:?}"
        );
        let def = workflow::builtin()
            .into_iter()
            .find(|d| d.version == 6)
            .unwrap();
        let (inspector, routing) = (who(Role::Inspector), routing());
        let offered: Vec<_> = allowed_commands(&def, &waiting, &inspector, &routing).collect();
        assert!(!offered.contains(&"close"), "{offered:?}");
        let reviewed = v6(
            &waiting,
            Role::Supervisor,
            "complete_review",
            json!({}),
            Some("已核实"),
            t0(),
        )
        .unwrap();
        assert!(!reviewed.next.review_required);
        let closed = v6(
            &reviewed.next,
            Role::Inspector,
            "close",
            json!({ "outcome": "fixed" }),
            None,
            t0(),
        )
        .unwrap();
        assert_eq!(closed.next.state, "fixed");
    }

    /// Issue 22, 7: an objection decided after the old deadline passed, refused or
    /// granted too little, moves the case to overdue in the same decision (with the
    /// rules' event and both notices); granted enough, it is acknowledged again.
    #[test]
    fn an_objection_decided_past_its_deadline_goes_overdue_at_once() {
        let deadline = t0() + TimeDelta::hours(24);
        let pending = CaseSnapshot {
            state: "objection_pending".into(),
            deadline_at: Some(deadline),
            order_no: 1,
            objected_order: 1,
            ..case("wiring", "major")
        };
        let late = deadline + TimeDelta::hours(10);
        let refused = v6(
            &pending,
            Role::Supervisor,
            "decide_objection",
            json!({ "granted": false }),
            Some("理由不成立"),
            late,
        )
        .unwrap();
        assert_eq!(refused.next.state, "overdue");
        assert_eq!(refused.trigger, Some(crate::rules::Trigger::OrderOverdue));
        let templates: Vec<_> = refused
            .messages
            .iter()
            .map(|m| m.template.as_str())
            .collect();
        assert_eq!(
            templates,
            ["objection_refused_overdue", "order_overdue_inspector"]
        );
        assert!(refused.schedule_timers.is_empty());
        let short = v6(
            &pending,
            Role::Supervisor,
            "decide_objection",
            json!({ "granted": true, "hours": 5 }),
            Some("准予"),
            late,
        )
        .unwrap();
        assert_eq!(short.next.state, "overdue");
        assert_eq!(short.next.deadline_at, Some(deadline + TimeDelta::hours(5)));
        let enough = v6(
            &pending,
            Role::Supervisor,
            "decide_objection",
            json!({ "granted": true, "hours": 48 }),
            Some("准予"),
            late,
        )
        .unwrap();
        assert_eq!(enough.next.state, "acknowledged");
        let timers: Vec<_> = enough
            .schedule_timers
            .iter()
            .map(|t| t.kind.as_str())
            .collect();
        assert_eq!(timers, ["order_deadline"]);
        // Before the deadline, a refusal keeps it.
        let early = v6(
            &pending,
            Role::Supervisor,
            "decide_objection",
            json!({ "granted": false }),
            Some("理由不成立"),
            t0(),
        )
        .unwrap();
        assert_eq!(early.next.state, "acknowledged");
    }

    /// Issue 22, 4: a working-day timer is dated again under a newer calendar from when
    /// it started counting, once: under the same calendar nothing moves; an order's
    /// deadline in hours is never touched.
    #[test]
    fn a_new_calendar_redates_working_day_timers_once() {
        let def = workflow::builtin()
            .into_iter()
            .find(|d| d.version == 6)
            .unwrap();
        let taxonomy = Taxonomy::builtin();
        let routing = routing();
        let seed = crate::calendar::Calendar::builtin();
        let next_year = crate::calendar::Calendar::parse(&format!(
            "{}\nversion = 2\nyears = [2026, 2027]\ntest_data = true\nholidays = [\"2027-01-01\"]\nmake_up_workdays = []\n[[sources]]\nyear = 2026\nnotice = \"n\"\n[[sources]]\nyear = 2027\nnotice = \"test\"",
            ""
        ))
        .unwrap();
        let referred = CaseSnapshot {
            state: "referred".into(),
            department_id: Some(DepartmentId(11)),
            ..case("wiring", "major")
        };
        let from = DateTime::parse_from_rfc3339("2026-12-30T10:00:00+08:00")
            .unwrap()
            .to_utc();
        let ctx = |calendar| Context {
            definition: &def,
            taxonomy: &taxonomy,
            routing: &routing,
            calendar,
            now: from,
        };
        let due = seed.add_working_days(from, 3);
        let timer = RunningTimer {
            kind: "acceptance_sla",
            due_at: due,
            from,
        };
        assert!(
            redate(ctx(&seed), &referred, timer).is_none(),
            "nothing moves"
        );
        let d = redate(ctx(&next_year), &referred, timer).expect("re-dated");
        let new_due = DateTime::parse_from_rfc3339("2027-01-06T00:00:00+08:00")
            .unwrap()
            .to_utc();
        assert_eq!(d.schedule_timers[0].due_at, new_due);
        assert_eq!(d.schedule_timers[0].from, from);
        assert_eq!(d.data["calendar_version"], 2);
        assert_eq!(d.next.state, "referred");
        let again = RunningTimer {
            due_at: new_due,
            ..timer
        };
        assert!(
            redate(ctx(&next_year), &referred, again).is_none(),
            "once per version"
        );
        let order = RunningTimer {
            kind: "order_deadline",
            due_at: due,
            from,
        };
        assert!(
            redate(ctx(&next_year), &referred, order).is_none(),
            "hours are not re-dated"
        );
    }
}
