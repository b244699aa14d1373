//! Cases on the runtime: commands checked and sent to the writer, the regrade after a close or reopen, a case as its caller may see it, its messages, overdue orders and scoped case lists.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::auth::{Principal, Scope};
use crate::domain::{Actor, CaseId, DepartmentId, PartyId, Role};
use crate::error::{Error, Result};
use crate::machine::{self, Command};
use crate::store::{
    Applied, CaseFilter, CaseRecord, DeliveryRecord, EventRecord, OutboxMessage, Overdue,
    ReferralRecord, TimerRecord, TransitionRequest,
};
use crate::workflow::{FieldKind, TimerDue};

use super::Runtime;

/// A case with its history, timers and referrals, as a caller may see it.
#[derive(Debug, Clone)]
pub struct CaseView {
    pub case: CaseRecord,
    /// The case's workflow and its state's names.
    pub names: StateNames,
    pub history: Vec<EventRecord>,
    pub timers: Vec<TimerRecord>,
    pub referrals: Vec<ReferralRecord>,
    /// The commands this caller could issue now.
    pub commands: Vec<String>,
    /// The evidence the history (as the caller sees it) references, judged.
    pub evidence: Vec<super::EvidenceView>,
}

/// What a command committed: the case after it and the events it added.
#[derive(Debug, Clone)]
pub struct Committed {
    pub case: CaseRecord,
    pub events: Vec<EventRecord>,
}

/// The answer to a command: the case as committed and what changed, without its whole
/// history (`GET /cases/{id}` and `/events` give that).
#[derive(Debug, Clone)]
pub struct CommandAnswer {
    pub case: CaseRecord,
    /// The case's workflow and its state's names.
    pub names: StateNames,
    /// The events the command added, as the caller may see them.
    pub events: Vec<EventRecord>,
    /// The case's running timer, if any.
    pub timers: Vec<TimerRecord>,
    /// The commands this caller could issue now.
    pub commands: Vec<String>,
}

/// A case's workflow and its state's names, as every answer about a case gives them.
#[derive(Debug, Clone)]
pub struct StateNames {
    pub workflow: String,
    pub workflow_version: u32,
    pub state_zh: String,
    pub state_en: String,
    pub terminal: bool,
}

impl StateNames {
    pub fn of(def: &crate::workflow::Definition, state: &str) -> StateNames {
        let names = def.states.get(state);
        StateNames {
            workflow: def.name.clone(),
            workflow_version: def.version,
            state_zh: names.map(|s| s.zh.clone()).unwrap_or_default(),
            state_en: names.map(|s| s.en.clone()).unwrap_or_default(),
            terminal: def.is_terminal(state),
        }
    }
}

impl Runtime {
    /// Issues a command on a case as `principal`. Returns the case after the transition,
    /// once it is durable.
    pub async fn execute(
        &self,
        principal: &Principal,
        case_id: CaseId,
        command: Command,
        expected_version: Option<i64>,
    ) -> Result<Committed> {
        // A caller who may not see the case learns nothing about it, not even that it
        // exists: the writer answers "not found" when the case is outside the caller's
        // scope. A department also sees the cases once referred to it, which takes a
        // look at the referrals first; so does a command naming other records.
        if principal.role == Role::Department || self.names_records(&command) {
            let record = self.visible_case(principal, case_id).await?;
            self.check_references(principal, &record, &command).await?;
        }
        let request = TransitionRequest {
            case_id,
            expected_version,
            timer_seq: None,
            actor: Actor {
                role: principal.role,
                id: principal.actor_id(),
            },
            command: command.name.clone(),
            reason: command.reason.clone(),
            rule: None,
        };
        // Closing a case lifts its cap on the unit's grade and brings a return visit;
        // reopening it puts the cap back: the writer regrades the unit in the
        // transition's transaction.
        let (case, event) = match self.submit(request, principal.clone(), command).await? {
            Applied::Done { case, event, .. } => (case, event),
            Applied::TimerGone | Applied::AlreadyApplied => {
                return Err(Error::Internal(
                    "a person's command was skipped as a timer's or a rule's".into(),
                ));
            }
        };
        Ok(Committed {
            case: *case,
            events: vec![*event],
        })
    }

