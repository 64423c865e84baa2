#!/usr/bin/env bash
# Builds the Debian package into target/debian/: the release binary, its
# man pages (generated from the CLI by the hidden `sluice man`), then
# `cargo deb --no-build` with [package.metadata.deb] from Cargo.toml.
# Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked --quiet
# Not under target/release/: cargo-deb gzips man pages (Debian policy)
# only when they are not build products.
rm -rf target/man
"$target/release/sluice" man target/man
# Stripped: [profile.release] keeps symbols for perf/, the package need not.
deb=$(cargo deb --no-build --locked --quiet --strip)
echo "$deb"
