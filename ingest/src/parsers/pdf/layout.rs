//! Glyphs placed on a page, in the order the content stream shows them, turned into lines and
//! words: a glyph that starts well off the previous one's baseline starts a new line, a gap
//! along the baseline wider than a fraction of the font size is a space, and a word broken
//! with a hyphen at the end of a line is joined again. An accent drawn as a glyph of its own
//! over a letter (as TeX does for `\"u`) is put together with it (`ü`). Where each line's
//! cells (runs of words parted by wide gaps) start and end is kept, so aligned columns can be
//! read as a table (`tables.rs`).

use unicode_normalization::UnicodeNormalization;

use super::tables::{self, CELL_BREAK, LineCells};

/// A gap along the baseline at least this many font sizes wide separates cells of a table.
const CELL_GAP: f32 = 1.2;

/// A gap along the baseline at least this many font sizes wide separates words.
const WORD_GAP: f32 = 0.15;
/// A move across the baseline of at least this many font sizes starts a new line.
const LINE_SHIFT: f32 = 0.5;
/// A glyph starting this many font sizes back inside the previous one is drawn over it.
const OVERSTRIKE: f32 = 0.1;

/// The combining mark for a spacing accent drawn as a glyph of its own.
fn combining(accent: char) -> Option<char> {
    Some(match accent {
        '\u{A8}' => '\u{308}',
        '\u{B4}' => '\u{301}',
        '`' => '\u{300}',
        '\u{2C6}' | '^' => '\u{302}',
        '\u{2DC}' | '~' => '\u{303}',
        '\u{AF}' => '\u{304}',
        '\u{2D8}' => '\u{306}',
        '\u{2D9}' => '\u{307}',
        '\u{2DA}' => '\u{30A}',
        '\u{B8}' => '\u{327}',
        '\u{2DD}' => '\u{30B}',
        '\u{2DB}' => '\u{328}',
        '\u{2C7}' => '\u{30C}',
        _ => return None,
    })
}

fn single(text: &str) -> Option<char> {
    let mut chars = text.chars();
    chars.next().filter(|_| chars.next().is_none())
}

#[derive(Clone, Copy)]
struct Pen {
    end: [f32; 2],
    dir: [f32; 2],
    size: f32,
}

#[derive(Default)]
pub struct Layout {
    out: String,
    last: Option<Pen>,
    pending_space: bool,
    /// The cells of each line of `out` so far.
    lines: Vec<LineCells>,
    /// The next glyph begins a line of its own.
    line_ended: bool,
}

/// Where a shown glyph sits, in device space.
pub struct Placement {
    pub origin: [f32; 2],
    pub end: [f32; 2],
    /// Unit vector along the baseline.
    pub dir: [f32; 2],
    /// Font size on the page.
    pub size: f32,
}

impl Layout {
    pub fn glyph(&mut self, text: &str, at: Placement) {
        if text.is_empty() {
            return;
        }
        if text.chars().all(char::is_whitespace) {
            self.pending_space = true;
            if let Some(last) = &mut self.last {
                last.end = at.end;
            }
            return;
        }
        let mut new_cell = false;
        if let Some(last) = self.last {
            let dx = at.origin[0] - last.end[0];
            let dy = at.origin[1] - last.end[1];
            let along = dx * last.dir[0] + dy * last.dir[1];
            let across = dy * last.dir[0] - dx * last.dir[1];
            let size = last.size.max(at.size).max(0.01);
            let turned = last.dir[0] * at.dir[0] + last.dir[1] * at.dir[1] < 0.9;
            if turned || across.abs() > LINE_SHIFT * size || along < -20.0 * size {
                self.new_line(text);
            } else if along > CELL_GAP * size && !self.out.ends_with('\n') {
                let trimmed = self.out.trim_end_matches(' ').len();
                self.out.truncate(trimmed);
                self.out.push(CELL_BREAK);
                new_cell = true;
            } else if self.pending_space || along > WORD_GAP * size {
                self.space();
            } else if along < -OVERSTRIKE * size && self.overstrike(text) {
                // The pair ends where the later of the two glyphs ends.
                let further = (at.end[0] - last.end[0]) * last.dir[0]
                    + (at.end[1] - last.end[1]) * last.dir[1]
                    > 0.0;
                self.pending_space = false;
                self.last = Some(Pen {
                    end: if further { at.end } else { last.end },
                    ..last
                });
                return;
            }
        }
        self.out.push_str(text);
        self.pending_space = false;
        // Positions along the baseline, for finding aligned columns.
        let x0 = at.origin[0] * at.dir[0] + at.origin[1] * at.dir[1];
        let x1 = at.end[0] * at.dir[0] + at.end[1] * at.dir[1];
        match self.lines.last_mut() {
            Some(line) if !self.line_ended => {
                if new_cell {
                    line.spans.push([x0, x1]);
                } else if let Some(span) = line.spans.last_mut() {
                    span[1] = span[1].max(x1);
                }
                line.size = line.size.max(at.size);
            }
            _ => self.lines.push(LineCells {
                spans: vec![[x0, x1]],
                size: at.size,
            }),
        }
        self.line_ended = false;
        self.last = Some(Pen {
            end: at.end,
            dir: at.dir,
            size: at.size,
        });
    }

