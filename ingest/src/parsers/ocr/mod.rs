//! Text from pixels: image files, and PDF pages without a text layer, read by Tesseract
//! (`tesseract.rs`) inside the parse workers, so OCR has their memory and time limits. Every
//! page read this way is recorded in [`ParsedDocument::ocr_pages`] with its confidence, and
//! its chunks carry `x-quarry-ocr` and `x-quarry-ocr-confidence`.

mod dimensions;
mod tesseract;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use quarry_core::{OcrPage, ParseError, ParseOptions, ParsedDocument, Parser};

pub use self::dimensions::format_of as image_format;
pub use self::tesseract::check_languages;

/// Pixels one page may have (a 300 dpi A3 scan is 17 million); more is refused as a
/// decompression bomb before anything decodes it.
pub const MAX_PAGE_PIXELS: u64 = 100_000_000;
/// Longest one page's OCR may take.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(100);
/// Resolution PDF pages are rendered at for OCR.
pub const RENDER_DPI: u32 = 300;

/// Told after each page OCR reads (the parse worker tells the pool, which then allows the
/// next page its own time).
static PROGRESS: Mutex<Option<Box<dyn Fn() + Send>>> = Mutex::new(None);

pub fn on_page_read(report: Box<dyn Fn() + Send>) {
    *PROGRESS.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
}

fn page_read() {
    if let Some(report) = PROGRESS.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        report();
    }
}

fn failed(format: &'static str, reason: impl Into<String>) -> ParseError {
    ParseError::Malformed {
        format,
        reason: reason.into(),
    }
}

/// PNG, JPEG, TIFF (every page), BMP, GIF and WebP files, read by OCR.
pub struct ImageParser {
    pub format: &'static str,
}

impl Parser for ImageParser {
    fn format(&self) -> &'static str {
        self.format
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        self.parse_with(bytes, &ParseOptions::default())
    }

    fn parse_with(
        &self,
        bytes: &[u8],
        options: &ParseOptions,
    ) -> Result<ParsedDocument, ParseError> {
        let format = self.format;
        let image = dimensions::announced(bytes).map_err(|e| failed(format, e))?;
        for (i, &(w, h)) in image.pages.iter().enumerate() {
            if w == 0 || h == 0 {
                return Err(failed(format, format!("page {} is {w}×{h} pixels", i + 1)));
            }
            if w.saturating_mul(h) > MAX_PAGE_PIXELS {
                return Err(failed(
                    format,
                    format!(
                        "decompression bomb: page {} claims {w}×{h} pixels, over the {MAX_PAGE_PIXELS}-pixel limit",
                        i + 1
                    ),
                ));
            }
        }
        let file = tempfile::Builder::new()
            .suffix(&format!(".{}", image.format))
            .tempfile()
            .map_err(|e| failed(format, format!("cannot write a scratch file: {e}")))?;
        std::fs::write(file.path(), bytes)
            .map_err(|e| failed(format, format!("cannot write a scratch file: {e}")))?;
        let deadline = Instant::now() + PAGE_TIMEOUT * image.pages.len().min(5) as u32;
        let pages = tesseract::recognize(file.path(), &options.ocr_languages, deadline)
            .map_err(|e| failed(format, e))?;
        page_read();
        let mut doc = ParsedDocument::default();
        for (i, page) in pages.into_iter().enumerate() {
            doc.page_starts.push(doc.text.len());
            doc.text.push_str(&page.text);
            doc.text.push('\n');
            doc.ocr_pages.push(OcrPage {
                page: i as u32 + 1,
                confidence: page.confidence,
            });
        }
        if doc.text.trim().is_empty() {
            return Err(ParseError::Empty);
        }
        Ok(doc)
    }
}

/// Each page asked for (1-based) and what OCR made of it.
pub type PageResults = Vec<(u32, Result<tesseract::OcrText, String>)>;

/// Renders PDF pages (1-based) with poppler's `pdftoppm` and reads each by OCR; a page's
/// failure is returned as its own.
pub fn read_pdf_pages(
    pdf: &[u8],
    pages: &[u32],
    options: &ParseOptions,
) -> Result<PageResults, String> {
    tesseract::check_languages(&options.ocr_languages)?;
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    let input = dir.path().join("document.pdf");
    std::fs::write(&input, pdf).map_err(|e| format!("cannot write a scratch file: {e}"))?;
    let mut out = Vec::with_capacity(pages.len());
    for &page in pages {
        let started = Instant::now();
        let stem = dir.path().join(format!("page-{page}"));
        let rendered = render(&input, page, &stem, started + PAGE_TIMEOUT).and_then(|image| {
            let text = tesseract::recognize(&image, &options.ocr_languages, started + PAGE_TIMEOUT)
                .and_then(|mut p| p.pop().ok_or_else(|| "tesseract read no page".to_owned()));
            let _ = std::fs::remove_file(&image);
            text
        });
        page_read();
        out.push((page, rendered));
    }
    Ok(out)
}

/// One page as a grey image at [`RENDER_DPI`], uncompressed (PGM): compressing a PNG only
/// for Tesseract to decompress it cost a third of a page's time.
fn render(
    pdf: &std::path::Path,
    page: u32,
    stem: &std::path::Path,
    deadline: Instant,
) -> Result<std::path::PathBuf, String> {
    let mut child = std::process::Command::new("pdftoppm")
        .args(["-r", &RENDER_DPI.to_string(), "-gray", "-singlefile"])
        .args(["-f", &page.to_string(), "-l", &page.to_string()])
        .arg(pdf)
        .arg(stem)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "rendering a scanned PDF page for OCR needs poppler's pdftoppm, which is not installed: install Debian's poppler-utils (apt-get install poppler-utils)".to_owned()
            } else {
                format!("could not run pdftoppm: {e}")
            }
        })?;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("rendering page {page} took too long; given up"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let image = stem.with_extension("pgm");
    if !status.success() || !image.exists() {
        return Err(format!("pdftoppm could not render page {page} ({status})"));
    }
    Ok(image)
}
