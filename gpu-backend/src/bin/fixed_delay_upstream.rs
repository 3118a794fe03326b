//! A fixed-delay OpenAI-shaped upstream for the overhead benchmark (the method TensorZero
//! publishes): `POST /v1/completions` streams four text frames, a usage frame and `[DONE]`
//! after `--delay-ms`; `GET /health` answers 200. It stands in for vLLM only in the benchmark.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::response::sse::{Event, Sse};
use axum::routing::{get, post};
use clap::Parser;
use futures::Stream;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8101")]
    listen: std::net::SocketAddr,
    #[arg(long, default_value_t = 5)]
    delay_ms: u64,
}

fn frames(delay: Duration) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let texts = [" Sure", ", I", " can", " help."];
    let mut events: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let finish = if i + 1 == texts.len() { "\"stop\"" } else { "null" };
            format!(
                r#"{{"id":"cmpl-bench","object":"text_completion","model":"bench","choices":[{{"index":0,"text":"{t}","finish_reason":{finish}}}]}}"#
            )
        })
        .collect();
    events.push(r#"{"id":"cmpl-bench","object":"text_completion","model":"bench","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":4,"total_tokens":24}}"#.to_owned());
    events.push("[DONE]".to_owned());
    let stream = futures::stream::unfold(
        (events.into_iter(), true),
        move |(mut it, first)| async move {
            if first {
                tokio::time::sleep(delay).await;
            }
            it.next()
                .map(|data| (Ok(Event::default().data(data)), (it, false)))
        },
    );
    Sse::new(stream)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let delay = Duration::from_millis(args.delay_ms);
    let app = Router::new()
        .route(
            "/v1/completions",
            post(move || async move { frames(delay) }),
        )
        .route("/health", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    // As vLLM's server does: frames leave at once (no Nagle delay).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}
