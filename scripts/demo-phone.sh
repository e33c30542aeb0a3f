#!/usr/bin/env bash
# A headless desk phone for trying whatsip without hardware: baresip registers to the gateway
# started by scripts/run.sh as 1001 (password from whatsip.example.toml), answers every call,
# plays a 440 Hz tone (10 minutes, so calls stay shorter) and records what it hears into ./demo-phone/.
# Usage: scripts/demo-phone.sh [USER PASSWORD [GATEWAY_HOST:PORT]]
set -euo pipefail
cd "$(dirname "$0")/.."
user="${1:-1001}"; pass="${2:-change-me-1001}"; gw="${3:-127.0.0.1:5060}"
if ! command -v baresip >/dev/null || ! command -v sox >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq baresip sox >/dev/null
fi
dir="$PWD/demo-phone"; mkdir -p "$dir/conf"
[ -f "$dir/tone.wav" ] || sox -n -r 8000 -c 1 -b 16 "$dir/tone.wav" synth 600 sine 440 vol 0.5
cat > "$dir/conf/config" <<CONF
sip_listen 127.0.0.1:5072
net_interface 127.0.0.1
rtp_ports 10000-10100
audio_source aufile,$dir/tone.wav
audio_player aubridge,nil
audio_alert aubridge,nil
statmode_default off
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module aubridge.so
module sndfile.so
module_tmp account.so
module_app menu.so
CONF
echo "<sip:$user@$gw>;auth_pass=$pass;regint=300;answermode=auto;audio_codecs=PCMU,PCMA;ptime=20" > "$dir/conf/accounts"
echo "demo phone $user registering to $gw; recordings go to $dir; Ctrl-C to stop"
cd "$dir" && exec baresip -f "$dir/conf"
