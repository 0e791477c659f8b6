//! `quarry eval-answers DIR`: RetrieveAndGenerate end to end on SQuAD (`../shared/data/squad`):
//! the articles (`DIR/articles/*.txt`) are chunked (Bedrock's default) and indexed, each
//! question of `qa_300.jsonl` is asked with a generation model, and the command prints
//! hit@5 (a retrieved passage holds the gold answer where the gold paragraph has it), answer
//! containment (a gold answer appears in the generated text) and seconds per answer.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use quarry_core::VectorStore;
use quarry_core::config::ChunkingConfig;
use quarry_retrieve::{Indexes, SearchType};
use serde_json::json;

use super::eval::{EvalIndex, ingest, jsonl};
use crate::knowledge_base::{embedding_model_name, load_model};
use crate::rag::{self, Generators, Inference, Question};

#[derive(clap::Args)]
pub struct EvalAnswersArgs {
    /// The SQuAD folder: articles/*.txt, corpus.jsonl (the paragraphs) and the questions.
    dir: PathBuf,
    /// Generation model from [models].
    #[arg(long)]
    model: String,
    /// Embedding model from [models] (needed when there are several).
    #[arg(long)]
    embedding_model: Option<String>,
    /// Questions with answers (`{"id", "question", "answers", "answer_starts", "doc_id"}`).
    #[arg(long, default_value = "qa_300.jsonl")]
    questions: String,
    /// Only the first N questions.
    #[arg(long)]
    limit: Option<usize>,
    /// Passages per question.
    #[arg(short, default_value_t = 5)]
    k: usize,
    #[arg(long, default_value = "SEMANTIC", value_parser = ["SEMANTIC", "HYBRID"])]
    search_type: String,
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Keep the index in DIR and reuse it next time.
    #[arg(long)]
    index_dir: Option<PathBuf>,
}

