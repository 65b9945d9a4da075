"""Prefill of a batch's prompts one at a time (no padding, no (B, L, L) mask); the prefix shared by one frame set's
prompts (system message and image tokens) is prefilled once and each prompt continues from a copy of its cache.
Under causal attention this equals the full prefill (tests/test_prefill.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Sequence

import torch

from .kv_cache import cache_kwarg

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values), (1, kv heads, L, head dim) each


def shared_prefixes(ids: Sequence[torch.Tensor], groups: Sequence[Hashable | None]) -> list[int]:
    """Per prompt (token ids, 1-D), how many leading tokens it shares with the other prompts of its group (None:
    no group), leaving each prompt at least one token of its own to prefill; 0 for a prompt alone in its group."""
    members: dict[Hashable, list[int]] = {}
    for r, g in enumerate(groups):
        if g is not None:
            members.setdefault(g, []).append(r)
    out = [0] * len(ids)
    for rows in members.values():
        if len(rows) < 2:
            continue
        m = min(len(ids[r]) for r in rows) - 1
        first = ids[rows[0]][:m]
        same = torch.stack([ids[r][:m] == first for r in rows[1:]]).all(0)
        k = int(same.long().cumprod(0).sum())  # length of the run of agreement from the start
        for r in rows:
            out[r] = k
    return out


def layer_kv(cache) -> KV:
    return [(layer.keys, layer.values) for layer in cache.layers]


@torch.inference_mode()
def prefill_rows(
    lm, batch: Sequence, embeds: Callable[[object, int], torch.Tensor], stats=None
) -> Iterator[tuple[int, torch.Tensor, KV]]:
    """(row, last position's hidden state (1, hidden), its KV cache) for each prompt of `batch` in order.

    A row is any object with `ids` (1, L) and `frames` (None or with `.identity`); `embeds(row, start)` gives its input
    embeddings from token `start` on (1, L - start, hidden). `stats.prefill_tokens` counts the tokens actually run."""
    from transformers import DynamicCache

    lang, device = lm.model.model.language_model, lm.device
    ckw = cache_kwarg(lang)
    groups = [p.frames.identity if p.frames is not None else None for p in batch]
    shared = shared_prefixes([p.ids[0] for p in batch], groups)
    left = Counter(groups[r] for r, k in enumerate(shared) if k)  # frame set -> rows still to use its prefix
    prefixes: dict[Hashable, KV] = {}

    def run(e: torch.Tensor, start: int, cache) -> torch.Tensor:
        n = start + e.shape[1]
        if stats is not None:
            stats.prefill_tokens += e.shape[1]
        return lang(
            inputs_embeds=e,
            attention_mask=torch.ones(1, n, dtype=torch.long, device=device),
            position_ids=torch.arange(start, n, device=device)[None],
            use_cache=True,
            **{ckw: cache},
        ).last_hidden_state

    for r, p in enumerate(batch):
        k, cache = shared[r], DynamicCache()
        if k and groups[r] not in prefixes:  # the group's first prompt: embed it whole, prefill its prefix
            e = embeds(p, 0)
            pre = DynamicCache()
            run(e[:, :k], 0, pre)
            prefixes[groups[r]] = layer_kv(pre)
            e = e[:, k:]
        else:  # the prefix is cached (or there is none): only this prompt's own tokens are embedded
            e = embeds(p, k)
        if k:
            g = groups[r]
            for layer, (pk, pv) in enumerate(prefixes[g]):
                cache.update(pk, pv, layer)  # a copy: the prefix stays as it is for the group's next prompt
            left[g] -= 1
            if left[g] == 0:
                del prefixes[g]
        hidden = run(e, k, cache)[:, -1]
        yield r, hidden, layer_kv(cache)
        del cache
