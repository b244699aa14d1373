//! Tips from outside on the runtime: integrations and their keys, a tip placed on a unit (its address code, or the nearest building within 30 m) or only on a grid and stored within the rate limits, staff reading and resolving tips (confirmed as the case the visit opened, or dismissed, with a note for the reporter), and the worker step that pushes status changes to the integrations' webhooks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::domain::{CaseId, Point, UnitId};
use crate::error::{Error, FieldError, Result};
use crate::intake::{self, Placement, TipStatus};
use crate::model::{Integration, NewTip, TipFilter, TipRecord, TipRefusal};
use crate::policy::{self, Act};
use crate::runtime::Runtime;

/// The client of the webhook pushes, its connections kept between steps.
static PUSH_CLIENT: std::sync::LazyLock<reqwest::Client> = std::sync::LazyLock::new(|| {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
});

/// Where a tip came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TipSource {
    /// An integration's request (Open311), with or without a key.
    Open311,
    /// A tenant on a unit's placard page.
    Placard(UnitId),
}

/// A tip as reported, before it is placed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TipInput {
    pub category: String,
    pub description: String,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    /// A unit's address code (地址编码): the tip lies on that unit.
    pub address_code: Option<String>,
    /// The address as the reporter wrote it.
    pub address: Option<String>,
    pub reporter_name: Option<String>,
    pub reporter_email: Option<String>,
    pub reporter_phone: Option<String>,
}

