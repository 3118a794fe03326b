//! Request bodies: content type and size checked before parsing, then the shape (an unknown
//! top-level field of the Eindr API is a 422), then the message itself.

use super::warm::{MAX_WARM_QUESTIONS, WarmRequest};
use crate::api::{OpenAiChatRequest, RespondRequest};
use crate::config::EdgeConfig;
use crate::error::ApiError;
use crate::http::HttpRequest;

fn parse_json<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    config: &EdgeConfig,
) -> Result<T, ApiError> {
    let is_json = req.header("content-type").is_some_and(|ct| {
        let mime = ct.split(';').next().unwrap_or("").trim();
        mime.eq_ignore_ascii_case("application/json")
    });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let limit = config.limits.max_body_bytes;
    if req.body.len() > limit {
        return Err(ApiError::PayloadTooLarge {
            size: req.body.len(),
            limit,
        });
    }
    serde_json::from_slice(&req.body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid("invalid_request", e.to_string()),
        _ => ApiError::InvalidJson(e.to_string()),
    })
}

fn validate_message(message: &str, config: &EdgeConfig) -> Result<(), ApiError> {
    if message.trim().is_empty() {
        return Err(ApiError::invalid(
            "empty_message",
            "message must not be empty",
        ));
    }
    let chars = message.chars().count();
    if chars > config.limits.max_message_chars {
        return Err(ApiError::invalid(
            "message_too_long",
            format!(
                "message is {chars} characters; the limit is {}",
                config.limits.max_message_chars
            ),
        ));
    }
    Ok(())
}

/// A `POST /api/chat/cache/warm` body: 1 to [`MAX_WARM_QUESTIONS`] questions, each a valid
/// message.
pub(super) fn parse_warm(req: &HttpRequest, config: &EdgeConfig) -> Result<WarmRequest, ApiError> {
    let body: WarmRequest = parse_json(req, config)?;
    if body.questions.is_empty() || body.questions.len() > MAX_WARM_QUESTIONS {
        return Err(ApiError::invalid(
            "invalid_questions",
            format!(
                "questions holds {}; send 1 to {MAX_WARM_QUESTIONS} per call",
                body.questions.len()
            ),
        ));
    }
    for question in &body.questions {
        validate_message(question, config)?;
    }
    Ok(body)
}

/// A `POST /api/chat/respond` body, parsed and its message validated.
pub(super) fn parse_respond(
    req: &HttpRequest,
    config: &EdgeConfig,
) -> Result<RespondRequest, ApiError> {
    let body: RespondRequest = parse_json(req, config)?;
    validate_message(&body.message, config)?;
    Ok(body)
}

/// A `POST /v1/chat/completions` body and its new user message: the last message, which
/// must be the user's. Earlier messages are not used: the edge keeps the conversation itself.
pub(super) fn parse_openai(
    req: &HttpRequest,
    config: &EdgeConfig,
) -> Result<(OpenAiChatRequest, String), ApiError> {
    let body: OpenAiChatRequest = parse_json(req, config)?;
    super::openai_checks::check(&body, config)?;
    let last = body
        .messages
        .last()
        .filter(|m| m.role == "user")
        .ok_or_else(|| ApiError::BadRequest {
            code: "invalid_messages",
            message: "messages must end with the user's message".into(),
            param: Some("messages".into()),
        })?;
    let message = last.content.as_ref().map(|c| c.text()).unwrap_or_default();
    validate_message(&message, config)?;
    Ok((body, message))
}
