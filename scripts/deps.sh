#!/usr/bin/env bash
# Installs what sluice's tests need on Debian: real peers (util-linux
# logger, syslog-ng, Prometheus, openssl, socat) and tools (tmux). Idempotent;
# installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail

need=()
command -v logger >/dev/null || need+=(bsdutils)
command -v syslog-ng >/dev/null || need+=(syslog-ng-core)
command -v pdbtool >/dev/null || need+=(syslog-ng-core)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus >/dev/null || need+=(prometheus)
command -v openssl >/dev/null || need+=(openssl)
command -v socat >/dev/null || need+=(socat)
command -v tmux >/dev/null || need+=(tmux)
command -v systemd-analyze >/dev/null || need+=(systemd)
# The package test: adduser (the package depends on it; dpkg -i does not
# fetch it), man-db (man -w), iproute2 (ss), util-linux (setpriv).
command -v adduser >/dev/null || need+=(adduser)
command -v man >/dev/null || need+=(man-db)
command -v ss >/dev/null || need+=(iproute2)
command -v setpriv >/dev/null || need+=(util-linux)

if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "deps: installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# cargo-deb builds the Debian package (scripts/build-deb.sh).
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
