"""Live mode: watch a camera stream, score it online with ATS, raise events, save clips, explain them.

    from holmesvau.live import LiveSource, SourceConfig, Watcher, WatchConfig, vit_tile_encoder
    source = LiveSource(SourceConfig("udp://127.0.0.1:5000")); source.open()
    Watcher(source, vit_tile_encoder(vau.lm), vau.scorer, WatchConfig(out_dir="watch_out")).run(stop_event)
    # many cameras, one model: [(name, LiveSource, WatchConfig), ...] -> out_dir/<name>/
    Watcher([("lobby", lobby, cfg), ("gate", gate, cfg)], encode, vau.scorer, cfg).run(stop_event)

The command line is `watch.py` (options in holmesvau.live.options).
"""

from .camera import Camera
from .events import EventTracker, FrameReservoir, Hysteresis, LiveEvent
from .explain import Explainer, mllm_explainer, per_event
from .online import OnlineScorer, Snippet
from .outputs import SCHEMA_VERSION, JsonlWriter, Webhook
from .source import Frame, Gap, LiveSource, SourceConfig, SourceError, redact, source_kind
from .watcher import WatchConfig, Watcher, vit_tile_encoder

__all__ = [
    "SCHEMA_VERSION", "Camera", "EventTracker", "Explainer", "Frame", "FrameReservoir", "Gap", "Hysteresis",
    "JsonlWriter", "LiveEvent", "LiveSource", "OnlineScorer", "Snippet", "SourceConfig", "SourceError",
    "Watcher", "WatchConfig", "Webhook", "mllm_explainer", "per_event", "redact", "source_kind",
    "vit_tile_encoder"
]  # fmt: skip
