"""Kill a run after a checkpoint, resume it, reach the uninterrupted run; merge LoRA and chat with the result."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from holmesvau.testing.toy_sft import make_toy_data
from internvl_chat.merge import MergeError, merge_lora, peft_quietly
from internvl_chat.train import main as train_main

REPO = Path(__file__).resolve().parents[1]


def train_args(meta, model, out, steps, *extra):
    return [
        "--model_name_or_path", str(model), "--meta", str(meta), "--output_dir", str(out),
        "--clip_min_frames", "2", "--clip_max_frames", "2", "--event_frames", "2", "--video_frames", "2",
        "--per_device_train_batch_size", "1", "--max_steps", str(steps), "--save_steps", "2",
        "--learning_rate", "5e-3", "--dataloader_num_workers", "0", "--report_to", "none",
        "--activation_checkpointing", "False", "--max_seq_length", "1024", "--seed", "0", *extra,
    ]  # fmt: skip


class Crash(RuntimeError):
    pass


class CrashAfterSave(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Crash(f"killed after checkpoint-{self.step}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("resume")
    meta = make_toy_data(root / "data", num_frames=20)
    full = root / "full"
    train_main(train_args(meta, tiny_model_dir, full, 4))
    return {"meta": meta, "full": full, "root": root, "model": tiny_model_dir}


def log_losses(out: Path) -> dict[int, float]:
    recs = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if "loss" in r}


def test_kill_resume_matches_uninterrupted(runs):
    out = runs["root"] / "killed"
    with pytest.raises(Crash):
        train_main(train_args(runs["meta"], runs["model"], out, 4), callbacks=[CrashAfterSave(2)])
    assert (out / "checkpoint-2").is_dir() and not (out / "checkpoint-4").exists()
    assert json.loads((out / "checkpoint-2" / "train_config.json").read_text())["model"]["lora_r"] == 64
    with pytest.raises(SystemExit, match="--resume"):  # never silently restarts over a checkpoint
        train_main(train_args(runs["meta"], runs["model"], out, 4))
    summary = train_main(train_args(runs["meta"], runs["model"], out, 4, "--resume"))
    assert summary["resumed_from"] == "checkpoint-2" and summary["global_step"] == 4
    a = load_file(runs["full"] / "checkpoint-4" / "adapter_model.safetensors")
    b = load_file(out / "checkpoint-4" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and any("lora_B" in k for k in a)
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=1e-5, msg=k)
    la, lb = log_losses(runs["full"]), log_losses(out)
    assert sorted(lb) == [1, 2, 3, 4]
    for step in (3, 4):
        assert lb[step] == pytest.approx(la[step], rel=1e-5)


def test_lora_targets_only_language_model(runs):
    keys = load_file(runs["full"] / "adapter_model.safetensors").keys()
    assert keys and all(".language_model." in k for k in keys)
    suffixes = {k.split(".lora_")[0].rsplit(".", 1)[1] for k in keys}
    assert suffixes == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    cfg = json.loads((runs["full"] / "adapter_config.json").read_text())
    assert cfg["r"] == 64 and cfg["lora_alpha"] == 128 and cfg["lora_dropout"] == 0.05
    assert cfg["base_model_name_or_path"] == str(runs["model"])  # as given, for merge_lora


def test_merge_equals_adapter_and_chats(runs, tmp_path):
    from peft import PeftModel
    from transformers import InternVLForConditionalGeneration

    from holmesvau.model import chat, load_model
    from holmesvau.model.tokenizer import load_tokenizer
    from holmesvau.pipeline import HolmesVAU
    from internvl_chat.data import FrameConfig, load_meta
    from internvl_chat.dataset import VideoSFTDataset

    merged_dir = tmp_path / "merged"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = merge_lora(runs["full"], merged_dir)
    assert [str(w.message) for w in caught if "is_gradient_checkpointing" in str(w.message)] == []
    assert summary["adapter"].endswith("checkpoint-4")
    lm = load_model(merged_dir, device="cpu")
    base = InternVLForConditionalGeneration.from_pretrained(str(runs["model"]), dtype=torch.float32)
    base_q = base.model.language_model.layers[0].self_attn.q_proj.weight.clone()
    with peft_quietly():
        adapted = PeftModel.from_pretrained(base, str(runs["full"] / "checkpoint-4")).eval()
    assert not torch.allclose(lm.model.model.language_model.layers[0].self_attn.q_proj.weight, base_q)

    ds = VideoSFTDataset(load_meta(runs["meta"]), load_tokenizer(merged_dir), FrameConfig(2, 2, 2, 2))
    sample = ds[0]
    inputs = {"input_ids": sample["input_ids"][None], "pixel_values": sample["pixel_values"]}
    with torch.no_grad():
        want = adapted(**inputs).logits
        got = lm.model(**inputs).logits
    assert (got - want).abs().max().item() < 1e-4

    # the merged model chats exactly as base + adapter (unmerged, through PEFT) generates greedily
    question = "Frame1: <image>\nFrame2: <image>\nWhat happens?"
    out = chat(lm, sample["pixel_values"], question, max_new_tokens=5)
    with torch.no_grad():
        gen = adapted.generate(
            input_ids=out.input_ids,
            attention_mask=torch.ones_like(out.input_ids),
            pixel_values=sample["pixel_values"],
            max_new_tokens=5,
            do_sample=False,
            eos_token_id=lm.im_end_id,
        )
    want_ids = gen[0, out.input_ids.shape[1] :].tolist()
    assert len(want_ids) >= 1 and out.output_ids == want_ids

    # a recorded base that no longer exists: clear error, and --base overrides it
    moved = tmp_path / "adapter"
    import shutil

    shutil.copytree(runs["full"] / "checkpoint-4", moved)
    cfg = json.loads((moved / "adapter_config.json").read_text())
    (moved / "adapter_config.json").write_text(
        json.dumps({**cfg, "base_model_name_or_path": "gone/nowhere/model"})
    )
    with pytest.raises(MergeError, match="base model 'gone/nowhere/model'"):
        merge_lora(moved, tmp_path / "m2")
    merge_lora(moved, tmp_path / "m2", base=str(runs["model"]))
    assert (
        load_file(tmp_path / "m2" / "model.safetensors").keys()
        == load_file(merged_dir / "model.safetensors").keys()
    )

    # inference.py on the merged folder answers as the merged model does on the same frames
    video = next((runs["meta"].parent / "videos").rglob("*.mp4"))
    res = subprocess.run(
        [sys.executable, str(REPO / "inference.py"), "--video", str(video), "--prompt", "What happens?",
         "--model", str(merged_dir), "--no-ats", "--select-frames", "2", "--max-new-tokens", "4",
         "--output", str(tmp_path / "r.json"), "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["video"]["num_frames"] == 20 and result["sampling"] == "uniform"
    assert result["frame_indices"] == [4, 14]  # InternVL get_index over [0, 19]: int(9.5 / 2 + round(9.5 k))
    answer, _ = HolmesVAU(lm).ask(video, "What happens?", [4, 14], max_new_tokens=4)
    assert result["answer"] == answer


def test_interrupted_checkpoint_is_skipped_on_resume(runs, monkeypatch):
    """Killed while writing checkpoint-4 (weights and optimizer written, RNG and trainer state not): RESUME starts
    from checkpoint-2, the complete one, and ends where the uninterrupted run ends."""
    from internvl_chat.trainer import SFTTrainer

    out = runs["root"] / "killed-while-saving"
    real = SFTTrainer._save_rng_state

    def dies_at_step_4(self, output_dir):
        if self.state.global_step == 4:
            raise Crash("killed while writing checkpoint-4")
        return real(self, output_dir)

    monkeypatch.setattr(SFTTrainer, "_save_rng_state", dies_at_step_4)
    with pytest.raises(Crash):
        train_main(train_args(runs["meta"], runs["model"], out, 4))
    monkeypatch.setattr(SFTTrainer, "_save_rng_state", real)
    half = out / "checkpoint-4"
    assert (half / "adapter_model.safetensors").is_file() and not (half / "trainer_state.json").exists()
    summary = train_main(train_args(runs["meta"], runs["model"], out, 4, "--resume"))
    assert summary["resumed_from"] == "checkpoint-2" and summary["global_step"] == 4
    aside = [p.name for p in out.iterdir() if p.name.startswith("interrupted-checkpoint-4-")]
    assert len(aside) == 1 and (out / aside[0] / "adapter_model.safetensors").is_file()  # kept, not deleted
    a = load_file(runs["full"] / "checkpoint-4" / "adapter_model.safetensors")
    b = load_file(out / "checkpoint-4" / "adapter_model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=1e-5, msg=k)


def test_resume_without_a_complete_checkpoint_is_an_error(runs, tmp_path):
    empty = tmp_path / "empty"
    with pytest.raises(SystemExit, match=r"no complete checkpoint in .*empty.*run without --resume") as e:
        train_main(train_args(runs["meta"], runs["model"], empty, 2, "--resume"))
    assert e.value.code != 0 and not any(empty.glob("checkpoint-*"))
    partial = tmp_path / "partial"
    (partial / "checkpoint-2").mkdir(parents=True)  # no completion marker
    with pytest.raises(SystemExit, match=r"checkpoint-2 is incomplete"):
        train_main(train_args(runs["meta"], runs["model"], partial, 2, "--resume"))
    # through the launcher, as users run it: a non-zero exit and the message, before any model is loaded
    env = {**__import__("os").environ, "GPUS": "0", "RESUME": "1", "OUTPUT_DIR": str(empty)}
    env.update(MODEL=str(tmp_path / "no-model"), META=str(tmp_path / "no-meta.json"), PYTHON=sys.executable)
    res = subprocess.run(
        ["sh", str(REPO / "shell" / "internvl2_2b_finetune_lora.sh")], env=env, capture_output=True, text=True
    )
    assert res.returncode != 0 and "no complete checkpoint" in res.stderr and "Traceback" not in res.stderr
