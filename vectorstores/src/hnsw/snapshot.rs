//! The graph on disk: everything the in-memory index holds (entries, vectors, layers), in
//! one file written beside the chunk table. It is written to a temporary name, synced and
//! renamed over the old one, so a crash leaves the old file or the new one, never a torn one;
//! a checksum over the whole file catches what the disk does to it. Little-endian:
//!
//! ```text
//! "QRYHNSW\0" version:u32 dimension:u32 m:u32 ef_construction:u32 quantization:u32
//! change:i64 slots:u64 entry:u32
//! per slot: alive:u8 [chunk_id data_source_id document_key source_uri: u32 length + UTF-8,
//!   page:u32 (0: none), user metadata JSON: u32 length + UTF-8]
//! vectors: held:u8, then slots × dimension f32 (held 0), or dimension f32 scales and
//! slots × dimension i8 codes (held 1) · levels: slots u8 · layer 0: slots × 2m u32
//! upper layers: for each slot, level × m u32 · checksum:u64 of everything before it
//! ```

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;

use quarry_core::metadata::{CHUNK_ID, DATA_SOURCE_ID, PAGE_NUMBER, SOURCE_URI};
use quarry_core::{Metadata, MetadataSource, MetadataValue};

use super::entries::{Document, Entry, Interner};
use super::graph::Graph;
use super::vectors::{Storage, Vectors};
use super::{HnswParams, Index};

pub(super) const FILE: &str = "graph.snapshot";
const MAGIC: &[u8; 8] = b"QRYHNSW\0";
/// Bumped whenever the layout above changes; another version is rebuilt, not read (but
/// versions 1 and 2, which kept each slot's whole metadata, system keys included, as one JSON
/// text after its document key, and version 1 no quantization).
const VERSION: u32 = 3;
const BLOCK: usize = 1 << 16;

/// Writes `index`, which holds every change up to `change`, to `path`.
pub(super) fn save(
    path: &Path,
    index: &Index,
    change: i64,
    params: &HnswParams,
) -> std::io::Result<()> {
    save_as(path, index, change, params, VERSION)
}

