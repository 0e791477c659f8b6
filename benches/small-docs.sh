#!/usr/bin/env bash
# Many small documents: the first DOCS SciFact abstracts (title and text, one file each, one
# or two chunks each) in a local folder, synced from an empty index by `quarry sync --timings`
# with DEFAULT chunking. What it shows is how much a document costs beyond its embedding.
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
"$QUARRY" --config "$WORK/knowledge-bases.toml" sync scifact --timings
