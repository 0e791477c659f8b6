//! The size an image announces in its header, read before anything decodes it: an image of
//! a few kilobytes may claim billions of pixels (a decompression bomb). PNG, JPEG, GIF, BMP,
//! WebP and TIFF (every page).

/// An image's format and the size of each of its pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub format: &'static str,
    /// Width and height of each page (one for every format but TIFF).
    pub pages: Vec<(u64, u64)>,
}

/// Pages of a TIFF read at most (its directories are a linked list a file may loop).
const MAX_TIFF_PAGES: usize = 10_000;

fn be16(b: &[u8], at: usize) -> Option<u64> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?) as u64)
}
fn le16(b: &[u8], at: usize) -> Option<u64> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as u64)
}
fn be32(b: &[u8], at: usize) -> Option<u64> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as u64)
}
fn le32(b: &[u8], at: usize) -> Option<u64> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as u64)
}
fn le24(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 3)?;
    Some(s[0] as u64 | (s[1] as u64) << 8 | (s[2] as u64) << 16)
}

/// The image format of these bytes, by signature.
pub fn format_of(bytes: &[u8]) -> Option<&'static str> {
    Some(match bytes {
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => "png",
        [0xFF, 0xD8, 0xFF, ..] => "jpeg",
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => "gif",
        // "BM" alone begins text too: the reserved bytes are zero and the header is a known size.
        [
            b'B',
            b'M',
            _,
            _,
            _,
            _,
            0,
            0,
            0,
            0,
            _,
            _,
            _,
            _,
            12 | 40 | 52 | 56 | 64 | 108 | 124,
            0,
            0,
            0,
            ..,
        ] => "bmp",
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => "webp",
        [b'I', b'I', 42, 0, ..] | [b'M', b'M', 0, 42, ..] => "tiff",
        _ => return None,
    })
}

/// What the header says, or why it cannot be read.
pub fn announced(bytes: &[u8]) -> Result<Announced, String> {
    let format = format_of(bytes)
        .ok_or("not an image of a known format (PNG, JPEG, TIFF, BMP, GIF, WebP)")?;
    let truncated = || format!("{format} header is truncated or malformed");
    let page = match format {
        "png" => {
            if bytes.get(12..16) != Some(b"IHDR") {
                return Err(truncated());
            }
            (be32(bytes, 16), be32(bytes, 20))
        }
        "gif" => (le16(bytes, 6), le16(bytes, 8)),
        "bmp" => match le32(bytes, 14) {
            Some(12) => (le16(bytes, 18), le16(bytes, 20)),
            Some(_) => (
                le32(bytes, 18).map(|w| (w as u32 as i32).unsigned_abs() as u64),
                le32(bytes, 22).map(|h| (h as u32 as i32).unsigned_abs() as u64),
            ),
            None => (None, None),
        },
        "webp" => match bytes.get(12..16) {
            Some(b"VP8 ") => (
                le16(bytes, 26).map(|w| w & 0x3FFF),
                le16(bytes, 28).map(|h| h & 0x3FFF),
            ),
            Some(b"VP8L") => match le32(bytes, 21) {
                Some(bits) => (Some((bits & 0x3FFF) + 1), Some(((bits >> 14) & 0x3FFF) + 1)),
                None => (None, None),
            },
            Some(b"VP8X") => (
                le24(bytes, 24).map(|w| w + 1),
                le24(bytes, 27).map(|h| h + 1),
            ),
            _ => (None, None),
        },
        "jpeg" => jpeg_size(bytes),
        "tiff" => {
            let pages = tiff_pages(bytes).ok_or_else(truncated)?;
            return Ok(Announced { format, pages });
        }
        _ => unreachable!("every format_of answer is handled"),
    };
    match page {
        (Some(w), Some(h)) => Ok(Announced {
            format,
            pages: vec![(w, h)],
        }),
        _ => Err(truncated()),
    }
}

/// The frame header (SOFn) of a JPEG: its height and width.
fn jpeg_size(b: &[u8]) -> (Option<u64>, Option<u64>) {
    let mut at = 2;
    while at + 4 <= b.len() {
        if b[at] != 0xFF {
            return (None, None);
        }
        let marker = b[at + 1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        let is_frame = matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF);
        if is_frame {
            return (be16(b, at + 7), be16(b, at + 5));
        }
        if matches!(marker, 0xD8 | 0x01 | 0xD0..=0xD7) {
            at += 2;
            continue;
        }
        let Some(len) = be16(b, at + 2) else {
            break;
        };
        at += 2 + len as usize;
    }
    (None, None)
}