/// [`save`] in format `version` (2 or this build's; the tests write version 2 to check that
/// it is still read).
fn save_as(
    path: &Path,
    index: &Index,
    change: i64,
    params: &HnswParams,
    version: u32,
) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut out = HashingWriter::new(File::create(&tmp)?);
    let graph = &index.graph;
    out.write_all(MAGIC)?;
    for v in [
        version,
        index.vectors.dim as u32,
        params.max_connections as u32,
        params.ef_construction as u32,
        index.vectors.wanted.code(),
    ] {
        out.write_all(&v.to_le_bytes())?;
    }
    out.write_all(&change.to_le_bytes())?;
    out.write_all(&(index.slots.len() as u64).to_le_bytes())?;
    out.write_all(&graph.entry.to_le_bytes())?;
    for slot in &index.slots {
        match slot {
            None => out.write_all(&[0])?,
            Some(e) if version < 3 => {
                out.write_all(&[1])?;
                let mut all = (*e.metadata).clone();
                for key in [SOURCE_URI, DATA_SOURCE_ID, CHUNK_ID, PAGE_NUMBER] {
                    if let Some(value) = e.value(key) {
                        all.insert(key.to_string(), value.into_owned());
                    }
                }
                for text in [&*e.chunk_id, e.data_source_id(), e.document_key()] {
                    write_text(&mut out, text)?;
                }
                write_text(&mut out, &serde_json::to_string(&all)?)?;
            }
            Some(e) => {
                out.write_all(&[1])?;
                for text in [
                    &*e.chunk_id,
                    e.data_source_id(),
                    e.document_key(),
                    e.document.source_uri(),
                ] {
                    write_text(&mut out, text)?;
                }
                out.write_all(&e.page.map_or(0, |p| p.saturating_add(1)).to_le_bytes())?;
                write_text(&mut out, &serde_json::to_string(&*e.metadata)?)?;
            }
        }
    }
    match &index.vectors.storage {
        Storage::F32(data) => {
            out.write_all(&[0])?;
            for v in data {
                out.write_all(&v.to_le_bytes())?;
            }
        }
        Storage::Int8 { codes, scale } => {
            out.write_all(&[1])?;
            for v in scale {
                out.write_all(&v.to_le_bytes())?;
            }
            out.write_all(&codes.iter().map(|&c| c as u8).collect::<Vec<u8>>())?;
        }
    }
    out.write_all(&graph.levels)?;
    for n in &graph.layer0 {
        out.write_all(&n.to_le_bytes())?;
    }
    for node in &graph.upper {
        for n in node.iter() {
            out.write_all(&n.to_le_bytes())?;
        }
    }
    let (mut file, sum) = out.finish()?;
    file.write_all(&sum.to_le_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads the graph saved at `path`, the change it holds everything up to, and whether it is
/// in this build's format (an older one is read, and the store saves it again). Any doubt
/// (missing, another version, dimension or settings, a bad checksum, a short file) is an
/// error saying why, and the caller rebuilds.
pub(super) fn load(
    path: &Path,
    dimension: usize,
    params: &HnswParams,
) -> Result<(Index, i64, bool), String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len < 8 {
        return Err("the file is shorter than its checksum".into());
    }
    let mut input = HashingReader::new(file, len - 8);
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic).map_err(short)?;
    if &magic != MAGIC {
        return Err("not a graph file".into());
    }
    let version = input.u32()?;
    // Versions 1 (before quantization: f32 vectors, no tag) and 2 (whole metadata) are read too.
    if !(1..=VERSION).contains(&version) {
        return Err(format!(
            "format version {version}; this build reads 1 to {VERSION}"
        ));
    }
    let (dim, m, ef_construction) = (input.u32()?, input.u32()?, input.u32()?);
    if dim as usize != dimension {
        return Err(format!(
            "saved for dimension {dim}, the store has {dimension}"
        ));
    }
    if m as usize != params.max_connections || ef_construction as usize != params.ef_construction {
        return Err(format!(
            "built with m = {m}, ef_construction = {ef_construction}; the settings are now m = {}, ef_construction = {}",
            params.max_connections, params.ef_construction
        ));
    }
    let quantization = if version == 1 { 0 } else { input.u32()? };
    if quantization != params.quantization.code() {
        return Err(format!(
            "saved with quantization {quantization}; the settings now ask for {:?}",
            params.quantization
        ));
    }
    let change = input.u64()? as i64;
    let count = usize::try_from(input.u64()?).map_err(|e| e.to_string())?;
    // Every slot takes at least a byte and a vector: a count the file cannot hold is corrupt.
    // (int8 codes: a byte per dimension at least)
    if count as u64 > len / (1 + dimension as u64).max(1) {
        return Err(format!("{count} slots cannot fit in {len} bytes"));
    }
    let entry = input.u32()?;
    let mut slots = Vec::with_capacity(count);
    let mut by_chunk = std::collections::HashMap::with_capacity(count);
    let mut interner = Interner::default();
    for slot in 0..count {
        let alive = input.u8()?;
        let entry = match alive {
            0 => None,
            1 if version < 3 => {
                let (chunk_id, data_source_id, document_key) =
                    (input.text()?, input.text()?, input.text()?);
                let json = input.text()?;
                Some(old_entry(
                    chunk_id,
                    data_source_id,
                    document_key,
                    &json,
                    &mut interner,
                )?)
            }
            1 => {
                let chunk_id: Arc<str> = input.text()?.into();
                let (data_source_id, document_key, source_uri) =
                    (input.text()?, input.text()?, input.text()?);
                let page = input.u32()?.checked_sub(1);
                let metadata = interner
                    .metadata_json(input.text()?)
                    .map_err(|e| format!("metadata of chunk {chunk_id}: {e}"))?;
                let document = interner.document(Arc::new(Document::new(
                    data_source_id,
                    document_key,
                    source_uri,
                )));
                Some(Entry {
                    chunk_id,
                    document,
                    metadata,
                    page,
                })
            }
            other => return Err(format!("slot {slot}: flag {other}")),
        };
        if let Some(e) = &entry {
            by_chunk.insert(e.chunk_id.clone(), slot as u32);
        }
        slots.push(entry);
    }
    let held = if version == 1 { 0 } else { input.u8()? };
    let storage = match held {
        0 => Storage::F32(input.f32s(count * dimension)?),
        1 => {
            let scale = input.f32s(dimension)?;
            let codes = input
                .raw(count * dimension)?
                .into_iter()
                .map(|c| c as i8)
                .collect();
            Storage::Int8 { codes, scale }
        }
        other => return Err(format!("vectors held as {other}")),
    };
    let levels = input.raw(count)?;
    let layer0 = input.u32s(count * 2 * params.max_connections)?;
    let mut upper = Vec::with_capacity(count);
    for &level in &levels {
        upper.push(
            input
                .u32s(usize::from(level) * params.max_connections)?
                .into_boxed_slice(),
        );
    }
    let sum = input.finish()?;
    if sum != input.stored_checksum()? {
        return Err("the checksum does not match".into());
    }
    let graph = Graph {
        levels,
        layer0,
        upper,
        entry,
        ..Graph::new(params.max_connections, params.ef_construction)
    };
    graph.check()?;
    let live = by_chunk.len();
    let index = Index {
        full: None,
        graph,
        vectors: Vectors {
            dim: dimension,
            wanted: params.quantization,
            storage,
        },
        slots,
        by_chunk,
        live,
        interner,
    };
    Ok((index, change, version == VERSION))
}

