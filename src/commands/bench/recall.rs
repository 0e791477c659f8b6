//! `quarry bench recall KB`: how close the embedded store's HNSW graph comes to exact search.
//! The queries are a BEIR queries file embedded with the knowledge base's model; for each
//! `ef_search` the graph's top 10 is compared with the exact top 10 over every chunk, and the
//! graph's search alone (no embedding, no SQLite, one thread) is timed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use quarry_core::config::{HnswQuantization, VectorStoreConfig};
use quarry_vectorstores::{HnswParams, HnswStore};

use crate::knowledge_base::load_model;

#[derive(clap::Args)]
pub struct RecallArgs {
    /// Knowledge base id or name (its vector store must be the embedded HNSW one).
    kb: String,
    /// A BEIR queries.jsonl (`{"_id", "text"}` per line).
    #[arg(long, default_value = "../shared/data/scifact/queries.jsonl")]
    queries: PathBuf,
    /// How many of its queries to use.
    #[arg(long, default_value_t = 300)]
    limit: usize,
    /// The ef_search settings to measure.
    #[arg(long, value_delimiter = ',', default_value = "10,20,40,60,100,200,400")]
    ef: Vec<usize>,
    /// How the graph holds its vectors (`none` or `int8`); the knowledge base's setting by
    /// default. Another setting than the saved graph's rebuilds it (and saves it so).
    #[arg(long)]
    quantization: Option<String>,
    /// Also write the full-precision vectors and the embedded queries to this folder
    /// (`vectors.f32`, `queries.f32`: little-endian rows of unit vectors; `meta.json`), for
    /// measuring other libraries on the same data (`benches/million/anchors.py`).
    #[arg(long)]
    dump: Option<PathBuf>,
}

const K: usize = 10;

