//! Reading vLLM's `/v1/completions` stream: `data: {json}` frames ending in `data: [DONE]`,
//! a last frame with `choices: []` carrying usage, and errors as a `data:` error frame after a
//! 200. A stream that ends without `[DONE]` was cut, and says so.

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use serde::Deserialize;

use crate::error::BackendError;
use eindr_contract::openai::Usage;

/// One thing the engine sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text {
        text: String,
        finish_reason: Option<String>,
    },
    Usage(Usage),
}

#[derive(Deserialize)]
struct Frame {
    #[serde(default)]
    choices: Vec<FrameChoice>,
    usage: Option<FrameUsage>,
    error: Option<FrameError>,
}

#[derive(Deserialize)]
struct FrameChoice {
    #[serde(default)]
    text: String,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct FrameUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
}

#[derive(Deserialize)]
struct FrameError {
    message: String,
}

/// The pieces of an SSE byte stream, ending after `[DONE]`, or with an error.
pub fn pieces<S, B, E>(bytes: S) -> impl Stream<Item = Result<Piece, BackendError>>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let events = bytes.eventsource();
    futures::stream::unfold((events, false), |(mut events, finished)| async move {
        if finished {
            return None;
        }
        loop {
            match events.next().await {
                None => {
                    return Some((
                        Err(BackendError::Upstream(
                            "the stream ended without [DONE]".into(),
                        )),
                        (events, true),
                    ));
                }
                Some(Err(e)) => {
                    return Some((
                        Err(BackendError::Upstream(format!("stream: {e}"))),
                        (events, true),
                    ));
                }
                Some(Ok(event)) => {
                    let data = event.data.trim();
                    if data == "[DONE]" {
                        return None;
                    }
                    if data.is_empty() {
                        continue;
                    }
                    match parse_frame(data) {
                        Ok(Some(piece)) => return Some((Ok(piece), (events, false))),
                        Ok(None) => continue,
                        Err(e) => return Some((Err(e), (events, true))),
                    }
                }
            }
        }
    })
}

fn parse_frame(data: &str) -> Result<Option<Piece>, BackendError> {
    let frame: Frame = serde_json::from_str(data)
        .map_err(|e| BackendError::Upstream(format!("unreadable frame ({e}): {data:.200}")))?;
    if let Some(error) = frame.error {
        return Err(BackendError::Upstream(error.message));
    }
    if let Some(choice) = frame.choices.into_iter().next() {
        return Ok(Some(Piece::Text {
            text: choice.text,
            finish_reason: choice.finish_reason,
        }));
    }
    Ok(frame.usage.map(|u| {
        Piece::Usage(Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: Vec<&'static str>) -> Vec<Result<Piece, String>> {
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::convert::Infallible>(c.as_bytes())),
        );
        futures::executor::block_on(
            pieces(stream)
                .map(|r| r.map_err(|e| e.to_string()))
                .collect(),
        )
    }

    fn text(t: &str, finish: Option<&str>) -> Result<Piece, String> {
        Ok(Piece::Text {
            text: t.into(),
            finish_reason: finish.map(str::to_owned),
        })
    }

    #[test]
    fn frames_split_anywhere_usage_and_done() {
        let got = collect(vec![
            "data: {\"choices\":[{\"text\":\"Hel\",\"finish_reason\":null}]}\n",
            "\ndata: {\"choices\":[{\"te",
            "xt\":\"lo\",\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n",
            "data: [DONE]\n\n",
        ]);
        assert_eq!(
            got,
            vec![
                text("Hel", None),
                text("lo", Some("stop")),
                Ok(Piece::Usage(Usage {
                    prompt_tokens: 5,
                    completion_tokens: 2,
                    total_tokens: 7
                })),
            ]
        );
    }

    #[test]
    fn an_error_frame_after_a_200_ends_the_stream_with_an_error() {
        let got = collect(vec![
            "data: {\"choices\":[{\"text\":\"Hi\",\"finish_reason\":null}]}\n\n",
            "data: {\"error\":{\"message\":\"engine died\",\"type\":\"InternalServerError\",\"param\":null,\"code\":500}}\n\n",
            "data: {\"choices\":[{\"text\":\"never\",\"finish_reason\":null}]}\n\n",
        ]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], text("Hi", None));
        assert!(got[1].as_ref().unwrap_err().contains("engine died"));
    }

    #[test]
    fn a_cut_stream_is_an_error_not_a_clean_end() {
        let got = collect(vec![
            "data: {\"choices\":[{\"text\":\"Hi\",\"finish_reason\":null}]}\n\n",
        ]);
        assert_eq!(got.len(), 2);
        assert!(got[1].as_ref().unwrap_err().contains("without [DONE]"));
    }

    #[test]
    fn garbage_is_an_error() {
        let got = collect(vec!["data: not json\n\n"]);
        assert!(got[0].as_ref().unwrap_err().contains("unreadable"));
    }
}