fn write_text(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(&(text.len() as u32).to_le_bytes())?;
    out.write_all(text.as_bytes())
}

/// A slot's entry as versions 1 and 2 wrote it: the whole metadata in one JSON text.
fn old_entry(
    chunk_id: String,
    data_source_id: String,
    document_key: String,
    json: &str,
    interner: &mut Interner,
) -> Result<Entry, String> {
    let mut metadata: Metadata =
        serde_json::from_str(json).map_err(|e| format!("metadata of chunk {chunk_id}: {e}"))?;
    let source_uri = match metadata.remove(SOURCE_URI) {
        Some(MetadataValue::String(s)) => s,
        _ => String::new(),
    };
    let page = match metadata.remove(PAGE_NUMBER) {
        Some(MetadataValue::Number(n)) => Some(n as u32),
        _ => None,
    };
    metadata.remove(CHUNK_ID);
    metadata.remove(DATA_SOURCE_ID);
    let document = Arc::new(Document::new(data_source_id, document_key, source_uri));
    Ok(interner.share(Entry {
        chunk_id: chunk_id.into(),
        document,
        metadata: Arc::new(metadata),
        page,
    }))
}

fn short(e: std::io::Error) -> String {
    format!("the file ends early: {e}")
}

/// A 64-bit checksum in four lanes, fed whole blocks (the last one may be short).
#[derive(Clone, Copy)]
pub(super) struct Checksum {
    lanes: [u64; 4],
    length: u64,
}

impl Checksum {
    const PRIME: u64 = 0x9E37_79B1_85EB_CA87;

    pub(super) fn new() -> Self {
        Self {
            lanes: [1, 2, 3, 4],
            length: 0,
        }
    }

