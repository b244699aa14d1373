//! Workflow definitions as data: the model of `workflows/<name>/v<N>.toml`, its validation and its loading.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::Role;

/// The definitions compiled into this build, as (file name, text).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "hazard_case/v1.toml",
        include_str!("../../../workflows/hazard_case/v1.toml"),
    ),
    (
        "hazard_case/v2.toml",
        include_str!("../../../workflows/hazard_case/v2.toml"),
    ),
    (
        "hazard_case/v3.toml",
        include_str!("../../../workflows/hazard_case/v3.toml"),
    ),
    (
        "hazard_case/v4.toml",
        include_str!("../../../workflows/hazard_case/v4.toml"),
    ),
    (
        "hazard_case/v5.toml",
        include_str!("../../../workflows/hazard_case/v5.toml"),
    ),
    (
        "hazard_case/v6.toml",
        include_str!("../../../workflows/hazard_case/v6.toml"),
    ),
];

/// The workflow every new hazard case runs on.
pub const HAZARD_CASE: &str = "hazard_case";

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    pub version: u32,
    pub zh: String,
    pub en: String,
    pub initial: String,
    pub states: BTreeMap<String, StateDef>,
    #[serde(default)]
    pub timers: BTreeMap<String, TimerDef>,
    pub commands: BTreeMap<String, CommandDef>,
    pub transitions: Vec<TransitionDef>,
    #[serde(default)]
    pub templates: BTreeMap<String, Template>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateDef {
    pub zh: String,
    pub en: String,
    #[serde(default)]
    pub terminal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimerDue {
    /// The case's order deadline.
    Deadline,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimerDef {
    pub states: Vec<String>,
    #[serde(default)]
    pub due: Option<TimerDue>,
    #[serde(default)]
    pub after_hours: Option<u32>,
    /// Working days (the calendar's) from entering the set: the timer falls due at the
    /// end of the last of them.
    #[serde(default)]
    pub after_working_days: Option<u32>,
    pub fire: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandDef {
    pub zh: String,
    pub en: String,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub reason_required: bool,
    #[serde(default)]
    pub fields: BTreeMap<String, FieldSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Bool,
    Integer,
    Money,
    Text,
    Enum,
    Evidence,
    Department,
    Case,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    #[serde(rename = "type")]
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Labels of enum values for messages ("罚款 fine").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required_if: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionDef {
    pub command: String,
    pub from: Vec<String>,
    /// The state after the transition; without it, the case stays where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The rule event this transition raises: the escalation rules listening to it run
    /// after the transition commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<crate::rules::Trigger>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub when: BTreeMap<String, Value>,
    /// Taken only when the case has (`true`) or has no (`false`) responsible party on
    /// record: an order to nobody is served in person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<bool>,
    /// Taken only when the order's deadline, as the transition's effects leave it, has
    /// `passed` (at the moment of the command) or is still `pending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DeadlineGuard>,
    #[serde(default)]
    pub effects: Vec<Effect>,
}

/// Where the order's deadline stands when a transition is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineGuard {
    /// The deadline is at or before now.
    Passed,
    /// The deadline is after now, or there is none.
    Pending,
}

/// Who a message goes to; resolved against the case when the transition is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    Landlord,
    Inspector,
    Department,
    Supervisor,
}

impl Recipient {
    pub fn as_str(self) -> &'static str {
        match self {
            Recipient::Landlord => "landlord",
            Recipient::Inspector => "inspector",
            Recipient::Department => "department",
            Recipient::Supervisor => "supervisor",
        }
    }
}

/// What a transition does besides changing state. The vocabulary is fixed in code; which
/// transition does what is data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum Effect {
    IssueOrder,
    Refer,
    ReferralAccepted,
    ReferralReturned,
    EnforcementResult,
    Escalate,
    Close,
    Reopen,
    Notify {
        to: Recipient,
        template: String,
    },
    /// Moves the order deadline by `data.hours` (never to before now), and its timer.
    MoveDeadline,
    RaisePriority,
    /// Marks the case as waiting for a supervisor's review.
    RequireReview,
    /// Clears the review mark.
    Reviewed,
    /// Proposes the case's responsible party for the blacklist; a supervisor decides.
    ProposeBlacklist,
    /// Moves the case to the grid, street and district in its data (0: none): the
    /// case follows its unit.
    Relocate,
    /// Records an objection (or a request for more time) against the current order:
    /// refused if this order was objected to already (once per order).
    Objection,
    /// The order just issued waits to be served in person (nobody is on record to
    /// notify): no deadline runs until its service is recorded.
    AwaitService,
    /// The order was served (the record's data: method, recipient, witness): its
    /// deadline runs from now, for the order's hours.
    ServeOrder,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub subject: String,
    pub body: String,
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "case_id",
    "order_no",
    "address",
    "category_zh",
    "category_en",
    "severity_zh",
    "severity_en",
    "deadline",
    "legal_basis",
    "requirements",
    "department",
    "reason",
    "result",
    "state_zh",
    "state_en",
    "notice_zh",
    "notice_en",
    "level",
];