    /// The answer to a command, from what the writer committed (nothing is read back):
    /// the case as committed, the events the command added as the caller may see them,
    /// the case's running timer, and the commands the caller may issue next. A
    /// department that has just returned the case sees it as it left it (no timer, no
    /// commands), as `case_view` shows it.
    pub fn command_answer(
        &self,
        principal: &Principal,
        committed: Committed,
    ) -> Result<CommandAnswer> {
        let Committed { mut case, events } = committed;
        self.judge_timer(&mut case);
        let def = self
            .definition(case.definition_id)
            .ok_or_else(|| Error::not_found("workflow definition", case.definition_id))?;
        let left = matches!(principal.scope, Scope::Department(d) if case.snapshot.department_id != Some(d));
        let events = crate::policy::history::visible_history(principal, events, None);
        let timers = match (&case.timer, left) {
            (Some(t), false) => vec![t.clone()],
            _ => Vec::new(),
        };
        let commands = if !left && principal.covers(case.snapshot.place()) {
            machine::allowed_commands(&def, &case.snapshot, principal, &self.routing())
                .map(String::from)
                .collect()
        } else {
            Vec::new()
        };
        Ok(CommandAnswer {
            names: StateNames::of(&def, &case.snapshot.state),
            case,
            events,
            timers,
            commands,
        })
    }

