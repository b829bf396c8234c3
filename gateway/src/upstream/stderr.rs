//! Draining a child's stderr into our logs: always read (so a chatty child never blocks on a full
//! pipe), logged at a bounded rate, and the last lines kept for the exit report.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, BufReader};
use tokio::time::Instant;

use super::lines::{read_bounded_line, LineRead};

/// Longest stderr line kept; the rest of a longer line is dropped.
const MAX_STDERR_LINE: usize = 4096;
/// Lines kept for the exit report.
const TAIL_LINES: usize = 20;

#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: String) {
        let mut tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }

    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// Reads stderr to its end, logging at most `per_sec` lines a second.
pub async fn drain<R: AsyncRead + Unpin>(
    stream: R,
    label: String,
    pid: u32,
    per_sec: u32,
    tail: StderrTail,
) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::with_capacity(256);
    let mut window_start = Instant::now();
    let mut logged_in_window = 0u32;
    let mut suppressed = 0u64;
    loop {
        let outcome = match read_bounded_line(&mut reader, &mut buf, MAX_STDERR_LINE).await {
            Ok(outcome) => outcome,
            Err(_) => break,
        };
        if outcome == LineRead::TooLong {
            // Keep what fits and skip the rest of the line.
            skip_rest_of_line(&mut reader).await;
        }
        if outcome == LineRead::Eof && buf.is_empty() {
            break;
        }
        let line = String::from_utf8_lossy(&buf).into_owned();
        let now = Instant::now();
        if now.duration_since(window_start).as_secs() >= 1 {
            if suppressed > 0 {
                tracing::warn!(session = %label, pid, suppressed, "child stderr lines dropped by the log rate limit");
            }
            window_start = now;
            logged_in_window = 0;
            suppressed = 0;
        }
        if logged_in_window < per_sec {
            logged_in_window += 1;
            tracing::info!(session = %label, pid, stderr = %line, "child stderr");
        } else {
            suppressed += 1;
        }
        tail.push(line);
        if outcome == LineRead::Eof {
            break;
        }
    }
}

async fn skip_rest_of_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) {
    use tokio::io::AsyncBufReadExt;
    loop {
        let available = match reader.fill_buf().await {
            Ok(bytes) if !bytes.is_empty() => bytes,
            _ => return,
        };
        if let Some(pos) = available.iter().position(|&b| b == b'\n') {
            reader.consume(pos + 1);
            return;
        }
        let len = available.len();
        reader.consume(len);
    }
}
