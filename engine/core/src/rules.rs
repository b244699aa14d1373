//! Escalation rules in rhai, sandboxed: the rule set from `workflows/rules/` (a manifest and one script per rule), the read-only view a rule sees, the actions it may return, and evaluation within limits on operations, call depth, sizes and wall time.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rhai::packages::Package;
use rhai::{AST, Dynamic, Engine, EvalAltResult, Scope};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The starter rule set shipped with this build: the manifest and its scripts.
pub const BUILTIN_MANIFEST: &str = include_str!("../../../workflows/rules/rules.toml");
pub const BUILTIN_SCRIPTS: &[(&str, &str)] = &[
    (
        "ebike_overdue_to_fire.rhai",
        include_str!("../../../workflows/rules/ebike_overdue_to_fire.rhai"),
    ),
    (
        "third_overdue_blacklist.rhai",
        include_str!("../../../workflows/rules/third_overdue_blacklist.rhai"),
    ),
    (
        "referral_stalled_to_district.rhai",
        include_str!("../../../workflows/rules/referral_stalled_to_district.rhai"),
    ),
    (
        "repeated_failed_reinspection.rhai",
        include_str!("../../../workflows/rules/repeated_failed_reinspection.rhai"),
    ),
    (
        "critical_at_known_unit.rhai",
        include_str!("../../../workflows/rules/critical_at_known_unit.rhai"),
    ),
    (
        "grade_drop_to_one_star.rhai",
        include_str!("../../../workflows/rules/grade_drop_to_one_star.rhai"),
    ),
];

/// What a rule runs on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    OrderOverdue,
    ReferralNotAccepted,
    ReinspectionFailed,
    NewHazard,
    GradeDrop,
    /// The daily sweep over open cases.
    Daily,
}

impl Trigger {
    pub const ALL: [Trigger; 6] = [
        Trigger::OrderOverdue,
        Trigger::ReferralNotAccepted,
        Trigger::ReinspectionFailed,
        Trigger::NewHazard,
        Trigger::GradeDrop,
        Trigger::Daily,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::OrderOverdue => "order_overdue",
            Trigger::ReferralNotAccepted => "referral_not_accepted",
            Trigger::ReinspectionFailed => "reinspection_failed",
            Trigger::NewHazard => "new_hazard",
            Trigger::GradeDrop => "grade_drop",
            Trigger::Daily => "daily",
        }
    }

    pub fn parse(name: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// A rule event raised outside a transition (by an inspection), with the detail the
/// rules see: written as a rule job with the inspection.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleEvent {
    pub trigger: Trigger,
    pub detail: serde_json::Value,
}

/// Whether `name` can name a rule: 1 to 64 of a-z, 0-9 and _.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A rule as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    pub version: u32,
    pub file: String,
    pub on: Vec<Trigger>,
    pub zh: String,
    pub en: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    rules: Vec<RuleSpec>,
}

/// The case as a rule sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CaseFacts {
    pub id: i64,
    pub category: String,
    pub severity: String,
    pub state: String,
    pub order_no: i64,
    pub escalation: i64,
    pub reopen_count: i64,
    /// Whole hours past the order's deadline (0 if not past it).
    pub overdue_hours: i64,
    /// Hours an order for the case's category and severity gives (the taxonomy's).
    pub deadline_hours: i64,
    /// The kind of department the case is referred to, if it is.
    pub department_kind: Option<String>,
}

/// The unit as a rule sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UnitFacts {
    pub id: i64,
    pub address: String,
    pub district_code: String,
    pub stars: Option<u8>,
    /// The grade before the change that triggered the rule.
    pub previous_stars: Option<u8>,
    /// Cases of the unit before this one, open or closed.
    pub past_cases: i64,
}

/// The responsible party's record, as a rule sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PartyFacts {
    pub id: i64,
    pub kind: String,
    /// Cases attributed to the party, by severity.
    pub cases_by_severity: BTreeMap<String, i64>,
    /// Orders that went overdue in the last 12 months.
    pub overdue_12m: i64,
    pub referrals_12m: i64,
    pub blacklisted: bool,
    /// A blacklisting proposal waits for a supervisor.
    pub blacklist_proposed: bool,
}

