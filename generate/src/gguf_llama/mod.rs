//! The embedded default generator: a llama-architecture GGUF model (SmolLM2-135M-Instruct)
//! run in-process by candle's quantized llama, with the tokenizer and chat template the file
//! carries. One instance of the weights is loaded on first use and shared; requests take
//! turns on it.

mod chat_template;
mod tokenizer;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::ModelWeights;

use self::chat_template::ChatTemplate;
use self::tokenizer::GgufTokenizer;
use crate::stop::StopScanner;
use crate::{FinishReason, GenerateError, Generation, GenerationRequest, Generator};

/// Prompt tokens fed to the model per forward pass.
const PREFILL_CHUNK: usize = 256;
/// Small models loop without it; 1.0 turns it off.
const REPEAT_PENALTY: f32 = 1.1;
const REPEAT_WINDOW: usize = 64;

struct Loaded {
    model: Mutex<ModelWeights>,
    tokenizer: GgufTokenizer,
    template: ChatTemplate,
    context_tokens: usize,
}

pub struct GgufLlama {
    path: PathBuf,
    loaded: OnceLock<Result<Loaded, String>>,
}

impl GgufLlama {
    /// A model read from `path` when first used (so a server starts without it).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            loaded: OnceLock::new(),
        }
    }

    fn loaded(&self) -> Result<&Loaded, GenerateError> {
        self.loaded
            .get_or_init(|| load(&self.path))
            .as_ref()
            .map_err(|e| GenerateError::Backend(e.clone()))
    }

    /// Loads the model now (for commands that want the failure before they start).
    pub fn load(&self) -> Result<(), GenerateError> {
        self.loaded().map(|_| ())
    }

    /// The prompt text the chat template makes of these messages.
    pub fn render(&self, messages: &[crate::Message]) -> Result<String, GenerateError> {
        self.loaded()?
            .template
            .render(messages)
            .map_err(GenerateError::Backend)
    }
}

fn load(path: &Path) -> Result<Loaded, String> {
    let started = Instant::now();
    let mut file = std::fs::File::open(path).map_err(|e| {
        format!(
            "cannot open the model {}: {e} (run `make models` to fetch SmolLM2-135M-Instruct)",
            path.display()
        )
    })?;
    let content = gguf_file::Content::read(&mut file)
        .map_err(|e| format!("{} is not a GGUF file: {e}", path.display()))?;
    let context_tokens = content
        .metadata
        .get("llama.context_length")
        .and_then(|v| v.to_u32().ok())
        .unwrap_or(2048) as usize;
    let tokenizer = tokenizer::from_gguf(&content)?;
    let template_source = content
        .metadata
        .get("tokenizer.chat_template")
        .and_then(|v| v.to_string().ok())
        .cloned();
    let template = ChatTemplate::new(
        template_source.as_deref(),
        tokenizer.bos.clone(),
        tokenizer.eos.clone(),
    )?;
    let model = match requantized(&content, &mut file)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
    {
        Some(bytes) => {
            let mut cursor = std::io::Cursor::new(bytes);
            let content = gguf_file::Content::read(&mut cursor).map_err(|e| e.to_string())?;
            ModelWeights::from_gguf(content, &mut cursor, &Device::Cpu)
        }
        None => ModelWeights::from_gguf(content, &mut file, &Device::Cpu),
    }
    .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
    tracing::debug!(
        model = %path.display(),
        context_tokens,
        ms = started.elapsed().as_millis() as u64,
        "generation model loaded"
    );
    Ok(Loaded {
        model: Mutex::new(model),
        tokenizer,
        template,
        context_tokens,
    })
}

/// candle multiplies Q4_1 and Q5_x weights without SIMD (about 30 prompt tokens/s here);
/// such tensors are re-quantized to Q8_0, which it multiplies with AVX2 — near-lossless (8
/// bits for values that had 4 or 5), several times faster. Returns the rewritten GGUF file
/// in memory, or `None` when nothing needs it.
fn requantized(
    content: &gguf_file::Content,
    file: &mut std::fs::File,
) -> candle_core::Result<Option<Vec<u8>>> {
    use candle_core::quantized::{GgmlDType, QTensor};
    let slow = |d: GgmlDType| matches!(d, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1);
    if !content.tensor_infos.values().any(|t| slow(t.ggml_dtype)) {
        return Ok(None);
    }
    let mut tensors = Vec::with_capacity(content.tensor_infos.len());
    for name in content.tensor_infos.keys() {
        let t = content.tensor(file, name, &Device::Cpu)?;
        let t = if slow(t.dtype()) && t.shape().dims().last().is_some_and(|d| d % 32 == 0) {
            QTensor::quantize(&t.dequantize(&Device::Cpu)?, GgmlDType::Q8_0)?
        } else {
            t
        };
        tensors.push((name.as_str(), t));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensor_refs)?;
    Ok(Some(out.into_inner()))
}

fn backend(e: impl std::fmt::Display) -> GenerateError {
    GenerateError::Backend(format!("the local model failed: {e}"))
}

impl Generator for GgufLlama {
    fn warm_up(&self) -> Result<(), GenerateError> {
        self.load()
    }

    fn context_tokens(&self) -> usize {
        self.loaded().map(|l| l.context_tokens).unwrap_or(2048)
    }

