"""Command-line options of `watch.py` and the run they drive (kept here so the entry point stays thin).

Model options and their defaults are inference.py's (holmesvau.cli: --model, --scorer, --device, --dtype,
--cache-dir, --dense-stride, --select-frames, --tau, --max-new-tokens). The cameras file of
`watch.py --cameras cameras.toml` sets per-camera options over shared defaults:

    [defaults]            # any watch option (the long option name, `-` or `_`): on, off, min_duration_s, ...
    on = 0.6
    [[camera]]
    name = "lobby"        # [A-Za-z0-9_-]+, unique: names the output folder, MQTT topics and the page's rows
    source = "rtsp://user:pass@10.0.0.5/stream1"
    [[camera]]
    name = "gate"
    source = "udp://127.0.0.1:5001"
    off = 0.3             # this camera only

Precedence: the built-in defaults < the command line < [defaults] < the camera's own keys. Anything wrong (TOML
syntax, an unknown key, a duplicate or unsafe name, a value of the wrong type or out of range) is refused before
anything starts, with the file and line.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import threading
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from holmesvau.output_guard import FolderLock, OutputError

from .dashboard import parse_addr
from .events import Hysteresis
from .mqtt import parse_mqtt_url
from .outputs import check_webhook_url
from .source import SourceConfig, SourceError, redact
from .watcher import UNNAMED, WatchConfig


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, and every option's default in --help."""


