"""The released files of the original repository: pinned by git blob id (checked against `git hash-object` on the
real bytes of ../shared), fetched from a local https mirror (test CA) by `python inference.py` with no --video,
once; a tampered copy, a tampered scorer and no network at all each end in one clear message, exit 2, and nothing
in the cache."""

import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from https_mirror import Mirror

from holmesvau import released
from holmesvau.ats.weights import ScorerError, load_scorer
from holmesvau.cli.inference import main as inference_main
from holmesvau.testing import make_random_scorer

REPO = Path(__file__).resolve().parents[1]
VIDEO = released.REGISTRY["robbery.mp4"]
SCORER = released.REGISTRY["anomaly_scorer.pth"]


def git_hash_object(path: Path) -> str:
    return subprocess.run(
        ["git", "hash-object", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.parametrize(
    "name, rel",
    [(n, f"videos/{n}") for n in released.EXAMPLES]
    + [
        (
            "merge_instruction_test_final.jsonl",
            "data/HIVAU-70k/instruction/merge_instruction_test_final.jsonl",
        ),
        ("ucf_database_test.json", "data/HIVAU-70k/raw_annotations/ucf_database_test.json"),
    ],
)
def test_registry_ids_are_the_blob_ids_of_the_real_files(shared, name, rel):
    path, f = shared(rel), released.REGISTRY[name]
    assert git_hash_object(path) == f.blob == released.git_blob_id(path)
    assert path.stat().st_size == f.size
    assert f.url() == f"https://raw.githubusercontent.com/pipixin321/HolmesVAU/{released.COMMIT}/{f.path}"


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    m = Mirror(tmp_path)
    for k, v in {**m.env(), "HOLMESVAU_CACHE": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(k, v)
    yield m
    m.close()


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_inference_with_no_video_fetches_the_example_once(
    mirror, tmp_path, tiny_model_dir, shared, capsys, monkeypatch
):
    data = shared("videos/robbery.mp4").read_bytes()
    mirror.serve(VIDEO, data)
    args = ["--model", str(tiny_model_dir), "--no-ats", "--max-new-tokens", "4"]
    proc = subprocess.run([sys.executable, "inference.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cached = released.cached_path("robbery.mp4")
    assert files_in(tmp_path / "cache") == [cached] and cached.read_bytes() == data
    assert f"video: {cached}" in proc.stderr and "robbery.mp4" in proc.stderr
    assert "User: Could you specify the anomaly events present in the video?\nHolmesVAU: " in proc.stdout
    assert mirror.gets(VIDEO) == [None]
    # the second run, the seed's whole job with ATS: "the released scorer" is a stand-in sized to the tiny model,
    # pinned by its own blob id (the registry's code, the id swapped in); the video comes from the cache (verified
    # again), not fetched again
    scorer = make_random_scorer(tmp_path / "s.pth", input_dim=64)
    pinned = released.ReleasedFile(
        SCORER.name, SCORER.path, git_hash_object(scorer), max_bytes=SCORER.max_bytes
    )
    monkeypatch.setitem(released.REGISTRY, SCORER.name, pinned)
    mirror.serve(pinned, scorer.read_bytes())
    fast = ["--dense-stride", "200"]  # ATS on 14 snippets of the 2730 frames (speed only; 16: 171 snippets)
    assert inference_main(["--model", str(tiny_model_dir), "--max-new-tokens", "4", *fast]) == 0
    out, err = capsys.readouterr()
    assert "HolmesVAU: " in out and "sampling: ats" in err
    assert mirror.gets(VIDEO) == [None] and mirror.gets(pinned) == [None]
    assert files_in(tmp_path / "cache") == sorted([cached, released.cached_path(SCORER.name)])


def test_parallel_processes_fetch_a_file_once(mirror, tmp_path, shared):
    """torchrun ranks asking for the same file at once: one download (the others wait on its lock), every caller
    gets the verified file."""
    data = shared("videos/robbery.mp4").read_bytes()
    mirror.serve(VIDEO, data)
    mirror.pause = 0.5  # the first download is still in flight when the others ask
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: released.fetch("robbery.mp4"), range(4)))
    assert got == [released.cached_path("robbery.mp4")] * 4 and got[0].read_bytes() == data
    assert mirror.gets(VIDEO) == [None] and files_in(tmp_path / "cache") == got[:1]


@pytest.mark.parametrize("tamper", ["one byte changed", "one byte longer"])
def test_a_tampered_example_is_refused_and_nothing_cached(mirror, tmp_path, shared, capsys, tamper):
    data = shared("videos/robbery.mp4").read_bytes()
    bad = (
        data[:1000] + bytes([data[1000] ^ 1]) + data[1001:] if tamper == "one byte changed" else data + b"\0"
    )
    mirror.serve(VIDEO, bad)
    assert inference_main(["--model", str(tmp_path / "never-loaded"), "--no-ats"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: https://127.0.0.1:") and "is not the released robbery.mp4" in err
    assert f"expected git blob {VIDEO.blob}" in err and "nothing was saved" in err
    if tamper == "one byte changed":
        assert f"got blob {git_hash_object_bytes(bad, tmp_path)} (1700781 bytes)" in err
    else:
        assert "more than the 1700781" in err
    assert files_in(tmp_path / "cache") == [] and len(mirror.gets(VIDEO)) == 1


def git_hash_object_bytes(data: bytes, tmp_path: Path) -> str:
    p = tmp_path / "copy"
    p.write_bytes(data)
    return git_hash_object(p)


def test_the_released_scorer_is_verified_before_it_is_unpickled(mirror, tmp_path, monkeypatch):
    served = make_random_scorer(tmp_path / "s.pth", input_dim=64).read_bytes()
    mirror.serve(SCORER, served)
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    with pytest.raises(ScorerError, match=rf"is not the released anomaly_scorer.pth .*expected git blob {SCORER.blob}, got blob [0-9a-f]{{40}} \(\d+ bytes\); nothing was saved.*--no-ats"):  # fmt: skip
        load_scorer(None)
    assert loads == [] and files_in(tmp_path / "cache") == []
    # the same file, pinned by its own id (the registry's code, the id swapped): fetched once, loaded, re-checked
    monkeypatch.setitem(released.REGISTRY, SCORER.name, released.ReleasedFile(
        SCORER.name, SCORER.path, git_hash_object(tmp_path / "s.pth"), max_bytes=SCORER.max_bytes))  # fmt: skip
    model = load_scorer(None)
    want = real_load(tmp_path / "s.pth", weights_only=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in want.items()) and len(loads) == 1
    cached = released.cached_path(SCORER.name)
    assert (
        files_in(tmp_path / "cache") == [cached] and len(mirror.gets(SCORER)) == 2
    )  # the refused one, this one
    cached.write_bytes(served[:-1] + bytes([served[-1] ^ 1]))  # changed in the cache: refused, not unpickled
    with pytest.raises(ScorerError, match=rf"{cached} is not the released .*it is not used"):
        load_scorer(None)
    assert len(loads) == 1 and len(mirror.gets(SCORER)) == 2


def test_offline_one_message_names_every_missing_file(tmp_path, monkeypatch, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HOLMESVAU_GITHUB_MIRROR", f"https://127.0.0.1:{port}/gh")
    assert inference_main(["--cache-dir", str(tmp_path / "c")]) == 2  # returns: no exception, no traceback
    err = capsys.readouterr().err
    assert err.startswith("error: could not fetch 2 released file(s)") and err.count("\n") == 7, err
    assert "robbery.mp4 (pipixin321/HolmesVAU@fdef61ec58e8:examples/robbery.mp4)" in err
    assert "anomaly_scorer.pth (pipixin321/HolmesVAU@fdef61ec58e8:holmesvau/ATS/anomaly_scorer.pth)" in err
    assert (
        "instead: --video path/to/video.mp4" in err and "instead: --scorer path/to/anomaly_scorer.pth" in err
    )
    assert "--no-ats" in err and "HOLMESVAU_GITHUB_MIRROR" in err and "Connection refused" in err
    assert "ppxin321/HolmesVAU-2B (Hugging Face hub) is not cached yet: give a local copy with --model" in err
    assert not (tmp_path / "c").exists()
