"""The JSON schema of `report.json` (JSON Schema draft 2020-12), versioned by `schema_version`.

Bump SCHEMA_VERSION's major number when a field is removed or changes meaning, the minor one when fields are added.
`validate_report` needs the `jsonschema` package (only when called).
"""

from __future__ import annotations

SCHEMA_VERSION = "2.0"  # 2.0: `model` carries generic metadata (1.x had a `tiny` flag)

_TEXT = {"type": "string"}
_SECONDS = {"type": "number", "minimum": 0}
_FRAME = {"type": "integer", "minimum": 0}
_ANSWERS = {
    "type": "object",
    "required": ["judgement", "description", "analysis"],
    "properties": {"judgement": _TEXT, "description": _TEXT, "analysis": _TEXT},
    "additionalProperties": False,
}

REPORT_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "HolmesVAU hierarchical anomaly report",
    "type": "object",
    "required": ["schema_version", "video", "events", "video_answers", "scores", "timings"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "video": {
            "type": "object",
            "required": ["path", "fps", "n_frames", "duration_s"],
            "properties": {
                "path": _TEXT,
                "fps": {"type": "number", "exclusiveMinimum": 0},
                "n_frames": {"type": "integer", "minimum": 1},
                "duration_s": _SECONDS,
                "width": {"type": "integer"},
                "height": {"type": "integer"},
            },
        },
        "events": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["start_s", "end_s", "peak_score", "frame_indices", "answers", "clips"],
                "additionalProperties": False,
                "properties": {
                    "start_s": _SECONDS,
                    "end_s": _SECONDS,
                    "start_frame": _FRAME,
                    "end_frame": _FRAME,
                    "peak_score": {"type": "number", "minimum": 0, "maximum": 1},
                    "frame_indices": {"type": "array", "items": _FRAME, "minItems": 1},
                    "answers": _ANSWERS,
                    "clips": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["start_s", "end_s", "caption"],
                            "additionalProperties": False,
                            "properties": {
                                "start_s": _SECONDS,
                                "end_s": _SECONDS,
                                "frame_indices": {"type": "array", "items": _FRAME},
                                "caption": _TEXT,
                            },
                        },
                    },
                },
            },
        },
        "video_answers": _ANSWERS,
        "video_sampling": {
            "type": "object",
            "required": ["method", "frame_indices"],
            "properties": {
                "method": {"enum": ["ats", "uniform"]},
                "frame_indices": {"type": "array", "items": _FRAME},
            },
        },
        "scores": {
            "type": "object",
            "required": ["dense_frame_indices", "values", "stride"],
            "properties": {
                "dense_frame_indices": {"type": "array", "items": _FRAME},
                "values": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
                "stride": {"type": "integer", "minimum": 1},
            },
        },
        "localization": {
            "type": "object",
            "properties": {
                "threshold": {"type": "number"},
                "threshold_source": {"enum": ["default", "given"]},
                "smooth": {"type": "integer", "minimum": 1},
                "merge_gap_s": _SECONDS,
                "min_duration_s": _SECONDS,
                "events_found": {"type": "integer", "minimum": 0},
            },
        },
        "prompts": {"type": "object", "additionalProperties": _TEXT},
        "model": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": _TEXT,
                "path": _TEXT,
                "dtype": _TEXT,
                "device": _TEXT,
                "random_weights": {"type": "boolean"},  # present when known; true: answers are meaningless
            },
        },
        "timings": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
    },
}


class ReportSchemaError(ValueError):
    """A report that does not match REPORT_SCHEMA; the message gives the path of the first offending field."""


def validate_report(report: dict) -> None:
    """Raise ReportSchemaError if `report` does not match the schema (plus: every event ends after it starts)."""
    import jsonschema

    try:
        jsonschema.validate(report, REPORT_SCHEMA, cls=jsonschema.Draft202012Validator)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ReportSchemaError(f"report.json invalid at {where}: {e.message}") from None
    for i, ev in enumerate(report["events"]):
        if ev["end_s"] <= ev["start_s"]:
            raise ReportSchemaError(
                f"report.json invalid at events/{i}: end_s {ev['end_s']} <= start_s {ev['start_s']}"
            )
