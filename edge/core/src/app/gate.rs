//! The gate every API request passes: the bearer token (failures count against the client
//! address), then the per-user rate limit. Both limits are GCRA state in the store.

use super::EdgeApp;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::HttpRequest;
use crate::platform::{ConversationStore, Outbound, RecordKind, Services, StoreKey, StoreWrite};
use crate::rate_limit::{self, Decision, Quota};

impl EdgeApp {
    /// Verifies the bearer token; failures count against the client address.
    pub(super) async fn authenticate<S: ConversationStore, O: Outbound>(
        &self,
        req: &HttpRequest,
        svc: &Services<'_, S, O>,
    ) -> Result<Principal, ApiError> {
        let now = svc.clock.now_ms();
        match self.auth.authenticate(req.header("authorization"), now) {
            Ok(principal) => Ok(principal),
            Err(error) => {
                let addr = req.client_addr.as_deref().unwrap_or("unknown");
                let key = StoreKey {
                    kind: RecordKind::AuthFailures,
                    owner: addr,
                };
                let decision = consume(svc, key, self.config.auth_failure_limit).await?;
                tracing::info!(target: "audit", client = addr, reason = error.code(), "authentication failed");
                if decision.allowed {
                    Err(ApiError::Unauthenticated(error))
                } else {
                    Err(ApiError::AuthFailuresExceeded {
                        retry_after_s: decision.retry_after_s,
                    })
                }
            }
        }
    }

    /// Applies the per-user rate limit.
    pub(super) async fn admit<S: ConversationStore, O: Outbound>(
        &self,
        principal: &Principal,
        svc: &Services<'_, S, O>,
    ) -> Result<Decision, ApiError> {
        let key = StoreKey {
            kind: RecordKind::RateLimit,
            owner: &principal.user_id,
        };
        let decision = consume(svc, key, self.config.rate_limit).await?;
        if decision.allowed {
            Ok(decision)
        } else {
            Err(ApiError::RateLimited(decision))
        }
    }
}

/// Reads one `Decision` from the store's GCRA state and records the consumed cell.
async fn consume<S: ConversationStore, O: Outbound>(
    svc: &Services<'_, S, O>,
    key: StoreKey<'_>,
    quota: Quota,
) -> Result<Decision, ApiError> {
    let mut outcome = None;
    svc.store
        .update(key, &mut |current| {
            let now = svc.clock.now_ms();
            let (decision, tat) = rate_limit::check(quota, rate_limit::decode_tat(current), now);
            outcome = Some(decision);
            if decision.allowed {
                StoreWrite::Put {
                    bytes: rate_limit::encode_tat(tat),
                    // Past its theoretical arrival time (µs) the state equals a fresh one.
                    expires_at_ms: Some(tat.div_ceil(1000)),
                }
            } else {
                StoreWrite::Keep
            }
        })
        .await?;
    outcome.ok_or(ApiError::Internal("rate limit update did not run"))
}
