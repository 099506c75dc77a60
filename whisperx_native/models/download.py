"""Download a model file over HTTP(S): streamed, resumable, verified, atomic.

The data goes to ``.<name>.part`` beside the target. An interrupted transfer
leaves that file for the next attempt, which asks for the rest with a ``Range``
request (and starts over when the server ignores it). Only a complete file whose
SHA-1 matches (where one is known) and that passes :func:`ggml_file.validate`
is renamed over the target, after an fsync; so a crash at any point never
leaves a partial file under the name a load would pick up.
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional

from .._fsutil import file_digest, fsync_directory
from ..errors import ModelError
from .ggml_file import validate

__all__ = ["DEFAULT_BASE_URL", "ENV_BASE_URL", "base_url", "download", "part_path"]

log = logging.getLogger("whisperx_native.models")

#: Where whisper.cpp's models/download-ggml-model.sh fetches ``ggml-<name>.bin``.
DEFAULT_BASE_URL = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main"
ENV_BASE_URL = "WHISPERX_NATIVE_MODEL_URL"

_CHUNK = 1 << 20
_USER_AGENT = "whisperx_native"


def base_url(explicit: Optional[str] = None) -> str:
    """The argument, else ``$WHISPERX_NATIVE_MODEL_URL``, else :data:`DEFAULT_BASE_URL`."""
    return (explicit or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")


def part_path(target: Path) -> Path:
    """The resumable partial download of ``target``."""
    return target.with_name(f".{target.name}.part")


def download(url: str, target: "str | os.PathLike[str]", *, sha1: Optional[str] = None, timeout: float = 30.0,
             retries: int = 2, progress: Optional[bool] = None,
             check: Callable[[Path], object] = validate) -> Path:
    """Fetch ``url`` into ``target``; ``retries`` more attempts resume an interrupted one.

    ``timeout`` bounds the connection and each read (seconds). ``progress``: a tqdm
    bar on stderr (None: only when stderr is a terminal). Raises ModelError saying
    what went wrong; an interrupted transfer keeps its ``.part`` file for resuming.
    """
    target = Path(target)
    part = part_path(target)
    error = "no attempt"
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, timeout, progress)
            break
        except _Retryable as exc:
            error = str(exc)
            log.warning("download of %s interrupted (%s)%s", url, error,
                        "; resuming" if attempt < retries else "")
    else:
        raise ModelError(f"download of {url} failed after {retries + 1} attempts: {error} "
                         f"({part.stat().st_size if part.exists() else 0} bytes kept in {part.name} to resume)")
    try:
        if sha1 is not None:
            got = file_digest(part, "sha1")  # whisper.cpp publishes SHA-1s
            if got != sha1.lower():
                raise ModelError(f"checksum mismatch for {url}: SHA-1 {got}, expected {sha1}")
        check(part)
    except ModelError as exc:
        part.unlink()  # a bad file cannot become good by resuming it
        raise ModelError(f"downloaded file rejected: {exc}") from None
    os.replace(part, target)
    fsync_directory(target.parent)
    return target


class _Retryable(Exception):
    """A transfer that stopped early: the next attempt resumes it."""


def _fetch(url: str, part: Path, timeout: float, progress: Optional[bool]) -> None:
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) by configuration
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # our partial file is not a prefix of theirs
            part.unlink()
            raise _Retryable(f"server refused to resume at byte {have}") from None
        if exc.code >= 500:  # the server's trouble, perhaps passing
            raise _Retryable(f"HTTP {exc.code} {exc.reason}") from None
        raise ModelError(f"HTTP {exc.code} {exc.reason} for {url}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, (socket.timeout, ConnectionError, TimeoutError)):
            raise _Retryable(f"cannot connect: {reason}") from None
        raise ModelError(f"cannot reach {url}: {reason}") from None
    with resp:
        if have and resp.status != 206:  # the server ignored Range: start over
            log.info("%s does not support resuming; downloading it again", url)
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        _stream(resp, part, have, total, progress, url)


def _stream(resp, part: Path, have: int, total: Optional[int], progress: Optional[bool], url: str) -> None:
    bar = _progress_bar(total, have, part.name.lstrip(".").removesuffix(".part"), progress)
    try:
        with open(part, "r+b" if have else "wb") as f:
            f.seek(have)
            f.truncate()
            while True:
                try:
                    chunk = resp.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
                    raise _Retryable(f"connection lost after {have} bytes: {exc!r}") from None
                if not chunk:
                    break
                f.write(chunk)
                have += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())
    finally:
        if bar is not None:
            bar.close()
    if total is not None and have != total:
        raise _Retryable(f"connection closed after {have} of {total} bytes")


def _progress_bar(total: Optional[int], initial: int, desc: str, progress: Optional[bool]):
    if progress is False:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                disable=None if progress is None else False, leave=False)
