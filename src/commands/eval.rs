//! `quarry eval DIR`: retrieval quality on a BEIR-format folder (`corpus.jsonl`,
//! `queries.jsonl`, `qrels/<split>.tsv`). Builds a throw-away knowledge base with the chosen
//! model and chunking (documents are "title text"), runs every judged query, and prints
//! nDCG@10, recall@100, MRR@10 and hit@5 (a relevant document in the first five), with
//! ingestion and query timings; `--rerank MODEL` adds the same searches reranked by a
//! reranking model. SQuAD-style question files (`{"id", "question"}`) work too.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use quarry_core::config::ChunkingConfig;
use quarry_core::{Chunker, Embedder, ParsedDocument, SearchHit, StoredChunk, VectorStore};
use quarry_lexical::{HybridStore, LexicalIndex};
use quarry_retrieve::metrics::{mrr_at, ndcg_at, recall_at};
use quarry_retrieve::{Fusion, HYBRID_CANDIDATES, fused, lexical_hits};
use quarry_vectorstores::{HnswParams, HnswStore};

use crate::knowledge_base::{embedding_model_name, load_model};
use crate::rag::{MetadataSelection, Rerankers, Reranking, rerank_hits};

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.
    dir: PathBuf,
    #[arg(long, default_value = "train")]
    split: String,
    /// Model name from [models] (needed when there are several).
    #[arg(long)]
    model: Option<String>,
    /// NONE (a chunk per document, as BEIR scores it), DEFAULT, HIERARCHICAL or SEMANTIC
    /// (Bedrock's default settings for each, held to the model's limit).
    #[arg(long, default_value = "NONE")]
    chunking: String,
    /// Only the first N judged queries.
    #[arg(long)]
    limit: Option<usize>,
    /// Queries file, when not DIR/queries.jsonl; lines of `{"_id", "text"}` (BEIR) or
    /// `{"id", "question"}` (SQuAD).
    #[arg(long)]
    queries: Option<PathBuf>,
    /// Relevance judgments, when not DIR/qrels/SPLIT.tsv.
    #[arg(long)]
    qrels: Option<PathBuf>,
    /// Keep the evaluation index in DIR and reuse it next time (same corpus, model and
    /// chunking), instead of a throw-away one.
    #[arg(long)]
    index_dir: Option<PathBuf>,
    /// Also score other fusions of the same candidates (RRF, other weights).
    #[arg(long)]
    sweep: bool,
    /// Also rerank each query's SEMANTIC and HYBRID candidates with this reranking model
    /// from [models] (`rerank-api` or `bert-cross-encoder`) and score the new order.
    #[arg(long, value_name = "MODEL")]
    rerank: Option<String>,
    /// Candidates per query handed to the reranker (the rest keep their places below them).
    #[arg(long, default_value_t = 50)]
    rerank_candidates: usize,
}

/// Metrics summed over queries, for one retrieval mode.
#[derive(Default)]
struct Scores {
    ndcg: f64,
    recall: f64,
    mrr: f64,
    hits: f64,
    seconds: f64,
}

impl Scores {
    fn add(&mut self, ranked: &[String], relevant: &HashMap<String, u32>) {
        self.ndcg += ndcg_at(10, ranked, relevant);
        self.recall += recall_at(100, ranked, relevant);
        self.mrr += mrr_at(10, ranked, relevant);
        self.hits += f64::from(u8::from(mrr_at(5, ranked, relevant) > 0.0));
    }

    /// A table row; fusions scored on the same candidates (`--sweep`) have no time of their own.
    fn row(&self, mode: &str, n: f64) -> String {
        let ms = if self.seconds > 0.0 {
            format!("{:.1}", self.seconds * 1000.0 / n)
        } else {
            "—".to_owned()
        };
        format!(
            "| {mode} | {:.3} | {:.3} | {:.3} | {:.3} | {ms} |",
            self.ndcg / n,
            self.recall / n,
            self.mrr / n,
            self.hits / n,
        )
    }
}

