"""Finding the anomaly scorer: local path, cached release, one-time download, clear advice when offline."""

import functools
import hashlib
import http.server
import threading

import pytest
import torch

from holmesvau.ats import weights
from holmesvau.ats.weights import ScorerError, load_scorer, resolve_scorer
from holmesvau.testing import make_random_scorer


@pytest.fixture
def server(tmp_path):
    """A local http server over tmp_path/www, counting requests."""
    root = tmp_path / "www"
    root.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root, hits
    httpd.shutdown()
    httpd.server_close()


def test_local_path_and_missing_path(tmp_path):
    f = make_random_scorer(tmp_path / "s.pth", input_dim=64)
    assert resolve_scorer(f) == f
    with pytest.raises(ScorerError, match=r"not found.*--scorer .*--no-ats"):
        resolve_scorer(tmp_path / "nope.pth")


def _https_via(monkeypatch, base):
    """Serve https://scorer.test/... from the local http server (the code under test refuses plain http)."""
    import urllib.request

    seen = []

    def fake_open(url, timeout):
        seen.append(url)
        assert url.startswith("https://scorer.test/")
        return urllib.request.urlopen(url.replace("https://scorer.test", base), timeout=timeout)

    monkeypatch.setattr(weights, "_open", fake_open)
    return seen


def _pin_release(monkeypatch, file_bytes):
    monkeypatch.setattr(weights, "RELEASED_SCORER_URL", "https://scorer.test/anomaly_scorer.pth")
    monkeypatch.setattr(weights, "RELEASED_SCORER_MIRROR", "https://scorer.test/mirror/anomaly_scorer.pth")
    monkeypatch.setattr(weights, "RELEASED_SCORER_SHA256", hashlib.sha256(file_bytes).hexdigest())


def test_released_scorer_is_downloaded_once_verified_and_cached(server, tmp_path, monkeypatch):
    base, root, hits = server
    make_random_scorer(root / "anomaly_scorer.pth", input_dim=64)
    _https_via(monkeypatch, base)
    _pin_release(monkeypatch, (root / "anomaly_scorer.pth").read_bytes())
    cache = tmp_path / "cache"
    first = resolve_scorer(None, cache_dir=cache)
    assert first == cache / "ats" / "anomaly_scorer.pth" and len(hits) == 1
    assert first.read_bytes() == (root / "anomaly_scorer.pth").read_bytes()
    assert resolve_scorer(None, cache_dir=cache) == first and len(hits) == 1  # no second fetch
    model = load_scorer(None, cache_dir=cache)
    served = torch.load(root / "anomaly_scorer.pth", map_location="cpu", weights_only=True)
    assert model.state_dict().keys() == served.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in served.items())  # the served weights, loaded
    first.write_bytes(first.read_bytes()[:-1] + b"x")  # the cached file changed: refused, not used
    with pytest.raises(ScorerError, match="differs from the expected"):
        resolve_scorer(None, cache_dir=cache)


def test_checksum_mismatch_is_refused_and_nothing_cached(server, tmp_path, monkeypatch):
    base, root, hits = server
    make_random_scorer(root / "anomaly_scorer.pth", input_dim=64)
    _https_via(monkeypatch, base)
    _pin_release(monkeypatch, b"the released file is something else")
    with pytest.raises(ScorerError, match=r"checksum mismatch.*expected sha256 [0-9a-f]{64}.*not saved"):
        resolve_scorer(None, cache_dir=tmp_path / "cache")
    assert len(hits) == 1 and not any((tmp_path / "cache").rglob("*.pth*")), "nothing left in the cache"


