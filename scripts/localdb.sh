#!/usr/bin/env bash
# The project-local PostGIS cluster (used only when DATABASE_URL is not set).
#   scripts/localdb.sh start [dbname...]  init if needed, start, create databases
#   scripts/localdb.sh stop
#   scripts/localdb.sh status
# Data lives in var/pg (or, when the postgres user cannot reach the checkout, in
# /var/tmp/onemap-pg-<hash> linked from var/pg). The server listens on
# 127.0.0.1:$ONEMAP_PG_PORT (default 54329) only, with a generated password kept
# in var/database_url (mode 600), which the settings read.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PORT=${ONEMAP_PG_PORT:-54329}
PGBIN=${ONEMAP_PG_BIN:-/usr/lib/postgresql/15/bin}
URL_FILE="$ROOT/var/database_url"
mkdir -p "$ROOT/var"

if [ "$(id -u)" = 0 ]; then
  PGUSER_OS=postgres
  id "$PGUSER_OS" >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql --shell /bin/sh "$PGUSER_OS"
  as_pg() { runuser -u "$PGUSER_OS" -- "$@"; }
else
  PGUSER_OS=$(id -un)
  as_pg() { "$@"; }
fi

data_dir() {
  # PostgreSQL refuses to run as root, so the cluster belongs to an unprivileged user
  # who must be able to reach the data directory.
  if [ -L "$ROOT/var/pg" ] || [ -d "$ROOT/var/pg" ]; then
    readlink -f "$ROOT/var/pg"; return
  fi
  if [ "$(id -u)" = 0 ] && ! runuser -u "$PGUSER_OS" -- test -x "$ROOT/var"; then
    local alt="/var/tmp/onemap-pg-$(echo -n "$ROOT" | sha1sum | cut -c1-12)"
    mkdir -p "$alt"; ln -s "$alt" "$ROOT/var/pg"; echo "$alt"; return
  fi
  mkdir -p "$ROOT/var/pg"; echo "$ROOT/var/pg"
}

init_cluster() {
  local dir=$1
  if [ -f "$dir/PG_VERSION" ] && [ ! -f "$URL_FILE" ]; then
    if [ -f "$dir/onemap_database_url" ]; then
      # A fresh checkout reusing a data directory (e.g. under /var/tmp) gets its URL back.
      (umask 077; cp "$dir/onemap_database_url" "$URL_FILE")
    else
      echo "==> $dir has a cluster whose password is unknown: re-initialising it"
      as_pg "$PGBIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
      find "$dir" -mindepth 1 -delete
    fi
  fi
  [ -f "$dir/PG_VERSION" ] && return 0
  echo "==> initdb $dir (port $PORT)"
  chown "$PGUSER_OS" "$dir"; chmod 700 "$dir"
  local pw; pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  local pwfile; pwfile=$(mktemp); echo "$pw" > "$pwfile"; chown "$PGUSER_OS" "$pwfile"
  as_pg "$PGBIN/initdb" -D "$dir" -U onemap --pwfile="$pwfile" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  cat >> "$dir/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = ''
shared_buffers = 1GB
work_mem = 64MB
maintenance_work_mem = 512MB
max_wal_size = 4GB
fsync = on
jit = off
EOF
  (umask 077; echo "postgresql://onemap:$pw@127.0.0.1:$PORT/onemap" > "$URL_FILE")
  cp "$URL_FILE" "$dir/onemap_database_url"; chmod 600 "$dir/onemap_database_url"
}

own_url_copy() {
  # The copy kept in the data directory belongs to the cluster's owner: a base backup
  # (pg_basebackup, docs/SCALING.md) reads every file of the directory.
  [ -f "$1/onemap_database_url" ] && chown "$PGUSER_OS" "$1/onemap_database_url" || true
}

start() {
  local dir; dir=$(data_dir)
  init_cluster "$dir"
  own_url_copy "$dir"
  if ! as_pg "$PGBIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    echo "==> starting local PostgreSQL on 127.0.0.1:$PORT"
    as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null
  fi
  local base; base=$(cat "$URL_FILE")
  for db in "$@"; do
    PGPASSWORD=$(echo "$base" | sed -E 's#.*://[^:]+:([^@]+)@.*#\1#') \
      "$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U onemap -d postgres -tAq -v ON_ERROR_STOP=1 \
      -c "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 ||
    PGPASSWORD=$(echo "$base" | sed -E 's#.*://[^:]+:([^@]+)@.*#\1#') \
      "$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U onemap -d postgres -q -c "CREATE DATABASE \"$db\""
  done
}

stop() {
  [ -e "$ROOT/var/pg" ] || { echo "no local cluster"; return 0; }
  local dir; dir=$(readlink -f "$ROOT/var/pg")
  if as_pg "$PGBIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    as_pg "$PGBIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null && echo "local PostgreSQL stopped"
  else
    echo "local PostgreSQL is not running"
  fi
}

cmd=${1:-start}; shift || true
case "$cmd" in
  start) start "$@" ;;
  stop) stop ;;
  status) [ -e "$ROOT/var/pg" ] && as_pg "$PGBIN/pg_ctl" -D "$(readlink -f "$ROOT/var/pg")" status ;;
  *) echo "usage: $0 start [db...]|stop|status" >&2; exit 2 ;;
esac
