#!/usr/bin/env bash
# Check and unit-test the Prometheus alert rules with promtool (Debian's `prometheus` package).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "promtool: installing Debian's prometheus package (for promtool and the alert tests)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
           apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
    # The package's init script may have started its own server; we only want the binaries.
    # Stop that one service (the init script stops the pid in its own pidfile), never
    # another prometheus on this machine: a test, a developer's, another checkout's.
    if [ -d /run/systemd/system ]; then
      systemctl stop prometheus.service >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/prometheus ]; then
      /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    fi
  else
    echo "error: promtool not found. Install it (Debian/Ubuntu: sudo apt-get install prometheus," >&2
    echo "       or download a Prometheus release) and run this again." >&2
    exit 1
  fi
fi

promtool check rules "$here/prometheus/alerts.yml"
promtool test rules "$here/prometheus/alerts_test.yml"
