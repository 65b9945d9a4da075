"""End to end against the ORIGINAL code's output: converted tiny checkpoint + car_accident.mp4 -> same response."""

import json

import pytest
from safetensors.torch import load_file

from holmesvau.frame_plan import SamplingConfig
from holmesvau.model import load_model
from holmesvau.pipeline import HolmesVAU

_LOADED: dict = {}  # the converted model, loaded once for the module's tests


@pytest.fixture
def ref(shared, tmp_path_factory):
    root = shared("fixtures/internvl2-original-tiny")
    if root not in _LOADED:
        data = json.loads((root / "reference.json").read_text())
        lm = load_model(root / "checkpoint", device="cpu", cache_dir=tmp_path_factory.mktemp("converted"))
        outputs = load_file(str(root / "reference_outputs.safetensors"))
        _LOADED[root] = data, lm, shared("videos") / data["video"], outputs
    return _LOADED[root]


@pytest.mark.parametrize("resize", ["torch", "pil"])
def test_analyze_reproduces_reference_response(ref, resize):
    data, lm, video, _ = ref
    prompt = data["question"].rsplit("\n", 1)[1]
    result = HolmesVAU(lm, resize=resize).analyze(
        video, prompt, SamplingConfig(frame_indices=data["frame_indices"]), max_new_tokens=12, progress=False
    )
    assert result.prompt == data["question"]
    assert result.answer == data["response"]
    assert result.sampling == "given"
    assert result.frame_indices == data["frame_indices"]
    fps = result.video["fps"]
    assert fps == 30.0 and result.timestamps_s == [0.0, 1.3, 2.633, 3.967]  # frames 0, 39, 79, 119
    assert result.dense_scores is None and result.dense_frame_indices is None
    assert {"decode", "preprocess", "generate"} <= set(result.timings)
    d = result.to_dict()
    assert json.loads(json.dumps(d)) == d  # serialisable as is, no value changed


def test_ask_returns_reference_tokens(ref):
    data, lm, video, outputs = ref
    prompt = data["question"].rsplit("\n", 1)[1]
    answer, out = HolmesVAU(lm).ask(video, prompt, data["frame_indices"], max_new_tokens=12)
    assert answer == data["response"]
    assert (
        out.output_ids == outputs["generate_output"][0, 1:].tolist()
    )  # the original's: bos, then new tokens
    assert (
        out.input_ids.cpu().tolist() == outputs["input_ids"].tolist()
    )  # the original's prompt ids, all 1171
