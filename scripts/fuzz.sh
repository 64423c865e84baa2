#!/usr/bin/env bash
# Runs the frame+parse+classify+encode fuzzer for N seconds (default 60).
# Uses cargo-fuzz (libFuzzer). The machine has only a stable toolchain;
# RUSTC_BOOTSTRAP=1 lets it accept the sanitizer flags cargo-fuzz passes.
# Crashes land in fuzz/artifacts/frame_parse/; each one found must become
# a regression test: copy it into fuzz/regressions/ (tests/fuzz_regressions.rs
# replays every file there).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p fuzz/corpus/frame_parse
# Seed the corpus with the regression inputs and some real messages.
cp -n fuzz/regressions/* fuzz/corpus/frame_parse/ 2>/dev/null || true
cp -n tests/fixtures/*.log fuzz/corpus/frame_parse/ 2>/dev/null || true
export RUSTC_BOOTSTRAP=1
cargo fuzz run frame_parse --sanitizer none -j 1 -- \
  -max_total_time="$secs" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1
