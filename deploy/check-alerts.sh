#!/usr/bin/env bash
# Check and unit-test the Prometheus alert rules with promtool (Debian's `prometheus` package).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "promtool: installing Debian's prometheus package (for promtool only)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
           apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
    # The package may start a server; we only want the binary.
    if command -v service >/dev/null 2>&1; then service prometheus stop >/dev/null 2>&1 || true; fi
    pkill -x prometheus >/dev/null 2>&1 || true
  else
    echo "error: promtool not found. Install it (Debian/Ubuntu: sudo apt-get install prometheus," >&2
    echo "       or download a Prometheus release) and run this again." >&2
    exit 1
  fi
fi

promtool check rules "$here/prometheus/alerts.yml"
promtool test rules "$here/prometheus/alerts_test.yml"