/// Lower case, letters and digits, single spaces: SQuAD's answer normalisation (less the
/// article removal).
fn normalise(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The gold answer with some of the gold paragraph's words around it: what a retrieved
/// passage must contain to count as the gold paragraph. `start` counts characters, as
/// SQuAD's `answer_start` does.
fn gold_window(paragraph: &str, answer: &str, start: usize) -> String {
    let chars: Vec<char> = paragraph.chars().collect();
    let start = start.min(chars.len());
    let end = (start + answer.chars().count()).min(chars.len());
    let before: String = chars[..start].iter().collect();
    let after: String = chars[end..].iter().collect();
    let before: Vec<&str> = before.split_whitespace().collect();
    let mut words: Vec<&str> = before[before.len().saturating_sub(3)..].to_vec();
    words.push(answer);
    words.extend(after.split_whitespace().take(3));
    normalise(&words.join(" "))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn run(config_path: &Path, args: EvalAnswersArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    let generators = Generators::from_config(&config)?;
    let generator = generators
        .for_arn(&args.model)
        .map_err(anyhow::Error::msg)?;
    let embedding = embedding_model_name(&config, args.embedding_model)?;
    let embedder = load_model(&config, &embedding)?;
    let chunker = quarry_chunkers::chunker_for(&ChunkingConfig::Default, embedder.clone())?;

    let paragraphs: HashMap<String, String> = jsonl(&args.dir.join("corpus.jsonl"))?
        .into_iter()
        .map(|p| {
            (
                p["_id"].as_str().unwrap_or("").to_string(),
                p["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut questions = jsonl(&args.dir.join(&args.questions))?;
    if let Some(n) = args.limit {
        questions.truncate(n);
    }
    let mut articles = Vec::new();
    let mut names: Vec<PathBuf> = fs_err::read_dir(args.dir.join("articles"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for path in names {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        articles.push(json!({"_id": name, "title": "", "text": fs_err::read_to_string(&path)?}));
    }

    let index = EvalIndex::open(args.index_dir.as_deref(), embedder.dimension())?;
    let (store, lexical) = (&index.store, &index.lexical);
    if store.is_empty()? {
        ingest(&articles, chunker.as_ref(), embedder.as_ref(), store)?;
    }
    eprintln!(
        "{} articles, {} chunks; asking {} questions with {}",
        articles.len(),
        store.len()?,
        questions.len(),
        args.model
    );
    let indexes = Indexes {
        store,
        lexical: Some(lexical),
    };

    let (mut hits, mut contained) = (0usize, 0usize);
    let mut seconds = Vec::new();
    let mut tokens = 0usize;
    for (i, q) in questions.iter().enumerate() {
        let text = q["question"].as_str().context("a question without text")?;
        let answers: Vec<&str> = q["answers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .collect();
        let start = q["answer_starts"][0].as_u64().unwrap_or(0) as usize;
        let paragraph = paragraphs
            .get(q["doc_id"].as_str().unwrap_or(""))
            .map(String::as_str)
            .unwrap_or("");
        let window = gold_window(paragraph, answers.first().copied().unwrap_or(""), start);

        let question = Question {
            text: text.to_string(),
            history: Vec::new(),
            k: args.k,
            filter: None,
            search_type: SearchType::parse(&args.search_type).unwrap_or_default(),
            template: None,
            inference: Inference {
                max_tokens: args.max_tokens,
                ..Inference::default()
            },
            reranking: None,
            cancel: Default::default(),
        };
        let started = Instant::now();
        let vector = embedder.embed(&[text])?.pop().unwrap_or_default();
        let prepared = rag::prepare(indexes, &vector, &question, generator.as_ref())?;
        let hit = prepared
            .passages()
            .iter()
            .take(5)
            .any(|p| normalise(p).contains(&window));
        let answer = rag::generate(prepared, generator.as_ref(), &mut |_| {
            ControlFlow::Continue(())
        })?;
        seconds.push(started.elapsed().as_secs_f64());
        tokens += generator.count_tokens(&answer.text);
        let said = normalise(&answer.text);
        let contains = answers.iter().any(|a| said.contains(&normalise(a)));
        hits += usize::from(hit);
        contained += usize::from(contains);
        eprintln!(
            "[{}/{}] hit@5 {} contains {}  {:.1}s  Q: {text}  A: {}",
            i + 1,
            questions.len(),
            u8::from(hit),
            u8::from(contains),
            seconds.last().copied().unwrap_or(0.0),
            answer.text.replace('\n', " ")
        );
    }
    let n = questions.len().max(1) as f64;
    let total: f64 = seconds.iter().sum();
    seconds.sort_by(f64::total_cmp);
    println!(
        "{}: {} questions, {} articles, chunking DEFAULT, {} k={}, model {}",
        args.dir.display(),
        questions.len(),
        articles.len(),
        args.search_type,
        args.k,
        args.model
    );
    println!(
        "| model | hit@5 | answer contains gold | s/answer (mean) | p50 | p95 | answer tokens (mean) |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.3} | {:.3} | {:.1} | {:.1} | {:.1} | {:.0} |",
        args.model,
        hits as f64 / n,
        contained as f64 / n,
        total / n,
        percentile(&seconds, 0.5),
        percentile(&seconds, 0.95),
        tokens as f64 / n
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gold_window_is_the_answer_with_three_words_each_side() {
        let p = "The quick brown fox jumps over the lazy dog near the river.";
        let start = p.find("over").unwrap();
        assert_eq!(
            gold_window(p, "over", start),
            "brown fox jumps over the lazy dog"
        );
        assert_eq!(gold_window(p, "The", 0), "the quick brown fox");
        assert_eq!(normalise("  Denver  Broncos!"), "denver broncos");
        let p = "Café au lait is sold in Paris every day";
        assert_eq!(gold_window(p, "Paris", 24), "is sold in paris every day");
    }
}
