//! `tracing` to the Workers console as JSON lines; the core's request span carries the
//! request id into every line.

use std::io::Write;
use std::sync::Once;

struct ConsoleWriter(Vec<u8>);

impl Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ConsoleWriter {
    fn drop(&mut self) {
        let line = String::from_utf8_lossy(&self.0);
        worker::console_log!("{}", line.trim_end());
    }
}

static INIT: Once = Once::new();

pub fn init() {
    INIT.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .without_time()
            .with_ansi(false)
            .with_writer(|| ConsoleWriter(Vec::new()))
            .try_init();
    });
}
