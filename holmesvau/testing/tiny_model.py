"""A tiny random checkpoint in InternVL2-2B's layout (448 px tiles, 256 tokens each, grouped-query InternLM2 with
dynamic rope) and a real sentencepiece tokenizer: a few hundred kilobytes, for tests and demos; outputs are gibberish.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from holmesvau.model.convert import (
    DEFAULT_SYSTEM_MESSAGE,
    attention_dims,
    convert_checkpoint,
    native_config,
    rename_rules,
)
from holmesvau.model.errors import CheckpointError
from holmesvau.output_guard import StagedOutput, check_destination

USER_DEFINED = "<|plugin|> <|interpreter|> <|action_end|> <|action_start|> <|im_end|> <|im_start|>".split()
ADDED_SPECIALS = "<img> </img> <IMG_CONTEXT> <quad> </quad> <ref> </ref> <box> </box>".split()

# A small corpus in the domain's words, enough for a ~600-piece BPE vocabulary.
_WORDS = (
    "the a an is are was were in on at of to and with from by into near video frame frames clip event scene "
    "man woman person people car road street store shop police fight fighting robbery shooting explosion fire "
    "accident vandalism stealing shoplifting arrest assault abuse burglary normal anomaly anomalies abnormal "
    "there no yes describe description analysis judgement caption what happened why when where who how does "
    "running walking standing holding hitting falling crashing entering leaving black white red blue shirt pants "
    "could you specify events present main subjects actions briefly provide detailed reason because happens "
    "time seconds first then after before during suddenly other another two three several group camera view"
).split()


@dataclass
class TinyConfig:
    vit_hidden: int = 64
    vit_layers: int = 2
    vit_heads: int = 4
    llm_hidden: int = 64
    llm_layers: int = 2
    llm_heads: int = 4
    llm_kv_heads: int = 2
    llm_intermediate: int = 128
    sp_vocab: int = 600
    seed: int = 0
    # model vocabulary; default: the tokenizer's size (larger pads the embedding)
    vocab_size: int | None = None
    dtype: str = "float32"


def internvl2_2b_sizes(seed: int = 0) -> TinyConfig:
    """The real InternVL2-2B shapes (InternViT-300M + InternLM2-1.8B) with random weights: for GPU benchmarks."""
    return TinyConfig(
        vit_hidden=1024,
        vit_layers=24,
        vit_heads=16,
        llm_hidden=2048,
        llm_layers=24,
        llm_heads=16,
        llm_kv_heads=8,
        llm_intermediate=8192,
        seed=seed,
        vocab_size=92553,
        dtype="bfloat16",
    )


def _corpus(seed: int) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    lines = [DEFAULT_SYSTEM_MESSAGE, "Frame1: <image>\nFrame2: <image>", "0123456789 2024 16 12"]
    for _ in range(3000):
        n = int(torch.randint(4, 14, (1,), generator=g, device="cpu"))
        words = [_WORDS[i] for i in torch.randint(len(_WORDS), (n,), generator=g, device="cpu").tolist()]
        lines.append(" ".join(words).capitalize() + ".")
    return lines


def train_sentencepiece(out_file: Path, vocab_size: int = 600, seed: int = 0) -> int:
    """An InternLM2-style sentencepiece BPE (byte fallback, split digits, no dummy prefix, identity normaliser);
    returns its number of pieces."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus(seed)),
        model_writer=buf,
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        user_defined_symbols=USER_DEFINED,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    out_file.write_bytes(buf.getvalue())
    return spm.SentencePieceProcessor(model_proto=buf.getvalue()).get_piece_size()


def _write_tokenizer_files(out: Path, sp_size: int) -> None:
    added = {tok: sp_size + i for i, tok in enumerate(ADDED_SPECIALS)}
    (out / "added_tokens.json").write_text(json.dumps(added, indent=2))
    spec = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
    decoder = {str(i): {"content": c, **spec} for i, c in enumerate(["<unk>", "<s>", "</s>"])}
    decoder.update({str(i): {"content": c, **spec} for c, i in added.items()})
    special_map = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "</s>",
        "unk_token": "<unk>",
        "additional_special_tokens": ADDED_SPECIALS,
    }
    cfg = {
        "added_tokens_decoder": decoder,
        **special_map,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 4096,
        "tokenizer_class": "InternLM2Tokenizer",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2))


def original_config(cfg: TinyConfig, vocab_size: int) -> dict:
    """An InternVLChatModel config.json (the keys the converter reads), tiny sizes."""
    return {
        "architectures": ["InternVLChatModel"],
        "model_type": "internvl_chat",
        "torch_dtype": "float32",
        "template": "internlm2-chat",
        "force_image_size": 448,
        "downsample_ratio": 0.5,
        "ps_version": "v2",
        "select_layer": -1,
        "dynamic_image_size": True,
        "use_thumbnail": True,
        "min_dynamic_patch": 1,
        "max_dynamic_patch": 6,
        "vision_config": {
            "architectures": ["InternVisionModel"],
            "model_type": "intern_vit_6b",
            "hidden_size": cfg.vit_hidden,
            "intermediate_size": 4 * cfg.vit_hidden,
            "num_hidden_layers": cfg.vit_layers,
            "num_attention_heads": cfg.vit_heads,
            "num_channels": 3,
            "patch_size": 14,
            "image_size": 448,
            "hidden_act": "gelu",
            "layer_norm_eps": 1e-6,
            "norm_type": "layer_norm",
            "qkv_bias": True,
            "qk_normalization": False,
        },
        "llm_config": {
            "architectures": ["InternLM2ForCausalLM"],
            "model_type": "internlm2",
            "vocab_size": vocab_size,
            "hidden_size": cfg.llm_hidden,
            "intermediate_size": cfg.llm_intermediate,
            "num_hidden_layers": cfg.llm_layers,
            "num_attention_heads": cfg.llm_heads,
            "num_key_value_heads": cfg.llm_kv_heads,
            "hidden_act": "silu",
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-5,
            "rope_theta": 1000000,
            "rope_scaling": {"type": "dynamic", "factor": 2.0},
            "bias": False,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pad_token_id": 2,
            "tie_word_embeddings": False,
        },
    }


