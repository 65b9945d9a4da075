"""Where the anomaly scorer's weights come from: a local file, a URL, or the released checkpoint (fetched once).

The released scorer is `holmesvau/ATS/anomaly_scorer.pth` of the pipixin321/HolmesVAU GitHub repository. It is
downloaded over https on first use into `<cache>/ats/anomaly_scorer.pth` (cache: `$HOLMESVAU_CACHE`, default
~/.cache/holmesvau) and read from there afterwards. Offline with nothing cached, the error says what to pass.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

RELEASED_SCORER_URL = (
    "https://raw.githubusercontent.com/pipixin321/HolmesVAU/master/holmesvau/ATS/anomaly_scorer.pth"
)
# If the repository ever moves the file to git LFS, raw.githubusercontent serves a pointer; this host serves the file.
RELEASED_SCORER_MIRROR = (
    "https://media.githubusercontent.com/media/pipixin321/HolmesVAU/master/holmesvau/ATS/anomaly_scorer.pth"
)
RELEASED_SCORER_NAME = "anomaly_scorer.pth"


class ScorerError(RuntimeError):
    """The anomaly scorer cannot be found, fetched or loaded; the message says what to pass instead."""


def _cache_root(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    from holmesvau.model.loading import default_cache_dir

    return default_cache_dir()


def _advice() -> str:
    return (
        "Download it elsewhere (e.g. `curl -L -o anomaly_scorer.pth "
        f"{RELEASED_SCORER_URL}`) and pass it: --scorer path/to/anomaly_scorer.pth "
        "(API: HolmesVAU.from_pretrained(..., scorer='path/to/anomaly_scorer.pth')), "
        "or run without the anomaly-focused sampler: --no-ats (API: scorer=False)"
    )


def download(url: str, dst: Path, timeout: float = 60.0) -> Path:
    """Fetch `url` to `dst` atomically (a partial download never looks like a finished file)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dst.name + ".", suffix=".part", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - https URL
            shutil.copyfileobj(resp, out)
        with open(tmp, "rb") as f:
            head = f.read(64)
        if not head:
            raise OSError("empty response")
        if head.startswith(b"version https://git-lfs"):
            raise OSError("got a git LFS pointer, not the file")
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dst


def resolve_scorer(
    scorer: str | Path | None = None,
    cache_dir: str | Path | None = None,
    url: str | None = None,
) -> Path:
    """A local file holding scorer weights. `scorer`: None (the released scorer, cached), a path, or an http(s) URL.
    `url`: where the released scorer is fetched from (default RELEASED_SCORER_URL)."""
    urls = [url] if url else [RELEASED_SCORER_URL, RELEASED_SCORER_MIRROR]
    if scorer is not None and not str(scorer).startswith(("http://", "https://")):
        path = Path(scorer).expanduser()
        if not path.is_file():
            raise ScorerError(f"anomaly scorer not found: {path}. " + _advice())
        return path
    if scorer is not None:
        urls = [str(scorer)]
    url = urls[0]
    root = _cache_root(cache_dir) / "ats"
    if scorer is None:
        dst = root / RELEASED_SCORER_NAME
    else:  # other URLs are cached under a name of their own
        dst = root / f"{hashlib.sha1(url.encode()).hexdigest()[:12]}-{Path(url).name or 'scorer.pth'}"
    if dst.is_file() and dst.stat().st_size > 0:
        return dst
    try:
        for i, u in enumerate(urls):
            try:
                return download(u, dst)
            except Exception:  # noqa: BLE001
                if i == len(urls) - 1:
                    raise
    except Exception as e:  # noqa: BLE001 - offline, DNS, HTTP errors: one clear message
        raise ScorerError(
            f"could not fetch the anomaly scorer from {url} ({type(e).__name__}: {e}); nothing cached at {dst}. "
            + _advice()
        ) from e


def load_scorer(
    scorer: str | Path | None = None,
    device="cpu",
    cache_dir: str | Path | None = None,
):
    """Resolve and load the scorer (`holmesvau.ats.load_anomaly_scorer`), errors as ScorerError naming the file."""
    from holmesvau.ats import load_anomaly_scorer

    path = resolve_scorer(scorer, cache_dir)
    try:
        return load_anomaly_scorer(path, device=device)
    except Exception as e:  # noqa: BLE001 - wrong keys/shapes, not a torch file, ...
        raise ScorerError(
            f"{path}: cannot load as an anomaly scorer ({type(e).__name__}: {e}). " + _advice()
        ) from e
