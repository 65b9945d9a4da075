"""holmesvau.preprocess: parity with the original's pixel values; InternVL dynamic tiling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from holmesvau.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_SIZE,
    dynamic_preprocess,
    frames_to_pixel_values,
    image_to_pixel_values,
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


def _grids(max_num):
    return [(c, r) for c in range(1, max_num + 1) for r in range(1, max_num + 1) if c * r <= max_num]


@pytest.mark.parametrize("size_wh", [(448, 448), (1000, 100), (800, 600), (300, 900), (50, 60)])
@pytest.mark.parametrize("max_num", [1, 6])
def test_dynamic_tiling(size_wh, max_num):
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (size_wh[1], size_wh[0], 3), dtype=np.uint8))
    tiles = dynamic_preprocess(image, max_num=max_num, size=448, use_thumbnail=True)
    assert all(t.size == (448, 448) for t in tiles)
    n = len(tiles) - (1 if len(tiles) > 1 else 0)  # grid tiles, without the thumbnail
    cols_rows = [g for g in _grids(max_num) if g[0] * g[1] == n]
    # the chosen grid has the aspect ratio closest to the image's
    best = min(abs(size_wh[0] / size_wh[1] - c / r) for c, r in _grids(max_num))
    grid = next(g for g in cols_rows if abs(size_wh[0] / size_wh[1] - g[0] / g[1]) == best)
    cols, rows = grid
    # the tiles are the crops of the resized image, row-major; the thumbnail is the whole image
    resized = np.asarray(image.resize((448 * cols, 448 * rows), Image.BICUBIC))
    for k in range(cols * rows):
        r, c = divmod(k, cols)
        np.testing.assert_array_equal(
            np.asarray(tiles[k]), resized[r * 448 : (r + 1) * 448, c * 448 : (c + 1) * 448]
        )
    if n > 1:
        np.testing.assert_array_equal(
            np.asarray(tiles[-1]), np.asarray(image.resize((448, 448), Image.BICUBIC))
        )
    pixel_values = image_to_pixel_values(image, max_num=max_num)
    assert pixel_values.shape == (len(tiles), 3, 448, 448)
    expected = frames_to_pixel_values(np.stack([np.asarray(t) for t in tiles]))
    torch.testing.assert_close(pixel_values, expected)


def test_tie_between_grids_prefers_the_larger_only_for_large_images():
    # 2:1 fits both 2x1 and 4x2 (max 12): a 2000x1000 image is large enough for 4x2, a 200x100 one is not
    assert len(dynamic_preprocess(Image.new("RGB", (2000, 1000)), max_num=12)) == 8 + 1
    assert len(dynamic_preprocess(Image.new("RGB", (200, 100)), max_num=12)) == 2 + 1
    assert len(dynamic_preprocess(Image.new("RGB", (448, 448)), max_num=12)) == 1


def test_image_to_pixel_values_from_path(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(np.full((100, 400, 3), 128, dtype=np.uint8)).save(path)
    assert image_to_pixel_values(path, max_num=6).shape == (5, 3, 448, 448)  # 4x1 grid + thumbnail
