"""Quarry's PDF text against poppler's pdftotext on the same files.

    compare_pdftotext.py DOCS QUARRY_TEXT PDFTOTEXT_TEXT

DOCS is the folder `quarry bench parse` read, QUARRY_TEXT its `--out` folder (results.jsonl
plus one .txt per file). pdftotext runs on every PDF, one at a time, on this process's cores
(the bench script pins it to one). Word similarity of two texts is the F1 overlap of their
word multisets (words: runs of letters and digits, NFKC-normalised and lower-cased), so
1.0 means the same words the same number of times; reading order does not count. A PDF that
Quarry fails while pdftotext finds words scores 0.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import time
import unicodedata
from collections import Counter

WORD = re.compile(r"\w+")


def words(text):
    return Counter(WORD.findall(unicodedata.normalize("NFKC", text).lower()))


def similarity(a, b):
    if not a and not b:
        return 1.0
    common = sum((a & b).values())
    return 2 * common / (sum(a.values()) + sum(b.values()))


def main():
    docs, ours, theirs = sys.argv[1:4]
    rows = [json.loads(line) for line in open(os.path.join(ours, "results.jsonl"))]
    pdfs = [r for r in rows if r["format"] == "pdf"]
    scores, pages, seconds, failed = [], 0, 0.0, []
    for i, row in enumerate(pdfs):
        print(f"\rpdftotext {i + 1}/{len(pdfs)}", end="", file=sys.stderr)
        target = os.path.join(theirs, row["file"] + ".txt")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        started = time.perf_counter()
        done = subprocess.run(
            ["pdftotext", "-enc", "UTF-8", os.path.join(docs, row["file"]), target],
            capture_output=True,
        )
        seconds += time.perf_counter() - started
        if done.returncode != 0 or not os.path.exists(target):
            failed.append(row["file"])
            continue
        reference = open(target, encoding="utf-8", errors="replace").read()
        pages += reference.count("\f")
        expected = words(reference)
        if not expected:
            continue  # no text layer for pdftotext either
        if "failure" in row:
            scores.append((0.0, row["file"]))
            continue
        got = words(open(os.path.join(ours, row["file"] + ".txt"), encoding="utf-8").read())
        scores.append((similarity(got, expected), row["file"]))
    print(file=sys.stderr)
    values = sorted(s for s, _ in scores)
    print(
        f"pdftotext: {len(pdfs)} files, {pages} pages in {seconds:.1f} s = "
        f"{pages / seconds:.0f} pages/s (one process per file), {len(failed)} failed"
    )
    print(
        f"word similarity to pdftotext over {len(values)} PDFs with text: "
        f"median {statistics.median(values):.3f}, mean {statistics.mean(values):.3f}, "
        f"p10 {values[len(values) // 10]:.3f}, min {values[0]:.3f}, "
        f"{sum(v >= 0.95 for v in values)} of {len(values)} at or above 0.95"
    )
    print("lowest:")
    for score, name in sorted(scores)[:8]:
        print(f"  {score:.3f}  {name}")


if __name__ == "__main__":
    main()
