"""Time and peak memory of the ATS anomaly scorer (URDMU) at each length, in one run on the same weights: ours (the
form it picks: direct while it fits its memory budget, lean beyond), ours forced lean, UR-DMU's direct form (both
attentions as (n, n) matrices, written out below) and, optionally, the scorer of earlier commits; plus one training
step (forward_train + UR-DMU's loss + backward), and day-long videos (peak memory only).

    python bench/scorer_memory.py                                    # T = 171,750,2000,4000,16000; train 750 x 8
    python bench/scorer_memory.py --baseline 3385705 --baseline 842bc84   # + those commits' scorers (git show)
    python bench/scorer_memory.py --smoke                            # seconds: T = 300,1200; train 100 x 2
    python bench/scorer_memory.py --lengths '' --train '' --hours 1,24   # day-long videos: peak RSS, ours only
    python bench/scorer_memory.py --device cuda --threads 8

Weights: --scorer PATH (default: ../shared/fixtures/ats-original/urdmu_random.pth, the released scorer's layout and
size, when present; otherwise a random init of the same size); features random normal, seed 0. Time: the fastest of
--rounds calls after one warm-up, the forms interleaved round by round (ratios within one run are what to read on
a shared machine), as wall time and as this process's CPU time. Peak memory: growth of resident memory over one
call (the peak is reset before it, glibc's free memory trimmed); on CUDA peak allocated memory. A quadratic form is
skipped where it would need more than --quadratic-max-mb. Every form's scores are compared with the direct form's
(max |diff|). Targets (docs/ats-scorer.md): ours <= 0.95x the direct form up to 750 snippets, no slower than
842bc84 from 2,000 on, the training step no slower than at 3385705; 24 h of video under 4 GB. Last line: JSON.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from holmesvau.ats import URDMU, load_anomaly_scorer  # noqa: E402
from holmesvau.ats.attention import DualAttention  # noqa: E402

SNIPPETS_PER_HOUR = 3600 * 30 // 16  # 30 fps, one snippet every 16 frames: 6,750
REPO = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak(device: torch.device) -> float:
    """Trim glibc's free memory, reset the peak RSS (VmHWM) to the current one; returns the current RSS (MB)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    return rss_mb()


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM"))


def quadratic_attention(self: DualAttention, x: torch.Tensor) -> torch.Tensor:
    """UR-DMU's attention: softmax and distance attention as (n, n) matrices, the distance matrix built per call."""
    q, k, v, t = (self._split(z) for z in self.to_qkv(x).chunk(4, dim=-1))
    n = x.shape[1]
    pos = torch.arange(1, n + 1, dtype=x.dtype, device=x.device)
    fixed = torch.exp(-(pos[None, :] - pos[:, None]).abs() / math.e)
    fixed = fixed / fixed.sum(-1)
    soft = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1) @ v
    return self.to_out(torch.cat([soft, fixed @ t], dim=-1).transpose(1, 2).flatten(2))


def direct_scores(model: URDMU, x: torch.Tensor) -> torch.Tensor:
    """UR-DMU's forward: quadratic attention, each memory unit recalled and projected on its own."""
    h = model.embedding(x)
    for attn, ff in model.self_attn.layers:
        h = quadratic_attention(attn.fn, attn.norm(h)) + h
        h = ff(h) + h
    aug = model.encoder_mu(model.Amemory(h)[1]) + model.encoder_mu(model.Nmemory(h)[1])
    return model.cls_head(torch.cat([h, aug], dim=-1))[..., 0]


def load_baseline(ref: str):
    """The scorer module of commit `ref` (git show), importable beside ours; its attention module, if it has one,
    under a name of its own."""
    out = Path(tempfile.mkdtemp(prefix=f"scorer_{ref}_"))

    def show(path: str) -> str | None:
        p = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:{path}"], capture_output=True, text=True)
        return p.stdout if p.returncode == 0 else None

    scorer = show("holmesvau/ats/scorer.py")
    if scorer is None:
        raise RuntimeError(f"git show {ref}:holmesvau/ats/scorer.py failed")
    attention = show("holmesvau/ats/attention.py")
    name = f"scorer_at_{ref}"
    if attention is not None:
        (out / f"{name}_attention.py").write_text(attention)
        _import(f"{name}_attention", out / f"{name}_attention.py")
        scorer = scorer.replace("from holmesvau.ats.attention import", f"from {name}_attention import")
    (out / f"{name}.py").write_text(scorer)
    mod = _import(name, out / f"{name}.py")
    mod.quadratic = attention is None
    return mod


