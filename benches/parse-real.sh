#!/usr/bin/env bash
# Parsers on real documents nobody wrote for us: the PDFs, HTML, spreadsheets and Word files
# shipped in Debian packages (fetched here with `apt-get download` + `dpkg -x`), parsed by
# `quarry bench parse` (release build, one file at a time on one core). Prints per format
# files, pages, MB, seconds and failures by reason, then for PDFs poppler's `pdftotext`
# (installed here from Debian's poppler-utils) on the same files: its pages/s on one core and
# the word similarity of our text to its text (median and spread over files).
#
#   benches/parse-real.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
WORK=${WORK:-$TARGET/bench-parse}
PACKAGES="texlive-latex-recommended-doc texlive-fonts-recommended-doc texlive-humanities-doc
  python3.11-doc debian-reference-en r-cran-readxl r-cran-openxlsx r-cran-officer python3-docx"
mkdir -p "$WORK/debs"
cargo build --release --bin quarry
QUARRY="$TARGET/release/quarry"

if [ ! -d "$WORK/docs" ]; then
  # shellcheck disable=SC2086
  (cd "$WORK/debs" && { apt-get download $PACKAGES >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download $PACKAGES; }; })
  for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$WORK/docs"; done
fi
command -v pdftotext >/dev/null || { apt-get install -y poppler-utils >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y poppler-utils >/dev/null; }; }

rm -rf "$WORK/quarry-text"
taskset -c 0 "$QUARRY" bench parse "$WORK/docs" --out "$WORK/quarry-text"
taskset -c 0 python3 benches/parse-real/compare_pdftotext.py "$WORK/docs" "$WORK/quarry-text" "$WORK/pdftotext-text"