/// Everything a rule sees: read-only copies, never the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Facts {
    pub event: Trigger,
    pub case: Option<CaseFacts>,
    pub unit: UnitFacts,
    pub party: Option<PartyFacts>,
    /// Seconds since 1970 (the engine's clock, not the wall clock).
    pub now: i64,
}

/// Supervisor levels an escalation goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Street,
    District,
    City,
}

/// Who a rule's notice goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    Supervisor,
    Inspector,
    Landlord,
    Department,
}

/// What a rule may ask for. The engine applies each as an ordinary command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    Escalate {
        level: Level,
        #[serde(default)]
        reason: String,
    },
    Refer {
        department: String,
        #[serde(default)]
        reason: String,
    },
    /// Later (positive hours) or sooner (negative).
    MoveDeadline {
        hours: i64,
        #[serde(default)]
        reason: String,
    },
    RaisePriority {
        #[serde(default)]
        reason: String,
    },
    Notify {
        to: Recipient,
        zh: String,
        en: String,
    },
    ProposeBlacklist {
        #[serde(default)]
        reason: String,
    },
    RequireReview {
        #[serde(default)]
        reason: String,
    },
}

/// Why a rule's evaluation failed. It fails only itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum Failure {
    /// Too many operations, too deep, too large, or too long.
    Limit(String),
    /// The script raised an error.
    Script(String),
    /// The script returned something that is not a list of valid actions.
    BadActions(String),
}

/// One rule's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub rule: String,
    pub version: u32,
    pub outcome: Result<Vec<Action>, Failure>,
}

/// The sandbox's limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_expr_depth: usize,
    pub max_string: usize,
    pub max_array: usize,
    pub max_map: usize,
    pub max_actions: usize,
    pub wall_time: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_operations: 50_000,
            max_call_levels: 16,
            max_expr_depth: 64,
            max_string: 4_096,
            max_array: 1_000,
            max_map: 256,
            max_actions: 16,
            wall_time: Duration::from_millis(50),
        }
    }
}

/// Longest script accepted, in bytes.
pub const MAX_SCRIPT: usize = 64 * 1024;
/// Longest text in an action.
pub const MAX_ACTION_TEXT: usize = 500;
/// Largest deadline move, in hours.
pub const MAX_MOVE_HOURS: i64 = 24 * 30;

thread_local! {
    /// When the evaluation running on this thread must stop.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// An engine that can only compute: no `eval`, no modules, no printing, no clock; with
/// limits on operations, call depth, expression depth, sizes and wall time.
fn sandbox(limits: &Limits) -> Engine {
    use rhai::packages::{
        BasicArrayPackage, BasicMapPackage, BasicMathPackage, CorePackage, LogicPackage,
        MoreStringPackage,
    };
    let mut e = Engine::new_raw();
    e.register_global_module(CorePackage::new().as_shared_module());
    e.register_global_module(LogicPackage::new().as_shared_module());
    e.register_global_module(BasicMathPackage::new().as_shared_module());
    e.register_global_module(BasicArrayPackage::new().as_shared_module());
    e.register_global_module(BasicMapPackage::new().as_shared_module());
    e.register_global_module(MoreStringPackage::new().as_shared_module());
    e.set_max_operations(limits.max_operations);
    e.set_max_call_levels(limits.max_call_levels);
    e.set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth / 2);
    e.set_max_string_size(limits.max_string);
    e.set_max_array_size(limits.max_array);
    e.set_max_map_size(limits.max_map);
    e.set_max_modules(0);
    e.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    e.disable_symbol("eval");
    e.on_print(|_| {});
    e.on_debug(|_, _, _| {});
    e.on_progress(|ops| {
        if ops % 128 != 0 {
            return None;
        }
        let late = DEADLINE.with(|d| d.get().is_some_and(|d| Instant::now() > d));
        late.then(|| Dynamic::from("the wall-time budget is spent"))
    });
    e
}