def test_no_pinned_checksum_no_download(server, tmp_path, monkeypatch):
    base, root, hits = server
    make_random_scorer(root / "anomaly_scorer.pth", input_dim=64)
    _https_via(monkeypatch, base)
    _pin_release(monkeypatch, b"")
    monkeypatch.setattr(weights, "RELEASED_SCORER_SHA256", None)
    with pytest.raises(
        ScorerError, match=r"no pinned SHA-256.*--scorer path/to/anomaly_scorer.pth.*--no-ats"
    ):
        resolve_scorer(None, cache_dir=tmp_path)
    assert hits == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/s.pth", "ftp://host/s.pth", "file:///etc/passwd"])
def test_only_https_urls(url, tmp_path, monkeypatch):
    with pytest.raises(ScorerError, match="only https"):
        resolve_scorer(url, cache_dir=tmp_path / "c")
    monkeypatch.setattr(weights, "RELEASED_SCORER_URL", url)  # the release URL is held to the same rule
    monkeypatch.setattr(weights, "RELEASED_SCORER_SHA256", "0" * 64)
    with pytest.raises(ScorerError, match="only https"):
        resolve_scorer(None, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_redirect_to_http_is_refused():
    from email.message import Message
    from urllib.request import Request

    handler = weights._HttpsOnlyRedirects()
    with pytest.raises(OSError, match="non-https"):
        handler.redirect_request(
            Request("https://a.test/x"), None, 302, "Found", Message(), "http://b.test/x"
        )


def test_own_url_with_pinned_checksum(server, tmp_path, monkeypatch):
    base, root, _ = server
    data = (make_random_scorer(root / "mine.pth", input_dim=64)).read_bytes()
    _https_via(monkeypatch, base)
    good = hashlib.sha256(data).hexdigest()
    got = resolve_scorer(f"https://scorer.test/mine.pth#sha256={good}", cache_dir=tmp_path / "a")
    assert got.read_bytes() == data
    with pytest.raises(ScorerError, match="checksum mismatch"):
        resolve_scorer(f"https://scorer.test/mine.pth#sha256={'0' * 64}", cache_dir=tmp_path / "b")
    assert not any((tmp_path / "b").rglob("*.pth*"))


def test_offline_without_cache_says_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "RELEASED_SCORER_URL", "https://127.0.0.1:9/anomaly_scorer.pth")
    monkeypatch.setattr(weights, "RELEASED_SCORER_MIRROR", "https://127.0.0.1:9/mirror.pth")
    monkeypatch.setattr(weights, "RELEASED_SCORER_SHA256", "0" * 64)
    with pytest.raises(ScorerError, match=r"could not fetch.*--scorer path/to/anomaly_scorer.pth.*--no-ats"):
        resolve_scorer(None, cache_dir=tmp_path)
    assert not any((tmp_path / "ats").glob("*")), "no partial download left behind"


def test_git_lfs_pointer_is_not_taken_for_the_file(server, tmp_path, monkeypatch):
    base, root, _ = server
    _https_via(monkeypatch, base)
    (root / "lfs.pth").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n")
    with pytest.raises(ScorerError, match="LFS"):
        resolve_scorer("https://scorer.test/lfs.pth", cache_dir=tmp_path)


def test_not_a_scorer_file(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"weight": torch.zeros(3)}, bad)
    with pytest.raises(ScorerError, match="bad.pth"):
        load_scorer(bad)


def test_from_pretrained_fails_fast_offline(tmp_path, monkeypatch):
    from holmesvau.pipeline import HolmesVAU

    monkeypatch.setattr(weights, "RELEASED_SCORER_URL", "https://127.0.0.1:9/anomaly_scorer.pth")
    monkeypatch.setattr(weights, "RELEASED_SCORER_MIRROR", "https://127.0.0.1:9/mirror.pth")
    monkeypatch.setattr(weights, "RELEASED_SCORER_SHA256", "0" * 64)
    # the scorer is resolved before the model: the (absent) model folder is never reached
    with pytest.raises(ScorerError, match="--no-ats"):
        HolmesVAU.from_pretrained(tmp_path / "no-model", scorer=None, cache_dir=tmp_path)
