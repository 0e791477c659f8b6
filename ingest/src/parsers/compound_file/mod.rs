//! Checks an OLE compound file (the container of XLS workbooks) before calamine reads it:
//! every sector chain its reader follows (directory, mini FAT, each stream) must stay inside
//! the file and end without looping. A chain that loops makes the reader grow a buffer without
//! end (a 28 KB file found by fuzzing took 24 GB), so such files fail here with the reason.

const SIGNATURE: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";
const END_OF_CHAIN: u32 = 0xFFFF_FFFE;
const FREE_SECTOR: u32 = 0xFFFF_FFFF;
/// Sector ids from here up are markers, not sectors.
const RESERVED: u32 = 0xFFFF_FFFA;
/// Streams smaller than this live in the mini stream.
const MINI_CUTOFF: u64 = 4096;

mod streams;
pub use streams::Streams;

pub fn is_compound_file(bytes: &[u8]) -> bool {
    bytes.starts_with(SIGNATURE)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

struct Sectors<'a> {
    bytes: &'a [u8],
    size: usize,
    count: usize,
}

impl Sectors<'_> {
    fn get(&self, id: u32) -> Result<&[u8], String> {
        let start = (id as usize + 1) * self.size;
        self.bytes
            .get(start..start + self.size)
            .ok_or_else(|| format!("sector {id} lies beyond the end of the file"))
    }
}

/// Walks a chain through `table`, checking it stays within `limit` links; returns its links.
fn chain(table: &[u32], start: u32, limit: usize, what: &str) -> Result<Vec<u32>, String> {
    let mut links = Vec::new();
    let mut id = start;
    while id != END_OF_CHAIN && id != FREE_SECTOR {
        if links.len() >= limit {
            return Err(format!("the {what} chain loops"));
        }
        let next = *table
            .get(id as usize)
            .ok_or_else(|| format!("the {what} chain points outside the file (sector {id})"))?;
        links.push(id);
        id = next;
    }
    Ok(links)
}