    pub(super) fn block(&mut self, bytes: &[u8]) {
        let words = bytes.chunks_exact(32);
        let tail = words.remainder();
        for w in words {
            for (i, lane) in self.lanes.iter_mut().enumerate() {
                let x = u64::from_le_bytes(w[i * 8..i * 8 + 8].try_into().unwrap_or_default());
                *lane = (*lane ^ x).wrapping_mul(Self::PRIME).rotate_left(29);
            }
        }
        for (i, &b) in tail.iter().enumerate() {
            let lane = &mut self.lanes[i % 4];
            *lane = (*lane ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
        self.length += bytes.len() as u64;
    }

    pub(super) fn value(&self) -> u64 {
        self.lanes.iter().fold(self.length, |acc, &l| {
            (acc ^ l).wrapping_mul(Self::PRIME).rotate_left(31)
        })
    }
}

/// Buffers writes into blocks and checksums each block as it goes out.
struct HashingWriter {
    file: File,
    buffer: Vec<u8>,
    sum: Checksum,
}

impl HashingWriter {
    fn new(file: File) -> Self {
        Self {
            file,
            buffer: Vec::with_capacity(BLOCK),
            sum: Checksum::new(),
        }
    }

    fn emit(&mut self) -> std::io::Result<()> {
        self.sum.block(&self.buffer);
        self.file.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<(File, u64)> {
        if !self.buffer.is_empty() {
            self.emit()?;
        }
        Ok((self.file, self.sum.value()))
    }
}

impl Write for HashingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = bytes.len().min(BLOCK - self.buffer.len());
        self.buffer.extend_from_slice(&bytes[..n]);
        if self.buffer.len() == BLOCK {
            self.emit()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads `content` bytes in the writer's blocks, checksumming each, then the stored checksum.
struct HashingReader {
    file: BufReader<File>,
    remaining: u64,
    block: Vec<u8>,
    at: usize,
    sum: Checksum,
}

impl HashingReader {
    fn new(file: File, content: u64) -> Self {
        Self {
            file: BufReader::with_capacity(BLOCK, file),
            remaining: content,
            block: Vec::new(),
            at: 0,
            sum: Checksum::new(),
        }
    }

    fn refill(&mut self) -> std::io::Result<bool> {
        if self.remaining == 0 {
            return Ok(false);
        }
        let n = (BLOCK as u64).min(self.remaining) as usize;
        self.block.resize(n, 0);
        self.file.read_exact(&mut self.block)?;
        self.sum.block(&self.block);
        self.remaining -= n as u64;
        self.at = 0;
        Ok(true)
    }

    /// The checksum of everything read, which must be all of the content.
    fn finish(&mut self) -> Result<u64, String> {
        if self.at != self.block.len() || self.remaining != 0 {
            return Err("bytes left over after the last section".into());
        }
        Ok(self.sum.value())
    }

    fn stored_checksum(&mut self) -> Result<u64, String> {
        let mut bytes = [0u8; 8];
        self.file.read_exact(&mut bytes).map_err(short)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn u8(&mut self) -> Result<u8, String> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b).map_err(short)?;
        Ok(b[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b).map_err(short)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b).map_err(short)?;
        Ok(u64::from_le_bytes(b))
    }

    fn text(&mut self) -> Result<String, String> {
        let len = self.u32()? as usize;
        if len as u64 > self.remaining + self.block.len() as u64 {
            return Err(format!("a text of {len} bytes runs past the end"));
        }
        String::from_utf8(self.raw(len)?).map_err(|e| e.to_string())
    }

    fn raw(&mut self, n: usize) -> Result<Vec<u8>, String> {
        let mut out = vec![0u8; n];
        self.read_exact(&mut out).map_err(short)?;
        Ok(out)
    }

    /// `n` little-endian 4-byte values, read a block at a time (never the whole section
    /// as bytes and again as values).
    fn words<T>(&mut self, n: usize, convert: fn([u8; 4]) -> T) -> Result<Vec<T>, String> {
        let mut out = Vec::with_capacity(n);
        let mut buffer = vec![0u8; BLOCK];
        let mut left = n;
        while left > 0 {
            let take = left.min(BLOCK / 4);
            let bytes = &mut buffer[..take * 4];
            self.read_exact(bytes).map_err(short)?;
            out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| convert([b[0], b[1], b[2], b[3]])),
            );
            left -= take;
        }
        Ok(out)
    }

    fn f32s(&mut self, n: usize) -> Result<Vec<f32>, String> {
        self.words(n, f32::from_le_bytes)
    }

    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, String> {
        self.words(n, u32::from_le_bytes)
    }
}

impl Read for HashingReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.block.len() && !self.refill()? {
            return Ok(0);
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use quarry_core::{Filter, StoredChunk};
    use serde_json::json;

