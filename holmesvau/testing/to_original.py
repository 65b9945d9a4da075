"""Native InternVL weights back to the ORIGINAL InternVLChatModel layout (the inverse of `convert.py`).

Used to write original-format test checkpoints (`tiny.py`) and to check that conversion loses nothing.
"""

from __future__ import annotations

import re

import torch

from holmesvau.model.convert import _VIT_RENAMES
from holmesvau.model.errors import CheckpointError


def _reverse_rules() -> list[tuple[re.Pattern, str]]:
    rules = []
    for pattern, repl in _VIT_RENAMES:
        rev_pattern = "^" + re.escape(repl).replace(re.escape("\\1"), r"(\d+)")
        if pattern.endswith("$"):
            rev_pattern += "$"
        rev_repl = pattern.lstrip("^").rstrip("$").replace(r"(\d+)", r"\1").replace("\\.", ".")
        rules.append((re.compile(rev_pattern), rev_repl))
    return rules


def to_original_state_dict(native_sd: dict[str, torch.Tensor], orig_cfg: dict) -> dict[str, torch.Tensor]:
    """Inverse of `convert_state_dict` (fuses q/k/v back): used to write original-format test checkpoints and to
    check that conversion loses nothing."""
    t = orig_cfg["llm_config"]
    heads, kv = t["num_attention_heads"], t.get("num_key_value_heads", t["num_attention_heads"])
    head_dim = t["hidden_size"] // heads
    groups = heads // kv
    out: dict[str, torch.Tensor] = {}
    vit_qkv = re.compile(
        r"^model\.vision_tower\.encoder\.layer\.(\d+)\.attention\.([qkv])_proj\.(weight|bias)$"
    )
    llm_qkv = re.compile(r"^model\.language_model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$")
    parts: dict[tuple[str, str, str], dict[str, torch.Tensor]] = {}
    rules = _reverse_rules()
    for key, w in native_sd.items():
        if m := vit_qkv.match(key):
            parts.setdefault(("vit", m[1], m[3]), {})[m[2]] = w
        elif m := llm_qkv.match(key):
            parts.setdefault(("llm", m[1], m[3]), {})[m[2]] = w
        else:
            for pattern, repl in rules:
                new, n = pattern.subn(repl, key)
                if n:
                    out[new] = w
                    break
            else:
                raise CheckpointError(f"native tensor {key} has no original counterpart")
    for (kind, layer, suffix), p in parts.items():
        if kind == "vit":
            out[f"vision_model.encoder.layers.{layer}.attn.qkv.{suffix}"] = torch.cat(
                [p["q"], p["k"], p["v"]]
            )
        else:
            rest = p["q"].shape[1:]
            q = p["q"].reshape(kv, groups, head_dim, *rest)
            k = p["k"].reshape(kv, 1, head_dim, *rest)
            v = p["v"].reshape(kv, 1, head_dim, *rest)
            fused = torch.cat([q, k, v], dim=1).reshape((heads + 2 * kv) * head_dim, *rest)
            out[f"language_model.model.layers.{layer}.attention.wqkv.{suffix}"] = fused
    return out