def _import(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def timed(fn, device: torch.device) -> tuple[float, float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - w) * 1e3, (time.process_time() - c) * 1e3, out


def measure(forms: dict, device: torch.device, rounds: int) -> dict[str, dict]:
    """Each form: peak memory of its first call, then the fastest of `rounds` calls, forms interleaved."""
    res = {}
    for name, fn in forms.items():
        before = reset_peak(device)
        wall, cpu, out = timed(fn, device)
        res[name] = {"ms": wall, "cpu_ms": cpu, "peak_growth_mb": peak_mb(device) - before, "out": out}
    for _ in range(rounds - 1):
        for name, fn in forms.items():
            wall, cpu, _ = timed(fn, device)
            res[name]["ms"] = min(res[name]["ms"], wall)
            res[name]["cpu_ms"] = min(res[name]["cpu_ms"], cpu)
    return res


def quadratic_mb(batch: int, n: int, heads: int = 4) -> float:
    """Floats UR-DMU's direct form holds at once: q k^T and its softmax per head, the distance matrix and its
    normalised copy (n x n each)."""
    return (2 * heads * batch + 2) * n * n * 4 / 2**20


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--lengths", default=None, help="snippet counts to score (default 171,750,2000,4000,16000)"
    )
    ap.add_argument("--train", default=None, help="training step LENGTHxBATCH ('' = none; default 750x8)")
    ap.add_argument(
        "--hours", default="", help="day-long videos, in hours of 30 fps video: peak memory of ours"
    )
    ap.add_argument("--baseline", action="append", default=[], help="a git commit whose scorer to time too")
    ap.add_argument(
        "--rounds", type=int, default=3, help="timed calls per form and length (the fastest counts)"
    )
    ap.add_argument("--quadratic-max-mb", type=float, default=4096, help="skip quadratic forms needing more")
    ap.add_argument("--smoke", action="store_true", help="seconds: lengths 300,1200, train 100x2, 1 round")
    ap.add_argument(
        "--scorer", default=None, help="scorer checkpoint (default: the shared random one, if any)"
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.rounds = 1
    if args.lengths is None:
        args.lengths = "300,1200" if args.smoke else "171,750,2000,4000,16000"
    if args.train is None:
        args.train = "100x2" if args.smoke else "750x8"
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.scorer is None:
        shared = Path(os.environ.get("HOLMESVAU_SHARED", REPO.parent / "shared"))
        found = shared / "fixtures/ats-original/urdmu_random.pth"
        args.scorer = str(found) if found.is_file() else None
    ours = load_anomaly_scorer(args.scorer, device) if args.scorer else URDMU().to(device).eval()
    state = {k: v.detach().cpu() for k, v in ours.state_dict().items()}
    lean = URDMU(input_size=ours.input_dim).to(device).eval()
    lean.load_state_dict(state)
    lean.direct_budget = 0
    baselines, failed, skipped = {}, {}, {}
    for ref in args.baseline:
        try:
            mod = load_baseline(ref)
            model = mod.URDMU(input_size=ours.input_dim)
            model.load_state_dict(state)
            baselines[f"at_{ref}"] = (mod, model.to(device).eval())
        except Exception as e:  # noqa: BLE001 - a missing commit or an old layout: say so, go on
            failed[f"at_{ref}"] = f"{type(e).__name__}: {e}"
    print(
        f"scorer: {args.scorer or 'random init'}; device {device}; threads {torch.get_num_threads()}",
        flush=True,
    )
    summary = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "scorer": args.scorer,
        "rounds": args.rounds,
        "direct_budget_mb": ours.direct_budget / 2**20,
        "lengths": [],
        "forms": {},
    }
    for key in ("ms", "cpu_ms", "peak_growth_mb", "max_abs_diff_vs_direct"):
        summary[key] = {}
    gen = torch.Generator(device=device).manual_seed(0)
    for n in [int(v) for v in args.lengths.split(",") if v.strip()]:
        x = torch.randn(1, n, ours.input_dim, device=device, generator=gen)
        forms = {"ours": lambda x=x: ours(x)}
        if ours.direct_bytes(1, n) <= ours.direct_budget:
            forms["ours_lean"] = lambda x=x: lean(x)
        else:
            skipped[f"ours_lean_{n}"] = "ours takes the lean form here"
        quad_ok = quadratic_mb(1, n) <= args.quadratic_max_mb
        if quad_ok:
            forms["direct"] = lambda x=x: direct_scores(ours, x)
        else:
            skipped[f"direct_{n}"] = f"needs ~{quadratic_mb(1, n):.0f} MB > --quadratic-max-mb"
        for name, (mod, model) in baselines.items():
            if mod.quadratic and not quad_ok:
                skipped[f"{name}_{n}"] = f"quadratic, needs ~{quadratic_mb(1, n):.0f} MB"
            else:
                forms[name] = lambda x=x, model=model: model(x)
        with torch.inference_mode():
            for fn in forms.values():  # warm-up (kernels, caches) on a short input
                fn(x[:, :64])
            res = measure(forms, device, args.rounds)
        summary["lengths"].append(n)
        summary["forms"][str(n)] = "direct" if ours.direct_bytes(1, n) <= ours.direct_budget else "lean"
        ref = res.get("direct", res["ours"])["out"]
        for name, r in res.items():
            for key in ("ms", "cpu_ms", "peak_growth_mb"):
                summary[key].setdefault(name, {})[str(n)] = round(r[key], 1)
            diff = float((r["out"].float() - ref.float()).abs().max()) if "direct" in res else None
            summary["max_abs_diff_vs_direct"].setdefault(name, {})[str(n)] = diff
        print(
            json.dumps(
                {
                    "length": n,
                    **{k: {m: v[m] for m in ("ms", "cpu_ms", "peak_growth_mb")} for k, v in res.items()},
                },
                default=round,
            ),
            flush=True,
        )
    _ratios(summary, "ms", "ratio_vs_{}")
    _ratios(summary, "cpu_ms", "cpu_ratio_vs_{}")
    if args.train:
        summary["train_step"] = train_step(ours, state, baselines, args, device)
    if args.hours:
        summary["hours"] = day_long(ours, args, device)
    summary["skipped"], summary["failed"] = skipped, failed
    print(json.dumps(summary))
    return summary


