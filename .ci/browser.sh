#!/usr/bin/env bash
# Browser tests of the web client: Debian's Chromium driven by playwright-core (web-tests/),
# against real voiceflow-node processes. Installs what it needs (idempotent), builds the debug
# node binary, runs `node --test`; screenshots land in web-tests/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== browser: packages"
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# Fonts for readable screenshots (emoji in messages).
dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || need+=(fonts-noto-color-emoji)
if [ "${#need[@]}" -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
chromium --version 2>/dev/null | head -n1 || true
node --version

echo "== browser: npm ci"
(cd web-tests && npm ci --no-audit --no-fund --loglevel=error)

echo "== browser: build the node (debug)"
cargo build -p voiceflow-node

echo "== browser: tests"
cd web-tests
node --test --test-concurrency=1 tests/