    /// A page of a case's history after event `after` (at most `limit` events), as the
    /// caller may see it.
    pub async fn case_events_after(
        &self,
        principal: &Principal,
        id: CaseId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<EventRecord>> {
        let case = self.visible_case(principal, id).await?;
        let history = self.shared.store.case_events(id).await?;
        let cutoff = self.cutoff_of(principal, &case).await?;
        Ok(
            crate::policy::history::visible_history(principal, history, cutoff)
                .into_iter()
                .filter(|e| e.seq > after)
                .take(limit as usize)
                .collect(),
        )
    }

    /// When a department that returned the case stopped seeing it (`None`: the caller
    /// sees it as it is now). Reads the case's referrals for a department only.
    async fn cutoff_of(
        &self,
        principal: &Principal,
        case: &CaseRecord,
    ) -> Result<Option<DateTime<Utc>>> {
        Ok(match principal.scope {
            Scope::Department(d) => crate::policy::history::department_cutoff(
                d,
                case.snapshot.department_id,
                &self.shared.store.case_referrals(case.snapshot.id).await?,
            ),
            _ => None,
        })
    }

    /// Whether the command, in some workflow version, fills in a field that names
    /// another record the store must check: a case, or uploaded evidence. One pass over
    /// the definitions, on every command.
    fn names_records(&self, command: &Command) -> bool {
        let w = self.shared.workflows.read().expect("workflow lock").clone();
        w.by_id.values().any(|def| {
            def.commands.get(&command.name).is_some_and(|spec| {
                spec.fields.iter().any(|(name, f)| {
                    matches!(f.kind, FieldKind::Case | FieldKind::Evidence)
                        && command.data.contains_key(name)
                })
            })
        })
    }

    /// Checks fields that name other records (a duplicate's original case, uploaded
    /// evidence) against the store, since the pure machine cannot.
    pub(super) async fn check_references(
        &self,
        principal: &Principal,
        record: &CaseRecord,
        command: &Command,
    ) -> Result<()> {
        let Some(def) = self.definition(record.definition_id) else {
            return Ok(());
        };
        let Some(spec) = def.commands.get(&command.name) else {
            return Ok(());
        };
        let mut uploads = Vec::new();
        for (name, field) in &spec.fields {
            if field.kind == FieldKind::Evidence
                && let Some(Value::Array(items)) = command.data.get(name)
            {
                for (i, item) in items.iter().enumerate() {
                    if let Some(id) = item.as_str().map(str::trim)
                        && crate::evidence::is_id(id)
                    {
                        uploads.push((format!("data.{name}[{i}]"), id.to_string()));
                    }
                }
            }
            if field.kind != FieldKind::Case {
                continue;
            }
            if let Some(id) = command.data.get(name).and_then(Value::as_i64)
                && id != record.snapshot.id.0
                && self.visible_case(principal, CaseId(id)).await.is_err()
            {
                return Err(Error::invalid(
                    format!("data.{name}"),
                    format!("no case {id}"),
                ));
            }
        }
        self.check_evidence(principal, &uploads, record.unit_id)
            .await
    }

    /// Applies a command of the system (a rule's, a timer's, a correction's) through
    /// the writer, as the engine itself does.
    pub async fn execute_as_system(
        &self,
        request: TransitionRequest,
        data: Map<String, Value>,
    ) -> Result<Applied> {
        let command = Command {
            name: request.command.clone(),
            data,
            reason: request.reason.clone(),
        };
        self.submit(request, Principal::system(), command).await
    }

    /// A case with its history and open timers, as the caller may see it: a landlord
    /// the events that concern them, a department the case up to when it returned it
    /// (see `access`).
    pub async fn case_view(&self, principal: &Principal, id: CaseId) -> Result<CaseView> {
        let mut case = self.visible_case(principal, id).await?;
        let store = &self.shared.store;
        // The running timer is the case's own (read with it).
        let (history, referrals) =
            tokio::try_join!(store.case_events(id), store.case_referrals(id))?;
        let def = self
            .definition(case.definition_id)
            .ok_or_else(|| Error::not_found("workflow definition", case.definition_id))?;
        let cutoff = match principal.scope {
            Scope::Department(d) => crate::policy::history::department_cutoff(
                d,
                case.snapshot.department_id,
                &referrals,
            ),
            _ => None,
        };
        let history = crate::policy::history::visible_history(principal, history, cutoff);
        self.judge_timer(&mut case);
        let mut timers = case.timer.iter().cloned().collect::<Vec<_>>();
        if cutoff.is_some() {
            // The case as the department left it: its state then, nothing since.
            if let Some(last) = history.last() {
                case.snapshot.state = last.to_state.clone();
                case.snapshot.version = last.seq;
            }
            timers.clear();
        }
        let referrals = crate::policy::history::visible_referrals(principal, referrals);
        let commands = if cutoff.is_none() && principal.covers(case.snapshot.place()) {
            machine::allowed_commands(&def, &case.snapshot, principal, &self.routing())
                .map(String::from)
                .collect()
        } else {
            Vec::new()
        };
        let evidence =
            super::evidence::as_seen_by(principal, self.evidence_views(&case, &history).await?);
        Ok(CaseView {
            names: StateNames::of(&def, &case.snapshot.state),
            case,
            history,
            timers,
            referrals,
            commands,
            evidence,
        })
    }

    /// Messages written for a case, for callers who may see the case: a landlord or a
    /// department those addressed to them.
    /// A case's current rectification order as printed: the case, the order's text (the
    /// message that carried it), and what the sheet names (document number, party,
    /// inspector, placard, district). Seen by whoever may see the case; "not found" for
    /// a case without an order.
    pub async fn printable_order(
        &self,
        principal: &Principal,
        id: CaseId,
    ) -> Result<(CaseRecord, Option<OutboxMessage>, crate::store::OrderSheet)> {
        let case = self.visible_case(principal, id).await?;
        let order_no = case.snapshot.order_no;
        if order_no == 0 {
            return Err(Error::not_found("order", id));
        }
        let sheet = self
            .shared
            .store
            .order_sheet(id, order_no)
            .await?
            .ok_or_else(|| Error::not_found("order", id))?;
        let message = self
            .case_outbox(principal, id)
            .await?
            .into_iter()
            .map(|(m, _)| m)
            .rfind(|m| m.template == "rectification_order");
        Ok((case, message, sheet))
    }

    /// The text of a case's current order as the workflow words it, for the sheet of
    /// an order no message carried (served in person), with the requirements it was
    /// issued with.
    pub async fn order_text(&self, case: &CaseRecord) -> Result<String> {
        let def = self
            .definition(case.definition_id)
            .ok_or_else(|| Error::not_found("workflow definition", case.definition_id))?;
        let history = self.shared.store.case_events(case.snapshot.id).await?;
        let requirements = history
            .iter()
            .rev()
            .find(|e| e.data.get("order_no").is_some())
            .and_then(|e| e.data.get("requirements"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let (routing, calendar) = (self.routing(), self.calendar());
        let ctx = crate::machine::Context {
            definition: &def,
            taxonomy: &self.shared.taxonomy,
            routing: &routing,
            calendar: &calendar,
            now: self.now(),
        };
        Ok(
            crate::machine::order_text(ctx, &case.snapshot, requirements.as_deref())
                .map(|(_, body)| body)
                .unwrap_or_default(),
        )
    }

    pub async fn case_outbox(
        &self,
        principal: &Principal,
        id: CaseId,
    ) -> Result<Vec<(OutboxMessage, Vec<DeliveryRecord>)>> {
        let case = self.visible_case(principal, id).await?;
        let messages = self.shared.store.case_outbox(id).await?;
        let cutoff = self.cutoff_of(principal, &case).await?;
        let messages = crate::policy::history::visible_messages(principal, messages, cutoff);
        let mut by_message: BTreeMap<i64, Vec<DeliveryRecord>> = BTreeMap::new();
        for d in self.shared.store.case_deliveries(id).await? {
            by_message.entry(d.outbox_id).or_default().push(d);
        }
        Ok(messages
            .into_iter()
            .map(|m| {
                let deliveries = by_message.remove(&m.id).unwrap_or_default();
                (m, deliveries)
            })
            .collect())
    }

    /// What was addressed to the caller, newest first (every role): their orders and
    /// notices, without knowing case ids, with what they have read.
    pub async fn my_messages(
        &self,
        principal: &Principal,
        unread: bool,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<crate::store::InboxItem>> {
        let Some(me) = crate::notices::recipient(principal.role, principal.subject) else {
            return Ok(Vec::new());
        };
        Ok(self
            .shared
            .store
            .inbox(&me, unread, before, limit.clamp(1, 1000))
            .await?)
    }

    /// Marks a message of the caller's inbox read; a message not addressed to them is
    /// not found.
    pub async fn mark_read(&self, principal: &Principal, message: i64) -> Result<()> {
        let found = match crate::notices::recipient(principal.role, principal.subject) {
            Some(me) => {
                self.shared
                    .store
                    .mark_read(&me, message, self.now())
                    .await?
            }
            None => false,
        };
        if found {
            Ok(())
        } else {
            Err(Error::not_found("message", message))
        }
    }

    /// Deliveries given up after their last attempt, newest first, of cases in the
    /// caller's area (supervisors).
    pub async fn dead_letters(
        &self,
        principal: &Principal,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>> {
        crate::policy::check(principal, crate::policy::Act::HandleDeadLetters)?;
        Ok(self
            .shared
            .store
            .dead_letters(&principal.scope, before, limit.clamp(1, 1000))
            .await?)
    }

    /// Queues a dead letter again, with its attempts from zero (supervisors, of their
    /// area). The next step of the outbox worker sends it, with its Message-ID.
    pub async fn resend(&self, principal: &Principal, id: i64) -> Result<DeliveryRecord> {
        crate::policy::check(principal, crate::policy::Act::HandleDeadLetters)?;
        self.shared
            .store
            .resend(id, &principal.scope, self.now())
            .await?
            .ok_or_else(|| Error::not_found("dead letter", id))
    }

    /// What "overdue" means across the loaded workflows: the states a deadline timer
    /// leads to, and the states in which the deadline runs.
    pub fn overdue(&self, wanted: bool) -> Overdue {
        let w = self.shared.workflows.read().expect("workflow lock").clone();
        let mut states = BTreeSet::new();
        let mut deadline_states = BTreeSet::new();
        for def in w.by_id.values() {
            for timer in def
                .timers
                .values()
                .filter(|t| t.due == Some(TimerDue::Deadline))
            {
                deadline_states.extend(timer.states.iter().cloned());
                for t in def.transitions.iter().filter(|t| t.command == timer.fire) {
                    states.extend(t.to.clone());
                }
            }
        }
        Overdue {
            wanted,
            states: states.into_iter().collect(),
            deadline_states: deadline_states.into_iter().collect(),
            now: self.now(),
        }
    }

    /// Cases within the caller's scope matching `filter`, newest first.
    pub async fn list_cases(
        &self,
        principal: &Principal,
        filter: &CaseFilter,
    ) -> Result<Vec<CaseRecord>> {
        let mut cases = self
            .shared
            .store
            .list_cases(filter, &principal.scope)
            .await?;
        for c in &mut cases {
            self.judge_timer(c);
        }
        Ok(cases)
    }

    /// Marks a case's running timer provisional when it counts working days past the
    /// last year the calendar in force knows.
    pub(super) fn judge_timer(&self, case: &mut CaseRecord) {
        let definition_id = case.definition_id;
        if let Some(t) = &mut case.timer {
            t.provisional = self.provisional(definition_id, &t.kind, t.due_at);
        }
    }

    /// A landlord's rectification orders (cases with an order), each with the latest
    /// order sent to the landlord: for the landlord, and for staff over their area.
    /// Two queries, whatever the number of cases.
    pub async fn party_orders(
        &self,
        principal: &Principal,
        party: PartyId,
        filter: &CaseFilter,
    ) -> Result<Vec<(CaseRecord, Option<OutboxMessage>)>> {
        crate::policy::check(principal, crate::policy::Act::ReadPartyOrders(party))?;
        let filter = CaseFilter {
            party_id: Some(party),
            ..filter.clone()
        };
        let cases = self.list_cases(principal, &filter).await?;
        let ids: Vec<CaseId> = cases.iter().map(|c| c.snapshot.id).collect();
        let mut latest: BTreeMap<CaseId, OutboxMessage> = BTreeMap::new();
        for m in self
            .shared
            .store
            .messages_of_cases(&ids, "landlord", "rectification_order")
            .await?
        {
            latest.insert(m.case_id, m);
        }
        Ok(cases
            .into_iter()
            .map(|c| {
                let order = latest.remove(&c.snapshot.id);
                (c, order)
            })
            .collect())
    }

    /// The cases referred to a department, each with the referrals to that department:
    /// for the department itself, and for supervisors over their area. Two queries,
    /// whatever the number of cases.
    pub async fn department_referrals(
        &self,
        principal: &Principal,
        department: DepartmentId,
        filter: &CaseFilter,
    ) -> Result<Vec<(CaseRecord, Vec<ReferralRecord>)>> {
        crate::policy::check(
            principal,
            crate::policy::Act::ReadDepartmentReferrals(department),
        )?;
        let filter = CaseFilter {
            department_id: Some(department),
            ..filter.clone()
        };
        let cases = self.list_cases(principal, &filter).await?;
        let ids: Vec<CaseId> = cases.iter().map(|c| c.snapshot.id).collect();
        let mut by_case: BTreeMap<CaseId, Vec<ReferralRecord>> = BTreeMap::new();
        for r in self
            .shared
            .store
            .referrals_of_cases(&ids, Some(department))
            .await?
        {
            by_case.entry(r.case_id).or_default().push(r);
        }
        Ok(cases
            .into_iter()
            .map(|c| {
                let referrals = by_case.remove(&c.snapshot.id).unwrap_or_default();
                (c, referrals)
            })
            .collect())
    }
}
