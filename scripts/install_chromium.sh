#!/usr/bin/env bash
# Install Debian's headless-capable `chromium` for the browser test of the HTML run report
# (tests/e2e/test_notebook_report.py). Idempotent: does nothing when `chromium` is on PATH.
# Needs root (or passwordless sudo) the first time; prints what to do otherwise.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "install_chromium: chromium is missing; run as root: apt-get install -y chromium" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null
