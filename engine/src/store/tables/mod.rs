//! The store's traits, one per table family; `Store` is all of them.

mod admin;
mod calendar;
mod campaigns;
mod cases;
mod evidence;
mod grids;
mod import;
mod inspections;
mod parties;
mod plans;
mod queues;
mod rules;
mod stats;
mod tips;
mod tokens;
mod units;

pub use admin::AdminStore;
pub use calendar::CalendarStore;
pub use campaigns::CampaignStore;
pub use cases::CaseStore;
pub use evidence::EvidenceStore;
pub use grids::GridStore;
pub use import::ImportStore;
pub use inspections::InspectionStore;
pub use parties::PartyStore;
pub use plans::PlanStore;
pub use queues::QueueStore;
pub use rules::RuleStore;
pub use stats::{StatsQuery, StatsStore};
pub use tips::TipStore;
pub use tokens::TokenStore;
pub use units::UnitStore;
