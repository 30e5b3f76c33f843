"""Files written for users (checkpoints, kernel caches, pictures, reports) are written
atomically: into a temp file in the same directory, flushed to disk, then renamed over the
target. A reader, or a run killed halfway, sees the old file or the new one, never a part.
Caches go under the user's cache directory (user_cache_dir)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# mkstemp makes files only their owner can read; a user's file gets the mode open() would give.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write; on a clean exit it replaces `path`, otherwise it vanishes."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                               suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


def user_cache_dir() -> Path:
    """symgraph's directory in the user's cache directory: $XDG_CACHE_HOME/symgraph where that
    is set to an absolute path (the XDG base directory rules), else ~/.cache/symgraph."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "symgraph"


def write_atomically(path: str | os.PathLike, data: bytes | str) -> None:
    """Writes bytes, or text as UTF-8, to `path` atomically."""
    with atomic_file(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def _fsync_directory(directory: str) -> None:
    """Makes the rename itself durable (POSIX); skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
