"""Filesystem helpers: crash-safe file replacement, file checksums."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import OutputExistsError

__all__ = ["atomic_write", "file_digest", "fsync_directory"]

TEMP_SUFFIX = ".tmp"
_READ_BLOCK = 1 << 20


def file_digest(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], algorithm: str = "sha256") -> str:
    """Hex digest of a file, or of several files' bytes one after the other (the parts of
    one file), read in 1 MiB blocks. ``algorithm`` is a hashlib name ("sha256", "sha1")."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    import hashlib  # OpenSSL's 3 MB, for installing and verifying only

    h = hashlib.new(algorithm)
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_READ_BLOCK), b""):
                h.update(block)
    return h.hexdigest()


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Persist a rename inside ``directory`` (a no-op where unsupported, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories
    finally:
        os.close(fd)


def temp_path_for(path: str | os.PathLike[str]) -> Path:
    """A fresh hidden sibling of ``path``: same directory, so the rename is atomic."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.urandom(6).hex()}{TEMP_SUFFIX}")


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    check: Callable[[Path], object] | None = None,
) -> Iterator[BinaryIO]:
    """Write ``path`` all-or-nothing.

    Yields a binary file opened on a temporary sibling. When the block exits
    normally the data is flushed and fsynced, ``check(temp_path)`` runs (it
    should raise to reject the file), the temporary file is renamed over
    ``path`` and the directory is fsynced. On any exception -- including
    KeyboardInterrupt -- the temporary file is removed and ``path`` is left as
    it was. Without ``overwrite`` an existing ``path`` raises OutputExistsError (a
    FileExistsError), checked before anything is written and again just before the rename.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"'{path}' is a directory")
    if not overwrite and path.exists():
        raise OutputExistsError(f"'{path}' already exists")
    tmp = temp_path_for(path)
    # O_EXCL: never write through a file or symlink someone else created;
    # mode 0o666 lets the umask decide, as for any ordinary new file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(tmp)
        if not overwrite and path.exists():
            raise OutputExistsError(f"'{path}' already exists")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(path.parent)
