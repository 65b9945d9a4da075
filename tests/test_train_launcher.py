"""The launcher: a dry run wires every variable through; a real CPU run memorises a toy set (the loss falls)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from holmesvau.testing.toy_sft import make_toy_data
from internvl_chat.train import parse_args

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "shell" / "internvl2_2b_finetune_lora.sh"


def launch(env: dict, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHON": sys.executable, **env}
    return subprocess.run(
        ["sh", str(SCRIPT), *args], env=full, capture_output=True, text=True, timeout=timeout
    )


def flag(cmd: list[str], name: str) -> str:
    return cmd[len(cmd) - 1 - cmd[::-1].index(name) + 1]  # the last occurrence wins, as in argparse


def dry_run(env: dict, *args: str) -> tuple[str, list[str]]:
    """(the summary line, the command) a dry run prints."""
    res = launch({"DRY_RUN": "1", **env}, *args)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    return lines[-2], shlex.split(lines[-1])


def test_dry_run_multi_gpu_is_the_exact_torchrun_command(tmp_path):
    out = str(tmp_path / "o u t")
    env = {
        "GPUS": "2", "NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.1.2.3", "MASTER_PORT": "29999",
        "PER_DEVICE_BATCH_SIZE": "4", "BATCH_SIZE": "64", "MODEL": "my/model", "META": "m.json",
        "OUTPUT_DIR": out, "MAX_STEPS": "7", "ZERO_STAGE": "2", "RESUME": "1",
    }  # fmt: skip
    summary, cmd = dry_run(env, "--video_frames", "8")
    # accumulation by hand: 64 global = 4 per device x (2 GPUs x 2 nodes) x 4
    assert summary == "GPUS=2 NNODES=2 PER_DEVICE_BATCH_SIZE=4 BATCH_SIZE=64 GRADIENT_ACC=4 ZERO_STAGE=2"
    assert cmd == [
        "torchrun", "--nnodes", "2", "--node_rank", "1", "--master_addr", "10.1.2.3", "--master_port", "29999",
        "--nproc_per_node", "2", "-m", "internvl_chat.train",
        "--model_name_or_path", "my/model", "--meta", "m.json", "--output_dir", out,
        "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "4",
        "--save_steps", "200", "--save_total_limit", "3", "--video_frames", "8", "--max_steps", "7", "--resume",
        "--deepspeed", str(REPO / "internvl_chat" / "zero_stage2_config.json"),
    ]  # fmt: skip
    assert not (tmp_path / "o u t").exists()  # a dry run creates nothing


@pytest.mark.parametrize(
    "gpus,nnodes,per_device,batch,accumulation",
    [
        ("8", "1", None, None, 32),  # defaults: 512 / (2 x 8)
        ("4", "2", "2", "512", 32),  # 512 / (2 x 4 x 2)
        ("1", "1", "4", "512", 128),  # 512 / 4
        ("3", "1", "2", "512", 85),  # 512 / 6 = 85.3: rounded down
        ("8", "1", "64", "256", 1),  # 256 / 512 < 1: at least one step
        ("0", "4", "2", "8", 4),  # CPU: one process whatever NNODES says, 8 / 2
    ],
)
def test_accumulation_is_global_batch_over_devices(gpus, nnodes, per_device, batch, accumulation):
    env = {"GPUS": gpus, "NNODES": nnodes}
    env.update({k: v for k, v in (("PER_DEVICE_BATCH_SIZE", per_device), ("BATCH_SIZE", batch)) if v})
    summary, cmd = dry_run(env)
    assert flag(cmd, "--gradient_accumulation_steps") == str(accumulation)
    assert f"GRADIENT_ACC={accumulation} " in summary
    assert flag(cmd, "--per_device_train_batch_size") == (per_device or "2")


@pytest.mark.parametrize(
    "stage,config,offload",
    [("1", "zero_stage1_config.json", None), ("3", "zero_stage3_config.json", None),
     ("2_offload", "zero_stage2_offload_config.json", "cpu"), ("3_offload", "zero_stage3_offload_config.json", "cpu")],
)  # fmt: skip
def test_zero_stage_picks_its_config(stage, config, offload):
    _, cmd = dry_run({"GPUS": "2", "ZERO_STAGE": stage})
    ds = Path(flag(cmd, "--deepspeed"))
    assert ds == REPO / "internvl_chat" / config
    zero = json.loads(ds.read_text())["zero_optimization"]
    assert zero["stage"] == int(stage[0]) and (zero.get("offload_optimizer") or {}).get("device") == offload


def test_zero_stage_0_is_plain_ddp_and_unknown_stage_is_refused():
    _, cmd = dry_run({"GPUS": "2", "ZERO_STAGE": "0"})
    assert "--deepspeed" not in cmd and cmd[:1] == ["torchrun"]
    res = launch({"DRY_RUN": "1", "GPUS": "2", "ZERO_STAGE": "9"})
    assert res.returncode == 2 and "unknown ZERO_STAGE=9" in res.stderr


def test_dry_run_cpu_is_one_process_without_deepspeed():
    _, cmd = dry_run({"GPUS": "0", "BATCH_SIZE": "8", "PER_DEVICE_BATCH_SIZE": "2"})
    assert cmd == [
        sys.executable, "-m", "internvl_chat.train", "--model_name_or_path", "OpenGVLab/InternVL2-2B",
        "--meta", str(REPO / "shell" / "data" / "hivau70k_meta.json"),
        "--output_dir", "work_dirs/internvl2_2b_finetune_lora", "--per_device_train_batch_size", "2",
        "--gradient_accumulation_steps", "4", "--save_steps", "200", "--save_total_limit", "3",
        "--dataloader_num_workers", "0",
    ]  # fmt: skip
    assert Path(flag(cmd, "--meta")).is_file()  # the example meta file ships with the repo


@pytest.mark.parametrize(
    "world,per_device,glob,accumulation", [(1, 4, 512, 128), (8, 2, 512, 32), (2, 3, 100, 16)]
)
def test_global_batch_sets_accumulation(monkeypatch, world, per_device, glob, accumulation):
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    *_, targs = parse_args(
        [
            "--global_batch_size",
            str(glob),
            "--per_device_train_batch_size",
            str(per_device),
            "--output_dir",
            "x",
        ]
    )
    assert targs.gradient_accumulation_steps == accumulation  # glob // (per_device x world), by hand
    assert targs.learning_rate == 4e-5 and targs.weight_decay == 0.01 and targs.warmup_steps == 0.03
    assert (
        targs.lr_scheduler_type == "cosine" and targs.num_train_epochs == 1 and targs.activation_checkpointing
    )
    assert targs.bf16 is False and targs.dataloader_pin_memory is False  # no GPU


def test_bf16_on_gpus_that_support_it(monkeypatch):
    from internvl_chat.train import _prepass

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert _prepass(["--output_dir", "x"]) == ["--output_dir", "x", "--bf16", "True"]
    assert _prepass(["--fp16"]) == ["--fp16"]  # an explicit precision wins
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert _prepass([]) == []


@pytest.fixture
def sharp_model(tiny_model_dir, tmp_path):
    """The tiny model with a 20x larger output head: random logits of the stock one are too flat for a frozen
    head to let the loss fall far, which the memorisation test wants to see."""
    from transformers import InternVLForConditionalGeneration

    model = InternVLForConditionalGeneration.from_pretrained(str(tiny_model_dir))
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
    out = tmp_path / "sharp"
    model.save_pretrained(str(out))
    for f in tiny_model_dir.iterdir():
        if f.name.startswith("tokenizer"):
            shutil.copy2(f, out / f.name)
    return out


def test_cpu_run_through_launcher_memorises(tmp_path, sharp_model):
    meta = make_toy_data(tmp_path / "data", num_frames=16)
    out = tmp_path / "run"
    env = {
        "GPUS": "0",
        "MODEL": str(sharp_model),
        "META": str(meta),
        "OUTPUT_DIR": str(out),
        "MAX_STEPS": "18",
        "BATCH_SIZE": "1",
        "PER_DEVICE_BATCH_SIZE": "1",
        "SAVE_STEPS": "9",
        "SAVE_TOTAL_LIMIT": "1",
    }
    res = launch(
        env,
        "--clip_min_frames",
        "2",
        "--clip_max_frames",
        "2",
        "--event_frames",
        "2",
        "--video_frames",
        "2",
        "--learning_rate",
        "5e-3",
        "--warmup_steps",
        "0",
        "--max_seq_length",
        "1024",
        "--lora_dropout",
        "0",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["global_step"] == 18 and summary["data_problems"]["skipped"] == 0
    logs = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in logs if "loss" in r]
    assert len(losses) == 18 and {"step", "learning_rate", "epoch"} <= logs[0].keys()
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.6 * first, losses
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-18"]  # keeps the last K=1
    config = json.loads((out / "checkpoint-18" / "train_config.json").read_text())
    assert config["model"]["model_name_or_path"] == str(sharp_model) and config["global_batch_size"] == 1
    assert list(out.glob("runs/**/events.out.tfevents.*"))  # tensorboard
