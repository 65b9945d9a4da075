"""Peak memory of the ATS anomaly scorer (URDMU) on day-long videos: 1 h, 8 h and 24 h of 30 fps video scored at
one snippet every 16 frames (6,750 / 54,000 / 162,000 snippets of 1024-d features), each in a fresh subprocess;
and, for comparison, the direct form (both attentions as (n, n) matrices, as UR-DMU computes them) at sizes where it
still fits.

    python bench/scorer_memory.py                              # CPU: 1 h, 8 h, 24 h; direct form at 2k, 4k, 8k
    python bench/scorer_memory.py --device cuda                # GPU: peak allocated CUDA memory too
    python bench/scorer_memory.py --hours 1,8 --direct 4000 --threads 1

Weights: --scorer PATH (default: ../shared/fixtures/ats-original/urdmu_random.pth, the released scorer's layout
and size, when present; otherwise a random init of the same size). Features are random normal (memory and time do
not depend on their values). Per run: peak RSS of the process, RSS before scoring (python + torch + weights +
features), the growth while scoring, and that growth per 1,000 snippets (flat = linear memory); on CUDA also the
peak allocated CUDA memory. Targets: 24 h under 4 GB of peak RSS on the CPU; growth per 1,000 snippets about
constant. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SNIPPETS_PER_HOUR = 3600 * 30 // 16  # 30 fps, one snippet every 16 frames: 6,750


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def default_scorer() -> Path | None:
    root = Path(os.environ.get("HOLMESVAU_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
    path = root / "fixtures/ats-original/urdmu_random.pth"
    return path if path.is_file() else None


def direct_scores(model, x):
    """The direct form: UR-DMU's forward with both attentions as (n, n) matrices (what scorer.py did before)."""
    import torch

    h = model.embedding(x)
    n = h.shape[1]
    pos = torch.arange(1, n + 1, dtype=h.dtype, device=h.device)
    fixed = torch.exp(-(pos[None, :] - pos[:, None]).abs() / math.e)
    fixed = fixed / fixed.sum(-1)
    for attn, ff in model.self_attn.layers:
        a = attn.fn
        q, k, v, t = (a._split(z) for z in a.to_qkv(attn.norm(h)).chunk(4, dim=-1))
        soft = torch.softmax(q @ k.transpose(-1, -2) * a.scale, dim=-1) @ v
        out = torch.cat([soft, fixed @ t], dim=-1).transpose(1, 2).flatten(2)
        h = a.to_out(out) + h
        h = ff(h) + h
    return model._head(h)


def worker(args) -> dict:
    import torch

    from holmesvau.ats import URDMU, load_anomaly_scorer

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = load_anomaly_scorer(args.scorer, device) if args.scorer else URDMU().to(device).eval()
    model.chunk = args.chunk
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.inference_mode():  # warm up kernels on a short input, so their one-off buffers are not counted
        model(torch.randn(1, 200, model.input_dim, device=device, generator=gen))
        x = torch.randn(1, args.snippets, model.input_dim, device=device, generator=gen)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        cuda_before = torch.cuda.memory_allocated()
    before = rss_mb()
    t0 = time.perf_counter()
    with torch.inference_mode():
        scores = direct_scores(model, x) if args.form == "direct" else model(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    rec = {
        "form": args.form,
        "snippets": args.snippets,
        "hours_of_30fps_video": round(args.snippets / SNIPPETS_PER_HOUR, 3),
        "device": str(device),
        "seconds": round(time.perf_counter() - t0, 2),
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "features_mb": round(x.numel() * x.element_size() / 2**20, 1),
        "score_mean": round(float(scores.float().mean()), 6),
    }
    rec["growth_mb"] = round(rec["peak_rss_mb"] - before, 1)
    if device.type == "cuda":
        rec["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        rec["cuda_growth_mb"] = round((torch.cuda.max_memory_allocated() - cuda_before) / 2**20, 1)
    grow = rec["cuda_growth_mb"] if device.type == "cuda" else rec["growth_mb"]
    rec["growth_mb_per_1000_snippets"] = round(grow / args.snippets * 1000, 2)
    return rec


def run(args, form: str, snippets: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--form", form, "--snippets", str(snippets)]
    cmd += ["--device", args.device, "--chunk", str(args.chunk), "--threads", str(args.threads)]
    cmd += ["--scorer", args.scorer] if args.scorer else []
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["killed"])[-1]
        return {"form": form, "snippets": snippets, "failed": f"exit {p.returncode}: {tail}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--hours", default="1,8,24", help="video lengths to score, in hours of 30 fps video")
    ap.add_argument(
        "--direct", default="2000,4000,8000", help="snippet counts for the direct form ('' = none)"
    )
    ap.add_argument(
        "--scorer", default=None, help="scorer checkpoint (default: the shared random one, if any)"
    )
    ap.add_argument("--chunk", type=int, default=4096, help="rows per position-wise step (URDMU.chunk)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--form", default="lean", choices=("lean", "direct"), help=argparse.SUPPRESS)
    ap.add_argument("--snippets", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if args.scorer is None:
        found = default_scorer()
        args.scorer = str(found) if found else None
    print(
        f"scorer: {args.scorer or 'random init (1024-d, released sizes)'}; device {args.device}", flush=True
    )
    runs = []
    direct = [int(n) for n in args.direct.split(",") if n.strip()]
    sizes = [("direct", n) for n in direct] + [("lean", n) for n in direct]  # both forms at equal lengths
    sizes += [("lean", round(float(h) * SNIPPETS_PER_HOUR)) for h in args.hours.split(",") if h.strip()]
    for form, n in sizes:
        rec = run(args, form, n)
        runs.append(rec)
        print(json.dumps(rec), flush=True)
    lean = [r for r in runs if r["form"] == "lean" and "failed" not in r]
    summary = {
        "device": args.device,
        "scorer": args.scorer,
        "peak_rss_mb": {f"{r['form']}_{r['snippets']}": r.get("peak_rss_mb") for r in runs},
        "growth_mb_per_1000_snippets": {
            f"{r['form']}_{r['snippets']}": r.get("growth_mb_per_1000_snippets") for r in runs
        },
        "seconds": {f"{r['form']}_{r['snippets']}": r.get("seconds") for r in runs},
        "failed": {f"{r['form']}_{r['snippets']}": r["failed"] for r in runs if "failed" in r},
    }
    longest = max(lean, key=lambda r: r["snippets"], default=None)
    if longest is not None:
        summary["longest_snippets"] = longest["snippets"]
        summary["longest_peak_rss_mb"] = longest["peak_rss_mb"]
        summary["longest_under_4gb"] = longest["peak_rss_mb"] < 4096
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
