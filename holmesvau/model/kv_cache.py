"""One batch KV cache, built from prompts prefilled one at a time, that decodes in place.

transformers' DynamicLayer appends each decode step with `torch.cat`, copying the whole cache (~10 GB of traffic a
step at 16 rows of ~3.3k tokens for InternVL2-2B). `RoomyLayer` keeps `GROW` tokens of room and copies only when it
is used up; `left_padded_cache` right-aligns the per-prompt caches (padding masked out by the caller).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

# tokens of room added at a time: one copy of the cache per GROW decode steps instead of one per step
GROW = 256


class RoomyLayer(DynamicLayer):
    """A DynamicLayer whose keys and values are views of the first `length` columns of roomier buffers."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int):
        super().__init__()
        self.device, self.is_initialized = keys.device, True
        self._k, self._v, self.length = keys, values, int(length)
        self._views()

    def _views(self) -> None:
        self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]

    def _grow(self, need: int) -> None:
        b, h, cap, d = self._k.shape
        if self.length + need <= cap:
            return
        cap = self.length + max(need, GROW)
        k, v = self._k.new_empty(b, h, cap, d), self._v.new_empty(b, h, cap, d)
        k[:, :, : self.length], v[:, :, : self.length] = self.keys, self.values
        self._k, self._v = k, v

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        n = key_states.shape[2]
        self._grow(n)
        self._k[:, :, self.length : self.length + n] = key_states
        self._v[:, :, self.length : self.length + n] = value_states
        self.length += n
        self._views()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._k, self._v = self._k[indices], self._v[indices]
        self._views()

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("RoomyLayer is a decode-only cache")


def cache_kwarg(language_model: torch.nn.Module) -> str:
    """The KV-cache argument of a transformers forward: `cache` in recent releases, else `past_key_values`."""
    params = inspect.signature(language_model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def left_padded_cache(rows: Sequence[list[tuple[torch.Tensor, torch.Tensor]]], room: int) -> DynamicCache:
    """One cache for `rows` (per row, per layer (keys, values) of shape (1, kv heads, L_row, head dim)), each row
    right-aligned to the longest, with room for `room` more tokens before it first grows. The row caches are freed
    layer by layer as they are copied."""
    width = max(kv[0][0].shape[2] for kv in rows)
    room = max(1, min(int(room), GROW))
    layers = []
    for layer in range(len(rows[0])):
        k0, v0 = rows[0][layer]
        keys = k0.new_zeros(len(rows), k0.shape[1], width + room, k0.shape[3])
        values = v0.new_zeros(len(rows), v0.shape[1], width + room, v0.shape[3])
        for j, kv in enumerate(rows):
            k, v = kv[layer]
            keys[j, :, width - k.shape[2] : width] = k[0]
            values[j, :, width - v.shape[2] : width] = v[0]
            kv[layer] = None
        layers.append(RoomyLayer(keys, values, width))
    cache = DynamicCache()
    cache.layers[:] = layers
    return cache
