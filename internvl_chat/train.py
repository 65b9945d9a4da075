"""LoRA fine-tuning of InternVL2 (HolmesVAU-2B recipe) on HIVAU-70k-style video instructions.

    python -m internvl_chat.train --model_name_or_path OpenGVLab/InternVL2-2B \
        --meta shell/data/hivau70k_meta.json --output_dir work_dirs/lora --global_batch_size 512
    python -m internvl_chat.train ... --resume            # continue from the newest complete checkpoint-N
    torchrun --nproc_per_node 2 -m internvl_chat.train ... --deepspeed internvl_chat/zero_stage1_config.json

Usually started by `sh shell/internvl2_2b_finetune_lora.sh`. Every HF TrainingArguments flag works (defaults are the
recipe's: lr 4e-5, weight decay 0.01, cosine, warmup 3 %, 1 epoch, gradient checkpointing, length grouping, bf16
when the GPU has it). Writes checkpoint-N/ (adapter + optimizer + train_config.json), train_log.jsonl,
data_problems.json, tensorboard runs/, and the final adapter in output_dir; the last stdout line is a JSON summary.
A checkpoint counts once it is marked complete (internvl_chat/checkpoints.py); --resume without one is an error.
Resuming unpickles the checkpoint's optimizer / RNG / DeepSpeed files (torch.load): resume only your own checkpoints.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import HfArgumentParser, SchedulerType, TrainingArguments, set_seed

from holmesvau.files import atomic_write_json
from holmesvau.model.errors import CheckpointError

from .checkpoints import checkpoints, resume_point
from .data import FrameConfig, MetaError, load_meta
from .dataset import ProblemLog, SFTCollator, VideoSFTDataset
from .trainer import JsonlLogCallback, SaveConfigCallback, SFTTrainer

logger = logging.getLogger("internvl_chat.train")

LORA_TARGETS = r".*\.language_model\..*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def _arg(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class ModelArguments:
    model_name_or_path: str = _arg(
        "OpenGVLab/InternVL2-2B", "hub id or folder (original or converted format)"
    )
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    lora_target_modules: str = _arg(LORA_TARGETS, "regex over module names")
    unfreeze_vision: bool = _arg(False, "train the ViT fully (saved with the adapter)")
    unfreeze_projector: bool = _arg(False, "train the MLP projector fully")
    attn_implementation: str | None = _arg(None, "sdpa | eager | flash_attention_2")


@dataclass
class DataArguments:
    meta: str = _arg("shell/data/hivau70k_meta.json", "meta json naming the datasets")
    max_seq_length: int = 4096
    clip_min_frames: int = 6
    clip_max_frames: int = 12
    event_frames: int = 12
    video_frames: int = 12
    image_size: int = 448


@dataclass
class RunArguments:
    resume: bool = _arg(False, "continue from the newest complete checkpoint in output_dir (none: an error)")
    global_batch_size: int | None = _arg(
        None, "sets gradient accumulation = global / (per-device batch x world size)"
    )


@dataclass
class LoraTrainingArguments(TrainingArguments):
    output_dir: str | None = "work_dirs/internvl2_2b_finetune_lora"
    learning_rate: float = 4e-5
    weight_decay: float = 0.01
    lr_scheduler_type: SchedulerType | str = "cosine"
    warmup_steps: float = 0.03
    num_train_epochs: float = 1.0
    activation_checkpointing: bool | None = True  # (gradient checkpointing)
    logging_steps: float = 1
    save_steps: float = 200
    save_total_limit: int | None = 3
    report_to: None | str | list[str] = "tensorboard"
    remove_unused_columns: bool = False  # the collator's `problems` key must reach the trainer
    train_sampling_strategy: str = "group_by_length"
    dataloader_num_workers: int = 4
    max_grad_norm: float = 1.0


def _prepass(argv: list[str]) -> list[str]:
    """Flags that DeepSpeed's "auto" values depend on are settled before TrainingArguments reads them:
    accumulation from the global batch, and bf16 where the GPU supports it."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--global_batch_size", type=int)
    p.add_argument("--per_device_train_batch_size", type=int, default=8)
    p.add_argument("--bf16", nargs="?", const="True")
    p.add_argument("--fp16", nargs="?", const="True")
    p.add_argument("--dataloader_pin_memory", nargs="?", const="True")
    known, _ = p.parse_known_args(argv)
    argv = list(argv)
    if known.global_batch_size:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        per_step = known.per_device_train_batch_size * world
        accum = max(1, known.global_batch_size // per_step)
        if accum * per_step != known.global_batch_size:
            logger.warning("global batch %d is not a multiple of %d; using %d", known.global_batch_size, per_step,
                           accum * per_step)  # fmt: skip
        argv += ["--gradient_accumulation_steps", str(accum)]
    cuda = torch.cuda.is_available()
    if known.bf16 is None and known.fp16 is None and cuda and torch.cuda.is_bf16_supported():
        argv += ["--bf16", "True"]
    if not cuda and known.dataloader_pin_memory is None:
        argv += ["--dataloader_pin_memory", "False"]
    return argv


def parse_args(argv: list[str]):
    parser = HfArgumentParser((ModelArguments, DataArguments, RunArguments, LoraTrainingArguments))
    return parser.parse_args_into_dataclasses(_prepass(argv))


def build_model(margs: ModelArguments, targs: TrainingArguments):
    """Native InternVL with LoRA on the language model's projections; ViT/projector frozen unless asked."""
    from peft import LoraConfig, get_peft_model
    from transformers import InternVLForConditionalGeneration

    from holmesvau.model.loading import default_attention, resolve_checkpoint
    from holmesvau.model.tokenizer import load_tokenizer

    from .merge import peft_quietly

    path = resolve_checkpoint(margs.model_name_or_path)
    dtype = torch.bfloat16 if targs.bf16 else torch.float32
    model = InternVLForConditionalGeneration.from_pretrained(
        str(path), dtype=dtype, attn_implementation=margs.attn_implementation or default_attention(targs.device),
        local_files_only=True,
    )  # fmt: skip
    model.config.use_cache = False
    model.requires_grad_(False)
    if targs.activation_checkpointing:
        model.enable_input_require_grads()  # checkpointed blocks need an input that requires grad
    to_save = [m for m, on in (("vision_tower", margs.unfreeze_vision), ("multi_modal_projector",
               margs.unfreeze_projector)) if on]  # fmt: skip
    cfg = LoraConfig(
        r=margs.lora_r, lora_alpha=margs.lora_alpha, lora_dropout=margs.lora_dropout,
        target_modules=margs.lora_target_modules, modules_to_save=to_save or None, bias="none",
    )  # fmt: skip
    with peft_quietly():
        model = get_peft_model(model, cfg)
    # what the user passed (hub id or path as typed), not the conversion cache: merge_lora.py reads it back.
    model.peft_config["default"].base_model_name_or_path = margs.model_name_or_path
    return model, load_tokenizer(path), path


def settle_checkpointing(targs: TrainingArguments) -> None:
    """Non-reentrant activation checkpointing when `--activation_checkpointing` (the default); transformers before
    5.23 read only `gradient_checkpointing`, so the flag is carried over there."""
    if not targs.activation_checkpointing:
        return
    no_reentrant = {"use_reentrant": False}
    if hasattr(targs, "activation_checkpointing_kwargs"):
        if targs.activation_checkpointing_kwargs is None:
            targs.activation_checkpointing_kwargs = targs.gradient_checkpointing_kwargs = no_reentrant
    else:
        targs.gradient_checkpointing = True
        if targs.gradient_checkpointing_kwargs is None:
            targs.gradient_checkpointing_kwargs = no_reentrant


def main(argv: list[str] | None = None, callbacks: list | None = None) -> dict:
    """Train; returns the summary also printed as the last stdout line. `callbacks` are extra TrainerCallbacks."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    margs, dargs, rargs, targs = parse_args(sys.argv[1:] if argv is None else argv)
    settle_checkpointing(targs)
    out = Path(targs.output_dir)
    found = checkpoints(out)
    if found and not rargs.resume:
        raise SystemExit(
            f"{out} already holds {found[-1].name}: pass --resume to continue it, or pick a new output_dir"
        )
    # the newest COMPLETE checkpoint; none is an error, never a silent fresh start
    last = str(resume_point(out, rank=int(os.environ.get("RANK", "0")))) if rargs.resume else None

    try:
        specs = load_meta(dargs.meta)
        set_seed(targs.seed)  # LoRA's random init happens before the Trainer seeds anything
        model, tokenizer, model_path = build_model(margs, targs)
    except (MetaError, CheckpointError) as e:
        raise SystemExit(f"error: {e}") from e
    frames = FrameConfig(dargs.clip_min_frames, dargs.clip_max_frames, dargs.event_frames, dargs.video_frames)
    extra = getattr(model.config, "holmesvau", None) or {}
    dataset = VideoSFTDataset(
        specs, tokenizer, frames, num_image_token=int(model.config.image_seq_length),
        system_message=extra.get("system_message"), max_seq_length=dargs.max_seq_length,
        image_size=dargs.image_size, train=True, seed=targs.data_seed if targs.data_seed is not None else targs.seed,
    )  # fmt: skip
    problems = ProblemLog()
    for p in dataset.load_problems:
        problems.add(p)
    if dataset.load_problems:
        logger.warning(
            "skipping %d malformed row(s), first: %s", len(dataset.load_problems), dataset.load_problems[0]
        )
    config = {
        **{name: dataclasses.asdict(a) for name, a in (("model", margs), ("data", dargs), ("run", rargs))},
        "training": targs.to_dict(),
        "resolved_model_path": str(model_path),
        "world_size": targs.world_size,
        "global_batch_size": targs.per_device_train_batch_size
        * targs.world_size
        * targs.gradient_accumulation_steps,
    }
    trainer = SFTTrainer(
        model=model, args=targs, train_dataset=dataset, processing_class=tokenizer,
        data_collator=SFTCollator(tokenizer.pad_token_id), problem_log=problems,
        callbacks=[JsonlLogCallback(out / "train_log.jsonl", problems), SaveConfigCallback(config, problems),
                   *(callbacks or [])],
    )  # fmt: skip
    if trainer.is_world_process_zero():
        model.print_trainable_parameters()
    result = trainer.train(resume_from_checkpoint=last)
    trainer.save_model()
    trainer.save_state()
    summary = {
        "output_dir": str(out),
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "resumed_from": Path(last).name if last else None,
        "data_problems": problems.summary(),
    }
    if trainer.is_world_process_zero():
        atomic_write_json(out / "train_config.json", config, default=str)
        atomic_write_json(out / "data_problems.json", problems.summary(), default=str)
        if problems.total:
            logger.warning("skipped %d sample(s) %s; see %s", problems.total, dict(problems.counts),
                           out / "data_problems.json")  # fmt: skip
        print(json.dumps(summary, default=str))
    return summary


if __name__ == "__main__":
    main()
