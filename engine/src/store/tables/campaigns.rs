//! Campaigns (专项行动): their areas, units, checklists and progress.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::auth::Scope;
use crate::domain::UnitId;
use crate::model::*;
use crate::store::Error;

/// Campaigns (专项行动): their areas, units, checklists and progress.
#[async_trait]
pub trait CampaignStore: Send + Sync + 'static {
    /// Creates a campaign over the units of its area that lie in `scope`.
    async fn create_campaign(
        &self,
        campaign: &NewCampaign,
        scope: &Scope,
    ) -> crate::Result<CampaignRecord>;

    /// A campaign, if `scope` oversees one of its units.
    async fn campaign(&self, id: i64, scope: &Scope) -> Result<Option<CampaignRecord>, Error>;

    /// The newest 500 campaigns `scope` oversees a unit of.
    async fn campaigns(&self, scope: &Scope) -> Result<Vec<CampaignRecord>, Error>;

    /// A campaign's progress per area (`district`, `street`, `community` or `grid`),
    /// over the units in `scope`.
    async fn campaign_progress(
        &self,
        id: i64,
        level: &str,
        scope: &Scope,
    ) -> Result<Vec<CampaignProgress>, Error>;

    /// The checklists of the campaigns running at `at` that have not visited the unit.
    async fn open_campaign_checklists(
        &self,
        unit: UnitId,
        at: DateTime<Utc>,
    ) -> Result<Vec<CheckItem>, Error>;
}
