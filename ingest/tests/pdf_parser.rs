//! The PDF parser on files built here with lopdf: pages and page numbers, words placed by
//! position rather than by space characters, composite fonts decoded through `/ToUnicode`
//! (Cyrillic, Chinese, Arabic), glyph-name encodings, form XObjects, encrypted files, and
//! each reason a PDF fails.

use std::collections::BTreeMap;
use std::sync::Arc;

use lopdf::content::{Content, Operation};
use lopdf::encryption::crypt_filters::{Aes128CryptFilter, CryptFilter};
use lopdf::{
    Dictionary, Document, EncryptionState, EncryptionVersion, Object, Permissions, Stream,
    dictionary,
};
use quarry_core::{ParseError, Parser};
use quarry_ingest::parsers::PdfParser;

fn op(operator: &str, operands: Vec<Object>) -> Operation {
    Operation::new(operator, operands)
}

fn text(s: &str) -> Object {
    Object::string_literal(s)
}

fn hex(bytes: &[u8]) -> Object {
    Object::String(bytes.to_vec(), lopdf::StringFormat::Hexadecimal)
}

/// A PDF whose pages run the given operators, with fonts under their resource names.
struct Builder {
    doc: Document,
    fonts: Dictionary,
    xobjects: Dictionary,
    pages: Vec<Vec<Operation>>,
}

impl Builder {
    fn new() -> Self {
        let mut b = Builder {
            doc: Document::with_version("1.5"),
            fonts: Dictionary::new(),
            xobjects: Dictionary::new(),
            pages: Vec::new(),
        };
        b.font(
            "F1",
            dictionary! {
                "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
                "Encoding" => "WinAnsiEncoding",
            },
        );
        b
    }

    fn font(&mut self, name: &str, font: Dictionary) -> &mut Self {
        let id = self.doc.add_object(font);
        self.fonts.set(name, id);
        self
    }

    fn stream(&mut self, dict: Dictionary, data: &[u8]) -> Object {
        self.doc.add_object(Stream::new(dict, data.to_vec())).into()
    }

    fn page(&mut self, ops: Vec<Operation>) -> &mut Self {
        self.pages.push(ops);
        self
    }

    fn build(mut self) -> Document {
        let pages_id = self.doc.new_object_id();
        let resources = self.doc.add_object(dictionary! {
            "Font" => self.fonts.clone(), "XObject" => self.xobjects.clone(),
        });
        let mut kids = Vec::new();
        for ops in std::mem::take(&mut self.pages) {
            let content = Content { operations: ops }.encode().unwrap();
            let content_id = self.doc.add_object(Stream::new(dictionary! {}, content));
            kids.push(
                self.doc
                    .add_object(dictionary! {
                        "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
                        "Resources" => resources,
                        "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
                    })
                    .into(),
            );
        }
        let count = kids.len() as i64;
        self.doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
        );
        let catalog = self
            .doc
            .add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        self.doc.trailer.set("Root", catalog);
        let id = hex(b"quarry-test-file");
        self.doc.trailer.set("ID", vec![id.clone(), id]);
        self.doc
    }

    fn bytes(self) -> Vec<u8> {
        save(self.build())
    }
}

