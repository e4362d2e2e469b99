#!/usr/bin/env bash
# Install Debian's Chromium for the site tests (tests/site). Idempotent: does
# nothing when /usr/bin/chromium already exists. Playwright's own browser
# download cannot be used here, so the tests drive this binary instead.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
  echo "install_chromium: $CHROMIUM already present ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium: error: $CHROMIUM is missing and apt-get is not available;" \
       "install Chromium by hand so that $CHROMIUM exists." >&2
  exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install_chromium: error: $CHROMIUM is missing and installing it needs root;" \
       "run: sudo $0" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium

if [ ! -x "$CHROMIUM" ]; then
  echo "install_chromium: error: apt-get finished but $CHROMIUM does not exist" >&2
  exit 1
fi
echo "install_chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