/// The SHA-256 of an integration's key, as stored.
pub fn key_digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Runtime {
    /// Registers an integration; answers it with its key, shown this once.
    pub async fn create_integration(
        &self,
        name: &str,
        webhook_url: Option<&str>,
    ) -> Result<(Integration, String)> {
        let name = crate::text::required("name", name, 100)?;
        if let Some(url) = webhook_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Error::invalid("webhook_url", "an http(s) URL"));
        }
        let key = format!("anju_i_{}", hex::encode(rand::random::<[u8; 24]>()));
        let integration = self
            .store()
            .create_integration(name, &key_digest(&key), webhook_url, self.now())
            .await?;
        Ok((integration, key))
    }

    /// The integration of a key, if it is one.
    pub async fn integration(&self, key: &str) -> Result<Option<Integration>> {
        if key.is_empty() || key.len() > 200 {
            return Ok(None);
        }
        Ok(self.store().integration_by_key(&key_digest(key)).await?)
    }

    /// Places a tip and stores it within the rate limits of its key or client.
    pub async fn submit_tip(
        &self,
        source: TipSource,
        integration: Option<&Integration>,
        client: &str,
        input: TipInput,
    ) -> Result<TipRecord> {
        // Open311 names the category `service_code`; the placard's form, `category`.
        let category_field = match source {
            TipSource::Open311 => "service_code",
            TipSource::Placard(_) => "category",
        };
        let checked = check_input(self, &input, category_field)?;
        let (placement, place) = match source {
            TipSource::Placard(unit) => (Placement::AddressCode(unit), None),
            TipSource::Open311 => self.place_tip(&input).await?,
        };
        let (grid_id, street_id, district_code) = match (placement.unit(), place) {
            (Some(unit), _) => {
                let u = self
                    .store()
                    .unit(unit)
                    .await?
                    .ok_or_else(|| Error::not_found("unit", unit))?;
                (u.grid_id, u.street_id, u.district_code)
            }
            (None, Some(p)) => (p.grid_id, p.street_id, p.district_code),
            (None, None) => return Err(Error::invalid("lat", "a location is needed")),
        };
        let now = self.now();
        let tip = NewTip {
            source: match source {
                TipSource::Open311 => "open311",
                TipSource::Placard(_) => "placard",
            },
            integration_id: integration.map(|i| i.id),
            client: client.chars().take(100).collect(),
            category: input.category.clone(),
            description: checked.description,
            lon: input.lon,
            lat: input.lat,
            address: checked.address,
            placed_by: placement.as_str(),
            unit_id: placement.unit(),
            grid_id,
            street_id,
            district_code,
            reporter_name: checked.name,
            reporter_email: checked.email,
            reporter_phone: checked.phone,
            at: now,
        };
        let limits = (intake::TIPS_PER_KEY, intake::TIPS_PER_CLIENT);
        let id = match self
            .store()
            .insert_tip(&tip, limits, now - intake::RATE_WINDOW)
            .await?
        {
            Ok(id) => id,
            Err(TipRefusal::KeyLimited) => {
                return Err(Error::TooManyRequests {
                    field: "api_key",
                    detail: format!(
                        "at most {} requests an hour for one key; try again later",
                        intake::TIPS_PER_KEY
                    ),
                });
            }
            Err(TipRefusal::ClientLimited) => {
                return Err(Error::TooManyRequests {
                    field: "client",
                    detail: format!(
                        "at most {} reports an hour from one address; try again later",
                        intake::TIPS_PER_CLIENT
                    ),
                });
            }
        };
        self.store()
            .tip(id)
            .await?
            .ok_or_else(|| Error::Internal(format!("tip {id} vanished")))
    }

    /// Where an Open311 request lies: the unit of its address code, else the unit
    /// nearest its point within 30 m, else the grid (or district) of its point.
    async fn place_tip(
        &self,
        input: &TipInput,
    ) -> Result<(Placement, Option<crate::spatial::grids::PointPlace>)> {
        let by_code =
            match input.address_code.as_deref() {
                Some(code) => Some(self.store().unit_by_address_code(code).await?.ok_or_else(
                    || Error::invalid("address_id", "no unit has this address code"),
                )?),
                None => None,
            };
        let point = match (input.lon, input.lat) {
            (Some(lon), Some(lat)) => Some(Point::parse(lon, lat, "lat")?),
            (None, None) => None,
            _ => return Err(Error::invalid("long", "give both lat and long")),
        };
        if by_code.is_none() && point.is_none() {
            return Err(Error::invalid(
                "lat",
                "give lat and long, or the unit's address code as address_id",
            ));
        }
        let nearest = match point {
            Some(p) => self
                .shared
                .index
                .read()
                .expect("index lock")
                .nearest(p, 1)
                .first()
                .map(|h| (h.id, h.distance_m.unwrap_or(f64::MAX))),
            None => None,
        };
        let placement = Placement::decide(by_code, nearest);
        let place = match (placement, point) {
            (Placement::Grid, Some(p)) => Some(
                self.place_of(p)
                    .await?
                    .ok_or_else(|| Error::invalid("lat", "the point is outside the city"))?,
            ),
            _ => None,
        };
        Ok((placement, place))
    }

    /// A tip for staff who may see it (inspectors of its grid, supervisors of its area).
    pub async fn tip_for_staff(&self, principal: &Principal, id: i64) -> Result<TipRecord> {
        policy::check(principal, Act::HandleTips)?;
        match self.store().tip(id).await? {
            Some(t) if principal.covers(t.place()) => Ok(t),
            _ => Err(Error::not_found("tip", id)),
        }
    }

    /// The tips the caller may see, newest first.
    pub async fn tips_for_staff(
        &self,
        principal: &Principal,
        filter: &TipFilter,
    ) -> Result<Vec<TipRecord>> {
        policy::check(principal, Act::HandleTips)?;
        Ok(self.store().tips(filter, &principal.scope).await?)
    }

    /// Tips as an integration reads them: its own with everything, or (without a key)
    /// anyone's, for their ids and statuses only (the caller shapes the answer).
    pub async fn tips_for_integration(&self, filter: &TipFilter) -> Result<Vec<TipRecord>> {
        Ok(self
            .store()
            .tips(filter, &crate::auth::Scope::System)
            .await?)
    }

    /// Resolves an open tip after the visit: confirmed as `case` (a case of the tip's
    /// unit, or of its grid for a tip without a unit, that the caller sees), or dismissed
    /// when nothing was found; `note` is what the reporter reads.
    pub async fn resolve_tip(
        &self,
        principal: &Principal,
        id: i64,
        case: Option<CaseId>,
        note: &str,
    ) -> Result<TipRecord> {
        let tip = self.tip_for_staff(principal, id).await?;
        let note = crate::text::required("note", note, 500)?;
        if let Some(case_id) = case {
            let c = self
                .visible_case(principal, case_id)
                .await
                .map_err(|_| Error::invalid("case_id", "no such case"))?;
            let same_place = match tip.unit_id {
                Some(unit) => c.unit_id == unit,
                None => tip.grid_id.is_some() && c.snapshot.grid_id == tip.grid_id,
            };
            if !same_place {
                return Err(Error::invalid(
                    "case_id",
                    "the case is not of the tip's unit (or grid)",
                ));
            }
        }
        let by = principal.subject;
        if !self
            .store()
            .resolve_tip(id, case, note, by, self.now())
            .await?
        {
            return Err(Error::Conflict(format!("tip {id} was already resolved")));
        }
        self.tip_for_staff(principal, id).await
    }

    /// The Open311 status of a tip, its notes and the agency responsible, as pushed.
    pub fn tip_state(&self, t: &TipRecord) -> (&'static str, Option<String>, Option<String>) {
        let status = TipStatus::parse(&t.status)
            .unwrap_or(TipStatus::Open)
            .open311(t.case_closed_at.is_some());
        let agency = t
            .case_department_id
            .and_then(|d| self.routing().get(d).map(|d| d.name.clone()));
        (status, t.public_note.clone(), agency)
    }

    /// One step of the tip worker: pushes the changed status of up to `limit` tips to
    /// their integrations' webhooks (a signed JSON POST, as the notices' webhooks sign:
    /// HMAC-SHA256 keyed by the hex SHA-256 of the integration's key). A failed push is
    /// tried again at the next step. Answers how many were pushed.
    pub async fn push_tip_changes(&self, limit: u32) -> Result<usize> {
        let due = self.store().tips_to_push(limit).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let client = &*PUSH_CLIENT;
        let mut pushed = 0;
        for (tip, integration) in due {
            let (status, notes, agency) = self.tip_state(&tip);
            let state = serde_json::json!([status, notes, agency]).to_string();
            let now = self.now();
            if !self
                .store()
                .claim_tip_push(tip.id, tip.pushed_at, now)
                .await?
            {
                continue;
            }
            if tip.pushed.as_deref() == Some(state.as_str()) {
                self.store().mark_pushed(tip.id, &state, now).await?;
                continue;
            }
            let Some(url) = integration.webhook_url.as_deref() else {
                continue;
            };
            let body = serde_json::json!({
                "service_request_id": tip.id.to_string(),
                "status": status,
                "status_notes": notes,
                "agency_responsible": agency,
                "updated_datetime": latest(tip.updated_at, tip.case_updated_at),
            })
            .to_string();
            let secret = &integration.key_digest;
            let stamp = now.timestamp();
            let sent = client
                .post(url)
                .header("content-type", "application/json")
                .header(crate::outbox::TIMESTAMP_HEADER, stamp.to_string())
                .header(
                    crate::outbox::SIGNATURE_HEADER,
                    crate::outbox::signature(secret, stamp, body.as_bytes()),
                )
                .body(body)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    self.store().mark_pushed(tip.id, &state, now).await?;
                    pushed += 1;
                }
                Ok(r) => {
                    tracing::warn!(tip = tip.id, status = %r.status(), "tip status push refused");
                    self.store().release_tip_push(tip.id).await?;
                }
                Err(e) => {
                    tracing::warn!(tip = tip.id, error = %e, "tip status push failed");
                    self.store().release_tip_push(tip.id).await?;
                }
            }
        }
        Ok(pushed)
    }
}

