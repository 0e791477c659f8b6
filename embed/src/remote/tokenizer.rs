//! How a remote model counts tokens, so chunks fit it: OpenAI's BPEs (tiktoken), a Hugging
//! Face `tokenizer.json`, or an estimate when neither is named.

use std::borrow::Cow;

use tiktoken_rs::CoreBPE;
use tokenizers::Tokenizer;

pub enum RemoteTokenizer {
    Tiktoken(Box<CoreBPE>),
    HuggingFace(Box<Tokenizer>),
    /// About four characters a token (what OpenAI's guidance says of English).
    Estimate,
}

impl RemoteTokenizer {
    /// `cl100k_base`, `o200k_base`, the path of a `tokenizer.json`, or none.
    pub fn load(name: Option<&str>) -> Result<Self, String> {
        Ok(match name {
            None => Self::Estimate,
            Some("cl100k_base") => Self::Tiktoken(Box::new(
                tiktoken_rs::cl100k_base().map_err(|e| format!("cl100k_base: {e}"))?,
            )),
            Some("o200k_base") => Self::Tiktoken(Box::new(
                tiktoken_rs::o200k_base().map_err(|e| format!("o200k_base: {e}"))?,
            )),
            Some(path) => {
                let mut t = Tokenizer::from_file(path).map_err(|e| format!("{path}: {e}"))?;
                // sentence-transformers' tokenizer.json files often pad to a fixed length and
                // truncate short: neither belongs in a count.
                t.with_padding(None);
                t.with_truncation(None)
                    .map_err(|e| format!("{path}: {e}"))?;
                Self::HuggingFace(Box::new(t))
            }
        })
    }

    pub fn count(&self, text: &str) -> usize {
        match self {
            Self::Tiktoken(bpe) => bpe.encode_ordinary(text).len(),
            Self::HuggingFace(t) => t
                .encode(text, false)
                .map(|e| e.get_ids().len())
                .unwrap_or_else(|_| text.chars().count().div_ceil(4)),
            Self::Estimate => text.chars().count().div_ceil(4),
        }
    }

    /// The longest start of `text` that holds at most `max` tokens.
    pub fn truncate<'a>(&self, text: &'a str, max: usize) -> Cow<'a, str> {
        match self {
            Self::Tiktoken(bpe) => {
                let tokens = bpe.encode_ordinary(text);
                if tokens.len() <= max {
                    return Cow::Borrowed(text);
                }
                // Decoding a cut list can end inside a character; drop tokens until it does not.
                let mut end = max;
                while end > 0 {
                    if let Ok(s) = bpe.decode(&tokens[..end]) {
                        return Cow::Owned(s);
                    }
                    end -= 1;
                }
                Cow::Borrowed("")
            }
            Self::HuggingFace(t) => match t.encode(text, false) {
                Ok(e) if e.get_ids().len() > max => {
                    let end = e.get_offsets().get(max).map_or(text.len(), |o| o.0);
                    Cow::Borrowed(&text[..floor_boundary(text, end)])
                }
                _ => Cow::Borrowed(text),
            },
            Self::Estimate => match text.char_indices().nth(max * 4) {
                Some((end, _)) => Cow::Borrowed(&text[..end]),
                None => Cow::Borrowed(text),
            },
        }
    }
}

fn floor_boundary(s: &str, mut at: usize) -> usize {
    at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Token ids and counts OpenAI's own tiktoken gives these strings.
    #[test]
    fn openai_bpes_count_known_strings() {
        let cl100k = RemoteTokenizer::load(Some("cl100k_base")).unwrap();
        assert_eq!(cl100k.count("hello world"), 2);
        assert_eq!(cl100k.count("Hello, world!"), 4);
        assert_eq!(cl100k.count("How's it going?"), 5);
        let RemoteTokenizer::Tiktoken(bpe) = &cl100k else {
            unreachable!()
        };
        assert_eq!(bpe.encode_ordinary("hello world"), vec![15339, 1917]);
        let o200k = RemoteTokenizer::load(Some("o200k_base")).unwrap();
        assert_eq!(o200k.count("hello world"), 2);
        let long = " word".repeat(1000);
        assert_eq!(cl100k.count(&long), 1000);
        let cut = cl100k.truncate(&long, 100);
        assert_eq!(cl100k.count(&cut), 100);
        assert!(long.starts_with(cut.as_ref()));
    }

    #[test]
    fn the_estimate_and_its_cut_agree() {
        let t = RemoteTokenizer::load(None).unwrap();
        assert_eq!(t.count("abcdefgh"), 2);
        assert_eq!(t.count("abcdefghi"), 3);
        let text = "é".repeat(100);
        let cut = t.truncate(&text, 10);
        assert_eq!(cut.chars().count(), 40);
        assert!(RemoteTokenizer::load(Some("/no/such/tokenizer.json")).is_err());
    }
}
