"""Finding the anomaly scorer: local path, cached release, one-time download, clear advice when offline."""

import functools
import http.server
import threading

import pytest
import torch

from holmesvau.ats import weights
from holmesvau.ats.weights import ScorerError, load_scorer, make_random_scorer, resolve_scorer


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


def _dead_url():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/anomaly_scorer.pth"


def test_local_path_and_missing_path(tmp_path):
    f = make_random_scorer(tmp_path / "s.pth", input_dim=64)
    assert resolve_scorer(f) == f
    with pytest.raises(ScorerError, match=r"not found.*--scorer .*--no-ats"):
        resolve_scorer(tmp_path / "nope.pth")


def test_released_scorer_is_downloaded_once_and_cached(server, tmp_path, monkeypatch):
    base, root, hits = server
    make_random_scorer(root / "anomaly_scorer.pth", input_dim=64)
    monkeypatch.setattr(weights, "RELEASED_SCORER_URL", f"{base}/anomaly_scorer.pth")
    cache = tmp_path / "cache"
    first = resolve_scorer(None, cache_dir=cache)
    assert first == cache / "ats" / "anomaly_scorer.pth" and len(hits) == 1
    assert resolve_scorer(None, cache_dir=cache) == first and len(hits) == 1  # no second fetch
    model = load_scorer(None, cache_dir=cache)
    served = torch.load(root / "anomaly_scorer.pth", map_location="cpu", weights_only=True)
    assert model.state_dict().keys() == served.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in served.items())  # the served weights, loaded


def test_offline_without_cache_says_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "RELEASED_SCORER_URL", _dead_url())
    monkeypatch.setattr(weights, "RELEASED_SCORER_MIRROR", _dead_url())
    with pytest.raises(ScorerError, match=r"--scorer path/to/anomaly_scorer.pth.*--no-ats"):
        resolve_scorer(None, cache_dir=tmp_path)
    assert not any((tmp_path / "ats").glob("*")), "no partial download left behind"


def test_git_lfs_pointer_is_not_taken_for_the_file(server, tmp_path):
    base, root, _ = server
    (root / "lfs.pth").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n")
    with pytest.raises(ScorerError, match="LFS"):
        resolve_scorer(f"{base}/lfs.pth", cache_dir=tmp_path)


def test_not_a_scorer_file(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"weight": torch.zeros(3)}, bad)
    with pytest.raises(ScorerError, match="bad.pth"):
        load_scorer(bad)


def test_from_pretrained_fails_fast_offline(tmp_path, monkeypatch):
    from holmesvau.pipeline import HolmesVAU

    monkeypatch.setattr(weights, "RELEASED_SCORER_URL", _dead_url())
    monkeypatch.setattr(weights, "RELEASED_SCORER_MIRROR", _dead_url())
    # the scorer is resolved before the model: the (absent) model folder is never reached
    with pytest.raises(ScorerError, match="--no-ats"):
        HolmesVAU.from_pretrained(tmp_path / "no-model", scorer=None, cache_dir=tmp_path)
