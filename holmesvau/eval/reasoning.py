"""Reasoning metrics on HIVAU-70k test instructions: BLEU-1..4 / METEOR / ROUGE-L / CIDEr (pycocoevalcap, PTB
tokenisation) per level (clip, event, video) and per level/task, plus anomaly-judgement accuracy.

Every group is scored on its own rows only: a row's single reference is its instruction's answer, and CIDEr's
document frequencies come from the group's references. Only rows present in the predictions with status "ok" count;
failed rows, predictions for unknown ids and instructions without a prediction are reported, not scored.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from holmesvau.eval.caption_metrics import METRICS, MeteorScorer, scores_from_tokens, tokenize_pairs
from holmesvau.eval.java import find_java
from holmesvau.eval.judgement import judgement_label
from holmesvau.eval.paper_table import LEVELS, REASONING_METRICS, fmt, level_value, paper_reasoning
from holmesvau.jsonl import read_jsonl, require_id

# Holmes-VAU (2B), Table 2 of the paper (holmesvau/eval/paper_results.json). Its "BLEU" is BLEU-1 + ... + BLEU-4.
PAPER_HOLMES_VAU = paper_reasoning()


def read_predictions(path: str | Path) -> tuple[list[dict], list[str]]:
    """Rows of a predictions jsonl and a 'file:line: reason' note for each malformed line (skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {path}")
    rows, problems = read_jsonl(path, parse=require_id)  # holmesvau.jsonl: malformed lines skipped, reported
    return rows, [str(p) for p in problems]


def _get(inst: object, name: str):
    """Field of an Instruction dataclass or of a raw test row (whose answer key is 'anwser')."""
    if isinstance(inst, dict):
        if name == "answer":
            return inst.get("answer", inst.get("anwser"))
        return inst.get(name)
    return getattr(inst, name)


def _judgement(pairs: list[tuple[str, str]]) -> dict:
    """Accuracy of prediction-vs-reference judgement labels; undecided predictions count as wrong."""
    correct = undecided = skipped = 0
    for ref, pred in pairs:
        want = judgement_label(ref)
        if want is None:
            skipped += 1
            continue
        got = judgement_label(pred)
        undecided += got is None
        correct += got == want
    n = len(pairs) - skipped
    return {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        "undecided_predictions": undecided,
        "skipped_undecided_references": skipped,
    }


def evaluate_reasoning(
    predictions: Iterable[dict],
    instructions: Iterable[object],
    meteor: MeteorScorer | None = None,
    progress: bool = True,
) -> dict:
    """Grouped caption metrics and judgement accuracy; see the module docstring. `instructions`: Instruction
    objects or raw test rows. Returns {"groups": {group: {"n", metrics..., "judgement_accuracy"}}, "rows": ...,
    "judgement": {...}, "paper_holmes_vau": ...}; groups are the levels, then "level/task", in a fixed order."""
    by_id = {str(_get(i, "id")): i for i in instructions}  # ids may be ints in one file, strings in another
    latest: dict[str, dict] = {}
    duplicates = 0
    for row in predictions:
        k = str(row.get("id"))
        duplicates += k in latest
        latest[k] = row  # the last line of an id wins
    ok = {k: r for k, r in latest.items() if r.get("status", "ok") == "ok"}
    failed = [k for k in latest if k not in ok]
    unknown = [k for k in latest if k not in by_id]
    bad_text = [k for k, r in ok.items() if not isinstance(r.get("prediction"), str)]
    excluded = set(failed) | set(unknown) | set(bad_text)
    usable = [k for k in latest if k not in excluded]
    if unknown:
        warnings.warn(
            f"{len(unknown)} prediction(s) have ids not in the instructions, e.g. {unknown[:5]}", stacklevel=2
        )

    members: dict[str, list[str]] = defaultdict(list)
    for k in usable:
        level, task = _get(by_id[k], "type"), _get(by_id[k], "task")
        members[level].append(k)
        members[f"{level}/{task}"].append(k)
    rank = {lv: i for i, lv in enumerate(LEVELS)}
    order = sorted(members, key=lambda g: ("/" in g, rank.get(g.split("/")[0], len(LEVELS)), g))

    refs = {k: _get(by_id[k], "answer") for k in usable}
    preds = {k: latest[k]["prediction"] for k in usable}
    java = find_java()
    # PTB tokenisation is per sentence, so one call for all rows gives each group the same tokens.
    gts, res = tokenize_pairs(refs, preds, java) if usable else ({}, {})
    own = meteor is None and bool(order)
    meteor = MeteorScorer(java) if own else meteor
    groups, judgement, done = {}, {}, {}
    try:
        for g in tqdm(order, desc="reasoning groups", disable=not progress):
            keys = members[g]
            sig = frozenset(keys)  # a level with a single task (clip = clip/caption) is scored once
            if sig not in done:
                done[sig] = scores_from_tokens({k: gts[k] for k in keys}, {k: res[k] for k in keys}, meteor)
            judged = [(refs[k], preds[k]) for k in keys if _get(by_id[k], "task") == "judgement"]
            jud = _judgement(judged) if judged else None
            if jud is not None:
                judgement[g] = jud
            groups[g] = {"n": len(keys), **done[sig], "judgement_accuracy": jud["accuracy"] if jud else None}
    finally:
        if own:
            meteor.close()

    return {
        "groups": groups,
        "rows": {
            "predictions": len(latest),
            "scored": len(usable),
            "failed": len(failed),
            "missing": sum(k not in latest for k in by_id),
            "unknown_ids": len(unknown),
            "no_prediction_text": len(bad_text),
            "duplicate_lines": duplicates,
        },
        "failed_ids": failed,
        "unknown_ids": unknown,
        "judgement": judgement,
        "paper_holmes_vau": PAPER_HOLMES_VAU,
    }


def markdown_tables(report: dict, include_paper: bool = True) -> str:
    """The paper's layout (BLEU / CIDEr / METEOR / ROUGE x clip / event / video; BLEU = sum of BLEU-1..4, as in
    the paper) with the paper's Holmes-VAU row, then every group with all metrics and the judgement accuracy."""
    groups = report["groups"]
    cols = [(m, lv) for m in REASONING_METRICS for lv in LEVELS]
    lines = [
        "| Method | " + " | ".join(f"{m} {lv[0].upper()}" for m, lv in cols) + " |",
        "|" + "---|" * (1 + len(cols)),
        "| This run | " + " | ".join(fmt(level_value(groups.get(lv), m)) for m, lv in cols) + " |",
    ]
    if include_paper:
        paper = " | ".join(fmt(PAPER_HOLMES_VAU[m][lv]) for m, lv in cols)
        lines.append(f"| Holmes-VAU (paper, Table 2) | {paper} |")
    lines += [
        "",
        "| Group | n | " + " | ".join(METRICS) + " | Judgement acc. |",
        "|" + "---|" * (3 + len(METRICS)),
    ]
    for name, g in groups.items():
        cells = " | ".join(fmt(g[m]) for m in METRICS)
        lines.append(f"| {name} | {g['n']} | {cells} | {fmt(g['judgement_accuracy'])} |")
    return "\n".join(lines)
