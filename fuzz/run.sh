#!/usr/bin/env bash
# Fuzzes each of dmon's parsers for SECONDS seconds (default 10), one after the
# other, starting from the committed corpus in fuzz/corpus/TARGET.
#
#   fuzz/run.sh 10      # CI: a short run of each target
#   fuzz/run.sh 3600    # a longer run: an hour per target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++ compiler for
# libFuzzer. It works on the stable toolchain: `-s none` builds without a
# sanitizer, which is the only part that needs nightly (-Zsanitizer); the
# parsers are safe Rust, where a sanitizer would add little. New inputs found go
# to a scratch directory, so the committed corpus only changes by hand (see
# docs/reliability.md). A crash stops the run with libFuzzer's report, and its
# input is left in fuzz/artifacts/TARGET/ to be turned into a regression test.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-10}"
targets=(conf_words cli_parse units user_spec)
cargo fuzz build -s none
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target"
  echo "fuzz: $target for ${seconds}s"
  if ! cargo fuzz run -s none "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$scratch/$target.log" 2>&1; then
    tail -n 60 "$scratch/$target.log"
    echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' "$scratch/$target.log" || true
done
