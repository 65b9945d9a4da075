"""How far the online anomaly curve (sliding window, live mode) is from the offline one (whole video, inference.py).

    python bench/watch_agreement.py                                  # CPU: tiny random InternViT, scorers below
    python bench/watch_agreement.py --device cuda --full-size        # InternViT-300M shapes + the 1024-d fixture scorer
    python bench/watch_agreement.py --device cuda --model path/to/HolmesVAU-2B --scorer path/to/anomaly_scorer.pth

For each clip (default: the real clips in ../shared/videos and a generated 3-minute clip with planted events) the
features of every 16th frame are computed once; the offline curve is the scorer over all of them, the online curve
gives snippet i the score of position -1-delay of the window of the last `window` snippets ending at i + delay,
as holmesvau.live emits it (its OnlineScorer, one snippet at a time; tests/test_live_online.py shows the live path's
features and scores equal these).
Figures per clip: Pearson r, max and mean |online - offline|, and the overlap (IoU over snippets) of the events the
watcher's hysteresis rule (on 0.5, off 0.4, 1 s, 2 s) finds on each curve — plus the same with thresholds taken
from the offline curve's own quantiles (on = 70th, off = 50th percentile), which has events on any curve.
The default window (64) with delay 0 is the headline; a sweep over windows and delays follows.

Scorers. A random URDMU attends over its input in arbitrary ways and gives a near-flat curve, so the default run
also trains a tiny URDMU (64-d input) for a few hundred steps on generated clips with planted "bright" events
(`--train-steps`): its curve has structure that comes from the video. `--full-size` uses InternVL2-2B's vision
shapes with random weights and ../shared/fixtures/ats-original/urdmu_random.pth (the released scorer's layout,
random). With `--model/--scorer` (e.g. HolmesVAU-2B and the released scorer on a GPU) the figures are the real ones.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from holmesvau.ats import URDMU  # noqa: E402
from holmesvau.live import OnlineScorer, Snippet  # noqa: E402
from holmesvau.live.events import EventTracker, Hysteresis  # noqa: E402
from holmesvau.pipeline import score_features  # noqa: E402

SHARED = Path(os.environ.get("HOLMESVAU_SHARED", Path(__file__).resolve().parents[2] / "shared"))
STRIDE = 16


@torch.inference_mode()
def dense_features(video: Path, encode, stride: int = STRIDE) -> tuple[torch.Tensor, np.ndarray, float]:
    from holmesvau.preprocess import frames_to_tiles
    from holmesvau.video import VideoReader, dense_indices

    with VideoReader(video, backend="pyav") as r:
        plan = dense_indices(r.info.num_frames, stride)
        feats = [
            encode(frames_to_tiles(frames)).float().cpu() for _, frames in r.iter_frames(plan, batch_size=16)
        ]
        return torch.cat(feats), np.asarray(plan), r.info.fps


def online_curve(scorer, feats: torch.Tensor, window: int, delay: int) -> np.ndarray:
    """What holmesvau.live.OnlineScorer emits, one snippet at a time (the reference; slow on long clips)."""
    o, out = OnlineScorer(scorer, window, delay), []
    for i, f in enumerate(feats):
        out += o.push(Snippet(i, i, float(i), 0.0, 0.0, None), f)
    out += o.flush()
    return np.asarray([s for _, s in sorted(out, key=lambda x: x[0].index)], dtype=np.float64)


def event_mask(scores: np.ndarray, times: np.ndarray, rule: Hysteresis) -> np.ndarray:
    tr, spans = EventTracker(rule), []
    for t, s in zip(times, scores):
        spans += [
            (x.event.start_s, x.event.end_s) for x in tr.update(float(t), 0.0, float(s)) if x.kind == "closed"
        ]
    last = tr.close(float(times[-1]), 0.0, "end")
    if last is not None:  # open at the end: it covers the last snippet too
        spans.append((last.event.start_s, last.event.end_s + 1e-9))
    return np.array([any(a <= t < b for a, b in spans) for t in times])


def iou(a: np.ndarray, b: np.ndarray) -> float | None:
    union = int((a | b).sum())
    return None if union == 0 else round(float((a & b).sum()) / union, 4)


def compare(off: np.ndarray, on: np.ndarray, times: np.ndarray) -> dict:
    r = float(np.corrcoef(off, on)[0, 1]) if off.std() > 0 and on.std() > 0 else float("nan")
    q_on, q_off = np.quantile(off, 0.7), np.quantile(off, 0.5)
    adaptive = Hysteresis(float(q_on), float(min(q_off, q_on)), 1.0, 2.0)
    return {
        "pearson": round(r, 4),
        "max_abs_diff": round(float(np.abs(off - on).max()), 4),
        "mean_abs_diff": round(float(np.abs(off - on).mean()), 4),
        "offline_std": round(float(off.std()), 4),
        "event_iou": iou(event_mask(off, times, Hysteresis()), event_mask(on, times, Hysteresis())),
        "event_iou_quantile_rule": iou(event_mask(off, times, adaptive), event_mask(on, times, adaptive)),
    }


def train_tiny_scorer(encode, dim: int, steps: int, work: Path, seed: int = 0) -> URDMU:
    """A URDMU trained (snippet-level BCE) to find the planted bright stretches of generated clips."""
    from holmesvau.testing.synthetic import make_video

    rng = np.random.default_rng(seed)
    feats, labels = [], []
    for k in range(6):
        n = 480
        a = int(rng.integers(40, 250))
        b = a + int(rng.integers(40, 120))
        v = make_video(work / f"train{k}.mp4", n, width=160, height=120, bright_ranges=[(a, b)])
        f, idx, _ = dense_features(v, encode, stride=16)
        feats.append(f)
        labels.append(torch.tensor(((idx >= a) & (idx < b)).astype(np.float32)))
    x, y = torch.stack(feats), torch.stack(labels)
    torch.manual_seed(seed)
    model = URDMU(input_size=dim)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        loss = torch.nn.functional.binary_cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"trained tiny scorer: {steps} steps, final BCE {loss.item():.4f}", file=sys.stderr)
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--videos", nargs="*", default=None, help="default: ../shared/videos/*.mp4 + a planted clip"
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full-size", action="store_true")
    ap.add_argument(
        "--model", default=None, help="a HolmesVAU / InternVL2 model (its InternViT makes the features)"
    )
    ap.add_argument("--scorer", default=None, help="anomaly scorer .pth (with --model or --full-size)")
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--train-steps", type=int, default=60)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="watch_agreement_"))
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    from holmesvau.ats.weights import load_scorer

    scorers: dict[str, torch.nn.Module] = {}
    if args.model:
        from holmesvau.live import vit_tile_encoder
        from holmesvau.model import load_model

        lm = load_model(args.model, device=args.device)
        encode, dim = vit_tile_encoder(lm), lm.vision_hidden_size
        scorers["given"] = load_scorer(args.scorer, device=args.device)
    else:
        from holmesvau.testing.planted import vision_encoder

        encode, dim = vision_encoder(args.full_size, args.device, dtype)
        if args.scorer or args.full_size:
            path = args.scorer or SHARED / "fixtures" / "ats-original" / "urdmu_random.pth"
            scorers["fixture" if not args.scorer else "given"] = load_scorer(path, device=args.device)
        else:
            scorers["trained_tiny"] = train_tiny_scorer(encode, dim, args.train_steps, work).to(args.device)
            torch.manual_seed(0)
            scorers["random_tiny"] = URDMU(input_size=dim).to(args.device).eval()
    videos = [Path(v) for v in args.videos] if args.videos else sorted((SHARED / "videos").glob("*.mp4"))
    if not args.videos:
        from holmesvau.testing.synthetic import make_video

        planted = [(int(s * 30), int((s + 12) * 30)) for s in (25, 80, 140)]
        videos.append(
            make_video(work / "planted_3min.mp4", 180 * 30, width=160, height=120, bright_ranges=planted)
        )
    windows, delays = sorted({16, 32, args.window, 128}), [0, 1, 2, 4]
    results: dict = {"window": args.window, "device": args.device, "full_size": args.full_size, "clips": {}}
    for v in videos:
        feats, idx, fps = dense_features(v, encode)
        times = idx / fps
        for name, sc in scorers.items():
            off = score_features(sc, feats).astype(np.float64)
            row = {
                "snippets": len(idx),
                "default": compare(off, online_curve(sc, feats, args.window, 0), times),
            }
            row["sweep"] = {f"w{w}_d{d}": compare(off, online_curve(sc, feats, w, d), times)
                            for w in windows for d in delays if d < w}  # fmt: skip
            results["clips"][f"{v.stem}/{name}"] = row
            d = row["default"]
            print(f"{v.stem:>16} {name:>12} T={len(idx):4d}  window {args.window} delay 0: pearson {d['pearson']:.4f}  "
                  f"max|d| {d['max_abs_diff']:.4f}  event IoU {d['event_iou']}  (quantile rule {d['event_iou_quantile_rule']})"
                  f"  offline std {d['offline_std']:.4f}")  # fmt: skip
            for key in (
                "w16_d0",
                "w32_d0",
                "w128_d0",
                f"w{args.window}_d1",
                f"w{args.window}_d2",
                f"w{args.window}_d4",
            ):
                s = row["sweep"].get(key)
                if s:
                    print(f"{'':>30} {key:>8}: pearson {s['pearson']:.4f}  max|d| {s['max_abs_diff']:.4f}  "
                          f"IoU {s['event_iou']} / {s['event_iou_quantile_rule']}")  # fmt: skip
    print(json.dumps(results))


if __name__ == "__main__":
    main()
