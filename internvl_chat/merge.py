"""Merge a LoRA adapter (from internvl_chat.train) into its base model: a standalone native checkpoint, written
through holmesvau.output_guard (see tools/merge_lora.py for the rules on the output folder)."""

from __future__ import annotations

import json
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from holmesvau.output_guard import StagedOutput, check_destination

from .checkpoints import checkpoints

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "added_tokens.json",
    "chat_template.jinja", "generation_config.json",
)  # fmt: skip
WHAT = "merged LoRA checkpoint"


class MergeError(RuntimeError):
    """Inputs that cannot be merged; the message names the folder and what is missing."""


def find_adapter(path: str | Path) -> Path:
    """The adapter folder to merge: the last checkpoint-N inside `path`, else `path` itself."""
    path = Path(path)
    if not path.is_dir():
        raise MergeError(f"{path}: no such folder")
    ckpts = [p for p in checkpoints(path) if (p / "adapter_config.json").is_file()]
    if ckpts:
        return ckpts[-1]
    if (path / "adapter_config.json").is_file():
        return path
    raise MergeError(
        f"{path}: neither a LoRA adapter (adapter_config.json) nor a run folder with checkpoint-N/"
    )


@contextmanager
def peft_quietly():
    """Silence peft's FutureWarning about transformers' deprecated `is_gradient_checkpointing` (only peft can fix
    it; checkpointing itself is set by internvl_chat.train.settle_checkpointing)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        yield


def merge_lora(
    adapter: str | Path,
    out: str | Path,
    base: str | None = None,
    dtype: str = "auto",
    overwrite: bool = False,
) -> dict:
    """Merge `adapter` (see find_adapter) into `base` (default: the one adapter_config.json records) and save it to
    `out`. MergeError for unusable inputs, OutputError for a refused `out`, both before any model is loaded; returns
    the summary also written to `out`/holmesvau_merge.json."""
    from peft import PeftModel
    from transformers import InternVLForConditionalGeneration

    from holmesvau.model.loading import resolve_checkpoint

    adapter = find_adapter(adapter)
    out = Path(out)
    check_destination(out, [adapter], overwrite, WHAT)  # before resolving (maybe converting) the base
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
    summary = dict(out=str(out), adapter=str(adapter), base=str(base), base_path=str(base_path), dtype=dtype)
    sources = [adapter, base_path] + ([Path(base)] if Path(base).exists() else [])
    # written into a temporary sibling, renamed into place when the block ends without error
    with StagedOutput(out, sources=sources, overwrite=overwrite, what=WHAT) as tmp:
        model = InternVLForConditionalGeneration.from_pretrained(
            str(base_path), dtype=torch.float32, local_files_only=True
        )
        with peft_quietly():
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        if dtype == "auto":
            summary["dtype"] = str(getattr(model.config, "dtype", None) or "float32").replace("torch.", "")
        model.to(getattr(torch, summary["dtype"]))
        model.config.use_cache = True
        model.save_pretrained(str(tmp), safe_serialization=True)
        for name in TOKENIZER_FILES:
            src = base_path / name
            if src.is_file() and not (name == "generation_config.json" and (tmp / name).is_file()):
                shutil.copy2(src, tmp / name)
        (tmp / "holmesvau_merge.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
