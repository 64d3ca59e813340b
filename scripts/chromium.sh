#!/usr/bin/env bash
# The console's browser tests drive Debian's Chromium (never a downloaded browser): install it
# with apt-get when root and missing, as scripts/services.sh does for Redis and Postgres.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "chromium: installing with apt-get (the console's browser tests)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
  }
else
  echo "chromium: /usr/bin/chromium is missing; the browser tests need it (sudo apt-get install chromium)" >&2
fi
