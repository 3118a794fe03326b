//! The history routes: a user's stored turns (`GET /api/chat/history/{user}`), deleting them
//! (`DELETE`), and statistics over them (`GET /api/chat/summary/{user}`). Only the user or an
//! admin may; every access is written to the `audit` log target.

use serde_json::{Value, json};

use super::EdgeApp;
use super::records::history_key;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::history::{Role, rfc3339};
use crate::http::{HttpRequest, HttpResponse};
use crate::platform::{ConversationStore, Outbound, Services, StoreWrite};

impl EdgeApp {
    fn check_access<S: ConversationStore, O: Outbound>(
        &self,
        principal: &Principal,
        user: &str,
        action: &'static str,
        svc: &Services<'_, S, O>,
    ) -> Result<(), ApiError> {
        let allowed = principal.may_access(user);
        tracing::info!(
            target: "audit",
            actor = %principal.user_id,
            subject = %user,
            action,
            admin = principal.admin,
            allowed,
            at = %rfc3339(svc.clock.now_ms()),
            "history access"
        );
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "you may only {action} your own history"
            )))
        }
    }

    pub(super) async fn history<S: ConversationStore, O: Outbound>(
        &self,
        req: &HttpRequest,
        principal: &Principal,
        user: &str,
        svc: &Services<'_, S, O>,
    ) -> Result<HttpResponse, ApiError> {
        let limit = match req.query_param("limit") {
            None => None,
            Some(text) => Some(
                text.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid("invalid_limit", "limit must be an integer in 1..=10000")
                    })?,
            ),
        };
        self.check_access(principal, user, "read", svc)?;
        let conversation = self.read_conversation(user, svc).await?;
        let turns = &conversation.turns;
        let skip = limit.map_or(0, |l| turns.len().saturating_sub(l));
        let messages: Vec<Value> = turns[skip..]
            .iter()
            .map(|t| {
                json!({
                    "role": t.role,
                    "content": t.content,
                    "timestamp": rfc3339(t.ts_ms),
                    "intent": t.intent,
                })
            })
            .collect();
        Ok(HttpResponse::json(
            200,
            &json!({
                "success": true,
                "user_id": user,
                "count": messages.len(),
                "total": turns.len(),
                "messages": messages,
            }),
        ))
    }

    pub(super) async fn delete_history<S: ConversationStore, O: Outbound>(
        &self,
        principal: &Principal,
        user: &str,
        svc: &Services<'_, S, O>,
    ) -> Result<HttpResponse, ApiError> {
        self.check_access(principal, user, "delete", svc)?;
        let key = history_key(user);
        let aad = key.flat();
        let mut outcome = None;
        svc.store
            .update(key, &mut |current| {
                match self.history.decode(current, aad.as_bytes()) {
                    Ok(mut c) => {
                        self.config.history.enforce(&mut c, svc.clock.now_ms());
                        outcome = Some(Ok(c.turns.len()));
                        StoreWrite::Delete
                    }
                    // Unreadable history is kept: deleting what we can't read could hide a
                    // configuration mistake (a wrong key) and lose data for good.
                    Err(e) => {
                        outcome = Some(Err(e));
                        StoreWrite::Keep
                    }
                }
            })
            .await?;
        let deleted = outcome.ok_or(ApiError::Internal("history update did not run"))??;
        Ok(HttpResponse::json(
            200,
            &json!({"success": true, "user_id": user, "deleted": deleted}),
        ))
    }

    /// Message counts, first and last timestamps, the most frequent intents and the last user
    /// message (the route keeps the seed's name, `/api/chat/summary/{user}`).
    pub(super) async fn history_stats<S: ConversationStore, O: Outbound>(
        &self,
        principal: &Principal,
        user: &str,
        svc: &Services<'_, S, O>,
    ) -> Result<HttpResponse, ApiError> {
        self.check_access(principal, user, "summarise", svc)?;
        let conversation = self.read_conversation(user, svc).await?;
        let turns = &conversation.turns;
        let mut counts: Vec<(String, usize)> = Vec::new();
        for intent in turns
            .iter()
            .filter(|t| t.role == Role::User)
            .filter_map(|t| t.intent.as_ref())
        {
            match counts.iter_mut().find(|(i, _)| i == intent) {
                Some((_, n)) => *n += 1,
                None => counts.push((intent.to_string(), 1)),
            }
        }
        // Most frequent first; ties in order of first appearance (the sort is stable).
        counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let top: Vec<Value> = counts
            .iter()
            .take(5)
            .map(|(intent, count)| json!({"intent": intent, "count": count}))
            .collect();
        let user_turns = turns.iter().filter(|t| t.role == Role::User).count();
        Ok(HttpResponse::json(
            200,
            &json!({
                "success": true,
                "user_id": user,
                "message_count": turns.len(),
                "user_message_count": user_turns,
                "assistant_message_count": turns.len() - user_turns,
                "first_timestamp": turns.first().map(|t| rfc3339(t.ts_ms)),
                "last_timestamp": turns.last().map(|t| rfc3339(t.ts_ms)),
                "top_intents": top,
                "last_user_message": turns.iter().rev().find(|t| t.role == Role::User).map(|t| &t.content),
            }),
        ))
    }
}
