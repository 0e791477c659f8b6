//! The parsers of what a client sends before any handler runs: the SigV4 `Authorization`
//! header (and the verifier over it), Bedrock filters, list tokens, and event-stream frames
//! (decoded, and encoded then decoded back). They may refuse, never panic, hang or blow up.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use quarry_protocol::{eventstream, page_token, sigv4};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(credential) = sigv4::parse_authorization(&text) {
        let headers = vec![
            ("host".to_owned(), "127.0.0.1:8080".to_owned()),
            ("x-amz-date".to_owned(), credential.date.clone() + "T000000Z"),
        ];
        let request = sigv4::SignedRequest {
            method: "POST",
            path: &text,
            query: &text,
            headers: &headers,
        };
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
        let _ = sigv4::verify(&request, &sigv4::payload_hash(data), &credential, "s", now);
    }

    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data)
        && let Ok(filter) = quarry_core::Filter::from_json(&value)
    {
        let _ = filter.matches(&quarry_core::Metadata::new());
    }

    let _ = page_token::parse_offset_token(&text, 1000);

    let _ = eventstream::decode(data);
    let (name, rest) = text.split_at(boundary(&text, text.len() / 3));
    let (value, payload) = rest.split_at(boundary(rest, rest.len() / 2));
    if let Ok(frame) = eventstream::message(&[(name, value)], payload.as_bytes()) {
        let (decoded, used) = eventstream::decode(&frame).expect("our own frame decodes");
        assert_eq!(used, frame.len());
        assert_eq!(decoded.headers, vec![(name.to_owned(), value.to_owned())]);
        assert_eq!(decoded.payload, payload.as_bytes());
    }
});

fn boundary(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}
