"""Hierarchical anomaly report of a (long) video: events localised on the anomaly curve, each described at event
and clip level, plus the video-level answers; written as `report.json` (versioned schema) and `report.html`."""

from .analysis import CLIP_CAPTION_PROMPT, TASK_PROMPTS, Report, ReportConfig, build_report, write_report
from .frames import sample_inside, share_with_ats, split_clips
from .html import render_html
from .localize import Event, default_threshold, localize_events, otsu_threshold, smooth_scores
from .schema import REPORT_SCHEMA, SCHEMA_VERSION, ReportSchemaError, validate_report

__all__ = [
    "CLIP_CAPTION_PROMPT",
    "REPORT_SCHEMA",
    "SCHEMA_VERSION",
    "TASK_PROMPTS",
    "Event",
    "Report",
    "ReportConfig",
    "ReportSchemaError",
    "build_report",
    "default_threshold",
    "localize_events",
    "otsu_threshold",
    "render_html",
    "sample_inside",
    "share_with_ats",
    "smooth_scores",
    "split_clips",
    "validate_report",
    "write_report",
]