fn save(mut doc: Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

/// Lines of Helvetica text, one `Tj` each, 20 points apart.
fn lines(lines: &[&str]) -> Vec<Operation> {
    let mut ops = vec![op("BT", vec![]), op("Tf", vec!["F1".into(), 12.into()])];
    for (i, line) in lines.iter().enumerate() {
        let (x, y) = if i == 0 { (72, 700) } else { (0, -20) };
        ops.push(op("Td", vec![x.into(), y.into()]));
        ops.push(op("Tj", vec![text(line)]));
    }
    ops.push(op("ET", vec![]));
    ops
}

fn parse(bytes: &[u8]) -> Result<quarry_core::ParsedDocument, ParseError> {
    PdfParser.parse(bytes)
}

fn reason(result: Result<quarry_core::ParsedDocument, ParseError>) -> String {
    match result {
        Err(ParseError::Malformed {
            format: "pdf",
            reason,
        }) => reason,
        other => panic!("expected a PDF failure, got {other:?}"),
    }
}

#[test]
fn text_comes_out_page_by_page_with_page_numbers() {
    let mut b = Builder::new();
    b.page(lines(&["Kilns fire stoneware."]))
        .page(lines(&["Glazes are sieved twice.", "Clay is wedged."]));
    let doc = parse(&b.bytes()).unwrap();
    assert_eq!(
        doc.text,
        "Kilns fire stoneware.\nGlazes are sieved twice.\nClay is wedged.\n"
    );
    assert_eq!(doc.page_starts, vec![0, "Kilns fire stoneware.\n".len()]);
    assert_eq!(doc.page_at(doc.text.find("Clay").unwrap()), Some(2));
    assert_eq!(doc.page_at(doc.text.find("Kilns").unwrap()), Some(1));
}

#[test]
fn words_come_from_positions_not_space_characters() {
    // As TeX writes: no space characters; word gaps and kerning are TJ adjustments, lines are
    // moved with Td, and a word is hyphenated across a line break.
    let mut b = Builder::new();
    b.page(vec![
        op("BT", vec![]),
        op("Tf", vec!["F1".into(), 10.into()]),
        op("Td", vec![72.into(), 700.into()]),
        op(
            "TJ",
            vec![Object::Array(vec![
                text("W"),
                80.into(),
                text("ater"),
                (-333).into(),
                text("boils"),
                (-333).into(),
                text("at"),
                (-1000).into(),
                text("hundred"),
                (-333).into(),
                text("de-"),
            ])],
        ),
        op("Td", vec![0.into(), (-12).into()]),
        op("Tj", vec![text("grees.")]),
        op("ET", vec![]),
    ]);
    // Helvetica without /Widths: glyph widths are estimated, so gaps of a third of an em and
    // more still read as spaces and kerning does not.
    assert_eq!(
        parse(&b.bytes()).unwrap().text,
        "Water boils at hundred degrees.\n"
    );
}

/// A Type0 font with Identity-H codes and a ToUnicode map from the given (code, text) pairs.
fn identity_font(b: &mut Builder, name: &str, map: &[(u16, &str)]) {
    let mut cmap = String::from(
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n1 begincodespacerange <0000> <FFFF> endcodespacerange\n",
    );
    cmap.push_str(&format!("{} beginbfchar\n", map.len()));
    for (code, text) in map {
        let utf16: String = text.encode_utf16().map(|u| format!("{u:04X}")).collect();
        cmap.push_str(&format!("<{code:04X}> <{utf16}>\n"));
    }
    cmap.push_str("endbfchar\nendcmap CMapName currentdict /CMap defineresource pop end end\n");
    let to_unicode = b.stream(dictionary! {}, cmap.as_bytes());
    let descendant = b.doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "CIDFontType2", "BaseFont" => "Test",
        "CIDSystemInfo" => dictionary! { "Registry" => text("Adobe"), "Ordering" => text("Identity"), "Supplement" => 0 },
        "DW" => 1000,
    });
    b.font(name, dictionary! {
        "Type" => "Font", "Subtype" => "Type0", "BaseFont" => "Test", "Encoding" => "Identity-H",
        "DescendantFonts" => vec![descendant.into()], "ToUnicode" => to_unicode,
    });
}

fn codes(codes: &[u16]) -> Object {
    hex(&codes
        .iter()
        .flat_map(|c| c.to_be_bytes())
        .collect::<Vec<_>>())
}

#[test]
fn composite_fonts_decode_through_their_to_unicode_maps() {
    let mut b = Builder::new();
    // Glyph ids as a subset font numbers them, nothing like the characters they show.
    identity_font(
        &mut b,
        "F2",
        &[
            (3, " "),
            (17, "П"),
            (18, "р"),
            (19, "и"),
            (20, "в"),
            (21, "е"),
            (22, "т"),
            (40, "你"),
            (41, "好"),
            (60, "\u{0645}"),
            (61, "\u{0631}"),
            (62, "\u{062D}"),
            (63, "\u{0628}"),
            (64, "\u{0627}"),
            (70, "fi"),
        ],
    );
    b.page(vec![
        op("BT", vec![]),
        op("Tf", vec!["F2".into(), 12.into()]),
        op("Td", vec![72.into(), 700.into()]),
        op("Tj", vec![codes(&[17, 18, 19, 20, 21, 22, 3, 40, 41])]),
        op("Td", vec![0.into(), (-20).into()]),
        // Arabic as PDFs place it: left to right on the page, the word's last letter first.
        op("Tj", vec![codes(&[64, 63, 62, 61, 60])]),
        op("Td", vec![0.into(), (-20).into()]),
        op("Tj", vec![codes(&[70])]),
        op("ET", vec![]),
    ]);
    assert_eq!(parse(&b.bytes()).unwrap().text, "Привет 你好\nمرحبا\nfi\n");
}

