//! Fonts as text extraction needs them: how a shown string splits into character codes, the
//! text each code stands for (`/ToUnicode` first, then the font's encoding), and each glyph's
//! advance width, so the layout can tell where words and lines break.

use std::collections::HashMap;

use lopdf::{Dictionary, Document, Object};

use super::cmap::CMap;
use super::encodings::{CodeTable, base_encoding, glyph_char, type1_builtin_encoding};
use super::objects::{dict, number, resolve, stream_data};

/// One character code of a shown string.
pub struct Code {
    /// Advance in text space units per unit of font size.
    pub width: f32,
    /// A single-byte code 32, which word spacing (`Tw`) applies to.
    pub word_space: bool,
}

enum Codes {
    /// One byte per code, with text from the encoding.
    Simple(Box<CodeTable>),
    /// Composite font: codes split by the encoding CMap (Identity: two bytes).
    Composite {
        cmap: Option<CMap>,
        /// The encoding's codes are Unicode (UCS-2 / UTF-16 CMaps).
        unicode: bool,
    },
}

pub struct Font {
    codes: Codes,
    to_unicode: Option<CMap>,
    widths: HashMap<u32, f32>,
    default_width: f32,
    /// Glyph space to text space: 1/1000, or a Type 3 font's matrix.
    scale: f32,
}

/// Width of glyphs a font gives none for (in 1/1000 em): a typical text glyph.
const FALLBACK_WIDTH: f32 = 500.0;
/// At most this many CID widths are kept per font, against absurd `/W` ranges.
const MAX_WIDTH_ENTRIES: usize = 70_000;

impl Font {
    pub fn load(doc: &Document, font: &Dictionary, limit: usize) -> Font {
        let subtype = font
            .get(b"Subtype")
            .and_then(Object::as_name)
            .unwrap_or(b"");
        let to_unicode = font
            .get(b"ToUnicode")
            .ok()
            .and_then(|o| stream_data(doc, o, limit))
            .map(|data| CMap::parse(&data))
            .filter(CMap::has_text);
        if subtype == b"Type0" {
            Self::composite(doc, font, to_unicode, limit)
        } else {
            Self::simple(doc, font, subtype, to_unicode, limit)
        }
    }

    fn simple(
        doc: &Document,
        font: &Dictionary,
        subtype: &[u8],
        to_unicode: Option<CMap>,
        limit: usize,
    ) -> Font {
        let descriptor = font.get(b"FontDescriptor").ok().and_then(|o| dict(doc, o));
        let builtin = || {
            let program = descriptor?.get(b"FontFile").ok()?;
            type1_builtin_encoding(&stream_data(doc, program, limit)?)
        };
        let symbolic = descriptor
            .and_then(|d| d.get(b"Flags").ok())
            .and_then(|f| f.as_i64().ok())
            .is_some_and(|flags| flags & 4 != 0);
        let encoding = font.get(b"Encoding").ok().map(|o| resolve(doc, o));
        let (base_name, differences) = match encoding {
            Some(Object::Name(name)) => (Some(name.as_slice()), None),
            Some(Object::Dictionary(d)) => (
                d.get(b"BaseEncoding").and_then(Object::as_name).ok(),
                d.get(b"Differences").ok().map(|o| resolve(doc, o)),
            ),
            _ => (None, None),
        };
        let mut table = base_name
            .and_then(base_encoding)
            .or_else(builtin)
            .or_else(|| {
                // Without any encoding, a symbolic TrueType font's codes are its own; text
                // fonts use the standard one.
                match (symbolic, subtype) {
                    (true, b"TrueType") => None,
                    (_, b"TrueType") => base_encoding(b"WinAnsiEncoding"),
                    _ => base_encoding(b"StandardEncoding"),
                }
            })
            .unwrap_or_else(|| {
                std::array::from_fn(|i| char::from_u32(i as u32).filter(|c| !c.is_control()))
            });
        if let Some(Object::Array(items)) = differences {
            let mut code = 0usize;
            for item in items {
                match resolve(doc, item) {
                    Object::Integer(n) => code = (*n).clamp(0, 255) as usize,
                    Object::Name(name) => {
                        if code < 256 {
                            let name = String::from_utf8_lossy(name);
                            table[code] = glyph_char(&name).or_else(|| numbered_glyph(&name));
                        }
                        code += 1;
                    }
                    _ => {}
                }
            }
        }
        let first = font
            .get(b"FirstChar")
            .ok()
            .and_then(|o| number(doc, o))
            .unwrap_or(0.0)
            .max(0.0) as u32;
        let mut widths = HashMap::new();
        if let Some(Object::Array(list)) = font.get(b"Widths").ok().map(|o| resolve(doc, o)) {
            for (i, w) in list.iter().take(256).enumerate() {
                if let Some(w) = number(doc, w) {
                    widths.insert(first + i as u32, w);
                }
            }
        }
        let missing = descriptor
            .and_then(|d| d.get(b"MissingWidth").ok())
            .and_then(|o| number(doc, o))
            .filter(|&w| w > 0.0);
        let scale = if subtype == b"Type3" {
            font.get(b"FontMatrix")
                .ok()
                .and_then(|m| match resolve(doc, m) {
                    Object::Array(m) => m.first().and_then(|a| number(doc, a)),
                    _ => None,
                })
                .filter(|s| s.is_finite() && *s != 0.0)
                .map(f32::abs)
                .unwrap_or(0.001)
        } else {
            0.001
        };
        Font {
            codes: Codes::Simple(Box::new(table)),
            to_unicode,
            widths,
            default_width: missing.unwrap_or(if subtype == b"Type3" {
                0.0
            } else {
                FALLBACK_WIDTH
            }),
            scale,
        }
    }