    use super::*;

    /// A file of version 2 is read (not rebuilt): the same entries, the same graph.
    #[test]
    fn a_version_2_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let params = HnswParams::default();
        let mut index = Index::new(&params, 4, 3);
        let chunks = (0..3u8).map(|i| StoredChunk {
            id: format!("c{i}"),
            data_source_id: "DS".into(),
            document_key: format!("d{}.pdf", i / 2),
            source_uri: format!("s3://b/d{}.pdf", i / 2),
            text: "t".into(),
            span: 0..1,
            page: (i > 0).then_some(u32::from(i)),
            metadata: [("n".to_string(), MetadataValue::Number(f64::from(i % 2)))].into(),
            vector: vec![1.0, f32::from(i), 0.5, -1.0],
        });
        index.add(chunks.map(Entry::split).collect(), true);
        let path = dir.path().join(FILE);
        save_as(&path, &index, 7, &params, 2).unwrap();
        let (read, change, current) = load(&path, 4, &params).unwrap();
        assert_eq!((change, current), (7, false));
        assert_eq!(read.graph.layer0, index.graph.layer0);
        for (a, b) in read.slots.iter().zip(&index.slots) {
            let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
            assert_eq!(a.chunk_id, b.chunk_id);
            for key in [SOURCE_URI, DATA_SOURCE_ID, CHUNK_ID, PAGE_NUMBER, "n"] {
                assert_eq!(a.value(key), b.value(key), "{key}");
            }
        }
        save(&path, &read, 7, &params).unwrap();
        assert!(
            load(&path, 4, &params).unwrap().2,
            "saved again in this version"
        );
    }

    /// A slot as versions 1 and 2 saved it (the whole metadata) answers filters as it did.
    #[test]
    fn an_old_slot_keeps_its_system_keys() {
        let chunk = StoredChunk {
            id: "c1".into(),
            data_source_id: "DS".into(),
            document_key: "a.pdf".into(),
            source_uri: "s3://b/a.pdf".into(),
            text: "t".into(),
            span: 0..1,
            page: Some(4),
            metadata: [("team".to_string(), MetadataValue::String("hr".into()))].into(),
            vector: vec![1.0],
        };
        let full = chunk.full_metadata();
        let json = serde_json::to_string(&full).unwrap();
        let entry = old_entry(
            "c1".into(),
            "DS".into(),
            "a.pdf".into(),
            &json,
            &mut Interner::default(),
        )
        .unwrap();
        assert_eq!(entry.page, Some(4));
        assert_eq!(entry.document.source_uri(), "s3://b/a.pdf");
        assert_eq!(entry.metadata.len(), 1, "{:?}", entry.metadata);
        for f in [
            json!({"equals": {"key": SOURCE_URI, "value": "s3://b/a.pdf"}}),
            json!({"equals": {"key": PAGE_NUMBER, "value": 4}}),
            json!({"equals": {"key": CHUNK_ID, "value": "c1"}}),
            json!({"equals": {"key": DATA_SOURCE_ID, "value": "DS"}}),
            json!({"equals": {"key": "team", "value": "hr"}}),
        ] {
            let f = Filter::from_json(&f).unwrap();
            assert!(f.matches(&full) && f.matches_in(&entry), "{f:?}");
        }
    }
}
