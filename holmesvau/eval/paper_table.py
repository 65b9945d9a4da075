"""The paper's published numbers and ours next to them: the comparison rows of results.json and their markdown.

The paper's values (Table 1 detection, Table 2 reasoning) are read from paper_results.json (package data), which
holds only values checked against the paper's text.

Detection (Table 1): the headline metric of each protocol in percent (UCF-Crime AUC, XD-Violence AP), the paper's
value, ours and Δ = ours − paper. Reasoning (Table 2): BLEU (= BLEU-1 + … + BLEU-4), CIDEr, METEOR, ROUGE-L per level
(clip / event / video) on the paper's scale, and our judgement accuracy (the paper reports none).
"""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources

LEVELS = ("clip", "event", "video")
REASONING_METRICS = ("BLEU", "CIDEr", "METEOR", "ROUGE")


@cache
def paper_results() -> dict:
    """The whole paper_results.json (see its `paper.notes`)."""
    return json.loads(resources.files("holmesvau.eval").joinpath("paper_results.json").read_text("utf-8"))


def paper_detection() -> dict[str, dict]:
    """{"ucf-crime": {"metric": "AUC", "unit": "%", "value": 88.96}, "xd-violence": {...}} (Table 1)."""
    return paper_results()["table1"]["values"]


def paper_reasoning() -> dict[str, dict[str, float]]:
    """{metric: {level: value}} for BLEU (= BLEU-1 + ... + BLEU-4), CIDEr, METEOR, ROUGE (Table 2)."""
    return paper_results()["table2"]["values"]


def _delta(ours: float | None, paper: float | None) -> float | None:
    return None if ours is None or paper is None else ours - paper


def fmt(v: float | None, digits: int = 3) -> str:
    """A table cell: "–" for a missing or NaN value."""
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def level_value(group: dict | None, metric: str) -> float | None:
    """One Table 2 cell of a reasoning group: BLEU = BLEU-1 + … + BLEU-4, ROUGE = ROUGE-L."""
    if group is None:
        return None
    if metric == "BLEU":
        return sum(group[f"Bleu_{i}"] for i in range(1, 5))
    return group["ROUGE_L" if metric == "ROUGE" else metric]


def detection_row(protocol_dataset: str, protocol_metric: str, report: dict) -> dict:
    """{"metric", "paper", "ours", "delta"} in percent for one detection report (evaluate_ground_truth)."""
    table = paper_detection().get(protocol_dataset)
    ours = None if report.get(protocol_metric) is None else 100.0 * report[protocol_metric]
    paper = table["value"] if table and table["metric"].lower() == protocol_metric else None
    return {"metric": protocol_metric.upper(), "paper": paper, "ours": ours, "delta": _delta(ours, paper)}


def reasoning_rows(report: dict) -> dict[str, dict[str, dict]]:
    """{metric: {level: {"paper", "ours", "delta", "n"}}} from an evaluate_reasoning report."""
    out: dict[str, dict[str, dict]] = {}
    for metric in REASONING_METRICS:
        out[metric] = {}
        for level in LEVELS:
            g = report["groups"].get(level)
            ours, p = level_value(g, metric), paper_reasoning().get(metric, {}).get(level)
            out[metric][level] = {"paper": p, "ours": ours, "delta": _delta(ours, p), "n": g["n"] if g else 0}
    return out


def _undefined(report: dict, metric: str) -> str | None:
    """Why a detection metric has no value (None when it has one)."""
    if report.get(metric) is not None:
        return None
    if not report.get("n_frames"):
        return f"{metric.upper()} undefined: no video was evaluated"
    if report.get("n_anomalous_frames", 0) == 0:
        return f"{metric.upper()} undefined: every evaluated frame is normal ({report['n_videos']} normal videos)"
    return f"{metric.upper()} undefined: every evaluated frame is anomalous"


def mark_partial(results: dict, limit: int | None = None) -> dict:
    """Say what a result is: `results["partial"]` (a --limit smoke run, or videos / rows not evaluated), its
    reasons, no Δ for a partial cell (a number over a subset is not comparable to the paper's), and why a metric is
    undefined. Frame-count mismatches are gathered in `results["warnings"]`."""
    reasons, warnings = [], []
    if limit:
        reasons.append(f"smoke run: --limit {limit}")
    for name, r in results.get("detection", {}).items():
        c = r["comparison"]
        if r["partial"] or limit:
            if r["partial"]:
                reasons.append(f"{name}: {r['n_videos']} of {r['n_videos_listed']} videos evaluated")
            c["delta"], c["no_delta"] = None, "partial"
        c["undefined"] = _undefined(r, c["metric"].lower())
        warnings += [f"{name}: {video}: {note}" for video, note in sorted(r.get("warnings", {}).items())]
    rea = results.get("reasoning")
    if rea:
        rows = rea["rows"]
        unscored = rows["listed"] - rows["scored"]
        if unscored:
            reasons.append(f"reasoning: {rows['scored']} of {rows['listed']} rows scored")
        if unscored or limit:
            for by_level in rea["comparison"].values():
                for c in by_level.values():
                    c["delta"], c["no_delta"] = None, "partial"
    results["partial"], results["partial_reasons"], results["warnings"] = bool(reasons), reasons, warnings
    return results


