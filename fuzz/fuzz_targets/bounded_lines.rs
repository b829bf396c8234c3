//! Bounded line reading (what `upstream::Lines` runs on a child's stdout): over any chunking
//! and any buffer size, the lines read are the input's lines (a trailing `\r` dropped), a line
//! longer than the bound is refused as soon as it is seen, and the buffer never holds more than
//! the bound.
#![no_main]

use coda_mcp_fuzz::{chunk_sizes, runtime, split_at_byte, ChunkedReader};
use gateway::fuzzing::{read_bounded_line, LineRead};
use libfuzzer_sys::fuzz_target;
use tokio::io::BufReader;

#[derive(Debug, PartialEq)]
enum Expect {
    Line(Vec<u8>),
    TooLong,
    Eof(Vec<u8>),
}

/// The reference: split on `\n`, refuse the first segment longer than `max`.
fn model(input: &[u8], max: usize) -> Vec<Expect> {
    let mut out = Vec::new();
    let mut rest = input;
    loop {
        match rest.iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let line = &rest[..pos];
                if line.len() > max {
                    out.push(Expect::TooLong);
                    return out;
                }
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                out.push(Expect::Line(line.to_vec()));
                rest = &rest[pos + 1..];
            }
            None => {
                if rest.len() > max {
                    out.push(Expect::TooLong);
                } else {
                    out.push(Expect::Eof(rest.to_vec()));
                }
                return out;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Layout: [max][capacity] chunk-seed 0x00 input
    if data.len() < 2 {
        return;
    }
    let max = usize::from(data[0]);
    let capacity = usize::from(data[1] % 32) + 1;
    let (seed, input) = split_at_byte(&data[2..], 0);
    let want = model(input, max);
    let got = runtime().block_on(async {
        let mut reader =
            BufReader::with_capacity(capacity, ChunkedReader::new(input, chunk_sizes(seed)));
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            let read = read_bounded_line(&mut reader, &mut buf, max)
                .await
                .expect("in-memory reads do not fail");
            assert!(buf.len() <= max, "the buffer grew past the bound");
            match read {
                LineRead::Line => got.push(Expect::Line(buf.clone())),
                LineRead::TooLong => {
                    got.push(Expect::TooLong);
                    return got;
                }
                LineRead::Eof => {
                    got.push(Expect::Eof(buf.clone()));
                    return got;
                }
            }
        }
    });
    assert_eq!(got, want);
});
