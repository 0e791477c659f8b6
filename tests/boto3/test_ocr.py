"""OCR on files the test builds: text rendered into images (PNG, JPEG, a two-page TIFF, BMP,
GIF, WebP) with Pillow, an image-only PDF of two pages, and a mixed PDF (a text page and a
scanned one), read through `quarry parse` and a `quarry sync` with the real Tesseract
(Debian's tesseract-ocr + tesseract-ocr-eng) and poppler's pdftoppm, installed with apt-get
when missing. A corrupt image and a decompression bomb fail alone with their reasons; a
missing Tesseract, pdftoppm or language is named in the failure; a data source's
`ocr.languages` reaches Tesseract (German read with `deu`, which English cannot spell)."""
import difflib
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import unittest
import zlib

import pylib
from debian import ensure_packages
from harness import FIXTURES, MODEL

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
ensure_packages(["tesseract-ocr", "tesseract-ocr-eng", "tesseract-ocr-deu", "poppler-utils", "fonts-dejavu-core"],
                ["tesseract", "pdftoppm"],
                ["/usr/share/tesseract-ocr/5/tessdata/eng.traineddata",
                 "/usr/share/tesseract-ocr/5/tessdata/deu.traineddata", DEJAVU])
pylib.use("pillow", "pillow==13.0.0", "PIL")
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

QUARRY = os.environ["QUARRY_BIN"]


def paragraph(name):
    with open(os.path.join(FIXTURES, name)) as f:
        text = re.sub(r"[#*`|]", " ", f.read())
    return " ".join(text.split()[:90])


FIRST = paragraph("handbook/vacation-policy.md")
SECOND = paragraph("handbook/remote-work.txt")


def words(text):
    return re.findall(r"[a-z0-9]+", text.lower())


def similarity(expected, got):
    """Word-sequence similarity (difflib's ratio over words), 1.0 for the same words."""
    return difflib.SequenceMatcher(None, words(expected), words(got), autojunk=False).ratio()


def page_image(text, width=1654, height=2339):
    """A white A4 page at 200 dpi with `text` wrapped in a 12-point-like font."""
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=34)
    line, y = "", 150
    for word in text.split():
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) > width - 300:
            draw.text((150, y), line, font=font, fill=0)
            y += 52
            line = word
        else:
            line = trial
    draw.text((150, y), line, font=font, fill=0)
    return image


def pdf(pages):
    """A PDF whose pages are each ("text", str) with a Helvetica text layer or ("image", PIL
    image) drawn full page with no text layer."""
    objects = []

    def add(body):
        objects.append(body)
        return len(objects)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for kind, content in pages:
        if kind == "text":
            lines, line = [], ""
            for word in content.split():
                if len(line) + len(word) > 80:
                    lines.append(line)
                    line = word
                else:
                    line = f"{line} {word}".strip()
            lines.append(line)
            escaped = [l.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for l in lines]
            ops = "BT /F1 11 Tf 72 740 Td 14 TL " + " ".join(f"({l}) '" for l in escaped) + " ET"
            stream = ops.encode("latin-1")
            resources = f"/Resources << /Font << /F1 {font} 0 R >> >>"
        else:
            raw = zlib.compress(content.tobytes())
            image = add(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                        b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n" % (*content.size, len(raw))
                        + raw + b"\nendstream")
            stream = b"q 595 0 0 842 0 0 cm /Im1 Do Q"
            resources = f"/Resources << /XObject << /Im1 {image} 0 R >> >>"
        contents = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(add(f"<< /Type /Page /Parent {{PAGES}} 0 R /MediaBox [0 0 595 842] /Contents {contents} 0 R {resources} >>".encode()))
    pages_id = add(f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>".encode())
    catalog = add(f"<< /Type /Catalog /Pages {pages_id} 0 R >>".encode())
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        if body.startswith(b"<< /Type /Page "):
            body = body.replace(b"{PAGES}", str(pages_id).encode())
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref)
    return bytes(out)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def parse(path, *args, env=None):
    done = subprocess.run([QUARRY, "parse", path, "--json", *args], capture_output=True, text=True,
                          env=env, timeout=600)
    return json.loads(done.stdout), done


