//! The format a document's first bytes announce (PDF, images, the Office zip formats,
//! OpenDocument, the old binary Excel format, HTML), for files whose name has no extension or the wrong
//! one.

use quarry_core::Parser;

use super::{
    DocParser, DocxParser, HtmlParser, ImageParser, PdfParser, PptxParser, SpreadsheetParser,
    compound_file,
};

/// What the content is, when its signature says so. `binary` marks formats whose signature
/// cannot be mistaken for text, which win over a file's extension.
pub struct Sniffed {
    pub parser: &'static dyn Parser,
    pub binary: bool,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub fn sniff(bytes: &[u8]) -> Option<Sniffed> {
    let head = &bytes[..bytes.len().min(1024)];
    let binary = |parser: &'static dyn Parser| {
        Some(Sniffed {
            parser,
            binary: true,
        })
    };
    if contains(head, b"%PDF-") {
        return binary(&PdfParser);
    }
    if let Some(format) = super::ocr::image_format(bytes) {
        return binary(match format {
            "png" => &ImageParser { format: "png" },
            "jpeg" => &ImageParser { format: "jpeg" },
            "tiff" => &ImageParser { format: "tiff" },
            "bmp" => &ImageParser { format: "bmp" },
            "gif" => &ImageParser { format: "gif" },
            _ => &ImageParser { format: "webp" },
        });
    }
    if bytes.starts_with(b"PK\x03\x04") {
        // Zip entry names are stored in the clear; the first few kilobytes name the parts.
        let start = &bytes[..bytes.len().min(64 * 1024)];
        if contains(start, b"word/") {
            return binary(&DocxParser);
        }
        if contains(start, b"ppt/") {
            return binary(&PptxParser);
        }
        if contains(start, b"xl/") {
            return binary(&SpreadsheetParser { format: "xlsx" });
        }
        if contains(start, b"application/vnd.oasis.opendocument.spreadsheet") {
            return binary(&SpreadsheetParser { format: "ods" });
        }
        return None;
    }
    if compound_file::is_compound_file(bytes) {
        // Word 97 documents and Excel workbooks are both OLE files: a WordDocument stream
        // says which.
        let is_word = compound_file::Streams::open(bytes)
            .and_then(|s| s.stream("WordDocument"))
            .is_ok_and(|s| s.is_some());
        if is_word {
            return binary(&DocParser);
        }
        return Some(Sniffed {
            parser: &SpreadsheetParser { format: "xls" },
            binary: false,
        });
    }
    let text = String::from_utf8_lossy(head);
    let start = text
        .trim_start_matches('\u{FEFF}')
        .trim_start()
        .to_ascii_lowercase();
    if start.starts_with("<!doctype html") || start.starts_with("<html") {
        return Some(Sniffed {
            parser: &HtmlParser,
            binary: false,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(bytes: &[u8]) -> Option<&'static str> {
        sniff(bytes).map(|s| s.parser.format())
    }

    #[test]
    fn recognises_signatures() {
        assert_eq!(format(b"%PDF-1.7\n%\xE2\xE3"), Some("pdf"));
        assert_eq!(
            format(b"PK\x03\x04....[Content_Types].xml....word/document.xml"),
            Some("docx")
        );
        assert_eq!(format(b"PK\x03\x04....xl/workbook.xml"), Some("xlsx"));
        assert_eq!(
            format(b"PK\x03\x04mimetypeapplication/vnd.oasis.opendocument.spreadsheet"),
            Some("ods")
        );
        assert_eq!(format(b"PK\x03\x04 some other zip"), None);
        assert_eq!(format(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1rest"), Some("xls"));
        assert_eq!(format(b"\xEF\xBB\xBF  <!DOCTYPE html><html>"), Some("html"));
        assert_eq!(format(b"Just words."), None);
    }
}