    fn count_tokens(&self, text: &str) -> usize {
        match self.loaded() {
            Ok(l) => l
                .tokenizer
                .tokenizer
                .encode(text, false)
                .map(|e| e.len())
                .unwrap_or(text.len() / 3),
            Err(_) => text.len() / 3,
        }
    }

    fn generate(
        &self,
        request: &GenerationRequest,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, GenerateError> {
        let loaded = self.loaded()?;
        let prompt = loaded
            .template
            .render(&request.messages)
            .map_err(GenerateError::Backend)?;
        let tokenizer = &loaded.tokenizer.tokenizer;
        let prompt_ids = tokenizer
            .encode(prompt.as_str(), false)
            .map_err(backend)?
            .get_ids()
            .to_vec();
        if prompt_ids.is_empty() {
            return Err(GenerateError::Invalid("the prompt is empty".into()));
        }
        let room = loaded.context_tokens.saturating_sub(prompt_ids.len());
        if room == 0 {
            return Err(GenerateError::Invalid(format!(
                "the prompt takes {} tokens; the model's context holds {}",
                prompt_ids.len(),
                loaded.context_tokens
            )));
        }
        let max_tokens = request.max_tokens.min(room);
        let sampling = match request.temperature.filter(|&t| t > 1e-7) {
            None => Sampling::ArgMax,
            Some(temperature) => match request.top_p.filter(|&p| p > 0.0 && p < 1.0) {
                Some(p) => Sampling::TopP { p, temperature },
                None => Sampling::All { temperature },
            },
        };
        let mut sampler = LogitsProcessor::from_sampling(request.seed, sampling);
        let mut stops = StopScanner::new(&request.stop_sequences);

        let cancelled = || Generation {
            text: String::new(),
            finish: FinishReason::Cancelled,
            prompt_tokens: prompt_ids.len(),
            completion_tokens: 0,
        };
        let mut model = loaded.model.lock().unwrap_or_else(|p| p.into_inner());
        model.clear_kv_cache();
        let started = Instant::now();
        let mut logits = None;
        for (i, chunk) in prompt_ids.chunks(PREFILL_CHUNK).enumerate() {
            if request.cancel.is_cancelled() {
                return Ok(cancelled());
            }
            let input = Tensor::new(chunk, &Device::Cpu)
                .and_then(|t| t.unsqueeze(0))
                .map_err(backend)?;
            logits = Some(model.forward(&input, i * PREFILL_CHUNK).map_err(backend)?);
        }
        let prefill = started.elapsed();
        let mut logits = logits.expect("the prompt is not empty");
        let mut generated: Vec<u32> = Vec::new();
        let mut emitted = 0usize; // bytes of the decoded answer already passed to the scanner
        let mut text = String::new();
        let mut finish = FinishReason::Length;
        while generated.len() < max_tokens {
            if request.cancel.is_cancelled() {
                finish = FinishReason::Cancelled;
                break;
            }
            let mut l = logits
                .squeeze(0)
                .and_then(|t| t.to_dtype(candle_core::DType::F32))
                .map_err(backend)?;
            if REPEAT_PENALTY != 1.0 && !generated.is_empty() {
                let start = generated.len().saturating_sub(REPEAT_WINDOW);
                l = candle_transformers::utils::apply_repeat_penalty(
                    &l,
                    REPEAT_PENALTY,
                    &generated[start..],
                )
                .map_err(backend)?;
            }
            let next = sampler.sample(&l).map_err(backend)?;
            if loaded.tokenizer.end_of_turn.contains(&next) {
                finish = FinishReason::EndOfTurn;
                break;
            }
            generated.push(next);
            let decoded = tokenizer.decode(&generated, true).map_err(backend)?;
            // Hold back an incomplete UTF-8 sequence until its last byte arrives.
            if !decoded.ends_with('\u{FFFD}') && decoded.len() > emitted {
                let piece = &decoded[emitted..];
                emitted = decoded.len();
                let (safe, stopped) = stops.push(piece);
                if !safe.is_empty() {
                    text.push_str(&safe);
                    if on_text(&safe).is_break() {
                        finish = FinishReason::Cancelled;
                        break;
                    }
                }
                if stopped {
                    finish = FinishReason::StopSequence;
                    break;
                }
            }
            let input = Tensor::new(&[next], &Device::Cpu)
                .and_then(|t| t.unsqueeze(0))
                .map_err(backend)?;
            logits = model
                .forward(&input, prompt_ids.len() + generated.len() - 1)
                .map_err(backend)?;
        }
        if finish != FinishReason::StopSequence && finish != FinishReason::Cancelled {
            let rest = stops.finish();
            if !rest.is_empty() {
                text.push_str(&rest);
                let _ = on_text(&rest);
            }
        }
        let decode = started.elapsed() - prefill;
        tracing::debug!(
            prompt_tokens = prompt_ids.len(),
            completion_tokens = generated.len(),
            prefill_ms = prefill.as_millis() as u64,
            tokens_per_s = generated.len() as f64 / decode.as_secs_f64().max(1e-9),
            "generated"
        );
        Ok(Generation {
            text,
            finish,
            prompt_tokens: prompt_ids.len(),
            completion_tokens: generated.len(),
        })
    }
}
