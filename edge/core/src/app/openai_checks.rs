//! `/v1/chat/completions` request checks as OpenAI's API makes them: a request it would refuse
//! is refused here too, with 400, an `invalid_request_error`, the parameter at fault in
//! `param` and OpenAI's code, before any model runs (minimal mode included). What the edge
//! cannot do is refused by name rather than silently ignored.

use crate::api::{OpenAiChatRequest, OpenAiContent};
use crate::config::EdgeConfig;
use crate::error::ApiError;

const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];
const MAX_STOP_SEQUENCES: usize = 4;

fn bad(param: impl Into<String>, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code,
        message: message.into(),
        param: Some(param.into()),
    }
}

fn within(param: &str, value: Option<f64>, min: f64, max: f64) -> Result<(), ApiError> {
    match value {
        Some(v) if v.is_nan() || v < min => Err(bad(
            param,
            "decimal_below_min_value",
            format!("{v} is less than the minimum of {min} - '{param}'"),
        )),
        Some(v) if v > max => Err(bad(
            param,
            "decimal_above_max_value",
            format!("{v} is greater than the maximum of {max} - '{param}'"),
        )),
        _ => Ok(()),
    }
}

fn token_limit(param: &str, value: Option<i64>, config: &EdgeConfig) -> Result<(), ApiError> {
    let Some(v) = value else { return Ok(()) };
    let window = i64::from(config.generation.max_model_len);
    if v < 1 {
        return Err(bad(
            param,
            "integer_below_min_value",
            format!("{v} is less than the minimum of 1 - '{param}'"),
        ));
    }
    if v > window {
        return Err(bad(
            param,
            "invalid_value",
            format!("{param} is too large: {v}. This model's context window is {window} tokens"),
        ));
    }
    Ok(())
}

/// Refuses a parameter the edge cannot honour, when it is set (not absent, not null).
fn unsupported(param: &str, value: &Option<serde_json::Value>, what: &str) -> Result<(), ApiError> {
    match value {
        Some(v) if !v.is_null() => Err(bad(
            param,
            "unsupported_parameter",
            format!("'{param}' is not supported: {what}"),
        )),
        _ => Ok(()),
    }
}

pub(super) fn check(body: &OpenAiChatRequest, config: &EdgeConfig) -> Result<(), ApiError> {
    if body.messages.is_empty() {
        return Err(bad(
            "messages",
            "invalid_value",
            "[] is too short - 'messages'",
        ));
    }
    for (i, message) in body.messages.iter().enumerate() {
        if !ROLES.contains(&message.role.as_str()) {
            return Err(bad(
                format!("messages[{i}].role"),
                "invalid_value",
                format!(
                    "'{}' is not one of {ROLES:?} - 'messages[{i}].role'",
                    message.role
                ),
            ));
        }
        if let Some(OpenAiContent::Parts(parts)) = &message.content {
            for (j, part) in parts.iter().enumerate() {
                if part.kind != "text" {
                    return Err(bad(
                        format!("messages[{i}].content[{j}].type"),
                        "unsupported_content",
                        format!(
                            "content parts of type '{}' are not supported: this model reads text only",
                            part.kind
                        ),
                    ));
                }
            }
        }
    }
    within("temperature", body.temperature, 0.0, 2.0)?;
    within("top_p", body.top_p, 0.0, 1.0)?;
    within("presence_penalty", body.presence_penalty, -2.0, 2.0)?;
    within("frequency_penalty", body.frequency_penalty, -2.0, 2.0)?;
    token_limit("max_tokens", body.max_tokens, config)?;
    token_limit("max_completion_tokens", body.max_completion_tokens, config)?;
    match body.n {
        Some(n) if n < 1 => {
            return Err(bad(
                "n",
                "integer_below_min_value",
                format!("{n} is less than the minimum of 1 - 'n'"),
            ));
        }
        Some(n) if n > 1 => {
            return Err(bad(
                "n",
                "unsupported_value",
                "n > 1 is not supported: this server makes one choice per request",
            ));
        }
        _ => {}
    }
    match &body.stop {
        None | Some(serde_json::Value::Null) | Some(serde_json::Value::String(_)) => {}
        Some(serde_json::Value::Array(items))
            if items.len() <= MAX_STOP_SEQUENCES && items.iter().all(|s| s.is_string()) => {}
        Some(_) => {
            return Err(bad(
                "stop",
                "invalid_value",
                format!("'stop' must be a string or up to {MAX_STOP_SEQUENCES} strings"),
            ));
        }
    }
    if body.logprobs == Some(true) {
        return Err(bad(
            "logprobs",
            "unsupported_parameter",
            "'logprobs' is not supported: the answer may come from a cache or rules, which have none",
        ));
    }
    let no_tools = "this server answers in text and calls no tools";
    unsupported("tools", &body.tools, no_tools)?;
    unsupported("tool_choice", &body.tool_choice, no_tools)?;
    unsupported("functions", &body.functions, no_tools)?;
    unsupported("function_call", &body.function_call, no_tools)?;
    let plain_text = body
        .response_format
        .as_ref()
        .is_none_or(|f| f.is_null() || f.get("type").and_then(|t| t.as_str()) == Some("text"));
    if !plain_text {
        return Err(bad(
            "response_format",
            "unsupported_parameter",
            "'response_format' is not supported: this server answers in plain text only",
        ));
    }
    if body.stream_options.is_some() && !body.stream {
        return Err(bad(
            "stream_options",
            "invalid_value",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        ));
    }
    Ok(())
}
