#!/bin/sh
# Regenerates the bench's speech signal (needs espeak-ng and sox from Debian).
# Two synthetic voices, resampled to 16 kHz (what Meta captures: sprop-maxcapturerate=16000),
# with a faint pink-noise floor (about -70 dBFS RMS) so pauses are not digital zero, then derived at
# 8 kHz (the phone side), both as raw signed 16-bit little-endian mono. The bench makes its
# 48 kHz copy itself.
set -e
cd "$(dirname "$0")"
tmp=$(mktemp -d)
espeak-ng -v en-us -s 160 -w "$tmp/a.wav" "Hello, thank you for calling the service desk. \
All of our agents are busy at the moment. Please hold the line, or press one to leave a \
message, and we will call you back within the next two hours."
espeak-ng -v en-us+f3 -s 170 -w "$tmp/b.wav" "Hi, I am calling about my order number four \
seven three nine. It was supposed to arrive on Tuesday, but nothing has come yet. Could you \
check what happened, please?"
sox "$tmp/a.wav" "$tmp/b.wav" -r 16000 -c 1 -b 16 "$tmp/speech.wav" norm -6 pad 0.3 0.3
len=$(soxi -D "$tmp/speech.wav")
sox -n -r 16000 -c 1 -b 16 "$tmp/noise.wav" synth "$len" pinknoise vol -60 dB
sox -m -v 1 "$tmp/speech.wav" -v 1 "$tmp/noise.wav" -r 16000 -c 1 -b 16 "$tmp/mix.wav"
sox "$tmp/mix.wav" -t raw -e signed -b 16 -L speech16k.raw
sox "$tmp/mix.wav" -t raw -e signed -b 16 -L -r 8000 speech8k.raw rate -v
sox "$tmp/mix.wav" -n stats
rm -r "$tmp"
