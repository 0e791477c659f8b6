//! CMaps: the `/ToUnicode` maps that say which text each character code stands for (`bfchar`,
//! `bfrange`), and the encoding CMaps of composite fonts that say how a string splits into
//! codes (`codespacerange`) and which CID each code selects (`cidchar`, `cidrange`).

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Hex(Vec<u8>),
    Int(i64),
    Keyword(String),
    ArrayStart,
    ArrayEnd,
    Other,
}

fn tokens(data: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        match b {
            b'%' => {
                while i < data.len() && data[i] != b'\n' && data[i] != b'\r' {
                    i += 1;
                }
            }
            b'<' if data.get(i + 1) == Some(&b'<') => {
                out.push(Token::Other);
                i += 2;
            }
            b'<' => {
                let end = data[i..].iter().position(|&c| c == b'>').map(|p| i + p);
                let end = end.unwrap_or(data.len());
                let digits: Vec<u8> = data[i + 1..end]
                    .iter()
                    .filter(|c| c.is_ascii_hexdigit())
                    .map(|&c| (c as char).to_digit(16).unwrap_or(0) as u8)
                    .collect();
                let bytes = digits
                    .chunks(2)
                    .map(|pair| pair[0] << 4 | pair.get(1).copied().unwrap_or(0))
                    .collect();
                out.push(Token::Hex(bytes));
                i = end + 1;
            }
            b'[' => {
                out.push(Token::ArrayStart);
                i += 1;
            }
            b']' => {
                out.push(Token::ArrayEnd);
                i += 1;
            }
            b'(' => {
                let mut depth = 0;
                while i < data.len() {
                    match data[i] {
                        b'\\' => i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                out.push(Token::Other);
                i += 1;
            }
            b if b.is_ascii_whitespace() || b == 0 => i += 1,
            _ => {
                let start = i;
                i += 1;
                while i < data.len()
                    && !data[i].is_ascii_whitespace()
                    && !b"<>[]()/%{}".contains(&data[i])
                {
                    i += 1;
                }
                let word = String::from_utf8_lossy(&data[start..i]).into_owned();
                out.push(match word.parse::<i64>() {
                    Ok(n) => Token::Int(n),
                    Err(_) => Token::Keyword(word),
                });
            }
        }
    }
    out
}

fn code_of(bytes: &[u8]) -> Option<(u8, u32)> {
    (1..=4).contains(&bytes.len()).then(|| {
        (
            bytes.len() as u8,
            bytes.iter().fold(0u32, |acc, &b| acc << 8 | b as u32),
        )
    })
}

/// UTF-16BE bytes as text (unpaired surrogates dropped).
fn utf16_text(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|p| u16::from_be_bytes([p[0], p.get(1).copied().unwrap_or(0)]))
        .collect();
    char::decode_utf16(units).filter_map(Result::ok).collect()
}

#[derive(Debug)]
struct TextRange {
    len: u8,
    lo: u32,
    hi: u32,
    /// UTF-16BE of the first code's text; later codes add to its last unit.
    start: Vec<u8>,
    /// Or one text per code.
    each: Vec<String>,
}

#[derive(Debug)]
struct CidRange {
    len: u8,
    lo: u32,
    hi: u32,
    cid: u32,
}

/// A parsed CMap: any of code space, text per code, and CID per code.
#[derive(Debug, Default)]
pub struct CMap {
    codespace: Vec<(u8, u32, u32)>,
    text: HashMap<(u8, u32), String>,
    text_ranges: Vec<TextRange>,
    cids: Vec<CidRange>,
}

/// Longest range a map expands: larger ranges are looked up without expansion.
const EXPAND_LIMIT: u32 = 256;

