//! Tables on a PDF page, found by alignment: consecutive lines whose cells (runs of words
//! parted by wide gaps, from `layout.rs`) fall into the same columns — a ruled table's cells
//! are padded inside their rules, so ruled and unruled tables read alike. A table's first
//! row names the columns and each later row becomes `Header: value; Header: value`, as
//! spreadsheets are read, so a chunk of a table still says what its numbers mean.

/// Marks a cell boundary inside a line of laid-out text (never in the parser's output).
pub const CELL_BREAK: char = '\u{1F}';
/// Rows a run of aligned lines needs to be read as a table (the header and two more).
const MIN_ROWS: usize = 3;
/// A line whose cells are longer than this on average is prose in columns, not a row.
const MAX_MEAN_CELL_CHARS: usize = 40;
/// Nor a line whose cells have more words than this on average.
const MAX_MEAN_CELL_WORDS: usize = 4;

fn has_prose(cells: &[&str]) -> bool {
    let chars: usize = cells.iter().map(|c| c.chars().count()).sum();
    let words: usize = cells.iter().map(|c| c.split_whitespace().count()).sum();
    chars > MAX_MEAN_CELL_CHARS * cells.len() || words > MAX_MEAN_CELL_WORDS * cells.len()
}

/// Where one line's cells start and end along the baseline, and its largest font size.
#[derive(Debug, Clone, Default)]
pub struct LineCells {
    pub spans: Vec<[f32; 2]>,
    pub size: f32,
}

/// The lines of `text` (one per entry of `lines`), runs of aligned lines rewritten as named
/// rows and cell marks elsewhere turned back into spaces.
pub fn rows_named(text: &str, lines: &[LineCells]) -> String {
    let rows: Vec<&str> = text.split('\n').collect();
    if rows.len() != lines.len() {
        return text.replace(CELL_BREAK, " ");
    }
    let cells: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.split(CELL_BREAK).map(str::trim).collect())
        .collect();
    let mut out: Vec<String> = Vec::with_capacity(rows.len());
    let mut i = 0;
    while i < rows.len() {
        match table_at(i, &cells, lines) {
            Some((end, placed)) => {
                write_table(&cells[i], &placed, &mut out);
                i = end;
            }
            None => {
                out.push(rows[i].replace(CELL_BREAK, " "));
                i += 1;
            }
        }
    }
    out.join("\n")
}

/// The table starting at line `start`, if one does: where it ends and, for each row after
/// the header, its values by column.
fn table_at(
    start: usize,
    cells: &[Vec<&str>],
    lines: &[LineCells],
) -> Option<(usize, Vec<Vec<Option<String>>>)> {
    let header = &lines[start];
    let width = header.spans.len();
    if width < 2 || cells[start].len() != width || has_prose(&cells[start]) {
        return None;
    }
    // Column c takes the cells whose middle lies from its start up to the next column's
    // (numbers set flush right under a flush-left header still fall in their column).
    let starts: Vec<f32> = header.spans.iter().map(|s| s[0]).collect();
    let mut placed = Vec::new();
    let mut end = start + 1;
    while end < lines.len() {
        let line = &lines[end];
        if line.spans.len() < 2 || cells[end].len() != line.spans.len() || has_prose(&cells[end]) {
            break;
        }
        let slack = 0.25 * line.size.max(header.size);
        let mut row = vec![None; width];
        let mut next_column = 0;
        let mut fits = true;
        for (span, text) in line.spans.iter().zip(&cells[end]) {
            let middle = (span[0] + span[1]) / 2.0;
            let column = (0..width)
                .rev()
                .find(|&c| middle >= starts[c] - slack)
                .filter(|&c| c >= next_column && (c > 0 || span[0] >= starts[0] - slack));
            match column {
                Some(c) => {
                    row[c] = Some((*text).to_owned());
                    next_column = c + 1;
                }
                None => {
                    fits = false;
                    break;
                }
            }
        }
        if !fits {
            break;
        }
        placed.push(row);
        end += 1;
    }
    (end - start >= MIN_ROWS).then_some((end, placed))
}

/// The header as `a | b`, then each row naming its values' columns; a header that is not
/// names (it has a cell without a letter) leaves every row as `a | b`.
fn write_table(header: &[&str], rows: &[Vec<Option<String>>], out: &mut Vec<String>) {
    let names = header.iter().all(|h| h.chars().any(char::is_alphabetic));
    out.push(header.join(" | "));
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .filter_map(|(c, v)| {
                let v = v.as_ref()?;
                Some(if names {
                    format!("{}: {v}", header[c])
                } else {
                    v.clone()
                })
            })
            .collect();
        out.push(line.join(if names { "; " } else { " | " }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(spans: &[[f32; 2]]) -> LineCells {
        LineCells {
            spans: spans.to_vec(),
            size: 10.0,
        }
    }

    #[test]
    fn aligned_rows_name_their_columns() {
        let text = "Prices\nItem\u{1F}Price\u{1F}Stock\nLaptop\u{1F}900\u{1F}12\nMouse\u{1F}15\nDock\u{1F}1,200\u{1F}3\nThe end.";
        let lines = [
            line(&[[100.0, 130.0]]),
            line(&[[100.0, 120.0], [200.0, 225.0], [300.0, 325.0]]),
            line(&[[100.0, 130.0], [210.0, 225.0], [310.0, 320.0]]),
            // A blank price: the stock still lands in its own column.
            line(&[[100.0, 125.0], [310.0, 320.0]]),
            line(&[[100.0, 120.0], [202.0, 225.0], [315.0, 320.0]]),
            line(&[[100.0, 140.0]]),
        ];
        assert_eq!(
            rows_named(text, &lines),
            "Prices\nItem | Price | Stock\nItem: Laptop; Price: 900; Stock: 12\nItem: Mouse; Stock: 15\nItem: Dock; Price: 1,200; Stock: 3\nThe end."
        );
    }

    #[test]
    fn prose_in_two_columns_and_short_runs_stay_lines() {
        let long = "a line of ordinary prose in the left column of a page";
        let text = format!(
            "{long}\u{1F}{long}\n{long}\u{1F}{long}\n{long}\u{1F}{long}\nA\u{1F}B\nC\u{1F}D"
        );
        let two = || line(&[[50.0, 290.0], [310.0, 550.0]]);
        let lines = [
            two(),
            two(),
            two(),
            line(&[[50.0, 60.0], [310.0, 320.0]]),
            line(&[[50.0, 60.0], [310.0, 320.0]]),
        ];
        let out = rows_named(&text, &lines);
        assert!(!out.contains(':'), "{out}");
        assert_eq!(out.lines().count(), 5);
        assert!(out.ends_with("A B\nC D"));
    }

    #[test]
    fn a_numeric_header_keeps_rows_as_cells() {
        let text = "2023\u{1F}2024\n10\u{1F}12\n11\u{1F}13";
        let lines = [
            line(&[[100.0, 120.0], [200.0, 220.0]]),
            line(&[[105.0, 120.0], [205.0, 220.0]]),
            line(&[[105.0, 120.0], [205.0, 220.0]]),
        ];
        assert_eq!(rows_named(text, &lines), "2023 | 2024\n10 | 12\n11 | 13");
    }
}
