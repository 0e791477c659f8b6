//! Full-precision vectors by slot in a flat file beside the graph (`vectors.f32`), kept for
//! quantized graphs: their candidates are rescored from it with one positioned read each
//! rather than a table lookup by chunk id under the table's lock. A cache of the table,
//! never trusted: each record carries a checksum of its chunk id and vector, and a record
//! that does not match (never written, torn by a crash, another chunk's) is read from the
//! table instead. A slot's record is written when the slot is filled and wiped when it is
//! emptied, so a matching record is always the slot's chunk as it is now.
//!
//! Record: `dim` f32 (little-endian), then the checksum (u64).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::snapshot::Checksum;

pub(crate) const FILE: &str = "vectors.f32";

pub(crate) struct FullVectors {
    file: File,
    dim: usize,
}

impl FullVectors {
    pub fn open(path: &Path, dim: usize) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(Self { file, dim })
    }

    /// Whether nothing was ever written (a new file, or a store that did not keep one).
    pub fn is_empty(&self) -> std::io::Result<bool> {
        Ok(self.file.metadata()?.len() == 0)
    }

    fn record_len(&self) -> usize {
        self.dim * 4 + 8
    }

    fn at(&self, slot: u32) -> u64 {
        u64::from(slot) * self.record_len() as u64
    }

    /// Writes `slot`'s record.
    pub fn write(&self, slot: u32, chunk_id: &str, vector: &[f32]) -> std::io::Result<()> {
        let mut record = Vec::with_capacity(self.record_len());
        for x in vector {
            record.extend_from_slice(&x.to_le_bytes());
        }
        let sum = checksum(chunk_id, &record);
        record.extend_from_slice(&sum.to_le_bytes());
        self.file.write_all_at(&record, self.at(slot))
    }

    /// `slot`'s vector, if its record is there and is `chunk_id`'s.
    pub fn read(&self, slot: u32, chunk_id: &str) -> Option<Vec<f32>> {
        let mut vector = Vec::new();
        self.read_into(slot, chunk_id, &mut Vec::new(), &mut vector)
            .then_some(vector)
    }

    /// [`Self::read`] into `vector` (`record` is room for the bytes): false when not there.
    pub fn read_into(
        &self,
        slot: u32,
        chunk_id: &str,
        record: &mut Vec<u8>,
        vector: &mut Vec<f32>,
    ) -> bool {
        record.resize(self.record_len(), 0);
        if self.file.read_exact_at(record, self.at(slot)).is_err() {
            return false;
        }
        let (body, sum) = record.split_at(self.dim * 4);
        let sum = u64::from_le_bytes(sum.try_into().unwrap_or_default());
        if sum != checksum(chunk_id, body) {
            return false;
        }
        vector.clear();
        vector.extend(
            body.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        true
    }

    /// Makes `slot`'s record match no chunk (the slot was emptied).
    pub fn wipe(&self, slot: u32) -> std::io::Result<()> {
        if self.at(slot) >= self.file.metadata()?.len() {
            return Ok(());
        }
        let at = self.at(slot) + self.dim as u64 * 4;
        self.file.write_all_at(&[0; 8], at)
    }

    /// Moves `from`'s record to `to` (a compaction renumbering slots), if it is `chunk_id`'s.
    pub fn moved(&self, from: u32, to: u32, chunk_id: &str) -> std::io::Result<()> {
        if from == to {
            return Ok(());
        }
        match self.read(from, chunk_id) {
            Some(v) => self.write(to, chunk_id, &v),
            None => self.wipe(to),
        }
    }
}

fn checksum(chunk_id: &str, body: &[u8]) -> u64 {
    let mut sum = Checksum::new();
    sum.block(chunk_id.as_bytes());
    sum.block(body);
    sum.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_read_back_only_for_its_chunk_and_until_wiped() {
        let dir = tempfile::tempdir().unwrap();
        let full = FullVectors::open(&dir.path().join(FILE), 3).unwrap();
        assert_eq!(full.read(0, "a"), None, "nothing written yet");
        full.write(2, "c", &[0.5, -1.0, 0.25]).unwrap();
        full.write(0, "a", &[1.0, 0.0, 0.0]).unwrap();
        assert_eq!(full.read(2, "c"), Some(vec![0.5, -1.0, 0.25]));
        assert_eq!(full.read(0, "a"), Some(vec![1.0, 0.0, 0.0]));
        assert_eq!(full.read(2, "a"), None, "another chunk's record");
        assert_eq!(full.read(1, "b"), None, "a hole");
        assert_eq!(full.read(7, "c"), None, "past the end");
        full.moved(2, 1, "c").unwrap();
        assert_eq!(full.read(1, "c"), Some(vec![0.5, -1.0, 0.25]));
        full.wipe(1).unwrap();
        assert_eq!(full.read(1, "c"), None);
        full.wipe(9).unwrap();
        assert_eq!(
            full.file.metadata().unwrap().len(),
            3 * 20,
            "a wipe past the end writes nothing"
        );
    }

    #[test]
    fn a_torn_record_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let full = FullVectors::open(&path, 4).unwrap();
        full.write(0, "a", &[0.1, 0.2, 0.3, 0.4]).unwrap();
        full.file.write_all_at(&[0, 0, 0, 0], 4).unwrap();
        assert_eq!(full.read(0, "a"), None);
        drop(full);
        let again = FullVectors::open(&path, 4).unwrap();
        again.write(0, "a", &[0.1, 0.2, 0.3, 0.4]).unwrap();
        again.file.set_len(20).unwrap();
        assert_eq!(again.read(0, "a"), None, "cut short");
    }
}
