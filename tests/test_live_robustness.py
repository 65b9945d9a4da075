"""Live mode under stress, in process: corrupt packets, real-time pacing, an explainer that falls behind (none
dropped, bounded memory, picked up by the next run), a failing webhook, and a 30-minute stream in flat memory."""

from __future__ import annotations

import http.server
import json
import os
import threading
import time

import numpy as np
import pytest

from holmesvau.frame_plan import SamplingConfig
from holmesvau.live import (
    Explainer,
    LiveSource,
    SourceConfig,
    WatchConfig,
    Watcher,
    Webhook,
    vit_tile_encoder,
)
from holmesvau.live.events import Hysteresis
from holmesvau.live.explain import per_event
from holmesvau.testing.planted import planted_scorer
from holmesvau.testing.synthetic import make_video

HOST = "127.0.0.1"


def ffmpeg_exe() -> str:
    return pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()


def read_all(source: str, **kw) -> tuple[LiveSource, list]:
    src = LiveSource(SourceConfig(source, **kw))
    return src, list(src.items(threading.Event()))


# -- source ------------------------------------------------------------------------------------------------------
def test_corrupt_packets_are_skipped(tmp_path, monkeypatch):
    import av

    video = make_video(tmp_path / "v.mp4", 90)
    src, frames = read_all(str(video))
    assert len(frames) == 90 and src.corrupt_packets == 0
    # every 7th packet undecodable: counted and skipped, the rest decodes and the clock goes on
    real_decode = av.Packet.decode
    calls = {"n": 0}

    def flaky(packet):
        calls["n"] += 1
        if calls["n"] % 7 == 0 and packet.size:
            raise av.error.InvalidDataError(-1094995529, "Invalid data found when processing input")
        return real_decode(packet)

    monkeypatch.setattr(av.Packet, "decode", flaky)
    src, frames = read_all(str(video))
    assert src.corrupt_packets == 90 // 7  # read on to the last packet
    assert 45 < len(frames) <= 90 - 90 // 7  # (frames referring to a lost one may be lost too)
    assert all(a.t < b.t for a, b in zip(frames, frames[1:]))


