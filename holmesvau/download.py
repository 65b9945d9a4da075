"""Fetching one file over https into place, all or nothing, with `requests` (HTTPS_PROXY, REQUESTS_CA_BUNDLE,
urllib3's connection retries), a Range request to resume a dropped transfer, and a progress bar on a terminal.
(pooch cannot resume, cap the size or refuse a redirect off https; huggingface_hub's http_get is an internal.)

The bytes go to a hidden partial `.<name>.<key>.part` beside the destination, named by the file so that the next
run resumes it, locked while one process fills it (parallel ranks fetch once), capped at `max_bytes`, and renamed
into place (holmesvau.files.atomic_target) only once the caller's `check` accepts it; a refused file is deleted.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from holmesvau.files import atomic_target

try:
    import fcntl
except ImportError:  # Windows: no lock (parallel fetches of one file each write their own bytes, then retry)
    fcntl = None

CHUNK = 1 << 16
ATTEMPTS = 5  # reads that break off mid-stream are resumed this many times (connects: urllib3's Retry below)


class FetchError(OSError):
    """The file could not be fetched (offline, DNS, TLS, HTTP status, a redirect off https)."""


class VerifyError(OSError):
    """What came is not the file that was expected; nothing was kept."""


def require_https(url: str, what: str = "download") -> str:
    if urllib.parse.urlsplit(url).scheme != "https":
        raise FetchError(f"refusing to {what} {url!r}: only https URLs are accepted")
    return url


def _session():
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    class HttpsOnlySession(requests.Session):
        def get_redirect_target(self, resp):
            target = super().get_redirect_target(resp)
            if target is not None:
                require_https(urllib.parse.urljoin(resp.url, target), "follow a redirect to")
            return target

    s = HttpsOnlySession()
    retry = Retry(
        total=3, backoff_factor=0.25, status_forcelist=(429, 500, 502, 503, 504), allowed_methods={"GET"}
    )
    s.adapters.clear()  # no http:// adapter: a plain-http request cannot be made at all
    s.mount("https://", HTTPAdapter(max_retries=retry))
    return s


def _reason(e: Exception) -> str:
    """The cause of a requests error in a few words (not urllib3's whole retry story)."""
    cause = getattr(e.args[0], "reason", None) if e.args else None
    text = re.sub(r"^\w*Connection\(.*?\): ", "", str(cause or e))
    return f"{type(cause or e).__name__}: {text}"


def _open_locked(partial: Path):
    """The partial file opened for appending, under an exclusive lock; reopened if another process renamed or
    removed it while we waited."""
    while True:
        f = open(partial, "ab")
        if fcntl is None:
            return f
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            if os.stat(partial).st_ino == os.fstat(f.fileno()).st_ino:
                return f
        except FileNotFoundError:
            pass
        f.close()


def _transfer(session, url: str, f, max_bytes: int, desc: str, progress: bool | None) -> None:
    """Append the rest of `url` to `f` (whose current size is what we have), resuming after dropped reads."""
    import requests
    from tqdm.auto import tqdm

    broken_read = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    broken = 0
    with tqdm(total=None, unit="B", unit_scale=True, desc=desc, disable=None if progress else True,
              file=sys.stderr, leave=False) as bar:  # fmt: skip
        while True:
            have = f.seek(0, os.SEEK_END)
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                r = session.get(url, headers=headers, stream=True, timeout=(15, 60))
            except requests.RequestException as e:  # connects were retried by urllib3 already
                raise FetchError(f"{url}: {_reason(e)}") from e
            with r:
                if have and r.status_code == 416:  # the partial already holds the whole file
                    return
                if r.status_code >= 400:
                    raise FetchError(f"{url}: HTTP {r.status_code} {r.reason}")
                if have and r.status_code != 206:  # the server ignored the Range: start again
                    f.truncate(0)
                    have = f.seek(0)
                length = r.headers.get("Content-Length", "")
                total = have + int(length) if length.isdigit() else None
                if total is not None and total > max_bytes:
                    raise VerifyError(f"{total} bytes announced, more than the {max_bytes} expected")
                bar.reset(total=total)
                bar.update(have)
                try:
                    for block in r.iter_content(CHUNK):
                        have += len(block)
                        if have > max_bytes:
                            raise VerifyError(f"more than the {max_bytes} bytes expected")
                        f.write(block)
                        f.flush()  # on disk as it comes: a killed run resumes from here
                        bar.update(len(block))
                    f.flush()
                    return
                except broken_read as e:
                    f.flush()  # keep what came; the next request asks for the rest
                    broken += 1
                    if broken >= ATTEMPTS:
                        raise FetchError(
                            f"{url}: broke off {broken} times, last: {type(e).__name__}: {e}"
                        ) from e


def download(
    url: str,
    dst: str | Path,
    *,
    check: Callable[[Path], None] | None,
    key: str,
    max_bytes: int,
    desc: str | None = None,
    progress: bool | None = None,
) -> Path:
    """Fetch the https `url` to `dst` (which must not exist yet): `check(partial)` raises VerifyError when what
    came is not the file; only then is nothing kept. `key` names the partial (e.g. the expected digest), so a
    later run resumes only the same file. `progress`: None shows a bar on a terminal, False never."""
    require_https(url)
    dst = Path(dst)
    made = [p for p in (dst.parent, *dst.parent.parents) if not p.exists()]  # removed again if nothing comes
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(f".{dst.name}.{key[:16]}.part")
    f = _open_locked(partial)
    try:
        if dst.exists():  # another process finished it while we waited for the lock
            partial.unlink(missing_ok=True)
            return dst
        resumed = f.seek(0, os.SEEK_END) > 0
        session = _session()
        with atomic_target(dst, temporary=partial):
            for attempt in range(2):
                _transfer(session, url, f, max_bytes, desc or dst.name, progress)
                try:
                    if check is not None:
                        check(partial)
                    break
                except VerifyError:  # a resumed partial may hold stale bytes: once more, from scratch
                    if not (resumed and attempt == 0):
                        raise
                    f.truncate(0)
            if f.tell() == 0:
                raise FetchError(f"{url}: empty response")
        return dst
    except BaseException as e:
        # refused: nothing kept; offline or killed: the bytes fetched stay for the next run
        if isinstance(e, VerifyError) or f.tell() == 0:
            partial.unlink(missing_ok=True)
            for p in made:
                with contextlib.suppress(OSError):
                    p.rmdir()
        raise
    finally:
        f.close()
