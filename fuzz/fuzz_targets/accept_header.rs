//! `Accept` and `Content-Type` parsing: `accepts` is true exactly when one listed media range
//! (parameters aside) is the type asked for, case-insensitively; wildcards never count; listing
//! more types never takes an acceptance away; `is_json` reads the media type alone.
#![no_main]

use gateway::fuzzing::{accepts, is_json};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

const MEDIA: [&str; 2] = ["application/json", "text/event-stream"];

fn reference(values: &[&str], media: &str) -> bool {
    values.iter().any(|v| {
        v.split(',').any(|item| {
            let ty = item
                .split(';')
                .next()
                .unwrap_or("")
                .trim_matches(|c| c == ' ' || c == '\t');
            ty.to_ascii_lowercase() == media
        })
    })
}

fuzz_target!(|data: &[u8]| {
    // Several Accept headers, separated by 0x00.
    let parts: Vec<&[u8]> = data.split(|&b| b == 0).take(4).collect();
    let mut headers = HeaderMap::new();
    let mut texts = Vec::new();
    for part in &parts {
        let Ok(value) = HeaderValue::from_bytes(part) else {
            continue;
        };
        if let Ok(text) = value.to_str() {
            texts.push(text.to_string());
        }
        headers.append(ACCEPT, value);
    }
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    for media in MEDIA {
        let got = accepts(&headers, media);
        assert_eq!(got, reference(&texts, media), "{media} in {texts:?}");
        // Appending `*/*` or another type never takes an acceptance away, and wildcards alone
        // never give one.
        let mut more = headers.clone();
        more.append(
            ACCEPT,
            HeaderValue::from_static("*/*, application/*, text/*"),
        );
        assert_eq!(accepts(&more, media), got);
        more.append(
            ACCEPT,
            HeaderValue::from_str(&media.to_ascii_uppercase()).unwrap(),
        );
        assert!(accepts(&more, media), "an upper-case listing counts");
    }
    // Content-Type: the first part alone, parameters ignored.
    if let Some(Ok(value)) = parts.first().map(|p| HeaderValue::from_bytes(p)) {
        let mut headers = HeaderMap::new();
        let text = value.to_str().ok().map(str::to_string);
        headers.insert(CONTENT_TYPE, value);
        let want = text.is_some_and(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
        assert_eq!(is_json(&headers), want);
    }
});