struct Compiled {
    spec: RuleSpec,
    ast: AST,
    hash: String,
    source: String,
}

/// A checked, compiled rule set.
pub struct RuleSet {
    engine: Engine,
    limits: Limits,
    rules: Vec<Compiled>,
    departments: BTreeSet<String>,
    evaluations: AtomicU64,
    failures: AtomicU64,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.specs())
            .finish()
    }
}

impl RuleSet {
    /// The starter rules, checked against the department kinds of the taxonomy.
    pub fn builtin(departments: BTreeSet<String>) -> RuleSet {
        RuleSet::from_sources(
            BUILTIN_MANIFEST,
            BUILTIN_SCRIPTS,
            departments,
            Limits::default(),
        )
        .expect("the starter rules are valid")
    }

    /// Reads and checks `dir/rules.toml` and the scripts it lists (`anju rules check`).
    pub fn load_dir(
        dir: &Path,
        departments: BTreeSet<String>,
        limits: Limits,
    ) -> Result<RuleSet, Vec<String>> {
        let manifest = std::fs::read_to_string(dir.join("rules.toml"))
            .map_err(|e| vec![format!("{}: {e}", dir.join("rules.toml").display())])?;
        let parsed: Manifest =
            toml::from_str(&manifest).map_err(|e| vec![format!("rules.toml: {e}")])?;
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        for r in &parsed.rules {
            if r.file.contains('/') || r.file.contains("..") {
                errors.push(format!(
                    "rule `{}`: file must be a name in the folder",
                    r.name
                ));
                continue;
            }
            match std::fs::read_to_string(dir.join(&r.file)) {
                Ok(text) => sources.push((r.file.clone(), text)),
                Err(e) => errors.push(format!("rule `{}`: {}: {e}", r.name, r.file)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let borrowed: Vec<(&str, &str)> = sources
            .iter()
            .map(|(f, t)| (f.as_str(), t.as_str()))
            .collect();
        RuleSet::from_sources(&manifest, &borrowed, departments, limits)
    }

    /// Checks and compiles a manifest and its scripts; every problem is reported.
    pub fn from_sources(
        manifest: &str,
        scripts: &[(&str, &str)],
        departments: BTreeSet<String>,
        limits: Limits,
    ) -> Result<RuleSet, Vec<String>> {
        let manifest: Manifest =
            toml::from_str(manifest).map_err(|e| vec![format!("rules.toml: {e}")])?;
        let mut errors = Vec::new();
        let mut parts = Vec::new();
        for spec in manifest.rules {
            match scripts.iter().find(|(f, _)| *f == spec.file) {
                Some((_, text)) => parts.push((spec, text.to_string())),
                None => errors.push(format!("rule `{}`: no script `{}`", spec.name, spec.file)),
            }
        }
        match RuleSet::from_parts(parts, departments, limits) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }

    /// The starter rules as (spec, script).
    pub fn builtin_parts() -> Vec<(RuleSpec, String)> {
        let manifest: Manifest =
            toml::from_str(BUILTIN_MANIFEST).expect("the starter manifest parses");
        manifest
            .rules
            .into_iter()
            .map(|spec| {
                let text = BUILTIN_SCRIPTS
                    .iter()
                    .find(|(f, _)| *f == spec.file)
                    .map(|(_, t)| t.to_string())
                    .unwrap_or_default();
                (spec, text)
            })
            .collect()
    }

    /// The starter rules with published versions laid over them: for each name, the
    /// highest version wins; a published rule of a new name is added.
    pub fn with_published(
        published: Vec<(RuleSpec, String)>,
        departments: BTreeSet<String>,
    ) -> Result<RuleSet, Vec<String>> {
        let mut parts = RuleSet::builtin_parts();
        for (spec, text) in published {
            match parts.iter_mut().find(|(s, _)| s.name == spec.name) {
                Some(part) if part.0.version < spec.version => *part = (spec, text),
                Some(_) => {}
                None => parts.push((spec, text)),
            }
        }
        RuleSet::from_parts(parts, departments, Limits::default())
    }

    /// Checks and compiles rules given as (spec, script); every problem is reported.
    pub fn from_parts(
        parts: Vec<(RuleSpec, String)>,
        departments: BTreeSet<String>,
        limits: Limits,
    ) -> Result<RuleSet, Vec<String>> {
        let engine = sandbox(&limits);
        let mut errors = Vec::new();
        let mut names = BTreeSet::new();
        let mut rules = Vec::new();
        for (spec, text) in parts {
            let what = format!("rule `{}`", spec.name);
            if !valid_name(&spec.name) {
                errors.push(format!("{what}: names are 1 to 64 of a-z, 0-9 and _"));
            }
            if !names.insert(spec.name.clone()) {
                errors.push(format!("{what} is listed twice"));
            }
            if spec.version == 0 {
                errors.push(format!("{what}: versions start at 1"));
            }
            if spec.on.is_empty() {
                errors.push(format!("{what} runs on no event"));
            }
            if text.len() > MAX_SCRIPT {
                errors.push(format!("{what}: the script is over {MAX_SCRIPT} bytes"));
                continue;
            }
            match engine.compile(&text) {
                Ok(ast) => rules.push(Compiled {
                    hash: hex::encode(Sha256::digest(text.as_bytes())),
                    source: text,
                    spec,
                    ast,
                }),
                Err(e) => errors.push(format!("{what}: {}: {e}", spec.file)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RuleSet {
            engine,
            limits,
            rules,
            departments,
            evaluations: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// The department kinds rules may refer to.
    pub fn departments(&self) -> &BTreeSet<String> {
        &self.departments
    }

    /// A rule's spec and script.
    pub fn rule(&self, name: &str) -> Option<(&RuleSpec, &str)> {
        self.rules
            .iter()
            .find(|r| r.spec.name == name)
            .map(|r| (&r.spec, r.source.as_str()))
    }

    /// Starts this set's counts where `before`'s stand, so that a publish does not
    /// reset them.
    pub fn carry_counts(&self, before: &RuleSet) {
        let (evaluations, failures) = before.counts();
        self.evaluations.store(evaluations, Ordering::Relaxed);
        self.failures.store(failures, Ordering::Relaxed);
    }

    pub fn specs(&self) -> Vec<&RuleSpec> {
        self.rules.iter().map(|r| &r.spec).collect()
    }

    /// The SHA-256 of a rule's script.
    pub fn script_hash(&self, name: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| r.spec.name == name)
            .map(|r| r.hash.as_str())
    }

    /// Evaluations run and failed since the set was loaded.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.evaluations.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// Runs every rule that listens to `facts.event`. A rule that fails fails alone.
    pub fn evaluate(&self, facts: &Facts) -> Vec<Evaluation> {
        self.rules
            .iter()
            .filter(|r| r.spec.on.contains(&facts.event))
            .map(|r| {
                let outcome = self.run(r, facts);
                self.evaluations.fetch_add(1, Ordering::Relaxed);
                if let Err(failure) = &outcome {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(rule = %r.spec.name, version = r.spec.version, ?failure, "rule failed");
                }
                Evaluation {
                    rule: r.spec.name.clone(),
                    version: r.spec.version,
                    outcome,
                }
            })
            .collect()
    }

    fn run(&self, rule: &Compiled, facts: &Facts) -> Result<Vec<Action>, Failure> {
        fn view<T: Serialize>(v: &T) -> Result<Dynamic, Failure> {
            rhai::serde::to_dynamic(v)
                .map_err(|e| Failure::Script(format!("building the view: {e}")))
        }
        let mut scope = Scope::new();
        scope.push_constant("event", view(&facts.event)?);
        scope.push_constant("hazard", view(&facts.case)?);
        scope.push_constant("unit", view(&facts.unit)?);
        scope.push_constant("party", view(&facts.party)?);
        scope.push_constant("now", facts.now);
        DEADLINE.with(|d| d.set(Some(Instant::now() + self.limits.wall_time)));
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &rule.ast);
        DEADLINE.with(|d| d.set(None));
        let value = result.map_err(|e| classify(*e))?;
        let actions: Vec<Action> = rhai::serde::from_dynamic(&value)
            .map_err(|e| Failure::BadActions(format!("a list of actions is expected: {e}")))?;
        if actions.len() > self.limits.max_actions {
            return Err(Failure::BadActions(format!(
                "{} actions; at most {}",
                actions.len(),
                self.limits.max_actions
            )));
        }
        for a in &actions {
            self.check_action(a).map_err(Failure::BadActions)?;
        }
        Ok(actions)
    }

    fn check_action(&self, a: &Action) -> Result<(), String> {
        let text = |what: &str, s: &str| {
            if s.chars().count() > MAX_ACTION_TEXT {
                Err(format!("{what} is over {MAX_ACTION_TEXT} characters"))
            } else {
                Ok(())
            }
        };
        match a {
            Action::Refer { department, reason } => {
                if !self.departments.contains(department) {
                    return Err(format!("unknown department kind `{department}`"));
                }
                text("reason", reason)
            }
            Action::MoveDeadline { hours, reason } => {
                if *hours == 0 || hours.abs() > MAX_MOVE_HOURS {
                    return Err(format!(
                        "a deadline moves by 1 to {MAX_MOVE_HOURS} hours, sooner or later"
                    ));
                }
                text("reason", reason)
            }
            Action::Notify { zh, en, .. } => {
                if zh.trim().is_empty() || en.trim().is_empty() {
                    return Err("a notice needs zh and en text".into());
                }
                text("zh", zh).and(text("en", en))
            }
            Action::Escalate { reason, .. }
            | Action::RaisePriority { reason }
            | Action::ProposeBlacklist { reason }
            | Action::RequireReview { reason } => text("reason", reason),
        }
    }
}

/// Sorts an evaluation error into a broken limit or a script error.
fn classify(e: EvalAltResult) -> Failure {
    match e {
        EvalAltResult::ErrorTooManyOperations(_) => Failure::Limit("too many operations".into()),
        EvalAltResult::ErrorStackOverflow(_) => Failure::Limit("calls nested too deeply".into()),
        EvalAltResult::ErrorDataTooLarge(what, _) => Failure::Limit(format!("{what} too large")),
        EvalAltResult::ErrorTerminated(_, _) => {
            Failure::Limit("the wall-time budget is spent".into())
        }
        EvalAltResult::ErrorTooManyModules(_) => Failure::Limit("modules are not allowed".into()),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => classify(*inner),
        other => Failure::Script(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn departments() -> BTreeSet<String> {
        ["fire", "police", "gas", "housing", "urban"]
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn facts(event: Trigger) -> Facts {
        Facts {
            event,
            case: Some(CaseFacts {
                id: 7,
                category: "ebike_indoor".into(),
                severity: "critical".into(),
                state: "overdue".into(),
                order_no: 1,
                escalation: 0,
                reopen_count: 0,
                overdue_hours: 30,
                deadline_hours: 24,
                department_kind: None,
            }),
            unit: UnitFacts {
                id: 3,
                address: "越秀区示例路1号201房".into(),
                district_code: "440104".into(),
                stars: Some(3),
                previous_stars: Some(3),
                past_cases: 0,
            },
            party: Some(PartyFacts {
                id: 5,
                kind: "landlord".into(),
                cases_by_severity: BTreeMap::new(),
                overdue_12m: 1,
                referrals_12m: 0,
                blacklisted: false,
                blacklist_proposed: false,
            }),
            now: 1_790_000_000,
        }
    }

    fn actions_of(set: &RuleSet, f: &Facts, rule: &str) -> Vec<Action> {
        set.evaluate(f)
            .into_iter()
            .find(|e| e.rule == rule)
            .unwrap_or_else(|| panic!("rule {rule} did not run"))
            .outcome
            .expect("the rule succeeds")
    }

    #[test]
    fn ebike_overdue_goes_to_the_fire_brigade_after_24_hours() {
        let set = RuleSet::builtin(departments());
        let mut f = facts(Trigger::OrderOverdue);
        let acts = actions_of(&set, &f, "ebike_overdue_to_fire");
        assert!(matches!(&acts[..], [Action::Refer { department, .. }] if department == "fire"));
        f.case.as_mut().unwrap().overdue_hours = 23;
        assert!(actions_of(&set, &f, "ebike_overdue_to_fire").is_empty());
        f.case.as_mut().unwrap().overdue_hours = 48;
        f.case.as_mut().unwrap().category = "wiring".into();
        assert!(actions_of(&set, &f, "ebike_overdue_to_fire").is_empty());
    }

    #[test]
    fn a_third_overdue_in_a_year_proposes_the_blacklist() {
        let set = RuleSet::builtin(departments());
        let mut f = facts(Trigger::OrderOverdue);
        assert!(actions_of(&set, &f, "third_overdue_blacklist").is_empty());
        f.party.as_mut().unwrap().overdue_12m = 3;
        let acts = actions_of(&set, &f, "third_overdue_blacklist");
        assert!(matches!(&acts[..], [Action::ProposeBlacklist { reason }] if reason.contains('3')));
        // Already blacklisted, or nobody to answer: nothing.
        f.party.as_mut().unwrap().blacklisted = true;
        assert!(actions_of(&set, &f, "third_overdue_blacklist").is_empty());
        f.party = None;
        assert!(actions_of(&set, &f, "third_overdue_blacklist").is_empty());
    }

    #[test]
    fn the_other_starter_rules_fire_and_hold_back() {
        let set = RuleSet::builtin(departments());
        let mut f = facts(Trigger::ReferralNotAccepted);
        f.case.as_mut().unwrap().department_kind = Some("fire".into());
        let acts = actions_of(&set, &f, "referral_stalled_to_district");
        assert!(matches!(
            &acts[..],
            [Action::Escalate {
                level: Level::District,
                ..
            }]
        ));
        f.case.as_mut().unwrap().escalation = 2;
        assert!(actions_of(&set, &f, "referral_stalled_to_district").is_empty());

        let mut f = facts(Trigger::ReinspectionFailed);
        assert!(actions_of(&set, &f, "repeated_failed_reinspection").is_empty());
        f.case.as_mut().unwrap().order_no = 3;
        assert_eq!(
            actions_of(&set, &f, "repeated_failed_reinspection").len(),
            2
        );

        let mut f = facts(Trigger::NewHazard);
        assert!(actions_of(&set, &f, "critical_at_known_unit").is_empty());
        f.unit.past_cases = 2;
        let acts = actions_of(&set, &f, "critical_at_known_unit");
        assert!(matches!(&acts[0], Action::MoveDeadline { hours: -12, .. }));
        assert!(
            matches!(&acts[1], Action::Notify { to: Recipient::Supervisor, zh, .. } if zh.contains("越秀区"))
        );

        let mut f = facts(Trigger::GradeDrop);
        assert!(actions_of(&set, &f, "grade_drop_to_one_star").is_empty());
        f.unit.stars = Some(1);
        assert_eq!(actions_of(&set, &f, "grade_drop_to_one_star").len(), 2);
        f.unit.previous_stars = None;
        assert!(actions_of(&set, &f, "grade_drop_to_one_star").is_empty());
        // Rules run only on their events.
        let f = facts(Trigger::GradeDrop);
        assert!(
            set.evaluate(&f)
                .iter()
                .all(|e| e.rule == "grade_drop_to_one_star")
        );
    }

    fn one_rule(script: &str, limits: Limits) -> Result<RuleSet, Vec<String>> {
        let manifest = "[[rules]]\nname = \"r\"\nversion = 1\nfile = \"r.rhai\"\non = [\"daily\"]\nzh = \"测试\"\nen = \"test\"\n";
        let manifest = format!(
            "{manifest}\n[[rules]]\nname = \"good\"\nversion = 3\nfile = \"good.rhai\"\non = [\"daily\"]\nzh = \"好\"\nen = \"good\"\n"
        );
        RuleSet::from_sources(
            &manifest,
            &[
                ("r.rhai", script),
                (
                    "good.rhai",
                    "[#{ action: \"raise_priority\", reason: \"ok\" }]",
                ),
            ],
            departments(),
            limits,
        )
    }

    /// Evaluates a hostile rule next to a good one: the hostile one fails within its
    /// limits, quickly; the good one still answers.
    fn contained(script: &str, limits: Limits) -> Failure {
        let set = one_rule(script, limits).expect("it compiles");
        let started = Instant::now();
        let out = set.evaluate(&facts(Trigger::Daily));
        assert!(started.elapsed() < Duration::from_secs(2), "{script}");
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[1].outcome,
            Ok(vec![Action::RaisePriority {
                reason: "ok".into()
            }])
        );
        assert_eq!(set.counts(), (2, 1));
        out[0].outcome.clone().expect_err("the hostile rule fails")
    }

    #[test]
    fn hostile_scripts_are_contained() {
        let limits = Limits::default();
        assert_eq!(
            contained("loop {}", limits),
            Failure::Limit("too many operations".into())
        );
        assert!(matches!(
            contained("let s = \"安全\"; loop { s += s; }", limits),
            Failure::Limit(m) if m.contains("too large")
        ));
        assert!(matches!(
            contained("let a = []; loop { a.push(a.len()); }", limits),
            Failure::Limit(m) if m.contains("too large")
        ));
        // A map growing key by key is stopped by the operations or the time budget,
        // whichever comes first (a debug build is slower).
        let map = contained(
            "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }",
            limits,
        );
        assert!(matches!(&map, Failure::Limit(_)), "{map:?}");
        assert_eq!(
            contained("fn f(x) { f(x + 1) } f(0)", limits),
            Failure::Limit("calls nested too deeply".into())
        );
        // A slow script with operations to spare runs into the wall-time budget.
        let slow = Limits {
            max_operations: 0,
            wall_time: Duration::from_millis(20),
            ..limits
        };
        assert_eq!(
            contained("let x = 0; loop { x = (x + 1) % 7; }", slow),
            Failure::Limit("the wall-time budget is spent".into())
        );
        assert!(matches!(
            contained("throw \"no\"", limits),
            Failure::Script(_)
        ));
        assert!(matches!(contained("42", limits), Failure::BadActions(_)));
        assert!(matches!(
            contained("[#{ action: \"launch\" }]", limits),
            Failure::BadActions(_)
        ));
        assert!(matches!(
            contained("[#{ action: \"refer\", department: \"navy\" }]", limits),
            Failure::BadActions(m) if m.contains("navy")
        ));
        assert!(matches!(
            contained("[#{ action: \"move_deadline\", hours: 100000 }]", limits),
            Failure::BadActions(_)
        ));
        // The views are read-only.
        assert!(matches!(
            contained("hazard.state = \"closed\"; []", limits),
            Failure::Script(_)
        ));
    }

    #[test]
    fn no_eval_no_modules_no_clock() {
        let limits = Limits::default();
        for script in [
            "eval(\"1 + 1\")",
            "import \"fs\" as fs; []",
            "let t = timestamp(); []",
        ] {
            match one_rule(script, limits) {
                Err(errors) => assert!(errors[0].contains("rule `r`"), "{errors:?}"),
                Ok(set) => {
                    let out = set.evaluate(&facts(Trigger::Daily));
                    assert!(out[0].outcome.is_err(), "{script} ran");
                }
            }
        }
    }

    #[test]
    fn bad_rule_sets_are_refused_with_every_problem() {
        let errors = RuleSet::from_sources(
            "[[rules]]\nname = \"Bad Name\"\nversion = 0\nfile = \"x.rhai\"\non = []\nzh = \"a\"\nen = \"a\"\n\
             [[rules]]\nname = \"syntax\"\nversion = 1\nfile = \"s.rhai\"\non = [\"daily\"]\nzh = \"a\"\nen = \"a\"\n",
            &[("x.rhai", "[]"), ("s.rhai", "if {")],
            departments(),
            Limits::default(),
        )
        .unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("s.rhai")));
    }
}
