"""Many cameras in one process: the cameras file, and one watch.py on three real streams (two UDP MPEG-TS from
ffmpeg, one RTSP from gst-rtsp-server with a password) publishing to a real mosquitto broker, all on 127.0.0.1.
The big run checks, in one process: per-camera outputs, MQTT events / clip / state messages equal to the files,
one model load, one camera down 10 s while the others keep scoring on time, the broker stopped and restarted
(scoring never stalls, messages after it arrive, drops counted), no password anywhere, SIGTERM closing everything.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from live_servers import (
    HOST,
    REPO,
    Mosquitto,
    RtspServer,
    Subscriber,
    ffmpeg_sender,
    free_ports,
    read_jsonl,
    sigterm_and_wait,
    start_watch,
    stop,
    wait_for,
)

from holmesvau.live.options import CamerasFileError, add_arguments, camera_configs

SECRET = "s3cr3t-Pa55"
GOOD = """\
[defaults]
on = 0.6
gap-s = 3

[[camera]]
name = "lobby"
source = "rtsp://user:pass@10.0.0.5/stream1"

[[camera]]
name = "gate"
source = "udp://127.0.0.1:5001"
off = 0.3
read_timeout_s = 4
option = { fifo_size = "100000" }
"""


def parse(tmp_path: Path, text: str, *cli: str):
    import argparse

    f = tmp_path / "cameras.toml"
    f.write_text(text)
    p = argparse.ArgumentParser()
    add_arguments(p)
    return camera_configs(p, p.parse_args(["--cameras", str(f), *cli]))


def test_cameras_file(tmp_path):
    cams = parse(tmp_path, GOOD, "--off", "0.2", "--gap-s", "9", "--window", "32")
    assert [c[0] for c in cams] == ["lobby", "gate"]
    (_, lobby_src, lobby, _), (_, gate_src, gate, _) = cams
    # built-in < command line < [defaults] < the camera's own
    assert (lobby.rule.on, lobby.rule.off, lobby.rule.gap_s, lobby.window) == (0.6, 0.2, 3.0, 32)
    assert (gate.rule.on, gate.rule.off, gate.rule.gap_s, gate.window) == (0.6, 0.3, 3.0, 32)
    assert (lobby_src.read_timeout_s, gate_src.read_timeout_s) == (10.0, 4.0)
    assert (
        gate_src.options == {"fifo_size": "100000"}
        and lobby_src.source == "rtsp://user:pass@10.0.0.5/stream1"
    )


@pytest.mark.parametrize(
    "edit, line, message",
    [
        (("off = 0.3", "of = 0.3"), 12, "unknown option 'of'"),
        (('name = "gate"', 'name = "lobby"'), 10, "camera name 'lobby' is used twice"),
        (('name = "gate"', 'name = "../gate"'), 10, "name must be 1-64 of A-Z a-z 0-9 _ -"),
        (('name = "gate"', 'name = "<script>"'), 10, "name must be 1-64"),
        (("off = 0.3", 'off = "low"'), 12, "off must be a number, got 'low'"),
        (("off = 0.3", "off = 0.9"), 9, "camera 'gate': --off (0.9) must not be above --on (0.6)"),
        (("on = 0.6", "on = nan"), 5, "camera 'lobby': --on must be a score in [0, 1], got nan"),
        (("gap-s = 3", "gap-s = true"), 3, "gap-s must be a number, got True"),
        (('source = "udp://127.0.0.1:5001"', ""), 9, "camera 'gate': no source"),
        (("[defaults]", "[defaultz]"), 1, "unknown table [defaultz]"),
        (("off = 0.3", "off = = 0.3"), 12, "not valid TOML"),
    ],
)
def test_bad_cameras_file_is_refused_naming_the_line(tmp_path, edit, line, message):
    with pytest.raises(CamerasFileError) as e:
        parse(tmp_path, GOOD.replace(*edit))
    assert str(e.value).startswith(f"{tmp_path / 'cameras.toml'}:{line}: "), str(e.value)
    assert message in str(e.value)


@pytest.fixture(scope="module")
def tiny_scorer(tmp_path_factory):
    from holmesvau.testing import make_random_scorer

    return make_random_scorer(tmp_path_factory.mktemp("scorer") / "tiny_scorer.pth", input_dim=64)


def scores_between(out: Path, camera: str, a: float, b: float) -> list[dict]:
    return [
        s for s in read_jsonl(out / camera / "scores.jsonl") if s["type"] == "score" and a <= s["wall"] <= b
    ]


@pytest.mark.slow  # ~60 s: three real-time streams through one watch.py, one down 10 s, the broker down 3 s
def test_three_cameras_one_process(shared, tiny_model_dir, tiny_scorer, tmp_path, request):
    broker = Mosquitto(tmp_path)
    request.addfinalizer(broker.stop)  # (every server this test starts is stopped, however it ends)
    rtsp = RtspServer(user="user", password=SECRET)
    request.addfinalizer(rtsp.close)
    udp = {
        name: f"udp://{HOST}:{port}" for name, port in zip(("gate", "yard"), free_ports(2, socket.SOCK_DGRAM))
    }
    clips = {"gate": shared("videos/car_accident.mp4"), "yard": shared("videos/earthquake.mp4")}
    senders = {name: ffmpeg_sender(clips[name], url + "?pkt_size=1316") for name, url in udp.items()}
    request.addfinalizer(lambda: [stop(p) for p in senders.values()])
    cameras = tmp_path / "cameras.toml"
    cameras.write_text(f"""
