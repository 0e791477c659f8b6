#!/usr/bin/env bash
# Cluster mode measured (see benches/cluster.py): `ingest` (1, 2, 3 replicas syncing DOCS
# SciFact abstracts from a moto S3 bucket) or `quality` (SciFact train through Retrieve, one
# node against a cluster replica). A real PostgreSQL + pgvector is started for the run.
#
#   benches/cluster.sh ingest                  # DOCS=1000, the release build
#   DOCS=300 PROFILE=dev benches/cluster.sh ingest
#   benches/cluster.sh quality
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
PROFILE=${PROFILE:-release}
make --no-print-directory models >/dev/null
if [ "$PROFILE" = dev ]; then
  cargo build --bin quarry
  export QUARRY_BIN="$TARGET/debug/quarry"
else
  cargo build --release --bin quarry
  export QUARRY_BIN="$TARGET/release/quarry"
fi
exec python3 scripts/with-postgres.py -- python3 benches/cluster.py "${1:-ingest}"
