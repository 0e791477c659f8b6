//! DOC (Word 97–2003): an OLE compound file (checked as XLS files are) whose `WordDocument`
//! stream begins with the FIB; the text is reassembled from the piece table (the `Clx` in
//! the `0Table`/`1Table` stream), each piece 8-bit (Windows-1252) or UTF-16. Paragraph
//! marks become line ends, table cell marks ` | `, field codes are dropped and their results
//! kept. The main document's text only (not headers, footnotes or comments).

use quarry_core::{ParseError, ParsedDocument, Parser};

use super::compound_file::Streams;

pub struct DocParser;

/// Characters read at most (a piece table may claim any size).
const MAX_CHARACTERS: u64 = 64 * 1024 * 1024;

fn malformed(reason: impl Into<String>) -> ParseError {
    ParseError::Malformed {
        format: "doc",
        reason: reason.into(),
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Windows-1252's 0x80–0x9F (the rest is Latin-1).
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
];

fn cp1252(b: u8) -> char {
    match b {
        0x80..=0x9F => CP1252_HIGH[(b - 0x80) as usize],
        _ => b as char,
    }
}

impl Parser for DocParser {
    fn format(&self) -> &'static str {
        "doc"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let streams =
            Streams::open(bytes).map_err(|r| malformed(format!("broken compound file: {r}")))?;
        let word = streams
            .stream("WordDocument")
            .map_err(|r| malformed(format!("broken compound file: {r}")))?
            .ok_or_else(|| malformed("no WordDocument stream: not a Word 97–2003 document"))?;
        let short = || malformed("the WordDocument stream is cut short");
        if u16_at(&word, 0).ok_or_else(short)? != 0xA5EC {
            return Err(malformed(
                "the WordDocument stream does not begin with a Word FIB",
            ));
        }
        let flags = u16_at(&word, 0x0A).ok_or_else(short)?;
        if flags & 0x0100 != 0 {
            return Err(malformed("encrypted: it needs a password to open"));
        }
        let table_name = if flags & 0x0200 != 0 {
            "1Table"
        } else {
            "0Table"
        };
        let table = streams
            .stream(table_name)
            .map_err(|r| malformed(format!("broken compound file: {r}")))?
            .ok_or_else(|| malformed(format!("no {table_name} stream")))?;
        let main_chars = u32_at(&word, 0x4C).ok_or_else(short)? as u64;
        let clx_at = u32_at(&word, 0x01A2).ok_or_else(short)? as usize;
        let clx_len = u32_at(&word, 0x01A6).ok_or_else(short)? as usize;
        let clx = table
            .get(clx_at..clx_at.saturating_add(clx_len))
            .ok_or_else(|| malformed("the piece table lies outside the table stream"))?;
        let pieces = piece_table(clx)?;
        let raw = text_of(&word, &pieces, main_chars.min(MAX_CHARACTERS))?;
        let text = clean(&raw);
        if text.trim().is_empty() {
            return Err(ParseError::Empty);
        }
        Ok(ParsedDocument::plain(text))
    }
}

/// One piece: characters `[cp_start, cp_end)` at `fc` in the WordDocument stream.
struct Piece {
    cp_start: u32,
    cp_end: u32,
    fc: u32,
    compressed: bool,
}

/// The `Pcdt` of a `Clx` (after any `Prc`s).
fn piece_table(clx: &[u8]) -> Result<Vec<Piece>, ParseError> {
    let bad = || malformed("the piece table is malformed");
    let mut at = 0;
    while clx.get(at) == Some(&0x01) {
        let len = u16_at(clx, at + 1).ok_or_else(bad)? as usize;
        at += 3 + len;
    }
    if clx.get(at) != Some(&0x02) {
        return Err(bad());
    }
    let len = u32_at(clx, at + 1).ok_or_else(bad)? as usize;
    let plc = clx.get(at + 5..at + 5 + len).ok_or_else(bad)?;
    if len < 4 || !(len - 4).is_multiple_of(12) {
        return Err(bad());
    }
    let n = (len - 4) / 12;
    let mut pieces = Vec::with_capacity(n);
    for i in 0..n {
        let cp_start = u32_at(plc, 4 * i).ok_or_else(bad)?;
        let cp_end = u32_at(plc, 4 * (i + 1)).ok_or_else(bad)?;
        let fc = u32_at(plc, 4 * (n + 1) + 8 * i + 2).ok_or_else(bad)?;
        if cp_end < cp_start {
            return Err(bad());
        }
        pieces.push(Piece {
            cp_start,
            cp_end,
            fc: fc & 0x3FFF_FFFF,
            compressed: fc & 0x4000_0000 != 0,
        });
    }
    Ok(pieces)
}