impl CMap {
    pub fn parse(data: &[u8]) -> CMap {
        let tokens = tokens(data);
        let mut map = CMap::default();
        let mut i = 0;
        while i < tokens.len() {
            let section = match &tokens[i] {
                Token::Keyword(w) => w.as_str(),
                _ => "",
            };
            i += 1;
            match section {
                "begincodespacerange" => {
                    while let (Some(Token::Hex(lo)), Some(Token::Hex(hi))) =
                        (tokens.get(i), tokens.get(i + 1))
                    {
                        if let (Some((len, lo)), Some((_, hi))) = (code_of(lo), code_of(hi)) {
                            map.codespace.push((len, lo, hi));
                        }
                        i += 2;
                    }
                }
                "beginbfchar" => {
                    while let (Some(Token::Hex(code)), Some(Token::Hex(dst))) =
                        (tokens.get(i), tokens.get(i + 1))
                    {
                        if let Some(code) = code_of(code) {
                            map.text.insert(code, utf16_text(dst));
                        }
                        i += 2;
                    }
                }
                "beginbfrange" => {
                    while let (Some(Token::Hex(lo)), Some(Token::Hex(hi))) =
                        (tokens.get(i), tokens.get(i + 1))
                    {
                        i += 2;
                        let range = code_of(lo).zip(code_of(hi));
                        match tokens.get(i) {
                            Some(Token::Hex(dst)) => {
                                if let Some(((len, lo), (_, hi))) = range {
                                    map.add_text_range(len, lo, hi, dst.clone(), Vec::new());
                                }
                                i += 1;
                            }
                            Some(Token::ArrayStart) => {
                                i += 1;
                                let mut each = Vec::new();
                                while let Some(Token::Hex(dst)) = tokens.get(i) {
                                    each.push(utf16_text(dst));
                                    i += 1;
                                }
                                if tokens.get(i) == Some(&Token::ArrayEnd) {
                                    i += 1;
                                }
                                if let Some(((len, lo), (_, hi))) = range {
                                    map.add_text_range(len, lo, hi, Vec::new(), each);
                                }
                            }
                            _ => break,
                        }
                    }
                }
                "begincidrange" => {
                    while let (Some(Token::Hex(lo)), Some(Token::Hex(hi)), Some(Token::Int(cid))) =
                        (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2))
                    {
                        if let (Some((len, lo)), Some((_, hi))) = (code_of(lo), code_of(hi)) {
                            map.cids.push(CidRange {
                                len,
                                lo,
                                hi,
                                cid: (*cid).max(0) as u32,
                            });
                        }
                        i += 3;
                    }
                }
                "begincidchar" => {
                    while let (Some(Token::Hex(code)), Some(Token::Int(cid))) =
                        (tokens.get(i), tokens.get(i + 1))
                    {
                        if let Some((len, code)) = code_of(code) {
                            map.cids.push(CidRange {
                                len,
                                lo: code,
                                hi: code,
                                cid: (*cid).max(0) as u32,
                            });
                        }
                        i += 2;
                    }
                }
                _ => {}
            }
        }
        map
    }

    fn add_text_range(&mut self, len: u8, lo: u32, hi: u32, start: Vec<u8>, each: Vec<String>) {
        if hi < lo {
            return;
        }
        if hi - lo < EXPAND_LIMIT {
            for code in lo..=hi {
                let offset = (code - lo) as usize;
                let text = if start.is_empty() {
                    match each.get(offset) {
                        Some(t) => t.clone(),
                        None => continue,
                    }
                } else {
                    utf16_text(&offset_utf16(&start, code - lo))
                };
                self.text.insert((len, code), text);
            }
        } else {
            self.text_ranges.push(TextRange {
                len,
                lo,
                hi,
                start,
                each,
            });
        }
    }

    /// How many bytes the next code in `bytes` takes, by the code space ranges; two bytes
    /// when the map declares none.
    pub fn code_length(&self, bytes: &[u8]) -> usize {
        if self.codespace.is_empty() {
            return 2.min(bytes.len()).max(1);
        }
        for n in 1..=4.min(bytes.len()) {
            let (_, code) = code_of(&bytes[..n]).unwrap_or((0, 0));
            if self
                .codespace
                .iter()
                .any(|&(len, lo, hi)| len as usize == n && (lo..=hi).contains(&code))
            {
                return n;
            }
        }
        // Not in any range: skip as many bytes as the shortest range takes.
        let shortest = self.codespace.iter().map(|r| r.0 as usize).min();
        shortest.unwrap_or(1).clamp(1, bytes.len().max(1))
    }

    /// Appends the text of a code to `out`; false when the map has none for it.
    pub fn text_into(&self, len: u8, code: u32, out: &mut String) -> bool {
        if let Some(text) = self.text.get(&(len, code)) {
            out.push_str(text);
            return true;
        }
        let Some(range) = self
            .text_ranges
            .iter()
            .find(|r| r.len == len && (r.lo..=r.hi).contains(&code))
        else {
            return false;
        };
        if range.start.is_empty() {
            match range.each.get((code - range.lo) as usize) {
                Some(text) => out.push_str(text),
                None => return false,
            }
        } else {
            out.push_str(&utf16_text(&offset_utf16(&range.start, code - range.lo)));
        }
        true
    }

    #[cfg(test)]
    fn text(&self, len: u8, code: u32) -> Option<String> {
        let mut out = String::new();
        self.text_into(len, code, &mut out).then_some(out)
    }

    pub fn has_text(&self) -> bool {
        !self.text.is_empty() || !self.text_ranges.is_empty()
    }

    pub fn cid(&self, len: u8, code: u32) -> Option<u32> {
        self.cids
            .iter()
            .find(|r| r.len == len && (r.lo..=r.hi).contains(&code))
            .map(|r| r.cid + (code - r.lo))
    }
}

