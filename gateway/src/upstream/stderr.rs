//! Draining a child's stderr into our logs: always read (so a chatty child never blocks on a full
//! pipe), logged at a bounded rate, the child's own token masked, and the last lines kept for the
//! exit report.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, BufReader};
use tokio::time::Instant;

use super::lines::{read_bounded_line, LineRead};
use crate::identity::Secret;

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

/// Shortest beginning of a token, left at the end of a truncated line, that is still masked.
const MIN_MASKED_PREFIX: usize = 4;

/// Replaces the child's token in one of its stderr lines with the token's fingerprint. A child
/// may print what it was given (a debug dump of its settings, an HTTP client's request log, a
/// traceback), and the gateway's logs must never carry a caller's token. When the line was cut
/// at [`MAX_STDERR_LINE`], a token's beginning left at the very end is masked too.
fn mask(line: String, secret: Option<&Secret>, truncated: bool) -> String {
    let Some(secret) = secret else { return line };
    let token = secret.expose();
    if token.is_empty() {
        return line;
    }
    // The fingerprint (a SHA-256) only for lines that hold the token: most hold none.
    let shown = || format!("[token {}]", secret.fingerprint());
    let mut line = if line.contains(token) {
        line.replace(token, &shown())
    } else {
        line
    };
    if truncated {
        let cut = (MIN_MASKED_PREFIX..token.len())
            .rev()
            .find(|&n| token.is_char_boundary(n) && line.ends_with(&token[..n]));
        if let Some(n) = cut {
            line.truncate(line.len() - n);
            line.push_str(&shown());
        }
    }
    line
}

/// Reads stderr to its end, logging at most `per_sec` lines a second, with `secret` (the token
/// the child was started with) masked wherever it appears.
pub async fn drain<R: AsyncRead + Unpin>(
    stream: R,
    label: String,
    pid: u32,
    per_sec: u32,
    secret: Option<Secret>,
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
        let line = mask(
            String::from_utf8_lossy(&buf).into_owned(),
            secret.as_ref(),
            outcome == LineRead::TooLong,
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("mock-token-alice-0001")
    }

    #[test]
    fn the_childs_token_is_replaced_by_its_fingerprint() {
        let shown = format!("[token {}]", secret().fingerprint());
        let line = "debug: headers {'Authorization': 'Bearer mock-token-alice-0001'} mock-token-alice-0001";
        let masked = mask(line.to_string(), Some(&secret()), false);
        assert!(!masked.contains("mock-token-alice-0001"), "{masked}");
        assert_eq!(masked.matches(&shown).count(), 2, "{masked}");
    }

    #[test]
    fn a_token_cut_off_by_the_line_limit_is_masked_too() {
        let line = format!("{}Bearer mock-token-al", "x".repeat(40));
        let masked = mask(line.clone(), Some(&secret()), true);
        assert!(!masked.contains("mock-token-al"), "{masked}");
        assert!(masked.ends_with(&format!("Bearer [token {}]", secret().fingerprint())));
        // An untruncated line ending in a few of the token's letters is left as it is.
        assert_eq!(mask(line.clone(), Some(&secret()), false), line);
        assert_eq!(
            mask("ends in moc".into(), Some(&secret()), true),
            "ends in moc"
        );
    }

    #[test]
    fn lines_without_a_token_or_children_without_one_are_unchanged() {
        assert_eq!(mask("plain".into(), Some(&secret()), false), "plain");
        assert_eq!(
            mask("mock-token-alice-0001".into(), None, false),
            "mock-token-alice-0001"
        );
        assert_eq!(mask("x".into(), Some(&Secret::new("")), true), "x");
    }

    #[tokio::test]
    async fn drained_lines_reach_the_exit_report_masked() {
        let input: &[u8] = b"starting\ntoken is mock-token-alice-0001\n";
        let tail = StderrTail::default();
        drain(input, "t".into(), 1, 100, Some(secret()), tail.clone()).await;
        let lines = tail.lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], "starting");
        assert_eq!(
            lines[1],
            format!("token is [token {}]", secret().fingerprint())
        );
    }
}
