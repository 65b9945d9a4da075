"""Prompt building exactly as InternVL2's chat (internlm2-chat template) and as HolmesVAU's training.

    <|im_start|>system\n{system}<|im_end|><|im_start|>user\n{question}<|im_end|><|im_start|>assistant\n

No newline follows `<|im_end|>` (the template's separator is the bare token). Every `<image>` placeholder becomes
`<img>` + `<IMG_CONTEXT>` x (tokens per tile x tiles) + `</img>`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .convert import DEFAULT_SYSTEM_MESSAGE
from .tokenizer import IM_END, IM_START, IMG_CONTEXT, IMG_END, IMG_START

IMAGE_PLACEHOLDER = "<image>"
VIDEO_PLACEHOLDER = "<video>"


def frame_lines(num_frames: int) -> list[str]:
    return [f"Frame{i + 1}: {IMAGE_PLACEHOLDER}" for i in range(num_frames)]


def video_question(question: str, num_frames: int) -> str:
    """Inference form: every frame line ends with a newline, then the question."""
    return "".join(line + "\n" for line in frame_lines(num_frames)) + question


def training_video_text(num_frames: int) -> str:
    """Training form (what `<video>\\n` becomes): frame lines joined by newlines, nothing after the last one."""
    return "\n".join(frame_lines(num_frames))


def chat_text(
    question: str,
    history: Sequence[tuple[str, str]] | None = None,
    system_message: str = DEFAULT_SYSTEM_MESSAGE,
    answer: str | None = None,
) -> str:
    """The template text (placeholders not expanded). With `answer`, the assistant turn is closed (training)."""
    text = f"{IM_START}system\n{system_message}{IM_END}"
    for q, a in history or ():
        text += f"{IM_START}user\n{q}{IM_END}{IM_START}assistant\n{a}{IM_END}"
    text += f"{IM_START}user\n{question}{IM_END}{IM_START}assistant\n"
    if answer is not None:
        text += f"{answer}{IM_END}"
    return text


def image_tokens(num_tiles: int, num_image_token: int = 256) -> str:
    return IMG_START + IMG_CONTEXT * (num_image_token * num_tiles) + IMG_END


def expand_image_placeholders(text: str, tiles_per_image: Sequence[int], num_image_token: int = 256) -> str:
    """Replace the i-th `<image>` with the tokens of `tiles_per_image[i]` tiles; the counts must agree."""
    n = text.count(IMAGE_PLACEHOLDER)
    if n != len(tiles_per_image):
        raise ValueError(
            f"prompt has {n} {IMAGE_PLACEHOLDER} placeholders but {len(tiles_per_image)} images were given"
        )
    for tiles in tiles_per_image:
        text = text.replace(IMAGE_PLACEHOLDER, image_tokens(tiles, num_image_token), 1)
    return text


def build_prompt(
    question: str,
    tiles_per_image: Sequence[int],
    history: Sequence[tuple[str, str]] | None = None,
    system_message: str = DEFAULT_SYSTEM_MESSAGE,
    num_image_token: int = 256,
) -> str:
    """Full prompt for generation; `<image>` placeholders in `question` (and in history) are expanded in order.

    As in the original chat, when the question carries no placeholder but images are given, a single image is
    prefixed as `<image>\\n`.
    """
    placed = IMAGE_PLACEHOLDER in question or any(IMAGE_PLACEHOLDER in q for q, _ in history or ())
    if tiles_per_image and not placed:
        question = f"{IMAGE_PLACEHOLDER}\n{question}"
    text = chat_text(question, history, system_message)
    return expand_image_placeholders(text, tiles_per_image, num_image_token)
