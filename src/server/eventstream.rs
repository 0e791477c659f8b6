//! `application/vnd.amazon.eventstream` framing, as AWS streaming responses use it: a
//! prelude (total length, headers length, CRC32 of those 8 bytes), headers (name, type 7 =
//! string, value), the payload, and a CRC32 of everything before it. All big-endian.

/// One message: string headers and a payload.
pub fn message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut head = Vec::new();
    for (name, value) in headers {
        head.push(name.len() as u8);
        head.extend_from_slice(name.as_bytes());
        head.push(7);
        head.extend_from_slice(&(value.len() as u16).to_be_bytes());
        head.extend_from_slice(value.as_bytes());
    }
    let total = 12 + head.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(head.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    let message_crc = crc32fast::hash(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    out
}

/// An event of the response's stream (`:event-type` names the union member).
pub fn event(event_type: &str, payload: &serde_json::Value) -> Vec<u8> {
    message(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// An exception in the stream, e.g. `dependencyFailedException` (the union member's name).
pub fn exception(exception_type: &str, message_text: &str) -> Vec<u8> {
    message(
        &[
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        serde_json::json!({ "message": message_text })
            .to_string()
            .as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_a_message_with_lengths_and_checksums() {
        let m = message(&[(":event-type", "output")], b"{}");
        let total = u32::from_be_bytes(m[0..4].try_into().unwrap()) as usize;
        let headers = u32::from_be_bytes(m[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, m.len());
        assert_eq!(headers, 1 + 11 + 1 + 2 + 6);
        assert_eq!(
            u32::from_be_bytes(m[8..12].try_into().unwrap()),
            crc32fast::hash(&m[..8])
        );
        assert_eq!(&m[12..13], &[11]);
        assert_eq!(&m[13..24], b":event-type");
        assert_eq!(&m[12 + headers..total - 4], b"{}");
        assert_eq!(
            u32::from_be_bytes(m[total - 4..].try_into().unwrap()),
            crc32fast::hash(&m[..total - 4])
        );
    }
}