pub fn run(config_path: &Path, args: RecallArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    let Some(kb) = config.knowledge_base(&args.kb) else {
        bail!("no knowledge base {:?}", args.kb);
    };
    let VectorStoreConfig::Hnsw {
        m,
        ef_construction,
        quantization,
        ..
    } = kb.vector_store
    else {
        bail!(
            "knowledge base {} does not use the embedded HNSW store",
            args.kb
        );
    };
    let quantization = match args.quantization.as_deref() {
        None => quantization,
        Some("none") => HnswQuantization::None,
        Some("int8") => HnswQuantization::Int8,
        Some(other) => bail!("--quantization {other}: none or int8"),
    };
    // The serving generation's index (after model switches, not generation 0's).
    let kb_dir = config.server.data_dir.join(kb.id.get_ref().as_str());
    let state = crate::generations::IndexState::load(&kb_dir, kb.embedding_model.get_ref())?;
    let (_, store_dir) =
        crate::generations::location(&kb.vector_store, &kb_dir, state.active.number);
    let embedder = load_model(&config, &state.active.model)?;
    let started = Instant::now();
    let store = HnswStore::open(
        &store_dir.join("hnsw"),
        embedder.dimension(),
        HnswParams {
            max_connections: m,
            ef_construction,
            quantization: crate::knowledge_base::hnsw_quantization(quantization),
            ..HnswParams::default()
        },
    )?;
    let chunks = quarry_core::VectorStore::len(&store)?;
    println!(
        "opened {chunks} chunks in {:.1}s ({:?}); quantization {quantization:?}: vectors {:.0} MiB in memory, resident {:.0} MiB",
        started.elapsed().as_secs_f64(),
        store.opened(),
        store.vector_bytes() as f64 / 1048576.0,
        resident_mib()
    );
    let texts: Vec<String> = crate::commands::eval::jsonl(&args.queries)
        .with_context(|| format!("reading {}", args.queries.display()))?
        .iter()
        .take(args.limit)
        .map(|q| q["text"].as_str().unwrap_or("").to_owned())
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let queries = embedder.embed(&refs)?;
    // Exact search over the full-precision vectors (whatever the graph holds).
    let all = store.full_precision_vectors()?;
    if let Some(dir) = &args.dump {
        dump(dir, &all, &queries)?;
    }
    let started = Instant::now();
    let exact = exact_tops(&all, &queries);
    let exact_qps = queries.len() as f64 / started.elapsed().as_secs_f64();
    drop(all);
    println!(
        "{} queries, m = {m}, ef_construction = {ef_construction}; exact search {exact_qps:.0} queries/s",
        queries.len()
    );
    println!(
        "| ef_search | recall@10 | queries/s (search{}, 1 thread) |\n|---|---|---|",
        if quantization == HnswQuantization::Int8 {
            " and rescoring"
        } else {
            " only"
        }
    );
    // One untimed pass first, so the first setting measured does not pay for the pages the
    // graph touches the first time (the anchors script makes the same pass).
    if let Some(&ef) = args.ef.first() {
        for q in &queries {
            store.graph_top(q, K, ef)?;
        }
    }
    let mut reached = None;
    for &ef in &args.ef {
        let started = Instant::now();
        let found = queries
            .iter()
            .map(|q| store.graph_top(q, K, ef))
            .collect::<Result<Vec<Vec<String>>, _>>()?;
        let qps = queries.len() as f64 / started.elapsed().as_secs_f64();
        let hits: usize = found
            .iter()
            .zip(&exact)
            .map(|(f, e)| f.iter().filter(|id| e.contains(id)).count())
            .sum();
        let recall = hits as f64 / (K * queries.len()).max(1) as f64;
        println!("| {ef} | {recall:.3} | {qps:.0} |");
        if recall >= 0.95 && reached.is_none() {
            reached = Some((ef, qps));
        }
    }
    // (the line benches/million.sh compares with the anchors' own)
    match reached {
        Some((ef, qps)) => println!("RESULT quarry {quantization:?} ef={ef} qps={qps:.0}"),
        None => println!("RESULT quarry {quantization:?} recall 0.95 not reached"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The exact top [`K`] of every query, by cosine over every vector: queries taken in blocks,
/// each block scored in one pass over the vectors (which are unit vectors already).
fn exact_tops(all: &[(String, Vec<f32>)], queries: &[Vec<f32>]) -> Vec<Vec<String>> {
    const BLOCK: usize = 16;
    let mut out = Vec::with_capacity(queries.len());
    for block in queries.chunks(BLOCK) {
        let units: Vec<Vec<f32>> = block
            .iter()
            .map(|q| {
                let norm = quarry_vectorstores::hnsw::dot(q, q)
                    .sqrt()
                    .max(f32::MIN_POSITIVE);
                q.iter().map(|x| x / norm).collect()
            })
            .collect();
        let mut scores: Vec<Vec<(f32, u32)>> = vec![Vec::with_capacity(all.len()); units.len()];
        for (i, (_, v)) in all.iter().enumerate() {
            for (q, s) in units.iter().zip(&mut scores) {
                s.push((quarry_vectorstores::hnsw::dot(q, v), i as u32));
            }
        }
        for mut s in scores {
            let k = K.min(s.len());
            if k == 0 {
                out.push(Vec::new());
                continue;
            }
            s.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            s.truncate(k);
            s.sort_by(|a, b| b.0.total_cmp(&a.0));
            out.push(
                s.into_iter()
                    .map(|(_, i)| all[i as usize].0.clone())
                    .collect(),
            );
        }
    }
    out
}

/// This process's resident memory (VmRSS), in MiB.
pub fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Writes the vectors and the queries as unit vectors, row after row, little-endian f32.
fn dump(dir: &Path, all: &[(String, Vec<f32>)], queries: &[Vec<f32>]) -> anyhow::Result<()> {
    use std::io::Write;
    fs_err::create_dir_all(dir)?;
    let write = |name: &str, rows: &mut dyn Iterator<Item = &Vec<f32>>| -> anyhow::Result<usize> {
        let mut out = std::io::BufWriter::new(fs_err::File::create(dir.join(name))?);
        let mut n = 0;
        for row in rows {
            let norm = row
                .iter()
                .map(|x| x * x)
                .sum::<f32>()
                .sqrt()
                .max(f32::MIN_POSITIVE);
            for x in row {
                out.write_all(&(x / norm).to_le_bytes())?;
            }
            n += 1;
        }
        out.flush()?;
        Ok(n)
    };
    let n = write("vectors.f32", &mut all.iter().map(|(_, v)| v))?;
    let q = write("queries.f32", &mut queries.iter())?;
    let dim = queries.first().map_or(0, Vec::len);
    fs_err::write(
        dir.join("meta.json"),
        serde_json::json!({ "vectors": n, "queries": q, "dimension": dim, "k": K }).to_string(),
    )?;
    eprintln!("wrote {n} vectors and {q} queries to {}", dir.display());
    Ok(())
}
