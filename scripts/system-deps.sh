#!/usr/bin/env bash
# System packages the tests use: headless Chromium renders the HTML dashboard.
# Installs with apt when run as root; otherwise says what is missing and the browser test skips.
set -u
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
    && exit 0
fi
echo "note: chromium is not installed; the dashboard's browser test will be skipped" >&2
exit 0
