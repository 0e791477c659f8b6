//! HTML: the text a reader sees, with headings kept as `#` lines and list items as `- `
//! lines; scripts, styles, navigation and footers dropped; entities decoded.

use ego_tree::NodeRef;
use quarry_core::{ParseError, ParsedDocument, Parser};
use scraper::{Html, Node};

use super::text::decode_text;

pub struct HtmlParser;

const SKIPPED: &[&str] = &[
    "script", "style", "noscript", "template", "nav", "footer", "head", "svg", "iframe", "button",
    "form",
];
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "aside",
    "header",
    "ul",
    "ol",
    "li",
    "table",
    "tr",
    "pre",
    "blockquote",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "br",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "body",
    "html",
    "address",
    "details",
    "summary",
];

impl Parser for HtmlParser {
    fn format(&self) -> &'static str {
        "html"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let source = decode_text(bytes, "html")?;
        let html = Html::parse_document(&source);
        let mut out = Writer::default();
        let title = html
            .select(&scraper::Selector::parse("title").expect("valid selector"))
            .next()
            .map(|t| collapse(&t.text().collect::<String>()));
        let has_h1 = html
            .select(&scraper::Selector::parse("h1").expect("valid selector"))
            .next()
            .is_some();
        if let Some(title) = title.filter(|t| !t.is_empty() && !has_h1) {
            out.raw(&format!("# {title}"));
            out.block();
        }
        walk(html.tree.root(), &mut out);
        Ok(ParsedDocument::plain(out.finish()))
    }
}

#[derive(Default)]
struct Writer {
    out: String,
    space: bool,
}

impl Writer {
    /// Appends text, collapsing runs of whitespace (including no-break spaces) to one space.
    fn text(&mut self, t: &str) {
        if t.starts_with(char::is_whitespace) {
            self.space = true;
        }
        let mut any = false;
        for word in t.split_whitespace() {
            if (any || self.space) && !self.out.is_empty() && !self.out.ends_with(['\n', ' ']) {
                self.out.push(' ');
            }
            self.out.push_str(word);
            any = true;
        }
        if any {
            self.space = t.ends_with(char::is_whitespace);
        }
    }

    /// Appends markup of our own (`# `, `- `, ` | `) as it is.
    fn raw(&mut self, t: &str) {
        self.out.push_str(t);
        self.space = false;
    }

    fn block(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
        self.space = false;
    }

    fn finish(self) -> String {
        self.out.trim().to_owned() + "\n"
    }
}

fn collapse(t: &str) -> String {
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn walk(node: NodeRef<'_, Node>, out: &mut Writer) {
    match node.value() {
        Node::Text(t) => out.text(t),
        Node::Element(e) => {
            let name = e.name();
            if SKIPPED.contains(&name)
                || e.attr("hidden").is_some()
                || e.attr("aria-hidden") == Some("true")
            {
                return;
            }
            let block = BLOCKS.contains(&name);
            if block {
                out.block();
            }
            if let Some(level) = name
                .strip_prefix('h')
                .and_then(|l| l.parse::<usize>().ok())
                .filter(|l| (1..=6).contains(l))
            {
                out.raw(&format!("{} ", "#".repeat(level)));
            } else if name == "li" {
                out.raw("- ");
            } else if (name == "td" || name == "th")
                && node.prev_sibling().is_some_and(|s| s.value().is_element())
            {
                out.raw(" | ");
            }
            for child in node.children() {
                walk(child, out);
            }
            if block {
                out.block();
            } else if matches!(name, "td" | "th") {
                out.space = true;
            }
        }
        _ => {
            for child in node.children() {
                walk(child, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_reader_text_and_structure() {
        let page = br#"<!doctype html><html><head><title>Ignored</title><style>p{}</style></head>
            <body><nav>Home | About</nav><h1>Travel &amp; Expenses</h1>
            <p>Book   flights <b>two weeks</b> ahead.</p><script>var x = 1;</script>
            <ul><li>Economy class</li><li>Receipts &gt; 25&nbsp;EUR</li></ul>
            <table><tr><th>Item</th><th>Limit</th></tr><tr><td>Hotel</td><td>150</td></tr></table>
            <footer>Copyright</footer></body></html>"#;
        let doc = HtmlParser.parse(page).unwrap();
        assert_eq!(
            doc.text,
            "# Travel & Expenses\nBook flights two weeks ahead.\n- Economy class\n- Receipts > 25 EUR\nItem | Limit\nHotel | 150\n"
        );
    }

    #[test]
    fn uses_the_title_when_there_is_no_h1() {
        let doc = HtmlParser
            .parse(b"<html><head><title> FAQ </title></head><body><p>Q and A</p></body></html>")
            .unwrap();
        assert_eq!(doc.text, "# FAQ\nQ and A\n");
    }
}