# options a cameras file may set per camera (argparse dests): the source and event groups
SOURCE_GROUP, CAMERA_GROUP = "source", "online scoring and events"
CameraOptions = tuple[str, SourceConfig, WatchConfig, argparse.Namespace]  # name, source, options, arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The source options, inference.py's model, sampling and generation options with the same defaults
    (holmesvau.cli; no --no-ats: live mode is the anomaly scorer), the event options, the outputs."""
    from holmesvau.cli import add_generation_options, add_model_options, add_sampling_options

    s = p.add_argument_group(SOURCE_GROUP)
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--source", help="one camera: rtsp:// rtmp:// udp:// tcp:// http(s):// URL, "
                       "/dev/videoN, or a file")  # fmt: skip
    where.add_argument("--cameras", type=Path,
                       help="many cameras in one process: a TOML cameras file (docs/live.md)")  # fmt: skip
    s.add_argument("--realtime", action="store_true",
                   help="files: play at the frame rate (default: as fast as it decodes)")  # fmt: skip
    s.add_argument("--no-reconnect", action="store_true",
                   help="stop when the stream drops instead of reopening it")  # fmt: skip
    s.add_argument("--open-attempts", type=int, default=5, help="tries to open the source at start")
    s.add_argument("--open-timeout-s", type=float, default=10.0,
                   help="no answer for this long = a failed try")  # fmt: skip
    s.add_argument("--read-timeout-s", type=float, default=10.0,
                   help="no data for this long = the stream dropped")  # fmt: skip
    s.add_argument("--backoff-max-s", type=float, default=10.0,
                   help="longest wait between reconnection attempts")  # fmt: skip
    s.add_argument("--option", action="append", default=[], metavar="K=V",
                   help="FFmpeg demuxer/protocol option")  # fmt: skip
    add_model_options(p, no_ats=False)
    add_sampling_options(p)
    add_generation_options(p)
    o = p.add_argument_group(CAMERA_GROUP)
    o.add_argument("--window", type=int, default=64, help="snippets the scorer attends over")
    o.add_argument("--delay", type=int, default=0, help="snippets of right context before a score is given")
    o.add_argument("--on", type=float, default=0.5, help="an event opens when the score stays >= this ...")
    o.add_argument("--min-duration-s", type=float, default=1.0, help="... for this long (stream seconds)")
    o.add_argument("--off", type=float, default=0.4,
                   help="an open event closes when the score stays < this ...")  # fmt: skip
    o.add_argument("--gap-s", type=float, default=2.0, help="... for this long")
    o.add_argument("--pre-roll-s", type=float, default=3.0, help="clip seconds before the event")
    o.add_argument("--post-roll-s", type=float, default=3.0, help="clip seconds after the event")
    o.add_argument("--ring-mb", type=int, default=96, help="most memory for buffered clip frames")
    o.add_argument("--clip-width", type=int, default=480, help="clip width in pixels (at most the source's)")
    w = p.add_argument_group("outputs")
    w.add_argument("--batch-size", type=int, default=8, help="most tiles per ViT call (all cameras together)")
    w.add_argument("--out", type=Path, default=Path("watch_out"),
                   help="output folder (appended to, never cleared)")  # fmt: skip
    w.add_argument("--webhook", default=None, help="POST every events.jsonl line to this http(s) URL")
    w.add_argument("--mqtt", default=None, metavar="URL", help="publish events, clips and states: "
                   "mqtt://[user:pass@]host[:port][/prefix] (docs/live.md)")  # fmt: skip
    w.add_argument("--mqtt-queue", type=int, default=1000,
                   help="most MQTT messages held while the broker is away")  # fmt: skip
    w.add_argument("--http", default=None, metavar="HOST:PORT", help="serve the live dashboard, /api and "
                   "/metrics there (read-only; e.g. 127.0.0.1:8080)")  # fmt: skip
    w.add_argument("--no-explain", action="store_true",
                   help="no MLLM explanations (scores, events and clips only)")  # fmt: skip
    w.add_argument("--explain-queue", type=int, default=4,
                   help="events held in memory for the explainer (the rest wait on disk)")  # fmt: skip
    w.add_argument("--explain-batch", type=int, default=4, help="events explained together (all cameras)")
    w.add_argument("--drain-timeout-s", type=float, default=60.0,
                   help="at exit, time left to explain the backlog")  # fmt: skip
    w.add_argument("--progress-every-s", type=float, default=5.0)
    w.add_argument("--quiet", action="store_true", help="no progress lines")
    w.add_argument("--verbose", action="store_true", help="log reconnections, clips, ... at INFO level")


NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class CamerasFileError(ValueError):
    """A cameras file that cannot be used: `file:line: what`."""


def _line_of(text: str, table: str | None, index: int, key: str | None) -> int:
    """1-based line of `key` in the index-th `[[table]]` (or `[table]` when index < 0), else of the header."""
    lines = text.splitlines()
    header = re.compile(rf"^\s*\[\[\s*{table}\s*\]\]" if index >= 0 else rf"^\s*\[\s*{table}\s*\]")
    starts = [i for i, line in enumerate(lines) if header.match(line)]
    if len(starts) <= max(index, 0):
        return 1
    start = starts[max(index, 0)]
    if key is None:
        return start + 1
    for j in range(start + 1, len(lines)):
        if re.match(r"^\s*\[", lines[j]):
            break
        if re.match(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", lines[j]):
            return j + 1
    return start + 1


def _check_value(key: str, value, action: argparse.Action):
    """The TOML value for one option, checked against the option's type; returns the converted value."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return value if isinstance(action, argparse._StoreTrueAction) else not value
    kind = action.type
    if action.dest == "option":  # FFmpeg options: a table of strings
        if not isinstance(value, dict) or not all(isinstance(v, (str, int, float)) for v in value.values()):
            raise ValueError(f'{key} must be a table of FFmpeg options, e.g. {{ rtsp_transport = "udp" }}')
        return [f"{k}={v}" for k, v in value.items()]
    if kind in (int, float):
        accepted, what = (int, "an integer") if kind is int else ((int, float), "a number")
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise ValueError(f"{key} must be {what}, got {value!r}")
        return kind(value)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {value!r}")
    return kind(value) if callable(kind) else value


