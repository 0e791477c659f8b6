//! DOCX and XLSX parsers on files built here (zip archives written with the `zip` crate), and
//! each way they refuse bad input.

use std::io::{Cursor, Write};

use quarry_core::ParseError;
use quarry_ingest::parsers::parse_document;
use zip::write::SimpleFileOptions;

const LIMIT: u64 = 50 * 1024 * 1024;

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, body) in files {
        zip.start_file(
            *name,
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated),
        )
        .unwrap();
        zip.write_all(body).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn docx(body: &str) -> Vec<u8> {
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
    );
    zip_of(&[
        ("[Content_Types].xml", b"<Types/>"),
        ("word/document.xml", xml.as_bytes()),
    ])
}

#[test]
fn docx_keeps_headings_lists_tables_and_order() {
    let body = r#"
<w:p><w:pPr><w:pStyle w:val="Title"/></w:pPr><w:r><w:t>Travel Policy</w:t></w:r></w:p>
<w:p><w:pPr><w:pStyle w:val="Heading2"/></w:pPr><w:r><w:t>Flights</w:t></w:r></w:p>
<w:p><w:r><w:t xml:space="preserve">Book economy &amp; </w:t></w:r><w:r><w:t>keep receipts.</w:t></w:r><w:del><w:r><w:delText>Old rule.</w:delText></w:r></w:del></w:p>
<w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr><w:r><w:t>Trains first</w:t><w:tab/><w:t>then planes</w:t></w:r></w:p>
<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Item</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Limit</w:t></w:r></w:p></w:tc></w:tr>
<w:tr><w:tc><w:p><w:r><w:t>Hotel</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>150 &#8364;</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
<w:p><w:r><w:t>The end.</w:t></w:r></w:p>"#;
    let doc = parse_document("policy.docx", &docx(body), LIMIT).unwrap();
    assert_eq!(
        doc.text,
        "# Travel Policy\n## Flights\nBook economy & keep receipts.\n- Trains first\tthen planes\nItem | Limit\nItem: Hotel; Limit: 150 €\nThe end.\n"
    );
}

#[test]
fn docx_failures_have_reasons() {
    let malformed = |r: Result<_, ParseError>| match r {
        Err(ParseError::Malformed { reason, .. }) => reason,
        other => panic!("expected a malformed-file error, got {other:?}"),
    };
    let reason = malformed(parse_document("x.docx", b"PK not really a zip", LIMIT));
    assert!(reason.contains("not a valid docx"), "{reason}");
    let reason = malformed(parse_document(
        "x.docx",
        &zip_of(&[("word/other.xml", b"<a/>")]),
        LIMIT,
    ));
    assert!(reason.contains("no word/document.xml"), "{reason}");
    let deep = format!(
        "{}<w:t>x</w:t>{}",
        "<w:p>".repeat(400),
        "</w:p>".repeat(400)
    );
    let reason = malformed(parse_document("x.docx", &docx(&deep), LIMIT));
    assert!(reason.contains("nested"), "{reason}");
    // 64 MiB of zeros compresses about a thousandfold.
    let bomb = zip_of(&[("word/document.xml", &vec![0u8; 64 << 20])]);
    assert!(bomb.len() < 1 << 20);
    let reason = malformed(parse_document("x.docx", &bomb, LIMIT));
    assert!(reason.contains("zip bomb"), "{reason}");
}

fn xlsx(sheets: &[(&str, &str)]) -> Vec<u8> {
    let mut workbook = String::from(
        r#"<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>"#,
    );
    let mut rels = String::from(
        r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#,
    );
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, (name, rows)) in sheets.iter().enumerate() {
        let n = i + 1;
        workbook.push_str(&format!(
            r#"<sheet name="{name}" sheetId="{n}" r:id="rId{n}"/>"#
        ));
        rels.push_str(&format!(
            r#"<Relationship Id="rId{n}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{n}.xml"/>"#
        ));
        files.push((
            format!("xl/worksheets/sheet{n}.xml"),
            format!(r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{rows}</sheetData></worksheet>"#).into_bytes(),
        ));
    }
    workbook.push_str("</sheets></workbook>");
    rels.push_str("</Relationships>");
    files.push(("xl/workbook.xml".into(), workbook.into_bytes()));
    files.push(("xl/_rels/workbook.xml.rels".into(), rels.into_bytes()));
    files.push((
        "[Content_Types].xml".into(),
        br#"<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>"#.to_vec(),
    ));
    files.push((
        "_rels/.rels".into(),
        br#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_vec(),
    ));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    zip_of(&refs)
}