#[test]
fn glyph_names_in_differences_give_the_characters() {
    let mut b = Builder::new();
    b.font(
        "F3",
        dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Custom",
            "FirstChar" => 1, "LastChar" => 4,
            "Widths" => vec![500.into(), 500.into(), 500.into(), 500.into()],
            "Encoding" => dictionary! {
                "Type" => "Encoding", "BaseEncoding" => "WinAnsiEncoding",
                "Differences" => vec![1.into(), Object::Name(b"afii10024".to_vec()),
                    Object::Name(b"uni0434".to_vec()), Object::Name(b"fi".to_vec()),
                    Object::Name(b"quoteright".to_vec())],
            },
        },
    );
    b.page(vec![
        op("BT", vec![]),
        op("Tf", vec!["F3".into(), 12.into()]),
        op("Td", vec![72.into(), 700.into()]),
        op("Tj", vec![hex(&[1, 2, b' ', 3, b'x', 4, b's'])]),
        op("ET", vec![]),
    ]);
    assert_eq!(parse(&b.bytes()).unwrap().text, "Жд fix’s\n");
}

#[test]
fn text_inside_form_xobjects_is_found() {
    let mut b = Builder::new();
    let form_content = Content {
        operations: lines(&["Boxed note."]),
    }
    .encode()
    .unwrap();
    let resources = dictionary! { "Font" => b.fonts.clone() };
    let form = b.stream(
        dictionary! { "Type" => "XObject", "Subtype" => "Form", "Resources" => resources,
        "BBox" => vec![0.into(), 0.into(), 595.into(), 842.into()] },
        &form_content,
    );
    b.xobjects.set("Fm1", form);
    let mut ops = lines(&["Before the box."]);
    ops.push(op("Do", vec!["Fm1".into()]));
    b.page(ops);
    assert_eq!(
        parse(&b.bytes()).unwrap().text,
        "Before the box.\nBoxed note.\n"
    );
}

fn encrypted(user_password: &str) -> Vec<u8> {
    let mut b = Builder::new();
    b.page(lines(&["Quarterly figures, confidential."]));
    let mut doc = b.build();
    let filter: Arc<dyn CryptFilter> = Arc::new(Aes128CryptFilter);
    let version = EncryptionVersion::V4 {
        document: &doc,
        encrypt_metadata: true,
        crypt_filters: BTreeMap::from([(b"StdCF".to_vec(), filter)]),
        stream_filter: b"StdCF".to_vec(),
        string_filter: b"StdCF".to_vec(),
        owner_password: "owner-secret",
        user_password,
        permissions: Permissions::PRINTABLE,
    };
    let state = EncryptionState::try_from(version).unwrap();
    doc.encrypt(&state).unwrap();
    save(doc)
}

#[test]
fn owner_password_only_files_still_extract_and_user_passwords_fail_as_encrypted() {
    let open = encrypted("");
    assert!(
        open.windows(8).any(|w| w == b"/Encrypt"),
        "the file is encrypted"
    );
    assert_eq!(
        parse(&open).unwrap().text,
        "Quarterly figures, confidential.\n"
    );
    let locked = reason(parse(&encrypted("reader-secret")));
    assert!(locked.starts_with("encrypted"), "{locked}");
}

#[test]
fn image_only_truncated_and_garbage_files_fail_with_a_reason() {
    let mut b = Builder::new();
    b.page(vec![op("q", vec![]), op("Q", vec![])]).page(vec![]);
    let empty = reason(parse(&b.bytes()));
    assert!(empty.contains("no text layer"), "{empty}");

    let mut b = Builder::new();
    b.page(lines(&["Some text here."]));
    let whole = b.bytes();
    let cut = reason(parse(&whole[..whole.len() / 2]));
    assert!(!cut.is_empty());
    let junk = reason(parse(b"%PDF-1.4\nthis is not a pdf at all"));
    assert!(!junk.is_empty());
}

