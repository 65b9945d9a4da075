"""Batched answering: many questions, each about its own frames, generated together; vision once per frame set.

    from holmesvau.model.batch import AnswerRequest, FrameSet, answer_batch
    frames = FrameSet(tiles=uint8_tiles, key=("robbery.mp4", (0, 39, 79)))   # or pixel_values= / features=
    outs = answer_batch(lm, [AnswerRequest(frames, video_question(p, 3), max_new_tokens=64) for p in prompts], 16)

Prompts are built as `chat()` builds them. Image features are computed once per distinct frame set (`FrameSet.key`,
or the object itself) and scattered into the text embeddings at the `<IMG_CONTEXT>` positions. Requests are sorted
by image tokens, frame set and prompt length and cut into batches. Prompts are prefilled one at a time, a frame set's
shared prefix once (holmesvau.model.prefill), then decoded greedily together in one left-padded cache
(holmesvau.model.kv_cache); a row leaves at `<|im_end|>` or its own `max_new_tokens`. Answers equal one-at-a-time
`chat()` answers token for token while prompts stay under `max_position_embeddings` (InternLM2's dynamic NTK rope
depends on the largest position in a forward). A CUDA out-of-memory error halves the batch and retries; at batch 1
it is raised to the caller.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import torch

from holmesvau.preprocess import normalize_tiles

from .chat import ChatOutput, chat_output, checked_tiles, default_vit_batch, encode_prompt
from .kv_cache import GROW, cache_kwarg, left_padded_cache
from .loading import LoadedModel
from .prefill import prefill_rows
from .prompt import build_prompt

log = logging.getLogger("holmesvau.batch")


@dataclass(eq=False)
class FrameSet:
    """The frames of one question, as one of: uint8 tiles (N, 3, S, S) (normalised on the model's device),
    normalised pixel values (N, 3, S, S), or projected image features (N, tokens per tile, hidden). Frame sets
    sharing a `key` (e.g. (video path, frame indices)) share one vision pass; None: the object is its own identity.
    `tiles_per_image`: tiles of each `<image>` (default one each, as for video frames)."""

    tiles: torch.Tensor | None = None
    pixel_values: torch.Tensor | None = None
    features: torch.Tensor | None = None
    key: Hashable | None = None
    tiles_per_image: Sequence[int] | None = None

    def __post_init__(self) -> None:
        given = [x for x in (self.tiles, self.pixel_values, self.features) if x is not None]
        if len(given) != 1:
            raise ValueError("a FrameSet needs exactly one of tiles, pixel_values or features")
        if self.tiles is not None and self.tiles.dtype != torch.uint8:
            raise ValueError(f"tiles must be uint8, got {self.tiles.dtype} (pass pixel_values= for floats)")

    @property
    def num_tiles(self) -> int:
        return int(next(x for x in (self.tiles, self.pixel_values, self.features) if x is not None).shape[0])

    @property
    def identity(self) -> Hashable:
        return self.key if self.key is not None else ("frameset", id(self))


@dataclass
class AnswerRequest:
    """One question about one frame set (None: text only); `question` as for `chat()` (with `<image>` lines)."""

    frames: FrameSet | None
    question: str
    max_new_tokens: int = 1024
    history: Sequence[tuple[str, str]] | None = None


@dataclass
class BatchStats:
    """What the work cost: generation loops run, tiles through the ViT, prompt tokens prefilled (no padding; a
    prefix shared by the questions of one frame set counted once)."""

    generate_calls: int = 0
    vit_tiles: int = 0
    prefill_tokens: int = 0
    new_tokens: int = 0
    oom_retries: int = 0
    batch_sizes: list[int] = field(default_factory=list)


class FeatureCache:
    """The image features of the last `max_items` frame sets (on the model's device), for reuse across calls."""

    def __init__(self, max_items: int = 8):
        self.max_items, self.items = max_items, OrderedDict()

    def get(self, key: Hashable) -> torch.Tensor | None:
        if key in self.items:
            self.items.move_to_end(key)
        return self.items.get(key)

    def put(self, key: Hashable, features: torch.Tensor) -> None:
        self.items[key] = features
        self.items.move_to_end(key)
        while len(self.items) > self.max_items:
            self.items.popitem(last=False)


def default_batch_size(device: torch.device | str) -> int:
    """16 on a GPU (InternVL2-2B at 12 frames: ~3.3k tokens a row), 4 on the CPU."""
    return 16 if torch.device(device).type == "cuda" else 4


@torch.inference_mode()
def image_features(
    lm: LoadedModel, frames: FrameSet, vit_batch: int | None = None, stats: BatchStats | None = None
) -> torch.Tensor:
    """Projected image features (N, tokens per tile, hidden) of a frame set, on the model's device and dtype."""
    if frames.features is not None:
        return frames.features.to(lm.device, lm.dtype)
    vit_batch = vit_batch or default_vit_batch(lm.device)
    cfg = lm.model.config
    src = frames.tiles if frames.tiles is not None else frames.pixel_values
    out = []
    for start in range(0, src.shape[0], vit_batch):
        chunk = src[start : start + vit_batch]
        if frames.tiles is not None:
            pv = normalize_tiles(chunk, lm.device, lm.dtype)  # uint8 crosses to the device, normalised there
        else:
            pv = chunk.to(lm.device, lm.dtype)
        res = lm.model.model.get_image_features(
            pixel_values=pv,
            vision_feature_layer=cfg.vision_feature_layer,
            vision_feature_select_strategy=cfg.vision_feature_select_strategy,
        )
        out.append(getattr(res, "pooler_output", res))  # a ModelOutput in transformers >= 5.x, else a tensor
        if stats is not None:
            stats.vit_tiles += int(chunk.shape[0])
    return torch.cat(out).to(lm.dtype)


def context_length(lm: LoadedModel) -> int:
    """The language model's context in tokens (max_position_embeddings: 32768 for InternVL2-2B)."""
    return int(getattr(lm.model.config.text_config, "max_position_embeddings", 32768))


def _longest_token(tokenizer) -> int:
    cached = getattr(tokenizer, "_holmesvau_longest_token", None)
    if cached is None:
        cached = max(len(t) for t in tokenizer.get_vocab())
        tokenizer._holmesvau_longest_token = cached
    return cached


def prompt_problem(lm: LoadedModel, question: str, num_tiles: int) -> str | None:
    """Why a question about `num_tiles` frames cannot fit the model's context (None when it fits), decided before
    any model work. A question too long by its characters alone (each token covers at most the vocabulary's
    longest token) is refused without tokenizing it: a 50 MB prompt costs nothing; the rest are counted exactly."""
    room = context_length(lm) - num_tiles * lm.num_image_token
    if len(question) > _longest_token(lm.tokenizer) * room:
        return (
            f"prompt of {len(question):,} characters cannot fit the model's context of {context_length(lm):,} "
            f"tokens with its {num_tiles} frames ({lm.num_image_token} tokens each)"
        )
    tokens = len(lm.tokenizer(build_prompt(question, [1] * num_tiles, None, lm.system_message, 0)).input_ids)
    tokens += num_tiles * lm.num_image_token
    if tokens > context_length(lm):
        return (
            f"prompt of {tokens:,} tokens with its {num_tiles} frames is longer than the model's context of "
            f"{context_length(lm):,} tokens"
        )
    return None


@dataclass
class _Prepared:
    index: int
    prompt: str
    ids: torch.Tensor  # (1, L) on the model's device
    frames: FrameSet | None
    max_new_tokens: int


def _prepare(lm: LoadedModel, i: int, req: AnswerRequest) -> _Prepared:
    n = 0 if req.frames is None else req.frames.num_tiles
    tpi = checked_tiles(req.frames and req.frames.tiles_per_image, n, "the frame set", f"request {i}: ")
    if req.max_new_tokens < 1:
        raise ValueError(f"request {i}: max_new_tokens must be >= 1, got {req.max_new_tokens}")
    prompt = build_prompt(req.question, tpi, req.history, lm.system_message, lm.num_image_token)
    ids = encode_prompt(lm, prompt)
    room = context_length(lm) - ids.shape[1]  # the answer ends where the model's context does
    if room < 1:
        raise ValueError(
            f"request {i}: prompt of {ids.shape[1]:,} tokens leaves no room in the model's context"
        )
    return _Prepared(i, prompt, ids, req.frames, min(int(req.max_new_tokens), room))


def _order(items: list[_Prepared]) -> list[_Prepared]:
    """Image tokens first (they dominate the length), then frame set (its questions together), then length."""
    first_seen: dict[Hashable, int] = {}
    for p in items:
        if p.frames is not None:
            first_seen.setdefault(p.frames.identity, len(first_seen))

    def sort_key(p: _Prepared):
        frame_key = (0, -1) if p.frames is None else (p.frames.num_tiles, first_seen[p.frames.identity])
        return (*frame_key, p.ids.shape[1])

    return sorted(items, key=sort_key)


def _embeds(lm: LoadedModel, p: _Prepared, feats: dict, start: int = 0) -> torch.Tensor:
    """Text embeddings (1, L - start, H) of the prompt from token `start` on, with the frame set's image features
    at the `<IMG_CONTEXT>` positions."""
    ids = p.ids[:, start:]
    e = lm.model.get_input_embeddings()(ids)
    if p.frames is not None:
        f = feats[p.frames.identity].reshape(-1, e.shape[-1])
        is_img = p.ids[0] == lm.image_token_id
        if int(is_img.sum()) != f.shape[0]:
            raise ValueError(f"prompt has {int(is_img.sum())} image tokens but {f.shape[0]} image features")
        before = int(is_img[:start].sum())  # image features already placed in the part not embedded here
        e = e.masked_scatter(is_img[None, start:, None], f[before:].to(e.dtype))
    return e


@torch.inference_mode()
def _generate(lm: LoadedModel, batch: list[_Prepared], feats: dict, stats: BatchStats) -> list[list[int]]:
    """Greedy generation for one batch (see the module docstring); each row's new token ids (with `<|im_end|>` when
    emitted)."""
    model, lang = lm.model, lm.model.model.language_model
    embed, ckw, device = model.get_input_embeddings(), cache_kwarg(lang), lm.device
    out: list[list[int]] = [[] for _ in batch]
    rows: list[tuple[int, list[tuple[torch.Tensor, torch.Tensor]]]] = []  # (row, its cache) still generating
    for r, hidden, kv in prefill_rows(lm, batch, lambda p, start: _embeds(lm, p, feats, start), stats):
        first = int(model.lm_head(hidden).argmax(-1))
        out[r].append(first)
        if first != lm.im_end_id and batch[r].max_new_tokens > 1:
            rows.append((r, kv))
        del kv
    stats.generate_calls += 1
    stats.batch_sizes.append(len(batch))
    stats.new_tokens += len(batch)
    if not rows:
        return out
    # one left-padded cache for the rows still going, decoding in place; the mask is one buffer, viewed a column
    # longer at each step
    lengths = [batch[r].ids.shape[1] for r, _ in rows]
    width, most = max(lengths), max(batch[r].max_new_tokens for r, _ in rows)
    cache = left_padded_cache([kv for _, kv in rows], room=most)
    alive = [r for r, _ in rows]  # batch row of each cache row
    # the mask grows GROW columns at a time, not to max_new_tokens at once (a cap of 1e9 must not allocate it)
    mask = torch.zeros(len(rows), width + min(most, GROW), dtype=torch.long, device=device)
    for j, n in enumerate(lengths):
        mask[j, width - n :] = 1  # the prompt and the room after it
    pos = torch.tensor(lengths, device=device)[:, None]  # the next token's position in each row
    nxt = torch.tensor([out[r][0] for r in alive], device=device)
    step = 1
    while True:
        if width + step > mask.shape[1]:
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], GROW)], dim=1)
        hidden = lang(
            inputs_embeds=embed(nxt[:, None]),
            attention_mask=mask[:, : width + step],
            position_ids=pos,
            use_cache=True,
            **{ckw: cache},
        ).last_hidden_state
        nxt = model.lm_head(hidden[:, -1]).argmax(-1)
        step += 1
        stats.new_tokens += len(alive)
        keep = []  # cache rows still going; the stop test runs on the host: one device sync a step
        for j, (r, t) in enumerate(zip(alive, nxt.tolist())):
            out[r].append(t)
            if t != lm.im_end_id and step < batch[r].max_new_tokens:
                keep.append(j)
        if not keep:
            return out
        if len(keep) < len(alive):  # finished rows leave the batch: drop their cache rows and mask
            idx = torch.tensor(keep, device=device)
            cache.batch_select_indices(idx)
            nxt, mask, pos = nxt[idx], mask[idx], pos[idx]
            alive = [alive[j] for j in keep]
        pos = pos + 1


