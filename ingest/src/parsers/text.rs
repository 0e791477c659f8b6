//! Plain text and Markdown: kept as they are (Markdown headings stay as `#` lines, which
//! chunkers treat as boundaries).

use quarry_core::{ParseError, ParsedDocument, Parser};

pub struct TextParser;
pub struct MarkdownParser;

impl Parser for TextParser {
    fn format(&self) -> &'static str {
        "txt"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        decode_text(bytes, "txt").map(ParsedDocument::plain)
    }
}

impl Parser for MarkdownParser {
    fn format(&self) -> &'static str {
        "md"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        decode_text(bytes, "md").map(ParsedDocument::plain)
    }
}

/// UTF-8 (with or without BOM) or UTF-16 with a BOM. NUL bytes mean binary content.
pub fn decode_text(bytes: &[u8], format: &'static str) -> Result<String, ParseError> {
    let malformed = |reason: String| ParseError::Malformed { format, reason };
    let text = if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        std::str::from_utf8(rest).map(str::to_owned)
    } else if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        let little = bytes[0] == 0xFF;
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|b| {
                if little {
                    u16::from_le_bytes([b[0], b[1]])
                } else {
                    u16::from_be_bytes([b[0], b[1]])
                }
            })
            .collect();
        return String::from_utf16(&units).map_err(|_| malformed("invalid UTF-16 text".into()));
    } else {
        std::str::from_utf8(bytes).map(str::to_owned)
    };
    let text = text.map_err(|e| {
        malformed(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    if text.contains('\0') {
        return Err(malformed("binary content (NUL bytes), not text".into()));
    }
    Ok(text.replace("\r\n", "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_utf8_with_bom_and_utf16() {
        assert_eq!(
            decode_text(b"\xEF\xBB\xBFcaf\xC3\xA9\r\nok", "txt").unwrap(),
            "café\nok"
        );
        assert_eq!(decode_text(b"\xFF\xFEh\0i\0", "txt").unwrap(), "hi");
    }

    #[test]
    fn refuses_binary_and_invalid_bytes_with_a_reason() {
        let e = decode_text(b"ab\xFFcd", "txt").unwrap_err();
        assert_eq!(
            e.to_string(),
            "malformed txt: not UTF-8 text (invalid byte at offset 2)"
        );
        let e = decode_text(b"PK\x03\x04\0\0", "txt").unwrap_err();
        assert!(e.to_string().contains("binary content"), "{e}");
    }
}
