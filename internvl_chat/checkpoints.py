"""Which checkpoint-N folders are complete, and where a resumed run starts.

The Trainer writes checkpoint-N in place, so a run killed while saving leaves a partial folder. After every rank has
written its part, rank 0 writes `COMPLETE` last; only marked folders are resumed from, and newer unmarked ones are
renamed aside (`interrupted-checkpoint-N-<time>`), never deleted.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

from holmesvau.files import atomic_write_json

COMPLETE = "holmesvau_complete.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
logger = logging.getLogger("internvl_chat.checkpoints")


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def mark_complete(ckpt: str | Path, step: int) -> None:
    written = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atomic_write_json(Path(ckpt) / COMPLETE, {"global_step": step, "written": written}, indent=None)


def is_complete(ckpt: str | Path) -> bool:
    try:
        return isinstance(json.loads((Path(ckpt) / COMPLETE).read_text()), dict)
    except (OSError, ValueError):
        return False


def checkpoints(output_dir: str | Path) -> list[Path]:
    """checkpoint-N folders of `output_dir`, oldest step first."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def resume_point(output_dir: str | Path, rank: int = 0) -> Path:
    """The newest complete checkpoint to resume from; SystemExit with a clear message when there is none.
    Rank 0 moves unmarked checkpoints newer than it aside."""
    found = checkpoints(output_dir)
    complete = [p for p in found if is_complete(p)]
    if not complete:
        detail = ""
        if found:
            names, verb = ", ".join(p.name for p in found), "is" if len(found) == 1 else "are"
            detail = f"; {names} {verb} incomplete (interrupted while being written)"
        raise SystemExit(
            f"error: --resume (RESUME=1): no complete checkpoint in {output_dir}{detail}. "
            "Nothing to resume: run without --resume (RESUME=0) to start a new run in a new output_dir"
        )
    start = complete[-1]
    newer = found[found.index(start) + 1 :]
    if rank == 0:
        for p in newer:
            aside = p.with_name(f"interrupted-{p.name}-{int(time.time())}")
            p.rename(aside)
            logger.warning("%s was not completely written; moved aside to %s (delete it when done)", p, aside)
    return start
