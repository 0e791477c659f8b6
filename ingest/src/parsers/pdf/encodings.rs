//! The single-byte encodings of simple fonts: the PDF's named base encodings, and glyph names
//! (from `/Differences` or an embedded Type 1 font's own encoding) turned into Unicode through
//! the Adobe Glyph List and its naming conventions (`uniXXXX`, `uXXXXX`, `f_f_i`, `a.sc`).

use std::collections::HashMap;
use std::sync::OnceLock;

/// Unicode text for each of the 256 codes of a simple font (`None`: no known character).
pub type CodeTable = [Option<char>; 256];

/// WinAnsiEncoding's codes 0x80..=0x9F (Windows-1252); `\0` where nothing is assigned.
const WIN_ANSI_80: &str = "€\0‚ƒ„…†‡ˆ‰Š‹Œ\0Ž\0\0‘’“”•–—˜™š›œ\0žŸ";

/// MacRomanEncoding's codes 0x80..=0xFF.
const MAC_ROMAN_80: &str = "ÄÅÇÉÑÖÜáàâäãåçéèêëíìîïñóòôöõúùûü†°¢£§•¶ß®©™´¨≠ÆØ∞±≤≥¥µ∂∑∏π∫ªºΩæø¿¡¬√ƒ≈∆«»…\u{A0}ÀÃÕŒœ–—“”‘’÷◊ÿŸ⁄€‹›ﬁﬂ‡·‚„‰ÂÊÁËÈÍÎÏÌÓÔ\u{F8FF}ÒÚÛÙıˆ˜¯˘˙˚¸˝˛ˇ";

/// StandardEncoding's codes above 0x7E that hold a glyph.
const STANDARD_HIGH: &[(u8, char)] = &[
    (0xA1, '¡'),
    (0xA2, '¢'),
    (0xA3, '£'),
    (0xA4, '⁄'),
    (0xA5, '¥'),
    (0xA6, 'ƒ'),
    (0xA7, '§'),
    (0xA8, '¤'),
    (0xA9, '\''),
    (0xAA, '“'),
    (0xAB, '«'),
    (0xAC, '‹'),
    (0xAD, '›'),
    (0xAE, 'ﬁ'),
    (0xAF, 'ﬂ'),
    (0xB1, '–'),
    (0xB2, '†'),
    (0xB3, '‡'),
    (0xB4, '·'),
    (0xB6, '¶'),
    (0xB7, '•'),
    (0xB8, '‚'),
    (0xB9, '„'),
    (0xBA, '”'),
    (0xBB, '»'),
    (0xBC, '…'),
    (0xBD, '‰'),
    (0xBF, '¿'),
    (0xC1, '`'),
    (0xC2, '´'),
    (0xC3, 'ˆ'),
    (0xC4, '˜'),
    (0xC5, '¯'),
    (0xC6, '˘'),
    (0xC7, '˙'),
    (0xC8, '¨'),
    (0xCA, '˚'),
    (0xCB, '¸'),
    (0xCD, '˝'),
    (0xCE, '˛'),
    (0xCF, 'ˇ'),
    (0xD0, '—'),
    (0xE1, 'Æ'),
    (0xE3, 'ª'),
    (0xE8, 'Ł'),
    (0xE9, 'Ø'),
    (0xEA, 'Œ'),
    (0xEB, 'º'),
    (0xF1, 'æ'),
    (0xF5, 'ı'),
    (0xF8, 'ł'),
    (0xF9, 'ø'),
    (0xFA, 'œ'),
    (0xFB, 'ß'),
];

fn ascii_table() -> CodeTable {
    let mut table = [None; 256];
    for code in 0x20u8..=0x7E {
        table[code as usize] = Some(code as char);
    }
    table
}

/// A base encoding by its PDF name; `None` for names this parser does not know.
pub fn base_encoding(name: &[u8]) -> Option<CodeTable> {
    let mut table = ascii_table();
    match name {
        b"StandardEncoding" => {
            table[0x27] = Some('’');
            table[0x60] = Some('‘');
            for &(code, c) in STANDARD_HIGH {
                table[code as usize] = Some(c);
            }
        }
        b"WinAnsiEncoding" | b"PDFDocEncoding" => {
            for (i, c) in WIN_ANSI_80.chars().enumerate() {
                table[0x80 + i] = (c != '\0').then_some(c);
            }
            for (code, slot) in table.iter_mut().enumerate().skip(0xA0) {
                *slot = char::from_u32(code as u32);
            }
            table[0xA0] = Some(' ');
            table[0xAD] = Some('-');
        }
        b"MacRomanEncoding" => {
            for (i, c) in MAC_ROMAN_80.chars().enumerate() {
                table[0x80 + i] = Some(c);
            }
        }
        _ => return None,
    }
    Some(table)
}

fn glyph_list() -> &'static HashMap<&'static str, char> {
    static LIST: OnceLock<HashMap<&'static str, char>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("glyphlist.txt")
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (name, codes) = line.split_once(';')?;
                // A few entries list several code points; the first is the character.
                let first = codes.split(' ').next()?;
                Some((name, char::from_u32(u32::from_str_radix(first, 16).ok()?)?))
            })
            .collect()
    })
}

