//! Citations: the answer's `[n]` markers become spans of the answer text (marker-free, as
//! Bedrock returns it) tied to the search results they name. An answer with no markers is
//! cited by matching each sentence to the passage that shares most of its words.
//!
//! Spans count characters (Unicode scalar values), `end` exclusive, so
//! `text[start:end]` in Python is the cited part.

use std::collections::HashSet;

/// Longest marker accepted, e.g. `[12, 13, 14]`.
const MAX_MARKER: usize = 24;

/// Removes citation markers from text as it streams: a `[` (and the spaces before it) is
/// held until it is known to be a marker (dropped, its numbers recorded) or not (released).
#[derive(Debug)]
pub struct CitationMarkers {
    passages: usize,
    held: String,
    in_marker: bool,
    /// Characters released so far.
    position: usize,
    /// (position in the released text, 0-based passage indexes) per marker.
    pub markers: Vec<(usize, Vec<usize>)>,
}

impl CitationMarkers {
    pub fn new(passages: usize) -> Self {
        Self {
            passages,
            held: String::new(),
            in_marker: false,
            position: 0,
            markers: Vec::new(),
        }
    }

    fn release(&mut self, out: &mut String) {
        self.position += self.held.chars().count();
        out.push_str(&self.held);
        self.held.clear();
        self.in_marker = false;
    }

    /// Takes a piece of the answer; returns the text that can be released now.
    pub fn push(&mut self, piece: &str) -> String {
        let mut out = String::new();
        for c in piece.chars() {
            if self.in_marker {
                self.held.push(c);
                if c == ']' {
                    let open = self.held.rfind('[').unwrap_or(0);
                    match parse_marker(&self.held[open + 1..self.held.len() - 1], self.passages) {
                        Some(sources) => {
                            self.markers.push((self.position, sources));
                            self.held.clear();
                            self.in_marker = false;
                        }
                        None => self.release(&mut out),
                    }
                } else if !(c.is_ascii_digit() || c == ',' || c == ' ')
                    || self.held.len() > MAX_MARKER
                {
                    self.release(&mut out);
                }
            } else if c == '[' {
                self.held.push(c);
                self.in_marker = true;
            } else if c.is_whitespace() {
                self.held.push(c);
            } else {
                self.release(&mut out);
                self.position += 1;
                out.push(c);
            }
        }
        out
    }

    /// The text still held when the answer ends.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        self.release(&mut out);
        out
    }
}

fn parse_marker(inner: &str, passages: usize) -> Option<Vec<usize>> {
    let numbers: Option<Vec<usize>> = inner
        .split(',')
        .map(|n| {
            n.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| (1..=passages).contains(&n))
        })
        .collect();
    numbers.map(|v| v.into_iter().map(|n| n - 1).collect())
}

/// One cited part of the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CitedPart {
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// 0-based indexes of the passages it rests on.
    pub sources: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cited {
    /// The answer without markers.
    pub text: String,
    pub parts: Vec<CitedPart>,
}

fn char_slice(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end - start).collect()
}

/// Cites `answer` (the model's raw text) against `passages`, best-ranked first.
pub fn cite(answer: &str, passages: &[&str]) -> Cited {
    let mut scanner = CitationMarkers::new(passages.len());
    let mut text = scanner.push(answer);
    text.push_str(&scanner.finish());
    let parts = if scanner.markers.is_empty() {
        by_overlap(&text, passages)
    } else {
        from_markers(&text, &scanner.markers)
    };
    Cited { text, parts }
}

/// Each marker cites the text since the previous cited part (leading spaces skipped);
/// markers side by side (`[1][2]`) cite the same part.
fn from_markers(text: &str, markers: &[(usize, Vec<usize>)]) -> Vec<CitedPart> {
    let chars: Vec<char> = text.chars().collect();
    let mut parts: Vec<CitedPart> = Vec::new();
    let mut from = 0;
    for (at, sources) in markers {
        if let Some(last) = parts.last_mut().filter(|p| p.end == *at) {
            for s in sources {
                if !last.sources.contains(s) {
                    last.sources.push(*s);
                }
            }
            continue;
        }
        let mut start = from;
        while start < *at
            && (chars[start].is_whitespace() || matches!(chars[start], '.' | ',' | ';' | ':'))
        {
            start += 1;
        }
        if start < *at {
            parts.push(CitedPart {
                start,
                end: *at,
                text: char_slice(text, start, *at),
                sources: sources.clone(),
            });
        }
        from = *at;
    }
    parts
}

