"""Supervised fine-tuning tokenisation as the original recipe: the inference template, `<image>` expanded, and
`<video>\\n` of the first turn replaced by the frame lines joined by newlines (no newline before the question).
Labels are -100 except on each answer and its `<|im_end|>`; pieces cut at the role markers are tokenised on their
own and must add up to the whole text (else the sample is refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from holmesvau.model.prompt import (
    DEFAULT_SYSTEM_MESSAGE,
    IMAGE_PLACEHOLDER,
    VIDEO_PLACEHOLDER,
    chat_text,
    expand_image_placeholders,
    training_video_text,
)
from holmesvau.model.tokenizer import IM_START, IMG_CONTEXT, IMG_END

IGNORE_INDEX = -100
USER_ROLE = f"{IM_START}user\n"
ASSISTANT_ROLE = f"{IM_START}assistant\n"


class SFTError(ValueError):
    """A sample that cannot be tokenised for training (the reason says why); `kind` groups them for reports."""

    def __init__(self, message: str, kind: str = "tokenization"):
        super().__init__(message)
        self.kind = kind


@dataclass
class SFTExample:
    input_ids: list[int]
    labels: list[int]
    text: str


def expand_video(conversations: Sequence[dict], num_frames: int) -> list[dict]:
    """Values stripped (as the original); `<video>\\n` of the first human turn becomes the frame lines."""
    turns = [{"from": t["from"], "value": str(t["value"]).strip()} for t in conversations]
    first = turns[0]["value"]
    if VIDEO_PLACEHOLDER not in first:
        first = f"{VIDEO_PLACEHOLDER}\n{first}"
    frames = training_video_text(num_frames)
    first = first.replace(f"{VIDEO_PLACEHOLDER}\n", frames).replace(VIDEO_PLACEHOLDER, frames)
    turns[0]["value"] = first
    return turns


def conversation_text(turns: Sequence[dict], system_message: str = DEFAULT_SYSTEM_MESSAGE) -> str:
    """The full training text (placeholders not expanded) of alternating human/gpt turns."""
    pairs = [(turns[i]["value"], turns[i + 1]["value"]) for i in range(0, len(turns), 2)]
    *history, (question, answer) = pairs
    return chat_text(question, history, system_message, answer=answer)


def label_pieces(text: str) -> list[tuple[str, bool]]:
    """Cut the text into (piece, supervised) at the role markers: answers + `<|im_end|>` are the supervised ones."""
    parts = text.split(ASSISTANT_ROLE)
    pieces = [(parts[0] + ASSISTANT_ROLE, False)]
    for middle in parts[1:-1]:
        answer, _, rest = middle.partition(USER_ROLE)
        pieces += [(answer, True), (USER_ROLE + rest + ASSISTANT_ROLE, False)]
    pieces.append((parts[-1], True))
    return pieces


def tokenize_conversation(
    tokenizer,
    conversations: Sequence[dict],
    num_frames: int,
    num_image_token: int = 256,
    system_message: str = DEFAULT_SYSTEM_MESSAGE,
    max_seq_length: int | None = None,
) -> SFTExample:
    """Token ids and labels of one sample with `num_frames` one-tile frames.

    Over `max_seq_length` the sample is truncated, unless that would cut image tokens or leave no supervised
    token: then SFTError(kind="too_long").
    """
    turns = expand_video(conversations, num_frames)
    text = conversation_text(turns, system_message)
    text = expand_image_placeholders(text, [1] * text.count(IMAGE_PLACEHOLDER), num_image_token)
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    has_bos = bool(ids) and ids[0] == tokenizer.bos_token_id
    labels = [IGNORE_INDEX] * int(has_bos)
    for piece, supervised in label_pieces(text):
        n = len(tokenizer(piece, add_special_tokens=False)["input_ids"])
        labels += ids[len(labels) : len(labels) + n] if supervised else [IGNORE_INDEX] * n
    if len(labels) != len(ids):
        raise SFTError(f"tokenization mismatch: pieces give {len(labels)} tokens, the whole text {len(ids)}")
    if max_seq_length is not None and len(ids) > max_seq_length:
        ids, labels = truncate(tokenizer, ids, labels, max_seq_length)
    return SFTExample(ids, labels, text)


def truncate(tokenizer, ids: list[int], labels: list[int], max_len: int) -> tuple[list[int], list[int]]:
    image_ids = {tokenizer.convert_tokens_to_ids(IMG_CONTEXT), tokenizer.convert_tokens_to_ids(IMG_END)}
    last_image = max((i for i, t in enumerate(ids) if t in image_ids), default=-1)
    if last_image >= max_len:
        raise SFTError(
            f"{len(ids)} tokens > max_seq_length {max_len} and truncation would cut image tokens", "too_long"
        )
    labels = labels[:max_len]
    if all(x == IGNORE_INDEX for x in labels):
        raise SFTError(
            f"{len(ids)} tokens > max_seq_length {max_len}: truncation leaves no answer token", "too_long"
        )
    return ids[:max_len], labels


def estimated_length(conversations: Sequence[dict], num_frames: int, num_image_token: int = 256) -> int:
    """A cheap token-count estimate for length-grouped batching: image tokens exact, text ~ 4 chars a token."""
    chars = sum(len(str(t.get("value", ""))) for t in conversations)
    return num_frames * (num_image_token + 2 + 4) + chars // 4 + 100
