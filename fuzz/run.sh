#!/usr/bin/env bash
# Fuzzes every parser (and the request-side parsers: SigV4, filters, page tokens, event-stream
# frames) for SECS seconds each (default 60) with libFuzzer under AddressSanitizer
# (`cargo +nightly fuzz`, installed here if missing). Seeds come from the real documents that
# benches/parse-real.sh fetched, when they are there. A crash is saved under
# fuzz/artifacts/TARGET/ and copied to fuzz/regressions/TARGET/, which `make test` replays
# through `quarry parse` (tests/fuzz_regressions.rs).
#
#   fuzz/run.sh [SECS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-60}
shift || true
TARGETS=${*:-pdf docx spreadsheet html csv text requests}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/quarry/fuzz-target}
DOCS=${DOCS:-${CARGO_TARGET_DIR%/*}/target/bench-parse/docs}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked

seed() { # target, extension...: up to 40 of the smallest real files of those types
  local target=$1; shift
  mkdir -p "corpus/$target"
  [ -d "$DOCS" ] || return 0
  for ext in "$@"; do
    find "$DOCS" -name "*.$ext" -size -200k -printf '%s %p\n' | sort -n | head -40 | cut -d' ' -f2- |
      while read -r f; do cp -n "$f" "corpus/$target/" 2>/dev/null || true; done
  done
}
seed pdf pdf; seed docx docx; seed spreadsheet xlsx xls; seed html html; seed csv csv; seed text txt md
# The request parsers start from one of each thing they read.
mkdir -p corpus/requests
printf '%s' 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=39776eb58d81b0646adf00ea0cc4465102e30f0b0ef515e5abe657572a780991' > corpus/requests/authorization
printf '%s' '{"andAll": [{"equals": {"key": "year", "value": 2024}}, {"orAll": [{"in": {"key": "team", "value": ["hr", "ops"]}}, {"startsWith": {"key": "path", "value": "docs/"}}]}]}' > corpus/requests/filter
printf '%s' 'offset-42' > corpus/requests/token

for target in $TARGETS; do
  echo "== $target: ${SECS}s"
  status=0
  cargo +nightly fuzz run -O "$target" "corpus/$target" -- \
    -max_total_time="$SECS" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 2>&1 |
    grep -E "^(#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss|SUMMARY|==[0-9]+==ERROR)|panicked|Test unit written" || status=$?
  if compgen -G "artifacts/$target/*" >/dev/null; then
    mkdir -p "regressions/$target"
    cp artifacts/"$target"/* "regressions/$target/"
    echo "!! $target: inputs kept in fuzz/regressions/$target/"
  fi
done
