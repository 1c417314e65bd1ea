#!/usr/bin/env bash
# Installs what the project needs on Debian/Ubuntu (idempotent): PostgreSQL 15 +
# PostGIS 3 + contrib, optionally Chromium for browser tests, and the .venv.
#   scripts/setup.sh            -> system packages + venv
#   scripts/setup.sh --browser  -> also chromium + chromium-driver
#   scripts/setup.sh --bench    -> chromium as --browser, and gdal-bin (ogr2ogr) for make bench
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

want=(postgresql-15 postgresql-15-postgis-3 postgresql-contrib python3-venv)
if [ "${1:-}" = "--browser" ]; then want+=(chromium chromium-driver fonts-wqy-microhei); fi
# make bench: Chromium (the page benchmark) and GDAL's ogr2ogr (the loading benchmark's reference)
if [ "${1:-}" = "--bench" ]; then want+=(chromium chromium-driver fonts-wqy-microhei gdal-bin); fi

missing=()
for pkg in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
# python3-venv is only needed when the interpreter lacks venv (Debian's python3).
if python3 -c "import venv, ensurepip" 2>/dev/null; then
  missing=("${missing[@]/python3-venv}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))

if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian's postgresql package starts a system cluster on 5432; we never use it and
# leave it as it is (our own cluster lives under var/ on its own port).

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.requirements.sha
sum=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ]; then
  echo "==> pip install -r requirements.txt"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$sum" > "$stamp"
fi
