#!/usr/bin/env bash
# Many small documents: the first DOCS SciFact abstracts (title and text, one file each, one
# or two chunks each) in a local folder, synced from an empty index by `quarry sync --timings`
# with DEFAULT chunking; then, in the same run, `quarry embed` of the very chunk texts the sync
# stored (read back from its chunk table). What it shows is how much a document costs beyond
# its embedding: the target is a sync at most 1.25x the plain embedding.
#
#   benches/small-docs.sh                   # DOCS=5183 (all), the release build
#   DOCS=1000 PROFILE=dev benches/small-docs.sh
#   QUARRY=/path/to/another/quarry benches/small-docs.sh   # the same run with another build
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS=${DOCS:-5183}
TARGET=${CARGO_TARGET_DIR:-target}
PROFILE=${PROFILE:-release}
WORK=${WORK:-$TARGET/bench-small-docs}
make --no-print-directory models >/dev/null
if [ -z "${QUARRY:-}" ]; then
  if [ "$PROFILE" = dev ]; then
    cargo build --bin quarry
    QUARRY="$TARGET/debug/quarry"
  else
    cargo build --release --bin quarry
    QUARRY="$TARGET/release/quarry"
  fi
fi
rm -rf "$WORK" && mkdir -p "$WORK/docs"
python3 - "$WORK/docs" "$DOCS" <<'PY'
import json, os, sys
out, n = sys.argv[1], int(sys.argv[2])
with open("../shared/data/scifact/corpus.jsonl") as f:
    for i, line in enumerate(f):
        if i >= n:
            break
        d = json.loads(line)
        with open(os.path.join(out, f"{d['_id']}.txt"), "w") as g:
            g.write(f"{d['title']}\n\n{d['text']}\n")
print(f"wrote {min(i + 1, n)} abstracts")
PY
cat > "$WORK/knowledge-bases.toml" <<TOML
[server]
data_dir = "data"

[models.minilm]
kind = "bert"
path = "$PWD/models/all-MiniLM-L6-v2"

[[knowledge_bases]]
id = "SMALLKB001"
name = "scifact"
embedding_model = "minilm"

[[knowledge_bases.data_sources]]
id = "SMALLDS001"
name = "abstracts"
type = "local"
path = "docs"
TOML
started=$(date +%s%N)
"$QUARRY" --config "$WORK/knowledge-bases.toml" sync scifact --timings
sync_ms=$(( ($(date +%s%N) - started) / 1000000 ))

# The same texts, embedded alone (one per line: a chunk's line breaks become spaces, which the
# tokenizer treats alike).
python3 - "$WORK/data/SMALLKB001/hnsw/vectors.sqlite" "$WORK/chunks.txt" <<'PY'
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute("SELECT text FROM chunks ORDER BY document_key, span_start").fetchall()
with open(sys.argv[2], "w") as f:
    for (text,) in rows:
        f.write(" ".join(text.split()) + "\n")
print(f"{len(rows)} chunk texts to embed alone")
PY
started=$(date +%s%N)
"$QUARRY" --config "$WORK/knowledge-bases.toml" embed < "$WORK/chunks.txt" | wc -l > /dev/null
embed_ms=$(( ($(date +%s%N) - started) / 1000000 ))
awk -v s="$sync_ms" -v e="$embed_ms" 'BEGIN { printf "\n| quarry sync (whole command) | quarry embed of the same chunk texts | ratio |\n|---|---|---|\n| %.1f s | %.1f s | %.2fx |\n", s / 1000, e / 1000, s / e }'
