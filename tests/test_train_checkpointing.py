"""Activation checkpointing (the recipe's default) is really on while training, non-reentrant, whichever name the
installed transformers gives the flag (`activation_checkpointing` from 5.23 on, `gradient_checkpointing` before)."""

from __future__ import annotations

import re
import warnings
from types import SimpleNamespace

from transformers import TrainerCallback

from holmesvau.testing.toy_sft import make_toy_data
from internvl_chat.train import main as train_main
from internvl_chat.train import settle_checkpointing


class LayerCheck(TrainerCallback):
    """After a step: for each decoder layer of the language model, (checkpointing on, use_reentrant)."""

    def __init__(self):
        self.seen = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        layers = [m for name, m in model.named_modules() if re.search(r"language_model\.layers\.\d+$", name)]
        self.seen = [
            (bool(getattr(m, "gradient_checkpointing", False)),
             getattr(getattr(m, "_gradient_checkpointing_func", None), "keywords", {}).get("use_reentrant"))
            for m in layers
        ]  # fmt: skip


def _args(meta, model, out, *extra):
    return [
        "--model_name_or_path", str(model), "--meta", str(meta), "--output_dir", str(out),
        "--clip_min_frames", "2", "--clip_max_frames", "2", "--event_frames", "2", "--video_frames", "2",
        "--per_device_train_batch_size", "1", "--max_steps", "1", "--save_steps", "10", "--report_to", "none",
        "--dataloader_num_workers", "0", "--max_seq_length", "1024", *extra,
    ]  # fmt: skip


def test_default_run_checkpoints_every_decoder_layer(tmp_path, tiny_model_dir):
    from transformers import AutoConfig

    layers = AutoConfig.from_pretrained(tiny_model_dir).text_config.num_hidden_layers
    meta = make_toy_data(tmp_path / "data", num_frames=20)
    on, off = LayerCheck(), LayerCheck()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_main(_args(meta, tiny_model_dir, tmp_path / "on"), callbacks=[on])
    assert [str(w.message) for w in caught if "is_gradient_checkpointing" in str(w.message)] == []
    train_main(
        _args(meta, tiny_model_dir, tmp_path / "off", "--activation_checkpointing", "False"), callbacks=[off]
    )
    assert on.seen == [(True, False)] * layers
    assert [c for c, _ in off.seen] == [False] * layers


def test_older_transformers_get_the_flag_under_its_old_name():
    old = SimpleNamespace(
        activation_checkpointing=True, gradient_checkpointing=False, gradient_checkpointing_kwargs=None
    )
    settle_checkpointing(old)
    assert old.gradient_checkpointing is True and old.gradient_checkpointing_kwargs == {
        "use_reentrant": False
    }
    mine = {"use_reentrant": True}
    new = SimpleNamespace(
        activation_checkpointing=True,
        activation_checkpointing_kwargs=mine,
        gradient_checkpointing_kwargs=None,
    )
    settle_checkpointing(new)
    assert new.activation_checkpointing_kwargs is mine  # the user's own kwargs are kept
    off = SimpleNamespace(
        activation_checkpointing=False, gradient_checkpointing=False, gradient_checkpointing_kwargs=None
    )
    settle_checkpointing(off)
    assert off.gradient_checkpointing is False and off.gradient_checkpointing_kwargs is None
