"""Where the anomaly scorer's weights come from: a local file, an https URL, or the released checkpoint.

The released scorer is `holmesvau/ATS/anomaly_scorer.pth` of the original repository, pinned by its git blob id
in holmesvau.released (the registry of released files): fetched over https on first use into the cache
(`$HOLMESVAU_CACHE/released/...`, default ~/.cache/holmesvau) only once it verifies, checked again whenever it is
used, and refused — never unpickled — otherwise. A URL of your own must be https and may pin its checksum as pip
does: `https://host/scorer.pth#sha256=<64 hex>`; it is cached under `<cache>/ats/`.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from pathlib import Path

from holmesvau import released
from holmesvau.download import FetchError, VerifyError, download

MAX_DOWNLOAD_BYTES = 512 << 20  # a URL of the user's own: the released file is far smaller


class ScorerError(RuntimeError):
    """The anomaly scorer cannot be found, fetched or loaded; the message says what to pass instead."""


# the last words of the advice; tools that cannot run without the scorer (watch.py) leave them out
NO_ATS_ADVICE = ", or run without the anomaly-focused sampler: --no-ats (API: scorer=False)"
INSTEAD = (
    "--scorer path/to/anomaly_scorer.pth (API: HolmesVAU.from_pretrained(..., scorer='path/to/anomaly_scorer.pth'))"
    + NO_ATS_ADVICE
)
ADVICE = f"Pass a scorer of your own: {INSTEAD}"


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


def resolve_scorer(
    scorer: str | Path | None = None, cache_dir: str | Path | None = None, progress: bool | None = None
) -> Path:
    """A local file holding scorer weights. `scorer`: None (the released scorer, fetched once and verified by
    its git blob id), a path, or an https URL (optionally `#sha256=...`)."""
    if scorer is not None and "://" not in str(scorer):
        path = Path(scorer).expanduser()
        if not path.is_file():
            raise ScorerError(f"anomaly scorer not found: {path}. " + ADVICE)
        return path
    try:
        if scorer is None:
            return released.fetch(released.SCORER, cache_dir=cache_dir, progress=progress)
        bare, sha256 = split_url(str(scorer))
        from holmesvau.model.loading import default_cache_dir

        url_id = hashlib.sha1(bare.encode()).hexdigest()
        name = f"{url_id[:12]}-{Path(bare).name or 'scorer.pth'}"
        dst = Path(cache_dir or default_cache_dir()) / "ats" / name
        if dst.is_file() and dst.stat().st_size > 0:
            if sha256 and (got := sha256_of(dst)) != sha256:
                raise ScorerError(
                    f"{dst}: sha256 {got} differs from the expected {sha256}; it is not used. Delete it to fetch "
                    "the file again, or pass a scorer of your own with --scorer"
                )
            return dst

        def check(path: Path) -> None:  # what came: never an LFS pointer, and the pinned sha256 if any
            with open(path, "rb") as f:
                if f.read(24).startswith(b"version https://git-lfs"):
                    raise VerifyError(f"{bare}: got a git LFS pointer, not the file; nothing was saved")
            if sha256 is not None and (got := sha256_of(path)) != sha256:
                raise VerifyError(
                    f"checksum mismatch for {bare}: expected sha256 {sha256}, got {got} ({path.stat().st_size} "
                    "bytes); the file was not saved"
                )

        return download(bare, dst, check=check, key=sha256 or url_id, max_bytes=MAX_DOWNLOAD_BYTES,
                        desc="anomaly scorer", progress=progress)  # fmt: skip
    except VerifyError as e:
        raise ScorerError(f"{e}. {ADVICE}") from None
    except FetchError as e:  # offline, DNS, HTTP errors: one clear message
        raise ScorerError(f"could not fetch the anomaly scorer: {e}; nothing was cached. {ADVICE}") from None


def load_scorer(scorer: str | Path | None = None, device="cpu", cache_dir: str | Path | None = None):
    """Resolve and load the scorer (`holmesvau.ats.load_anomaly_scorer`), errors as ScorerError naming the file."""
    from holmesvau.ats import load_anomaly_scorer

    path = resolve_scorer(scorer, cache_dir)
    try:
        return load_anomaly_scorer(path, device=device)
    except Exception as e:  # noqa: BLE001 - wrong keys/shapes, not a torch file, ...
        raise ScorerError(
            f"{path}: cannot load as an anomaly scorer ({type(e).__name__}: {e}). {ADVICE}"
        ) from e
