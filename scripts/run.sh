#!/usr/bin/env bash
# Builds and runs the gateway with the example configuration (loopback only): phones register
# to 127.0.0.1:5060 as 1001/1002 (passwords in whatsip.example.toml), the admin API is on
# 127.0.0.1:8088. Pass another file with --config.
set -euo pipefail
cd "$(dirname "$0")/.."
config="whatsip.example.toml"
if [ "${1:-}" = "--config" ] && [ -n "${2:-}" ]; then config="$2"; shift 2; fi
cargo build --release --locked
exec ./target/release/whatsip serve --config "$config" "$@"