/// The later of a tip's change and its case's.
pub fn latest(tip: DateTime<Utc>, case: Option<DateTime<Utc>>) -> DateTime<Utc> {
    case.map_or(tip, |c| c.max(tip))
}

/// A tip's texts, checked.
struct Checked {
    description: String,
    address: Option<String>,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

fn check_input(rt: &Runtime, input: &TipInput, category_field: &str) -> Result<Checked> {
    rt.taxonomy()
        .parse_category(&input.category, category_field)?;
    let description =
        crate::text::optional("description", &input.description, intake::MAX_DESCRIPTION)?;
    let opt = |field: &str, v: &Option<String>, max: usize| -> Result<Option<String>, FieldError> {
        v.as_deref()
            .map(|t| crate::text::optional(field, t, max).map(str::to_string))
            .transpose()
            .map(|t| t.filter(|t| !t.is_empty()))
    };
    if let Some(code) = &input.address_code {
        crate::text::required("address_id", code, 64)?;
    }
    Ok(Checked {
        description: description.to_string(),
        address: opt("address_string", &input.address, 200)?,
        name: opt("name", &input.reporter_name, 100)?,
        email: input
            .reporter_email
            .as_deref()
            .map(|e| crate::text::email("email", e).map(str::to_string))
            .transpose()?,
        phone: input
            .reporter_phone
            .as_deref()
            .map(|p| crate::text::phone("phone", p).map(str::to_string))
            .transpose()?,
    })
}
