#!/usr/bin/env bash
# Ingestion from S3: DOCS real documents (the HTML of Python's documentation, from Debian's
# python3.11-doc package) in a bucket on a local S3 server (moto), synced by
# `quarry sync --timings` (release build). Prints documents/s, MB/s and the share of time
# per stage (list, fetch, parse, chunk, embed, index).
#
# EMBEDDERS lists the set-ups to run, each from an empty index: 0 embeds in-process; N > 0
# starts N `quarry serve` processes on loopback as embedding servers (`POST /v1/embeddings`,
# the same model) and points the knowledge base's `openai-embeddings` model at them.
#
#   benches/ingest-s3.sh                          # DOCS=300, EMBEDDERS=0 by default
#   DOCS=100 EMBEDDERS="0 1 2" benches/ingest-s3.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS=${DOCS:-300}
EMBEDDERS=${EMBEDDERS:-0}
TARGET=${CARGO_TARGET_DIR:-target}
# PROFILE=dev uses the development build, whose encoder and dependencies are optimised too
# (see Cargo.toml), when a release build is not worth its time.
PROFILE=${PROFILE:-release}
WORK=${WORK:-$TARGET/bench-ingest}
mkdir -p "$WORK"
make --no-print-directory models >/dev/null
if [ "$PROFILE" = dev ]; then
  cargo build --bin quarry
  QUARRY="$TARGET/debug/quarry"
else
  cargo build --release --bin quarry
  QUARRY="$TARGET/release/quarry"
fi

if [ ! -d "$WORK/pkg" ]; then
  (cd "$WORK" && { apt-get download python3.11-doc >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download python3.11-doc; }; })
  dpkg -x "$WORK"/python3.11-doc_*.deb "$WORK/pkg"
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
MOTO=$!
python3 - "$PORT" "$WORK/pkg" "$DOCS" <<'PY'
import os, sys, time, urllib.request
import boto3
port, root, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
url = f"http://127.0.0.1:{port}"
for _ in range(100):
    try:
        urllib.request.urlopen(url, timeout=1); break
    except urllib.error.HTTPError:
        break
    except Exception:
        time.sleep(0.2)
s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
s3.create_bucket(Bucket="pydoc")
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".html"))[:n]
size = 0
for path in files:
    body = open(path, "rb").read()
    size += len(body)
    s3.put_object(Bucket="pydoc", Key=os.path.relpath(path, root), Body=body)
print(f"uploaded {len(files)} HTML files, {size / 1e6:.1f} MB, to s3://pydoc on 127.0.0.1:{port}")
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
SERVERS=()
stop_servers() { for pid in "${SERVERS[@]}"; do kill "$pid" 2>/dev/null || true; done; SERVERS=(); }
trap 'kill $MOTO 2>/dev/null || true; stop_servers' EXIT
export QUARRY_BENCH_EMBED_KEY=bench-embed-key

for n in $EMBEDDERS; do
  rm -rf "$WORK/data"
  if [ "$n" = 0 ]; then
    MODEL="minilm"
    SETUP="in-process encoder"
    URLS='"http://127.0.0.1:9/v1"' # unused: the knowledge base embeds in-process
  else
    URLS=""
    for i in $(seq 1 "$n"); do
      dir="$WORK/embedder-$i"
      mkdir -p "$dir"
      cat > "$dir/kb.toml" <<TOML
[server]
data_dir = "data"
embeddings_api_key_env = "QUARRY_BENCH_EMBED_KEY"
[models.minilm]
kind = "bert"
path = "$PWD/models/all-MiniLM-L6-v2"
TOML
      port=$(free_port)
      "$QUARRY" --config "$dir/kb.toml" serve --listen "127.0.0.1:$port" >"$dir/out" 2>"$dir/err" &
      SERVERS+=($!)
      until grep -q serving "$dir/out" 2>/dev/null; do sleep 0.2; done
      URLS="$URLS\"http://127.0.0.1:$port/v1\", "
    done
    MODEL="remote"
    SETUP="$n remote Quarry embedding server(s) on this machine"
  fi
  cat > "$WORK/knowledge-bases.toml" <<TOML
[server]
data_dir = "data"

[models.minilm]
kind = "bert"
path = "$PWD/models/all-MiniLM-L6-v2"

[models.remote]
kind = "openai-embeddings"
base_urls = [$URLS]
model = "minilm"
api_key_env = "QUARRY_BENCH_EMBED_KEY"
dimensions = 384
tokenizer = "$PWD/models/all-MiniLM-L6-v2/tokenizer.json"
max_tokens = 254

[s3]
endpoint_url = "http://127.0.0.1:$PORT"
region = "us-east-1"

[[knowledge_bases]]
id = "INGESTKB01"
name = "pydoc"
embedding_model = "$MODEL"

[[knowledge_bases.data_sources]]
id = "INGESTDS01"
name = "pydoc"
type = "s3"
bucket = "pydoc"
TOML
  echo "== $SETUP"
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "$QUARRY" --config "$WORK/knowledge-bases.toml" sync pydoc --timings
  stop_servers
done
