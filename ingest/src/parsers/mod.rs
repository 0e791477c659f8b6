//! Parsers by format, chosen by file extension. Each turns bytes into text or into a reason
//! the document cannot be indexed; a panic inside a parser becomes that document's failure.

mod csv;
mod docx;
mod html;
mod pdf;
mod spreadsheet;
mod text;
mod zip_limits;

use std::panic::{AssertUnwindSafe, catch_unwind};

use quarry_core::{ParseError, ParsedDocument, Parser};

pub use self::csv::CsvParser;
pub use self::docx::DocxParser;
pub use self::html::HtmlParser;
pub use self::pdf::PdfParser;
pub use self::spreadsheet::SpreadsheetParser;
pub use self::text::{MarkdownParser, TextParser, decode_text};

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
        "pdf" => &PdfParser,
        "xlsx" | "xlsm" => &SpreadsheetParser { format: "xlsx" },
        "xls" => &SpreadsheetParser { format: "xls" },
        "ods" => &SpreadsheetParser { format: "ods" },
        _ => return Err(ParseError::Unsupported(ext)),
    })
}

/// Parses one document: size limit, then the format's parser, with panics contained.
pub fn parse_document(
    key: &str,
    bytes: &[u8],
    max_bytes: u64,
) -> Result<ParsedDocument, ParseError> {
    if bytes.len() as u64 > max_bytes {
        return Err(ParseError::TooLarge {
            size: bytes.len() as u64,
            limit: max_bytes,
        });
    }
    let parser = parser_for(key)?;
    let parsed =
        catch_unwind(AssertUnwindSafe(|| parser.parse(bytes))).unwrap_or_else(|panic| {
            let reason = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            Err(ParseError::Malformed {
                format: parser.format(),
                reason: format!("parser crashed: {reason}"),
            })
        })?;
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
        assert!(matches!(parser_for("scan.tiff"), Err(ParseError::Unsupported(e)) if e == "tiff"));
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
}