/// The UTF-16BE `start` with `offset` added to its last code unit (how `bfrange` counts).
fn offset_utf16(start: &[u8], offset: u32) -> Vec<u8> {
    let mut out = start.to_vec();
    if out.len() >= 2 {
        let n = out.len();
        let last = u16::from_be_bytes([out[n - 2], out[n - 1]]).wrapping_add(offset as u16);
        out[n - 2..].copy_from_slice(&last.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TO_UNICODE: &[u8] = br"/CIDInit /ProcSet findresource begin
12 dict begin begincmap
/CMapName /Adobe-Identity-UCS def
1 begincodespacerange <0000> <FFFF> endcodespacerange
3 beginbfchar
<0003> <0020>
<0011> <0416>
<0012> <00660069>
endbfchar
2 beginbfrange
<0020> <0022> <0430>
<0030> <0031> [<0628> <062A>]
endbfrange
1 beginbfrange <1000> <1FFF> <4E00> endbfrange
endcmap CMapName currentdict /CMap defineresource pop end end";

    #[test]
    fn maps_codes_to_text_through_chars_and_ranges() {
        let map = CMap::parse(TO_UNICODE);
        assert_eq!(map.text(2, 0x0011).as_deref(), Some("Ж"));
        assert_eq!(map.text(2, 0x0012).as_deref(), Some("fi"));
        assert_eq!(map.text(2, 0x0022).as_deref(), Some("в"));
        assert_eq!(map.text(2, 0x0031).as_deref(), Some("ت"));
        assert_eq!(map.text(2, 0x1001).as_deref(), Some("丁"));
        assert_eq!(map.text(2, 0x0500), None);
        assert_eq!(map.text(1, 0x11), None);
        assert_eq!(map.code_length(&[0, 0x11, 0, 0x12]), 2);
    }

    #[test]
    fn splits_mixed_length_codes_and_finds_cids() {
        let map = CMap::parse(
            b"2 begincodespacerange <00> <80> <8140> <FEFE> endcodespacerange
             1 begincidrange <8140> <817E> 633 endcidrange
             1 begincidchar <41> 34 endcidchar",
        );
        assert_eq!(map.code_length(b"A\x81\x40"), 1);
        assert_eq!(map.code_length(b"\x81\x41"), 2);
        assert_eq!(map.cid(2, 0x8141), Some(634));
        assert_eq!(map.cid(1, 0x41), Some(34));
        assert_eq!(map.cid(1, 0x42), None);
    }

    #[test]
    fn survives_garbage() {
        let map = CMap::parse(b"beginbfrange <00> [ <0041 endbfrange ( unbalanced \\) <<");
        assert_eq!(map.text(1, 0), None);
        let map = CMap::parse(b"beginbfchar <> <0041> <0102030405> <0042> endbfchar");
        assert!(!map.has_text());
    }
}
