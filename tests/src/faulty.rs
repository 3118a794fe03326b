//! A misbehaving OpenAI-shaped backend on 127.0.0.1 for the fault tests: it answers
//! `POST /v1/chat/completions` the way the current [`Fault`] says (late, garbage, cut off
//! mid-stream). Faults a real gpu-backend shows on its own (down, engines down) are tested
//! on the real one; these are the ones it cannot be made to show.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A well-formed stream whose first token comes after this long.
    SlowFirstToken(Duration),
    /// `200 text/event-stream` with HTML in it.
    Garbage,
    /// A few tokens, then the connection closes without `[DONE]`.
    CutAfterTokens,
    /// Not a fault: a well-formed answer of [`PACED_ANSWER`], one word every this long (turns
    /// that are still running when a test stops the edge).
    Paced(Duration),
}

pub struct FaultyBackend {
    pub port: u16,
    fault: Arc<Mutex<Fault>>,
    requests: Arc<AtomicUsize>,
}

/// The tokens sent before a cut.
pub const CUT_PREFIX: &str = "The weather today is";

/// The whole answer of [`Fault::Paced`].
pub const PACED_ANSWER: &str = "One two three four five six seven eight nine ten.";

impl FaultyBackend {
    pub fn start(fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(Mutex::new(fault));
        let requests = Arc::new(AtomicUsize::new(0));
        let (shared, counted) = (Arc::clone(&fault), Arc::clone(&requests));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::SeqCst);
                let fault = *shared.lock().unwrap();
                std::thread::spawn(move || {
                    let _ = serve(stream, fault);
                });
            }
        });
        Self {
            port,
            fault,
            requests,
        }
    }

    /// Connections it has answered (each request comes on its own: `connection: close`).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn chunk(text: &str) -> String {
    let c = serde_json::json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]});
    format!("data: {c}\n\n")
}

fn serve(stream: TcpStream, fault: Fault) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    let mut length = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(v) = header.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let mut out = stream;
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
    match fault {
        Fault::SlowFirstToken(delay) => {
            std::thread::sleep(delay);
            out.write_all(head.as_bytes())?;
            out.write_all(chunk("Sorry for the wait.").as_bytes())?;
            out.write_all(b"data: [DONE]\n\n")?;
        }
        Fault::Garbage => {
            out.write_all(head.as_bytes())?;
            out.write_all(b"data: <html><body>502 Bad Gateway</body></html>\n\n")?;
        }
        Fault::CutAfterTokens => {
            out.write_all(head.as_bytes())?;
            for word in CUT_PREFIX.split_inclusive(' ') {
                out.write_all(chunk(word).as_bytes())?;
                out.flush()?;
                std::thread::sleep(Duration::from_millis(20));
            }
            // Closing here, without `[DONE]`, is the cut.
        }
        Fault::Paced(every) => {
            out.write_all(head.as_bytes())?;
            for word in PACED_ANSWER.split_inclusive(' ') {
                out.write_all(chunk(word).as_bytes())?;
                out.flush()?;
                std::thread::sleep(every);
            }
            out.write_all(b"data: [DONE]\n\n")?;
        }
    }
    out.flush()
}
