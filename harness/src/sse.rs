//! A byte-level, incremental Server-Sent Events parser.
//!
//! Unlike a browser `EventSource`, it hides nothing: every dispatched block becomes an [`SseEvent`]
//! (even one without `data`, such as `id: 7` alone), and every comment line becomes an
//! [`SseItem::Comment`], so a harness can assert on priming events and keep-alive comments.
//!
//! Line endings may be CRLF, LF or CR, a leading UTF-8 BOM is skipped, and bytes may arrive split
//! anywhere: feeding the same bytes in any chunking gives the same items.

use serde::Serialize;

/// One dispatched SSE event: the fields seen in one blank-line-terminated block.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SseEvent {
    /// The `id` field of this block, if the block had one (ids containing NUL are ignored).
    pub id: Option<String>,
    /// The `event` field (event type), if any.
    pub event: Option<String>,
    /// The `data` lines joined by `\n`, or `None` when the block had no `data` line.
    pub data: Option<String>,
    /// The `retry` field, when it was all ASCII digits.
    pub retry: Option<u64>,
}

/// What the parser yields, in wire order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SseItem {
    /// A dispatched event.
    Event(SseEvent),
    /// A comment line (`:` prefix), without the colon and one leading space.
    Comment(String),
}

/// Incremental parser state. Feed chunks with [`SseParser::feed`].
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    bom_state: BomState,
    bom_buf: Vec<u8>,
    block: Block,
}

#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
enum BomState {
    #[default]
    Checking,
    Done,
}

#[derive(Debug, Default)]
struct Block {
    has_fields: bool,
    event: SseEvent,
    data: Option<String>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds a chunk and returns the items it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseItem> {
        let mut out = Vec::new();
        let mut bytes = chunk;
        if self.bom_state == BomState::Checking {
            let need = BOM.len() - self.bom_buf.len();
            let take = need.min(bytes.len());
            self.bom_buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if !BOM.starts_with(&self.bom_buf) {
                self.bom_state = BomState::Done;
                let held = std::mem::take(&mut self.bom_buf);
                self.scan(&held, &mut out);
            } else if self.bom_buf.len() == BOM.len() {
                self.bom_state = BomState::Done;
                self.bom_buf.clear();
            } else {
                return out;
            }
        }
        self.scan(bytes, &mut out);
        out
    }

    /// Ends the stream. Per the SSE rules an unterminated last block is discarded; this returns
    /// true when such incomplete data was pending.
    pub fn finish(&mut self) -> bool {
        let pending = !self.line.is_empty() || self.block.has_fields || !self.bom_buf.is_empty();
        self.line.clear();
        self.bom_buf.clear();
        self.block = Block::default();
        pending
    }

    fn scan(&mut self, bytes: &[u8], out: &mut Vec<SseItem>) {
        for &byte in bytes {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.process_line(&line, out);
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(byte);
                }
            }
        }
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseItem>) {
        if line.is_empty() {
            let block = std::mem::take(&mut self.block);
            if block.has_fields {
                let mut event = block.event;
                event.data = block.data;
                out.push(SseItem::Event(event));
            }
            return;
        }
        let text = String::from_utf8_lossy(line);
        if let Some(comment) = text.strip_prefix(':') {
            let comment = comment.strip_prefix(' ').unwrap_or(comment);
            out.push(SseItem::Comment(comment.to_string()));
            return;
        }
        let (name, value) = match text.find(':') {
            Some(colon) => {
                let value = &text[colon + 1..];
                (&text[..colon], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (&text[..], ""),
        };
        self.block.has_fields = true;
        match name {
            "event" => self.block.event.event = Some(value.to_string()),
            "data" => match &mut self.block.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.block.data = Some(value.to_string()),
            },
            "id" if !value.contains('\0') => self.block.event.id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.block.event.retry = value.parse().ok();
            }
            _ => {}
        }
    }
}

