"""Finding the anomaly scorer: local path, cached release, one-time download, clear advice when offline."""

import hashlib

import pytest
import torch
from https_mirror import Mirror

from holmesvau.ats.weights import ScorerError, load_scorer, resolve_scorer
from holmesvau.testing import make_random_scorer


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local https server (test CA) the client trusts through REQUESTS_CA_BUNDLE."""
    m = Mirror(tmp_path)
    for k, v in m.env().items():
        monkeypatch.setenv(k, v)
    yield m
    m.close()


def _offline(monkeypatch):
    monkeypatch.setenv("HOLMESVAU_GITHUB_MIRROR", "https://127.0.0.1:9/gh")  # nothing listens on port 9


def test_local_path_and_missing_path(tmp_path):
    f = make_random_scorer(tmp_path / "s.pth", input_dim=64)
    assert resolve_scorer(f) == f
    with pytest.raises(ScorerError, match=r"not found.*--scorer .*--no-ats"):
        resolve_scorer(tmp_path / "nope.pth")


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/s.pth", "ftp://host/s.pth", "file:///etc/passwd"])
def test_only_https_urls(url, tmp_path, monkeypatch):
    with pytest.raises(ScorerError, match="only https"):
        resolve_scorer(url, cache_dir=tmp_path / "c")
    monkeypatch.setenv("HOLMESVAU_GITHUB_MIRROR", url.rsplit("/", 1)[0])  # the released file's mirror too
    with pytest.raises(ScorerError, match="only https"):
        resolve_scorer(None, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_redirect_to_http_is_refused(mirror, tmp_path):
    mirror.redirects["/mine.pth"] = "http://127.0.0.1:1/mine.pth"
    with pytest.raises(ScorerError, match="refusing to follow a redirect to 'http://127.0.0.1:1/mine.pth'"):
        resolve_scorer(mirror.url.removesuffix("/gh") + "/mine.pth", cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_own_url_with_pinned_checksum(mirror, tmp_path):
    data = make_random_scorer(tmp_path / "mine.pth", input_dim=64).read_bytes()
    mirror.files["/mine.pth"] = data
    url = mirror.url.removesuffix("/gh") + "/mine.pth"
    good = hashlib.sha256(data).hexdigest()
    got = resolve_scorer(f"{url}#sha256={good}", cache_dir=tmp_path / "a")
    assert got.read_bytes() == data and got.parent == tmp_path / "a" / "ats"
    assert resolve_scorer(f"{url}#sha256={good}", cache_dir=tmp_path / "a") == got and len(mirror.hits) == 1
    with pytest.raises(ScorerError, match=rf"checksum mismatch.*expected sha256 {'0' * 64}, got {good}"):
        resolve_scorer(f"{url}#sha256={'0' * 64}", cache_dir=tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_offline_without_cache_says_what_to_pass(tmp_path, monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(
        ScorerError, match=r"could not fetch.*127.0.0.1:9.*--scorer path/to/anomaly_scorer.pth.*--no-ats"
    ):
        resolve_scorer(None, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists(), "no partial download left behind"


def test_git_lfs_pointer_is_not_taken_for_the_file(mirror, tmp_path):
    mirror.files["/lfs.pth"] = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n"
    with pytest.raises(ScorerError, match="LFS"):
        resolve_scorer(mirror.url.removesuffix("/gh") + "/lfs.pth", cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_not_a_scorer_file(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"weight": torch.zeros(3)}, bad)
    with pytest.raises(ScorerError, match="bad.pth"):
        load_scorer(bad)


def test_from_pretrained_fails_fast_offline(tmp_path, monkeypatch):
    from holmesvau.pipeline import HolmesVAU

    _offline(monkeypatch)
    # the scorer is resolved before the model: the (absent) model folder is never reached
    with pytest.raises(ScorerError, match="--no-ats"):
        HolmesVAU.from_pretrained(tmp_path / "no-model", scorer=None, cache_dir=tmp_path)
