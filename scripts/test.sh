#!/usr/bin/env bash
# The whole test suite: installs the real peers the tests talk to, then
# checks formatting and lints, and runs every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
# Two test threads: the machine has two cores and many tests run sluice.
cargo test --all-targets -- --test-threads=2
# The Debian package: build, install, verify the unit, run, remove, purge.
scripts/package-test.sh
