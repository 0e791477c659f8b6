#!/usr/bin/env bash
# OCR on scans made from real documents: pages of the Debian PDFs the parse bench reads
# (benches/parse-real.sh's packages, fetched the same way), each rasterized at 300 dpi in grey
# with poppler's pdftoppm and wrapped back into an image-only PDF, and also saved as PNG and
# TIFF files; `quarry bench parse` (release build, one file at a time, pinned to one core)
# reads them through Tesseract, and each page's text is scored against pdftotext's text of the
# original page (the parse bench's word-F1 similarity). Prints per format: pages, pages/s on
# one core, and the median, 10th percentile and mean similarity.
#
#   benches/ocr-scans.sh                 # PAGES=40 pages, DPI=300
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
WORK=${WORK:-$TARGET/bench-ocr}
# The parse bench's documents when it has fetched them, else this bench's own copy of the PDFs.
DOCS=${DOCS:-$([ -d "$TARGET/bench-parse/docs" ] && echo "$TARGET/bench-parse/docs" || echo "$WORK/docs")}
PAGES=${PAGES:-40}
DPI=${DPI:-300}
PACKAGES="texlive-latex-recommended-doc texlive-fonts-recommended-doc texlive-humanities-doc
  python3.11-doc debian-reference-en"
need() { command -v "$1" >/dev/null || { apt-get install -y --no-install-recommends $2 >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y --no-install-recommends $2 >/dev/null; }; }; }
need pdftoppm poppler-utils
need tesseract "tesseract-ocr tesseract-ocr-eng"
cargo build --release --bin quarry
QUARRY="$TARGET/release/quarry"

if [ ! -d "$DOCS" ]; then
  mkdir -p "$WORK/debs" "$DOCS"
  # shellcheck disable=SC2086
  (cd "$WORK/debs" && { apt-get download $PACKAGES >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download $PACKAGES; }; })
  for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$DOCS"; done
fi

rm -rf "$WORK/scans" "$WORK/text"
python3 benches/ocr-scans/scans.py make "$DOCS" "$WORK/scans" --pages "$PAGES" --dpi "$DPI"
taskset -c 0 "$QUARRY" bench parse "$WORK/scans" --out "$WORK/text"
python3 benches/ocr-scans/scans.py score "$WORK/scans" "$WORK/text"
