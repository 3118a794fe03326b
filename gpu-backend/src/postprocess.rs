//! Cleaning what the model wrote before it is returned whole (non-streaming answers).

use crate::error::BackendError;

const ROLE_MARKERS: [&str; 3] = ["User:", "Assistant:", "System:"];

/// Strips role markers the model wrote anyway, and, when generation stopped at the token
/// limit (`truncated`), the half sentence at the end. Never returns an empty reply.
pub fn finish_reply(raw: &str, truncated: bool) -> Result<String, BackendError> {
    let mut text = raw.trim();
    // A reply that starts by naming its role.
    if let Some(rest) = text.strip_prefix("Assistant:") {
        text = rest.trim_start();
    }
    // The model began another turn: keep what came before it.
    if let Some(cut) = ROLE_MARKERS.iter().filter_map(|m| text.find(m)).min() {
        text = text[..cut].trim_end();
    }
    if truncated
        && let Some(end) = text.rfind(['.', '!', '?'])
        && end > 0
    {
        text = &text[..=end];
    }
    let text = text.trim();
    if text.chars().any(char::is_alphanumeric) {
        Ok(text.to_owned())
    } else {
        Err(BackendError::EmptyReply)
    }
}

#[cfg(test)]
mod tests {
    use super::finish_reply;

    #[test]
    fn role_markers_and_half_sentences_go() {
        assert_eq!(
            finish_reply(" Sure thing! User: and then", false).unwrap(),
            "Sure thing!"
        );
        assert_eq!(
            finish_reply("Assistant: Hello there.", false).unwrap(),
            "Hello there."
        );
        assert_eq!(
            finish_reply("It is sunny. Tomorrow it will be", true).unwrap(),
            "It is sunny."
        );
        // Not truncated: an unfinished last sentence is what the model meant to say.
        assert_eq!(finish_reply("Okay then", false).unwrap(), "Okay then");
        // Truncated without any sentence end: keep what there is.
        assert_eq!(finish_reply("Well I think", true).unwrap(), "Well I think");
    }

    #[test]
    fn an_empty_reply_is_an_error() {
        assert!(finish_reply("   ", false).is_err());
        assert!(finish_reply("User: hi", false).is_err());
        assert!(finish_reply("...", false).is_err());
    }
}
