//! Tesseract 5, run as a program (Debian's `tesseract-ocr`): an image file in, its words with
//! their confidences out (the TSV renderer), within a deadline. Without the program, or
//! without a language's data, a document fails with the package to install.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One page's text and its mean word confidence (0–100).
#[derive(Debug, Clone, PartialEq)]
pub struct OcrText {
    pub text: String,
    pub confidence: f32,
}

/// The language codes Tesseract has data for here, asked once per process.
fn installed_languages() -> Result<&'static [String], String> {
    static LANGUAGES: OnceLock<Result<Vec<String>, String>> = OnceLock::new();
    LANGUAGES
        .get_or_init(|| {
            let out = Command::new("tesseract")
                .arg("--list-langs")
                .stdin(Stdio::null())
                .output()
                .map_err(|e| missing_program(&e))?;
            // "List of available languages in "/usr/share/…" (2):" then one per line.
            let listed = String::from_utf8_lossy(&out.stdout);
            Ok(listed
                .lines()
                .skip(1)
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect())
        })
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

fn missing_program(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        "OCR needs Tesseract, which is not installed: install Debian's tesseract-ocr and tesseract-ocr-eng (apt-get install tesseract-ocr tesseract-ocr-eng)".to_owned()
    } else {
        format!("could not run tesseract: {e}")
    }
}

/// Debian's package for a Tesseract language code (`chi_sim` → `tesseract-ocr-chi-sim`).
fn package_for(language: &str) -> String {
    format!(
        "tesseract-ocr-{}",
        language.replace('_', "-").to_ascii_lowercase()
    )
}

/// Checks that every language has its data installed.
pub fn check_languages(languages: &[String]) -> Result<(), String> {
    let installed = installed_languages()?;
    let missing: Vec<&String> = languages
        .iter()
        .filter(|l| !installed.contains(l))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<String> = missing.iter().map(|l| package_for(l)).collect();
    Err(format!(
        "OCR language data for {} is not installed: install Debian's {} (apt-get install {})",
        missing
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        packages.join(", "),
        packages.join(" ")
    ))
}

/// Reads the text of `image` (every page of a multi-page TIFF), giving up at `deadline`.
pub fn recognize(
    image: &Path,
    languages: &[String],
    deadline: Instant,
) -> Result<Vec<OcrText>, String> {
    check_languages(languages)?;
    let mut child = Command::new("tesseract")
        .arg(image)
        .arg("stdout")
        .args(["-l", &languages.join("+")])
        .arg("tsv")
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| missing_program(&e))?;
    let (mut stdout, mut stderr) = (
        child.stdout.take().expect("piped"),
        child.stderr.take().expect("piped"),
    );
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("OCR took longer than the time a page may take; given up".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let tsv = out.join().unwrap_or_default();
    let said = err.join().unwrap_or_default();
    if !status.success() {
        let first = said
            .lines()
            .find(|l| !l.trim().is_empty() && !l.starts_with("Estimating resolution"))
            .unwrap_or("");
        return Err(format!(
            "tesseract could not read the image ({status}): {first}"
        ));
    }
    Ok(pages_from_tsv(&tsv))
}

/// A page's words by (block, paragraph, line).
type Lines<'a> = BTreeMap<(u32, u32, u32), Vec<&'a str>>;

/// Tesseract's TSV (level, page, block, paragraph, line, word, box, conf, text) as text:
/// words joined by spaces, lines by newlines, paragraphs and blocks by blank lines.
pub fn pages_from_tsv(tsv: &str) -> Vec<OcrText> {
    // page → (block, paragraph, line) → words; and each page's word confidences.
    let mut pages: BTreeMap<u32, Lines<'_>> = BTreeMap::new();
    let mut confidences: BTreeMap<u32, Vec<f32>> = BTreeMap::new();
    for row in tsv.lines().skip(1) {
        let f: Vec<&str> = row.splitn(12, '\t').collect();
        if f.len() < 12 {
            continue;
        }
        let num = |i: usize| f[i].parse::<u32>().unwrap_or(0);
        let page = num(1);
        pages.entry(page).or_default();
        let word = f[11].trim();
        if f[0] != "5" || word.is_empty() {
            continue;
        }
        pages
            .entry(page)
            .or_default()
            .entry((num(2), num(3), num(4)))
            .or_default()
            .push(word);
        if let Ok(c) = f[10].parse::<f32>()
            && c >= 0.0
        {
            confidences.entry(page).or_default().push(c);
        }
    }
    pages
        .into_iter()
        .map(|(page, lines)| {
            let mut text = String::new();
            let mut last: Option<(u32, u32)> = None;
            for ((block, paragraph, _), words) in lines {
                if let Some(prev) = last {
                    text.push_str(if prev == (block, paragraph) {
                        "\n"
                    } else {
                        "\n\n"
                    });
                }
                text.push_str(&words.join(" "));
                last = Some((block, paragraph));
            }
            let c = confidences.get(&page).map_or(&[][..], Vec::as_slice);
            let confidence = if c.is_empty() {
                0.0
            } else {
                c.iter().sum::<f32>() / c.len() as f32
            };
            OcrText { text, confidence }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_becomes_lines_paragraphs_and_pages() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
            1\t1\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t\n\
            5\t1\t1\t1\t1\t1\t0\t0\t1\t1\t90\tHello\n\
            5\t1\t1\t1\t1\t2\t0\t0\t1\t1\t80\tworld\n\
            5\t1\t1\t1\t2\t1\t0\t0\t1\t1\t70\tagain\n\
            5\t1\t1\t2\t1\t1\t0\t0\t1\t1\t60\tNext\n\
            1\t2\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t\n\
            5\t2\t1\t1\t1\t1\t0\t0\t1\t1\t50\tTwo\n";
        let pages = pages_from_tsv(tsv);
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0].text, "Hello world\nagain\n\nNext");
        assert_eq!(pages[0].confidence, 75.0);
        assert_eq!(pages[1].text, "Two");
        assert_eq!(pages[1].confidence, 50.0);
    }

    #[test]
    fn a_blank_page_is_kept_empty() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
            1\t1\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t\n";
        let pages = pages_from_tsv(tsv);
        assert_eq!(
            pages,
            vec![OcrText {
                text: String::new(),
                confidence: 0.0
            }]
        );
    }

    #[test]
    fn language_packages_are_named_as_debian_names_them() {
        assert_eq!(package_for("deu"), "tesseract-ocr-deu");
        assert_eq!(package_for("chi_sim"), "tesseract-ocr-chi-sim");
    }
}
