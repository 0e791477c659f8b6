#!/usr/bin/env bash
# The encoder benchmark: Quarry's encoder against ONNX Runtime 1.31.1 (the fp32 and
# int8-dynamic exports in ../shared/models) and candle-transformers' BERT, in one process, on
# the first 1,000 SciFact passages. Fetches what it needs: the model weights (`make models`) and
# ONNX Runtime's shared library from its PyPI wheel (checked by sha256).
#
#   benches/embed-compare.sh [--passages N] [--runs R] [--only ours,ort-fp32,ort-int8,candle]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${QUARRY_SHARED:-../shared}
ORT_DIR=${ORT_DIR:-$HOME/.cache/quarry/onnxruntime-1.31.1}
ORT_LIB=$ORT_DIR/libonnxruntime.so.1.31.1
WHEEL_SHA256=${ORT_WHEEL_SHA256:-}

if [ ! -f "$ORT_LIB" ]; then
    echo "fetching ONNX Runtime 1.31.1 from PyPI into $ORT_DIR" >&2
    mkdir -p "$ORT_DIR/wheel"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_28_x86_64 onnxruntime==1.31.1 -d "$ORT_DIR/wheel"
    python3 - "$ORT_DIR" "$WHEEL_SHA256" <<'PY'
import glob, hashlib, sys, zipfile
out, want = sys.argv[1], sys.argv[2]
wheel = glob.glob(f"{out}/wheel/onnxruntime-1.31.1-*.whl")[0]
digest = hashlib.sha256(open(wheel, "rb").read()).hexdigest()
if want and digest != want:
    sys.exit(f"{wheel}: sha256 {digest}, expected {want}")
print(f"{wheel}: sha256 {digest}", file=sys.stderr)
with zipfile.ZipFile(wheel) as z:
    data = z.read("onnxruntime/capi/libonnxruntime.so.1.31.1")
open(f"{out}/libonnxruntime.so.1.31.1", "wb").write(data)
PY
fi
make --no-print-directory models >/dev/null
export CARGO_TARGET_DIR=${BENCH_TARGET_DIR:-$HOME/.cache/quarry/bench-target}
cargo build --quiet --release --manifest-path benches/embed-compare/Cargo.toml
ORT_DYLIB_PATH=$ORT_LIB RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2} "$CARGO_TARGET_DIR/release/embed-compare" \
    models/all-MiniLM-L6-v2 "$SHARED/models" "$SHARED/data/scifact/corpus.jsonl" "$@"
