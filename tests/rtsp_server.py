"""A real RTSP server on 127.0.0.1 for the live tests (GStreamer's gst-rtsp-server through PyGObject; Debian's
python3-gi + gir1.2-gst-rtsp-server-1.0, installed by shell/install.sh). Run with the system Python that has gi:

    /usr/bin/python3 tests/rtsp_server.py [--user U --password P] [--fps 15]

Serves rtsp://127.0.0.1:PORT/cam: a live test pattern (moving ball), MJPEG over RTP, one pipeline shared by all
clients; with --user/--password, only HTTP Basic-authenticated clients get it. Prints the port on stdout once it
listens; runs until killed.
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--port", type=int, default=0, help="0: a free port")
    args = p.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate={args.fps}/1 "
        "! jpegenc quality=70 ! rtpjpegpay name=pay0 pt=26 )"
    )
    factory.set_shared(True)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", args.user)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        role = Gst.Structure.new_from_string(
            f"{args.user}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )
        factory.add_role_from_structure(role)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print("cannot listen", file=sys.stderr)
        return 1
    print(server.get_bound_port(), flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
