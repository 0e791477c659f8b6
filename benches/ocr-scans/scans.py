"""Scans made from real PDF pages, and their OCR scored against pdftotext.

    scans.py make DOCS OUT --pages N --dpi D   # pick N text pages, write OUT/{pdf,png,tiff}/…
    scans.py score OUT TEXT                    # TEXT: `quarry bench parse --out` of OUT

Pages are picked deterministically (every PDF under DOCS in path order, then pages spread
evenly over all those with at least 80 words of text layer). Each page is rendered at D dpi
in grey (pdftoppm), saved as PNG, as TIFF and as an image-only PDF (the page image as a
Flate-compressed DeviceGray XObject). The reference is pdftotext's text of the original page.
Similarity is the parse bench's: the F1 overlap of the word multisets (NFKC, lower case).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import zlib

# The parse bench's word-F1 similarity, so both benches score alike.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parse-real"))
from compare_pdftotext import similarity, words  # noqa: E402


def page_count(pdf):
    done = subprocess.run(["pdfinfo", pdf], capture_output=True, text=True)
    m = re.search(r"^Pages:\s+(\d+)", done.stdout, re.M)
    return int(m.group(1)) if m else 0


def page_text(pdf, page):
    done = subprocess.run(["pdftotext", "-enc", "UTF-8", "-f", str(page), "-l", str(page), pdf, "-"],
                          capture_output=True)
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else ""


def read_pgm(data):
    """A binary PGM (P5, 8-bit) as (width, height, pixels)."""
    parts, at = [], 0
    while len(parts) < 4:
        while data[at:at + 1].isspace():
            at += 1
        if data[at:at + 1] == b"#":
            at = data.index(b"\n", at) + 1
            continue
        end = at
        while not data[end:end + 1].isspace():
            end += 1
        parts.append(data[at:end])
        at = end
    assert parts[0] == b"P5" and parts[3] == b"255", parts[:4]
    width, height = int(parts[1]), int(parts[2])
    return width, height, data[at + 1:at + 1 + width * height]


def png(width, height, pixels):
    def chunk(kind, body):
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
    rows = b"".join(b"\0" + pixels[y * width:(y + 1) * width] for y in range(height))
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")


def tiff(width, height, pixels):
    """An uncompressed 8-bit grey baseline TIFF."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 8), (277, 3, 1), (278, 4, height), (279, 4, width * height)]
    ifd_at = 8 + len(pixels)
    out = b"II*\0" + ifd_at.to_bytes(4, "little") + pixels
    out += len(entries).to_bytes(2, "little")
    for tag, kind, value in entries:
        out += tag.to_bytes(2, "little") + kind.to_bytes(2, "little") + (1).to_bytes(4, "little")
        out += value.to_bytes(4, "little")
    return out + (0).to_bytes(4, "little")


def image_pdf(width, height, pixels, dpi):
    w_pt, h_pt = width * 72 / dpi, height * 72 / dpi
    data = zlib.compress(pixels, 6)
    content = f"q {w_pt:.2f} 0 0 {h_pt:.2f} 0 0 cm /Im1 Do Q".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w_pt:.2f} {h_pt:.2f}] /Contents 4 0 R "
        f"/Resources << /XObject << /Im1 5 0 R >> >> >>".encode(),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n" % (width, height, len(data))
        + data + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def make(args):
    pdfs = sorted(os.path.join(d, f) for d, _, fs in os.walk(args.docs) for f in fs if f.lower().endswith(".pdf"))
    candidates = []
    for pdf in pdfs:
        n = page_count(pdf)
        # A few pages per file, spread through it, so no one document dominates.
        for page in sorted({max(1, round(n * k / 4)) for k in range(1, 4)} if n else []):
            candidates.append((pdf, page))
    chosen, step = [], max(1, len(candidates) // (args.pages * 2))
    for pdf, page in candidates[::step]:
        reference = page_text(pdf, page)
        if sum(words(reference).values()) >= 80:
            chosen.append((pdf, page, reference))
        if len(chosen) == args.pages:
            break
    for kind in ("pdf", "png", "tiff"):
        os.makedirs(os.path.join(args.out, kind), exist_ok=True)
    rows = []
    for i, (pdf, page, reference) in enumerate(chosen):
        print(f"\rrendering {i + 1}/{len(chosen)}", end="", file=sys.stderr)
        pgm = subprocess.run(["pdftoppm", "-r", str(args.dpi), "-gray", "-f", str(page), "-l", str(page), pdf],
                             capture_output=True, check=True).stdout
        width, height, pixels = read_pgm(pgm)
        name = f"scan-{i:03d}"
        for kind, data in (("pdf", image_pdf(width, height, pixels, args.dpi)), ("png", png(width, height, pixels)),
                           ("tiff", tiff(width, height, pixels))):
            with open(os.path.join(args.out, kind, f"{name}.{kind}"), "wb") as f:
                f.write(data)
        rows.append({"name": name, "source": os.path.relpath(pdf, args.docs), "page": page, "reference": reference})
    print(file=sys.stderr)
    with open(os.path.join(args.out, "references.jsonl"), "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(f"{len(rows)} pages from {len({r['source'] for r in rows})} PDFs, rendered at {args.dpi} dpi")


def score(args):
    references = {}
    for line in open(os.path.join(args.scans, "references.jsonl")):
        row = json.loads(line)
        references[row["name"]] = words(row["reference"])
    results = [json.loads(line) for line in open(os.path.join(args.text, "results.jsonl"))]
    print(f"\n{'format':<6} {'pages':>6} {'pages/s':>8} {'median':>7} {'p10':>6} {'mean':>6} {'conf':>6}  failures")
    for kind in ("pdf", "png", "tiff"):
        rows = [r for r in results if r["file"].startswith(kind + "/")]
        scores, seconds, confidences, failures = [], 0.0, [], 0
        for r in rows:
            name = os.path.basename(r["file"]).rsplit(".", 1)[0]
            seconds += r["seconds"]
            if "failure" in r:
                failures += 1
                scores.append(0.0)
                continue
            text = open(os.path.join(args.text, r["file"] + ".txt"), encoding="utf-8").read()
            scores.append(similarity(references[name], words(text)))
            confidences.append(r.get("ocrConfidence", 0))
        if not rows:
            continue
        deciles = statistics.quantiles(scores, n=10) if len(scores) > 1 else scores
        print(f"{kind:<6} {len(rows):>6} {len(rows) / seconds:>8.2f} {statistics.median(scores):>7.3f} "
              f"{deciles[0]:>6.3f} {statistics.mean(scores):>6.3f} {statistics.mean(confidences or [0]):>6.1f}  {failures}")


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("docs")
    m.add_argument("out")
    m.add_argument("--pages", type=int, default=40)
    m.add_argument("--dpi", type=int, default=300)
    s = sub.add_parser("score")
    s.add_argument("scans")
    s.add_argument("text")
    args = parser.parse_args()
    make(args) if args.command == "make" else score(args)


if __name__ == "__main__":
    main()