/// Distinct documents in rank order, at most 100.
fn documents(hits: &[SearchHit]) -> Vec<String> {
    let mut ranked: Vec<String> = Vec::with_capacity(100);
    for hit in hits {
        if !ranked.contains(&hit.chunk.document_key) {
            ranked.push(hit.chunk.document_key.clone());
        }
        if ranked.len() == 100 {
            break;
        }
    }
    ranked
}

pub fn jsonl(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let file = fs_err::File::open(path)?;
    std::io::BufReader::new(file)
        .lines()
        .map(|l| serde_json::from_str(&l?).with_context(|| format!("{}", path.display())))
        .collect()
}

fn text_of(v: &serde_json::Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_owned()
}

pub fn run(config_path: &Path, args: EvalArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    let model = embedding_model_name(&config, args.model)?;
    let embedder = load_model(&config, &model)?;
    // Bedrock's defaults for each strategy, held to the model's limit.
    let limit = embedder.max_content_tokens();
    let chunking = match args.chunking.as_str() {
        "NONE" => ChunkingConfig::None,
        "DEFAULT" => ChunkingConfig::Default,
        "HIERARCHICAL" => ChunkingConfig::Hierarchical {
            parent_max_tokens: 1500,
            child_max_tokens: 300.min(limit),
            overlap_tokens: 60,
        },
        "SEMANTIC" => ChunkingConfig::Semantic {
            max_tokens: 300.min(limit),
            buffer_size: 0,
            breakpoint_percentile_threshold: 95,
        },
        other => bail!("--chunking {other}: use NONE, DEFAULT, HIERARCHICAL or SEMANTIC"),
    };
    let chunker = quarry_chunkers::chunker_for(&chunking, embedder.clone())?;
    let reranking = match &args.rerank {
        Some(name) => Some(Reranking {
            reranker: Rerankers::one(&config, name)?,
            keep: None,
            metadata: MetadataSelection::None,
        }),
        None => None,
    };

    let mut qrels: HashMap<String, HashMap<String, u32>> = HashMap::new();
    let qrels_path = args
        .qrels
        .clone()
        .unwrap_or_else(|| args.dir.join("qrels").join(format!("{}.tsv", args.split)));
    for line in fs_err::read_to_string(&qrels_path)?.lines().skip(1) {
        let parts: Vec<&str> = line.split('\t').collect();
        if let [q, d, score] = parts[..] {
            qrels
                .entry(q.to_owned())
                .or_default()
                .insert(d.to_owned(), score.trim().parse().unwrap_or(0));
        }
    }
    let queries_path = args
        .queries
        .clone()
        .unwrap_or_else(|| args.dir.join("queries.jsonl"));
    let mut queries: Vec<(String, String)> = jsonl(&queries_path)?
        .iter()
        .map(|q| match q.get("question") {
            Some(_) => (text_of(q, "id"), text_of(q, "question")),
            None => (text_of(q, "_id"), text_of(q, "text")),
        })
        .filter(|(id, _)| qrels.contains_key(id))
        .collect();
    if let Some(n) = args.limit {
        queries.truncate(n);
    }
    let corpus = jsonl(&args.dir.join("corpus.jsonl"))?;

    // Kept whole: dropping it removes a throw-away index folder.
    let index = EvalIndex::open(args.index_dir.as_deref(), embedder.dimension())?;
    let (dir, store, lexical) = (&index.dir, &index.store, &index.lexical);
    let started = Instant::now();
    if !store.is_empty()? {
        eprintln!(
            "reusing the index in {} ({} chunks)",
            dir.display(),
            store.len()?
        );
    } else {
        ingest(&corpus, chunker.as_ref(), embedder.as_ref(), store)?;
    }
    let ingest_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "indexed {} documents ({} chunks) in {ingest_secs:.0}s",
        corpus.len(),
        store.len()?
    );

    let fusions: Vec<(String, Fusion)> = if args.sweep {
        let mut all = vec![("RRF k=60".to_owned(), Fusion::Rrf { k: 60.0 })];
        for w in [0.3, 0.4, 0.5, 0.6, 0.7] {
            all.push((
                format!("convex w={w}"),
                Fusion::Convex { semantic_weight: w },
            ));
        }
        all
    } else {
        Vec::new()
    };
    let (mut semantic, mut bm25, mut hybrid) =
        (Scores::default(), Scores::default(), Scores::default());
    let mut others: Vec<Scores> = fusions.iter().map(|_| Scores::default()).collect();
    let (mut semantic_reranked, mut hybrid_reranked) = (Scores::default(), Scores::default());
    // Documents are ranked from more chunks than documents, so chunked corpora still rank 100.
    let walk = 3 * HYBRID_CANDIDATES;
    for batch in queries.chunks(64) {
        let texts: Vec<&str> = batch.iter().map(|(_, t)| t.as_str()).collect();
        let started = Instant::now();
        let vectors = embedder.embed(&texts)?;
        let embed_secs = started.elapsed().as_secs_f64() / batch.len() as f64;
        for ((id, text), vector) in batch.iter().zip(vectors) {
            let relevant = &qrels[id];
            let started = Instant::now();
            let by_vector = store.search(&vector, walk, None)?;
            semantic.seconds += started.elapsed().as_secs_f64() + embed_secs;

            semantic.add(&documents(&by_vector), relevant);
            let started = Instant::now();
            let by_words = lexical_hits(lexical, store, text, walk, None)?;
            bm25.seconds += started.elapsed().as_secs_f64();
            bm25.add(&documents(&by_words), relevant);
            let started = Instant::now();
            let candidates =
                |hits: &[SearchHit]| hits[..hits.len().min(HYBRID_CANDIDATES)].to_vec();
            let (v, w) = (candidates(&by_vector), candidates(&by_words));
            hybrid.seconds += started.elapsed().as_secs_f64();
            let by_both = fused(&v, &w, Fusion::default());
            hybrid.add(&documents(&by_both), relevant);
            for ((_, fusion), scores) in fusions.iter().zip(&mut others) {
                scores.add(&documents(&fused(&v, &w, *fusion)), relevant);
            }
            if let Some(reranking) = &reranking {
                for (hits, scores) in [
                    (by_vector, &mut semantic_reranked),
                    (by_both, &mut hybrid_reranked),
                ] {
                    let started = Instant::now();
                    let reranked = reranked(text, hits, args.rerank_candidates, reranking)?;
                    scores.seconds += started.elapsed().as_secs_f64();
                    scores.add(&documents(&reranked), relevant);
                }
            }
        }
    }
    // HYBRID's time is both searches and the fusion.
    hybrid.seconds += semantic.seconds + bm25.seconds;
    semantic_reranked.seconds += semantic.seconds;
    hybrid_reranked.seconds += hybrid.seconds;
    let n = queries.len().max(1) as f64;
    println!(
        "{} judged by {}: {} documents, {} judged queries, model {model}, chunking {}",
        args.dir.display(),
        qrels_path
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default(),
        corpus.len(),
        queries.len(),
        args.chunking
    );
    println!(
        "| mode | nDCG@10 | recall@100 | MRR@10 | hit@5 | ms/query |\n|---|---|---|---|---|---|"
    );
    println!("{}", semantic.row("SEMANTIC (HNSW)", n));
    println!("{}", bm25.row("BM25 alone", n));
    println!("{}", hybrid.row("HYBRID", n));
    for ((name, _), scores) in fusions.iter().zip(&others) {
        println!("{}", scores.row(&format!("HYBRID, {name}"), n));
    }
    if let Some(name) = &args.rerank {
        let how = format!("reranked by {name} (top {})", args.rerank_candidates);
        println!("{}", semantic_reranked.row(&format!("SEMANTIC, {how}"), n));
        println!("{}", hybrid_reranked.row(&format!("HYBRID, {how}"), n));
    }
    println!(
        "ingestion {:.1} documents/s; query times include embedding the query",
        corpus.len() as f64 / ingest_secs
    );
    Ok(ExitCode::SUCCESS)
}

