"""Named detection test sets: which videos, which labels, which metric — the protocols behind published numbers.

- `ucf-crime` (default for UCF-Crime): the official temporal annotation of the 290 test videos
  (`Temporal_Anomaly_Annotation_for_Testing_Videos.txt`, 140 anomalous, 150 normal; Sultani et al., CVPR 2018)
  with each video's frame count from `test_annotation_with_frame_counts.txt`; frame-level ROC-AUC over all frames
  of all 290 videos concatenated.
- `ucf-crime-hivau`: HIVAU-70k's `raw_annotations/ucf_database_test.json` (251 of the 290 videos; for 6 of them it
  keeps only one of the two official events). Not the set behind published AUCs; offered for comparison.
- `xd-violence`: the 800 test videos of `test_videos.txt`; the 500 violent ones are annotated in `annotations.txt`,
  the 300 normal ones (no line) are all-negative; frame-level AP over all frames of all 800 videos concatenated
  (Wu et al., ECCV 2020). Reported both as scikit-learn `average_precision_score` (`ap`) and as the trapezoidal
  area under the PR curve (`ap_trapezoid`). The shared files carry no XD-Violence frame counts: each video's frame
  count is the score file's `n_frames` (the decoded video's), else scores x stride.
Intervals cover frames [start, end) (clamped to the video); some public evaluators include the end frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from holmesvau.eval.ground_truth import GtVideo, load_ground_truth


@dataclass(frozen=True)
class Protocol:
    name: str
    dataset: str  # key of the paper's Table 1 (paper_results.json)
    metric: str  # the headline metric: "auc" or "ap"
    files: tuple[str, ...]  # annotation files, relative to the protocol's annotation folder
    description: str

    def missing_files(self, folder: str | Path) -> list[Path]:
        return [Path(folder) / f for f in self.files if not (Path(folder) / f).is_file()]

    def load(self, folder: str | Path) -> dict[str, GtVideo]:
        """Ground truth of every test video, in the annotation's order."""
        missing = self.missing_files(folder)
        if missing:
            raise FileNotFoundError(
                f"{self.name}: annotation file(s) not found: {', '.join(map(str, missing))}"
            )
        annotation, *extra = (Path(folder) / f for f in self.files)
        option = {"ucf-crime": "frame_counts", "xd-violence": "test_list"}.get(self.name)
        return load_ground_truth(annotation, **({option: extra[0]} if option else {}))


PROTOCOLS = {
    "ucf-crime": Protocol(
        "ucf-crime",
        "ucf-crime",
        "auc",
        ("Temporal_Anomaly_Annotation_for_Testing_Videos.txt", "test_annotation_with_frame_counts.txt"),
        "UCF-Crime official test set: 290 videos (140 anomalous), frame-level AUC over all frames",
    ),
    "ucf-crime-hivau": Protocol(
        "ucf-crime-hivau",
        "ucf-crime",
        "auc",
        ("ucf_database_test.json",),
        "HIVAU-70k ucf_database_test.json: 251 of the 290 UCF-Crime test videos, frame-level AUC",
    ),
    "xd-violence": Protocol(
        "xd-violence",
        "xd-violence",
        "ap",
        ("annotations.txt", "test_videos.txt"),
        "XD-Violence test set: 800 videos (500 violent, 300 normal), frame-level AP over all frames",
    ),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r} (expected one of {', '.join(PROTOCOLS)})") from None


def smoke_subset(gt: dict[str, GtVideo], n: int) -> dict[str, GtVideo]:
    """The first `n` videos of a test set, anomalous and normal ones alternating (so both classes are there and
    the frame-level metrics are defined), in the set's order."""
    anomalous = [k for k, v in gt.items() if v.anomalous]
    normal = [k for k, v in gt.items() if not v.anomalous]
    picked: set[str] = set()
    for i in range(max(len(anomalous), len(normal))):
        for group in (anomalous, normal):
            if i < len(group) and len(picked) < n:
                picked.add(group[i])
    return {k: v for k, v in gt.items() if k in picked}
