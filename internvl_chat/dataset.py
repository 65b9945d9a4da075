"""The training dataset: meta entries' rows -> (input ids, labels, pixel values). A row that cannot be used (video
missing or unreadable, text too long) is replaced by the next usable one, deterministically, and reported through
the sample's `problems`, which the collator gathers for the trainer (works with dataloader workers).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset

from holmesvau.model.prompt import DEFAULT_SYSTEM_MESSAGE
from holmesvau.preprocess import frames_to_pixel_values
from holmesvau.video import VideoReader
from holmesvau.video_open import VideoError

from .data import DatasetSpec, FrameConfig, Row, frame_plan, read_rows
from .sft import IGNORE_INDEX, SFTError, estimated_length, tokenize_conversation


@dataclass
class ProblemLog:
    """Skipped rows by kind, each offender counted once, with the first few named for the report."""

    max_listed: int = 20
    counts: Counter = field(default_factory=Counter)
    first: list[dict] = field(default_factory=list)
    _seen: set = field(default_factory=set)

    def add(self, problem: dict) -> None:
        key = (problem["kind"], problem["source"])
        if key in self._seen:
            return
        self._seen.add(key)
        self.counts[problem["kind"]] += 1
        if len(self.first) < self.max_listed:
            self.first.append(problem)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> dict:
        return {"skipped": self.total, "by_kind": dict(self.counts), "first": list(self.first)}


def problem(kind: str, source: str, message: str, video: str | None = None) -> dict:
    return {"kind": kind, "source": source, "video": video, "message": message}


class VideoSFTDataset(Dataset):
    """Samples: {"input_ids", "labels" (L,) long, "pixel_values" (F, 3, S, S), "problems": [dict, ...]}."""

    def __init__(
        self,
        specs: list[DatasetSpec],
        tokenizer,
        frames: FrameConfig | None = None,
        num_image_token: int = 256,
        system_message: str | None = None,
        max_seq_length: int | None = 4096,
        image_size: int = 448,
        train: bool = True,
        seed: int = 42,
        max_tries: int = 64,
    ):
        self.tokenizer = tokenizer
        self.frames = frames or FrameConfig()
        self.num_image_token = num_image_token
        self.system_message = system_message or DEFAULT_SYSTEM_MESSAGE
        self.max_seq_length = max_seq_length
        self.image_size = image_size
        self.train = train
        self.seed = seed
        self.max_tries = max_tries
        self.rows: list[Row] = []
        self.load_problems: list[dict] = []  # malformed lines, found here once
        for spec in specs:
            rows, bad = read_rows(spec)
            self.rows += rows
            self.load_problems += [problem("malformed_row", f"{p.path}:{p.line}", p.reason) for p in bad]
        if not self.rows:
            raise ValueError(f"no usable rows in {[str(s.annotation) for s in specs]}")
        self._bad: set[int] = set()  # rows known to fail, per process
        # cheap lengths for length-grouped batching: image tokens exact, text estimated
        self.lengths = [
            estimated_length(r.conversations, self.expected_frames(r), num_image_token) for r in self.rows
        ]

    def expected_frames(self, row: Row) -> int:
        if row.sampled_frames:
            return len(row.sampled_frames)
        f = self.frames
        return {"clip": (f.clip_min + f.clip_max) // 2, "event": f.event}.get(row.type, f.video)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        met: list[dict] = []
        for attempt in range(min(self.max_tries, len(self.rows))):
            j = (index + attempt) % len(self.rows)
            if j in self._bad:
                continue
            try:
                sample = self.build(j)
            except (VideoError, SFTError, ValueError, OSError) as e:
                self._bad.add(j)
                met.append(self._classify(self.rows[j], e))
                continue
            sample["problems"] = met
            return sample
        raise RuntimeError(
            f"no usable sample among {self.max_tries} rows from index {index}; last problems: {met[-3:]}"
        )

    def _classify(self, row: Row, e: Exception) -> dict:
        if isinstance(e, SFTError):
            kind = "too_long" if e.kind == "too_long" else "tokenization"
        elif not row.video.exists():
            kind = "missing_video"
        elif isinstance(e, (VideoError, OSError)):
            kind = "unreadable_video"
        else:
            kind = "bad_row"
        return problem(kind, row.source, str(e), str(row.video))

    def build(self, j: int) -> dict:
        """Sample j with its own seeded RNG: the same frames whenever (and in whichever process) it is built."""
        row = self.rows[j]
        if not row.video.is_file():
            raise VideoError(f"{row.video}: no such file")
        rng = random.Random(self.seed * 1_000_003 + j)
        with VideoReader(row.video) as reader:
            indices = frame_plan(row, len(reader), self.frames, rng, self.train)
            ex = tokenize_conversation(
                self.tokenizer, row.conversations, len(indices), self.num_image_token, self.system_message,
                self.max_seq_length,
            )  # fmt: skip
            frames = reader.get_frames(indices)
        return {
            "input_ids": torch.tensor(ex.input_ids, dtype=torch.long),
            "labels": torch.tensor(ex.labels, dtype=torch.long),
            "pixel_values": frames_to_pixel_values(frames, self.image_size),
        }


class SFTCollator:
    """`collator(features) -> {"input_ids", "attention_mask", "labels", "pixel_values", "problems"}`; `problems`
    lists what was skipped on the way (VideoSFTDataset replaces unusable rows, never yields None)."""

    def __init__(self, pad_token_id: int, pixel_dtype: torch.dtype = torch.float32):
        self.pad_token_id = int(pad_token_id)
        self.pixel_dtype = pixel_dtype

    def __call__(self, features: Sequence[dict]) -> dict:
        problems = [p for f in features for p in f.get("problems", ())]
        longest = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), longest), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(features), longest), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.as_tensor(f["input_ids"])
            labels[i, :n] = torch.as_tensor(f["labels"])
            mask[i, :n] = 1
        pixels = torch.cat([torch.as_tensor(f["pixel_values"]) for f in features]).to(self.pixel_dtype)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "pixel_values": pixels,
            "problems": problems,
        }
