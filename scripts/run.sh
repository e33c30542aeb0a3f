#!/usr/bin/env bash
# Runs whatsip. With no arguments: the whole demo on this machine, no Meta account needed —
# the gateway with whatsip.example.toml, a headless baresip desk phone (1001, answers and
# plays 440 Hz), and the sandbox (a local stand-in for Meta) placing a WhatsApp call to the
# business number: the phone rings and answers, audio flows both ways, and the call shows in
# `whatsip calls`. The gateway and the phone then keep running until Ctrl-C; place more calls
# with the command printed at the end.
#
#   scripts/run.sh                    the demo (gateway + phone + sandbox call)
#   scripts/run.sh --config FILE      just the gateway, with your configuration (production)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
pkg-config --exists opus 2>/dev/null || need+=(libopus-dev pkg-config)
if [ "${1:-}" != "--config" ]; then
  command -v baresip >/dev/null || need+=(baresip)
  command -v sox >/dev/null || need+=(sox)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --locked
bin="$PWD/target/release/whatsip"

if [ "${1:-}" = "--config" ] && [ -n "${2:-}" ]; then
  config="$2"; shift 2
  exec "$bin" serve --config "$config" "$@"
fi

# The demo: Graph requests go to the sandbox on loopback instead of graph.facebook.com.
config="$PWD/whatsip.example.toml"
export WHATSIP_WHATSAPP__GRAPH_BASE_URL="http://127.0.0.1:8090"
mkdir -p demo
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$bin" serve --config "$config" >demo/whatsip.log 2>&1 &
pids+=($!)
scripts/demo-phone.sh 1001 change-me-1001 127.0.0.1:5060 >demo/phone.log 2>&1 &
pids+=($!)
echo "gateway: log in demo/whatsip.log; desk phone 1001: log in demo/phone.log"
for _ in $(seq 1 100); do
  if "$bin" registrations --config "$config" 2>/dev/null | grep -q '^1001 '; then break; fi
  sleep 0.2
done
"$bin" registrations --config "$config"

number="$(sed -n 's/^phone_number_id = "\([0-9]*\)".*/\1/p' "$config" | head -1)"
echo
echo "A WhatsApp user calls the business number $number (through the sandbox):"
RUST_LOG="info,webrtc=error,rtc=error" "$bin" --config "$config" sandbox call --to "$number" --from 15551234567 --name "Sandbox User" --seconds 6 --dtmf 1 --record demo/user-heard.wav || true
echo
"$bin" calls --config "$config"
echo
echo "The gateway and the phone keep running (Ctrl-C stops them). Another call:"
echo "  WHATSIP_WHATSAPP__GRAPH_BASE_URL=$WHATSIP_WHATSAPP__GRAPH_BASE_URL $bin --config $config sandbox call --to $number --seconds 10"
wait "${pids[0]}"
