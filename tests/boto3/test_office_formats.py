"""Word 97–2003 (.doc) and PowerPoint (.pptx) files made by a real Office writer: the test
writes flat OpenDocument files and has LibreOffice (Debian's libreoffice-writer-nogui and
libreoffice-impress-nogui, installed with apt-get when missing) save them as `MS Word 97`
and `PowerPoint 2007` files, then reads them with `quarry parse`: text in order, tables as
rows, hyperlink fields as their text, non-ASCII exact, slides as pages with speaker notes,
both recognized by content without their extension; a truncated .doc fails with a reason."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from debian import ensure_packages

ensure_packages(["libreoffice-writer-nogui", "libreoffice-impress-nogui"], ["soffice"])
QUARRY = os.environ["QUARRY_BIN"]

NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
      'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
      'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
      'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
      'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
      'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" '
      'xmlns:xlink="http://www.w3.org/1999/xlink" office:version="1.3"')
APPENDIX = [f"Appendix paragraph {i} lists inspection step {i} for robot unit {i * 7}." for i in range(300)]


def table(rows):
    cells = "".join(
        "<table:table-row>" + "".join(f"<table:table-cell><text:p>{c}</text:p></table:table-cell>" for c in row)
        + "</table:table-row>" for row in rows)
    return f'<table:table><table:table-column table:number-columns-repeated="{len(rows[0])}"/>{cells}</table:table>'


DOCUMENT = f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document {NS} office:mimetype="application/vnd.oasis.opendocument.text"><office:body><office:text>
<text:h text:outline-level="1">Travel Policy</text:h>
<text:p>Book economy class and keep every receipt.</text:p>
{table([["Item", "Limit"], ["Hotel", "150 €"], ["Meals", "40 €"]])}
<text:p>Naïve café déjà vu — “quoted” and 東京.</text:p>
<text:p>Read more on <text:a xlink:type="simple" xlink:href="https://example.com/travel">the travel site</text:a> today.</text:p>
{"".join(f"<text:p>{p}</text:p>" for p in APPENDIX)}
</office:text></office:body></office:document>"""


def frame(body, y, extra=""):
    return f'<draw:frame svg:x="1cm" svg:y="{y}cm" svg:width="20cm" svg:height="5cm"{extra}>{body}</draw:frame>'


def box(*paragraphs):
    return "<draw:text-box>" + "".join(f"<text:p>{p}</text:p>" for p in paragraphs) + "</draw:text-box>"


PRESENTATION = f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document {NS} office:mimetype="application/vnd.oasis.opendocument.presentation"><office:body><office:presentation>
<draw:page draw:name="one">{frame(box("Quarterly Robot Sales"), 1)}{frame(box("Rover units shipped: 1,240", "Returns fell to 2 percent"), 6)}
<presentation:notes>{frame(box("Mention the new warehouse in Lyon."), 15, ' presentation:class="notes"')}</presentation:notes></draw:page>
<draw:page draw:name="two">{frame(box("Regional Targets"), 1)}{frame(table([["Region", "Target"], ["North", "500"]]), 6)}</draw:page>
<draw:page draw:name="three">{frame(box("Questions?"), 1)}</draw:page>
</office:presentation></office:body></office:document>"""


def parse(path):
    done = subprocess.run([QUARRY, "parse", path, "--json"], capture_output=True, text=True, timeout=300)
    return json.loads(done.stdout), done


class OfficeFormats(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="quarry-office-")
        for name, content, target in [("policy.fodt", DOCUMENT, "doc"), ("deck.fodp", PRESENTATION, "pptx")]:
            source = os.path.join(cls.dir, name)
            with open(source, "w", encoding="utf-8") as f:
                f.write(content)
            subprocess.run(["soffice", f"-env:UserInstallation=file://{cls.dir}/profile", "--headless",
                            "--convert-to", target, "--outdir", cls.dir, source],
                           check=True, capture_output=True, timeout=300)
        cls.doc = os.path.join(cls.dir, "policy.doc")
        cls.pptx = os.path.join(cls.dir, "deck.pptx")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_a_word_97_document_reads_in_order(self):
        with open(self.doc, "rb") as f:
            self.assertTrue(f.read(8) == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "LibreOffice wrote an OLE file")
        out, done = parse(self.doc)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(out["format"], "doc")
        lines = out["text"].splitlines()
        self.assertEqual(lines[:7], [
            "Travel Policy",
            "Book economy class and keep every receipt.",
            "Item | Limit",
            "Hotel | 150 €",
            "Meals | 40 €",
            "Naïve café déjà vu — “quoted” and 東京.",
            "Read more on the travel site today.",
        ])
        self.assertEqual(lines[7:], APPENDIX, "every paragraph of a document far past the mini stream")

    def test_a_presentation_reads_slide_by_slide_with_notes(self):
        out, done = parse(self.pptx)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(out["format"], "pptx")
        pages = [p["text"].split("\n") for p in out["pages"]]
        self.assertEqual([p["page"] for p in out["pages"]], [1, 2, 3])
        self.assertEqual([l for l in pages[0] if l], ["Quarterly Robot Sales", "Rover units shipped: 1,240",
                                                      "Returns fell to 2 percent", "Speaker notes:",
                                                      "Mention the new warehouse in Lyon."])
        self.assertEqual([l for l in pages[1] if l], ["Regional Targets", "Region | Target", "North | 500"])
        self.assertEqual([l for l in pages[2] if l], ["Questions?"])

    def test_both_are_recognized_by_content(self):
        for source, name, want in [(self.doc, "memo", "doc"), (self.doc, "memo.xls", "doc"),
                                   (self.pptx, "slides", "pptx"), (self.pptx, "slides.zip", "pptx")]:
            with self.subTest(name):
                path = os.path.join(self.dir, name)
                shutil.copy(source, path)
                out, done = parse(path)
                self.assertEqual(done.returncode, 0, done.stderr)
                self.assertEqual(out["format"], want)

    def test_a_truncated_document_fails_with_its_reason(self):
        path = os.path.join(self.dir, "cut.doc")
        with open(self.doc, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:len(data) // 3])
        out, done = parse(path)
        self.assertEqual(done.returncode, 1)
        self.assertIn("malformed doc: broken compound file", out["failure"])


if __name__ == "__main__":
    unittest.main()
