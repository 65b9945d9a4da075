"""`python inference.py`: answer printed, JSON and plot written (ATS frames = density-aware sampling of the reported
curve; a planted anomalous stretch draws most of them); bad inputs give one clear error line."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import expected_ats_frames, make_planted_scorer

from holmesvau.testing import make_random_scorer
from holmesvau.testing.synthetic import make_video

REPO = Path(__file__).resolve().parents[1]


def _run(*argv, timeout=300):
    """`python inference.py ARGS` as a user runs it -> CompletedProcess (text)."""
    cmd = [sys.executable, "inference.py", *map(str, argv)]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


BRIGHT = (30, 50)  # the planted anomalous stretch


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    return make_video(d / "long.mp4", 80, bright_ranges=[BRIGHT]), make_random_scorer(
        d / "s.pth", input_dim=64
    )


def test_cli_writes_json_and_plot(tiny_model_dir, tiny_lm, media, tmp_path):
    video, _ = media
    # a scorer whose curve is high on the bright stretch (tiny_lm is the model of tiny_model_dir)
    scorer = make_planted_scorer(tiny_lm, tmp_path / "planted.pth")
    cmd = [
        sys.executable, "inference.py", "--video", str(video), "--prompt", "What happens?",
        "--model", str(tiny_model_dir), "--scorer", str(scorer), "--select-frames", "4", "--dense-stride", "8",
        "--max-new-tokens", "4", "--device", "cpu", "--output", str(tmp_path / "r.json"),
        "--plot", str(tmp_path / "curve.png"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "HolmesVAU:" in proc.stdout and "User: What happens?" in proc.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["sampling"] == "ats" and result["dense_frame_indices"] == list(range(0, 80, 8))
    assert len(result["dense_scores"]) == 10
    assert result["frame_indices"] == expected_ats_frames(result, 4)
    assert result["answer"] in proc.stdout
    assert (tmp_path / "curve.png").stat().st_size > 1000
    inside = [BRIGHT[0] <= i < BRIGHT[1] for i in result["dense_frame_indices"]]
    assert [s > 0.9 for s in result["dense_scores"]] == inside, result["dense_scores"]  # the plant worked
    # 3 of 4 frames on the stretch (25% of the video; uniform sampling puts 1 there: [9, 29, 49, 68])
    assert sum(BRIGHT[0] <= i < BRIGHT[1] for i in result["frame_indices"]) == 3, result["frame_indices"]


def test_cli_frame_indices_need_no_scorer(tiny_model_dir, media, tmp_path):
    """Explicit frames: the scorer is never resolved (a missing or unreachable one does not matter), and
    --dtype takes torch's spelling too."""
    video, _ = media
    out = tmp_path / "r.json"
    proc = _run("--video", video, "--model", tiny_model_dir, "--scorer", tmp_path / "no-scorer.pth",
                "--frame-indices", "0,10,79", "--dtype", "float32", "--max-new-tokens", "2", "--device", "cpu",
                "--output", out, "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["frame_indices"] == [0, 10, 79] and result["sampling"] == "given"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # written atomically: no temporary left


@pytest.mark.parametrize(
    "case,pattern",
    [
        ("video", "missing.mp4: no such file"),
        ("model", "no-model-here: no such folder.*--model"),
        ("scorer", "--no-ats"),
        ("frames", "out of range"),
    ],
)
def test_cli_errors_are_one_clear_line(tiny_model_dir, media, tmp_path, case, pattern):
    video, scorer = media
    args = {"--video": str(video), "--model": str(tiny_model_dir), "--scorer": str(scorer)}
    if case == "video":
        args["--video"] = str(tmp_path / "missing.mp4")
    elif case == "model":
        args["--model"] = str(tmp_path / "no-model-here")
    elif case == "scorer":
        args["--scorer"] = str(tmp_path / "no-scorer.pth")
    argv = [x for kv in args.items() for x in kv] + ["--device", "cpu", "--max-new-tokens", "2", "--quiet"]
    if case == "frames":
        argv += ["--frame-indices", "0,500"]
    proc = _run(*argv)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and re.search(pattern, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "extra,pattern",
    [
        (["--tau", "inf"], "--tau: expected a finite number"),
        (["--tau", "nan"], "--tau: expected a finite number"),
        (["--tau", "-1"], "--tau: expected a number in"),
        (["--report-threshold", "nan"], "--report-threshold: expected a finite number"),
        (["--report-threshold", "1.5"], "--report-threshold: expected a number in"),
        (["--select-frames", "0"], "--select-frames: expected an integer >= 1"),
        (["--dtype", "float64"], "--dtype: expected one of"),
        (["--frame-indices", "1,x"], "--frame-indices: expected comma-separated integers"),
        (["--output", "{tmp}"], "--output: .* is a folder"),
        (["--plot", "{tmp}/"], "--plot: .* is a folder"),
        (["--report", "{file}"], "--report: .* is not a folder"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(tmp_path, extra, pattern):
    (tmp_path / "f.txt").write_text("mine")
    extra = [a.format(tmp=tmp_path, file=tmp_path / "f.txt") for a in extra]
    # a missing video and model: had the arguments been accepted, the error would name those instead
    proc = _run("--video", tmp_path / "missing.mp4", "--model", tmp_path / "nope", *extra, timeout=60)
    assert proc.returncode == 2 and re.search(pattern, proc.stderr), proc.stderr
    assert "missing.mp4" not in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_inference_does_not_import_deepspeed(tiny_original_dir, media, tmp_path):
    """DeepSpeed (installed for training) prints an accelerator warning on import: inference never imports it,
    also when it converts an original-format checkpoint at load."""
    video, _ = media
    code = (  # what `python inference.py ARGS` runs (the script is `sys.exit(main())`), then look at sys.modules
        "import sys\nfrom holmesvau.cli.inference import main\n"
        "rc = main(sys.argv[1:])\n"
        "print('DEEPSPEED', 'deepspeed' in sys.modules, 'RC', rc)"
    )
    cmd = [sys.executable, "-c", code, "--video", str(video), "--model", str(tiny_original_dir),
           "--no-ats", "--select-frames", "2", "--max-new-tokens", "2", "--device", "cpu", "--quiet"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "DEEPSPEED False RC 0" in proc.stdout, proc.stdout + proc.stderr
    assert "accelerator" not in proc.stdout + proc.stderr
    help_run = subprocess.run(
        [sys.executable, "-c", "import sys, holmesvau.pipeline, holmesvau.model; print('deepspeed' in sys.modules)"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert help_run.stdout.strip() == "False", help_run.stderr
