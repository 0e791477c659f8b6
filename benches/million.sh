#!/usr/bin/env bash
# A million chunks on one node: a knowledge base built the way the load bench builds its
# 100,000 (real SciFact embeddings, jittered copies), then: build time, start-up time,
# resident memory, Retrieve p50/p99 and throughput at 1, 8 and 64 connections for SEMANTIC and
# HYBRID (wrk from a second process), recall@10 against exact search with the graph's vectors
# f32 and as configured, and on the same vectors and queries, in the same run, hnswlib and
# faiss (HNSW, single-threaded search) as anchors. Fetches wrk (apt-get), numpy, hnswlib and
# faiss-cpu (PyPI) when missing. Long: the build of a million-node graph and its rebuild for
# the f32 recall run take the better part of an hour on two cores.
#
#   benches/million.sh                           # CHUNKS=1000000 QUANTIZATION=int8 DURATION=20
#                                                # EF=100,200,400,800,1600,3200,6400 (ef_search)
#   CHUNKS=100000 QUANTIZATION=none benches/million.sh
#   QUARRY=/path/to/quarry benches/million.sh     # another build
set -euo pipefail
cd "$(dirname "$0")/.."
CHUNKS=${CHUNKS:-1000000}
QUANTIZATION=${QUANTIZATION:-int8}
DURATION=${DURATION:-20}
QUERIES=${QUERIES:-300}
EF=${EF:-100,200,400,800,1600,3200,6400}
PORT=${PORT:-18191}
TARGET=${CARGO_TARGET_DIR:-target}
WORK=${WORK:-$TARGET/bench-million-$CHUNKS-$QUANTIZATION}

command -v wrk >/dev/null || { echo "installing wrk (apt-get)" >&2; apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
python3 -c "import numpy, hnswlib, faiss" 2>/dev/null || { echo "installing numpy, hnswlib and faiss-cpu (PyPI)" >&2; python3 -m pip install --quiet numpy hnswlib faiss-cpu; }
make --no-print-directory models >/dev/null
if [ -z "${QUARRY:-}" ]; then
  cargo build --release --bin quarry
  QUARRY="$TARGET/release/quarry"
fi

mkdir -p "$WORK"
cat > "$WORK/knowledge-bases.toml" <<TOML
[server]
data_dir = "data"

[models.minilm]
kind = "bert"
path = "$PWD/models/all-MiniLM-L6-v2"

[[knowledge_bases]]
id = "MILLIONKB1"
name = "million"
embedding_model = "minilm"
vector_store = { type = "hnsw", quantization = "$QUANTIZATION" }
TOML
if [ ! -f "$WORK/populated" ]; then
  rm -rf "$WORK/data"
  started=$(date +%s)
  "$QUARRY" --config "$WORK/knowledge-bases.toml" bench populate million --chunks "$CHUNKS" --corpus ../shared/data/scifact/corpus.jsonl
  echo "$(( $(date +%s) - started ))" > "$WORK/populated"
fi
echo "built $CHUNKS chunks (quantization $QUANTIZATION) in $(cat "$WORK/populated")s"

for search in SEMANTIC HYBRID; do
  python3 - "$WORK/$search.lua" "$search" <<'PY'
import json, sys
queries = [json.loads(l)["text"] for l in open("../shared/data/scifact/queries.jsonl")][:200]
bodies = [json.dumps({"retrievalQuery": {"text": q}, "retrievalConfiguration": {"vectorSearchConfiguration": {
    "numberOfResults": 5, "overrideSearchType": sys.argv[2]}}}) for q in queries]
with open(sys.argv[1], "w") as f:
    f.write("local bodies = {" + ",".join(json.dumps(b) for b in bodies) + "}\n")
    f.write("""local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "/knowledgebases/MILLIONKB1/retrieve", {["Content-Type"] = "application/json"}, bodies[(i % #bodies) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT p50_ms=%.2f p99_ms=%.2f requests=%d errors_status=%d errors_timeout=%d\\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests, summary.errors.status, summary.errors.timeout))
end
""")
PY
done

started=$(date +%s%N)
"$QUARRY" --config "$WORK/knowledge-bases.toml" serve --listen "127.0.0.1:$PORT" > "$WORK/serve.out" 2> "$WORK/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
until grep -q "serving" "$WORK/serve.out" 2>/dev/null; do
  kill -0 $SERVER 2>/dev/null || { cat "$WORK/serve.log"; exit 1; }
  sleep 0.2
done
echo "start-up to serving: $(( ($(date +%s%N) - started) / 1000000 )) ms; resident memory $(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/$SERVER/status)"
grep -o 'HNSW graph[^"]*' "$WORK/serve.log" | head -3 || true
wrk -t1 -c1 -d3s -s "$WORK/SEMANTIC.lua" "http://127.0.0.1:$PORT" >/dev/null  # warm-up

printf "\n| search | connections | requests/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|\n"
for search in SEMANTIC HYBRID; do
  for c in 1 8 64; do
    threads=$(( c < 2 ? 1 : 2 ))
    out=$(wrk -t$threads -c$c -d${DURATION}s --timeout 10s -s "$WORK/$search.lua" "http://127.0.0.1:$PORT")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    r=$(echo "$out" | grep RESULT)
    p50=$(echo "$r" | sed 's/.*p50_ms=\([0-9.]*\).*/\1/'); p99=$(echo "$r" | sed 's/.*p99_ms=\([0-9.]*\).*/\1/')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
    printf "| %s | %d | %s | %s | %s | %s |\n" "$search" "$c" "$rps" "$p50" "$p99" "${non2xx:-0}"
  done
done
echo "server resident memory after the runs: $(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/$SERVER/status)"
kill $SERVER; wait $SERVER 2>/dev/null || true
trap - EXIT

# Recall against exact search: f32 first (search alone), then as configured (its graph is
# saved last, so the next serve reads it). The f32 run writes the vectors for the anchors.
settings="none"; [ "$QUANTIZATION" != none ] && settings="none $QUANTIZATION"
for q in $settings; do
  dump=(); [ "$q" = none ] && dump=(--dump "$WORK/dump")
  "$QUARRY" --config "$WORK/knowledge-bases.toml" bench recall million --limit "$QUERIES" \
    --ef "$EF" --quantization "$q" "${dump[@]}" 2>&1 | grep -v ' INFO '
done
python3 benches/million/anchors.py "$WORK/dump" "$EF"