fn hex_chars(hex: &str, width: usize, out: &mut String) -> bool {
    if hex.is_empty()
        || !hex.len().is_multiple_of(width)
        || !hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return false;
    }
    let start = out.len();
    for i in (0..hex.len()).step_by(width) {
        match u32::from_str_radix(&hex[i..i + width], 16)
            .ok()
            .and_then(char::from_u32)
        {
            Some(c) => out.push(c),
            None => {
                out.truncate(start);
                return false;
            }
        }
    }
    true
}

/// The text a glyph name stands for, following the Adobe Glyph List's rules: the part before
/// the first `.` counts, `_` joins ligature components, `uniXXXX…` and `uXXXX[XX]` name code
/// points; other names come from the list itself.
pub fn glyph_text(name: &str) -> Option<String> {
    let name = name.split('.').next().unwrap_or(name);
    let mut out = String::new();
    for part in name.split('_') {
        if let Some(&c) = glyph_list().get(part) {
            out.push(c);
        } else if let Some(hex) = part.strip_prefix("uni") {
            if !hex_chars(hex, 4, &mut out) {
                return None;
            }
        } else if let Some(hex) = part.strip_prefix('u') {
            if !(4..=6).contains(&hex.len()) || !hex_chars(hex, hex.len(), &mut out) {
                return None;
            }
        } else {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The first character of a glyph name's text (simple fonts map one code to one character;
/// ligature names map to their presentation form where Unicode has one).
pub fn glyph_char(name: &str) -> Option<char> {
    match name {
        "ff" => Some('ﬀ'),
        "fi" | "f_i" => Some('ﬁ'),
        "fl" | "f_l" => Some('ﬂ'),
        "ffi" | "f_f_i" => Some('ﬃ'),
        "ffl" | "f_f_l" => Some('ﬄ'),
        "f_f" => Some('ﬀ'),
        _ => glyph_text(name).and_then(|t| {
            let mut chars = t.chars();
            let first = chars.next()?;
            chars.next().is_none().then_some(first)
        }),
    }
}

/// The encoding an embedded Type 1 font program declares for itself (`/Encoding
/// StandardEncoding def`, or `dup CODE /name put` entries), read from its clear-text part.
pub fn type1_builtin_encoding(program: &[u8]) -> Option<CodeTable> {
    let head = &program[..program.len().min(64 * 1024)];
    let text = String::from_utf8_lossy(head);
    let at = text.find("/Encoding")?;
    let rest = &text[at + "/Encoding".len()..];
    if rest.trim_start().starts_with("StandardEncoding") {
        return base_encoding(b"StandardEncoding");
    }
    let end = rest.find("readonly def").or_else(|| rest.find(" def"))?;
    let mut table = [None; 256];
    let mut tokens = rest[..end].split_whitespace();
    while let Some(token) = tokens.next() {
        if token != "dup" {
            continue;
        }
        let (Some(code), Some(name)) = (tokens.next(), tokens.next()) else {
            break;
        };
        if let (Ok(code), Some(name)) = (code.parse::<u8>(), name.strip_prefix('/')) {
            table[code as usize] = glyph_char(name);
        }
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_encodings_cover_their_ranges() {
        assert_eq!(WIN_ANSI_80.chars().count(), 32);
        assert_eq!(MAC_ROMAN_80.chars().count(), 128);
        let win = base_encoding(b"WinAnsiEncoding").unwrap();
        assert_eq!(win[0x93], Some('“'));
        assert_eq!(win[0xE9], Some('é'));
        let standard = base_encoding(b"StandardEncoding").unwrap();
        assert_eq!(standard[0x27], Some('’'));
        assert_eq!(standard[0xAE], Some('ﬁ'));
        assert_eq!(base_encoding(b"MacRomanEncoding").unwrap()[0x8E], Some('é'));
        assert!(base_encoding(b"Nonsense").is_none());
    }

    #[test]
    fn glyph_names_follow_the_glyph_list_conventions() {
        assert_eq!(glyph_char("quoteright"), Some('’'));
        assert_eq!(glyph_char("eacute"), Some('é'));
        assert_eq!(glyph_char("afii10017"), Some('А'));
        assert_eq!(glyph_char("uni0416"), Some('Ж'));
        assert_eq!(glyph_char("u1F600"), Some('😀'));
        assert_eq!(glyph_char("a.sc"), Some('a'));
        assert_eq!(glyph_char("f_f_i"), Some('ﬃ'));
        assert_eq!(glyph_text("T_h").as_deref(), Some("Th"));
        assert_eq!(glyph_char("g123"), None);
        assert_eq!(glyph_char("uniZZZZ"), None);
    }

    #[test]
    fn reads_a_type1_fonts_own_encoding() {
        let program = b"%!PS-AdobeFont-1.0: CMR10\n/Encoding 256 array\n0 1 255 {1 index exch /.notdef put} for\ndup 12 /fi put\ndup 65 /A put\nreadonly def\ncurrentdict end\n";
        let table = type1_builtin_encoding(program).unwrap();
        assert_eq!(table[12], Some('ﬁ'));
        assert_eq!(table[65], Some('A'));
        assert_eq!(table[66], None);
        let standard = b"/Encoding StandardEncoding def\n";
        assert_eq!(type1_builtin_encoding(standard).unwrap()[0x60], Some('‘'));
    }
}
