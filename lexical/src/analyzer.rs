//! How text becomes terms, for indexing and for queries alike: split on anything that is not
//! a letter or digit, drop very long tokens, lower-case, fold accents, drop English stop
//! words, and stem (Snowball English), so "proteins" finds "protein".

use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    StopWordFilter, TextAnalyzer, TokenStream,
};

/// The analyzer's name in the index schema. A new name means a different analyzer, and an
/// index built with an older one is rebuilt when opened.
pub(crate) const ANALYZER: &str = "quarry_en_v1";

pub(crate) fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(StopWordFilter::new(Language::English).expect("tantivy ships English stop words"))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The terms the index sees for `text`, in order, repeats kept.
pub fn analyze(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut terms = Vec::new();
    while stream.advance() {
        terms.push(stream.token().text.clone());
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::analyze;

    #[test]
    fn stems_folds_and_drops_stop_words() {
        assert_eq!(
            analyze("The Proteins are BINDING to café receptors!"),
            ["protein", "bind", "cafe", "receptor"]
        );
    }

    #[test]
    fn splits_on_punctuation_and_keeps_numbers() {
        assert_eq!(analyze("IL-10 in CD4+ cells"), ["il", "10", "cd4", "cell"]);
    }
}
