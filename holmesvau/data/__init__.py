"""HIVAU-70k data: raw annotations and instruction files as typed data (cutting/checking live in .segments/.check)."""

from holmesvau.data.annotations import (
    AnnotationError,
    AnnotationProblem,
    RawVideo,
    SummarySplit,
    clip_segment_name,
    event_segment_name,
    load_raw_database,
    load_raw_database_report,
    parse_segment_name,
    seconds_to_frames,
)
from holmesvau.data.instructions import (
    Instruction,
    InstructionError,
    InstructionProblem,
    read_instructions,
    read_instructions_report,
    to_conversations,
)

__all__ = [
    "AnnotationError", "AnnotationProblem", "Instruction", "InstructionError", "InstructionProblem", "RawVideo",
    "SummarySplit", "clip_segment_name", "event_segment_name", "load_raw_database", "load_raw_database_report",
    "parse_segment_name", "read_instructions", "read_instructions_report", "seconds_to_frames", "to_conversations",
]  # fmt: skip
