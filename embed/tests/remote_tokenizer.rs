//! A remote model's Hugging Face tokenizer counts as the in-process encoder does: the same
//! word pieces, whatever padding or truncation its `tokenizer.json` asks for.

use std::path::PathBuf;

use quarry_core::TokenCounter;
use quarry_embed::remote::RemoteTokenizer;
use quarry_embed::{BertEmbedder, ModelFiles};

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2")
}

#[test]
fn a_tokenizer_json_counts_like_the_model_it_belongs_to() {
    let dir = model_dir();
    let remote = RemoteTokenizer::load(Some(dir.join("tokenizer.json").to_str().unwrap())).unwrap();
    let local = BertEmbedder::load(ModelFiles::locate(Some(&dir), None).unwrap()).unwrap();
    let long = "Northwind Robotics builds warehouse robots. ".repeat(60);
    for text in [
        "hello world",
        "How many vacation days do new employees get?",
        &long,
    ] {
        assert_eq!(remote.count(text), local.count_tokens(text), "{text}");
    }
    assert!(remote.count(&long) > 256);
    let cut = remote.truncate(&long, 100);
    assert_eq!(remote.count(&cut), 100);
}