/// The first `candidates` hits in the reranker's order, the rest after them as they were.
fn reranked(
    query: &str,
    mut hits: Vec<SearchHit>,
    candidates: usize,
    reranking: &Reranking,
) -> anyhow::Result<Vec<SearchHit>> {
    let rest = hits.split_off(candidates.min(hits.len()));
    let mut ranked = rerank_hits(query, hits, reranking)
        .map_err(|e| anyhow::anyhow!("reranking {query:?}: {e}"))?;
    ranked.extend(rest);
    Ok(ranked)
}

/// An evaluation index (HNSW and BM25) in the given folder, kept for the next run, or in a
/// throw-away one.
pub struct EvalIndex {
    pub dir: PathBuf,
    pub store: HybridStore,
    pub lexical: Arc<LexicalIndex>,
    /// Removes the throw-away folder when dropped.
    _scratch: Option<tempfile::TempDir>,
}

impl EvalIndex {
    pub fn open(dir: Option<&Path>, dimension: usize) -> anyhow::Result<Self> {
        let (dir, scratch) = match dir {
            Some(d) => (d.to_owned(), None),
            None => {
                let scratch = tempfile::tempdir()?;
                (scratch.path().to_owned(), Some(scratch))
            }
        };
        let vectors: Arc<dyn VectorStore> = Arc::new(HnswStore::open(
            &dir.join("hnsw"),
            dimension,
            HnswParams::default(),
        )?);
        let lexical = Arc::new(LexicalIndex::open(&dir.join("lexical"))?);
        lexical.rebuild_if_stale(vectors.as_ref())?;
        let store = HybridStore::new(vectors, lexical.clone());
        Ok(Self {
            dir,
            store,
            lexical,
            _scratch: scratch,
        })
    }
}

