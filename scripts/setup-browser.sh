#!/usr/bin/env bash
# The browser the UI tests drive: Debian's chromium and chromium-driver (never a driver
# Selenium Manager would download). Called by setup.sh; a no-op when both are installed.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
echo "installing chromium and chromium-driver from Debian" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  chromium chromium-driver fonts-dejavu-core >/dev/null
