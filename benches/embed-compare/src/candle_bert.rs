//! candle-transformers' BERT on the CPU, with padding and an attention mask.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};

use crate::{Runtime, encode, mean_pool};

pub struct CandleBert {
    model: BertModel,
    tokenizer: tokenizers::Tokenizer,
}

impl CandleBert {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let config: Config =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
        // SAFETY: the weights file is not modified while mapped.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[dir.join("model.safetensors")],
                DType::F32,
                &Device::Cpu,
            )?
        };
        let model = BertModel::load(vb, &config)?;
        let tokenizer = crate::tokenizer(dir)?;
        Ok(Self { model, tokenizer })
    }
}

impl Runtime for CandleBert {
    fn name(&self) -> String {
        "candle-transformers 0.11 BERT, fp32".into()
    }

    fn embed(&mut self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        let ids = encode(&self.tokenizer, texts)?;
        let (batch, seq) = (ids.len(), ids.iter().map(Vec::len).max().unwrap_or(0));
        let mut input = vec![0u32; batch * seq];
        let mut mask = vec![0u32; batch * seq];
        for (b, s) in ids.iter().enumerate() {
            for (t, &id) in s.iter().enumerate() {
                input[b * seq + t] = id;
                mask[b * seq + t] = 1;
            }
        }
        let device = Device::Cpu;
        let input = Tensor::from_vec(input, (batch, seq), &device)?;
        let mask = Tensor::from_vec(mask, (batch, seq), &device)?;
        let types = input.zeros_like()?;
        let hidden = self.model.forward(&input, &types, Some(&mask))?;
        let width = hidden.dim(2)?;
        let hidden: Vec<f32> = hidden.flatten_all()?.to_vec1()?;
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
