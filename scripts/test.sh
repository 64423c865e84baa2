#!/usr/bin/env bash
# The whole test suite: installs the real peers the tests talk to, then
# checks formatting and lints, and runs every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
# Two test threads: the machine has two cores and many tests run sluice.
cargo test --lib --bins --tests -- --test-threads=2
# Benches run once each as tests (criterion takes no libtest flags).
cargo test --benches
# The Debian package: build, install, verify the unit, run, remove, purge.
scripts/package-test.sh