    /// `text` drawn over the previous glyph: an accent and its letter, in either order, become
    /// one accented letter. False when they are not an accent and a letter.
    fn overstrike(&mut self, text: &str) -> bool {
        let Some(previous) = self.out.chars().next_back() else {
            return false;
        };
        let (letter, mark) = match (single(text).and_then(combining), combining(previous)) {
            (Some(mark), _) if previous.is_alphabetic() => (previous, mark),
            (None, Some(mark)) => match single(text) {
                Some(letter) if letter.is_alphabetic() => (letter, mark),
                _ => return false,
            },
            _ => return false,
        };
        self.out.pop();
        self.out.extend([letter, mark].into_iter().nfc());
        true
    }

    fn space(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with(char::is_whitespace) {
            self.out.push(' ');
        }
    }

    /// Ends the line, unless it ends in a word broken by a hyphen that `next` continues.
    fn new_line(&mut self, next: &str) {
        let trimmed = self.out.trim_end_matches(' ');
        let mut tail = trimmed.chars().rev();
        let hyphenated = matches!(tail.next(), Some('-' | '\u{2010}'))
            && tail.next().is_some_and(char::is_alphabetic)
            && next.chars().next().is_some_and(char::is_lowercase);
        if hyphenated {
            let cut = trimmed.len() - trimmed.chars().next_back().map_or(0, char::len_utf8);
            self.out.truncate(cut);
        } else {
            self.out.truncate(trimmed.len());
            if !self.out.is_empty() && !self.out.ends_with('\n') {
                self.out.push('\n');
                self.line_ended = true;
            }
        }
    }

    /// Content from another stream or form: no geometry carries over.
    pub fn break_flow(&mut self) {
        if let Some(last) = &mut self.last {
            last.end = [f32::MAX, f32::MAX];
        }
    }

    pub fn finish(mut self) -> String {
        self.out.truncate(self.out.trim_end().len());
        if !self.out.chars().any(is_right_to_left) {
            return tables::rows_named(&self.out, &self.lines);
        }
        self.out = self.out.replace(CELL_BREAK, " ");
        let lines: Vec<String> = self.out.lines().map(logical_order).collect();
        lines.join("\n")
    }
}

/// Letters of scripts written right to left (Hebrew, Arabic, Syriac, Thaana, N'Ko and their
/// presentation forms).
fn is_right_to_left(c: char) -> bool {
    matches!(c, '\u{0590}'..='\u{08FF}' | '\u{FB1D}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
        && !c.is_numeric()
        && !is_mark(c)
}

/// Combining marks that sit on the letter before them (Latin accents, Hebrew points, Arabic
/// and Syriac vowel signs).
fn is_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{0591}'..='\u{05C7}' | '\u{0610}'..='\u{061A}'
        | '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{06D6}'..='\u{06ED}' | '\u{0711}'
        | '\u{0730}'..='\u{074A}')
}

