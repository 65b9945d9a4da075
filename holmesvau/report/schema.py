"""The JSON schema of `report.json` (JSON Schema draft 2020-12), versioned by `schema_version`.

Bump SCHEMA_VERSION's major number when a field is removed or changes meaning, the minor one when fields are added.
`validate_report` needs the `jsonschema` package (only when called).
"""

from __future__ import annotations

SCHEMA_VERSION = "2.0"  # 2.0: `model` carries generic metadata (1.x had a `tiny` flag)
TASKS = ("judgement", "description", "analysis")  # the questions asked of the video and of each event

_TEXT = {"type": "string"}
_SECONDS = {"type": "number", "minimum": 0}
_FRAME = {"type": "integer", "minimum": 0}
_FRAMES = {"type": "array", "items": _FRAME}
_SCORE = {"type": "number", "minimum": 0, "maximum": 1}


def _object(required: list[str], properties: dict, closed: bool = True) -> dict:
    """An object with these properties, of which `required` must be present; `closed`: no other property."""
    out = {"type": "object", "required": required, "properties": properties}
    return {**out, "additionalProperties": False} if closed else out


_ANSWERS = _object(list(TASKS), dict.fromkeys(TASKS, _TEXT))
_CLIP = _object(
    ["start_s", "end_s", "caption"],
    {"start_s": _SECONDS, "end_s": _SECONDS, "frame_indices": _FRAMES, "caption": _TEXT},
)
_EVENT = _object(
    ["start_s", "end_s", "peak_score", "frame_indices", "answers", "clips"],
    {
        "start_s": _SECONDS,
        "end_s": _SECONDS,
        "start_frame": _FRAME,
        "end_frame": _FRAME,
        "peak_score": _SCORE,
        "frame_indices": {**_FRAMES, "minItems": 1},
        "answers": _ANSWERS,
        "clips": {"type": "array", "items": _CLIP},
    },
)
_VIDEO = {
    "path": _TEXT,
    "fps": {"type": "number", "exclusiveMinimum": 0},
    "n_frames": {"type": "integer", "minimum": 1},
    "duration_s": _SECONDS,
    "width": {"type": "integer"},
    "height": {"type": "integer"},
}
_LOCALIZATION = {
    "threshold": {"type": "number"},
    "threshold_source": {"enum": ["default", "given"]},
    "smooth": {"type": "integer", "minimum": 1},
    "merge_gap_s": _SECONDS,
    "min_duration_s": _SECONDS,
    "events_found": {"type": "integer", "minimum": 0},
}
_MODEL = {  # random_weights: present when known; true: answers are meaningless
    "name": _TEXT,
    "path": _TEXT,
    "dtype": _TEXT,
    "device": _TEXT,
    "random_weights": {"type": "boolean"},
}

REPORT_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "HolmesVAU hierarchical anomaly report",
    **_object(
        ["schema_version", "video", "events", "video_answers", "scores", "timings"],
        {
            "schema_version": {"const": SCHEMA_VERSION},
            "video": _object(["path", "fps", "n_frames", "duration_s"], _VIDEO, closed=False),
            "events": {"type": "array", "items": _EVENT},
            "video_answers": _ANSWERS,
            "video_sampling": _object(
                ["method", "frame_indices"],
                {"method": {"enum": ["ats", "uniform"]}, "frame_indices": _FRAMES},
                False,
            ),
            "scores": _object(
                ["dense_frame_indices", "values", "stride"],
                {
                    "dense_frame_indices": _FRAMES,
                    "values": {"type": "array", "items": _SCORE},
                    "stride": {"type": "integer", "minimum": 1},
                },
                closed=False,
            ),
            "localization": {"type": "object", "properties": _LOCALIZATION},
            "prompts": {"type": "object", "additionalProperties": _TEXT},
            "model": _object(["name"], _MODEL),
            "timings": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
        },
    ),
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