class Ocr(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="quarry-ocr-")
        cls.docs = os.path.join(cls.dir, "docs")
        os.makedirs(cls.docs)
        first, second = page_image(FIRST), page_image(SECOND)
        cls.files = {}
        for name, save in {
            "scan.png": lambda p: first.save(p),
            "scan.jpg": lambda p: first.save(p, quality=85),
            "scan.tiff": lambda p: first.save(p, save_all=True, append_images=[second], compression="tiff_lzw"),
            "scan.bmp": lambda p: first.save(p),
            "scan.gif": lambda p: first.save(p),
            "scan.webp": lambda p: first.save(p, lossless=True),
        }.items():
            path = os.path.join(cls.docs, name)
            save(path)
            cls.files[name] = path
        with open(os.path.join(cls.docs, "scanned.pdf"), "wb") as f:
            f.write(pdf([("image", first), ("image", second)]))
        with open(os.path.join(cls.docs, "mixed.pdf"), "wb") as f:
            f.write(pdf([("text", SECOND), ("image", first)]))
        header = b"\x89PNG\r\n\x1a\n"
        with open(os.path.join(cls.docs, "corrupt.png"), "wb") as f:
            f.write(header + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 800, 600, 8, 0, 0, 0, 0))
                    + png_chunk(b"IDAT", b"this is not deflate data") + png_chunk(b"IEND", b""))
        with open(os.path.join(cls.docs, "bomb.png"), "wb") as f:
            # 60,000 × 60,000 pixels claimed by a file of a few hundred bytes.
            f.write(header + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0))
                    + png_chunk(b"IDAT", zlib.compress(b"\0" * 60001 * 4)) + png_chunk(b"IEND", b""))
        with open(os.path.join(cls.docs, "notes.txt"), "w") as f:
            f.write("Plain text notes about the parking garage, which opens at seven.\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_every_image_format_is_read(self):
        for name in ["scan.png", "scan.jpg", "scan.bmp", "scan.gif", "scan.webp"]:
            with self.subTest(name):
                out, done = parse(self.files[name])
                self.assertEqual(done.returncode, 0, done.stderr)
                self.assertEqual(len(out["pages"]), 1)
                page = out["pages"][0]
                self.assertTrue(page["ocr"])
                self.assertGreater(page["ocrConfidence"], 80)
                self.assertGreaterEqual(similarity(FIRST, page["text"]), 0.9, page["text"])

    def test_a_multi_page_tiff_keeps_its_pages(self):
        out, done = parse(self.files["scan.tiff"])
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual([p["page"] for p in out["pages"]], [1, 2])
        self.assertGreaterEqual(similarity(FIRST, out["pages"][0]["text"]), 0.9)
        self.assertGreaterEqual(similarity(SECOND, out["pages"][1]["text"]), 0.9)

    def test_an_image_only_pdf_is_rendered_and_read_page_by_page(self):
        out, done = parse(os.path.join(self.docs, "scanned.pdf"))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual([(p["page"], p.get("ocr")) for p in out["pages"]], [(1, True), (2, True)])
        self.assertGreaterEqual(similarity(FIRST, out["pages"][0]["text"]), 0.9)
        self.assertGreaterEqual(similarity(SECOND, out["pages"][1]["text"]), 0.9)

    def test_a_mixed_pdf_keeps_its_text_layer_and_reads_its_scan(self):
        out, done = parse(os.path.join(self.docs, "mixed.pdf"))
        self.assertEqual(done.returncode, 0, done.stderr)
        first, second = out["pages"]
        self.assertNotIn("ocr", first, "the text layer is used as it is")
        self.assertEqual(words(first["text"]), words(SECOND))
        self.assertTrue(second["ocr"])
        self.assertGreaterEqual(similarity(FIRST, second["text"]), 0.9)

    def test_a_corrupt_image_and_a_bomb_fail_with_their_reasons(self):
        out, done = parse(os.path.join(self.docs, "corrupt.png"))
        self.assertEqual(done.returncode, 1)
        self.assertIn("tesseract could not read the image", out["failure"])
        out, done = parse(os.path.join(self.docs, "bomb.png"))
        self.assertEqual(done.returncode, 1)
        self.assertIn("decompression bomb: page 1 claims 60000×60000 pixels", out["failure"])

    def test_missing_programs_and_languages_are_named(self):
        empty = tempfile.mkdtemp(dir=self.dir)
        out, _ = parse(self.files["scan.png"], env=dict(os.environ, PATH=empty))
        self.assertIn("install Debian's tesseract-ocr and tesseract-ocr-eng", out["failure"])
        # Tesseract there, pdftoppm not: a scanned PDF names poppler-utils.
        os.symlink(shutil.which("tesseract"), os.path.join(empty, "tesseract"))
        out, _ = parse(os.path.join(self.docs, "scanned.pdf"), env=dict(os.environ, PATH=empty))
        self.assertIn("install Debian's poppler-utils", out["failure"])
        out, _ = parse(self.files["scan.png"], "--ocr-languages", "eng,xyz")
        self.assertIn("OCR language data for xyz is not installed: install Debian's tesseract-ocr-xyz",
                      out["failure"])
        # A file with a text layer needs neither.
        out, done = parse(os.path.join(self.docs, "notes.txt"), env=dict(os.environ, PATH=empty))
        self.assertEqual(done.returncode, 0, out)

    def test_a_data_sources_languages_are_the_ones_read(self):
        german = os.path.join(self.dir, "german")
        os.makedirs(german, exist_ok=True)
        image = Image.new("L", (1700, 300), 255)
        draw = ImageDraw.Draw(image)
        font = ImageFont.truetype(DEJAVU, 40)
        draw.text((50, 50), "Die Größe der Straße über dem Fluss ändert sich.", font=font, fill=0)
        draw.text((50, 130), "Müller und Schäfer prüfen die Brücke täglich.", font=font, fill=0)
        image.save(os.path.join(german, "brief.png"))
        # English cannot spell it: ß is not in its alphabet.
        out, _ = parse(os.path.join(german, "brief.png"))
        self.assertNotIn("Straße", out["pages"][0]["text"])
        config = os.path.join(self.dir, "german.toml")
        with open(config, "w") as f:
            f.write(f'''[server]
data_dir = "german-data"

[models.minilm]
kind = "bert"
path = "{MODEL}"

[[knowledge_bases]]
id = "GERMKB0001"
name = "german"
embedding_model = "minilm"

[[knowledge_bases.data_sources]]
id = "GERMDS0001"
name = "letters"
type = "local"
path = "german"
ocr = {{ languages = ["deu"] }}
''')
        done = subprocess.run([QUARRY, "--config", config, "sync", "german", "--json"], capture_output=True,
                              text=True, timeout=600)
        self.assertEqual(json.loads(done.stdout)["statistics"]["numberOfNewDocumentsIndexed"], 1, done.stderr)
        done = subprocess.run([QUARRY, "--config", config, "query", "german", "Brücke", "--json"],
                              capture_output=True, text=True, timeout=300)
        text = json.loads(done.stdout)["retrievalResults"][0]["content"]["text"]
        self.assertIn("Die Größe der Straße über dem Fluss ändert sich.", text)
        self.assertIn("Müller und Schäfer prüfen die Brücke täglich.", text)

    def test_a_sync_indexes_scans_with_their_confidence_and_fails_bad_images_alone(self):
        config = os.path.join(self.dir, "knowledge-bases.toml")
        with open(config, "w") as f:
            f.write(f"""[server]
data_dir = "data"

[models.minilm]
kind = "bert"
path = "{MODEL}"

[[knowledge_bases]]
id = "SCANKB0001"
name = "scans"
embedding_model = "minilm"

[[knowledge_bases.data_sources]]
id = "SCANDS0001"
name = "scans"
type = "local"
path = "docs"
ocr = {{ languages = ["eng"] }}
""")
        done = subprocess.run([QUARRY, "--config", config, "sync", "scans", "--json"], capture_output=True,
                              text=True, timeout=900)
        job = json.loads(done.stdout)
        stats = job["statistics"]
        self.assertEqual(stats["numberOfNewDocumentsIndexed"], 9, job)
        self.assertEqual(stats["numberOfDocumentsFailed"], 2, job)
        reasons = " ".join(job["failureReasons"])
        self.assertIn("bomb.png: malformed png: decompression bomb", reasons)
        self.assertIn("corrupt.png: malformed png: tesseract could not read the image", reasons)
        done = subprocess.run([QUARRY, "--config", config, "query", "scans", "How many days of paid vacation?",
                               "-k", "20", "--json"], capture_output=True, text=True, timeout=300)
        results = json.loads(done.stdout)["retrievalResults"]
        by_source = {}
        for r in results:
            by_source.setdefault(r["metadata"]["x-amz-bedrock-kb-source-uri"].rsplit("/", 1)[1], []).append(r)
        self.assertIn("scan.png", by_source)
        for r in by_source["scan.png"]:
            self.assertIs(r["metadata"]["x-quarry-ocr"], True)
            self.assertGreater(r["metadata"]["x-quarry-ocr-confidence"], 80)
            self.assertEqual(r["metadata"]["x-amz-bedrock-kb-document-page-number"], 1)
        for r in by_source.get("mixed.pdf", []):
            ocr = r["metadata"].get("x-quarry-ocr")
            page = r["metadata"]["x-amz-bedrock-kb-document-page-number"]
            self.assertEqual(ocr, True if page == 2 else None, r["metadata"])
        for r in by_source.get("notes.txt", []):
            self.assertNotIn("x-quarry-ocr", r["metadata"])


if __name__ == "__main__":
    unittest.main()
