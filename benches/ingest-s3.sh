#!/usr/bin/env bash
# Ingestion from S3: DOCS real documents (the HTML of Python's documentation, from Debian's
# python3.11-doc package) in a bucket on a local S3 server (moto), synced by
# `quarry sync --timings` (release build). Prints documents/s, MB/s and the share of time
# per stage (list, fetch, parse, chunk, embed, index).
#
#   benches/ingest-s3.sh            # DOCS=300 by default
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS=${DOCS:-300}
TARGET=${CARGO_TARGET_DIR:-target}
WORK=${WORK:-$TARGET/bench-ingest}
mkdir -p "$WORK"
make --no-print-directory models >/dev/null
cargo build --release --bin quarry
QUARRY="$TARGET/release/quarry"

if [ ! -d "$WORK/pkg" ]; then
  (cd "$WORK" && { apt-get download python3.11-doc >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download python3.11-doc; }; })
  dpkg -x "$WORK"/python3.11-doc_*.deb "$WORK/pkg"
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true' EXIT
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

rm -rf "$WORK/data"
cat > "$WORK/knowledge-bases.toml" <<TOML
[server]
data_dir = "data"

[models.minilm]
kind = "bert"
path = "$PWD/models/all-MiniLM-L6-v2"

[s3]
endpoint_url = "http://127.0.0.1:$PORT"
region = "us-east-1"

[[knowledge_bases]]
id = "INGESTKB01"
name = "pydoc"
embedding_model = "minilm"

[[knowledge_bases.data_sources]]
id = "INGESTDS01"
name = "pydoc"
type = "s3"
bucket = "pydoc"
TOML
AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "$QUARRY" --config "$WORK/knowledge-bases.toml" sync pydoc --timings