def read_cameras(
    path: Path, parser: argparse.ArgumentParser, base: argparse.Namespace
) -> list[CameraOptions]:
    """Every camera of a cameras file, checked: its options are a copy of `base` with [defaults] and its own keys
    applied (only the options of the source and event groups)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CamerasFileError(f"{path}: cannot read the cameras file ({e})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"at line (\d+)", str(e))  # (Python < 3.14 gives the line only in the message)
        line = getattr(e, "lineno", None) or (int(m.group(1)) if m else "?")
        raise CamerasFileError(f"{path}:{line}: not valid TOML ({e})") from None
    groups = [g for g in parser._action_groups if g.title in (SOURCE_GROUP, CAMERA_GROUP)]
    per_camera = {a.dest for g in groups for a in g._group_actions} - {"source", "cameras", "help"}
    actions = {a.dest: a for a in parser._actions if a.dest in per_camera}

    def err(table, index, key, msg):
        return CamerasFileError(f"{path}:{_line_of(text, table, index, key)}: {msg}")

    for top in doc:
        if top not in ("defaults", "camera"):
            raise err(top, -1, None, f"unknown table [{top}] (there are [defaults] and [[camera]])")
    defaults, cams = doc.get("defaults", {}), doc.get("camera", [])
    tables = isinstance(defaults, dict) and isinstance(cams, list) and all(isinstance(c, dict) for c in cams)
    if not tables:
        raise CamerasFileError(f"{path}: [defaults] must be a table and cameras [[camera]] tables")
    if not cams:
        raise CamerasFileError(f"{path}: no [[camera]] in the file")

    def apply(ns: argparse.Namespace, table: dict, tname: str, index: int, allowed_extra: tuple[str, ...]):
        for key, value in table.items():
            dest = key.replace("-", "_")
            if key in allowed_extra:
                continue
            if dest not in actions:
                raise err(tname, index, key, f"unknown option {key!r} (a camera takes: "
                          f"{', '.join(sorted(actions))})")  # fmt: skip
            try:
                setattr(ns, dest, _check_value(key, value, actions[dest]))
            except (ValueError, TypeError) as e:
                raise err(tname, index, key, str(e)) from None

    common = argparse.Namespace(**vars(base))
    apply(common, defaults, "defaults", -1, ())
    specs, seen = [], set()
    for i, cam in enumerate(cams):
        name = cam.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise err("camera", i, "name" if "name" in cam else None,
                      f"camera {i + 1}: name must be 1-64 of A-Z a-z 0-9 _ - (it names a folder and topics), "
                      f"got {name!r}")  # fmt: skip
        if name in seen:
            raise err("camera", i, "name", f"camera name {name!r} is used twice")
        seen.add(name)
        source = cam.get("source")
        if not isinstance(source, str) or not source.strip():
            raise err("camera", i, "source" if "source" in cam else None, f"camera {name!r}: no source")
        ns = argparse.Namespace(**vars(common))
        apply(ns, cam, "camera", i, ("name", "source"))
        ns.source = source
        try:
            specs.append((name, *configs(ns), ns))
        except ValueError as e:
            raise err("camera", i, None, f"camera {name!r}: {e}") from None
    return specs


def configs(args: argparse.Namespace) -> tuple[SourceConfig, WatchConfig]:
    from holmesvau.cli import sampling_config

    for name in ("open_timeout_s", "read_timeout_s", "backoff_max_s"):
        v = getattr(args, name)
        if not (v == v and 0 < v < 1e6):
            raise ValueError(f"--{name.replace('_', '-')} must be a number of seconds > 0, got {v}")
    if bad := [it for it in args.option if "=" not in it]:
        raise ValueError(f"--option must be K=V, got {bad[0]!r}")
    src = SourceConfig(
        source=args.source, realtime=args.realtime, reconnect=False if args.no_reconnect else None,
        open_attempts=args.open_attempts, open_timeout_s=args.open_timeout_s, read_timeout_s=args.read_timeout_s,
        backoff_max_s=args.backoff_max_s, options=dict(it.split("=", 1) for it in args.option),
    )  # fmt: skip
    rule = Hysteresis(args.on, args.off, args.min_duration_s, args.gap_s)
    watch = WatchConfig(
        out_dir=args.out, sampling=sampling_config(args), window=args.window, delay=args.delay,
        batch_size=args.batch_size, rule=rule, pre_roll_s=args.pre_roll_s, post_roll_s=args.post_roll_s,
        ring_mb=args.ring_mb, clip_width=args.clip_width,
        explain_queue=args.explain_queue, explain_batch=args.explain_batch, drain_timeout_s=args.drain_timeout_s,
        webhook=args.webhook, progress_every_s=args.progress_every_s,
    )  # fmt: skip
    if args.webhook:
        check_webhook_url(args.webhook)
    if args.mqtt:
        parse_mqtt_url(args.mqtt)
    if args.http:
        parse_addr(args.http)
    if args.mqtt_queue < 1:
        raise ValueError(f"--mqtt-queue must be >= 1, got {args.mqtt_queue}")
    return src, watch


def camera_configs(p: argparse.ArgumentParser, args: argparse.Namespace) -> list[CameraOptions]:
    """(name, source, options, its arguments) of every camera: the one --source (unnamed) or the cameras file's,
    all checked."""
    if args.cameras is None:
        return [(UNNAMED, *configs(args), args)]
    return read_cameras(args.cameras, p, args)


def run_options(args: argparse.Namespace) -> dict:
    """The options of this run as recorded on its `run` line (sources and URLs with their passwords hidden)."""

    def hidden(v):
        if isinstance(v, list):
            return [redact(str(x)) for x in v]
        return redact(str(v)) if isinstance(v, (str, Path)) else v

    skip = ("source", "cameras", "quiet", "verbose")
    out = {k: hidden(v) for k, v in sorted(vars(args).items()) if k not in skip}
    if args.cameras is not None:
        out["cameras_file"] = str(args.cameras)
    return out


def main(argv: list[str] | None = None, doc: str | None = None) -> int:
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0], formatter_class=_HelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="[watch] %(levelname)s %(message)s")  # fmt: skip
    stop = threading.Event()

    def on_signal(signum, _frame):
        print(f"[watch] {signal.Signals(signum).name}: stopping", file=sys.stderr, flush=True)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    from holmesvau.ats.weights import NO_ATS_ADVICE, ScorerError

    lock = None
    try:
        cams = camera_configs(p, args)  # every option checked before anything starts
        lock = FolderLock(args.out)
        summary = run(args, cams, stop)
    except ScorerError as e:  # live mode is the scorer: no --no-ats to suggest
        msg = redact(str(e).replace(NO_ATS_ADVICE, ""))
        print(f"error: {msg} (watch.py needs the scorer)", file=sys.stderr)
        return 2
    except (SourceError, ValueError) as e:  # a bad option or cameras file, a source, a CheckpointError
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:  # an output that cannot be written, a folder that cannot be made or locked: one line
        print(f"error: {e.strerror if isinstance(e, OutputError) else redact(str(e))}", file=sys.stderr)
        return 1
    finally:
        if lock is not None:
            lock.release()
    print(json.dumps(summary))
    if summary.get("error"):
        print(f"error: {summary['error']}; stopped (what was written is whole)", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace, cams: list[CameraOptions], stop: threading.Event) -> dict:
    """One camera: open it first (a wrong URL fails before minutes of model loading); then load the model once
    for all cameras, then watch."""
    from holmesvau.model import DEFAULT_MODEL
    from holmesvau.pipeline import HolmesVAU

    from .explain import mllm_explainer
    from .source import LiveSource
    from .watcher import Watcher, vit_tile_encoder

    sources = [(name, LiveSource(src), cfg) for name, src, cfg, _ in cams]
    try:
        if args.cameras is None:
            sources[0][1].open()
        if args.quiet:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        vau = HolmesVAU.from_pretrained(args.model or DEFAULT_MODEL, scorer=args.scorer or None, device=args.device,
                                        dtype=args.dtype, cache_dir=args.cache_dir)  # fmt: skip
    except BaseException:
        for _, src, _ in sources:
            src.close()
        raise
    print(f"[watch] model loaded once for {len(sources)} camera(s)", file=sys.stderr, flush=True)
    explain = None if args.no_explain else mllm_explainer(vau.lm, args.max_new_tokens)
    names = ", ".join(f"{n} ({s.name})" for n, s, _ in sources)
    print(f"[watch] watching {names} -> {args.out}", file=sys.stderr, flush=True)
    source = sources[0][1] if args.cameras is None else sources
    sinks = []
    if args.mqtt:
        from .mqtt import MqttSink
        from .outputs import new_run_id

        sinks.append(MqttSink(args.mqtt, client_id=f"holmesvau-{new_run_id()}", max_queue=args.mqtt_queue))
    watcher = Watcher(source, vit_tile_encoder(vau.lm), vau.scorer, cams[0][2], explain, progress=not args.quiet,
                      sinks=sinks, run_options={c[0]: run_options(c[3]) for c in cams})  # fmt: skip
    dash = None
    if args.http:
        from .dashboard import Dashboard

        dash = Dashboard(args.http, watcher)
        watcher.add_sink(dash)
        print(f"[watch] dashboard on {dash.url}", file=sys.stderr, flush=True)
    try:
        # the reader threads close the sources (never from here: they may still be reading)
        return watcher.run(stop)
    finally:
        if dash is not None:
            dash.shutdown()
