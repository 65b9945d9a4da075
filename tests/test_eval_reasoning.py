"""Reasoning metrics equal pycocoevalcap run directly on the same groups (exact, word-dropped, swapped answers)."""

from __future__ import annotations

import functools
import json
import os
import random
from collections import defaultdict
from pathlib import Path

import pytest

pytest.importorskip("pycocoevalcap")

from holmesvau.eval.caption_metrics import METRICS, MeteorScorer  # noqa: E402
from holmesvau.eval.java import JavaNotFoundError, find_java  # noqa: E402
from holmesvau.eval.judgement import judgement_label  # noqa: E402
from holmesvau.eval.reasoning import PAPER_HOLMES_VAU, evaluate_reasoning, markdown_tables, read_predictions  # noqa: E402

PER_GROUP = 30


@pytest.fixture(scope="module")
def java():
    try:
        return find_java()
    except JavaNotFoundError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def our_meteor(java):
    with MeteorScorer(java) as m:
        yield m


@pytest.fixture(scope="module")
def coco(java):
    """pycocoevalcap's own scorers; its Meteor and PTBTokenizer call a bare `java`, so PATH must have one."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PATH", str(Path(java).parent) + os.pathsep + os.environ.get("PATH", ""))
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    meteor = Meteor()

    def score(refs: dict, preds: dict) -> dict:
        both = PTBTokenizer().tokenize({k: [{"caption": refs[k]}, {"caption": preds[k]}] for k in refs})
        gts, res = {k: v[:1] for k, v in both.items()}, {k: v[1:] for k, v in both.items()}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        values = [*bleu, meteor.compute_score(gts, res)[0], Rouge().compute_score(gts, res)[0]]
        values.append(Cider().compute_score(gts, res)[0])
        return dict(zip(METRICS, values))

    yield score
    mp.undo()


@pytest.fixture
def sample(shared):
    return _sample(str(shared("data/HIVAU-70k/instruction/merge_instruction_test_final.jsonl")))


@functools.cache
def _sample(path: str):
    from holmesvau.data.instructions import read_instructions

    rows = read_instructions(path)
    by_group = defaultdict(list)
    for r in rows:
        by_group[r.level_task].append(r)
    rng = random.Random(0)
    picked = [r for g in sorted(by_group) for r in rng.sample(by_group[g], min(PER_GROUP, len(by_group[g])))]
    return rows, picked


def _make_predictions(picked, variant: str) -> list[dict]:
    rng = random.Random(1)
    if variant == "exact":
        texts = [r.answer for r in picked]
    elif variant == "dropped":
        texts = [" ".join(w for w in r.answer.split() if rng.random() > 0.3) for r in picked]
    else:  # swapped: each row gets the answer of the next row of its own group
        groups = defaultdict(list)
        for r in picked:
            groups[r.level_task].append(r)
        swap = {g[i].id: g[(i + 1) % len(g)].answer for g in groups.values() for i in range(len(g))}
        texts = [swap[r.id] for r in picked]
    return [
        {"id": r.id, "prediction": t, "frame_indices": [0], "status": "ok", "error": None}
        for r, t in zip(picked, texts)
    ]


@pytest.mark.parametrize("variant", ["exact", "dropped", "swapped"])
def test_groups_equal_pycocoevalcap(sample, variant, coco, our_meteor):
    rows, picked = sample
    preds = _make_predictions(picked, variant)
    report = evaluate_reasoning(preds, rows, meteor=our_meteor, progress=False)
    text = {str(p["id"]): p["prediction"] for p in preds}

    groups = defaultdict(list)
    for r in picked:
        groups[r.type].append(r)
        groups[r.level_task].append(r)
    assert set(report["groups"]) == set(groups)
    for name, members in groups.items():
        got = report["groups"][name]
        assert got["n"] == len(members)
        want = coco({str(r.id): r.answer for r in members}, {str(r.id): text[str(r.id)] for r in members})
        for m in METRICS:
            assert got[m] == pytest.approx(want[m], rel=1e-9, abs=1e-12), (variant, name, m)
        judged = [r for r in members if r.task == "judgement"]
        if judged:
            acc = sum(judgement_label(text[str(r.id)]) == judgement_label(r.answer) for r in judged) / len(
                judged
            )
            assert got["judgement_accuracy"] == pytest.approx(acc)
        else:
            assert got["judgement_accuracy"] is None
    if variant == "exact":
        assert report["groups"]["event/judgement"]["judgement_accuracy"] == 1.0
        assert all(g["Bleu_1"] > 0.99 for g in report["groups"].values())
    if variant == "swapped":  # wrong answers must score clearly lower than right ones
        assert report["groups"]["clip"]["CIDEr"] < 1.0


def test_row_accounting_and_line_breaks(sample, coco, our_meteor):
    """Failed, unknown and duplicate rows are counted, not scored; line breaks inside a prediction (which shift
    the PTB tokenizer's lines and can stall METEOR) are scored like spaces."""
    rows, picked = sample
    clip = [r for r in picked if r.level_task == "clip/caption"][:12]
    preds = []
    for r in clip:
        words = r.answer.split()
        preds.append(
            {"id": r.id, "prediction": " ".join(words[:5]) + "\r\n" + " ".join(words[5:]) + "\u2028x"}
        )
    preds.append({"id": clip[0].id, "prediction": "overwritten later", "status": "ok"})
    preds[-1], preds[0] = preds[0], preds[-1]  # the duplicate comes first, the real line last
    preds.append({"id": picked[-1].id, "prediction": None, "status": "failed", "error": "corrupt video"})
    preds.append({"id": "no-such-id", "prediction": "x", "status": "ok"})
    with pytest.warns(UserWarning, match="not in the instructions"):
        report = evaluate_reasoning(preds, rows, meteor=our_meteor, progress=False)
    assert report["rows"]["scored"] == 12
    assert report["rows"]["failed"] == 1 and report["failed_ids"] == [str(picked[-1].id)]
    assert report["rows"]["unknown_ids"] == 1 and report["rows"]["duplicate_lines"] == 1
    assert report["rows"]["missing"] == len(rows) - 13
    assert set(report["groups"]) == {"clip", "clip/caption"}
    spaced = {str(p["id"]): p["prediction"].replace("\r\n", " ").replace("\u2028", " ") for p in preds[1:13]}
    want = coco({str(r.id): r.answer for r in clip}, spaced)
    for m in METRICS:
        assert report["groups"]["clip"][m] == pytest.approx(want[m], rel=1e-9, abs=1e-12)


def test_markdown_table_layout(sample, our_meteor):
    rows, picked = sample
    preds = _make_predictions(picked, "exact")
    report = evaluate_reasoning(preds, rows, meteor=our_meteor, progress=False)
    table = markdown_tables(report)
    head, _, ours, paper = table.splitlines()[:4]
    assert head.split("|")[2].strip() == "BLEU C" and head.split("|")[-2].strip() == "ROUGE V"
    bleu_clip = sum(report["groups"]["clip"][f"Bleu_{i}"] for i in range(1, 5))
    assert ours.split("|")[2].strip() == f"{bleu_clip:.3f}"  # the paper's BLEU is BLEU-1 + ... + BLEU-4
    assert paper.split("|")[2].strip() == f"{PAPER_HOLMES_VAU['BLEU']['clip']:.3f}"
    assert "Holmes-VAU" not in markdown_tables(report, include_paper=False)
    json.dumps(report)  # the report is plain JSON


def test_read_predictions_skips_malformed_lines(tmp_path):
    p = tmp_path / "preds.jsonl"
    p.write_text(
        '{"id": 1, "prediction": "a", "status": "ok"}\n{broken\n\n[1, 2]\n{"id": "2", "prediction": "b"}\n'
    )
    rows, problems = read_predictions(p)
    assert [r["id"] for r in rows] == [1, "2"]
    assert len(problems) == 2 and ":2:" in problems[0] and ":4:" in problems[1]
    with pytest.raises(FileNotFoundError, match="predictions file not found"):
        read_predictions(tmp_path / "missing.jsonl")


def test_cli_writes_report(sample, our_meteor, monkeypatch, tmp_path, capsys):
    """tools/evaluate.py reasoning end to end (sharing this module's METEOR process to skip a JVM start)."""
    from holmesvau.cli import evaluate as cli
    from holmesvau.eval import reasoning as reasoning_mod

    class Shared:
        def __init__(self, *args, **kwargs):
            pass

        compute_score = staticmethod(our_meteor.compute_score)

        def close(self):
            pass

    monkeypatch.setattr(reasoning_mod, "MeteorScorer", Shared)
    rows, picked = sample
    instr = tmp_path / "test.jsonl"
    chosen = [r for r in picked if r.type == "video"][:8]
    instr.write_text(
        "".join(
            json.dumps(
                {
                    "id": r.id,
                    "type": r.type,
                    "task": r.task,
                    "video": r.video,
                    "prompt": r.prompt,
                    "anwser": r.answer,
                }
            )
            + "\n"
            for r in chosen
        )
    )
    preds = tmp_path / "preds.jsonl"
    lines = [json.dumps({"id": r.id, "prediction": r.answer, "status": "ok"}) for r in chosen[:-1]]
    lines.append(json.dumps({"id": chosen[-1].id, "prediction": None, "status": "failed", "error": "boom"}))
    preds.write_text("\n".join(lines) + "\n{oops\n")
    out = tmp_path / "out" / "report.json"
    argv = [
        "reasoning",
        "--predictions",
        str(preds),
        "--annotations",
        str(instr),
        "--output",
        str(out),
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    report = json.loads(out.read_text())
    assert (
        report["rows"]["scored"] == 7
        and report["rows"]["failed"] == 1
        and report["rows"]["malformed_lines"] == 1
    )
    assert report["groups"]["video"]["n"] == 7 and report["groups"]["video"]["Bleu_1"] > 0.99
    captured = capsys.readouterr()
    assert "| This run |" in captured.out and "Holmes-VAU (paper, Table 2)" in captured.out
    assert (
        cli.main(["reasoning", "--predictions", str(tmp_path / "nope.jsonl"), "--annotations", str(instr)])
        == 2
    )


def test_raw_rows_and_instruction_objects_agree(sample, our_meteor):
    rows, picked = sample
    chosen = [r for r in picked if r.type == "event"][:10]
    raw = [{"id": r.id, "type": r.type, "task": r.task, "video": r.video, "anwser": r.answer} for r in chosen]
    preds = [
        {"id": str(r.id), "prediction": r.answer.split(",")[0], "status": "ok"} for r in chosen
    ]  # str ids too
    a = evaluate_reasoning(preds, raw, meteor=our_meteor, progress=False)
    b = evaluate_reasoning(preds, chosen, meteor=our_meteor, progress=False)
    assert a["groups"] == b["groups"] and a["rows"]["scored"] == 10