/// A line shown in visual order (as PDFs place glyphs, left to right) in reading order: a
/// line holding right-to-left letters is reversed, letters with their marks, while runs of
/// left-to-right text inside it (Latin words, numbers) keep their own order.
fn logical_order(line: &str) -> String {
    if !line.chars().any(is_right_to_left) {
        return line.to_string();
    }
    // Clusters: a character and the marks after it.
    let mut clusters: Vec<String> = Vec::new();
    for c in line.chars() {
        match clusters.last_mut() {
            Some(last) if is_mark(c) => last.push(c),
            _ => clusters.push(c.to_string()),
        }
    }
    let strong_ltr = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() && !is_right_to_left(c))
    };
    clusters.reverse();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < clusters.len() {
        if strong_ltr(&clusters[i]) {
            // A left-to-right run: its letters, digits and the punctuation between them.
            let mut end = i + 1;
            while end < clusters.len() {
                let next = clusters[end].chars().next().unwrap_or(' ');
                if strong_ltr(&clusters[end])
                    || (matches!(next, '.' | ',' | ':' | '-' | '/' | ' ')
                        && clusters.get(end + 1).is_some_and(|c| strong_ltr(c)))
                {
                    end += 1;
                } else {
                    break;
                }
            }
            for cluster in clusters[i..end].iter().rev() {
                out.push_str(cluster);
            }
            i = end;
        } else {
            out.push_str(&clusters[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Glyphs of width 6 at font size 12, left to right from (x, y).
    fn show(layout: &mut Layout, text: &str, x: f32, y: f32) {
        for (i, c) in text.chars().enumerate() {
            let x = x + 6.0 * i as f32;
            layout.glyph(
                &c.to_string(),
                Placement {
                    origin: [x, y],
                    end: [x + 6.0, y],
                    dir: [1.0, 0.0],
                    size: 12.0,
                },
            );
        }
    }

    #[test]
    fn gaps_become_spaces_and_baseline_moves_new_lines() {
        let mut layout = Layout::default();
        show(&mut layout, "Hello", 100.0, 700.0);
        show(&mut layout, "world", 100.0 + 30.0 + 4.0, 700.0); // a 1/3 em gap
        show(&mut layout, "kern", 164.0 + 0.5, 700.0); // a kern, not a space
        show(&mut layout, "2", 188.5, 704.0); // a superscript stays on the line
        show(&mut layout, "Next", 100.0, 686.0);
        assert_eq!(layout.finish(), "Hello worldkern2\nNext");
    }

    #[test]
    fn joins_words_hyphenated_across_lines_and_keeps_real_dashes() {
        let mut layout = Layout::default();
        show(&mut layout, "inter-", 100.0, 700.0);
        show(&mut layout, "national", 100.0, 686.0);
        show(&mut layout, "A-", 100.0, 672.0);
        show(&mut layout, "Team", 100.0, 658.0);
        assert_eq!(layout.finish(), "international\nA-\nTeam");
    }

    #[test]
    fn right_to_left_lines_come_out_in_reading_order() {
        // Glyphs placed left to right as a PDF shows them: \u{0645}\u{0631}\u{062D}\u{0628}\u{0627} reads
        // "مرحبا" from the right; a left-to-right run (a number and a Latin word) keeps its order.
        assert_eq!(logical_order("ابحرم 2022 PDF ملاع"), "عالم 2022 PDF مرحبا");
        assert_eq!(
            logical_order("\u{0628}\u{064E}\u{0627}"),
            "\u{0627}\u{0628}\u{064E}"
        );
        assert_eq!(logical_order("plain text"), "plain text");
    }

    #[test]
    fn accents_drawn_over_letters_join_them() {
        let mut layout = Layout::default();
        show(&mut layout, "f", 100.0, 700.0);
        // TeX's \"u: the dieresis, a kern back, then the u drawn under it.
        show(&mut layout, "\u{A8}", 106.0, 700.0);
        show(&mut layout, "ur", 107.0, 700.0);
        show(&mut layout, "cafe", 140.0, 700.0);
        // An accent placed after its letter, back over it.
        show(&mut layout, "\u{B4}", 158.5, 700.0);
        assert_eq!(layout.finish(), "für café");
    }

    #[test]
    fn explicit_spaces_count_once() {
        let mut layout = Layout::default();
        show(&mut layout, "a  b", 100.0, 700.0);
        assert_eq!(layout.finish(), "a b");
    }
}