def answer_batch(
    lm: LoadedModel,
    requests: Sequence[AnswerRequest],
    batch_size: int | None = None,
    cache: FeatureCache | None = None,
    stats: BatchStats | None = None,
    vit_batch: int | None = None,
    progress: bool = False,
) -> list[ChatOutput]:
    """Answer every request (greedy); outputs in the order of `requests`. See the module docstring."""
    from tqdm.auto import tqdm

    stats = stats if stats is not None else BatchStats()
    size = max(1, int(batch_size or default_batch_size(lm.device)))
    prepared = _order([_prepare(lm, i, r) for i, r in enumerate(requests)])
    uses = Counter(p.frames.identity for p in prepared if p.frames is not None)
    feats: dict[Hashable, torch.Tensor] = {}  # features of this call's frame sets, freed after their last use
    results: dict[int, list[int]] = {}
    bar = tqdm(total=len(prepared), desc="answer", unit="question", disable=not progress)
    pos = 0
    while pos < len(prepared):
        batch = prepared[pos : pos + size]
        try:
            for p in batch:
                k = p.frames.identity if p.frames is not None else None
                if k is None or k in feats:
                    continue
                hit = cache.get(k) if cache is not None else None
                feats[k] = hit if hit is not None else image_features(lm, p.frames, vit_batch, stats)
                if cache is not None and hit is None:
                    cache.put(k, feats[k])
            new = _generate(lm, batch, feats, stats)
        except torch.cuda.OutOfMemoryError:  # torch.OutOfMemoryError too: the same class
            if len(batch) == 1:
                raise
            size = max(1, len(batch) // 2)
            stats.oom_retries += 1
            log.warning("CUDA out of memory at batch %d: retrying at batch %d", len(batch), size)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        for p, ids in zip(batch, new):
            results[p.index] = ids
            if p.frames is not None:
                uses[p.frames.identity] -= 1
                if uses[p.frames.identity] == 0:
                    feats.pop(p.frames.identity, None)
        pos += len(batch)
        bar.update(len(batch))
    bar.close()
    outs = []
    for p in sorted(prepared, key=lambda p: p.index):
        req = requests[p.index]
        outs.append(chat_output(lm, p.prompt, p.ids, results[p.index], req.question, req.history))
    return outs
