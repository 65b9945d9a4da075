"""Reproduce the paper in one run: check the data, predict (resumable), evaluate, write results.json + results.md.

Tasks: `detection-ucf` (UCF-Crime, official 290-video protocol by default), `detection-xd` (XD-Violence, 800 videos)
and `reasoning` (HIVAU-70k test instructions). Protocols: holmesvau.eval.protocols; the paper's numbers:
holmesvau/eval/paper_results.json. Entry point: tools/reproduce.py.

Order of work. 1) The data check (annotation files, every listed video, Java for the reasoning metrics, options)
runs before any model loads and names what is missing by count and first names. 2) Reasoning rows are predicted
first: the video-level rows compute each full video's dense anomaly scores once, use them for ATS and write them
to `OUTPUT/scores/<video>.npz`; 3) detection then scores only the test videos without a score file. Both steps
resume (predictions by row id, scores by file). 4) Evaluation and the two result files.
Distributed: under torchrun each rank takes a disjoint share of rows and videos; rank 0 merges and evaluates.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from holmesvau.data.download import FETCH_HINT
from holmesvau.eval.detection import first_names
from holmesvau.eval.ground_truth import VIDEO_EXTS, GtVideo, video_key
from holmesvau.eval.protocols import get_protocol, smoke_subset
from holmesvau.files import atomic_write_json, atomic_write_text, json_safe
from holmesvau.frame_plan import SamplingConfig
from holmesvau.output_guard import (
    OutputLock,
    check_output_file,
    has_marker,
    json_object_with,
    jsonl_rows_with,
)
from holmesvau.paths import inside_root

TASKS = ("detection-ucf", "detection-xd", "reasoning")
INSTRUCTIONS = "instruction/merge_instruction_test_final.jsonl"


class DataError(ValueError):
    """The data does not allow what was asked (missing files or videos); the message lists what and where."""


@dataclass
class ReproduceConfig:
    data_root: Path  # HIVAU-70k layout (HIVAU-70k/README.md)
    output_dir: Path
    tasks: tuple[str, ...] | None = None  # None: every task the data allows
    model: str | None = None  # None: ppxin321/HolmesVAU-2B
    scorer: str | None = None  # None: the released anomaly scorer
    ucf_protocol: str = "ucf-crime"  # or "ucf-crime-hivau"
    ucf_annotations: Path | None = None  # default DATA_ROOT/UCF-Crime (hivau: DATA_ROOT/raw_annotations)
    xd_annotations: Path | None = None  # default DATA_ROOT/XD-Violence
    ucf_videos: Path | None = None  # default DATA_ROOT/videos/ucf-crime/videos/test
    xd_videos: Path | None = None  # default DATA_ROOT/videos/xd-violence/videos/test
    instructions: Path | None = None  # default DATA_ROOT/instruction/merge_instruction_test_final.jsonl
    limit: int | None = None  # smoke run: first N videos per detection set, first N rows per reasoning level
    allow_partial: bool = False
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # ATS for the reasoning rows
    max_new_tokens: int = 1024
    batch_size: int | None = None
    device: str | None = None
    dtype: str | None = None
    cache_dir: str | None = None
    retry_failed: bool = False
    progress: bool = True

    def path(self, name: str) -> Path:
        root = Path(self.data_root)
        defaults = {
            "ucf_annotations": root
            / ("raw_annotations" if self.ucf_protocol == "ucf-crime-hivau" else "UCF-Crime"),
            "xd_annotations": root / "XD-Violence",
            "ucf_videos": root / "videos/ucf-crime/videos/test",
            "xd_videos": root / "videos/xd-violence/videos/test",
            "instructions": root / INSTRUCTIONS,
        }
        value = getattr(self, name)
        if value is not None:
            return Path(value)
        beside = root.parent / defaults[name].name  # --data-root .../HIVAU-70k with UCF-Crime/ next to it
        if name in ("ucf_annotations", "xd_annotations") and not defaults[name].is_dir() and beside.is_dir():
            return beside
        return defaults[name]


@dataclass
class TaskData:
    """What one task will evaluate: listed items, the ones present, the ones missing (names)."""

    task: str
    problem: str | None = None  # the task cannot run at all (annotation files absent, no Java, ...)
    listed: int = 0
    listed_all: int = 0  # before --limit
    searched: str = ""  # the folder the videos were looked for in
    missing: list[str] = field(default_factory=list)
    gt: dict[str, GtVideo] = field(default_factory=dict)  # detection: the evaluated test set
    videos: dict[str, Path] = field(default_factory=dict)  # detection: name -> file
    rows: list = field(default_factory=list)  # reasoning: Instruction rows whose video exists

    @property
    def present(self) -> int:
        return self.listed - len(self.missing)


def _check_detection(cfg: ReproduceConfig, task: str) -> TaskData:
    ucf = task == "detection-ucf"
    protocol, key = get_protocol(cfg.ucf_protocol if ucf else "xd-violence"), "ucf" if ucf else "xd"
    folder = cfg.path(f"{key}_annotations")
    data = TaskData(task)
    absent = protocol.missing_files(folder)
    if absent:
        data.problem = f"annotation file(s) not found: {', '.join(map(str, absent))}"
        if getattr(cfg, f"{key}_annotations") is None and folder.name != "raw_annotations":
            data.problem += f" (nor in {Path(cfg.data_root).parent / folder.name})"  # both places looked in
        if ucf and cfg.ucf_protocol == "ucf-crime-hivau":
            data.problem += f" ({FETCH_HINT.format(root=cfg.data_root)})"
        return data
    gt = protocol.load(folder)
    data.listed_all = len(gt)
    if cfg.limit is not None:
        gt = smoke_subset(gt, cfg.limit)
    videos = cfg.path(f"{key}_videos")
    files = sorted(videos.iterdir()) if videos.is_dir() else []
    index = {video_key(p.name): p for p in files if p.suffix.lower() in VIDEO_EXTS}
    data.gt, data.listed, data.searched = gt, len(gt), str(videos)
    data.videos = {n: index[n] for n in gt if n in index}
    data.missing = [n for n in gt if n not in index]
    return data


def _check_reasoning(cfg: ReproduceConfig) -> TaskData:
    from holmesvau.data.instructions import read_instructions

    data = TaskData("reasoning")
    path = cfg.path("instructions")
    if not path.is_file():
        data.problem = f"instruction file not found: {path} ({FETCH_HINT.format(root=cfg.data_root)})"
        return data
    try:
        from holmesvau.eval.java import find_java

        find_java()
    except Exception as e:  # noqa: BLE001 - JavaNotFoundError or a broken runtime: the metrics cannot run
        data.problem = f"the reasoning metrics need Java: {e}"
        return data
    rows = read_instructions(path, on_error="skip")
    if cfg.limit is not None:
        per_level: dict[str, int] = {}
        kept = []
        for r in rows:
            if per_level.get(r.type, 0) < cfg.limit:
                per_level[r.type] = per_level.get(r.type, 0) + 1
                kept.append(r)
        rows = kept
    root = Path(cfg.data_root) / "videos"
    exists: dict[str, bool] = {}
    for r in rows:
        if r.video not in exists:
            try:
                exists[r.video] = inside_root(root, r.video, "DATA_ROOT/videos").is_file()
            except ValueError:  # a path leading out of the videos folder: never read, counted as missing
                exists[r.video] = False
    data.listed, data.searched = len(rows), str(root)
    data.rows = [r for r in rows if exists[r.video]]
    data.missing = [r.video for r in rows if not exists[r.video]]
    return data


def check_data(cfg: ReproduceConfig) -> tuple[dict[str, TaskData], dict[str, str]]:
    """-> (tasks to run, {task: why it is skipped}). Raises DataError naming every problem of the tasks asked for
    (or, by default, of the tasks the data allows): absent files; missing videos unless `allow_partial`."""
    if cfg.tasks is not None:
        unknown = [t for t in cfg.tasks if t not in TASKS]
        if unknown:
            raise DataError(f"unknown task(s) {unknown} (expected {', '.join(TASKS)})")
    if cfg.limit is not None and cfg.limit < 1:
        raise DataError(f"--limit must be >= 1, got {cfg.limit}")
    get_protocol(cfg.ucf_protocol)
    asked = cfg.tasks or TASKS
    checks = {t: _check_reasoning(cfg) if t == "reasoning" else _check_detection(cfg, t) for t in asked}
    problems, skipped, partial_helps = [], {}, False
    for t, d in checks.items():
        why = d.problem or ("nothing listed" if d.listed == 0 else None)
        if why is None and cfg.tasks is None and not d.present:  # by default skipped, with the reason
            why = f"none of its {d.listed} videos found in {d.searched}"
        if why is not None:
            if cfg.tasks is None:
                skipped[t] = why
            else:
                problems.append(f"{t}: {why}")
            continue
        if d.missing and (not cfg.allow_partial or not d.present):
            unique = list(dict.fromkeys(d.missing))
            what = "rows' videos" if t == "reasoning" else "test videos"
            problems.append(
                f"{t}: {len(unique)} of {d.listed} {what} missing in {d.searched}: {first_names(unique)}"
            )
            partial_helps = partial_helps or (d.present > 0 and not cfg.allow_partial)
    run = {t: d for t, d in checks.items() if t not in skipped}
    if problems:
        raise DataError(
            "; ".join(problems) + (" (--allow-partial evaluates the rest)" if partial_helps else "")
        )
    if not run:
        raise DataError("nothing to reproduce: " + "; ".join(f"{t}: {w}" for t, w in skipped.items()))
    return run, skipped


def predict(vau, cfg: ReproduceConfig, run: dict[str, TaskData], rank: int = 0, world: int = 1) -> dict:
    """Reasoning answers (writing the video-level rows' dense scores), then the detection scores still missing.
    Returns {task: stats, "seconds": {...}}."""
    from holmesvau.distributed import shard
    from holmesvau.jsonl import done_ids
    from holmesvau.predict import drop_failed, dump_scores, predict_rows, shard_by_video, shard_path

    out, root = Path(cfg.output_dir), Path(cfg.data_root) / "videos"
    scores_dir = out / "scores"
    mine = lambda path: shard_path(path, rank) if world > 1 else path  # noqa: E731 - this rank's file
    stats: dict = {"seconds": {}}
    if "reasoning" in run:
        output = out / "predictions.jsonl"
        if cfg.retry_failed:
            for p in {output, mine(output)}:
                drop_failed(p)
        t = time.perf_counter()
        stats["reasoning"] = predict_rows(
            vau, shard_by_video(run["reasoning"].rows, rank, world, root), root, mine(output), cfg.sampling,
            max_new_tokens=cfg.max_new_tokens, scores_dir=scores_dir, desc="reasoning",
            skip_ids=done_ids(output) if world > 1 else set(), batch_size=cfg.batch_size, progress=cfg.progress,
        )  # fmt: skip
        stats["seconds"]["reasoning"] = time.perf_counter() - t
    for task in [t for t in ("detection-ucf", "detection-xd") if t in run]:
        log = mine(out / f"scores_log_{task}.jsonl")
        if cfg.retry_failed:
            drop_failed(log)
        t = time.perf_counter()
        # Named relative to the reasoning rows' video root when the video lies under it, so a video already
        # scored by a video-level reasoning row has the very same score file and is not scored again.
        by_folder: dict[Path, list[str]] = {}
        for _, path in shard(sorted(run[task].videos.items()), rank, world):
            if path.is_relative_to(root):
                by_folder.setdefault(root, []).append(path.relative_to(root).as_posix())
            else:
                by_folder.setdefault(path.parent, []).append(path.name)
        total: Counter[str] = Counter()
        for folder, names in by_folder.items():
            total.update(dump_scores(vau, names, folder, scores_dir, log, desc=task,
                                     dense_stride=cfg.sampling.dense_stride, progress=cfg.progress))  # fmt: skip
        stats[task] = dict(total)
        stats["seconds"][task] = time.perf_counter() - t
    return stats


def evaluate(cfg: ReproduceConfig, run: dict[str, TaskData]) -> dict:
    """Evaluate every task that ran -> {"detection": {protocol: summary}, "reasoning": {...}}."""
    from holmesvau.eval.detection import evaluate_ground_truth
    from holmesvau.eval.paper_table import detection_row, reasoning_rows
    from holmesvau.eval.score_files import load_score_dir

    out = Path(cfg.output_dir)
    results: dict = {}
    detection = {}
    for task in [t for t in ("detection-ucf", "detection-xd") if t in run]:
        protocol = get_protocol(cfg.ucf_protocol if task == "detection-ucf" else "xd-violence")
        gt = run[task].gt
        files, bad = load_score_dir(out / "scores")
        files = {n: f for n, f in files.items() if n in gt}
        hint = " (--allow-partial evaluates the rest)"
        report, _, _ = evaluate_ground_truth(gt, files, cfg.sampling.dense_stride, cfg.allow_partial, hint)
        report["bad_score_files"] = {k: v for k, v in bad.items() if video_key(Path(k).stem) in gt}
        atomic_write_json(out / f"detection_{protocol.name}.json", json_safe(report))
        summary = {
            k: v for k, v in report.items() if k not in ("per_video", "missing_scores", "unmatched_scores")
        }
        summary.update(
            protocol=protocol.name, dataset=protocol.dataset, description=protocol.description,
            n_missing=len(report["missing_scores"]), missing_first=report["missing_scores"][:20],
            comparison=detection_row(protocol.dataset, protocol.metric, report),
            n_videos_in_protocol=run[task].listed_all,
        )  # fmt: skip
        detection[protocol.name] = summary
    if detection:
        results["detection"] = detection
    if "reasoning" in run:
        from holmesvau.eval.reasoning import evaluate_reasoning, read_predictions

        d = run["reasoning"]
        ids = {str(r.id) for r in d.rows}
        preds, malformed = read_predictions(out / "predictions.jsonl")
        preds = [p for p in preds if str(p["id"]) in ids]
        report = evaluate_reasoning(preds, d.rows, progress=cfg.progress)
        report["rows"].update(
            listed=d.listed, skipped_missing_video=len(d.missing), malformed_lines=len(malformed)
        )
        atomic_write_json(out / "reasoning_report.json", json_safe(report))
        results["reasoning"] = {
            "rows": report["rows"],
            "comparison": reasoning_rows(report),
            "judgement": {k: v for k, v in report["judgement"].items() if "/" not in k},
            "groups": report["groups"],
        }
    return results


def reproduce(cfg: ReproduceConfig, load_vau=None) -> dict | None:
    """The whole run (see the module docstring). `load_vau(cfg)` builds the HolmesVAU (default: from_pretrained).
    Returns the results (None on ranks other than 0); raises DataError before loading anything if data is missing."""
    from holmesvau.distributed import barrier_then, dist_env
    from holmesvau.eval.paper_table import mark_partial, paper_results, results_markdown
    from holmesvau.predict import merge_outputs

    t0 = time.perf_counter()
    run, skipped = check_data(cfg)
    env = dist_env()
    rank, world = env.rank, env.world_size
    out = Path(cfg.output_dir)
    ours = {  # the files of OUTPUT_DIR are replaced or resumed only when they are ours (holmesvau.output_guard)
        "results.json": json_object_with("config", "tasks"),
        "results.md": has_marker(b"# Reproduction of Holmes-VAU"),
        "predictions.jsonl": jsonl_rows_with("id", "status", "prediction"),
        "run_settings.json": json_object_with("model", "scorer"),
    }
    for name, is_ours in ours.items():
        check_output_file(out / name, [cfg.path("instructions")], is_ours, "--output-dir", name)
    with OutputLock(out, shared=world > 1, flag="--output-dir"):  # one run (or one job's ranks) a folder
        out.mkdir(parents=True, exist_ok=True)
        _check_same_settings(cfg, out / "run_settings.json", rank)
        ids = [r.id for r in run["reasoning"].rows] if "reasoning" in run else None
        if world == 1 and ids is not None:  # merge the rank shards an earlier run left (no rendezvous) first
            suffixes = [p.name.rsplit(".rank", 1)[1] for p in out.glob("predictions.jsonl.rank*")]
            ranks = [int(r) for r in suffixes if r.isdigit()]
            if ranks:
                merge_outputs(out / "predictions.jsonl", max(ranks) + 1, ids)
        stats = predict((load_vau or _load_vau)(cfg), cfg, run, rank, world)
        if world > 1:
            if not env.can_barrier:
                return None  # ranks without a rendezvous: rerun without RANK/WORLD_SIZE to merge and evaluate
            barrier_then(
                env, lambda: ids is not None and merge_outputs(out / "predictions.jsonl", world, ids)
            )
            if rank != 0:
                return None
        results = {
            "config": json_safe({k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}),
            "tasks": list(run),
            "skipped_tasks": skipped,
            **evaluate(cfg, run),
            "prediction": stats,
            "seconds_total": time.perf_counter() - t0,
        }
        results["config"]["model"] = cfg.model or "ppxin321/HolmesVAU-2B"
        results["config"]["scorer"] = cfg.scorer or "released anomaly_scorer.pth"
        results["paper"] = {k: paper_results()["paper"][k] for k in ("title", "venue", "arxiv", "row")}
        mark_partial(results, cfg.limit)  # partial / smoke says so, no Δ for a partial cell, warnings
        atomic_write_json(out / "results.json", json_safe(results))
        atomic_write_text(out / "results.md", results_markdown(results))
        return results


def _check_same_settings(cfg: ReproduceConfig, path: Path, rank: int) -> None:
    """A resumed run must predict with the settings of the rows and scores already there: else they would mix."""
    s = cfg.sampling
    now = dict(model=cfg.model, scorer=cfg.scorer, select_frames=s.select_frames, dense_stride=s.dense_stride,
               tau=s.tau, max_new_tokens=cfg.max_new_tokens)  # fmt: skip
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        differ = {k: (before.get(k), v) for k, v in now.items() if before.get(k) != v}
        if differ:
            raise DataError(
                f"{path.parent} holds predictions made with other settings "
                + ", ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in differ.items())
                + "; use another --output-dir"
            )
    elif rank == 0:
        atomic_write_json(path, now)


def _load_vau(cfg: ReproduceConfig):
    from holmesvau.distributed import default_device
    from holmesvau.model.loading import DEFAULT_MODEL
    from holmesvau.pipeline import HolmesVAU

    device = default_device(cfg.device)
    return HolmesVAU.from_pretrained(
        cfg.model or DEFAULT_MODEL, scorer=cfg.scorer, device=device, dtype=cfg.dtype, cache_dir=cfg.cache_dir
    )