/// Cells placed one by one (`Tm`) at column positions, rows 18 points apart, as report
/// writers and spreadsheet exports draw tables; `rules` adds the grid a ruled table has.
fn table_page(title: &str, rows: &[&[&str]], columns: &[f32], rules: bool) -> Vec<Operation> {
    let mut ops = Vec::new();
    let top = 700.0;
    if rules {
        let width = columns.last().unwrap() + 120.0 - columns[0] + 8.0;
        for r in 0..=rows.len() {
            let y = top + 14.0 - 18.0 * r as f32;
            ops.push(op(
                "re",
                vec![
                    (columns[0] - 4.0).into(),
                    y.into(),
                    width.into(),
                    0.5.into(),
                ],
            ));
            ops.push(op("f", vec![]));
        }
        for &x in columns
            .iter()
            .chain([columns.last().unwrap() + 120.0].iter())
        {
            let height = 18.0 * rows.len() as f32;
            ops.push(op(
                "re",
                vec![
                    (x - 4.0).into(),
                    (top + 14.0 - height).into(),
                    0.5.into(),
                    height.into(),
                ],
            ));
            ops.push(op("f", vec![]));
        }
    }
    ops.push(op("BT", vec![]));
    ops.push(op("Tf", vec!["F1".into(), 10.into()]));
    ops.push(op(
        "Tm",
        vec![
            1.into(),
            0.into(),
            0.into(),
            1.into(),
            72.into(),
            740.into(),
        ],
    ));
    ops.push(op("Tj", vec![text(title)]));
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            if cell.is_empty() {
                continue;
            }
            // Numbers right-aligned in their column, as tables set them.
            let numeric = cell.chars().all(|ch| ch.is_ascii_digit() || ch == ',');
            let x = if numeric {
                columns[c] + 60.0 - 5.56 * cell.len() as f32
            } else {
                columns[c]
            };
            let y = top - 18.0 * r as f32;
            ops.push(op(
                "Tm",
                vec![1.into(), 0.into(), 0.into(), 1.into(), x.into(), y.into()],
            ));
            ops.push(op("Tj", vec![text(cell)]));
        }
    }
    ops.push(op(
        "Tm",
        vec![
            1.into(),
            0.into(),
            0.into(),
            1.into(),
            72.into(),
            (top - 18.0 * rows.len() as f32 - 20.0).into(),
        ],
    ));
    ops.push(op("Tj", vec![text("Prices include tax.")]));
    ops.push(op("ET", vec![]));
    ops
}

#[test]
fn aligned_and_ruled_tables_come_out_as_rows_naming_their_columns() {
    let rows: &[&[&str]] = &[
        &["Item", "Unit price", "In stock"],
        &["Laptop stand", "900", "12"],
        &["Mouse", "", "150"],
        &["Docking station", "1,200", "3"],
    ];
    let expected = "Price list\nItem | Unit price | In stock\nItem: Laptop stand; Unit price: 900; In stock: 12\nItem: Mouse; In stock: 150\nItem: Docking station; Unit price: 1,200; In stock: 3\nPrices include tax.\n";
    for rules in [false, true] {
        let mut b = Builder::new();
        b.page(table_page("Price list", rows, &[72.0, 220.0, 340.0], rules));
        assert_eq!(parse(&b.bytes()).unwrap().text, expected, "rules: {rules}");
    }
}

#[test]
fn prose_set_in_two_columns_is_not_a_table() {
    let left = "Kilns are fired slowly over a long day";
    let right = "while the glaze matures in the heat";
    let rows: Vec<[&str; 2]> = (0..4).map(|_| [left, right]).collect();
    let rows: Vec<&[&str]> = rows.iter().map(|r| &r[..]).collect();
    let mut b = Builder::new();
    b.page(table_page("Notes", &rows, &[72.0, 320.0], false));
    let text = parse(&b.bytes()).unwrap().text;
    assert!(!text.contains(": "), "{text}");
    assert!(text.contains(&format!("{left} {right}")), "{text}");
}
