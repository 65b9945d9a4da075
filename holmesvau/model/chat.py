"""Asking the model: prompt → greedy generation stopped at `<|im_end|>` → answer text; vision features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .loading import LoadedModel
from .prompt import IM_END, build_prompt


@dataclass
class ChatOutput:
    answer: str
    prompt: str
    input_ids: torch.Tensor
    output_ids: list[int]
    history: list[tuple[str, str]]


def encode_prompt(lm: LoadedModel, prompt: str) -> torch.Tensor:
    """Token ids (1, L) with the bos the original tokenizer adds."""
    ids = lm.tokenizer(prompt, return_tensors="pt", add_special_tokens=True)["input_ids"]
    return ids.to(lm.device)


def checked_tiles(
    tiles_per_image: Sequence[int] | None, n_tiles: int, what: str, where: str = ""
) -> list[int]:
    """Tiles of each `<image>` (default: one each, as for video frames); they must add up to the `n_tiles` given."""
    tiles = list(tiles_per_image or [1] * n_tiles)
    if sum(tiles) != n_tiles:
        raise ValueError(f"{where}tiles_per_image sums to {sum(tiles)} but {what} has {n_tiles} tiles")
    return tiles


@torch.inference_mode()
def chat(
    lm: LoadedModel,
    pixel_values: torch.Tensor | None,
    question: str,
    tiles_per_image: Sequence[int] | None = None,
    history: Sequence[tuple[str, str]] | None = None,
    max_new_tokens: int = 1024,
    do_sample: bool = False,
    **generate_kwargs,
) -> ChatOutput:
    """One turn. `pixel_values` (N, 3, 448, 448) holds all tiles of all images in order; `tiles_per_image` says
    how many tiles each `<image>` of the question takes (default: one each, as for video frames)."""
    n_tiles = 0 if pixel_values is None else int(pixel_values.shape[0])
    tiles_per_image = checked_tiles(tiles_per_image, n_tiles, "pixel_values")
    prompt = build_prompt(question, tiles_per_image, history, lm.system_message, lm.num_image_token)
    input_ids = encode_prompt(lm, prompt)
    kwargs = dict(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        eos_token_id=lm.im_end_id,
        pad_token_id=lm.tokenizer.pad_token_id,
    )
    if pixel_values is not None:
        kwargs["pixel_values"] = pixel_values.to(lm.device, lm.dtype)
    kwargs.update(generate_kwargs)
    new = lm.model.generate(**kwargs)[0, input_ids.shape[1] :].tolist()
    return chat_output(lm, prompt, input_ids, new, question, history)


def chat_output(lm: LoadedModel, prompt, input_ids, new: list[int], question: str, history) -> ChatOutput:
    """The turn's output: the answer is the new tokens' text up to `<|im_end|>`, special tokens skipped."""
    answer = lm.tokenizer.decode(new, skip_special_tokens=True).split(IM_END)[0].strip()
    return ChatOutput(answer, prompt, input_ids, new, [*(history or []), (question, answer)])


@torch.inference_mode()
def vit_cls_features(lm: LoadedModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """InternViT CLS token (last_hidden_state[:, 0]) per tile, float32 (N, D): the ATS scorer's input."""
    out = lm.model.model.vision_tower(pixel_values=pixel_values.to(lm.device, lm.dtype))
    return out.last_hidden_state[:, 0].float()


@dataclass
class VitEncoder:
    """`encode_fn` for streaming ATS: pixel values -> CLS features. `device`, `dtype` and `batch_size` tell
    `extract_dense_features` where to normalise the uint8 tiles (on the model's device) and how many to encode."""

    lm: LoadedModel
    batch_size: int
    device: torch.device
    dtype: torch.dtype

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return vit_cls_features(self.lm, pixel_values)


def vit_encoder(lm: LoadedModel, batch_size: int | None = None) -> VitEncoder:
    """`encode_fn` for streaming ATS; `batch_size` default: 64 tiles a batch on a GPU, 16 on the CPU."""
    return VitEncoder(lm, int(batch_size or default_vit_batch(lm.device)), lm.device, lm.dtype)


def default_vit_batch(device: torch.device | str) -> int:
    """Tiles per InternViT call: 64 on a GPU (~1.2 GB of bf16 activations for InternViT-300M), 16 on the CPU."""
    return 64 if torch.device(device).type == "cuda" else 16
