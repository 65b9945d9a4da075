"""HF Trainer pieces: a seeded (length-grouped) sampler, the skipped-sample report, jsonl log and config callbacks."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Sampler
from transformers import Trainer, TrainerCallback
from transformers.trainer_pt_utils import get_length_grouped_indices

from holmesvau.files import atomic_write_json, json_safe
from holmesvau.jsonl import append_jsonl

from .checkpoints import barrier, mark_complete
from .dataset import ProblemLog


class SeededSampler(Sampler[int]):
    """A permutation fixed by (seed, epoch): a resumed run replays the same order and the Trainer skips what was
    done. With `group_size`, indices are grouped by length in mega-batches of that size (less padding)."""

    def __init__(self, lengths: list[int], seed: int, group_size: int | None = None):
        self.lengths = list(lengths)
        self.seed = int(seed)
        self.group_size = group_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.group_size:
            return iter(get_length_grouped_indices(self.lengths, self.group_size, generator=g))
        return iter(torch.randperm(len(self.lengths), generator=g).tolist())


class SFTTrainer(Trainer):
    """Trainer that records the problems each batch carries and samples with `SeededSampler`."""

    def __init__(self, *args, problem_log: ProblemLog | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.problem_log = problem_log if problem_log is not None else ProblemLog()

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        group = None
        if self.args.train_sampling_strategy == "group_by_length":
            group = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return SeededSampler(dataset.lengths, seed, group)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        for p in inputs.pop("problems", None) or ():
            self.problem_log.add(p)
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )


class JsonlLogCallback(TrainerCallback):
    """OUTPUT_DIR/train_log.jsonl: one {"step", "loss", "learning_rate", "epoch", ..., "skipped"} per log."""

    def __init__(self, path: str | Path, problem_log: ProblemLog):
        self.path = Path(path)
        self.problem_log = problem_log

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, **logs, "skipped": self.problem_log.total}
        append_jsonl(self.path, json_safe(record))  # a diverged loss is logged as null


class SaveConfigCallback(TrainerCallback):
    """The resolved run configuration, written beside every checkpoint (and the data problems so far); then the
    checkpoint is marked complete (internvl_chat.checkpoints)."""

    def __init__(self, config: dict, problem_log: ProblemLog):
        self.config = config
        self.problem_log = problem_log

    def on_save(self, args, state, control, **kwargs):
        barrier()  # every rank has written its part of checkpoint-N (optimizer shards, RNG state)
        if not state.is_world_process_zero:
            return
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ckpt.is_dir():
            atomic_write_json(ckpt / "train_config.json", self.config, default=str)
            atomic_write_json(ckpt / "data_problems.json", self.problem_log.summary(), default=str)
            mark_complete(ckpt, state.global_step)  # last: only now may a resumed run start from it
