"""Which datasets and splits of a HIVAU-70k folder have their source videos in place.

Running HIVAU-70k/split_video.py or check_video.py with no --dataset / --split processes every (dataset, split)
whose ROOT/videos/{dataset}/videos/{split}/ holds at least one video, and says which it skipped and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from holmesvau.data.layout import DATASETS, SOURCE_EXTS, SPLITS


def source_folder(root: str | Path, dataset: str, split: str) -> Path:
    return Path(root) / "videos" / dataset / "videos" / split


def count_sources(root: str | Path, dataset: str, split: str) -> int:
    folder = source_folder(root, dataset, split)
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if p.suffix.lower() in SOURCE_EXTS and p.is_file())


@dataclass
class SourceScan:
    found: dict[tuple[str, str], int] = field(default_factory=dict)  # (dataset, split) -> number of videos
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def describe(self, root: str | Path) -> str:
        """Lines saying what was found and what is skipped, for the user."""
        lines = [f"{d}/{s}: {n} source videos" for (d, s), n in self.found.items()]
        lines += [f"{d}/{s}: skipped, no videos in {source_folder(root, d, s)}" for d, s in self.skipped]
        return "\n".join(lines)


def scan_sources(
    root: str | Path, datasets: list[str] | None = None, splits: list[str] | None = None
) -> SourceScan:
    """Every (dataset, split) of `datasets` x `splits` (default: all), split into those with source videos and not."""
    scan = SourceScan()
    for d in datasets or list(DATASETS):
        for s in splits or list(SPLITS):
            n = count_sources(root, d, s)
            if n:
                scan.found[(d, s)] = n
            else:
                scan.skipped.append((d, s))
    return scan


def no_sources_message(root: str | Path) -> str:
    return (
        f"no source videos under {Path(root) / 'videos'}/{{ucf-crime,xd-violence}}/videos/{{train,test}}/. "
        "Put the UCF-Crime / XD-Violence videos there (HIVAU-70k/README.md, step 1), or pass --root"
    )
