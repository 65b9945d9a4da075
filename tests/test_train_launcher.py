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

from internvl_chat.toy import make_toy_data
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


def test_dry_run_multi_gpu_wires_variables(tmp_path):
    env = {
        "DRY_RUN": "1", "GPUS": "2", "NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.1.2.3", "MASTER_PORT": "29999",
        "PER_DEVICE_BATCH_SIZE": "4", "BATCH_SIZE": "64", "MODEL": "my/model", "META": "m.json",
        "OUTPUT_DIR": str(tmp_path / "o u t"), "MAX_STEPS": "7", "ZERO_STAGE": "2", "RESUME": "1",
    }  # fmt: skip
    res = launch(env, "--video_frames", "8")
    assert res.returncode == 0, res.stderr
    cmd = shlex.split(res.stdout.strip().splitlines()[-1])
    assert cmd[:1] == ["torchrun"] and cmd[cmd.index("-m") + 1] == "internvl_chat.train"
    expect = {
        "--nnodes": "2",
        "--node_rank": "1",
        "--master_addr": "10.1.2.3",
        "--master_port": "29999",
        "--nproc_per_node": "2",
        "--model_name_or_path": "my/model",
        "--meta": "m.json",
        "--output_dir": str(tmp_path / "o u t"),
        "--per_device_train_batch_size": "4",
        "--max_steps": "7",
        "--gradient_accumulation_steps": "4",
        "--video_frames": "8",
    }  # 64 = 4 x (2 GPUs x 2 nodes) x 4
    assert {k: flag(cmd, k) for k in expect} == expect
    assert "--resume" in cmd
    ds = Path(flag(cmd, "--deepspeed"))
    assert (
        ds.name == "zero_stage2_config.json" and json.loads(ds.read_text())["zero_optimization"]["stage"] == 2
    )
    assert not (tmp_path / "o u t").exists()  # a dry run creates nothing

    for stage in ("1", "3", "2_offload", "3_offload"):
        out = launch({**env, "ZERO_STAGE": stage}).stdout.strip().splitlines()[-1]
        assert json.loads(Path(flag(shlex.split(out), "--deepspeed")).read_text())["zero_optimization"][
            "stage"
        ] in (1, 2, 3)
    assert "--deepspeed" not in launch({**env, "ZERO_STAGE": "0"}).stdout
    assert launch({**env, "ZERO_STAGE": "9"}).returncode != 0


def test_dry_run_cpu_is_one_process_without_deepspeed():
    res = launch({"DRY_RUN": "1", "GPUS": "0", "BATCH_SIZE": "8", "PER_DEVICE_BATCH_SIZE": "2"})
    assert res.returncode == 0, res.stderr
    cmd = shlex.split(res.stdout.strip().splitlines()[-1])
    assert cmd[:3] == [sys.executable, "-m", "internvl_chat.train"]
    assert "--deepspeed" not in cmd and flag(cmd, "--gradient_accumulation_steps") == "4"
    assert flag(cmd, "--model_name_or_path") == "OpenGVLab/InternVL2-2B"
    assert Path(flag(cmd, "--meta")).is_file()  # the example meta file ships with the repo


def test_global_batch_sets_accumulation(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    *_, targs = parse_args(
        ["--global_batch_size", "512", "--per_device_train_batch_size", "4", "--output_dir", "x"]
    )
    assert targs.gradient_accumulation_steps == 128
    assert targs.learning_rate == 4e-5 and targs.weight_decay == 0.01 and targs.warmup_steps == 0.03
    assert (
        targs.lr_scheduler_type == "cosine" and targs.num_train_epochs == 1 and targs.activation_checkpointing
    )
    assert targs.bf16 == (torch.cuda.is_available() and torch.cuda.is_bf16_supported())


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
