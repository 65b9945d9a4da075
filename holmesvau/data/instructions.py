"""HIVAU-70k instruction files (jsonl), both released formats, as typed rows.

Train rows: {"id", "type", "task", "video", "conversations": [{"from": "human", "value": "<video>\\n..."},
{"from": "gpt", "value": ...}]}. Test rows: {"id", "type", "task", "video", "prompt", "anwser" (sic; "answer" too)}.
`type` is the level (clip | event | video); `video` is relative to HIVAU-70k/videos/, its first part the dataset.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from holmesvau.jsonl import JsonlProblem, check_id, read_jsonl

LEVELS = ("clip", "event", "video")
VIDEO_TOKEN = "<video>"


class InstructionError(ValueError):
    """A malformed instruction line; the message names the file and line number."""


InstructionProblem = JsonlProblem  # a skipped line: file, line, reason and the row's id when known


@dataclass
class Instruction:
    id: int | str
    type: str  # "clip" | "event" | "video"
    task: str  # "caption" | "judgement" | "description" | "analysis"
    video: str  # relative to HIVAU-70k/videos/
    prompt: str  # without the <video> token
    answer: str
    conversations: list[dict] | None = None  # as given in the train format
    sampled_frames: list[int] | None = None

    @property
    def dataset(self) -> str:
        """'ucf-crime' or 'xd-violence': the first part of the video path."""
        return self.video.replace("\\", "/").split("/", 1)[0]

    @property
    def level_task(self) -> str:
        return f"{self.type}/{self.task}"


def to_conversations(inst: Instruction) -> list[dict]:
    """The training conversation of a row: its own `conversations`, or `<video>\\n` + prompt and the answer."""
    if inst.conversations is not None:
        return [dict(turn) for turn in inst.conversations]
    return [
        {"from": "human", "value": f"{VIDEO_TOKEN}\n{inst.prompt}"},
        {"from": "gpt", "value": inst.answer},
    ]


def parse_instruction(row: object) -> Instruction:
    """One decoded jsonl row -> Instruction; ValueError saying what is wrong."""
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    missing = [k for k in ("id", "type", "task", "video") if k not in row]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    level, task, video = row["type"], row["task"], row["video"]
    if level not in LEVELS:
        raise ValueError(f"unknown type {level!r} (expected one of {', '.join(LEVELS)})")
    if not isinstance(task, str) or not task:
        raise ValueError(f"task must be a non-empty string, got {task!r}")
    if not isinstance(video, str) or not video:
        raise ValueError(f"video must be a non-empty path, got {video!r}")
    conversations = row.get("conversations")
    if conversations is not None:
        if not (isinstance(conversations, list) and all(isinstance(t, dict) for t in conversations)):
            raise ValueError("conversations must be a list of {from, value} objects")
        human = [t.get("value") for t in conversations if t.get("from") == "human"]
        gpt = [t.get("value") for t in conversations if t.get("from") == "gpt"]
        if not human or not gpt or not all(isinstance(v, str) for v in human + gpt):
            raise ValueError("conversations need a human and a gpt turn with string values")
        prompt, answer = human[0].replace(VIDEO_TOKEN + "\n", "").replace(VIDEO_TOKEN, "").strip(), gpt[0]
    else:
        answer = row.get("anwser", row.get("answer"))
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not isinstance(answer, str):
            raise ValueError("needs either `conversations` or string `prompt` and `anwser`/`answer`")
    frames = row.get("sampled_frames")
    if frames is not None and not (isinstance(frames, list) and all(isinstance(i, int) for i in frames)):
        raise ValueError("sampled_frames must be a list of integers")
    return Instruction(check_id(row["id"]), level, task, video, prompt, answer, conversations, frames)


def read_instructions_report(path: str | Path) -> tuple[list[Instruction], list[InstructionProblem]]:
    """Every well-formed row of a jsonl file and a problem (file, line, reason) for each malformed one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"instruction file not found: {path}")
    # holmesvau.jsonl's policy: malformed lines (a torn last one, an over-long one, a repeated id) are skipped
    # and reported
    return read_jsonl(path, parse=parse_instruction, unique_ids=True)


def read_instructions(path: str | Path, on_error: str = "raise") -> list[Instruction]:
    """Rows of an instruction file. on_error="raise": InstructionError at the first malformed line (file:line);
    "skip": malformed lines are left out and reported in one warning (see read_instructions_report for the list)."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    rows, problems = read_instructions_report(path)
    if problems and on_error == "raise":
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InstructionError(f"{problems[0]}{more}")
    if problems:
        listed = "; ".join(str(p) for p in problems[:5])
        warnings.warn(f"skipped {len(problems)} malformed instruction line(s): {listed}", stacklevel=2)
    return rows
