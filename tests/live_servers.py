"""Real servers and senders for the live-mode tests, all on 127.0.0.1, each started by the test that needs it and
stopped in its `finally` (importable as `live_servers`: pytest puts tests/ on sys.path).

- `ffmpeg_sender`: ffmpeg (imageio-ffmpeg's) sending a clip in a loop at its frame rate as MPEG-TS (UDP, or as a
  one-client HTTP server);
- `RtspServer`: GStreamer's gst-rtsp-server (tests/rtsp_server.py under the system Python that has gi);
- `Mosquitto`: the mosquitto broker on a free port (stop() / start() again on the same port);
- `Receiver`: a webhook receiver keeping every JSON body POSTed to it.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    return free_ports(1, kind)[0]


def free_ports(n: int, kind: int = socket.SOCK_STREAM) -> list[int]:
    """`n` distinct free ports (all held open until all are chosen)."""
    socks = [socket.socket(socket.AF_INET, kind) for _ in range(n)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def ffmpeg_exe() -> str:
    return pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()


def ffmpeg_sender(clip: Path, url: str, extra_out: tuple[str, ...] = ()) -> subprocess.Popen:
    """Sends `clip` in a loop at its frame rate as MPEG-TS (h264, keyframe every 10 frames) to `url`."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
           "-vf", "scale=320:-2", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "10",
           "-an", *extra_out, "-f", "mpegts", url]  # fmt: skip
    return subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop(proc: subprocess.Popen | None, sig=signal.SIGKILL) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _system_python_with_gi() -> str:
    for exe in ("/usr/bin/python3", shutil.which("python3") or "", sys.executable):
        if exe and subprocess.run([exe, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
                                  capture_output=True).returncode == 0:  # fmt: skip
            return exe
    pytest.skip(
        "no Python with gi + GstRtspServer (shell/install.sh installs python3-gi, gir1.2-gst-rtsp-server-1.0)"
    )


class RtspServer:
    """rtsp://[user:password@]127.0.0.1:PORT/cam, a live MJPEG test pattern (tests/rtsp_server.py)."""

    def __init__(self, user: str | None = None, password: str | None = None, fps: int = 15):
        cmd = [_system_python_with_gi(), str(REPO / "tests" / "rtsp_server.py"), "--fps", str(fps)]
        if user:
            cmd += ["--user", user, "--password", password or ""]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            stop(self.proc)
            pytest.fail(f"the RTSP server did not start ({line!r})")
        self.port = int(line)
        cred = f"{user}:{password}@" if user else ""
        self.url = f"rtsp://{cred}{HOST}:{self.port}/cam"

    def close(self) -> None:
        stop(self.proc)


def mosquitto_exe() -> str:
    for exe in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if exe and os.path.exists(exe):
            return exe
    pytest.skip("no mosquitto (shell/install.sh installs it)")


class Mosquitto:
    """The mosquitto broker on 127.0.0.1 (anonymous clients), stoppable and restartable on the same port."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.conf = Path(folder) / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} {HOST}\nallow_anonymous true\npersistence false\n")
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([mosquitto_exe(), "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail("mosquitto did not start")

    def stop(self) -> None:
        stop(self.proc, signal.SIGTERM)


class Subscriber:
    """A paho-mqtt client on the broker keeping every (topic, payload, retained) it receives under `topic`."""

    def __init__(self, port: int, topic: str = "#"):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{os.getpid()}")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.client.connect(HOST, port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def json(self, topic: str) -> list[dict]:
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t == topic and p]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Receiver:
    """A webhook receiver on 127.0.0.1 keeping every JSON body POSTed to it."""

    def __init__(self):
        bodies = self.bodies = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(cond, what: str, proc: subprocess.Popen | None, log: Path | None, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    pytest.fail(f"timed out waiting for {what} (rc={None if proc is None else proc.poll()}); stderr:\n{tail}")


def start_watch(cmd: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=open(log, "w"))  # noqa: SIM115


def sigterm_and_wait(proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> dict:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, log.read_text()[-3000:]
    return json.loads(out.decode().strip().splitlines()[-1])
