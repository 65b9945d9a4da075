"""Convert an original-format InternVL2 / HolmesVAU checkpoint into transformers' native InternVL format.

The original `InternVLChatModel` checkpoints (InternViT + pixel-shuffle MLP + InternLM2) are read straight from the
safetensors (no checkpoint code runs) and renamed/split into `InternVLForConditionalGeneration` with a Llama LM:

- InternViT's fused `attn.qkv` is split into q/k/v; `ls1/ls2` are the layer scales `lambda_1/lambda_2`;
- InternLM2's fused `wqkv` is laid out per key/value group as [q_1..q_g, k, v] (each head_dim rows) and is split
  accordingly for grouped-query attention;
- `mlp1` (LayerNorm, Linear, GELU, Linear) is the multi-modal projector.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from .errors import CheckpointError
from .tokenizer import IM_END, IMG_CONTEXT, build_fast_tokenizer, save_native_tokenizer

# InternVL2's chat() system message (internlm2-chat template); HolmesVAU keeps it for training and inference.
DEFAULT_SYSTEM_MESSAGE = "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"


def is_original_checkpoint(path: str | Path) -> bool:
    try:
        data = _config_json(Path(path))
    except CheckpointError:
        return False
    return (
        "InternVLChatModel" in (data.get("architectures") or []) or data.get("model_type") == "internvl_chat"
    )


def _config_json(src: Path) -> dict:
    cfg_file = src / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{src}: no config.json")
    try:
        return json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_file}: not valid JSON ({e})") from e


def read_original_config(src: Path) -> dict:
    cfg_file = src / "config.json"
    cfg = _config_json(src)
    arch = cfg.get("architectures") or []
    if "InternVLChatModel" not in arch:
        raise CheckpointError(f"{cfg_file}: unknown architecture {arch}; expected InternVLChatModel")
    llm_arch = (cfg.get("llm_config") or {}).get("architectures") or []
    if "InternLM2ForCausalLM" not in llm_arch:
        raise CheckpointError(
            f"{cfg_file}: language model {llm_arch} is not supported; expected InternLM2ForCausalLM"
        )
    if cfg.get("ps_version", "v2") != "v2":
        raise CheckpointError(
            f"{cfg_file}: ps_version {cfg.get('ps_version')!r} unsupported (native InternVL is v2)"
        )
    if cfg.get("select_layer", -1) != -1:
        raise CheckpointError(f"{cfg_file}: select_layer {cfg['select_layer']} unsupported (only -1)")
    return cfg


def native_config(orig: dict, image_token_id: int, bos_id: int, eos_id: int, pad_id: int):
    """The transformers InternVLConfig equivalent to an original InternVLChatConfig dict."""
    from transformers import InternVLConfig, InternVLVisionConfig, LlamaConfig

    v, t = orig["vision_config"], orig["llm_config"]
    image_size = orig.get("force_image_size") or v["image_size"]
    patch = v["patch_size"]
    ratio = orig.get("downsample_ratio", 0.5)
    vision = InternVLVisionConfig(
        hidden_size=v["hidden_size"],
        intermediate_size=v["intermediate_size"],
        num_hidden_layers=v["num_hidden_layers"],
        num_attention_heads=v["num_attention_heads"],
        num_channels=v.get("num_channels", 3),
        image_size=[image_size, image_size],
        patch_size=[patch, patch],
        hidden_act=v.get("hidden_act", "gelu"),
        layer_norm_eps=v.get("layer_norm_eps", 1e-6),
        norm_type=v.get("norm_type", "layer_norm"),
        attention_bias=v.get("qkv_bias", True),
        use_qk_norm=v.get("qk_normalization", False),
        use_absolute_position_embeddings=True,
        use_mean_pooling=True,  # InternViT has no final norm: last_hidden_state is the last block's output
        use_mask_token=False,
        attention_dropout=0.0,
        projection_dropout=0.0,
        hidden_dropout_prob=0.0,
    )
    heads = t["num_attention_heads"]
    rope = {"rope_type": "default", "rope_theta": float(t.get("rope_theta", 10000.0))}
    scaling = t.get("rope_scaling")
    if scaling:
        kind = scaling.get("type") or scaling.get("rope_type")
        if kind not in ("dynamic", "linear"):
            raise CheckpointError(f"llm_config.rope_scaling type {kind!r} unsupported")
        rope.update(rope_type=kind, factor=float(scaling["factor"]))
    text = LlamaConfig(
        vocab_size=t["vocab_size"],
        hidden_size=t["hidden_size"],
        intermediate_size=t["intermediate_size"],
        num_hidden_layers=t["num_hidden_layers"],
        num_attention_heads=heads,
        num_key_value_heads=t.get("num_key_value_heads", heads),
        head_dim=t["hidden_size"] // heads,
        hidden_act=t.get("hidden_act", "silu"),
        max_position_embeddings=t.get("max_position_embeddings", 32768),
        rms_norm_eps=t.get("rms_norm_eps", 1e-6),
        rope_parameters=rope,
        attention_bias=t.get("bias", False),
        mlp_bias=False,
        tie_word_embeddings=False,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    num_tokens = int((image_size // patch) ** 2 * ratio**2)
    config = InternVLConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_id=image_token_id,
        image_seq_length=num_tokens,
        downsample_ratio=ratio,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",  # drop CLS before the pixel shuffle, as the original
        tie_word_embeddings=False,
    )
    # carried over for the prompt builder and for anyone converting back
    config.holmesvau = {
        "template": orig.get("template", "internlm2-chat"),
        "ps_version": orig.get("ps_version", "v2"),
        "force_image_size": image_size,
        "num_image_token": num_tokens,
        "dynamic_image_size": orig.get("dynamic_image_size", True),
        "use_thumbnail": orig.get("use_thumbnail", True),
        "min_dynamic_patch": orig.get("min_dynamic_patch", 1),
        "max_dynamic_patch": orig.get("max_dynamic_patch", 6),
        "system_message": DEFAULT_SYSTEM_MESSAGE,
        "converted_from": "InternVLChatModel",
    }
    if orig.get("holmesvau_random_weights"):  # made by holmesvau.testing: say so wherever it is used
        config.holmesvau["random_weights"] = True
    return config


def load_original_state_dict(src: Path) -> dict[str, torch.Tensor]:
    """All tensors of a single or sharded safetensors checkpoint (never pickles, never code)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    index = src / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (src / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise CheckpointError(f"{src}: no model.safetensors or model.safetensors.index.json")
    state: dict[str, torch.Tensor] = {}
    for name in files:
        f = src / name
        if not f.is_file():
            raise CheckpointError(f"{f}: shard named in the index is missing")
        try:
            state.update(load_file(str(f)))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{f}: unreadable safetensors ({e})") from e
    return state


_VIT = ("vision_model.encoder.layers.{i}.", "model.vision_tower.encoder.layer.{i}.")
_LLM = ("language_model.model.layers.{i}.", "model.language_model.layers.{i}.")
# (original name, native name); "{i}" is a layer number, a name ending in "." a prefix, any other a whole name
RENAMES = [
    ("vision_model.embeddings.class_embedding", "model.vision_tower.embeddings.cls_token"),
    ("vision_model.embeddings.position_embedding", "model.vision_tower.embeddings.position_embeddings"),
    (
        "vision_model.embeddings.patch_embedding.",
        "model.vision_tower.embeddings.patch_embeddings.projection.",
    ),
    *[
        (_VIT[0] + orig, _VIT[1] + native)
        for orig, native in [
            ("attn.proj.", "attention.projection_layer."),
            ("attn.q_norm.", "attention.q_norm."),
            ("attn.k_norm.", "attention.k_norm."),
            ("ls1", "lambda_1"),
            ("ls2", "lambda_2"),
            ("mlp.", "mlp."),
            ("norm1.", "layernorm_before."),
            ("norm2.", "layernorm_after."),
        ]
    ],
    ("mlp1.0.", "model.multi_modal_projector.layer_norm."),
    ("mlp1.1.", "model.multi_modal_projector.linear_1."),
    ("mlp1.3.", "model.multi_modal_projector.linear_2."),
    ("language_model.model.tok_embeddings.", "model.language_model.embed_tokens."),
    ("language_model.model.norm.", "model.language_model.norm."),
    ("language_model.output.", "lm_head."),
    *[
        (_LLM[0] + orig, _LLM[1] + native)
        for orig, native in [
            ("attention.wo.", "self_attn.o_proj."),
            ("feed_forward.w1.", "mlp.gate_proj."),
            ("feed_forward.w3.", "mlp.up_proj."),
            ("feed_forward.w2.", "mlp.down_proj."),
            ("attention_norm.", "input_layernorm."),
            ("ffn_norm.", "post_attention_layernorm."),
        ]
    ],
]


def _pattern(name: str, tail: str = "") -> re.Pattern:
    body = re.escape(name).replace(re.escape("{i}"), r"(\d+)")
    return re.compile("^" + body + (tail if name.endswith(".") else "$"))


def rename_rules(reverse: bool = False) -> list[tuple[re.Pattern, str]]:
    """(pattern, replacement) per RENAMES entry: original -> native names, or native -> original."""
    pairs = [(b, a) if reverse else (a, b) for a, b in RENAMES]
    return [(_pattern(src), dst.replace("{i}", r"\1")) for src, dst in pairs]


# the fused q/k/v tensors: InternViT's `attn.qkv` and InternLM2's `attention.wqkv`
_VIT_QKV = _pattern(_VIT[0] + "attn.qkv.", r"(weight|bias)$")
_LLM_WQKV = _pattern(_LLM[0] + "attention.wqkv.", r"(weight|bias)$")


def attention_dims(orig_cfg: dict) -> tuple[int, int, int]:
    """(heads, key/value heads, head dim) of the language model."""
    t = orig_cfg["llm_config"]
    heads = t["num_attention_heads"]
    return heads, t.get("num_key_value_heads", heads), t["hidden_size"] // heads


def _split_wqkv(w: torch.Tensor, heads: int, kv_heads: int, head_dim: int) -> tuple[torch.Tensor, ...]:
    groups = heads // kv_heads
    rest = w.shape[1:]
    w = w.reshape(kv_heads, groups + 2, head_dim, *rest)
    q = w[:, :groups].reshape(heads * head_dim, *rest)
    k = w[:, groups].reshape(kv_heads * head_dim, *rest)
    v = w[:, groups + 1].reshape(kv_heads * head_dim, *rest)
    return q, k, v


def convert_state_dict(orig_sd: dict[str, torch.Tensor], orig_cfg: dict) -> dict[str, torch.Tensor]:
    """Rename/split original tensors into native InternVL names. Unknown keys are an error, not silently dropped."""
    heads, kv, head_dim = attention_dims(orig_cfg)
    rules = rename_rules()
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, w in orig_sd.items():
        if m := _VIT_QKV.match(key):
            prefix, parts = _VIT[1].format(i=m[1]) + "attention", w.chunk(3, dim=0)
        elif m := _LLM_WQKV.match(key):
            expected = (heads + 2 * kv) * head_dim
            if w.shape[0] != expected:
                raise CheckpointError(f"{key}: shape {tuple(w.shape)}, expected first dim {expected}")
            prefix, parts = _LLM[1].format(i=m[1]) + "self_attn", _split_wqkv(w, heads, kv, head_dim)
        else:
            new = next((pattern.sub(repl, key) for pattern, repl in rules if pattern.match(key)), None)
            if new is None:
                unknown.append(key)
            else:
                out[new] = w
            continue
        for name, part in zip("qkv", parts):
            out[f"{prefix}.{name}_proj.{m[2]}"] = part.contiguous()
    if unknown:
        raise CheckpointError(
            f"unexpected tensors in checkpoint (not an InternVL2/InternLM2 layout?): {unknown[:5]}"
        )
    return out


def build_native_model(src: str | Path, dtype: torch.dtype | None = None):
    """(model, tokenizer_special) of an original checkpoint folder, in memory; the tokenizer is built on save."""
    from transformers import InternVLForConditionalGeneration

    src = Path(src)
    if not src.is_dir():
        raise CheckpointError(f"{src}: not a folder")
    orig_cfg = read_original_config(src)
    tok, special = build_fast_tokenizer(src)
    img_id = tok.token_to_id(IMG_CONTEXT)
    if img_id is None:
        raise CheckpointError(f"{src}: tokenizer has no {IMG_CONTEXT} token")
    bos, eos, pad = (tok.token_to_id(special[k]) for k in ("bos_token", "eos_token", "pad_token"))
    config = native_config(orig_cfg, img_id, bos, eos, pad)
    vocab = orig_cfg["llm_config"]["vocab_size"]
    if vocab < tok.get_vocab_size():
        raise CheckpointError(f"{src}: tokenizer has {tok.get_vocab_size()} tokens, model only {vocab}")
    state = convert_state_dict(load_original_state_dict(src), orig_cfg)
    with torch.device("meta"):
        model = InternVLForConditionalGeneration(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise CheckpointError(f"{src}: checkpoint lacks {len(missing)} tensors, e.g. {missing[0]}")
    for k, w in state.items():
        if k not in expected:
            raise CheckpointError(f"{src}: tensor {k} has no place in the native model")
        if tuple(w.shape) != tuple(expected[k].shape):
            raise CheckpointError(
                f"{src}: tensor for {k} has shape {tuple(w.shape)}, the config implies {tuple(expected[k].shape)}"
            )
    if dtype is None:
        name = orig_cfg.get("torch_dtype") or orig_cfg["llm_config"].get("torch_dtype") or "float32"
        dtype = getattr(torch, str(name).replace("torch.", ""), torch.float32)
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, assign=True, strict=True)
    model.eval()
    return model, tok


def convert_checkpoint(
    src: str | Path, dst: str | Path, dtype: torch.dtype | None = None, overwrite: bool = False
) -> Path:
    """Convert `src` (original format) into `dst` (native): weights, config, generation config, tokenizer.
    `dst` must be new, empty, or (with overwrite) an earlier output of ours (holmesvau.output_guard)."""
    from transformers import GenerationConfig

    from holmesvau.output_guard import StagedOutput

    src, dst = Path(src), Path(dst)
    staged = StagedOutput(dst, sources=[src], overwrite=overwrite, what="converted checkpoint")
    model, tok = build_native_model(src, dtype)
    orig_cfg = read_original_config(src)
    tmp, text = staged.path, model.config.text_config
    model.save_pretrained(str(tmp), safe_serialization=True)
    save_native_tokenizer(src, tmp, DEFAULT_SYSTEM_MESSAGE)
    im_end = tok.token_to_id(IM_END)
    GenerationConfig(
        eos_token_id=im_end if im_end is not None else text.eos_token_id,
        pad_token_id=text.pad_token_id,
        bos_token_id=text.bos_token_id,
        do_sample=False,
        max_new_tokens=1024,
    ).save_pretrained(str(tmp))
    (tmp / "holmesvau_conversion.json").write_text(
        json.dumps({"source": src.name, "source_architecture": orig_cfg["architectures"]}, indent=2)
    )
    return staged.commit()
