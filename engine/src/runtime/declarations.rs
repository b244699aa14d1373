//! Landlords' own declarations on the runtime (自主申报, 自查自改): a unit's occupancy (rooms and occupants) and a self-inspection against the grading checklist, by the unit's landlord; read by them and by the staff who see the unit. Recorded as such: a declaration never changes the unit's grade.

use std::collections::BTreeMap;

use crate::auth::{Principal, Scope};
use crate::domain::UnitId;
use crate::error::{Error, Result};
use crate::model::Declaration;
use crate::policy::{self, Act};
use crate::runtime::Runtime;

/// Rooms a declared unit may have, at most.
pub const MAX_ROOMS: i64 = 500;

/// Occupants a declared unit may have, at most.
pub const MAX_OCCUPANTS: i64 = 5000;

/// A declaration as a landlord makes it.
#[derive(Debug, Clone, PartialEq)]
pub enum DeclarationInput {
    Occupancy {
        rooms: i64,
        occupants: i64,
        note: Option<String>,
    },
    SelfInspection {
        checklist: BTreeMap<String, bool>,
        note: Option<String>,
    },
}

impl Runtime {
    /// Records a landlord's declaration about their own unit.
    pub async fn declare(
        &self,
        principal: &Principal,
        unit: UnitId,
        input: DeclarationInput,
    ) -> Result<Declaration> {
        // Another landlord's unit is one that does not exist.
        let u = self.unit(principal, unit).await?;
        policy::check(principal, Act::DeclareUnit)?;
        let Scope::Party(party) = principal.scope else {
            return Err(Error::not_found("unit", unit));
        };
        let note_of = |note: Option<String>| -> Result<Option<String>> {
            Ok(note
                .map(|n| crate::text::optional("note", &n, 500).map(str::to_string))
                .transpose()?
                .filter(|n| !n.is_empty()))
        };
        let mut d = Declaration {
            id: 0,
            unit_id: u.id,
            party_id: party,
            kind: String::new(),
            rooms: None,
            occupants: None,
            checklist: None,
            note: None,
            at: self.now(),
        };
        match input {
            DeclarationInput::Occupancy {
                rooms,
                occupants,
                note,
            } => {
                if !(1..=MAX_ROOMS).contains(&rooms) {
                    return Err(Error::invalid("rooms", format!("1 to {MAX_ROOMS}")));
                }
                if !(0..=MAX_OCCUPANTS).contains(&occupants) {
                    return Err(Error::invalid("occupants", format!("0 to {MAX_OCCUPANTS}")));
                }
                d.kind = "occupancy".into();
                d.rooms = Some(rooms);
                d.occupants = Some(occupants);
                d.note = note_of(note)?;
            }
            DeclarationInput::SelfInspection { checklist, note } => {
                let rubric = self.rubric();
                let known: Vec<&str> = rubric
                    .dimensions
                    .iter()
                    .flat_map(|d| d.items.iter().map(|i| i.code.as_str()))
                    .collect();
                if checklist.is_empty() {
                    return Err(Error::invalid("checklist", "answer at least one item"));
                }
                if let Some(bad) = checklist.keys().find(|k| !known.contains(&k.as_str())) {
                    return Err(Error::invalid(
                        format!("checklist.{bad}"),
                        format!("not an item of the checklist; known: {}", known.join(", ")),
                    ));
                }
                d.kind = "self_inspection".into();
                d.checklist = Some(checklist);
                d.note = note_of(note)?;
            }
        }
        d.id = self.store().add_declaration(&d).await?;
        Ok(d)
    }

    /// A unit's declarations, newest first, for its landlord and the staff who see it.
    pub async fn declarations(
        &self,
        principal: &Principal,
        unit: UnitId,
    ) -> Result<Vec<Declaration>> {
        let u = self.unit(principal, unit).await?;
        if matches!(principal.scope, Scope::Department(_)) {
            // A department's view of a unit is about its referrals only.
            return Ok(Vec::new());
        }
        Ok(self.store().declarations(u.id, 50).await?)
    }
}
