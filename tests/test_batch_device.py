"""The ATS front end sends uint8 tiles to the encoder's device and normalises them there, in its batch size."""

from __future__ import annotations

import numpy as np
import torch

from holmesvau.ats.streaming import extract_dense_features
from holmesvau.model.chat import VitEncoder, default_vit_batch, vit_encoder
from holmesvau.preprocess import IMAGENET_MEAN, IMAGENET_STD, frames_to_tiles
from holmesvau.testing.synthetic import make_video
from holmesvau.video import read_frames


class RecordingEncoder:
    """An encode_fn with the attributes extract_dense_features reads; records what it was given."""

    def __init__(self, device, dtype, batch_size):
        self.device, self.dtype, self.batch_size = torch.device(device), dtype, batch_size
        self.seen: list[torch.Tensor] = []

    def __call__(self, pv: torch.Tensor) -> torch.Tensor:
        self.seen.append(pv)
        return pv.float().mean(dim=(2, 3))  # (B, 3): per-channel means


def test_dense_pass_uses_the_encoders_device_dtype_and_batch(tmp_path):
    video = make_video(tmp_path / "v.mp4", 40, width=96, height=64)
    enc = RecordingEncoder("cpu", torch.float64, 3)
    dense = extract_dense_features(video, enc, stride=4, progress=False)
    assert [b.shape[0] for b in enc.seen] == [3, 3, 3, 1]  # 10 dense frames in the encoder's batch size
    assert all(b.dtype == torch.float64 and b.device.type == "cpu" for b in enc.seen)
    # the oracle: numpy's (x / 255 - mean) / std of the same uint8 tiles
    tiles = frames_to_tiles(read_frames(video, list(range(0, 40, 4)))).numpy().astype(np.float64)
    want = (
        (tiles / 255.0 - np.array(IMAGENET_MEAN)[:, None, None]) / np.array(IMAGENET_STD)[:, None, None]
    ).mean(axis=(2, 3))
    np.testing.assert_allclose(dense.features.numpy(), want, atol=1e-5)


def test_explicit_arguments_win_over_the_encoders(tmp_path):
    video = make_video(tmp_path / "v.mp4", 24, width=64, height=64)
    enc = RecordingEncoder("cpu", torch.float64, 3)
    extract_dense_features(video, enc, stride=4, batch_size=4, dtype=torch.float32, progress=False)
    assert [b.shape[0] for b in enc.seen] == [4, 2]
    assert {b.dtype for b in enc.seen} == {torch.float32}


def test_vit_encoder_carries_the_models_device_and_a_batch_for_it(tiny_lm):
    enc = vit_encoder(tiny_lm)
    assert isinstance(enc, VitEncoder)
    assert (enc.device, enc.dtype, enc.batch_size) == (torch.device("cpu"), torch.float32, 16)
    assert default_vit_batch("cuda") == 64 and vit_encoder(tiny_lm, 8).batch_size == 8