/// `Ok` for files that are safe to hand to calamine (and for files that are not compound
/// files at all); otherwise the reason the file is broken.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    if !is_compound_file(bytes) {
        return Ok(());
    }
    if bytes.len() < 512 {
        return Err("the compound file header is cut short".into());
    }
    let shift = u16_at(bytes, 30);
    if shift != 9 && shift != 12 {
        return Err(format!("unknown sector size 2^{shift}"));
    }
    let size = 1usize << shift;
    let sectors = Sectors {
        bytes,
        size,
        count: (bytes.len() / size).saturating_sub(1),
    };
    let within = |id: u32| (id as usize) < sectors.count;

    // The FAT's sectors: 109 listed in the header, the rest in a chain of DIFAT sectors.
    let mut fat_sectors: Vec<u32> = (0..109).map(|i| u32_at(bytes, 76 + 4 * i)).collect();
    let mut difat = u32_at(bytes, 68);
    let mut hops = 0;
    while difat < RESERVED {
        hops += 1;
        if hops > sectors.count {
            return Err("the DIFAT chain loops".into());
        }
        let sector = sectors.get(difat)?;
        let entries = size / 4 - 1;
        fat_sectors.extend((0..entries).map(|i| u32_at(sector, 4 * i)));
        difat = u32_at(sector, 4 * entries);
    }
    let mut fat = Vec::new();
    for &id in fat_sectors.iter().filter(|&&id| id < RESERVED) {
        if !within(id) {
            return Err(format!(
                "a FAT sector lies beyond the end of the file ({id})"
            ));
        }
        let sector = sectors.get(id)?;
        fat.extend((0..size / 4).map(|i| u32_at(sector, 4 * i)));
    }
    // Links to sectors past the end of the file count as leaving it.
    fat.truncate(sectors.count);

    let directory = chain(&fat, u32_at(bytes, 48), sectors.count, "directory")?;
    let mini_fat_links = chain(&fat, u32_at(bytes, 60), sectors.count, "mini FAT")?;
    let mut mini_fat = Vec::new();
    for id in mini_fat_links {
        let sector = sectors.get(id)?;
        mini_fat.extend((0..size / 4).map(|i| u32_at(sector, 4 * i)));
    }
    let mut mini_stream_len = 0u64;
    for (n, id) in directory.iter().enumerate() {
        let sector = sectors.get(*id)?;
        for entry in sector.chunks_exact(128) {
            let kind = entry[66];
            if kind != 2 && kind != 5 {
                continue; // not a stream, not the root
            }
            let start = u32_at(entry, 116);
            let len = u32_at(entry, 120) as u64;
            if kind == 5 && n == 0 {
                let links = chain(&fat, start, sectors.count, "mini stream")?;
                mini_stream_len = (links.len() * size) as u64;
            } else if len >= MINI_CUTOFF {
                chain(&fat, start, sectors.count, "stream")?;
            } else if len > 0 {
                let limit = (mini_stream_len / 64) as usize;
                chain(&mini_fat, start, limit.min(mini_fat.len()), "mini stream")?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compound file with 512-byte sectors: sector 0 holds the FAT, sector 1 the directory
    /// (a root and one stream of `stream_len` bytes starting at sector 2), sector 2 on data.
    fn file(fat: &[u32], stream_len: u32) -> Vec<u8> {
        let mut out = vec![0u8; 512 * 5];
        out[..8].copy_from_slice(SIGNATURE);
        out[30..32].copy_from_slice(&9u16.to_le_bytes());
        out[44..48].copy_from_slice(&1u32.to_le_bytes());
        out[48..52].copy_from_slice(&1u32.to_le_bytes()); // directory at sector 1
        out[60..64].copy_from_slice(&END_OF_CHAIN.to_le_bytes()); // no mini FAT
        out[68..72].copy_from_slice(&END_OF_CHAIN.to_le_bytes()); // no DIFAT sectors
        for i in 0..109 {
            let id = if i == 0 { 0 } else { FREE_SECTOR };
            out[76 + 4 * i..80 + 4 * i].copy_from_slice(&id.to_le_bytes());
        }
        for (i, link) in fat.iter().enumerate() {
            let at = 512 + 4 * i;
            out[at..at + 4].copy_from_slice(&link.to_le_bytes());
        }
        let dir = 1024;
        out[dir + 66] = 5; // root
        out[dir + 116..dir + 120].copy_from_slice(&END_OF_CHAIN.to_le_bytes());
        let entry = dir + 128;
        out[entry + 66] = 2; // stream
        out[entry + 116..entry + 120].copy_from_slice(&2u32.to_le_bytes());
        out[entry + 120..entry + 124].copy_from_slice(&stream_len.to_le_bytes());
        out
    }

    #[test]
    fn accepts_well_formed_chains() {
        // FAT: 0 = FAT sector, 1 = directory (ends), 2 -> 3 (ends).
        let ok = file(&[0xFFFF_FFFD, END_OF_CHAIN, 3, END_OF_CHAIN], 5000);
        assert_eq!(check(&ok), Ok(()));
        assert_eq!(check(b"not a compound file"), Ok(()));
    }

    #[test]
    fn refuses_loops_and_chains_leaving_the_file() {
        let looping = file(&[0xFFFF_FFFD, END_OF_CHAIN, 3, 2], 5000);
        assert_eq!(check(&looping), Err("the stream chain loops".into()));
        let looping_directory = file(&[0xFFFF_FFFD, 1, END_OF_CHAIN], 0);
        assert_eq!(
            check(&looping_directory),
            Err("the directory chain loops".into())
        );
        let outside = file(&[0xFFFF_FFFD, END_OF_CHAIN, 900], 5000);
        assert!(check(&outside).unwrap_err().contains("outside the file"));
        assert!(check(&file(&[0xFFFF_FFFD, END_OF_CHAIN], 0)[..300]).is_err());
    }
}