const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "are", "was", "were", "with", "that", "this", "from", "has", "have",
    "had", "not", "but", "its", "his", "her", "their", "they", "which", "who", "what", "when",
    "where", "how", "can", "will", "would", "also", "been", "into", "than", "then", "there",
    "these", "those", "about", "such", "some", "any", "all", "our", "you", "your",
];

fn content_words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

/// Sentences as (start, end) character ranges, split after `.`, `!` or `?` and a space.
fn sentences(text: &str) -> Vec<(usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..chars.len() {
        let ends = matches!(chars[i], '.' | '!' | '?' | '\n')
            && chars.get(i + 1).is_none_or(|c| c.is_whitespace());
        if ends || i + 1 == chars.len() {
            let mut s = start;
            while s <= i && chars[s].is_whitespace() {
                s += 1;
            }
            if s <= i {
                out.push((s, i + 1));
            }
            start = i + 1;
        }
    }
    out
}

/// A sentence is cited to the passage holding the largest share (at least half) of its
/// content words.
fn by_overlap(text: &str, passages: &[&str]) -> Vec<CitedPart> {
    let passage_words: Vec<HashSet<String>> = passages.iter().map(|p| content_words(p)).collect();
    let mut parts = Vec::new();
    for (start, end) in sentences(text) {
        let sentence = char_slice(text, start, end);
        let words = content_words(&sentence);
        if words.len() < 2 {
            continue;
        }
        let best = passage_words
            .iter()
            .enumerate()
            .map(|(i, p)| (i, words.intersection(p).count()))
            .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)));
        if let Some((i, n)) = best
            && n * 2 >= words.len()
        {
            parts.push(CitedPart {
                start,
                end,
                text: sentence,
                sources: vec![i],
            });
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(text: &str, p: &CitedPart) -> String {
        char_slice(text, p.start, p.end)
    }

    #[test]
    fn markers_are_removed_and_become_spans_of_the_clean_text() {
        let c = cite(
            "Paris is the capital [1]. It has 2 million people [2][3]. Café prices vary [1, 3].",
            &["a", "b", "c"],
        );
        assert_eq!(
            c.text,
            "Paris is the capital. It has 2 million people. Café prices vary."
        );
        let got: Vec<(String, Vec<usize>)> = c
            .parts
            .iter()
            .map(|p| (slice(&c.text, p), p.sources.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("Paris is the capital".to_string(), vec![0]),
                ("It has 2 million people".to_string(), vec![1, 2]),
                ("Café prices vary".to_string(), vec![0, 2]),
            ]
        );
        for p in &c.parts {
            assert_eq!(p.text, slice(&c.text, p));
        }
    }

    #[test]
    fn brackets_that_are_not_markers_stay_in_the_text() {
        let c = cite(
            "See array[i] and [note] and [7] and [ 2 ] here [2]",
            &["a", "b"],
        );
        assert_eq!(c.text, "See array[i] and [note] and [7] and here");
        assert_eq!(c.parts.len(), 2);
        assert_eq!(c.parts[0].sources, vec![1]);
        assert_eq!(
            slice(&c.text, &c.parts[0]),
            "See array[i] and [note] and [7] and"
        );
    }

    #[test]
    fn streaming_in_any_split_gives_the_same_text() {
        let answer = "Water boils at 100 C [1]. Ice melts [2] at 0 C. [x] [3";
        let whole = cite(answer, &["a", "b"]).text;
        for size in 1..6 {
            let mut s = CitationMarkers::new(2);
            let chars: Vec<char> = answer.chars().collect();
            let mut out = String::new();
            for piece in chars.chunks(size) {
                out.push_str(&s.push(&piece.iter().collect::<String>()));
            }
            out.push_str(&s.finish());
            assert_eq!(out, whole, "pieces of {size}");
        }
    }

    #[test]
    fn without_markers_sentences_are_matched_to_passages_by_shared_words() {
        let passages = [
            "The Eiffel Tower was finished in 1889 for the World Fair in Paris.",
            "Mount Everest is the highest mountain above sea level.",
        ];
        let c = cite(
            "Everest is the highest mountain. The tower was finished in 1889! I like tea.",
            &passages,
        );
        assert_eq!(c.parts.len(), 2);
        assert_eq!(
            (c.parts[0].text.as_str(), c.parts[0].sources.as_slice()),
            ("Everest is the highest mountain.", &[1][..])
        );
        assert_eq!(
            (c.parts[1].text.as_str(), c.parts[1].sources.as_slice()),
            ("The tower was finished in 1889!", &[0][..])
        );
    }
}
