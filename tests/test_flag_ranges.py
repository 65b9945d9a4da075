"""Flags are range-checked when parsed (one usage line, exit 2, nothing loaded), and decoding allocates with what
it generates, not with the --max-new-tokens cap (issue 24)."""

from __future__ import annotations

import re

import pytest
import torch

from holmesvau.cli.inference import build_parser as inference_parser
from holmesvau.cli.predict import build_parser as predict_parser

BASE = {
    "inference": (inference_parser, ["--video", "v.mp4"]),
    "predict": (predict_parser, ["--annotations", "a.jsonl"]),
}


def _absent_gpu() -> str:
    """A CUDA device this machine does not have: cuda:N with N = the number of GPUs (cuda with none at all)."""
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return f"cuda:{n}" if n else "cuda"


@pytest.mark.parametrize("tool", list(BASE))
@pytest.mark.parametrize(
    "flag,value,says",
    [
        ("--max-new-tokens", "1000000000", "the model's context is 32768 tokens"),
        ("--max-new-tokens", "3000000000", r"expected an integer in \[1, 32768\]"),
        ("--max-new-tokens", "0", "expected an integer >= 1"),
        ("--select-frames", "100000", "256 tokens a frame must fit"),
        ("--select-frames", "128", r"expected an integer in \[1, 127\]"),
        ("--dense-stride", "10000000", r"expected an integer in \[1, 100000\]"),
        ("--device", "tpu", "unknown device 'tpu': expected cpu, cuda, cuda:N or mps"),
        ("--device", "cpu:0", "unknown device"),
        ("--device", "ABSENT_GPU", "use --device cpu|has \\d+ CUDA GPU"),
    ],
)
def test_flag_out_of_range_is_a_usage_error(tool, flag, value, says, capsys):
    build, base = BASE[tool]
    value = _absent_gpu() if value == "ABSENT_GPU" else value
    with pytest.raises(SystemExit) as e:
        build().parse_args([*base, flag, value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]  # argparse: usage, then one line naming the flag and what is wrong
    assert re.search(f"argument {flag}: .*({says})", last), last


def test_predict_batch_size_is_bounded(capsys):
    with pytest.raises(SystemExit):
        predict_parser().parse_args(["--annotations", "a.jsonl", "--batch-size", "100000000"])
    assert "--batch-size: expected an integer in [1, 1024]" in capsys.readouterr().err


def test_flags_in_range_pass_unchanged():
    a = predict_parser().parse_args(
        ["--annotations", "a", "--max-new-tokens", "32768", "--select-frames", "127", "--device", "CPU"]
    )
    assert (a.max_new_tokens, a.select_frames, a.device) == (32768, 127, "cpu")


def test_decode_mask_grows_with_what_is_generated(tiny_lm, monkeypatch):
    """--max-new-tokens 10**6 used to allocate an int64 mask of rows x (prompt + 10**6) before the first step
    (8.3 GB at 10**9). It now grows GROW columns at a time (8 here, so 40 steps grow it 5 times): stopped after 40
    decode steps, it is never wider than the prompt + 40 + 8 columns."""
    from holmesvau.model import batch
    from holmesvau.model.batch import AnswerRequest, answer_batch
    from holmesvau.model.kv_cache import cache_kwarg

    lang = tiny_lm.model.model.language_model
    widths: list[int] = []

    class Enough(Exception):
        pass

    def spy(module, args, kwargs):
        mask = kwargs.get("attention_mask")
        if mask is not None and kwargs.get("inputs_embeds").shape[1] == 1:  # a decode step
            widths.append(mask.untyped_storage().nbytes() // (mask.element_size() * mask.shape[0]))
            if len(widths) == 40:
                raise Enough

    assert cache_kwarg(lang)  # the decode loop drives this module
    monkeypatch.setattr(batch, "GROW", 8, raising=False)
    handle = lang.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        qs = ["Describe the video.", "Why?"]
        reqs = [AnswerRequest(None, q, 10**6) for q in qs]
        with pytest.raises(Enough):
            answer_batch(tiny_lm, reqs, batch_size=2)
    finally:
        handle.remove()
    prompt = max(
        len(r.input_ids[0]) for r in answer_batch(tiny_lm, [AnswerRequest(None, q, 1) for q in qs], 2)
    )
    assert len(widths) == 40 and prompt + 40 <= max(widths) <= prompt + 40 + 8, (prompt, widths)
