//! SEMANTIC and HYBRID search over a knowledge base's indexes, returning distinct passages.
//!
//! A passage is a chunk's returned text and span: with HIERARCHICAL chunking several child
//! chunks share their parent's, and the parent is returned once, at its best child's rank.

use std::collections::{HashMap, HashSet};

use quarry_core::{Filter, SearchHit, StoredChunk, VectorStore};
use quarry_lexical::LexicalIndex;

use crate::RetrieveError;
use crate::fusion::{Fusion, fuse};

/// Bedrock's `overrideSearchType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchType {
    #[default]
    Semantic,
    Hybrid,
}

impl SearchType {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "SEMANTIC" => Some(Self::Semantic),
            "HYBRID" => Some(Self::Hybrid),
            _ => None,
        }
    }
}

/// What a search reads: the vector store and, for HYBRID, the lexical index.
#[derive(Clone, Copy)]
pub struct Indexes<'a> {
    pub store: &'a dyn VectorStore,
    pub lexical: Option<&'a LexicalIndex>,
}

/// Candidates each side contributes to a HYBRID fusion.
pub const HYBRID_CANDIDATES: usize = 100;

/// Most chunks a search walks to find `k` distinct passages.
const MAX_WALK: usize = 10_000;

/// The `k` best distinct passages for a query (its text and its vector), among those the
/// filter passes. SEMANTIC scores are cosine similarities; HYBRID scores are in [0, 1].
pub fn search(
    indexes: Indexes<'_>,
    query: &str,
    vector: &[f32],
    k: usize,
    filter: Option<&Filter>,
    search_type: SearchType,
) -> Result<Vec<SearchHit>, RetrieveError> {
    match search_type {
        SearchType::Semantic => semantic(indexes.store, vector, k, filter),
        SearchType::Hybrid => {
            let lexical = indexes.lexical.ok_or(RetrieveError::NoLexicalIndex)?;
            let candidates = HYBRID_CANDIDATES.max(k);
            let semantic = indexes.store.search(vector, candidates, filter)?;
            let lexical = lexical_hits(lexical, indexes.store, query, candidates, filter)?;
            Ok(distinct(fused(&semantic, &lexical, Fusion::default()), k))
        }
    }
}

/// SEMANTIC search, widening the walk until `k` distinct passages are found.
fn semantic(
    store: &dyn VectorStore,
    vector: &[f32],
    k: usize,
    filter: Option<&Filter>,
) -> Result<Vec<SearchHit>, RetrieveError> {
    let mut walk = k;
    loop {
        let hits = store.search(vector, walk, filter)?;
        let exhausted = hits.len() < walk || walk >= MAX_WALK;
        let passages = distinct(hits, k);
        if passages.len() >= k || exhausted {
            return Ok(passages);
        }
        walk = (walk * 4).min(MAX_WALK);
    }
}

/// The `n` best chunks by BM25 among those the filter passes, with their BM25 scores.
pub fn lexical_hits(
    lexical: &LexicalIndex,
    store: &dyn VectorStore,
    query: &str,
    n: usize,
    filter: Option<&Filter>,
) -> Result<Vec<SearchHit>, RetrieveError> {
    let mut walk = n;
    loop {
        let ranked = lexical.search(query, walk)?;
        let exhausted = ranked.len() < walk || walk >= MAX_WALK;
        let ids: Vec<String> = ranked.iter().map(|(id, _)| id.clone()).collect();
        let mut chunks: HashMap<String, StoredChunk> = store
            .chunks(&ids)?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let hits: Vec<SearchHit> = ranked
            .into_iter()
            .filter_map(|(id, score)| {
                let chunk = chunks.remove(&id)?;
                let passes = filter.is_none_or(|f| f.matches(&chunk.full_metadata()));
                passes.then_some(SearchHit { chunk, score })
            })
            .take(n)
            .collect();
        if hits.len() >= n || exhausted {
            return Ok(hits);
        }
        walk = (walk * 4).min(MAX_WALK);
    }
}

/// Both rankings fused by `fusion`, as hits carrying the fused score.
pub fn fused(semantic: &[SearchHit], lexical: &[SearchHit], fusion: Fusion) -> Vec<SearchHit> {
    let ranking = |hits: &[SearchHit]| -> Vec<(String, f32)> {
        hits.iter().map(|h| (h.chunk.id.clone(), h.score)).collect()
    };
    let mut chunks: HashMap<&str, &StoredChunk> = HashMap::new();
    for hit in lexical.iter().chain(semantic) {
        chunks.insert(&hit.chunk.id, &hit.chunk);
    }
    fuse(&ranking(semantic), &ranking(lexical), fusion)
        .into_iter()
        .filter_map(|(id, score)| {
            chunks.get(id.as_str()).map(|c| SearchHit {
                chunk: (*c).clone(),
                score,
            })
        })
        .collect()
}

/// The first `k` hits whose passages (data source, document, span) differ, in order.
pub fn distinct(hits: Vec<SearchHit>, k: usize) -> Vec<SearchHit> {
    let mut seen = HashSet::new();
    hits.into_iter()
        .filter(|h| {
            let c = &h.chunk;
            seen.insert((
                c.data_source_id.clone(),
                c.document_key.clone(),
                c.span.clone(),
            ))
        })
        .take(k)
        .collect()
}
