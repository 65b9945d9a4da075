"""The files released with the original Holmes-VAU (github.com/pipixin321/HolmesVAU), pinned: the one registry
every download of them goes through.

Each file is named by a commit (never a branch), its path and its git blob id (`git hash-object FILE`), which fixes
every byte. A file enters its place (the cache, HIVAU-70k/) only once its blob id matches, and is checked again
when used; a mismatch is refused naming the file, the id expected and what came, leaving nothing behind.
`HOLMESVAU_GITHUB_MIRROR=https://host/prefix` replaces https://raw.githubusercontent.com (verified all the same).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from holmesvau.download import FetchError, VerifyError, download, require_https

REPOSITORY = "pipixin321/HolmesVAU"
COMMIT = "fdef61ec58e8cfa747ff5f40d7e89e9bd6f9e90d"  # its latest; the scorer is unchanged since 42f1d741
GITHUB_RAW = "https://raw.githubusercontent.com"
MIRROR_ENV = "HOLMESVAU_GITHUB_MIRROR"


@dataclass(frozen=True)
class ReleasedFile:
    name: str  # how the code asks for it (its file name)
    path: str  # in the repository
    blob: str  # git blob id
    size: int | None = None  # bytes, where known here (else fixed by the blob id alone)
    max_bytes: int = 1 << 30  # reading stops past this (size, when known)
    commit: str = COMMIT
    repository: str = REPOSITORY

    def url(self) -> str:
        base = os.environ.get(MIRROR_ENV) or GITHUB_RAW
        require_https(base, f"use {MIRROR_ENV}=")
        return f"{base.rstrip('/')}/{self.repository}/{self.commit}/{self.path}"

    def describe(self) -> str:
        return f"{self.name} ({self.repository}@{self.commit[:12]}:{self.path})"


_FILES = (
    ReleasedFile("anomaly_scorer.pth", "holmesvau/ATS/anomaly_scorer.pth",
                 "f9d9eb6872f4ba07ad595b2c8463188efcf47542", max_bytes=512 << 20),
    ReleasedFile("robbery.mp4", "examples/robbery.mp4", "4a42e5636065cd15c25e294a20437f9f60796aaf", 1_700_781),
    ReleasedFile("car_accident.mp4", "examples/car_accident.mp4", "daf2694846d05ac902ac5d4a525933ae1671d93a",
                 218_490),
    ReleasedFile("earthquake.mp4", "examples/earthquake.mp4", "0709af9960e71e6e15b64fb382c83769cbe4b830", 415_503),
    ReleasedFile("merge_instruction_test_final.jsonl", "HIVAU-70k/instruction/merge_instruction_test_final.jsonl",
                 "da19e780ed95beb2404c389d807ff09ed36a73c2", 1_420_343),
    ReleasedFile("merge_instruction_train_final.jsonl", "HIVAU-70k/instruction/merge_instruction_train_final.jsonl",
                 "b7c164cc96bfdd2f99b2857cfaec655fdd7cff9d"),
    ReleasedFile("ucf_database_test.json", "HIVAU-70k/raw_annotations/ucf_database_test.json",
                 "ad1da7ba8f538a1678ac61c9126e47b950c29df1", 796_584),
    ReleasedFile("ucf_database_train.json", "HIVAU-70k/raw_annotations/ucf_database_train.json",
                 "f6b8070478f4c40849fda32d41c9a0c6d256bea8"),
    ReleasedFile("xd_database_test.json", "HIVAU-70k/raw_annotations/xd_database_test.json",
                 "b162ea8dd786f01445d3e53db561b817d9121f0e"),
    ReleasedFile("xd_database_train.json", "HIVAU-70k/raw_annotations/xd_database_train.json",
                 "a40070646104c8cd98636dede86d75cc19d3bfe7"),
)  # fmt: skip
REGISTRY: dict[str, ReleasedFile] = {f.name: f for f in _FILES}
SCORER = "anomaly_scorer.pth"
EXAMPLES = ("robbery.mp4", "car_accident.mp4", "earthquake.mp4")
DEFAULT_EXAMPLE = "robbery.mp4"  # the one the original inference.py asks about
ANNOTATIONS = {
    "test": ("merge_instruction_test_final.jsonl", "ucf_database_test.json", "xd_database_test.json"),
    "train": ("merge_instruction_train_final.jsonl", "ucf_database_train.json", "xd_database_train.json"),
}


class Unreachable(OSError):
    """Some released files could not be fetched; the message names each and what gives a local copy."""


def git_blob_id(path: str | Path) -> str:
    """What `git hash-object PATH` prints: SHA-1 of b"blob <size>\\0" + the bytes."""
    with open(path, "rb") as f:
        h = hashlib.sha1(b"blob %d\0" % os.fstat(f.fileno()).st_size)
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: str | Path, name: str, label: str | None = None) -> Path:
    """`path` if it holds the released file `name`, else VerifyError naming it (as `label`), the id expected and
    what came."""
    f, path = REGISTRY[name], Path(path)
    size = path.stat().st_size
    if f.size is not None and size > f.size:
        got = f"{size} bytes, more than its {f.size}"
    else:
        got = git_blob_id(path)
        if got == f.blob:
            return path
        got = f"blob {got} ({size} bytes)"
    raise VerifyError(
        f"{label or path} is not the released {f.describe()}: expected git blob {f.blob}, got {got}"
    )


def cached_path(name: str, cache_dir: str | Path | None = None) -> Path:
    """Where `name` is cached: <cache>/released/<commit[:12]>/<path in the repository>."""
    from holmesvau.model.loading import default_cache_dir

    f = REGISTRY[name]
    return Path(cache_dir or default_cache_dir()) / "released" / f.commit[:12] / f.path


def fetch(
    name: str, dst: str | Path | None = None, cache_dir: str | Path | None = None, progress=None
) -> Path:
    """The released file `name` at `dst` (default: its place in the cache), fetched once and verified; a file
    already at `dst` is verified, never replaced. VerifyError (nothing kept) or FetchError (unreachable)."""
    f = REGISTRY[name]
    dst = Path(dst) if dst is not None else cached_path(name, cache_dir)
    if dst.exists():
        try:
            return verify(dst, name)
        except VerifyError as e:  # not ours to delete: it may be a file the user put there
            raise VerifyError(f"{e}; it is not used (delete it to fetch the file again)") from None
    url, limit = f.url(), f.max_bytes if f.size is None else f.size
    try:
        download(url, dst, check=lambda p: verify(p, name, url), key=f.blob, max_bytes=limit, desc=name,
                 progress=progress)  # fmt: skip
    except VerifyError as e:  # verify names the url; a size cap hit during the transfer does not
        text = str(e)
        if not text.startswith(url):
            text = f"{url} is not the released {f.describe()}: expected git blob {f.blob}, got {text}"
        raise VerifyError(f"{text}; nothing was saved") from None
    return dst


def fetch_all(
    wanted: dict[str, str], cache_dir: str | Path | None = None, progress=None, dsts: dict | None = None
) -> dict[str, Path]:
    """Fetch every file of `wanted` (name -> how to give a local copy instead, for the message). A refused file
    raises its VerifyError at once; the unreachable ones are all named in one Unreachable error."""
    paths, failed = {}, []
    for name, instead in wanted.items():
        try:
            paths[name] = fetch(name, (dsts or {}).get(name), cache_dir, progress)
        except FetchError as e:
            failed.append(f"  {REGISTRY[name].describe()}: {e}\n    instead: {instead}")
    if failed:
        raise Unreachable(
            f"could not fetch {len(failed)} released file(s) (offline or behind a firewall?):\n"
            + "\n".join(failed)
            + "\nBehind a proxy, set HTTPS_PROXY; with a mirror of raw.githubusercontent.com, "
            + f"{MIRROR_ENV}=https://host/prefix"
        )
    return paths
