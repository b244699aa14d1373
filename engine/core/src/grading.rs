//! Star grading (星级评定), pure: the rubric from `workflows/grading.toml`, a unit's grade from its latest checklist and open hazards, and the patrol cycle the grade sets.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// The rubric shipped with this build.
pub const BUILTIN: &str = include_str!("../../../workflows/grading.toml");

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub stars: u8,
    pub min_score: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Patrol {
    /// Days between patrols, by stars ("1" to "5").
    pub cycle_days: BTreeMap<String, u32>,
    pub return_visit_days: u32,
}

/// A cap on the grade while a hazard matching it is open.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cap {
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    pub max_stars: u8,
    pub zh: String,
    pub en: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub code: String,
    pub zh: String,
    pub en: String,
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    pub code: String,
    pub zh: String,
    pub en: String,
    pub weight: f64,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rubric {
    pub version: u32,
    pub stars: Vec<Threshold>,
    pub patrol: Patrol,
    #[serde(default)]
    pub caps: Vec<Cap>,
    pub dimensions: Vec<Dimension>,
}

/// A completed checklist: every item of the rubric, passed or not.
pub type Checklist = BTreeMap<String, bool>;

/// An open hazard, as far as grading cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenHazard {
    pub category: String,
    pub severity: String,
}

/// A unit's grade and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Grade {
    /// 1 to 5; `None` while the unit has no checklist (caps lower a grade, they never
    /// make one).
    pub stars: Option<u8>,
    /// The checklist's score, 0 to 100.
    pub score: Option<f64>,
    /// Per dimension, its part of the score.
    pub dimensions: BTreeMap<String, f64>,
    /// Items failed, and caps applied, in words (Chinese first).
    pub reasons: Vec<String>,
}

impl Rubric {
    pub fn builtin() -> Rubric {
        Rubric::parse(BUILTIN).expect("the built-in rubric is valid")
    }

    pub fn parse(text: &str) -> Result<Rubric, String> {
        let r: Rubric = toml::from_str(text).map_err(|e| e.to_string())?;
        r.validate()?;
        Ok(r)
    }

    fn validate(&self) -> Result<(), String> {
        let total: f64 = self.dimensions.iter().map(|d| d.weight).sum();
        if (total - 100.0).abs() > 1e-9 {
            return Err(format!("dimension weights add up to {total}, not 100"));
        }
        let mut seen = BTreeSet::new();
        for d in &self.dimensions {
            if d.items.is_empty() {
                return Err(format!("dimension {} has no items", d.code));
            }
            for i in &d.items {
                if !seen.insert(i.code.as_str()) {
                    return Err(format!("item {} appears twice", i.code));
                }
                if i.weight <= 0.0 {
                    return Err(format!("item {} has no weight", i.code));
                }
            }
        }
        let stars: BTreeSet<u8> = self.stars.iter().map(|t| t.stars).collect();
        if stars != (1..=5).collect() || !self.stars.iter().any(|t| t.min_score <= 0.0) {
            return Err("stars need thresholds for 1 to 5, the lowest at 0".into());
        }
        for s in 1..=5 {
            if !self.patrol.cycle_days.contains_key(&s.to_string()) {
                return Err(format!("no patrol cycle for {s} stars"));
            }
        }
        for c in &self.caps {
            if c.severity.is_none() == c.category.is_none() {
                return Err("a cap names a severity or a category".into());
            }
            if !(1..=5).contains(&c.max_stars) {
                return Err("a cap's max_stars is 1 to 5".into());
            }
        }
        Ok(())
    }

