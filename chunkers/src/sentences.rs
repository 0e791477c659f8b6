//! Where a chunk may end: after a sentence's closing punctuation, and at line breaks (which
//! end headings, list items, table rows and paragraphs).

use std::ops::Range;

/// Byte ranges of the sentences (and lines) of `text`, without surrounding whitespace.
/// Together they cover every non-whitespace character of the text, in order.
pub fn sentence_spans(text: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut start: Option<usize> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\n' {
            if let Some(s) = start.take() {
                spans.push(s..trim_end(text, i));
            }
            continue;
        }
        if start.is_none() {
            if c.is_whitespace() {
                continue;
            }
            start = Some(i);
        }
        let ends_sentence = matches!(c, '.' | '!' | '?' | '。' | '！' | '？');
        if ends_sentence {
            // Closing quotes and brackets belong to the sentence they end.
            let mut end = i + c.len_utf8();
            while let Some(&(j, next)) = chars.peek() {
                if matches!(next, '"' | '\'' | ')' | ']' | '”' | '’') {
                    end = j + next.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let followed_by_space = chars.peek().is_none_or(|&(_, next)| next.is_whitespace());
            if followed_by_space
                && !is_abbreviation(&text[start.unwrap_or(0)..end])
                && let Some(s) = start.take()
            {
                spans.push(s..end);
            }
        }
    }
    if let Some(s) = start {
        spans.push(s..trim_end(text, text.len()));
    }
    spans.retain(|r| !r.is_empty());
    spans
}

fn trim_end(text: &str, end: usize) -> usize {
    text[..end].trim_end().len()
}

/// "e.g." and "Dr." do not end sentences.
fn is_abbreviation(sentence: &str) -> bool {
    let last_word = sentence
        .rsplit(char::is_whitespace)
        .next()
        .unwrap_or("")
        .trim_start_matches(['(', '"', '\'']);
    const ABBREVIATIONS: &[&str] = &[
        "e.g.", "i.e.", "etc.", "vs.", "Dr.", "Mr.", "Mrs.", "Ms.", "Prof.", "Inc.", "Ltd.", "No.",
        "Fig.", "al.", "approx.", "St.",
    ];
    ABBREVIATIONS.contains(&last_word)
        || (last_word.len() == 2 && last_word.starts_with(|c: char| c.is_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences(text: &str) -> Vec<&str> {
        sentence_spans(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn splits_sentences_and_lines() {
        assert_eq!(
            sentences("First one. Second (e.g. this) one! Third?\n# Heading\n\nLast line"),
            vec![
                "First one.",
                "Second (e.g. this) one!",
                "Third?",
                "# Heading",
                "Last line"
            ]
        );
    }

    #[test]
    fn keeps_closing_quotes_and_decimals() {
        assert_eq!(
            sentences("He said \"stop.\" Then 3.5 apples. J. Smith agreed."),
            vec!["He said \"stop.\"", "Then 3.5 apples.", "J. Smith agreed."]
        );
    }

    #[test]
    fn covers_all_text_with_multibyte_characters() {
        let text = "  Über café.  Naïve résumé?\r\n終わり。次";
        let spans = sentence_spans(text);
        let joined: String = spans
            .iter()
            .map(|r| &text[r.clone()])
            .collect::<Vec<_>>()
            .join("");
        let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        assert_eq!(
            joined
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>(),
            squeezed
        );
    }
}
