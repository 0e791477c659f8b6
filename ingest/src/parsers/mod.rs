//! Parsers by format, chosen by file extension and by what the content itself announces.
//! Each turns bytes into text or into a reason the document cannot be indexed. Parsing runs
//! in a worker process (or, as a library, a worker thread; see `worker.rs`), so whatever a
//! file makes a parser do becomes that document's failure and nothing more.

mod compound_file;
mod csv;
mod doc;
mod docx;
mod html;
mod ocr;
mod ooxml;
mod pdf;
mod pptx;
mod sniff;
mod spreadsheet;
mod text;
mod worker;
mod worker_pool;
mod zip_limits;

use quarry_core::{ParseError, ParseOptions, ParsedDocument, Parser};

pub use self::csv::CsvParser;
pub use self::doc::DocParser;
pub use self::docx::DocxParser;
pub use self::html::HtmlParser;
pub use self::ocr::{ImageParser, check_languages as check_ocr_languages};
pub use self::pdf::PdfParser;
pub use self::pptx::PptxParser;
pub use self::spreadsheet::SpreadsheetParser;
pub use self::text::{MarkdownParser, TextParser, decode_text};
pub use self::worker::{PARSE_TIMEOUT, use_worker_processes};
pub use self::worker_pool::{WORKER_ARG, WORKER_MEMORY, worker_main};

/// The parser for a document key, by its extension (case-insensitive).
pub fn parser_for(key: &str) -> Result<&'static dyn Parser, ParseError> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => return Err(ParseError::Unsupported("(no extension)".into())),
    };
    Ok(match ext.as_str() {
        "txt" | "text" => &TextParser,
        "md" | "markdown" => &MarkdownParser,
        "html" | "htm" => &HtmlParser,
        "csv" => &CsvParser,
        "docx" => &DocxParser,
        "doc" => &DocParser,
        "pdf" => &PdfParser,
        "pptx" => &PptxParser,
        "xlsx" | "xlsm" => &SpreadsheetParser { format: "xlsx" },
        "xls" => &SpreadsheetParser { format: "xls" },
        "ods" => &SpreadsheetParser { format: "ods" },
        "png" => &ImageParser { format: "png" },
        "jpg" | "jpeg" => &ImageParser { format: "jpeg" },
        "tif" | "tiff" => &ImageParser { format: "tiff" },
        "bmp" => &ImageParser { format: "bmp" },
        "gif" => &ImageParser { format: "gif" },
        "webp" => &ImageParser { format: "webp" },
        _ => return Err(ParseError::Unsupported(ext)),
    })
}

/// The parser for a document: its extension's, unless the content's signature says it is a
/// different binary format (a PDF saved as `.txt`); the content's when the extension is
/// missing or unknown.
pub fn choose_parser(key: &str, bytes: &[u8]) -> Result<&'static dyn Parser, ParseError> {
    let sniffed = sniff::sniff(bytes);
    match (parser_for(key), sniffed) {
        (Ok(by_name), Some(s)) if s.binary && s.parser.format() != by_name.format() => {
            tracing::info!(
                key,
                extension = by_name.format(),
                content = s.parser.format(),
                "parsing by content, not extension"
            );
            Ok(s.parser)
        }
        (Ok(by_name), _) => Ok(by_name),
        (Err(_), Some(s)) => Ok(s.parser),
        (Err(e), None) => Err(e),
    }
}

/// Parses one document: size limit, then the format's parser in a worker (crashes, memory
/// exhaustion and hangs become failures).
pub fn parse_document(
    key: &str,
    bytes: &[u8],
    max_bytes: u64,
) -> Result<ParsedDocument, ParseError> {
    parse_document_with(key, bytes, max_bytes, &ParseOptions::default())
}

/// [`parse_document`] with a data source's options (OCR languages).
pub fn parse_document_with(
    key: &str,
    bytes: &[u8],
    max_bytes: u64,
    options: &ParseOptions,
) -> Result<ParsedDocument, ParseError> {
    if bytes.len() as u64 > max_bytes {
        return Err(ParseError::TooLarge {
            size: bytes.len() as u64,
            limit: max_bytes,
        });
    }
    let parser = choose_parser(key, bytes)?;
    let parsed = worker::parse_isolated(parser, bytes, options)?;
    if parsed.text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_by_extension_and_refuses_unknown_types() {
        assert_eq!(parser_for("a/b/Notes.TXT").unwrap().format(), "txt");
        assert_eq!(parser_for("page.htm").unwrap().format(), "html");
        assert_eq!(parser_for("x.md").unwrap().format(), "md");
        assert_eq!(parser_for("rows.csv").unwrap().format(), "csv");
        assert_eq!(parser_for("scan.TIF").unwrap().format(), "tiff");
        assert_eq!(parser_for("photo.jpg").unwrap().format(), "jpeg");
        assert!(matches!(parser_for("clip.mp4"), Err(ParseError::Unsupported(e)) if e == "mp4"));
        assert!(matches!(
            parser_for("README"),
            Err(ParseError::Unsupported(_))
        ));
    }

    #[test]
    fn enforces_the_size_limit_and_rejects_empty_documents() {
        assert_eq!(
            parse_document("a.txt", b"hello world", 5).unwrap_err(),
            ParseError::TooLarge { size: 11, limit: 5 }
        );
        assert_eq!(
            parse_document("a.txt", b"  \n ", 100).unwrap_err(),
            ParseError::Empty
        );
        assert_eq!(parse_document("a.txt", b"hi", 100).unwrap().text, "hi");
    }

    #[test]
    fn content_decides_when_the_extension_is_missing_or_wrong() {
        let html = b"<!DOCTYPE html><html><body><p>Hello</p></body></html>";
        assert_eq!(choose_parser("page", html).unwrap().format(), "html");
        // HTML-looking text in a .txt file stays text; a PDF signature does not.
        assert_eq!(choose_parser("page.txt", html).unwrap().format(), "txt");
        assert_eq!(
            choose_parser("scan.txt", b"%PDF-1.4 ...").unwrap().format(),
            "pdf"
        );
        assert!(matches!(
            choose_parser("notes", b"plain"),
            Err(ParseError::Unsupported(_))
        ));
    }
}
