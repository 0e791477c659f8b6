#!/usr/bin/env bash
# Retrieve under load: a 100k-chunk knowledge base served by `quarry serve` (release build,
# loopback, no auth), driven by wrk from a second process at 1, 8, 64 and 256 connections.
# Prints p50/p99 latency, requests/s, 429s and socket errors per level, and the server's
# resident memory. Every run is bounded (DURATION seconds per level).
#
#   benches/retrieve-load.sh            # CHUNKS=100000 DURATION=20 by default
set -euo pipefail
cd "$(dirname "$0")/.."
CHUNKS=${CHUNKS:-100000}
DURATION=${DURATION:-20}
PORT=${PORT:-18181}
TARGET=${CARGO_TARGET_DIR:-target}
WORK=${WORK:-$TARGET/bench-load}

command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
make --no-print-directory models >/dev/null
cargo build --release --bin quarry
QUARRY="$TARGET/release/quarry"

mkdir -p "$WORK"
cat > "$WORK/knowledge-bases.toml" <<TOML
[server]
data_dir = "data"

[models.minilm]
kind = "bert"
path = "$PWD/models/all-MiniLM-L6-v2"

[[knowledge_bases]]
id = "LOADKB0001"
name = "load"
embedding_model = "minilm"
TOML
if [ ! -f "$WORK/populated-$CHUNKS" ]; then
  rm -rf "$WORK/data"
  "$QUARRY" --config "$WORK/knowledge-bases.toml" bench populate load --chunks "$CHUNKS" --corpus ../shared/data/scifact/corpus.jsonl
  touch "$WORK/populated-$CHUNKS"
fi

python3 - "$WORK/queries.lua" <<'PY'
import json, sys
queries = [json.loads(l)["text"] for l in open("../shared/data/scifact/queries.jsonl")][:200]
bodies = [json.dumps({"retrievalQuery": {"text": q}, "retrievalConfiguration": {"vectorSearchConfiguration": {"numberOfResults": 5}}}) for q in queries]
with open(sys.argv[1], "w") as f:
    f.write("local bodies = {" + ",".join(json.dumps(b) for b in bodies) + "}\n")
    f.write("""local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "/knowledgebases/LOADKB0001/retrieve", {["Content-Type"] = "application/json"}, bodies[(i % #bodies) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT p50_ms=%.2f p99_ms=%.2f requests=%d errors_status=%d errors_timeout=%d errors_connect=%d\\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests, summary.errors.status, summary.errors.timeout, summary.errors.connect))
end
""")
PY

echo "starting the server (the HNSW graph of $CHUNKS chunks is read from its saved file)..."
started=$(date +%s)
"$QUARRY" --config "$WORK/knowledge-bases.toml" serve --listen "127.0.0.1:$PORT" > "$WORK/serve.out" 2> "$WORK/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
until grep -q "serving" "$WORK/serve.out" 2>/dev/null; do
  kill -0 $SERVER 2>/dev/null || { cat "$WORK/serve.log"; exit 1; }
  sleep 1
done
echo "ready in $(( $(date +%s) - started ))s; resident memory $(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/$SERVER/status)"
wrk -t1 -c1 -d3s -s "$WORK/queries.lua" "http://127.0.0.1:$PORT" >/dev/null  # warm-up

printf "\n| connections | requests/s | p50 ms | p99 ms | 429s | timeouts |\n|---|---|---|---|---|---|\n"
for c in 1 8 64 256; do
  threads=$(( c < 2 ? 1 : 2 ))
  out=$(wrk -t$threads -c$c -d${DURATION}s --timeout 10s -s "$WORK/queries.lua" "http://127.0.0.1:$PORT")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  r=$(echo "$out" | grep RESULT)
  p50=$(echo "$r" | sed 's/.*p50_ms=\([0-9.]*\).*/\1/'); p99=$(echo "$r" | sed 's/.*p99_ms=\([0-9.]*\).*/\1/')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}'); non2xx=${non2xx:-0}
  timeouts=$(echo "$r" | sed 's/.*errors_timeout=\([0-9]*\).*/\1/')
  printf "| %d | %s | %s | %s | %s | %s |\n" "$c" "$rps" "$p50" "$p99" "$non2xx" "$timeouts"
done
echo
echo "server resident memory after the runs: $(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/$SERVER/status) ($CHUNKS chunks)"
