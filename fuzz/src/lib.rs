//! Helpers shared by the fuzz targets: cutting one input into parts, and a reader that hands
//! out bytes in the chunks the input chose.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Splits `data` at the first `sep` byte: (before, after). Without `sep`, all of it is `before`.
pub fn split_at_byte(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Chunk sizes (1..=64) drawn from `seed`, cycled; how a pipe or a socket might cut bytes.
pub fn chunk_sizes(seed: &[u8]) -> Vec<usize> {
    if seed.is_empty() {
        vec![usize::MAX]
    } else {
        seed.iter().map(|b| usize::from(b % 64) + 1).collect()
    }
}

/// `data` cut into chunks by `sizes` (cycled).
pub fn chunks<'a>(data: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
        i += 1;
    }
    out
}

/// An `AsyncRead` that returns at most one chunk per read, like a pipe that delivers bytes
/// in the pieces the writer flushed.
pub struct ChunkedReader {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl ChunkedReader {
    pub fn new(data: &[u8], sizes: Vec<usize>) -> ChunkedReader {
        ChunkedReader {
            data: data.to_vec(),
            pos: 0,
            sizes,
            turn: 0,
        }
    }
}

impl AsyncRead for ChunkedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let want = this.sizes[this.turn % this.sizes.len()];
        this.turn += 1;
        let n = want.min(buf.remaining()).min(this.data.len() - this.pos);
        buf.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// A current-thread runtime with time enabled, built once per process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    })
}
