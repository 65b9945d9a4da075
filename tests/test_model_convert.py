"""Conversion and loading: round trips, original-vs-native equivalence, and clear refusals of bad checkpoints."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from holmesvau.model import CheckpointError, convert_checkpoint, load_model
from holmesvau.model.chat import encode_prompt
from holmesvau.model.convert import convert_state_dict, read_original_config
from holmesvau.model.loading import default_dtype, resolve_checkpoint
from holmesvau.model.prompt import build_prompt, video_question
from holmesvau.testing.to_original import to_original_state_dict


def _logits(lm, seed=0):
    g = torch.Generator().manual_seed(seed)
    pv = torch.randn(2, 3, 448, 448, generator=g)
    ids = encode_prompt(lm, build_prompt(video_question("what happened?", 2), [1, 1], num_image_token=256))
    with torch.no_grad():
        return lm.model(input_ids=ids, pixel_values=pv).logits


def test_original_and_native_tiny_agree(tiny_original_dir, tiny_model_dir, tmp_path):
    a = load_model(tiny_original_dir, device="cpu", cache_dir=tmp_path / "cache")
    b = load_model(tiny_model_dir, device="cpu")
    assert torch.allclose(_logits(a), _logits(b), atol=1e-5)
    assert a.random_weights is True and a.path == tiny_original_dir
    # converted in memory: nothing written, no second copy of the weights anywhere in the cache
    assert not (tmp_path / "cache").exists()
    # tools that need a native folder on disk (training, LoRA merging) convert once into the cache
    native = resolve_checkpoint(tiny_original_dir, tmp_path / "cache")
    assert native.parent == tmp_path / "cache" / "converted" and (native / "model.safetensors").is_file()
    assert resolve_checkpoint(tiny_original_dir, tmp_path / "cache") == native


def test_save_load_round_trip_identical_logits(tiny_lm, tmp_path):
    tiny_lm.model.save_pretrained(tmp_path / "copy")
    for f in tiny_lm.path.glob("tokenizer*"):
        shutil.copy(f, tmp_path / "copy")
    again = load_model(tmp_path / "copy", device="cpu")
    assert torch.equal(_logits(tiny_lm), _logits(again))


def test_state_dict_conversion_is_invertible(tiny_original_dir):
    sd = load_file(str(tiny_original_dir / "model.safetensors"))
    cfg = read_original_config(tiny_original_dir)
    back = to_original_state_dict(convert_state_dict(sd, cfg), cfg)
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_native_config_keeps_architecture_facts(tiny_lm):
    cfg = tiny_lm.model.config
    assert cfg.image_seq_length == 256 and tiny_lm.num_image_token == 256
    assert cfg.downsample_ratio == 0.5 and cfg.vision_config.image_size == [448, 448]
    assert cfg.text_config.model_type == "llama" and not cfg.tie_word_embeddings
    assert cfg.text_config.rope_parameters["rope_type"] == "dynamic"
    assert cfg.holmesvau["ps_version"] == "v2"
    assert cfg.image_token_id == tiny_lm.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    gen = json.loads((tiny_lm.path / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tiny_lm.im_end_id


@pytest.fixture
def broken(tiny_original_dir, tmp_path):
    dst = tmp_path / "broken"
    shutil.copytree(tiny_original_dir, dst)
    return dst


def _convert(src, tmp_path):
    return convert_checkpoint(src, tmp_path / "out")


def test_missing_tensor_is_named(broken, tmp_path):
    sd = load_file(str(broken / "model.safetensors"))
    del sd["mlp1.1.weight"]
    save_file(sd, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError, match="lacks 1 tensors.*multi_modal_projector.linear_1.weight"):
        _convert(broken, tmp_path)


def test_wrong_shape_is_named(broken, tmp_path):
    sd = load_file(str(broken / "model.safetensors"))
    sd["vision_model.encoder.layers.0.mlp.fc1.weight"] = torch.zeros(3, 3)
    save_file(sd, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"layer.0.mlp.fc1.weight has shape \(3, 3\)"):
        _convert(broken, tmp_path)


def test_unknown_tensor_is_refused(broken, tmp_path):
    sd = load_file(str(broken / "model.safetensors"))
    sd["something.else"] = torch.zeros(1)
    save_file(sd, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError, match="something.else"):
        _convert(broken, tmp_path)


def test_truncated_safetensors_is_named(broken, tmp_path):
    f = broken / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors: unreadable safetensors"):
        _convert(broken, tmp_path)


def test_missing_tokenizer_is_named(broken, tmp_path):
    (broken / "tokenizer.model").unlink()
    with pytest.raises(CheckpointError, match="missing tokenizer.model"):
        _convert(broken, tmp_path)


def test_unknown_architecture_is_named(broken, tmp_path):
    cfg = json.loads((broken / "config.json").read_text())
    cfg["llm_config"]["architectures"] = ["Qwen2ForCausalLM"]
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="config.json: language model.*Qwen2ForCausalLM"):
        _convert(broken, tmp_path)


def test_failed_conversion_leaves_no_output(broken, tmp_path):
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError):
        _convert(broken, tmp_path)
    assert not (tmp_path / "out").exists()


def test_missing_local_folder_and_offline_hub(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="no such folder"):
        load_model(tmp_path / "nope", device="cpu")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="pass the local folder instead"):
        resolve_checkpoint("someone/NotCached-2B", cache_dir=tmp_path)


def test_default_dtype():
    assert default_dtype("cpu") == torch.float32


def test_cli_convert_and_refusal(tiny_original_dir, tmp_path):
    import subprocess
    import sys

    ok = subprocess.run(
        [sys.executable, "tools/convert_internvl2.py", str(tiny_original_dir), str(tmp_path / "n")],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "n" / "tokenizer.json").is_file() and (tmp_path / "n" / "model.safetensors").is_file()
    bad = subprocess.run(
        [sys.executable, "tools/convert_internvl2.py", str(tmp_path / "missing"), str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "missing: not a folder" in bad.stderr
