#!/usr/bin/env bash
# The browser tests drive Debian's chromium (never a browser downloaded by Playwright).
# Installs it when it is missing and we are root (as CI is); otherwise says why the browser
# tests will be skipped. Never fails the build by itself.
set -u
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "ensure-chromium: $CHROMIUM is missing and this is not root: the browser tests will be SKIPPED" \
       "(install it with: sudo apt-get install -y chromium)" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: $CHROMIUM is missing and there is no apt-get: the browser tests will be SKIPPED" >&2
  exit 0
fi
echo "ensure-chromium: installing Debian's chromium for the browser tests" >&2
export DEBIAN_FRONTEND=noninteractive
if apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; then
  echo "ensure-chromium: installed $($CHROMIUM --version 2>/dev/null || echo chromium)" >&2
else
  echo "ensure-chromium: installing chromium FAILED: the browser tests will be SKIPPED" >&2
fi
exit 0