/// Chunks, embeds and indexes the corpus (documents are "title text").
pub fn ingest(
    corpus: &[serde_json::Value],
    chunker: &dyn Chunker,
    embedder: &dyn Embedder,
    store: &dyn VectorStore,
) -> anyhow::Result<()> {
    for (b, batch) in corpus.chunks(256).enumerate() {
        let mut chunks = Vec::new();
        for doc in batch {
            let id = text_of(doc, "_id");
            let text = format!("{} {}", text_of(doc, "title"), text_of(doc, "text"))
                .trim()
                .to_owned();
            for (i, c) in chunker
                .chunk(&ParsedDocument::plain(text))
                .into_iter()
                .enumerate()
            {
                chunks.push((id.clone(), i, c));
            }
        }
        let texts: Vec<&str> = chunks.iter().map(|(_, _, c)| c.text.as_str()).collect();
        let vectors = embedder.embed(&texts)?;
        let stored: Vec<StoredChunk> = chunks
            .into_iter()
            .zip(vectors)
            .map(|((doc, i, c), vector)| {
                let passage = c.returned_passage();
                StoredChunk {
                    id: quarry_ingest::sync::chunk_id("EVALDS0001", &doc, i, &c.text),
                    data_source_id: "EVALDS0001".into(),
                    source_uri: doc.clone(),
                    document_key: doc,
                    text: passage.text,
                    span: passage.span,
                    page: None,
                    metadata: Default::default(),
                    vector,
                }
            })
            .collect();
        store.upsert(&stored)?;
        eprint!(
            "\rindexed {}/{} documents",
            ((b + 1) * 256).min(corpus.len()),
            corpus.len()
        );
    }
    eprintln!();
    Ok(())
}
