"""Merge a LoRA adapter (from internvl_chat.train) into its base model: a standalone native checkpoint.

    python tools/merge_lora.py work_dirs/internvl2_2b_finetune_lora HolmesVAU-2B-mine     # last checkpoint-N
    python tools/merge_lora.py work_dirs/.../checkpoint-400 OUT --base path/to/InternVL2-2B
    python tools/merge_lora.py RUN OUT --dtype bfloat16

The first argument is a training output folder (its last checkpoint-N is taken; the final adapter at its top when
it has no checkpoint) or one checkpoint/adapter folder. The base model is the one recorded in adapter_config.json
(as it was given to training: hub id or path) unless --base says otherwise. OUT gets weights (safetensors),
config, generation config and tokenizer: `holmesvau.model.load_model(OUT)` and inference.py load it directly.
The last stdout line is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import torch

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "added_tokens.json",
    "chat_template.jinja", "generation_config.json",
)  # fmt: skip


class MergeError(RuntimeError):
    """Inputs that cannot be merged; the message names the folder and what is missing."""


def find_adapter(path: str | Path) -> Path:
    """The adapter folder to merge: the last checkpoint-N inside `path`, else `path` itself."""
    path = Path(path)
    if not path.is_dir():
        raise MergeError(f"{path}: no such folder")
    ckpts = [p for p in path.iterdir() if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)]
    ckpts = [p for p in ckpts if (p / "adapter_config.json").is_file()]
    if ckpts:
        return max(ckpts, key=lambda p: int(p.name.split("-")[1]))
    if (path / "adapter_config.json").is_file():
        return path
    raise MergeError(
        f"{path}: neither a LoRA adapter (adapter_config.json) nor a run folder with checkpoint-N/"
    )


def merge(adapter: str | Path, out: str | Path, base: str | None = None, dtype: str = "auto") -> dict:
    from peft import PeftModel
    from transformers import InternVLForConditionalGeneration

    from holmesvau.model.loading import resolve_checkpoint

    adapter = find_adapter(adapter)
    recorded = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    base = base or recorded
    if not base:
        raise MergeError(f"{adapter}/adapter_config.json records no base model; pass --base")
    try:
        base_path = resolve_checkpoint(base)
    except Exception as e:
        raise MergeError(
            f"base model {base!r} (from {'--base' if base != recorded else adapter}): {e}"
        ) from e
    model = InternVLForConditionalGeneration.from_pretrained(
        str(base_path), dtype=torch.float32, local_files_only=True
    )
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    if dtype == "auto":
        dtype = str(getattr(model.config, "dtype", None) or "float32").replace("torch.", "")
    model.to(getattr(torch, dtype))
    model.config.use_cache = True
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    for name in TOKENIZER_FILES:
        src = base_path / name
        if src.is_file() and not (name == "generation_config.json" and (out / name).is_file()):
            shutil.copy2(src, out / name)
    summary = {
        "out": str(out),
        "adapter": str(adapter),
        "base": str(base),
        "base_path": str(base_path),
        "dtype": dtype,
    }
    (out / "holmesvau_merge.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("adapter", help="training output folder (last checkpoint-N is used) or an adapter folder")
    ap.add_argument("out", help="folder for the merged checkpoint")
    ap.add_argument("--base", help="base model (hub id or folder); default: the one the adapter records")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    args = ap.parse_args(argv)
    try:
        summary = merge(args.adapter, args.out, args.base, args.dtype)
    except MergeError as e:
        sys.exit(f"error: {e}")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
