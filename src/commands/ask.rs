//! `quarry ask KB "QUESTION"`: RetrieveAndGenerate from the command line — the answer
//! streamed as it is generated, then its citations; `--json` prints Bedrock's response.
//! `--session ID` continues a conversation (sessions are shared with the server).

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use quarry_generate::{SessionStore, Sessions, Turn};
use quarry_retrieve::SearchType;

use crate::knowledge_base::KnowledgeBase;
use crate::rag::{self, Generators, Inference, Question};

#[derive(clap::Args)]
pub struct AskArgs {
    /// Knowledge base id or name.
    kb: String,
    /// The question.
    question: String,
    /// Generation model from [models] (needed when there are several).
    #[arg(long)]
    model: Option<String>,
    /// Continue this session (its id is printed after each answer).
    #[arg(long)]
    session: Option<String>,
    /// Passages to retrieve.
    #[arg(short, default_value_t = quarry_retrieve::DEFAULT_RESULTS)]
    k: usize,
    /// SEMANTIC (vectors) or HYBRID (vectors and BM25, fused).
    #[arg(long, default_value = "SEMANTIC", value_parser = ["SEMANTIC", "HYBRID"])]
    search_type: String,
    /// A Bedrock RetrievalFilter, as JSON.
    #[arg(long)]
    filter: Option<String>,
    /// Longest answer, in tokens.
    #[arg(long, default_value_t = rag::DEFAULT_MAX_TOKENS)]
    max_tokens: usize,
    /// 0 is greedy (the default).
    #[arg(long)]
    temperature: Option<f64>,
    /// Print Bedrock's RetrieveAndGenerate response JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(config_path: &Path, args: AskArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config_file::load(config_path)?;
    let generators = Generators::from_config(&config)?;
    let model = match args.model {
        Some(m) => m,
        None => {
            let names: Vec<&str> = generators.names().collect();
            match names.as_slice() {
                [one] => one.to_string(),
                [] => {
                    bail!("no generation model in [models] (kind = \"gguf-llama\" or \"openai\")")
                }
                _ => bail!(
                    "several generation models are configured; choose one with --model ({})",
                    names.join(", ")
                ),
            }
        }
    };
    let generator = generators.for_arn(&model).map_err(anyhow::Error::msg)?;
    let filter = super::query::parse_filter(args.filter.as_deref())?;
    let sessions = SessionStore::new(
        config.server.data_dir.join("sessions"),
        Duration::from_secs(config.server.session_idle_minutes * 60),
    );
    let history = match &args.session {
        Some(id) => sessions.turns(id, None)?,
        None => Vec::new(),
    };
    let kb = KnowledgeBase::open(&config, &args.kb)?;
    let question = Question {
        text: args.question.clone(),
        history,
        k: args.k,
        filter,
        search_type: SearchType::parse(&args.search_type).unwrap_or_default(),
        template: None,
        inference: Inference {
            max_tokens: args.max_tokens,
            temperature: args.temperature,
            ..Inference::default()
        },
        reranking: None,
        cancel: Default::default(),
    };
    let vector = kb
        .embedder
        .embed(&[rag::retrieval_text(&question).as_str()])?
        .pop()
        .unwrap_or_default();
    let prepared = rag::prepare(kb.indexes(), &vector, &question, generator.as_ref())?;
    let mut stdout = std::io::stdout();
    let answer = rag::generate(prepared, generator.as_ref(), &mut |piece| {
        if !args.json {
            let _ = write!(stdout, "{piece}");
            let _ = stdout.flush();
        }
        ControlFlow::Continue(())
    })?;
    let session_id = match args.session {
        Some(id) => id,
        None => sessions.create(&format!("local/{}", kb.id()))?,
    };
    sessions.append(
        &session_id,
        None,
        Turn {
            question: args.question,
            answer: answer.text.clone(),
        },
    )?;
    if args.json {
        let response = answer.into_response(&session_id);
        println!("{}", serde_json::to_string_pretty(&response)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("\n");
    for (i, c) in answer.citations.iter().enumerate() {
        let span = &c["generatedResponsePart"]["textResponsePart"]["span"];
        let sources: Vec<&str> = c["retrievedReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["metadata"]["x-amz-bedrock-kb-source-uri"].as_str())
            .collect();
        if !sources.is_empty() {
            println!(
                "[{}] characters {}..{}: {}",
                i + 1,
                span["start"],
                span["end"],
                sources.join(", ")
            );
        }
    }
    eprintln!("session: {session_id} (continue with --session {session_id})");
    Ok(ExitCode::SUCCESS)
}