_NATIVE_QKV = re.compile(
    r"^model\.(vision_tower\.encoder\.layer|language_model\.layers)\.(\d+)\.\w+\.([qkv])_proj\.(weight|bias)$"
)


def to_original_state_dict(native_sd: dict[str, torch.Tensor], orig_cfg: dict) -> dict[str, torch.Tensor]:
    """The inverse of holmesvau.model.convert.convert_state_dict (q/k/v fused again): original-format test
    checkpoints, and a check that conversion loses nothing."""
    heads, kv, head_dim = attention_dims(orig_cfg)
    rules = rename_rules(reverse=True)
    out: dict[str, torch.Tensor] = {}
    parts: dict[tuple[str, str, str], dict[str, torch.Tensor]] = {}
    for key, w in native_sd.items():
        if m := _NATIVE_QKV.match(key):
            parts.setdefault((m[1], m[2], m[4]), {})[m[3]] = w
            continue
        new = next((pattern.sub(repl, key) for pattern, repl in rules if pattern.match(key)), None)
        if new is None:
            raise CheckpointError(f"native tensor {key} has no original counterpart")
        out[new] = w
    for (tower, layer, suffix), p in parts.items():
        if tower.startswith("vision"):
            out[f"vision_model.encoder.layers.{layer}.attn.qkv.{suffix}"] = torch.cat(
                [p["q"], p["k"], p["v"]]
            )
            continue
        rest = p["q"].shape[1:]
        q = p["q"].reshape(kv, heads // kv, head_dim, *rest)
        k, v = (p[n].reshape(kv, 1, head_dim, *rest) for n in "kv")
        fused = torch.cat([q, k, v], dim=1).reshape((heads + 2 * kv) * head_dim, *rest)
        out[f"language_model.model.layers.{layer}.attention.wqkv.{suffix}"] = fused
    return out


def make_tiny_checkpoint(
    out: str | Path, format: str = "native", cfg: TinyConfig | None = None, overwrite: bool = False
) -> Path:
    """Write a tiny random checkpoint to `out`: `format="original"` (remote-code layout) or `"native"`.
    `out` must be new, empty, or (with overwrite) an earlier output of ours (holmesvau.output_guard)."""
    from safetensors.torch import save_file
    from transformers import InternVLForConditionalGeneration

    if format not in ("original", "native"):
        raise ValueError(f"format must be 'original' or 'native', got {format!r}")
    cfg = cfg or TinyConfig()
    out = Path(out)
    if format == "original":
        staged = StagedOutput(out, overwrite=overwrite, what="tiny original checkpoint")
        orig_dir = staged.path
    else:
        check_destination(out, overwrite=overwrite)  # refuse before any work
        orig_dir = Path(tempfile.mkdtemp(prefix="holmesvau-tiny-"))
    sp_size = train_sentencepiece(orig_dir / "tokenizer.model", cfg.sp_vocab, cfg.seed)
    _write_tokenizer_files(orig_dir, sp_size)
    ocfg = original_config(cfg, cfg.vocab_size or sp_size + len(ADDED_SPECIALS))
    ocfg["torch_dtype"] = cfg.dtype
    ocfg["holmesvau_random_weights"] = True  # carried into the native config; reports and the demo say so
    (orig_dir / "config.json").write_text(json.dumps(ocfg, indent=2))
    (orig_dir / "generation_config.json").write_text(json.dumps({"do_sample": False}))

    torch.manual_seed(cfg.seed)
    native = InternVLForConditionalGeneration(native_config(ocfg, sp_size + 2, 1, 2, 2))
    with torch.no_grad():  # non-trivial norms and layer scales, so parity tests can catch mix-ups
        for name, p in native.named_parameters():
            if name.endswith(("lambda_1", "lambda_2")) or "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith(("cls_token", "position_embeddings")):
                p.copy_(0.02 * torch.randn_like(p))
    dtype = getattr(torch, cfg.dtype)
    state = {
        k: v.to(dtype).cpu().contiguous()
        for k, v in to_original_state_dict(native.state_dict(), ocfg).items()
    }
    save_file(state, str(orig_dir / "model.safetensors"), metadata={"format": "pt"})
    if format == "original":
        return staged.commit()
    try:
        convert_checkpoint(orig_dir, out, overwrite=overwrite)
    finally:
        shutil.rmtree(orig_dir, ignore_errors=True)
    return out
