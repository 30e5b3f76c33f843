"""`tf.io.gfile` (TF2-era names, also in TF1.14+) over the local file system."""

from __future__ import annotations

import glob as _glob
import os
import shutil
from collections.abc import Iterator
from typing import IO, Any

from symgraph.compat.v1._names import unsupported

__all__ = ["GFile", "copy", "exists", "glob", "isdir", "listdir", "makedirs", "mkdir", "remove",
           "rename", "rmtree", "stat", "walk"]


def exists(path: str) -> bool:
    return os.path.exists(path)


def isdir(path: str) -> bool:
    return os.path.isdir(path)


def listdir(path: str) -> list[str]:
    return os.listdir(path)


def glob(pattern: str) -> list[str]:
    return _glob.glob(pattern)


def makedirs(path: str) -> None:
    """Makes `path` and its parents; an existing directory is fine (TF's rule)."""
    os.makedirs(path, exist_ok=True)


def mkdir(path: str) -> None:
    os.mkdir(path)


def rmtree(path: str) -> None:
    shutil.rmtree(path)


def remove(path: str) -> None:
    os.remove(path)


def rename(src: str, dst: str, overwrite: bool = False) -> None:
    if not overwrite and os.path.exists(dst):
        raise FileExistsError(f"{dst!r} exists; pass overwrite=True")
    os.replace(src, dst)


def copy(src: str, dst: str, overwrite: bool = False) -> None:
    if not overwrite and os.path.exists(dst):
        raise FileExistsError(f"{dst!r} exists; pass overwrite=True")
    shutil.copyfile(src, dst)


def stat(path: str) -> os.stat_result:
    return os.stat(path)


def walk(top: str, topdown: bool = True, onerror: Any = None) -> Iterator[tuple]:
    return os.walk(top, topdown=topdown, onerror=onerror)


def GFile(name: str, mode: str = "r") -> IO:  # noqa: N802 - TF's name
    """An open file (TF's GFile also reads remote file systems; this one only local files)."""
    return open(name, mode)


__getattr__ = unsupported("tf.io.gfile")
