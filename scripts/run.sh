#!/usr/bin/env bash
# Builds and runs the gateway with the example configuration (loopback only): phones register
# to 127.0.0.1:5060 as 1001/1002 (passwords in whatsip.example.toml), the admin API is on
# 127.0.0.1:8088. Pass another file with --config.
set -euo pipefail
cd "$(dirname "$0")/.."
config="whatsip.example.toml"
if [ "${1:-}" = "--config" ] && [ -n "${2:-}" ]; then config="$2"; shift 2; fi
# The Opus codec links the system libopus, found by pkg-config.
if ! pkg-config --exists opus 2>/dev/null; then
  echo "installing: libopus-dev pkg-config"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopus-dev pkg-config >/dev/null
fi
cargo build --release --locked
exec ./target/release/whatsip serve --config "$config" "$@"