fn row(n: usize, cells: &[&str]) -> String {
    let cols = ["A", "B", "C", "D"];
    let body: String = cells
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(i, v)| match v.parse::<f64>() {
            Ok(_) => format!(r#"<c r="{}{n}"><v>{v}</v></c>"#, cols[i]),
            Err(_) => format!(
                r#"<c r="{}{n}" t="inlineStr"><is><t>{v}</t></is></c>"#,
                cols[i]
            ),
        })
        .collect();
    format!(r#"<row r="{n}">{body}</row>"#)
}

#[test]
fn xlsx_rows_name_their_columns_on_every_sheet() {
    let sales = [
        row(1, &["Region", "Revenue", "Units"]),
        row(2, &["North", "1200.5", "7"]),
        row(3, &["South", "", "3"]),
    ]
    .concat();
    let staff = [row(1, &["Name", "Team"]), row(2, &["Ada", "Research"])].concat();
    let doc = parse_document(
        "report.xlsx",
        &xlsx(&[("Sales", &sales), ("Staff", &staff)]),
        LIMIT,
    )
    .unwrap();
    assert_eq!(
        doc.text,
        "# Sheet: Sales\nRegion: North; Revenue: 1200.5; Units: 7\nRegion: South; Units: 3\n# Sheet: Staff\nName: Ada; Team: Research\n"
    );
    // Each sheet starts a "page", so chunks know their sheet.
    assert_eq!(doc.page_at(doc.text.find("Ada").unwrap()), Some(2));
}

#[test]
fn xlsx_cells_far_apart_cost_only_themselves() {
    // The first and the last cell a sheet can have: read as a rectangle, 17 billion cells.
    let rows = r#"<row r="1"><c r="A1" t="inlineStr"><is><t>Item</t></is></c><c r="B1" t="inlineStr"><is><t>Note</t></is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>Kiln</t></is></c></row><row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>far away</t></is></c></row>"#;
    let doc = parse_document("sparse.xlsx", &xlsx(&[("Sheet1", rows)]), LIMIT).unwrap();
    assert_eq!(
        doc.text,
        "# Sheet: Sheet1\nItem: Kiln\nColumn 16384: far away\n"
    );
}

#[test]
fn broken_spreadsheets_fail_with_reasons() {
    match parse_document("bad.xlsx", b"definitely not a workbook", LIMIT) {
        Err(ParseError::Malformed {
            format: "xlsx",
            reason,
        }) => assert!(reason.contains("zip"), "{reason}"),
        other => panic!("{other:?}"),
    }
    match parse_document("bad.xls", b"not an OLE file either", LIMIT) {
        Err(ParseError::Malformed { format: "xls", .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// readxl's `datasets.xlsx` stores numbers padded (`<v> 41</v>`), which calamine refuses:
/// the cell is read leniently, the rest of the sheet and workbook as always, with a note.
#[test]
fn a_number_stored_padded_does_not_fail_the_workbook() {
    let quakes = [
        row(1, &["lat", "stations"]),
        r#"<row r="2"><c r="A2" t="n"><v>-20.42</v></c><c r="B2" t="n"><v> 41</v></c></row>"#
            .into(),
        r#"<row r="3"><c r="A3" t="n"><v>-20.62</v></c><c r="B3" t="n"><v>15</v></c></row>"#.into(),
    ]
    .concat();
    let iris = [row(1, &["Species"]), row(2, &["setosa"])].concat();
    let doc = parse_document(
        "datasets.xlsx",
        &xlsx(&[("iris", &iris), ("quakes", &quakes)]),
        LIMIT,
    )
    .unwrap();
    assert_eq!(
        doc.text,
        "# Sheet: iris\nSpecies: setosa\n# Sheet: quakes\nlat: -20.42; stations: 41\nlat: -20.62; stations: 15\n"
    );
    assert_eq!(doc.warnings.len(), 1);
    assert!(
        doc.warnings[0].starts_with("sheet quakes: 1 cell read leniently ("),
        "{:?}",
        doc.warnings
    );
}
