#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver for the browser test when they are missing.
# (Browser downloads by test tools are not possible on our machines: we drive the system one.)
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "chromium is missing and we are not root: install Debian's chromium package to run the browser test" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
