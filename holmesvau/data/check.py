"""Check that every video an instruction file names exists, opens, has frames and decodes to its end (a truncated
file with its index at the front still opens). Workers die with their parent and stop at once on an interrupt."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from holmesvau.data.instructions import read_instructions_report
from holmesvau.data.layout import SPLITS, instruction_file, video_path
from holmesvau.data.segments import in_workers
from holmesvau.video import probe
from holmesvau.video_open import VideoError, open_container, video_stream


@dataclass
class CheckReport:
    instruction_files: list[str] = field(default_factory=list)
    checked: int = 0
    ok: int = 0
    missing: list[str] = field(default_factory=list)  # paths relative to ROOT/videos
    broken: list[dict] = field(default_factory=list)  # {"video", "reason"}
    malformed_lines: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.missing and not self.broken

    def to_json(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def decode_tail(path: str | Path, seconds: float = 1.0) -> int:
    """Decode the last `seconds` of the video; returns the frames decoded (raises on corrupt data)."""
    with open_container(Path(path)) as c:
        s = video_stream(c, Path(path))
        if s.duration is not None and s.duration * s.time_base > seconds:
            target = (s.start_time or 0) + s.duration - int(seconds / s.time_base)
            c.seek(target, stream=s, backward=True)
        return sum(1 for _ in c.decode(s))


def check_file(path: str | Path) -> str:
    """'' when the file is fine, else the reason it is missing/broken."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        info = probe(path)
        if info.num_frames < 1:
            return "has no frames"
        if decode_tail(path) < 1:
            return "decodes no frames at its end"
    except (VideoError, OSError, ValueError) as e:
        return f"cannot be read: {e}"
    except Exception as e:  # decoder errors (av.error.*) vary between versions
        return f"cannot be decoded: {type(e).__name__}: {e}"
    return ""


def check_videos(
    root: str | Path, splits: list[str] | None = None, datasets: list[str] | None = None,
    instruction_files: list[str | Path] | None = None, workers: int | None = None, progress: bool = True,
) -> CheckReport:  # fmt: skip
    """Check each distinct video of the instruction files (default: ROOT/instruction/merge_instruction_{split}_final
    for the splits present). datasets: only rows of these datasets."""
    files = [Path(f) for f in instruction_files or []]
    if not files:
        files = [instruction_file(root, s) for s in splits or SPLITS]
        files = [f for f in files if f.is_file()] if splits is None else files
    if not files:
        raise FileNotFoundError(f"no instruction files under {Path(root) / 'instruction'}")
    report = CheckReport(instruction_files=[str(f) for f in files])
    videos: dict[str, None] = {}
    for f in files:
        rows, problems = read_instructions_report(f)
        report.malformed_lines += [str(p) for p in problems]
        for r in rows:
            if datasets is None or r.dataset in datasets:
                videos[r.video] = None

    def record(rel: str, reason: str) -> None:
        report.checked += 1
        if not reason:
            report.ok += 1
        elif reason == "missing":
            report.missing.append(rel)
        else:
            report.broken.append({"video": rel, "reason": reason})

    paths = {}
    for rel in videos:
        try:
            paths[rel] = video_path(root, rel)
        except ValueError as e:  # a row whose path leads out of ROOT/videos: reported, never opened
            record(rel, str(e))

    def record_one(rel: str, reason: str) -> None:
        record(rel, reason)
        bar.update(1)

    def died(rel: str, e: BaseException) -> str:  # a decoder crashed the worker
        return f"checker process died: {e}"

    with tqdm(total=len(paths), desc="checking videos", unit="video", disable=not progress) as bar:
        in_workers(check_file, paths.items(), workers, record_one, died)
    report.missing.sort()
    report.broken.sort(key=lambda b: b["video"])
    return report
