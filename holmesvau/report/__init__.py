"""Hierarchical anomaly report of a (long) video: events localised on the anomaly curve, each described at event
and clip level, plus the video-level answers; written as `report.json` (versioned schema) and `report.html`."""

from .analysis import Report, ReportConfig, build_report, write_report
from .localize import Event, default_threshold, localize_events, otsu_threshold, smooth_scores
from .schema import REPORT_SCHEMA, ReportSchemaError, validate_report

__all__ = [
    "REPORT_SCHEMA",
    "Event",
    "Report",
    "ReportConfig",
    "ReportSchemaError",
    "build_report",
    "default_threshold",
    "localize_events",
    "otsu_threshold",
    "smooth_scores",
    "validate_report",
    "write_report",
]