def _ratios(summary: dict, key: str, label: str) -> None:
    """ours / other per length, for every other form timed."""
    ours = summary[key].get("ours", {})
    for name, times in summary[key].items():
        if name != "ours":
            summary[label.format(name)] = {
                n: round(ours[n] / t, 3) for n, t in times.items() if n in ours and t
            }


def train_step(ours: URDMU, state: dict, baselines: dict, args, device: torch.device) -> dict:
    """forward_train + UR-DMU's loss + backward at LENGTHxBATCH (half normal, half abnormal), each form from the
    same weights in train mode, the same dropout draws (seeded): ours, UR-DMU's quadratic attention, baselines."""
    length, batch = (int(v) for v in args.train.split("x"))
    gen = torch.Generator(device=device).manual_seed(1)
    x = torch.randn(batch, length, ours.input_dim, device=device, generator=gen)
    labels = torch.tensor([0.0] * (batch // 2) + [1.0] * (batch - batch // 2), device=device)
    models = {"ours": (sys.modules[URDMU.__module__], URDMU(input_size=ours.input_dim))}
    models["direct"] = (sys.modules[URDMU.__module__], URDMU(input_size=ours.input_dim))
    for layer in models["direct"][1].self_attn.layers:
        layer[0].fn.forward = quadratic_attention.__get__(layer[0].fn)
    for name, (mod, _) in baselines.items():
        models[name] = (mod, mod.URDMU(input_size=ours.input_dim))

    def step(mod, model):
        torch.manual_seed(0)
        total, _ = mod.urdmu_loss(model.forward_train(x), labels)
        model.zero_grad(set_to_none=True)
        total.backward()
        return float(total.detach())

    forms = {}
    for name, (mod, model) in models.items():
        model.load_state_dict(state)
        model.to(device).train()
        forms[name] = lambda mod=mod, model=model: step(mod, model)
    for mod, model in models.values():  # warm-up (kernels, autograd) on a short batch
        torch.manual_seed(0)
        mod.urdmu_loss(model.forward_train(x[:2, :32]), labels[[0, -1]])[0].backward()
    res = measure(forms, device, args.rounds)
    out = {"length": length, "batch": batch}
    for key in ("ms", "cpu_ms", "peak_growth_mb"):
        out[key] = {name: round(r[key], 1) for name, r in res.items()}
    out["loss"] = {name: r["out"] for name, r in res.items()}
    for name in res:
        if name != "ours":
            out[f"ratio_vs_{name}"] = round(res["ours"]["ms"] / res[name]["ms"], 3)
            out[f"cpu_ratio_vs_{name}"] = round(res["ours"]["cpu_ms"] / res[name]["cpu_ms"], 3)
    print(json.dumps({"train_step": out}), flush=True)
    return out


def day_long(ours: URDMU, args, device: torch.device) -> dict:
    """Peak memory (and time) of ours on hours of 30 fps video, one call each: the features, then the scoring."""
    out = {}
    for h in [float(v) for v in args.hours.split(",") if v.strip()]:
        n = round(h * SNIPPETS_PER_HOUR)
        before = reset_peak(device)
        x = torch.randn(1, n, ours.input_dim, device=device)
        with torch.inference_mode():
            wall, _, scores = timed(lambda x=x: ours(x), device)
        rec = {
            "snippets": n,
            "form": "direct" if ours.direct_bytes(1, n) <= ours.direct_budget else "lean",
            "seconds": round(wall / 1e3, 1),
            "features_mb": round(x.numel() * x.element_size() / 2**20, 1),
            "peak_growth_mb": round(peak_mb(device) - before, 1),
            "peak_rss_mb": round(peak_mb(torch.device("cpu")), 1),
            "score_mean": round(float(scores.mean()), 6),
        }
        rec["under_4gb"] = rec["peak_rss_mb"] < 4096
        out[f"{h:g}h"] = rec
        print(json.dumps({"hours": h, **rec}), flush=True)
        del x, scores
    return out


if __name__ == "__main__":
    main()