def _d(v: float | None, digits: int) -> str:
    return "–" if v is None else f"{v:+.{digits}f}"


def results_markdown(results: dict) -> str:
    """results.md: the paper's Table 1 and Table 2 rows with ours and Δ, and what was evaluated."""
    lines = []
    if results.get("partial"):  # the first line says what this is, before any number
        reasons = "; ".join(results["partial_reasons"])
        lines += [f"**PARTIAL RESULT, not comparable to the paper (no Δ): {reasons}**", ""]
    cfg = results["config"]
    smoke = f" · **smoke run: --limit {cfg['limit']}**" if cfg.get("limit") else ""
    lines += [
        "# Reproduction of Holmes-VAU (CVPR 2025, arXiv 2412.06171)",
        "",
        f"Model: `{cfg.get('model')}` · scorer: `{cfg.get('scorer')}`{smoke}",
        "",
    ]
    det = results.get("detection", {})
    if det:
        lines += [
            "## Table 1: anomaly detection (frame level, %)",
            "",
            "| Dataset | Protocol | Metric | Paper | Ours | Δ | Videos | Frames | AP (trapezoidal) | AUC | AP |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        pct = lambda v: fmt(None if v is None else 100 * v, 2)  # noqa: E731
        for name, r in det.items():
            c = r["comparison"]
            total = r.get("n_videos_in_protocol", r["n_videos_listed"])
            partial = " (partial)" if r["partial"] or r["n_videos"] < total else ""
            lines.append(
                f"| {r['dataset']} | {name} | {c['metric']} | {fmt(c['paper'], 2)} | {fmt(c['ours'], 2)} | "
                f"{_d(c['delta'], 2)} | {r['n_videos']} of {total}{partial} | {r['n_frames']} | "
                f"{pct(r['ap_trapezoid'])} | {pct(r['auc'])} | {pct(r['ap'])} |"
            )
        lines.append("")
    rea = results.get("reasoning")
    if rea:
        rows = rea["rows"]
        lines += [
            "## Table 2: anomaly reasoning (BLEU = BLEU-1 + … + BLEU-4)",
            "",
            f"Rows scored: {rows['scored']} of {rows['listed']} listed (failed {rows['failed']}, "
            f"no prediction {rows['missing']}, skipped for missing videos {rows['skipped_missing_video']}).",
            "",
            "| Metric | Level | Rows | Paper | Ours | Δ |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for metric, by_level in rea["comparison"].items():
            for level, c in by_level.items():
                lines.append(
                    f"| {metric} | {level} | {c['n']} | {fmt(c['paper'])} | {fmt(c['ours'])} | "
                    f"{_d(c['delta'], 3)} |"
                )
        lines += [
            "",
            "| Level | Judgement rows | Judgement accuracy (ours; not in the paper) |",
            "|---|---:|---:|",
        ]
        for level in LEVELS:
            j = rea["judgement"].get(level)
            lines.append(f"| {level} | {j['n'] if j else 0} | {fmt(j['accuracy'] if j else None)} |")
        lines.append("")
    lines += [
        "Notes: Δ = ours − paper. Paper values: holmesvau/eval/paper_results.json (Tables 1 and 2, Holmes-VAU row).",
        "Detection: frames concatenated over every evaluated video; intervals [start, end). "
        "Reasoning: pycocoevalcap with PTB tokenisation, each level scored on its own rows.",
    ]
    for name, r in det.items():
        lines.append(f"- {name}: {r['description']}")
        if r["comparison"].get("undefined"):
            lines.append(f"- {name}: {r['comparison']['undefined']}")
    for task, why in results.get("skipped_tasks", {}).items():
        lines.append(f"- not run: {task}: {why}")
    if results.get("warnings"):  # e.g. a score file's frame count that disagrees with the annotation
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in results["warnings"]]
    return "\n".join(lines).rstrip() + "\n"
