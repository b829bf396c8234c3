//! Reading one newline-terminated line without ever holding more than a bound in memory.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What one call of [`read_bounded_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum LineRead {
    /// A complete line (without its `\n`, and without a trailing `\r`).
    Line,
    /// The stream ended; a partial last line, if any, is in the buffer.
    Eof,
    /// The line grew past the bound; the buffer holds its first `max` bytes and the rest was not read.
    TooLong,
}

/// Reads the next line into `buf` (cleared first), refusing to grow it past `max` bytes.
pub async fn read_bounded_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    buf.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(LineRead::Eof);
        }
        match memchr(available) {
            Some(pos) => {
                if buf.len() + pos > max {
                    return Ok(LineRead::TooLong);
                }
                buf.extend_from_slice(&available[..pos]);
                reader.consume(pos + 1);
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                return Ok(LineRead::Line);
            }
            None => {
                let len = available.len();
                if buf.len() + len > max {
                    return Ok(LineRead::TooLong);
                }
                buf.extend_from_slice(available);
                reader.consume(len);
            }
        }
    }
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    #[tokio::test]
    async fn reads_lines_and_refuses_long_ones() {
        let data: &[u8] = b"one\r\ntwo\nthree-is-long\nfour";
        let mut reader = BufReader::with_capacity(4, data);
        let mut buf = Vec::new();
        assert_eq!(
            read_bounded_line(&mut reader, &mut buf, 8).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(buf, b"one");
        assert_eq!(
            read_bounded_line(&mut reader, &mut buf, 8).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(buf, b"two");
        assert_eq!(
            read_bounded_line(&mut reader, &mut buf, 8).await.unwrap(),
            LineRead::TooLong
        );
        assert!(buf.len() <= 8);
    }

    #[tokio::test]
    async fn partial_last_line_is_eof() {
        let data: &[u8] = b"tail";
        let mut reader = BufReader::new(data);
        let mut buf = Vec::new();
        assert_eq!(
            read_bounded_line(&mut reader, &mut buf, 100).await.unwrap(),
            LineRead::Eof
        );
        assert_eq!(buf, b"tail");
    }
}