    /// Checks a submitted checklist: every item of the rubric, nothing else.
    pub fn parse_checklist(
        &self,
        checklist: &Checklist,
        field: &str,
    ) -> Result<(), Vec<FieldError>> {
        let items: BTreeSet<&str> = self
            .dimensions
            .iter()
            .flat_map(|d| d.items.iter().map(|i| i.code.as_str()))
            .collect();
        let mut errors = Vec::new();
        for k in checklist.keys() {
            if !items.contains(k.as_str()) {
                errors.push(FieldError::new(
                    format!("{field}.{k}"),
                    "not an item of the rubric",
                ));
            }
        }
        for i in &items {
            if !checklist.contains_key(*i) {
                errors.push(FieldError::new(
                    format!("{field}.{i}"),
                    "missing: a checklist answers every item",
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The grade from the latest checklist (if any) and the hazards open now.
    pub fn grade(&self, checklist: Option<&Checklist>, open: &[OpenHazard]) -> Grade {
        let mut reasons = Vec::new();
        let mut dimensions = BTreeMap::new();
        let score = checklist.map(|list| {
            let mut total = 0.0;
            for d in &self.dimensions {
                let all: f64 = d.items.iter().map(|i| i.weight).sum();
                let passed: f64 = d
                    .items
                    .iter()
                    .filter(|i| list.get(&i.code).copied().unwrap_or(false))
                    .map(|i| i.weight)
                    .sum();
                let part = d.weight * passed / all;
                dimensions.insert(d.code.clone(), (part * 100.0).round() / 100.0);
                total += part;
                for i in d
                    .items
                    .iter()
                    .filter(|i| !list.get(&i.code).copied().unwrap_or(false))
                {
                    reasons.push(format!(
                        "{}：{}未达标 / {}: {} not met",
                        d.zh, i.zh, d.en, i.en
                    ));
                }
            }
            (total * 100.0).round() / 100.0
        });
        let mut stars = score.map(|s| {
            self.stars
                .iter()
                .filter(|t| s >= t.min_score)
                .map(|t| t.stars)
                .max()
                .unwrap_or(1)
        });
        for cap in &self.caps {
            let applies = open.iter().any(|h| {
                cap.severity.as_deref() == Some(h.severity.as_str())
                    || cap.category.as_deref() == Some(h.category.as_str())
            });
            // A cap lowers a grade; it never makes one for a unit never assessed.
            if applies && let Some(s) = stars {
                let capped = s.min(cap.max_stars);
                if capped != s {
                    reasons.push(format!(
                        "{}，最高{}星 / {}: at most {} stars",
                        cap.zh, cap.max_stars, cap.en, cap.max_stars
                    ));
                }
                stars = Some(capped);
            }
        }
        Grade {
            stars,
            score,
            dimensions,
            reasons,
        }
    }

    /// A complete checklist that grades `stars` (no caps), chosen by `pick`: items are
    /// failed in the order `pick` gives until the score falls in the band of `stars`.
    /// For demo data, whose units must carry checklists consistent with their stars.
    pub fn checklist_for(&self, stars: u8, mut pick: impl FnMut(usize) -> usize) -> Checklist {
        let min = |s: u8| {
            self.stars
                .iter()
                .find(|t| t.stars == s)
                .map_or(0.0, |t| t.min_score)
        };
        let (lo, hi) = (
            min(stars),
            if stars >= 5 {
                f64::INFINITY
            } else {
                min(stars + 1)
            },
        );
        let mut items: Vec<(String, f64)> = self
            .dimensions
            .iter()
            .flat_map(|d| {
                let all: f64 = d.items.iter().map(|i| i.weight).sum();
                d.items
                    .iter()
                    .map(move |i| (i.code.clone(), d.weight * i.weight / all))
            })
            .collect();
        let mut list: Checklist = items.iter().map(|(c, _)| (c.clone(), true)).collect();
        let mut score = 100.0;
        // Items in a random order (a Fisher–Yates shuffle with `pick`).
        for i in (1..items.len()).rev() {
            items.swap(i, pick(i + 1));
        }
        for (code, value) in &items {
            if score < hi {
                break;
            }
            if score - value >= lo {
                list.insert(code.clone(), false);
                score -= value;
            }
        }
        list
    }

    /// When a unit is next due for a patrol: its cycle after the last inspection, or
    /// sooner for a return visit after a closed case. A unit never inspected is due now.
    pub fn next_due(
        &self,
        stars: Option<u8>,
        last_inspected: Option<DateTime<Utc>>,
        last_closed_case: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let cycle = stars
            .and_then(|s| self.patrol.cycle_days.get(&s.to_string()).copied())
            .unwrap_or_else(|| self.patrol.cycle_days["3"]);
        let regular = last_inspected.map(|t| t + TimeDelta::days(i64::from(cycle)));
        let revisit = last_closed_case
            .filter(|closed| last_inspected.is_none_or(|seen| seen <= *closed))
            .map(|t| t + TimeDelta::days(i64::from(self.patrol.return_visit_days)));
        match (regular, revisit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The rule event a new grade raises: `grade_drop` when a graded unit loses stars (the
/// detail names the stars before). A first grade, or a unit that becomes ungraded, is
/// no drop.
pub fn grade_event(before: Option<u8>, after: Option<u8>) -> Option<crate::rules::RuleEvent> {
    match (before, after) {
        (Some(b), Some(a)) if a < b => Some(crate::rules::RuleEvent {
            trigger: crate::rules::Trigger::GradeDrop,
            detail: serde_json::json!({ "previous_stars": b }),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(pass: bool) -> Checklist {
        let r = Rubric::builtin();
        r.dimensions
            .iter()
            .flat_map(|d| d.items.iter().map(|i| (i.code.clone(), pass)))
            .collect()
    }

    fn hazard(category: &str, severity: &str) -> OpenHazard {
        OpenHazard {
            category: category.into(),
            severity: severity.into(),
        }
    }

    #[test]
    fn builtin_rubric_is_valid() {
        let r = Rubric::builtin();
        assert_eq!(r.dimensions.len(), 5);
        assert_eq!(r.patrol.cycle_days["5"], 90);
        assert_eq!(r.patrol.cycle_days["1"], 7);
    }

    #[test]
    fn a_perfect_checklist_is_five_stars_and_failures_cost_their_weight() {
        let r = Rubric::builtin();
        let g = r.grade(Some(&all(true)), &[]);
        assert_eq!((g.stars, g.score), (Some(5), Some(100.0)));
        assert!(g.reasons.is_empty());
        // Fire safety is 30 points over 7 item-weights: failing the e-bike area (weight
        // 2) costs 30 * 2 / 7 = 8.57 points: 91.43, still five stars; failing the
        // extinguishers too costs another 8.57: 82.86, four stars.
        let mut list = all(true);
        list.insert("ebike_area".into(), false);
        let g = r.grade(Some(&list), &[]);
        assert_eq!((g.stars, g.score), (Some(5), Some(91.43)));
        list.insert("extinguishers".into(), false);
        let g = r.grade(Some(&list), &[]);
        assert_eq!((g.stars, g.score), (Some(4), Some(82.86)));
        assert_eq!(g.reasons.len(), 2);
        assert!(g.reasons[0].starts_with("消防安全："), "{:?}", g.reasons);
        let g = r.grade(Some(&all(false)), &[]);
        assert_eq!((g.stars, g.score), (Some(1), Some(0.0)));
    }

    #[test]
    fn open_hazards_cap_the_grade() {
        let r = Rubric::builtin();
        let perfect = all(true);
        let g = r.grade(Some(&perfect), &[hazard("ebike_indoor", "critical")]);
        assert_eq!(g.stars, Some(1));
        assert!(g.reasons.iter().any(|x| x.contains("最高1星")));
        let g = r.grade(Some(&perfect), &[hazard("group_rental", "general")]);
        assert_eq!(g.stars, Some(2));
        let g = r.grade(Some(&perfect), &[hazard("no_agreement", "minor")]);
        assert_eq!(g.stars, Some(3));
        let g = r.grade(Some(&perfect), &[hazard("sanitation", "minor")]);
        assert_eq!(g.stars, Some(5), "a minor hazard does not cap");
        // Without a checklist there is no grade: a cap lowers one, it never makes one
        // (issue 9, item 19).
        assert_eq!(r.grade(None, &[hazard("wiring", "major")]).stars, None);
        assert_eq!(
            r.grade(None, &[hazard("no_agreement", "minor")]).stars,
            None
        );
        assert_eq!(r.grade(None, &[hazard("sanitation", "minor")]).stars, None);
        // A cap never raises a grade.
        let g = r.grade(Some(&all(false)), &[hazard("group_rental", "general")]);
        assert_eq!(g.stars, Some(1));
    }

    /// A demo checklist for any grade grades exactly that grade, whatever order the
    /// items are tried in.
    #[test]
    fn demo_checklists_grade_their_stars() {
        let r = Rubric::builtin();
        let mut state = 7u64;
        let mut pick = |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        for _ in 0..200 {
            for stars in 1..=5u8 {
                let list = r.checklist_for(stars, &mut pick);
                assert!(r.parse_checklist(&list, "c").is_ok());
                assert_eq!(r.grade(Some(&list), &[]).stars, Some(stars));
            }
        }
    }

    #[test]
    fn checklists_answer_every_item_and_nothing_else() {
        let r = Rubric::builtin();
        assert!(r.parse_checklist(&all(true), "checklist").is_ok());
        let mut list = all(true);
        list.remove("cctv");
        list.insert("unicorn".into(), true);
        let errors = r.parse_checklist(&list, "checklist").unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["checklist.unicorn", "checklist.cctv"]);
    }

    #[test]
    fn the_grade_sets_the_patrol_cycle_and_closed_cases_bring_a_return_visit() {
        let r = Rubric::builtin();
        let t = DateTime::parse_from_rfc3339("2026-03-02T01:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            r.next_due(Some(5), Some(t), None),
            Some(t + TimeDelta::days(90))
        );
        assert_eq!(
            r.next_due(Some(1), Some(t), None),
            Some(t + TimeDelta::days(7))
        );
        assert_eq!(
            r.next_due(None, None, None),
            None,
            "never inspected: due now"
        );
        assert_eq!(
            r.next_due(None, Some(t), None),
            Some(t + TimeDelta::days(30))
        );
        let closed = t + TimeDelta::days(10);
        assert_eq!(
            r.next_due(Some(5), Some(t), Some(closed)),
            Some(closed + TimeDelta::days(30))
        );
        assert_eq!(
            r.next_due(Some(1), Some(t), Some(closed)),
            Some(t + TimeDelta::days(7))
        );
        // A return visit already made (an inspection after the closure) is not owed.
        let visited = closed + TimeDelta::days(3);
        assert_eq!(
            r.next_due(Some(5), Some(visited), Some(closed)),
            Some(visited + TimeDelta::days(90))
        );
    }

    #[test]
    fn a_broken_rubric_is_refused() {
        assert!(
            Rubric::parse(&BUILTIN.replace("weight = 30", "weight = 31"))
                .unwrap_err()
                .contains("101")
        );
        assert!(
            Rubric::parse(&BUILTIN.replace("5 = 90, ", ""))
                .unwrap_err()
                .contains("5 stars")
        );
        assert!(
            Rubric::parse(&BUILTIN.replace("code = \"cctv\"", "code = \"clean\""))
                .unwrap_err()
                .contains("twice")
        );
    }

    /// A drop in stars raises the typed `grade_drop` rule event; a first grade, a rise,
    /// the same grade or a unit left ungraded do not.
    #[test]
    fn a_grade_drop_raises_a_typed_rule_event() {
        let event = grade_event(Some(4), Some(2)).unwrap();
        assert_eq!(event.trigger, crate::rules::Trigger::GradeDrop);
        assert_eq!(event.detail["previous_stars"], 4);
        for (before, after) in [
            (None, Some(1)),
            (Some(2), Some(3)),
            (Some(3), Some(3)),
            (Some(3), None),
        ] {
            assert!(
                grade_event(before, after).is_none(),
                "{before:?} -> {after:?}"
            );
        }
    }
}