def test_damaged_transport_stream_is_read_to_the_end(tmp_path):
    import subprocess

    ts = tmp_path / "c.ts"
    make_video(tmp_path / "v.mp4", 120)
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(tmp_path / "v.mp4"), "-c:v",
                    "libx264", "-g", "10", "-f", "mpegts", str(ts)], check=True, timeout=60)  # fmt: skip
    data = bytearray(ts.read_bytes())
    rng = np.random.default_rng(0)
    n = len(data) // 188
    for k in rng.choice(np.arange(10, n - 10), size=n // 10, replace=False):  # 10 % of the TS packets garbled
        data[k * 188 + 4 : k * 188 + 188] = rng.integers(0, 256, 184, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.ts"
    bad.write_bytes(bytes(data))
    _, frames = read_all(str(bad))
    assert frames and frames[-1].t == pytest.approx(119 / 30, abs=0.1)


def test_realtime_pacing(tmp_path):
    video = make_video(tmp_path / "v.mp4", 45, fps=30.0)  # 1.5 s
    t0 = time.monotonic()
    read_all(str(video), realtime=True)
    assert time.monotonic() - t0 >= 1.4
    t0 = time.monotonic()
    read_all(str(video))
    assert time.monotonic() - t0 < 1.4


# -- explainer ---------------------------------------------------------------------------------------------------
def test_explainer_falls_behind_without_dropping(tmp_path):
    results, gate = [], threading.Event()
    in_memory = []

    def slow(tiles):
        gate.wait(10)
        time.sleep(0.02)
        return {"judgement": f"mean {int(tiles.mean())}"}

    ex = Explainer(per_event(slow), max_in_memory=2, batch=1)
    ex.add_camera("cam", tmp_path / "backlog", lambda r: results.append(r))
    ex.start()
    for k in range(8):
        ex.submit("cam", f"ev-{k:04d}", np.full((2, 3, 4, 4), k, dtype=np.uint8), {"k": k})
        in_memory.append(len(ex.memory))
    assert max(in_memory) <= 2  # the bounded in-memory queue; the rest wait on disk
    assert ex.backlog == 8
    gate.set()
    assert ex.close(timeout_s=30) == 0
    assert [r["event"] for r in results] == [f"ev-{k:04d}" for k in range(8)]  # all of them, in order
    assert [r["judgement"] for r in results] == [f"mean {k}" for k in range(8)]
    assert [r["backlog"] for r in results] == list(range(7, -1, -1))


def test_backlog_left_at_exit_is_explained_by_the_next_run(tmp_path):
    from holmesvau.live.explain import Stopped

    def stuck(tile_sets, stop):  # a generation that only ends when told to stop (as mllm_explainer's does)
        stop.wait(60)
        raise Stopped()

    first = Explainer(stuck)
    first.add_camera("cam", tmp_path / "backlog", lambda r: None)
    first.start()
    for k in range(3):
        first.submit("cam", f"ev-{k:04d}", np.zeros((1, 3, 4, 4), dtype=np.uint8), {"k": k})
    t0 = time.monotonic()
    assert first.close(timeout_s=0.3) == 3  # still busy on the first: nothing is lost
    assert time.monotonic() - t0 < 5 and not first.thread.is_alive()  # interrupted and joined, not abandoned
    results = []
    second = Explainer(per_event(lambda t: {"judgement": "ok"}))
    second.add_camera("cam", tmp_path / "backlog", lambda r: results.append(r))
    second.start()
    assert second.close(timeout_s=30) == 0
    assert sorted(r["event"] for r in results) == ["ev-0000", "ev-0001", "ev-0002"]
    assert [r["k"] for r in sorted(results, key=lambda r: r["event"])] == [0, 1, 2]


# -- webhook -----------------------------------------------------------------------------------------------------
def flaky_receiver(fail_first: int):
    got, seen = [], {"n": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen["n"] += 1
            if seen["n"] <= fail_first:
                self.send_response(503)
            else:
                got.append(body)
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{HOST}:{server.server_address[1]}/hook", got


def test_webhook_retries_then_delivers_in_order():
    server, url, got = flaky_receiver(fail_first=2)
    try:
        hook = Webhook(url, retries=3, backoff_s=0.05)
        for k in range(5):
            hook.send({"type": "opened", "k": k})
        hook.close(timeout_s=20)
        assert [g["k"] for g in got] == list(range(5)) and hook.sent == 5 and hook.failed == 0
        assert all(g["schema_version"] == 2 for g in got)
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_down_never_blocks_and_is_counted(caplog):
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    hook = Webhook(f"http://{HOST}:{port}/hook", retries=1, backoff_s=0.01, timeout_s=1, max_queue=3)
    t0 = time.monotonic()
    for k in range(10):
        hook.send({"type": "closed", "k": k})
    assert time.monotonic() - t0 < 0.5  # send only enqueues
    hook.close(timeout_s=20)
    assert hook.sent == 0 and hook.failed + hook.dropped == 10 and hook.dropped >= 6
    assert "giving up" in caplog.text


# -- a long stream in flat memory --------------------------------------------------------------------------------
def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


@pytest.mark.slow  # ~15-30 s on 2 cores: 30 minutes of stream (1800 frames at 1 fps, 225 snippets) through the whole watcher
def test_thirty_minutes_of_stream_in_flat_memory(tiny_lm, tmp_path):
    fps, period, bright_s, stride = (
        1.0,
        120,
        24,
        8,
    )  # a 24 s "anomaly" every 2 minutes: 15 events in 30 minutes
    n = int(30 * 60 * fps)
    bright = [(int(k * period * fps), int((k * period + bright_s) * fps)) for k in range(15)]
    video = make_video(tmp_path / "long.mp4", n, fps=fps, width=64, height=48, bright_ranges=bright)
    encode = vit_tile_encoder(tiny_lm)
    rss: dict[str, float] = {}

    def on_score(snip, score, latency):
        if snip.t >= 300 and "5min" not in rss:
            rss["5min"] = rss_mb()
        rss["peak_after_5min"] = max(rss.get("peak_after_5min", 0.0), rss_mb()) if "5min" in rss else 0.0

    src = LiveSource(SourceConfig(str(video)))
    src.open()
    cfg = WatchConfig(
        out_dir=tmp_path / "out",
        sampling=SamplingConfig(select_frames=4, dense_stride=stride),
        rule=Hysteresis(0.5, 0.4, 1.0, 2.0),
    )
    w = Watcher(src, encode, planted_scorer(encode), cfg, explain_fn=per_event(lambda t: {"judgement": "planted"}),
                on_score=on_score, progress=False)  # fmt: skip
    summary = w.run(threading.Event())
    rss["end"] = rss_mb()
    growth = rss["peak_after_5min"] - rss["5min"]
    print(
        f"RSS after 5 min {rss['5min']:.0f} MB, peak after {rss['peak_after_5min']:.0f} MB (+{growth:.1f} MB)"
    )
    assert summary["stream_s"] >= 30 * 60 - 1 and summary["snippets"] == n // stride
    events = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    closed = [e for e in events if e["type"] == "closed"]
    assert len(closed) == 15 and summary["explained"] == 15
    for e, (a, b) in zip(
        closed, bright
    ):  # each event is where its bright stretch was (one 8 s snippet of slack)
        assert e["start_s"] == pytest.approx(a / fps, abs=8.01) and e["end_s"] == pytest.approx(
            b / fps, abs=8.01
        )
    assert len(list((tmp_path / "out" / "clips").glob("*.mp4"))) == 15
    assert growth < 100, rss
    assert w.ring.peak_bytes <= cfg.ring_mb << 20


def test_ring_is_bounded_in_bytes_and_seconds(tmp_path):
    from holmesvau.live.clips import ClipRing

    video = make_video(tmp_path / "v.mp4", 300, width=160, height=120)
    ring = ClipRing(
        tmp_path / "clips", pre_roll_s=1.0, post_roll_s=0.5, keep_s=2.0, max_bytes=10**9, width=80
    )
    small = ClipRing(tmp_path / "c2", keep_s=100.0, max_bytes=200_000, width=160)
    _, frames = read_all(str(video))
    ring.start("ev", start_t=5.0)
    for f in frames:
        ring.push(f.t, f.frame, f.fps)
        small.push(f.t, f.frame, f.fps)
        assert ring.ring[-1][0] - ring.ring[0][0] <= 2.0
        assert small.bytes <= 200_000
        if f.t >= 7.0:
            ring.stop("ev", 7.0)
    assert ring.clips_written == 1 and not ring.recorders  # finished by itself, post_roll after the end
    from holmesvau.video import probe

    info = probe(tmp_path / "clips" / "ev.mp4", backend="pyav")
    assert info.width == 80 and info.num_frames == pytest.approx(30 * (7.5 - 4.0), abs=2)
    assert not list((tmp_path / "clips").glob("*.part"))


def test_one_bad_event_in_a_batch_is_the_only_one_set_aside(tmp_path):
    """An explanation batch that fails (one event's frames break the model) is retried event by event: the good
    events are explained, only the bad one goes to backlog/failed with the reason."""
    results = []

    def fn(tiles):
        if int(tiles.mean()) == 2:
            raise RuntimeError("this event breaks the model")
        return {"judgement": f"mean {int(tiles.mean())}"}

    ex = Explainer(per_event(fn), batch=4)
    ex.add_camera("cam", tmp_path / "backlog", lambda r: results.append(r))
    for k in range(4):  # all waiting before the worker starts: one batch of 4
        ex.submit("cam", f"ev-{k:04d}", np.full((2, 3, 4, 4), k, dtype=np.uint8), {"k": k})
    ex.start()
    assert ex.close(timeout_s=30) == 0
    assert ex.batch_sizes == [4] and ex.explained == 3 and ex.failed == 1
    by_event = {r["event"]: r for r in results}
    assert [by_event[f"ev-{k:04d}"].get("judgement") for k in (0, 1, 3)] == ["mean 0", "mean 1", "mean 3"]
    assert by_event["ev-0002"]["error"] == "RuntimeError: this event breaks the model"
    assert sorted(p.name for p in (tmp_path / "backlog" / "failed").iterdir()) == ["ev-0002.npz"]