/// The first `chars` characters the pieces hold, in character order.
fn text_of(word: &[u8], pieces: &[Piece], chars: u64) -> Result<String, ParseError> {
    let mut out = String::new();
    for piece in pieces {
        if piece.cp_start as u64 >= chars {
            break;
        }
        let count = (piece.cp_end.min(chars as u32) - piece.cp_start) as usize;
        if piece.compressed {
            let start = piece.fc as usize / 2;
            let bytes = word
                .get(start..start + count)
                .ok_or_else(|| malformed("a piece lies outside the WordDocument stream"))?;
            out.extend(bytes.iter().map(|&b| cp1252(b)));
        } else {
            let start = piece.fc as usize;
            let bytes = word
                .get(start..start + 2 * count)
                .ok_or_else(|| malformed("a piece lies outside the WordDocument stream"))?;
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            out.push_str(&String::from_utf16_lossy(&units));
        }
    }
    Ok(out)
}

/// Word's control characters as text: paragraph and line ends as newlines, cell marks as
/// ` | ` (a cell mark right after another ends the table row), field codes dropped (their
/// results kept), object anchors and optional hyphens out.
fn clean(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut previous = '\0';
    // Fields nest: for each open field, whether we are past its separator (its result).
    let mut fields: Vec<bool> = Vec::new();
    for c in raw.chars() {
        match c {
            '\u{13}' => {
                fields.push(false);
                continue;
            }
            '\u{14}' => {
                if let Some(f) = fields.last_mut() {
                    *f = true;
                }
                continue;
            }
            '\u{15}' => {
                fields.pop();
                continue;
            }
            _ => {}
        }
        if fields.iter().any(|in_result| !in_result) {
            continue; // a field's code
        }
        let after_cell = previous == '\u{07}';
        previous = c;
        match c {
            '\r' | '\u{0B}' | '\u{0C}' => out.push('\n'),
            '\u{07}' if after_cell => out.push('\n'),
            '\u{07}' => out.push_str(" | "),
            '\u{1E}' => out.push('-'),
            '\u{A0}' => out.push(' '),
            '\u{01}' | '\u{08}' | '\u{1F}' | '\u{02}' | '\u{05}' => {}
            c => out.push(c),
        }
    }
    // A table row ends with a cell mark and a row mark: "a | b |  | " → "a | b".
    let mut text: String = out
        .lines()
        .map(|l| l.trim_end_matches([' ', '|']).trim_end())
        .collect::<Vec<_>>()
        .join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_text() {
        let raw = "Title\rSee \u{13} HYPERLINK \"http://x\" \u{14}the site\u{15} now.\rA\u{07}B\u{07}\u{07}C\u{07}D\u{07}\u{07}non\u{1E}breaking opt\u{1F}ional\r";
        assert_eq!(
            clean(raw),
            "Title\nSee the site now.\nA | B\nC | D\nnon-breaking optional\n"
        );
    }

    #[test]
    fn pieces_are_read_in_both_encodings() {
        // "Hi " as 8-bit at byte 0x200, "é!" as UTF-16 at 0x300.
        let mut word = vec![0u8; 0x400];
        word[0x200..0x203].copy_from_slice(b"Hi ");
        word[0x300..0x304].copy_from_slice(&[0xE9, 0x00, b'!', 0x00]);
        let pieces = [
            Piece {
                cp_start: 0,
                cp_end: 3,
                fc: 0x400,
                compressed: true,
            },
            Piece {
                cp_start: 3,
                cp_end: 5,
                fc: 0x300,
                compressed: false,
            },
        ];
        assert_eq!(text_of(&word, &pieces, 5).unwrap(), "Hi é!");
        assert_eq!(text_of(&word, &pieces, 4).unwrap(), "Hi é");
        assert_eq!(cp1252(0x93), '“');
    }
}