/// Width and height of every directory (page) of a TIFF.
fn tiff_pages(b: &[u8]) -> Option<Vec<(u64, u64)>> {
    let little = b.starts_with(b"II");
    let u16_at = |at| if little { le16(b, at) } else { be16(b, at) };
    let u32_at = |at| if little { le32(b, at) } else { be32(b, at) };
    let mut pages = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut ifd = u32_at(4)?;
    while ifd != 0 {
        if !seen.insert(ifd) || pages.len() >= MAX_TIFF_PAGES {
            return None;
        }
        let at = ifd as usize;
        let entries = u16_at(at)? as usize;
        let (mut width, mut height) = (None, None);
        for i in 0..entries {
            let e = at + 2 + i * 12;
            let tag = u16_at(e)?;
            let kind = u16_at(e + 2)?;
            let value = match kind {
                3 => u16_at(e + 8)?,
                4 => u32_at(e + 8)?,
                _ => continue,
            };
            match tag {
                256 => width = Some(value),
                257 => height = Some(value),
                _ => {}
            }
        }
        pages.push((width?, height?));
        ifd = u32_at(at + 2 + entries * 12)?;
    }
    (!pages.is_empty()).then_some(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];
        b.extend_from_slice(b"IHDR");
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0, 0]);
        b
    }

    #[test]
    fn reads_each_formats_header() {
        assert_eq!(announced(&png(640, 480)).unwrap().pages, vec![(640, 480)]);
        let mut gif = b"GIF89a".to_vec();
        gif.extend_from_slice(&[0x20, 0x03, 0x58, 0x02, 0, 0, 0]);
        assert_eq!(announced(&gif).unwrap().pages, vec![(800, 600)]);
        let mut bmp = b"BM".to_vec();
        bmp.extend_from_slice(&[0; 12]);
        bmp.extend_from_slice(&40u32.to_le_bytes());
        bmp.extend_from_slice(&100i32.to_le_bytes());
        bmp.extend_from_slice(&(-50i32).to_le_bytes());
        assert_eq!(announced(&bmp).unwrap().pages, vec![(100, 50)]);
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0];
        jpeg.extend_from_slice(&[0xFF, 0xC0, 0, 11, 8, 0x01, 0x2C, 0x00, 0xC8, 1, 0, 0]);
        assert_eq!(announced(&jpeg).unwrap().pages, vec![(200, 300)]);
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X".to_vec();
        webp.extend_from_slice(&[0; 8]);
        webp.extend_from_slice(&[0x7F, 0x02, 0x00, 0xDF, 0x01, 0x00]);
        assert_eq!(announced(&webp).unwrap().pages, vec![(640, 480)]);
    }

    #[test]
    fn reads_every_page_of_a_tiff_and_refuses_a_loop() {
        // Two directories, little-endian: width/height as SHORT then LONG.
        let mut t = b"II*\0".to_vec();
        t.extend_from_slice(&8u32.to_le_bytes());
        let dir = |w: u32, h: u32, next: u32| {
            let mut d = 2u16.to_le_bytes().to_vec();
            for (tag, kind, v) in [(256u16, 4u16, w), (257, 4, h)] {
                d.extend_from_slice(&tag.to_le_bytes());
                d.extend_from_slice(&kind.to_le_bytes());
                d.extend_from_slice(&1u32.to_le_bytes());
                d.extend_from_slice(&v.to_le_bytes());
            }
            d.extend_from_slice(&next.to_le_bytes());
            d
        };
        let first = dir(100, 200, 8 + 30);
        t.extend_from_slice(&first);
        t.extend_from_slice(&dir(300, 400, 0));
        assert_eq!(announced(&t).unwrap().pages, vec![(100, 200), (300, 400)]);
        let mut looped = b"II*\0".to_vec();
        looped.extend_from_slice(&8u32.to_le_bytes());
        looped.extend_from_slice(&dir(100, 200, 8));
        assert!(announced(&looped).is_err());
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        assert!(announced(b"hello").is_err());
        assert_eq!(
            format_of(b"BMW reported record sales in 2024, up 4 percent."),
            None
        );
        assert!(announced(&png(1, 1)[..14]).is_err());
    }
}
