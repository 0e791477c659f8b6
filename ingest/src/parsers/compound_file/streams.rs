//! Reading the streams of a compound file once [`check`](super::check) has passed it: the
//! directory, the FAT and mini FAT chains, by stream name (Word's `WordDocument`, `1Table`).

use super::{MINI_CUTOFF, RESERVED, chain, check, is_compound_file, u16_at, u32_at};

/// The streams of a compound file that [`check`] has passed, by name.
pub struct Streams<'a> {
    bytes: &'a [u8],
    size: usize,
    fat: Vec<u32>,
    mini_fat: Vec<u32>,
    mini_stream: Vec<u8>,
    /// (name, kind, start sector, length) of each directory entry.
    entries: Vec<(String, u8, u32, u64)>,
}

impl<'a> Streams<'a> {
    /// Reads the directory of a compound file (checked first).
    pub fn open(bytes: &'a [u8]) -> Result<Self, String> {
        if !is_compound_file(bytes) {
            return Err("not an OLE compound file".into());
        }
        check(bytes)?;
        let size = 1usize << u16_at(bytes, 30);
        let count = (bytes.len() / size).saturating_sub(1);
        let sector = |id: u32| -> Result<&[u8], String> {
            let start = (id as usize + 1) * size;
            bytes
                .get(start..start + size)
                .ok_or_else(|| format!("sector {id} lies beyond the end of the file"))
        };
        let mut fat_sectors: Vec<u32> = (0..109).map(|i| u32_at(bytes, 76 + 4 * i)).collect();
        let mut difat = u32_at(bytes, 68);
        while difat < RESERVED {
            let s = sector(difat)?;
            let entries = size / 4 - 1;
            fat_sectors.extend((0..entries).map(|i| u32_at(s, 4 * i)));
            difat = u32_at(s, 4 * entries);
        }
        let mut fat = Vec::new();
        for &id in fat_sectors.iter().filter(|&&id| id < RESERVED) {
            let s = sector(id)?;
            fat.extend((0..size / 4).map(|i| u32_at(s, 4 * i)));
        }
        fat.truncate(count);
        let mut streams = Streams {
            bytes,
            size,
            fat,
            mini_fat: Vec::new(),
            mini_stream: Vec::new(),
            entries: Vec::new(),
        };
        for id in chain(&streams.fat, u32_at(bytes, 60), count, "mini FAT")? {
            let s = sector(id)?;
            streams
                .mini_fat
                .extend((0..size / 4).map(|i| u32_at(s, 4 * i)));
        }
        let directory = streams.read_chain(u32_at(bytes, 48), u64::MAX)?;
        for entry in directory.chunks_exact(128) {
            let name_len = (u16_at(entry, 64) as usize).min(64);
            let units: Vec<u16> = entry[..name_len.saturating_sub(2)]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let name = String::from_utf16_lossy(&units);
            let kind = entry[66];
            let start = u32_at(entry, 116);
            let len = u32_at(entry, 120) as u64;
            streams.entries.push((name, kind, start, len));
        }
        if let Some(&(_, 5, start, len)) = streams.entries.first() {
            streams.mini_stream = streams.read_chain(start, len)?;
        }
        Ok(streams)
    }

    fn read_chain(&self, start: u32, len: u64) -> Result<Vec<u8>, String> {
        let count = (self.bytes.len() / self.size).saturating_sub(1);
        let mut out = Vec::new();
        for id in chain(&self.fat, start, count, "stream")? {
            let at = (id as usize + 1) * self.size;
            let s = self
                .bytes
                .get(at..at + self.size)
                .ok_or_else(|| format!("sector {id} lies beyond the end of the file"))?;
            out.extend_from_slice(s);
            if out.len() as u64 >= len {
                break;
            }
        }
        out.truncate(len.min(out.len() as u64) as usize);
        Ok(out)
    }

    /// The contents of the stream with this name (any storage), if there is one.
    pub fn stream(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let Some(&(_, _, start, len)) = self
            .entries
            .iter()
            .find(|(n, kind, _, _)| *kind == 2 && n == name)
        else {
            return Ok(None);
        };
        if len >= MINI_CUTOFF {
            return self.read_chain(start, len).map(Some);
        }
        let limit = self.mini_stream.len() / 64;
        let mut out = Vec::new();
        for id in chain(
            &self.mini_fat,
            start,
            limit.min(self.mini_fat.len()),
            "mini stream",
        )? {
            let at = id as usize * 64;
            let s = self
                .mini_stream
                .get(at..at + 64)
                .ok_or("a mini stream sector lies beyond the mini stream")?;
            out.extend_from_slice(s);
        }
        out.truncate(len as usize);
        Ok(Some(out))
    }
}
