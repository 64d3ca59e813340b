#!/usr/bin/env bash
# Make Redis and Postgres reachable at REDIS_URL and DATABASE_URL, then create the database.
# Reuse running servers; else start installed binaries; else apt-get install when root;
# else point at deploy/docker-compose.yml.
set -euo pipefail

REDIS_URL=${REDIS_URL:-redis://localhost:6379/0}
DATABASE_URL=${DATABASE_URL:-postgresql://localhost/notifications}

hostport() {  # URL default-port -> "host port"
  python3 - "$1" "$2" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(u.hostname or "localhost", u.port or int(sys.argv[2]))
PY
}
read -r RHOST RPORT < <(hostport "$REDIS_URL" 6379)
read -r PHOST PPORT < <(hostport "$DATABASE_URL" 5432)

is_root() { [ "$(id -u)" = 0 ]; }
compose_hint() {
  echo "error: $1 is not reachable and cannot be started here." >&2
  echo "  Start it with Docker:  docker compose -f deploy/docker-compose.yml up -d redis postgres" >&2
  echo "  or install it (Debian/Ubuntu): sudo apt-get install -y redis-server postgresql" >&2
  exit 1
}
wait_for() {  # name command...
  local name=$1; shift
  for _ in $(seq 1 50); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "error: $name did not come up" >&2; exit 1
}
redis_up() { python3 -c "import socket,sys; s=socket.create_connection(('$RHOST',$RPORT),1); s.sendall(b'PING\r\n'); sys.exit(0 if s.recv(16).startswith(b'+PONG') else 1)"; }
pg_up() {
  if command -v pg_isready >/dev/null; then pg_isready -q -h "$PHOST" -p "$PPORT"
  else python3 -c "import socket; socket.create_connection(('$PHOST',$PPORT),1)"; fi
}

if redis_up 2>/dev/null; then
  echo "redis: reusing server at $RHOST:$RPORT"
else
  if ! command -v redis-server >/dev/null && is_root && command -v apt-get >/dev/null; then
    echo "redis: installing redis-server with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null
  fi
  command -v redis-server >/dev/null || compose_hint "Redis ($RHOST:$RPORT)"
  echo "redis: starting redis-server on port $RPORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$RPORT" --save "" --appendonly no \
    --dir /tmp --logfile "/tmp/notify-redis-$RPORT.log"
  wait_for redis redis_up
fi

if pg_up 2>/dev/null; then
  echo "postgres: reusing server at $PHOST:$PPORT"
else
  if ! command -v pg_ctlcluster >/dev/null && ! command -v pg_ctl >/dev/null \
     && is_root && command -v apt-get >/dev/null; then
    echo "postgres: installing postgresql with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
  fi
  if command -v pg_ctlcluster >/dev/null && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    echo "postgres: starting the installed cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  else
    compose_hint "PostgreSQL ($PHOST:$PPORT)"
  fi
  wait_for postgres pg_up
fi

# Create the database (and a role for this OS user when we are root on a fresh install).
DBNAME=$(python3 -c "import urllib.parse,sys; print(urllib.parse.urlsplit(sys.argv[1]).path.lstrip('/') or 'postgres')" "$DATABASE_URL")
ADMIN_URL=$(python3 -c "import urllib.parse,sys; u=urllib.parse.urlsplit(sys.argv[1]); print(urllib.parse.urlunsplit(u._replace(path='/postgres')))" "$DATABASE_URL")
if ! psql "$ADMIN_URL" -Atc "select 1" >/dev/null 2>&1 && is_root && id postgres >/dev/null 2>&1; then
  su postgres -c "createuser --superuser $(id -un)" 2>/dev/null || true
fi
if [ "$(psql "$ADMIN_URL" -Atc "select 1 from pg_database where datname = '$DBNAME'" 2>/dev/null)" != 1 ]; then
  psql "$ADMIN_URL" -qc "create database \"$DBNAME\"" && echo "postgres: created database $DBNAME"
else
  echo "postgres: database $DBNAME exists"
fi
