#!/usr/bin/env bash
# Runs every test: unit tests and integration tests against real peers (baresip, sipp).
# Installs what it needs on a fresh Debian machine with Rust: the peers from Debian's packages;
# the Python peers and the PESQ scorer go into .venv inside the project.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# Build: libopus through pkg-config. Test peers: baresip, sipp; sox for audio fixtures;
# espeak-ng speaks the PESQ test's reference; gcc and Python's headers build the pesq sdist (below).
pkg-config --exists opus 2>/dev/null || need+=(libopus-dev pkg-config)
command -v baresip >/dev/null || need+=(baresip)
command -v sipp >/dev/null || need+=(sip-tester)
command -v sox >/dev/null || need+=(sox)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v gcc >/dev/null || need+=(gcc)
python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' \
  || need+=(python3-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Python test peers (aiortc playing Meta, the PESQ scorer) in a virtualenv inside the project,
# reinstalled only when their pinned requirements change. Wheels only, except what PyPI has only
# as source (requirements-sdist.txt): that is built second, without build isolation, against the
# pinned numpy/Cython/setuptools the first step installed. An isolated build would fetch its
# build tools unpinned (and compile numpy from source if --no-binary reached them).
requirements=(tests/peers/requirements.txt tests/peers/requirements-sdist.txt)
if [ ! -x .venv/bin/python ] || ! cat "${requirements[@]}" | cmp -s - .venv/.requirements; then
  if ! python3 -m venv .venv 2>/dev/null; then
    rm -rf .venv
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv .venv
  fi
  pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
  "${pip[@]}" --only-binary=:all: -r tests/peers/requirements.txt
  # No wheel cache either: a pesq wheel an isolated build left there was built against whatever
  # numpy that build fetched.
  "${pip[@]}" --no-build-isolation --no-binary=:all: --no-cache-dir -r tests/peers/requirements-sdist.txt
  cat "${requirements[@]}" > .venv/.requirements
fi

# Two cores: integration tests each start a gateway and phones; run a few at a time.
# Every test binary runs even when one fails, so one run shows every failure. TEST_THREADS
# changes how many run at once (not WHATSIP_*: the gateway reads those as settings).
export RUST_BACKTRACE=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked --no-fail-fast -- --test-threads="${TEST_THREADS:-3}" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
