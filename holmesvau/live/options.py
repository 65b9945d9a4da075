"""Command-line options of `watch.py` and the run they drive (kept here so the entry point stays thin).

Model options and their defaults are inference.py's (holmesvau.cli: --model, --scorer, --device, --dtype,
--cache-dir, --dense-stride, --select-frames, --tau, --max-new-tokens).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from .events import Hysteresis
from .source import SourceConfig, SourceError
from .watcher import WatchConfig


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The model, sampling and generation options of inference.py, with the same defaults (holmesvau.cli);
    no --no-ats: live mode is the anomaly scorer."""
    from holmesvau.cli import add_generation_options, add_model_options, add_sampling_options

    add_model_options(p, no_ats=False)
    add_sampling_options(p)
    add_generation_options(p)


def add_arguments(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("source")
    s.add_argument(
        "--source", required=True, help="rtsp:// rtmp:// udp:// tcp:// http(s):// URL, /dev/videoN, or a file"
    )
    s.add_argument(
        "--realtime",
        action="store_true",
        help="files: play at the frame rate (default: as fast as it decodes)",
    )
    s.add_argument(
        "--no-reconnect", action="store_true", help="stop when the stream drops instead of reopening it"
    )
    s.add_argument("--open-attempts", type=int, default=5, help="tries to open the source at start")
    s.add_argument("--open-timeout-s", type=float, default=10.0)
    s.add_argument(
        "--read-timeout-s", type=float, default=10.0, help="no data for this long = the stream dropped"
    )
    s.add_argument(
        "--backoff-max-s", type=float, default=10.0, help="longest wait between reconnection attempts"
    )
    s.add_argument(
        "--option", action="append", default=[], metavar="K=V", help="FFmpeg demuxer/protocol option"
    )
    add_model_arguments(p)
    o = p.add_argument_group("online scoring and events")
    o.add_argument("--window", type=int, default=64, help="snippets the scorer attends over")
    o.add_argument("--delay", type=int, default=0, help="snippets of right context before a score is given")
    o.add_argument("--batch-size", type=int, default=8, help="most tiles per ViT call")
    o.add_argument("--on", type=float, default=0.5, help="an event opens when the score stays >= this ...")
    o.add_argument("--min-duration-s", type=float, default=1.0, help="... for this long (stream seconds)")
    o.add_argument(
        "--off", type=float, default=0.4, help="an open event closes when the score stays < this ..."
    )
    o.add_argument("--gap-s", type=float, default=2.0, help="... for this long")
    o.add_argument("--pre-roll-s", type=float, default=3.0, help="clip seconds before the event")
    o.add_argument("--post-roll-s", type=float, default=3.0, help="clip seconds after the event")
    o.add_argument("--ring-mb", type=int, default=96, help="most memory for buffered clip frames")
    o.add_argument("--clip-width", type=int, default=480, help="clip width in pixels (at most the source's)")
    w = p.add_argument_group("outputs")
    w.add_argument(
        "--out", type=Path, default=Path("watch_out"), help="output folder (appended to, never cleared)"
    )
    w.add_argument("--webhook", default=None, help="POST every events.jsonl line to this http(s) URL")
    w.add_argument(
        "--no-explain", action="store_true", help="no MLLM explanations (scores, events and clips only)"
    )
    w.add_argument(
        "--explain-queue",
        type=int,
        default=4,
        help="events held in memory for the explainer (the rest wait on disk)",
    )
    w.add_argument(
        "--drain-timeout-s", type=float, default=60.0, help="at exit, time left to explain the backlog"
    )
    w.add_argument("--progress-every-s", type=float, default=5.0)
    w.add_argument("--quiet", action="store_true", help="no progress lines")
    w.add_argument("--verbose", action="store_true", help="log reconnections, clips, ... at INFO level")


def _options(items: list[str]) -> dict[str, str]:
    out = {}
    for it in items:
        if "=" not in it:
            raise ValueError(f"--option must be K=V, got {it!r}")
        k, v = it.split("=", 1)
        out[k] = v
    return out


def configs(args: argparse.Namespace) -> tuple[SourceConfig, WatchConfig]:
    from holmesvau.cli import sampling_config

    src = SourceConfig(
        source=args.source,
        realtime=args.realtime,
        reconnect=False if args.no_reconnect else None,
        open_attempts=args.open_attempts,
        open_timeout_s=args.open_timeout_s,
        read_timeout_s=args.read_timeout_s,
        backoff_max_s=args.backoff_max_s,
        options=_options(args.option),
    )
    rule = Hysteresis(args.on, args.off, args.min_duration_s, args.gap_s)
    watch = WatchConfig(
        out_dir=args.out, sampling=sampling_config(args), window=args.window, delay=args.delay,
        batch_size=args.batch_size, rule=rule, pre_roll_s=args.pre_roll_s, post_roll_s=args.post_roll_s,
        ring_mb=args.ring_mb, clip_width=args.clip_width,
        explain_queue=args.explain_queue, drain_timeout_s=args.drain_timeout_s, webhook=args.webhook,
        progress_every_s=args.progress_every_s,
    )  # fmt: skip
    if not 0 <= args.delay < args.window:
        raise ValueError(f"--delay must be in [0, --window), got {args.delay} with --window {args.window}")
    return src, watch


def main(argv: list[str] | None = None, doc: str | None = None) -> int:
    p = argparse.ArgumentParser(
        description=(doc or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    from holmesvau.ats.weights import ScorerError
    from holmesvau.model import CheckpointError

    try:
        src_cfg, cfg = configs(args)
        summary = run(args, src_cfg, cfg, stop)
    except (SourceError, CheckpointError, ScorerError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def run(args: argparse.Namespace, src_cfg: SourceConfig, cfg: WatchConfig, stop: threading.Event) -> dict:
    """Open the source first (a wrong URL fails before minutes of model loading), then load, then watch."""
    from holmesvau.model import DEFAULT_MODEL
    from holmesvau.pipeline import HolmesVAU

    from .explain import mllm_explainer
    from .source import LiveSource
    from .watcher import Watcher, vit_tile_encoder

    source = LiveSource(src_cfg)
    source.open()
    try:
        if args.quiet:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        vau = HolmesVAU.from_pretrained(args.model or DEFAULT_MODEL, scorer=args.scorer or None, device=args.device,
                                        dtype=args.dtype, cache_dir=args.cache_dir)  # fmt: skip
    except BaseException:
        source.close()
        raise
    explain = None if args.no_explain else mllm_explainer(vau.lm, args.max_new_tokens)
    print(f"[watch] watching {source.name} -> {cfg.out_dir}", file=sys.stderr, flush=True)
    watcher = Watcher(source, vit_tile_encoder(vau.lm), vau.scorer, cfg, explain, progress=not args.quiet)
    return watcher.run(stop)  # the reader thread closes the source (never from here: it may still be reading)
