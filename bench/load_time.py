"""Load time and peak memory of an ORIGINAL-format checkpoint with the real InternVL2-2B shapes (random weights):
converted in memory at every load (what `load_model` does), against converting once to disk and loading the
native folder (what training / LoRA merging use, and what every load did before).

    python bench/load_time.py --device cuda                    # the 2.2 B-parameter shapes (GPU machine)
    python bench/load_time.py --device cpu                     # the same on the CPU (needs ~16 GB RAM; slow)
    python bench/load_time.py --small                          # tiny sizes on the CPU: checks the script (seconds)
    python bench/load_time.py --device cuda --work /tmp/lt --keep   # keep the checkpoint (reruns skip making it)

Each measurement runs in a fresh Python process, so its figures are its own: wall time, peak RSS (ru_maxrss), peak
GPU memory, and bytes written under its cache folder. Prints one line per measurement; the last line is one JSON
object with all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _tree_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) if root.exists() else 0


def child(mode: str, src: Path, device: str, cache: Path) -> dict:
    """One measurement in this (fresh) process."""
    import torch

    from holmesvau.model import convert_checkpoint, load_model

    cache.mkdir(parents=True, exist_ok=True)
    os.environ["HOLMESVAU_CACHE"] = str(cache)
    t = time.perf_counter()
    if mode == "convert_to_disk":
        convert_checkpoint(src, cache / "converted")
        extra = {}
    else:  # "load": an original folder (converted in memory) or a native one
        lm = load_model(src, device=device, cache_dir=cache)
        if lm.device.type == "cuda":
            torch.cuda.synchronize()
        extra = {
            "dtype": str(lm.dtype).removeprefix("torch."),
            "params_b": round(sum(p.numel() for p in lm.model.parameters()) / 1e9, 3),
        }
    seconds = time.perf_counter() - t
    out = {
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "written_to_cache_gb": round(_tree_bytes(cache) / 1e9, 3),
        **extra,
    }
    if device.startswith("cuda"):
        out["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def _run_child(mode: str, src: Path, device: str, cache: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--src",
        str(src),
        "--device",
        device,
        "--cache",
        str(cache),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--small", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument(
        "--work", default=None, help="scratch folder (default: a temporary one, removed at the end)"
    )
    ap.add_argument("--keep", action="store_true", help="keep --work (the checkpoint) afterwards")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--src", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.src), args.device, Path(args.cache))))
        return

    import torch

    from holmesvau.testing.tiny_model import TinyConfig, internvl2_2b_sizes, make_tiny_checkpoint

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU here")
    work = Path(args.work or tempfile.mkdtemp(prefix="holmesvau-loadtime-"))
    cfg = TinyConfig(dtype="bfloat16") if args.small else internvl2_2b_sizes()
    src = work / ("original-small" if args.small else "original-2b")
    out: dict = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"}
    out["shapes"] = "tiny" if args.small else "InternVL2-2B"
    try:
        if not (src / "config.json").is_file():
            t = time.perf_counter()
            with torch.device(args.device):  # random init on the GPU: seconds instead of minutes
                make_tiny_checkpoint(src, "original", cfg)
            out["make_checkpoint_s"] = round(time.perf_counter() - t, 1)
        out["checkpoint_gb"] = round(_tree_bytes(src) / 1e9, 3)
        print(f"original-format checkpoint: {src} ({out['checkpoint_gb']} GB)", file=sys.stderr)

        runs = [
            ("in_memory_load", "load", src, work / "cache-a"),
            ("convert_to_disk", "convert_to_disk", src, work / "cache-b"),
            ("native_folder_load", "load", work / "cache-b" / "converted", work / "cache-c"),
        ]
        for name, mode, path, cache in runs:
            shutil.rmtree(cache, ignore_errors=True) if name != "native_folder_load" else None
            out[name] = _run_child(mode, path, args.device, cache)
            print(f"{name}: {json.dumps(out[name])}")
        out["in_memory_vs_convert_then_load"] = round(
            out["in_memory_load"]["seconds"]
            / max(1e-9, out["convert_to_disk"]["seconds"] + out["native_folder_load"]["seconds"]),
            2,
        )
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
