"""holmesvau.preprocess: parity with the original's pixel values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from holmesvau.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_SIZE,
    frames_to_pixel_values,
)
from holmesvau.video import read_frames


@pytest.fixture
def reference(shared):
    """The reference frames (read with decord, as the original did: the `parity` extra, used by this test only)
    and the original's pixel values."""
    import decord

    root = shared("fixtures/internvl2-original-tiny")
    meta = json.loads((root / "reference.json").read_text())
    vr = decord.VideoReader(str(shared(f"videos/{meta['video']}")), ctx=decord.cpu(0))
    frames = vr.get_batch(meta["frame_indices"]).asnumpy()
    return frames, load_file(str(root / "reference_outputs.safetensors"))["pixel_values"]


def test_our_decoder_gives_the_original_pixel_values(shared, reference):
    """The frames our decoder (PyAV) reads, preprocessed, are the original's pixel values up to colour-conversion
    rounding: dropping decord changes no input the model sees beyond that."""
    root = shared("fixtures/internvl2-original-tiny")
    meta = json.loads((root / "reference.json").read_text())
    frames = read_frames(shared(f"videos/{meta['video']}"), meta["frame_indices"])
    diff = (frames_to_pixel_values(frames, resize="pil") - reference[1]).abs()
    assert diff.mean().item() <= 0.02 and diff.max().item() <= 0.5, (diff.mean(), diff.max())


def test_pil_resize_reproduces_the_original_exactly(reference):
    frames, expected = reference
    got = frames_to_pixel_values(frames, resize="pil")
    assert got.shape == expected.shape == (4, 3, INPUT_SIZE, INPUT_SIZE) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_fast_resize_within_tolerance(reference):
    frames, expected = reference
    diff = (frames_to_pixel_values(frames) - expected).abs()
    assert diff.mean().item() <= 0.005 and diff.max().item() <= 0.2


def test_frames_at_input_size_are_only_normalised():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    expected = ((frames / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(frames_to_pixel_values(frames).numpy(), expected, atol=1e-5)


def test_bad_frames_are_rejected():
    with pytest.raises(ValueError, match="uint8"):
        frames_to_pixel_values(np.zeros((1, 10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="resize"):
        frames_to_pixel_values(np.zeros((1, 10, 10, 3), dtype=np.uint8), resize="nearest")
    assert frames_to_pixel_values(np.zeros((0, 10, 10, 3), dtype=np.uint8)).shape == (0, 3, 448, 448)
