//! The tokenizer of a GGUF model, rebuilt from its metadata: a byte-level BPE
//! (`tokenizer.ggml.model = "gpt2"`) with the vocabulary, merges and control tokens the file
//! carries, and the pre-tokenizer its `tokenizer.ggml.pre` names.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::{Content, Value};
use serde_json::{Value as Json, json};
use tokenizers::Tokenizer;

/// GGUF token types (llama.cpp's `llama_token_type`).
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

pub struct GgufTokenizer {
    pub tokenizer: Tokenizer,
    /// Token ids that end the model's turn (end of text, end of message).
    pub end_of_turn: Vec<u32>,
    pub bos: Option<String>,
    pub eos: Option<String>,
}

fn meta<'a>(content: &'a Content, key: &str) -> Result<&'a Value, String> {
    content
        .metadata
        .get(key)
        .ok_or_else(|| format!("the GGUF file has no {key}"))
}

fn strings(value: &Value, key: &str) -> Result<Vec<String>, String> {
    value
        .to_vec()
        .map_err(|e| format!("{key}: {e}"))?
        .iter()
        .map(|v| v.to_string().cloned().map_err(|e| format!("{key}: {e}")))
        .collect()
}

/// The pre-tokenizer llama.cpp uses for a `tokenizer.ggml.pre` name: byte-level with GPT-2's
/// split, preceded by single-digit splitting for the StarCoder family (SmolLM among them).
fn pre_tokenizer(pre: &str) -> Json {
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    match pre {
        "smollm" | "starcoder" | "refact" | "codeshell" | "command-r" => json!({
            "type": "Sequence",
            "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level]
        }),
        _ => byte_level,
    }
}

pub fn from_gguf(content: &Content) -> Result<GgufTokenizer, String> {
    let model = meta(content, "tokenizer.ggml.model")?
        .to_string()
        .map_err(|e| e.to_string())?;
    if model != "gpt2" {
        return Err(format!(
            "tokenizer.ggml.model {model:?} is not supported (only byte-level BPE, \"gpt2\")"
        ));
    }
    let tokens = strings(
        meta(content, "tokenizer.ggml.tokens")?,
        "tokenizer.ggml.tokens",
    )?;
    let merges = strings(
        meta(content, "tokenizer.ggml.merges")?,
        "tokenizer.ggml.merges",
    )?;
    let types: Vec<i32> = match content.metadata.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|t| t.to_i32().unwrap_or(1))
            .collect(),
        None => vec![1; tokens.len()],
    };
    let pre = content
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str)
        .unwrap_or("default");
    let id_of = |key: &str| {
        content
            .metadata
            .get(key)
            .and_then(|v| v.to_u32().ok())
            .filter(|&id| (id as usize) < tokens.len())
    };

    let vocab: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let added: Vec<Json> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(types.get(*i), Some(&CONTROL) | Some(&USER_DEFINED)))
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": types[i] == CONTROL})
        })
        .collect();
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer(pre),
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges}
    });
    let tokenizer: Tokenizer = spec
        .to_string()
        .parse()
        .map_err(|e| format!("could not build the tokenizer from the GGUF metadata: {e}"))?;

    let eos = id_of("tokenizer.ggml.eos_token_id");
    let mut end_of_turn: Vec<u32> = eos.into_iter().collect();
    for name in ["<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end|>"] {
        if let Some(&id) = vocab.get(name) {
            end_of_turn.push(id as u32);
        }
    }
    end_of_turn.sort_unstable();
    end_of_turn.dedup();
    Ok(GgufTokenizer {
        tokenizer,
        end_of_turn,
        bos: id_of("tokenizer.ggml.bos_token_id").map(|id| tokens[id as usize].clone()),
        eos: eos.map(|id| tokens[id as usize].clone()),
    })
}