[defaults]
on = 0
off = 0
min_duration_s = 0
read_timeout_s = 2
backoff_max_s = 0.5
[[camera]]
name = "lobby"
source = "{rtsp.url}"
[[camera]]
name = "gate"
source = "{udp["gate"]}"
[[camera]]
name = "yard"
source = "{udp["yard"]}"
""")
    out, log = tmp_path / "out", tmp_path / "watch.log"
    http_port = free_ports(1)[0]
    sub = Subscriber(broker.port, "hv/#")
    request.addfinalizer(sub.close)
    cmd = [sys.executable, str(REPO / "watch.py"), "--cameras", str(cameras), "--model", str(tiny_model_dir),
           "--scorer", str(tiny_scorer), "--device", "cpu", "--out", str(out), "--mqtt",
           f"mqtt://{HOST}:{broker.port}/hv", "--mqtt-queue", "30", "--select-frames", "4", "--max-new-tokens", "4",
           "--dense-stride", "8", "--progress-every-s", "0.2", "--quiet", "--http", f"{HOST}:{http_port}"]  # fmt: skip
    watcher = None
    try:
        watcher = start_watch(cmd, log)
        for cam in ("lobby", "gate", "yard"):
            wait_for(
                lambda c=cam: len(scores_between(out, c, 0, 1e12)) >= 5, f"{cam} scores", watcher, log, 120
            )
        # -- one camera down for 10 s: the others keep scoring, on time ------------------------------------------
        stop(senders["gate"])
        down = time.time()
        time.sleep(10)
        senders["gate"] = ffmpeg_sender(clips["gate"], udp["gate"] + "?pkt_size=1316")
        up = time.time()
        for cam in ("lobby", "yard"):
            during = scores_between(out, cam, down + 1, up)
            fps = 15 if cam == "lobby" else 30
            assert len(during) >= 0.6 * (up - down - 1) * fps / 8, (
                cam,
                len(during),
            )  # the stream's snippet rate
            assert sorted(s["latency_s"] for s in during)[int(0.95 * len(during))] < 2.0  # arrival -> score
        gap = wait_for(lambda: [e for e in read_jsonl(out / "gate" / "events.jsonl") if e["type"] == "gap"],
                       "the gate's gap", watcher, log)[0]  # fmt: skip
        assert gap["duration_s"] >= 9.0 and gap["reason"] == "no data for 2 s"
        wait_for(lambda: scores_between(out, "gate", gap["end_wall"], 1e12), "gate back", watcher, log)
        # the page and its API: the cameras, and no password
        pages = [urllib.request.urlopen(f"http://{HOST}:{http_port}/{p}", timeout=10).read().decode()
                 for p in ("", "api/cameras", "api/events?since=0", "metrics")]  # fmt: skip
        assert [c["camera"] for c in json.loads(pages[1])] == ["lobby", "gate", "yard"]
        assert f"rtsp://user:***@{HOST}:{rtsp.port}/cam" in pages[1] and not [p for p in pages if SECRET in p]
        # -- the broker away 3 s: scoring goes on, messages after it arrive, drops counted -----------------------
        broker.stop()
        t0 = time.time()
        time.sleep(3)
        broker.start()
        back = time.time()
        for cam in ("lobby", "gate", "yard"):
            assert len(scores_between(out, cam, t0 + 0.5, back)) >= 2, cam  # never stalled on the broker
        wait_for(lambda: [m for m in sub.json("hv/yard/state") if m["wall"] > back + 0.5], "states after the broker "
                 "restart", watcher, log, 60)  # fmt: skip
        summary = sigterm_and_wait(watcher, log, timeout=120)
        time.sleep(1.0)  # the last messages reach the subscriber
    finally:
        stop(watcher)
    stderr = log.read_text()
    assert stderr.count("[watch] model loaded once for 3 camera(s)") == 1  # one model for all
    assert summary["stopped"] == "shutdown" and [c["camera"] for c in summary["cameras"]] == [
        "lobby",
        "gate",
        "yard",
    ]
    assert max(int(k) for k in summary["vit_batches"]) > 1  # tiles of several cameras shared ViT calls
    mqtt = summary["sinks"]["MqttSink"]
    # the broker away 3 s, 15 state messages a second, room for 30: some dropped, and counted
    assert mqtt["dropped"] > 0 and mqtt["undelivered_at_exit"] == 0
    for cam in ("lobby", "gate", "yard"):
        lines = read_jsonl(out / cam / "events.jsonl")
        assert all(e["camera"] == cam and e["run"] == summary["run"] for e in lines)
        kinds = [e["type"] for e in lines if e["type"] != "gap"]
        assert kinds[:3] == ["run", "opened", "closed"] and sorted(kinds[3:]) == ["clip", "explained"], kinds
        closed = next(e for e in lines if e["type"] == "closed")
        assert closed["reason"] == "shutdown"
        clip = next(e for e in lines if e["type"] == "clip")
        assert (out / cam / clip["clip"]).stat().st_size > 0 and not list(
            (out / cam / "clips").glob("*.part")
        )
        # MQTT: the same lines, in order (those published while the broker was away may be the dropped ones)
        got = sub.json(f"hv/{cam}/events")
        assert [m for m in got if m["type"] != "gap"] == [
            e for e in lines if e["type"] not in ("gap", "clip")
        ]
        assert sub.json(f"hv/{cam}/clip") == [clip]
        states = sub.json(f"hv/{cam}/state")
        assert states[-1]["state"] in ("offline", "ended") and any(s["state"] == "online" for s in states)
    gate_gaps = [m for m in sub.json("hv/gate/events") if m["type"] == "gap"]
    assert gate_gaps == [e for e in read_jsonl(out / "gate" / "events.jsonl") if e["type"] == "gap"]
    assert [s["state"] for s in sub.json("hv/gate/state")].count("reconnecting") >= 1
    available = [p.decode() for t, p, _ in sub.messages if t == "hv/available"]
    assert available[0] == "online" and available[-1] == "offline"
    # the RTSP password: in no file, log line, topic or message
    assert SECRET not in stderr
    for f in out.rglob("*"):
        if f.is_file() and f.suffix in (".jsonl", ".json"):
            assert SECRET not in f.read_text(), f
    assert not [m for m in sub.messages if SECRET in m[0] or SECRET.encode() in m[1]]
    lobby_run = read_jsonl(out / "lobby" / "events.jsonl")[0]
    assert lobby_run["source"] == f"rtsp://user:***@{HOST}:{rtsp.port}/cam"
    assert json.dumps(summary).count(SECRET) == 0


def test_explanations_are_batched_and_see_each_event_once(tiny_lm):
    """Events of several cameras answered together (answer_batch): the same answers as one chat() per question,
    and each event's frames through the ViT once for both questions."""
    import threading

    import numpy as np
    import torch

    from holmesvau.live import mllm_explainer
    from holmesvau.model import chat, video_question
    from holmesvau.preprocess import normalize_tiles
    from holmesvau.report.analysis import TASK_PROMPTS

    rng = np.random.default_rng(0)
    events = [rng.integers(0, 256, (n, 3, 448, 448), dtype=np.uint8) for n in (3, 2)]
    explain = mllm_explainer(tiny_lm, max_new_tokens=6)
    got = explain(events, threading.Event())
    assert explain.stats.vit_tiles == 3 + 2  # not 2 x (3 + 2): one pass per event for both questions
    for tiles, answers in zip(events, got):
        pv = normalize_tiles(torch.from_numpy(tiles))
        for task in ("judgement", "description"):
            q = video_question(TASK_PROMPTS[task], len(tiles))
            assert answers[task] == chat(tiny_lm, pv, q, max_new_tokens=6).answer


def test_mqtt_last_will_when_the_watcher_vanishes(tmp_path):
    """A watcher killed without a goodbye: the broker itself publishes `<prefix>/available` = offline."""
    import subprocess

    broker = Mosquitto(tmp_path)
    sub = Subscriber(broker.port, "hv/available")
    code = (
        "import os, sys\n"
        "from holmesvau.live.mqtt import MqttSink\n"
        f"s = MqttSink('mqtt://{HOST}:{broker.port}/hv', 'vanishing')\n"
        "assert s.connected.wait(20)\n"
        "s.client.publish('hv/available', 'online', qos=1, retain=True).wait_for_publish(5)\n"
        "os._exit(9)\n"  # no disconnect, no 'offline' from us
    )
    try:
        r = subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60, capture_output=True, text=True,
                           env={**__import__("os").environ, "PYTHONPATH": str(REPO)})  # fmt: skip
        assert r.returncode == 9, r.stderr
        wait_for(lambda: [p for t, p, _ in sub.messages if p == b"offline"], "the last will", None, None, 20)
        assert [p.decode() for t, p, _ in sub.messages][-2:] == ["online", "offline"]
    finally:
        sub.close()
        broker.stop()
