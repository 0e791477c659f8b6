//! ONNX Runtime through the `ort` crate (`load-dynamic`: ORT_DYLIB_PATH names the library).

use std::path::Path;
use std::sync::OnceLock;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;

use crate::{Runtime, encode, mean_pool};

pub struct OrtBert {
    session: Session,
    tokenizer: tokenizers::Tokenizer,
    label: &'static str,
}

static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();

impl OrtBert {
    pub fn load(
        onnx: &Path,
        model_dir: &Path,
        threads: usize,
        label: &'static str,
    ) -> anyhow::Result<Self> {
        if ENVIRONMENT.get().is_none() {
            let lib = std::env::var("ORT_DYLIB_PATH")
                .map_err(|_| anyhow::anyhow!("set ORT_DYLIB_PATH to libonnxruntime.so"))?;
            let env = ort::init_from(lib)?.build()?;
            let _ = ENVIRONMENT.set(env);
        }
        let env = ENVIRONMENT.get().expect("set above");
        // The builder's errors carry the builder (not Send), so they become text here.
        let text = |e: ort::Error<_>| anyhow::anyhow!("{e}");
        let session = Session::builder(env)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(text)?
            .with_intra_threads(threads)
            .map_err(text)?
            .commit_from_file(onnx)?;
        let tokenizer = crate::tokenizer(model_dir)?;
        Ok(Self {
            session,
            tokenizer,
            label,
        })
    }
}

impl Runtime for OrtBert {
    fn name(&self) -> String {
        format!("ONNX Runtime 1.31.1, {}", self.label)
    }

    fn embed(&mut self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        let ids = encode(&self.tokenizer, texts)?;
        let (batch, seq) = (ids.len(), ids.iter().map(Vec::len).max().unwrap_or(0));
        let mut input = vec![0i64; batch * seq];
        let mut mask = vec![0i64; batch * seq];
        for (b, s) in ids.iter().enumerate() {
            for (t, &id) in s.iter().enumerate() {
                input[b * seq + t] = i64::from(id);
                mask[b * seq + t] = 1;
            }
        }
        let shape = [batch as i64, seq as i64];
        let outputs = self.session.run(ort::inputs![
            "input_ids" => Tensor::from_array((shape, input))?,
            "attention_mask" => Tensor::from_array((shape, mask))?,
            "token_type_ids" => Tensor::from_array((shape, vec![0i64; batch * seq]))?,
        ])?;
        let (out_shape, hidden) = outputs["last_hidden_state"].try_extract_tensor::<f32>()?;
        let width = out_shape[2] as usize;
        Ok(ids
            .iter()
            .enumerate()
            .map(|(b, s)| {
                mean_pool(
                    &hidden[b * seq * width..(b + 1) * seq * width],
                    s.len(),
                    width,
                )
            })
            .collect())
    }
}