/// Parses a complete body in one go (convenience for tests and buffered bodies).
pub fn parse_all(bytes: &[u8]) -> Vec<SseItem> {
    let mut parser = SseParser::new();
    let items = parser.feed(bytes);
    parser.finish();
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(id: Option<&str>, data: Option<&str>) -> SseItem {
        SseItem::Event(SseEvent {
            id: id.map(str::to_string),
            data: data.map(str::to_string),
            ..SseEvent::default()
        })
    }

    #[test]
    fn parses_fields_comments_and_multiline_data() {
        let items = parse_all(
            b"\xEF\xBB\xBF: hello\r\nid: 1\r\ndata:\r\n\r\nevent: message\nid:2\ndata: {\"a\":1}\ndata: x\nretry: 3000\n\n:\rid: 3\r\r",
        );
        assert_eq!(
            items,
            vec![
                SseItem::Comment("hello".into()),
                event(Some("1"), Some("")),
                SseItem::Event(SseEvent {
                    id: Some("2".into()),
                    event: Some("message".into()),
                    data: Some("{\"a\":1}\nx".into()),
                    retry: Some(3000),
                }),
                SseItem::Comment(String::new()),
                event(Some("3"), None),
            ]
        );
    }

    #[test]
    fn unterminated_block_is_discarded_and_reported() {
        let mut parser = SseParser::new();
        assert_eq!(parser.feed(b"data: a\n"), vec![]);
        assert!(parser.finish());
    }

    #[test]
    fn bad_retry_and_nul_id_are_ignored() {
        let items = parse_all(b"retry: 12a\nid: a\0b\ndata: x\n\n");
        assert_eq!(items, vec![event(None, Some("x"))]);
    }

    #[test]
    fn bom_only_at_start() {
        let items = parse_all(b"data: \xEF\xBB\xBFx\n\n");
        assert_eq!(items, vec![event(None, Some("\u{feff}x"))]);
        let items = parse_all(b"\xEF\xBBdata: x\n\n");
        assert_eq!(items.len(), 1);
    }

    fn chunked(bytes: &[u8], cuts: &[usize]) -> Vec<SseItem> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut parser = SseParser::new();
        let mut items = Vec::new();
        let mut start = 0;
        for cut in cuts {
            items.extend(parser.feed(&bytes[start..cut]));
            start = cut;
        }
        items.extend(parser.feed(&bytes[start..]));
        parser.finish();
        items
    }

    fn line_ending() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("\n"), Just("\r\n"), Just("\r")]
    }

    fn field_line() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z{}\":, ]{0,12}".prop_map(|v| format!("data: {v}")),
            "[a-z0-9]{0,6}".prop_map(|v| format!("id: {v}")),
            "[a-z]{1,6}".prop_map(|v| format!("event:{v}")),
            (0u32..100000).prop_map(|v| format!("retry: {v}")),
            "[ -~]{0,10}".prop_map(|v| format!(":{v}")),
        ]
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_items(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            prop_assert_eq!(chunked(&bytes, &cuts), parse_all(&bytes));
        }

        #[test]
        fn well_formed_streams_chunk_the_same(
            bom in any::<bool>(),
            blocks in proptest::collection::vec(
                (proptest::collection::vec((field_line(), line_ending()), 1..4), line_ending()),
                0..6,
            ),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            let mut text = String::new();
            if bom { text.push('\u{feff}'); }
            let mut dispatched = 0;
            for (lines, end) in &blocks {
                let mut has_field = false;
                for (line, eol) in lines {
                    text.push_str(line);
                    text.push_str(eol);
                    has_field |= !line.starts_with(':');
                }
                // A lone CR followed by LF would merge into one CRLF; keep block ends distinct.
                let last_eol = lines.last().map(|(_, eol)| *eol).unwrap_or("\n");
                text.push_str(if last_eol == "\r" && *end == "\n" { "\r" } else { end });
                dispatched += usize::from(has_field);
            }
            let whole = parse_all(text.as_bytes());
            let events = whole.iter().filter(|i| matches!(i, SseItem::Event(_))).count();
            prop_assert_eq!(events, dispatched);
            prop_assert_eq!(chunked(text.as_bytes(), &cuts), whole);
        }
    }
}
