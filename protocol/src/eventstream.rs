//! `application/vnd.amazon.eventstream` framing, as AWS streaming responses use it: a
//! prelude (total length, headers length, CRC32 of those 8 bytes), headers (name, type 7 =
//! string, value), the payload, and a CRC32 of everything before it. All big-endian.

/// A message that cannot be framed, or bytes that are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("header name of {0} bytes (at most 255)")]
    NameTooLong(usize),
    #[error("header value of {0} bytes (at most 65535)")]
    ValueTooLong(usize),
    #[error("message of {0} bytes (at most 16 MiB)")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

/// The largest message AWS's event streams carry.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// One message: string headers and a payload.
pub fn message(headers: &[(&str, &str)], payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut head = Vec::new();
    for (name, value) in headers {
        let name_len = u8::try_from(name.len()).map_err(|_| FrameError::NameTooLong(name.len()))?;
        let value_len =
            u16::try_from(value.len()).map_err(|_| FrameError::ValueTooLong(value.len()))?;
        head.push(name_len);
        head.extend_from_slice(name.as_bytes());
        head.push(7);
        head.extend_from_slice(&value_len.to_be_bytes());
        head.extend_from_slice(value.as_bytes());
    }
    let total = 12 + head.len() + payload.len() + 4;
    if total > MAX_MESSAGE_BYTES {
        return Err(FrameError::TooLarge(total));
    }
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(head.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    let message_crc = crc32fast::hash(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    Ok(out)
}

/// A decoded message: its string headers, in order, and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// Reads one message from the start of `bytes`; returns it and the bytes it took. Every
/// length and both checksums are checked; only string headers (type 7) are accepted.
pub fn decode(bytes: &[u8]) -> Result<(Decoded, usize), FrameError> {
    let be32 = |at: usize| -> Result<u32, FrameError> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(FrameError::Malformed("cut short"))
    };
    let total = be32(0)? as usize;
    let head_len = be32(4)? as usize;
    if total > MAX_MESSAGE_BYTES {
        return Err(FrameError::TooLarge(total));
    }
    if total < 16 || head_len > total - 16 || bytes.len() < total {
        return Err(FrameError::Malformed("lengths do not fit"));
    }
    if be32(8)? != crc32fast::hash(&bytes[..8]) {
        return Err(FrameError::Malformed("prelude checksum"));
    }
    if be32(total - 4)? != crc32fast::hash(&bytes[..total - 4]) {
        return Err(FrameError::Malformed("message checksum"));
    }
    let mut head = &bytes[12..12 + head_len];
    let mut headers = Vec::new();
    while let Some((&name_len, rest)) = head.split_first() {
        let name_len = name_len as usize;
        let (name, rest) = split(rest, name_len)?;
        let (kind, rest) = split(rest, 1)?;
        if kind[0] != 7 {
            return Err(FrameError::Malformed("a header that is not a string"));
        }
        let (len, rest) = split(rest, 2)?;
        let (value, rest) = split(rest, u16::from_be_bytes([len[0], len[1]]) as usize)?;
        let text = |b: &[u8]| {
            std::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|_| FrameError::Malformed("a header that is not UTF-8"))
        };
        headers.push((text(name)?, text(value)?));
        head = rest;
    }
    let payload = bytes[12 + head_len..total - 4].to_vec();
    Ok((Decoded { headers, payload }, total))
}

fn split(b: &[u8], n: usize) -> Result<(&[u8], &[u8]), FrameError> {
    if b.len() < n {
        Err(FrameError::Malformed("a header runs past the headers"))
    } else {
        Ok(b.split_at(n))
    }
}

/// An event of the response's stream (`:event-type` names the union member).
pub fn event(event_type: &'static str, payload: &serde_json::Value) -> Result<Vec<u8>, FrameError> {
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
pub fn exception(exception_type: &str, message_text: &str) -> Result<Vec<u8>, FrameError> {
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
        let m = message(&[(":event-type", "output")], b"{}").unwrap();
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
        let (decoded, used) = decode(&m).unwrap();
        assert_eq!(used, m.len());
        assert_eq!(
            decoded.headers,
            vec![(":event-type".to_owned(), "output".to_owned())]
        );
        assert_eq!(decoded.payload, b"{}");
    }

    /// A header name over 255 bytes was silently cut to its low byte, framing garbage.
    #[test]
    fn refuses_what_it_cannot_frame_and_frames_it_cannot_read() {
        let long = "n".repeat(256);
        assert_eq!(
            message(&[(long.as_str(), "v")], b""),
            Err(FrameError::NameTooLong(256))
        );
        let value = "v".repeat(70_000);
        assert_eq!(
            message(&[("n", value.as_str())], b""),
            Err(FrameError::ValueTooLong(70_000))
        );
        let good = message(&[("a", "b")], b"payload").unwrap();
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = good.clone();
        flipped[14] ^= 1;
        assert!(decode(&flipped).is_err());
    }
}