    fn composite(
        doc: &Document,
        font: &Dictionary,
        to_unicode: Option<CMap>,
        limit: usize,
    ) -> Font {
        let encoding = font.get(b"Encoding").ok();
        let (cmap, unicode) = match encoding.map(|o| resolve(doc, o)) {
            Some(Object::Name(name)) => {
                let name = String::from_utf8_lossy(name);
                (None, name.contains("UCS2") || name.contains("UTF16"))
            }
            Some(Object::Stream(_)) => (
                encoding
                    .and_then(|o| stream_data(doc, o, limit))
                    .map(|data| CMap::parse(&data)),
                false,
            ),
            _ => (None, false),
        };
        let descendant = font
            .get(b"DescendantFonts")
            .ok()
            .and_then(|o| match resolve(doc, o) {
                Object::Array(a) => a.first().and_then(|f| dict(doc, f)),
                _ => None,
            });
        let default_width = descendant
            .and_then(|d| d.get(b"DW").ok())
            .and_then(|o| number(doc, o))
            .unwrap_or(1000.0);
        let mut widths = HashMap::new();
        if let Some(Object::Array(w)) = descendant
            .and_then(|d| d.get(b"W").ok())
            .map(|o| resolve(doc, o))
        {
            read_cid_widths(doc, w, &mut widths);
        }
        Font {
            codes: Codes::Composite { cmap, unicode },
            to_unicode,
            widths,
            default_width,
            scale: 0.001,
        }
    }

    /// Calls `each` for every code in a shown string with its text appended to `text` first
    /// (nothing when the font gives no text for it).
    pub fn decode(&self, bytes: &[u8], text: &mut String, mut each: impl FnMut(&mut String, Code)) {
        let mut i = 0;
        while i < bytes.len() {
            let len = match &self.codes {
                Codes::Simple(_) => 1,
                Codes::Composite {
                    cmap: Some(cmap), ..
                } => cmap.code_length(&bytes[i..]),
                Codes::Composite { cmap: None, .. } => 2.min(bytes.len() - i),
            };
            let raw = &bytes[i..i + len];
            i += len;
            let code = raw.iter().fold(0u32, |acc, &b| acc << 8 | b as u32);
            let found = self
                .to_unicode
                .as_ref()
                .is_some_and(|map| map.text_into(len as u8, code, text));
            let cid = match &self.codes {
                Codes::Simple(table) => {
                    if !found && let Some(c) = table[code as usize & 0xFF] {
                        text.push(c);
                    }
                    code
                }
                Codes::Composite { cmap, unicode } => {
                    if !found
                        && *unicode
                        && let Some(c) = char::from_u32(code)
                    {
                        text.push(c);
                    }
                    cmap.as_ref()
                        .and_then(|m| m.cid(len as u8, code))
                        .unwrap_or(code)
                }
            };
            let width = self.widths.get(&cid).copied().unwrap_or(self.default_width) * self.scale;
            each(
                text,
                Code {
                    width,
                    word_space: len == 1 && code == 32,
                },
            );
        }
    }
}

/// Glyph names that are a letter or two and the character code in decimal (`a97`, `g65`,
/// `Cn32`), as bitmap fonts made by dvips and some converters name their glyphs.
fn numbered_glyph(name: &str) -> Option<char> {
    let digits = name.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let letters = name.len() - digits.len();
    if !(1..=2).contains(&letters) || !(2..=3).contains(&digits.len()) {
        return None;
    }
    let code: u32 = digits.parse().ok()?;
    (32..=255)
        .contains(&code)
        .then(|| char::from_u32(code))
        .flatten()
        .filter(|c| !c.is_control())
}

/// A CIDFont's `/W` array: `c [w1 w2 …]` gives widths from CID c on, `c_first c_last w` one
/// width for a range.
fn read_cid_widths(doc: &Document, w: &[Object], widths: &mut HashMap<u32, f32>) {
    let mut i = 0;
    while i < w.len() && widths.len() < MAX_WIDTH_ENTRIES {
        let Some(first) = number(doc, &w[i]) else {
            break;
        };
        let first = first.max(0.0) as u32;
        match w.get(i + 1).map(|o| resolve(doc, o)) {
            Some(Object::Array(list)) => {
                for (k, width) in list.iter().enumerate() {
                    if let Some(width) = number(doc, width) {
                        widths.insert(first + k as u32, width);
                    }
                }
                i += 2;
            }
            Some(last) => {
                let (Some(last), Some(width)) =
                    (number(doc, last), w.get(i + 2).and_then(|o| number(doc, o)))
                else {
                    break;
                };
                let last = (last.max(0.0) as u32).min(first + MAX_WIDTH_ENTRIES as u32);
                for cid in first..=last {
                    widths.insert(cid, width);
                }
                i += 3;
            }
            None => break,
        }
    }
}
