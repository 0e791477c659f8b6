//! Opening Office files (zip archives) without being fooled by zip bombs: the uncompressed
//! size is capped in total and per entry, and so is the compression ratio of large entries.

use std::io::{Cursor, Read};

use quarry_core::ParseError;
use zip::ZipArchive;

/// Most bytes all entries may expand to.
pub const MAX_UNCOMPRESSED: u64 = 512 * 1024 * 1024;
/// Highest compression ratio an entry over 1 MiB may have (text XML compresses ~10–30×).
pub const MAX_RATIO: u64 = 200;

pub fn open<'a>(
    bytes: &'a [u8],
    format: &'static str,
) -> Result<ZipArchive<Cursor<&'a [u8]>>, ParseError> {
    let malformed = |reason: String| ParseError::Malformed { format, reason };
    let mut archive = ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| malformed(format!("not a valid {format} file (zip): {e}; an encrypted or legacy Office file cannot be read")))?;
    let mut total = 0u64;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| malformed(e.to_string()))?;
        total = total.saturating_add(entry.size());
        if entry.size() > 1 << 20 && entry.size() / entry.compressed_size().max(1) > MAX_RATIO {
            return Err(malformed(format!(
                "zip bomb: {} expands {}× ({} bytes)",
                entry.name().unwrap_or_default(),
                entry.size() / entry.compressed_size().max(1),
                entry.size()
            )));
        }
    }
    if total > MAX_UNCOMPRESSED {
        return Err(malformed(format!(
            "zip bomb: entries expand to {total} bytes, over {MAX_UNCOMPRESSED}"
        )));
    }
    Ok(archive)
}

/// Reads one entry, refusing to expand past the cap whatever its header claims.
pub fn read_entry(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    format: &'static str,
) -> Result<Option<Vec<u8>>, ParseError> {
    let malformed = |reason: String| ParseError::Malformed { format, reason };
    let entry = match archive.by_name(name) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(malformed(format!("{name}: {e}"))),
    };
    let mut out = Vec::new();
    entry
        .take(MAX_UNCOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|e| malformed(format!("{name}: {e}")))?;
    if out.len() as u64 > MAX_UNCOMPRESSED {
        return Err(malformed(format!(
            "zip bomb: {name} expands past {MAX_UNCOMPRESSED} bytes"
        )));
    }
    Ok(Some(out))
}
