"""Where the anomaly scorer's weights come from: a local file, an https URL, or the released checkpoint.

The released scorer is `holmesvau/ATS/anomaly_scorer.pth` of the pipixin321/HolmesVAU GitHub repository. It is
downloaded over https on first use into `<cache>/ats/anomaly_scorer.pth` (cache: `$HOLMESVAU_CACHE`, default
~/.cache/holmesvau) and read from there afterwards. The file is a pickle that torch.load reads (weights only), so
it is trusted only when its SHA-256 equals `RELEASED_SCORER_SHA256`: a download is verified before it is renamed
into the cache (a mismatch leaves nothing there), and the cached file is verified whenever it is used. Only https
is accepted (also across redirects); plain http and other schemes are refused. A URL of your own may pin its
checksum as pip does: `https://host/scorer.pth#sha256=<64 hex>`.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

# No commit of the original repository could be pinned from here, so the URLs name its default branch; the
# checksum below is what makes them safe (a changed file is refused, whatever the branch serves).
RELEASED_SCORER_URL = (
    "https://raw.githubusercontent.com/pipixin321/HolmesVAU/master/holmesvau/ATS/anomaly_scorer.pth"
)
# If the repository ever moves the file to git LFS, raw.githubusercontent serves a pointer; this host serves the file.
RELEASED_SCORER_MIRROR = (
    "https://media.githubusercontent.com/media/pipixin321/HolmesVAU/master/holmesvau/ATS/anomaly_scorer.pth"
)
RELEASED_SCORER_NAME = "anomaly_scorer.pth"
# SHA-256 of the released anomaly_scorer.pth. Not known to this version (it could not be looked up where it was
# written): until it is filled in, the released scorer is not fetched automatically; download it yourself (see
# _advice) and pass it with --scorer.
RELEASED_SCORER_SHA256: str | None = None
MAX_DOWNLOAD_BYTES = 512 << 20  # the released file is ~26 MB
_SHA256 = re.compile(r"[0-9a-f]{64}")


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
        f"{RELEASED_SCORER_URL}`), check it, and pass it: --scorer path/to/anomaly_scorer.pth "
        "(API: HolmesVAU.from_pretrained(..., scorer='path/to/anomaly_scorer.pth')), "
        "or run without the anomaly-focused sampler: --no-ats (API: scorer=False)"
    )


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split_url(url: str) -> tuple[str, str | None]:
    """(the URL without its fragment, the sha256 its `#sha256=` fragment pins or None). Refuses non-https."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https":
        raise ScorerError(
            f"refusing to fetch the anomaly scorer from {url!r}: only https URLs (or local files) are accepted"
        )
    pinned = None
    if parts.fragment:
        m = re.fullmatch(r"sha256=([0-9a-fA-F]{64})", parts.fragment)
        if m is None:
            raise ScorerError(f"{url!r}: the only URL fragment understood is #sha256=<64 hex digits>")
        pinned = m.group(1).lower()
    return urllib.parse.urlunsplit(parts._replace(fragment="")), pinned


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme != "https":
            raise OSError(f"refused a redirect to a non-https URL: {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(url: str, timeout: float):
    """The response for an https URL (redirects stay on https)."""
    return urllib.request.build_opener(_HttpsOnlyRedirects).open(url, timeout=timeout)


def download(url: str, dst: Path, sha256: str | None, timeout: float = 60.0) -> Path:
    """Fetch the https `url` to `dst` atomically, first verifying its SHA-256 when one is given (None: a URL of
    the user's own that pins none)."""
    url, _ = split_url(url)
    if sha256 is not None and not _SHA256.fullmatch(sha256):
        raise ValueError(f"expected SHA-256 must be 64 lowercase hex digits, got {sha256!r}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dst.name + ".", suffix=".part", dir=dst.parent)
    try:
        h, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, _open(url, timeout) as resp:
            for block in iter(lambda: resp.read(1 << 20), b""):
                size += len(block)
                if size > MAX_DOWNLOAD_BYTES:
                    raise OSError(f"more than {MAX_DOWNLOAD_BYTES >> 20} MB: not a scorer")
                if size == len(block) and block.startswith(b"version https://git-lfs"):
                    raise OSError("got a git LFS pointer, not the file")
                h.update(block)
                out.write(block)
        if size == 0:
            raise OSError("empty response")
        if sha256 is not None and h.hexdigest() != sha256:
            raise ScorerError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {h.hexdigest()} ({size} bytes); "
                "the file was not saved"
            )
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dst


def _verified(path: Path, sha256: str) -> Path:
    got = sha256_of(path)
    if got != sha256:
        raise ScorerError(
            f"{path}: sha256 {got} differs from the expected {sha256}; it is not used. Delete it to fetch the "
            "file again, or pass a scorer of your own with --scorer"
        )
    return path


def resolve_scorer(
    scorer: str | Path | None = None,
    cache_dir: str | Path | None = None,
    url: str | None = None,
) -> Path:
    """A local file holding scorer weights. `scorer`: None (the released scorer, verified against
    RELEASED_SCORER_SHA256 and cached), a path, or an https URL (optionally `#sha256=...`).
    `url`: where the released scorer is fetched from (default RELEASED_SCORER_URL, then the mirror)."""
    if scorer is not None and "://" not in str(scorer):
        path = Path(scorer).expanduser()
        if not path.is_file():
            raise ScorerError(f"anomaly scorer not found: {path}. " + _advice())
        return path
    root = _cache_root(cache_dir) / "ats"
    if scorer is None:
        sha256 = RELEASED_SCORER_SHA256
        if sha256 is None:
            raise ScorerError(
                "this version has no pinned SHA-256 for the released anomaly scorer, so it is not fetched "
                "automatically. " + _advice()
            )
        urls = [url] if url else [RELEASED_SCORER_URL, RELEASED_SCORER_MIRROR]
        for u in urls:
            split_url(u)  # refuse a non-https URL before anything else
        dst = root / RELEASED_SCORER_NAME
    else:  # other URLs are cached under a name of their own
        bare, sha256 = split_url(str(scorer))
        urls = [str(scorer)]
        dst = root / f"{hashlib.sha1(bare.encode()).hexdigest()[:12]}-{Path(bare).name or 'scorer.pth'}"
    if dst.is_file() and dst.stat().st_size > 0:
        return _verified(dst, sha256) if sha256 else dst
    errors = []
    for u in urls:  # a URL of the user's own without #sha256= is their choice, as a local file would be
        try:
            return download(u, dst, sha256)
        except ScorerError:
            raise
        except Exception as e:  # noqa: BLE001 - offline, DNS, HTTP errors: one clear message
            errors.append(f"{u} ({type(e).__name__}: {e})")
    raise ScorerError(
        f"could not fetch the anomaly scorer from {'; '.join(errors)}; nothing cached at {dst}. " + _advice()
    )


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
