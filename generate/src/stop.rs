//! Stop sequences over streamed text: text is released only once it cannot be the start
//! of a stop sequence, so a stop sequence never reaches the caller, even split across pieces.

#[derive(Debug)]
pub struct StopScanner {
    stops: Vec<String>,
    pending: String,
    stopped: bool,
}

impl StopScanner {
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
            stopped: false,
        }
    }

    /// Adds a piece; returns the text now safe to release and whether a stop was found.
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        if self.stopped {
            return (String::new(), true);
        }
        self.pending.push_str(piece);
        let found = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = found {
            self.stopped = true;
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return (out, true);
        }
        // Keep the longest tail that is a proper prefix of some stop sequence.
        let keep = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.pending, s))
            .max()
            .unwrap_or(0);
        let cut = self.pending.len() - keep;
        let out = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        (out, false)
    }

    /// The text held back when the stream ends without a stop.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

/// The length in bytes of the longest suffix of `text` that is a proper prefix of `stop`.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    (1..stop.len().min(text.len() + 1))
        .rev()
        .find(|&n| stop.is_char_boundary(n) && text.ends_with(&stop[..n]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut s = StopScanner::new(&stops);
        let mut out = String::new();
        for p in pieces {
            let (text, stopped) = s.push(p);
            out.push_str(&text);
            if stopped {
                return (out, true);
            }
        }
        out.push_str(&s.finish());
        (out, false)
    }

    #[test]
    fn a_stop_split_across_pieces_is_caught_and_not_released() {
        assert_eq!(
            run(&["END"], &["The answer", " is 4. E", "N", "D more"]),
            ("The answer is 4. ".to_string(), true)
        );
    }

    #[test]
    fn a_near_miss_is_released_and_held_text_returns_at_the_end() {
        assert_eq!(
            run(&["END"], &["EN", "TER the ", "E", "ND"]),
            ("ENTER the ".to_string(), true)
        );
        assert_eq!(
            run(&["END"], &["the E", "N"]),
            ("the EN".to_string(), false)
        );
        assert_eq!(run(&[], &["a", "b"]), ("ab".to_string(), false));
    }
}
