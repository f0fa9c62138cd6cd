//! The admission layers (crate::admission) wired into the API: the per-IP limit
//! as a middleware in front of every API route, and the spin endpoint's gate
//! (per user, quota cache, global budget) before its Redis call.

use super::AppState;
use super::error::{ApiError, whole_seconds};
use crate::admission::quota_cache::{CachedRefusal, Generation, Refusal};
use crate::domain::{CampaignId, UserId};
use crate::store::redis::spin::Rejection;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use std::time::{Duration, Instant};

/// Paths an orchestrator or scraper calls: never rate limited.
const UNLIMITED_PATHS: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];

/// Refuses a client address over its rate before anything else runs (the token
/// is not even verified).
pub async fn per_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if !UNLIMITED_PATHS.contains(&req.path())
        && let Some(state) = req.app_data::<web::Data<AppState>>()
        && let Some(peer) = req.peer_addr()
    {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok());
        let client = state.admission.proxies.client(peer.ip(), forwarded);
        state.admission.check_ip(&client).map_err(ApiError::from)?;
    }
    next.call(req).await
}

/// What the spin gate hands to the Redis call and back to [`SpinGate::refused`].
pub struct SpinGate {
    started: Instant,
    generation: Generation,
}

impl SpinGate {
    /// Per-user limit, then the quota cache, then the replica's global budget:
    /// `Err` answers the request without Redis.
    pub fn enter(state: &AppState, campaign: &CampaignId, user: &UserId) -> Result<Self, ApiError> {
        let started = Instant::now();
        state.admission.check_user(user)?;
        let mut generation = Generation::default();
        if let Some(cache) = &state.admission.quota_cache {
            generation = cache.generation(campaign);
            if let Some(refusal) = cache.lookup(campaign, user) {
                crate::telemetry::metrics().rejected("quota_cache");
                return Err(match refusal {
                    CachedRefusal::QuotaExhausted => ApiError::QuotaExhausted,
                    CachedRefusal::DailyQuotaExhausted { retry_after } => {
                        ApiError::DailyQuotaExhausted {
                            retry_after_secs: whole_seconds(retry_after),
                        }
                    }
                    CachedRefusal::NoSpinsLeft => ApiError::NoSpinsLeft,
                });
            }
        }
        state.admission.check_global()?;
        Ok(SpinGate {
            started,
            generation,
        })
    }

    /// Remembers a quota refusal from Redis in the cache.
    pub fn refused(&self, state: &AppState, campaign: &CampaignId, user: &UserId, r: Rejection) {
        let Some(cache) = &state.admission.quota_cache else {
            return;
        };
        let refusal = match r {
            Rejection::QuotaExhausted => Refusal::QuotaExhausted,
            Rejection::DailyQuotaExhausted { retry_after_ms } => Refusal::DailyQuotaExhausted {
                reset_in: Duration::from_millis(retry_after_ms),
            },
            Rejection::NoSpinsLeft => Refusal::NoSpinsLeft,
            _ => return,
        };
        cache.remember(campaign, user, self.generation, self.started, refusal);
    }
}

/// Keeps the quota cache's view of campaign versions fresh (see
/// crate::admission::quota_cache); runs for the life of the server.
pub async fn watch_campaign_versions(state: web::Data<AppState>, every: Duration) {
    let Some(cache) = &state.admission.quota_cache else {
        return;
    };
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ids = cache.watched();
        if ids.is_empty() {
            continue;
        }
        match state.redis.versions(&ids).await {
            Ok(versions) => {
                for (id, (version, grants)) in ids.iter().zip(versions) {
                    cache.observe(id, version, grants);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read campaign versions"),
        }
    }
}