/// A definition that does not hold together, with what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("workflow {file}: {message}")]
pub struct Invalid {
    pub file: String,
    pub message: String,
}

impl Definition {
    /// Parses and validates one definition file.
    pub fn parse(file: &str, text: &str) -> Result<Definition, Invalid> {
        let def: Definition = toml::from_str(text).map_err(|e| Invalid {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        def.validate().map_err(|message| Invalid {
            file: file.to_string(),
            message,
        })?;
        Ok(def)
    }

    /// A digest of the definition's content: the same definition always hashes the
    /// same, whatever the file's layout or comments.
    pub fn content_hash(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("definitions serialize");
        hex::encode(Sha256::digest(&canonical))
    }

    /// Where a transition taken from `from` leads.
    pub fn target<'a>(t: &'a TransitionDef, from: &'a str) -> &'a str {
        t.to.as_deref().unwrap_or(from)
    }

    pub fn is_terminal(&self, state: &str) -> bool {
        self.states.get(state).is_some_and(|s| s.terminal)
    }

    /// The transitions a command may take from a state, in file order.
    pub fn transitions_for<'a>(
        &'a self,
        command: &'a str,
        state: &'a str,
    ) -> impl Iterator<Item = &'a TransitionDef> + 'a {
        self.transitions
            .iter()
            .filter(move |t| t.command == command && t.from.iter().any(|s| s == state))
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.version == 0 {
            return Err("a definition needs a name and a version of at least 1".into());
        }
        self.check_state(&self.initial, "initial")?;
        if self.is_terminal(&self.initial) {
            return Err("the initial state cannot be terminal".into());
        }
        self.validate_commands()?;
        self.validate_transitions()?;
        self.validate_timers()?;
        self.validate_templates()?;
        self.validate_reachability()
    }

    fn check_state(&self, s: &str, what: &str) -> Result<(), String> {
        if self.states.contains_key(s) {
            Ok(())
        } else {
            Err(format!("{what} names unknown state `{s}`"))
        }
    }

    fn validate_commands(&self) -> Result<(), String> {
        for (name, cmd) in &self.commands {
            if cmd.roles.is_empty() {
                return Err(format!("command `{name}` names no role"));
            }
            if cmd.roles.contains(&Role::System) && cmd.roles.len() > 1 {
                return Err(format!(
                    "command `{name}` mixes the system role with people's roles"
                ));
            }
            for (field, spec) in &cmd.fields {
                validate_field(&cmd.fields, field, spec)
                    .map_err(|e| format!("command `{name}` field `{field}`: {e}"))?;
            }
            if !self.transitions.iter().any(|t| &t.command == name) {
                return Err(format!("command `{name}` has no transition"));
            }
        }
        Ok(())
    }

    fn validate_transitions(&self) -> Result<(), String> {
        for (i, t) in self.transitions.iter().enumerate() {
            let what = format!("transition {} (`{}`)", i + 1, t.command);
            let cmd = self
                .commands
                .get(&t.command)
                .ok_or_else(|| format!("{what} uses an undeclared command"))?;
            if t.from.is_empty() {
                return Err(format!("{what} has an empty `from`"));
            }
            for s in &t.from {
                self.check_state(s, &what)?;
            }
            if let Some(to) = &t.to {
                self.check_state(to, &what)?;
            }
            for (field, value) in &t.when {
                let spec = cmd
                    .fields
                    .get(field)
                    .ok_or_else(|| format!("{what}: `when` names unknown field `{field}`"))?;
                check_literal(spec, value).map_err(|e| format!("{what}: `when.{field}`: {e}"))?;
            }
            for effect in &t.effects {
                if let Effect::Notify { template, .. } = effect
                    && !self.templates.contains_key(template)
                {
                    return Err(format!(
                        "{what} notifies with unknown template `{template}`"
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_timers(&self) -> Result<(), String> {
        // A case has at most one running timer: the sets of states timers run in must
        // not overlap.
        let kinds: Vec<(&String, &TimerDef)> = self.timers.iter().collect();
        for (i, (a, ta)) in kinds.iter().enumerate() {
            for (b, tb) in &kinds[i + 1..] {
                if let Some(s) = ta.states.iter().find(|s| tb.states.contains(s)) {
                    return Err(format!(
                        "timers `{a}` and `{b}` both run in state `{s}`; a case runs one timer at a time"
                    ));
                }
            }
        }
        for (name, timer) in &self.timers {
            let what = format!("timer `{name}`");
            if timer.states.is_empty() {
                return Err(format!("{what} runs in no state"));
            }
            match (timer.due, timer.after_hours, timer.after_working_days) {
                (Some(_), None, None) | (None, Some(1..), None) | (None, None, Some(1..)) => {}
                _ => {
                    return Err(format!(
                        "{what} needs exactly one of `due`, a positive `after_hours` and a \
                         positive `after_working_days`"
                    ));
                }
            }
            let cmd = self
                .commands
                .get(&timer.fire)
                .ok_or_else(|| format!("{what} fires unknown command `{}`", timer.fire))?;
            if cmd.roles != [Role::System] {
                return Err(format!(
                    "{what} fires `{}`, which is not a system command",
                    timer.fire
                ));
            }
            for s in &timer.states {
                self.check_state(s, &what)?;
                if !self
                    .transitions_for(&timer.fire, s)
                    .any(|t| t.when.is_empty())
                {
                    return Err(format!(
                        "{what} can fire in state `{s}`, but `{}` has no unconditional transition from it",
                        timer.fire
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_templates(&self) -> Result<(), String> {
        for (name, tpl) in &self.templates {
            for text in [&tpl.subject, &tpl.body] {
                for placeholder in placeholders(text) {
                    if !PLACEHOLDERS.contains(&placeholder) {
                        return Err(format!(
                            "template `{name}` uses unknown placeholder {{{placeholder}}}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_reachability(&self) -> Result<(), String> {
        // Every state must be reachable from the initial one, and every state that is
        // not terminal must have a way out: a workflow must not strand a case.
        let mut reached = BTreeSet::from([self.initial.as_str()]);
        loop {
            let before = reached.len();
            for t in &self.transitions {
                if let Some(to) = &t.to
                    && t.from.iter().any(|s| reached.contains(s.as_str()))
                {
                    reached.insert(to.as_str());
                }
            }
            if reached.len() == before {
                break;
            }
        }
        for (name, s) in &self.states {
            if !reached.contains(name.as_str()) {
                return Err(format!("state `{name}` cannot be reached"));
            }
            if !s.terminal && !self.transitions.iter().any(|t| t.from.contains(name)) {
                return Err(format!("state `{name}` is not terminal but has no way out"));
            }
        }
        Ok(())
    }
}

fn validate_field(
    fields: &BTreeMap<String, FieldSpec>,
    name: &str,
    spec: &FieldSpec,
) -> Result<(), String> {
    if name == "reason" {
        return Err("`reason` is a top-level part of every command, not a field".into());
    }
    if spec.kind == FieldKind::Enum && spec.values.is_empty() {
        return Err("an enum needs `values`".into());
    }
    if spec.kind != FieldKind::Enum && !spec.values.is_empty() {
        return Err("only an enum takes `values`".into());
    }
    if let Some(label) = spec.labels.keys().find(|l| !spec.values.contains(l)) {
        return Err(format!("label for unknown value `{label}`"));
    }
    if let (Some(min), Some(max)) = (spec.min, spec.max)
        && min > max
    {
        return Err("`min` is above `max`".into());
    }
    for (other, value) in &spec.required_if {
        let other_spec = fields
            .get(other)
            .ok_or_else(|| format!("`required_if` names unknown field `{other}`"))?;
        check_literal(other_spec, value).map_err(|e| format!("`required_if.{other}`: {e}"))?;
    }
    Ok(())
}

/// Checks a literal written in a definition (in `when` or `required_if`) against the
/// field it is compared with.
fn check_literal(spec: &FieldSpec, value: &Value) -> Result<(), String> {
    match (spec.kind, value) {
        (FieldKind::Bool, Value::Bool(_)) => Ok(()),
        (FieldKind::Enum, Value::String(s)) if spec.values.contains(s) => Ok(()),
        (FieldKind::Integer | FieldKind::Money, Value::Number(_)) => Ok(()),
        (FieldKind::Text, Value::String(_)) => Ok(()),
        _ => Err(format!(
            "{value} cannot be compared with a {:?} field",
            spec.kind
        )),
    }
}

/// The `{name}` placeholders of a template text.
pub fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
}

/// Loads every `*/v*.toml` definition below `dir`, sorted by name and version.
pub fn load_dir(dir: &Path) -> Result<Vec<Definition>, Invalid> {
    let mut defs = Vec::new();
    let io = |file: &Path, e: std::io::Error| Invalid {
        file: file.display().to_string(),
        message: e.to_string(),
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for sub in entries {
        let mut files: Vec<_> = std::fs::read_dir(&sub)
            .map_err(|e| io(&sub, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "toml")
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('v'))
            })
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| io(&file, e))?;
            defs.push(Definition::parse(&file.display().to_string(), &text)?);
        }
    }
    check_set(&mut defs)?;
    Ok(defs)
}

/// The definitions compiled into this build.
pub fn builtin() -> Vec<Definition> {
    let mut defs: Vec<Definition> = BUILTIN
        .iter()
        .map(|(file, text)| Definition::parse(file, text).expect("built-in workflows are valid"))
        .collect();
    check_set(&mut defs).expect("built-in workflows are consistent");
    defs
}

fn check_set(defs: &mut [Definition]) -> Result<(), Invalid> {
    defs.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
    for pair in defs.windows(2) {
        if pair[0].name == pair[1].name && pair[0].version == pair[1].version {
            return Err(Invalid {
                file: pair[0].name.clone(),
                message: format!("version {} is defined twice", pair[0].version),
            });
        }
    }
    if !defs.iter().any(|d| d.name == HAZARD_CASE) {
        return Err(Invalid {
            file: HAZARD_CASE.into(),
            message: "no definition of the hazard case workflow".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin_text() -> &'static str {
        BUILTIN[0].1
    }

    #[test]
    fn builtin_definition_is_valid() {
        let defs = builtin();
        assert_eq!(defs.len(), 6);
        assert!(defs.iter().all(|d| d.name == HAZARD_CASE));
        let versions: Vec<u32> = defs.iter().map(|d| d.version).collect();
        assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
        // Version 6 serves orders to nobody in person, and decides objections past
        // their deadline into overdue.
        let v6 = &defs[5];
        let notify: Vec<_> = v6
            .transitions
            .iter()
            .filter(|t| t.command == "notify")
            .collect();
        assert_eq!(notify[0].party, Some(false));
        assert_eq!(notify[0].to.as_deref(), Some("awaiting_service"));
        assert!(
            !v6.timers["order_deadline"]
                .states
                .contains(&"awaiting_service".to_string())
        );
        assert!(
            v6.transitions
                .iter()
                .any(|t| t.command == "decide_objection"
                    && t.deadline == Some(DeadlineGuard::Passed))
        );
        assert!(!defs[4].states.contains_key("awaiting_service"));
        // Version 5 adds objections: the landlord objects, a supervisor decides, and
        // the order's deadline timer does not run while the request waits.
        assert_eq!(defs[4].commands["object"].roles, [Role::Landlord]);
        assert_eq!(
            defs[4].commands["decide_objection"].roles,
            [Role::Supervisor]
        );
        assert!(
            !defs[4].timers["order_deadline"]
                .states
                .contains(&"objection_pending".to_string())
        );
        assert!(!defs[3].commands.contains_key("object"));
        // Version 4 adds `relocate`, for the system only, in every open state.
        assert_eq!(defs[3].commands["relocate"].roles, [Role::System]);
        assert!(!defs[2].commands.contains_key("relocate"));
        // Version 3 adds the rules' commands, and raises rule events.
        assert!(defs[2].commands["rule_refer"].roles == [Role::System]);
        let raised: Vec<_> = defs[2]
            .transitions
            .iter()
            .filter_map(|t| t.trigger)
            .collect();
        assert_eq!(raised.len(), 4, "{raised:?}");
        assert!(defs[1].transitions.iter().all(|t| t.trigger.is_none()));
        assert!(defs[1].is_terminal("fixed"));
        assert!(!defs[1].is_terminal("notified"));
        // Version 2 differs from version 1 in the acceptance SLA only.
        let sla = |d: &Definition| {
            let t = &d.timers["acceptance_sla"];
            (t.after_hours, t.after_working_days)
        };
        assert_eq!(
            (sla(&defs[0]), sla(&defs[1])),
            ((Some(72), None), (None, Some(3)))
        );
        assert_eq!(defs[0].commands.len(), defs[1].commands.len());
        assert_eq!(defs[0].states.len(), defs[1].states.len());
    }

    #[test]
    fn hash_ignores_comments_but_not_content() {
        let a = Definition::parse("a", builtin_text()).unwrap();
        let b = Definition::parse("b", &format!("# a comment\n{}", builtin_text())).unwrap();
        assert_eq!(a.content_hash(), b.content_hash());
        let c = Definition::parse(
            "c",
            &builtin_text().replace(
                "after_hours = 72\nfire = \"acceptance_overdue\"",
                "after_hours = 96\nfire = \"acceptance_overdue\"",
            ),
        )
        .unwrap();
        assert_ne!(a.content_hash(), c.content_hash());
    }

    fn rejects(edit: (&str, &str), expect: &str) {
        let text = builtin_text().replacen(edit.0, edit.1, 1);
        assert_ne!(text, builtin_text(), "the edit {edit:?} changed nothing");
        let err = Definition::parse("t", &text)
            .err()
            .unwrap_or_else(|| panic!("the edit {edit:?} was accepted"));
        assert!(
            err.message.contains(expect),
            "expected `{expect}` in `{}`",
            err.message
        );
    }

    #[test]
    fn broken_definitions_are_rejected_with_the_reason() {
        rejects(
            ("initial = \"discovered\"", "initial = \"nowhere\""),
            "unknown state `nowhere`",
        );
        rejects(
            ("to = \"notified\"", "to = \"limbo\""),
            "unknown state `limbo`",
        );
        rejects(
            ("template = \"referral\"", "template = \"nope\""),
            "unknown template `nope`",
        );
        rejects(
            ("fire = \"deadline_passed\"", "fire = \"notify\""),
            "not a system command",
        );
        rejects(
            ("when = { passed = true }", "when = { passed = \"yes\" }"),
            "cannot be compared",
        );
        rejects(
            ("您的出租屋 {address}", "您的出租屋 {adress}"),
            "unknown placeholder {adress}",
        );
        rejects(
            (
                "states = [\"referred\"]",
                "states = [\"referred\", \"notified\"]",
            ),
            "both run in state `notified`",
        );
        rejects(
            (
                "roles = [\"landlord\"]",
                "roles = [\"landlord\", \"system\"]",
            ),
            "mixes the system role",
        );
        rejects(
            (
                "[[transitions]]\ncommand = \"accept\"\n",
                "[[transitions]]\ncommand = \"acceptx\"\nfrom = [\"referred\"]\nto = \"accepted\"\n\n[[transitions]]\ncommand = \"accept\"\n",
            ),
            "undeclared command",
        );
        rejects(
            (
                "[[transitions]]\ncommand = \"accept\"",
                "[[transitions]]\ncommand = \"acceptx\"",
            ),
            "`accept` has no transition",
        );
    }

    #[test]
    fn unreachable_and_stranded_states_are_rejected() {
        let limbo = "\n[states.limbo]\nzh = \"悬置\"\nen = \"Limbo\"\n";
        let text = format!("{}{limbo}", builtin_text());
        let err = Definition::parse("t", &text).unwrap_err();
        assert!(
            err.message.contains("`limbo` cannot be reached"),
            "{}",
            err.message
        );
        let text = format!(
            "{}{limbo}\n[[transitions]]\ncommand = \"dismiss\"\nfrom = [\"discovered\"]\nto = \"limbo\"\n",
            builtin_text()
        );
        let err = Definition::parse("t", &text).unwrap_err();
        assert!(
            err.message
                .contains("`limbo` is not terminal but has no way out"),
            "{}",
            err.message
        );
    }

    #[test]
    fn placeholders_are_found() {
        let names: Vec<_> = placeholders("a {x} b {y_z} {").collect();
        assert_eq!(names, ["x", "y_z"]);
    }
}
