//! The campaign of a route's `{id}`: read once for every handler. Parsing is
//! kept for the handler to ask for (`CampaignPath::id`), so a role-gated
//! endpoint still answers 401/403 before it says an id cannot exist.

use super::error::{ApiError, ApiResult};
use crate::domain::CampaignId;
use actix_web::{FromRequest, HttpRequest, dev::Payload};
use std::future::{Ready, ready};

pub struct CampaignPath {
    raw: String,
    parsed: Option<CampaignId>,
}

impl CampaignPath {
    /// The campaign id; 404 `campaign_not_found` for text that cannot be one.
    pub fn id(&self) -> ApiResult<&CampaignId> {
        self.parsed.as_ref().ok_or_else(|| self.not_found())
    }

    /// 404 `campaign_not_found` for this id (also for a valid id no store knows).
    pub fn not_found(&self) -> ApiError {
        ApiError::CampaignNotFound(self.raw.clone())
    }

    /// The id as the client sent it (percent-decoded).
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl FromRequest for CampaignPath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let raw = req.match_info().get("id").unwrap_or_default().to_owned();
        let parsed = CampaignId::parse(&raw).ok();
        ready(Ok(CampaignPath { raw, parsed }))
    }
}
