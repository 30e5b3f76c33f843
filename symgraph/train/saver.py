"""Checkpoints: `Saver` saves and restores variable values; `latest_checkpoint` finds the newest.

Format of a checkpoint with path prefix P (e.g. 'ckpt/model-100'):

  P.npz   NumPy archive written with allow_pickle=False: one array per variable, keyed by the
          variable's name ('dense/kernel'); np.load(P + '.npz')['dense/kernel'] reads one.
  P.json  metadata, written after the archive (its presence marks a complete checkpoint):
            {"format": "symgraph-checkpoint", "format_version": 1,
             "symgraph_version": "0.1.0", "data_file": "model-100.npz",
             "data_sha256": "<hex SHA-256 of the .npz bytes>",
             "variables": [{"name": "dense/kernel", "shape": [3, 4], "dtype": "float32"}, ...]}

  checkpoint.json   per-directory index: {"format": "symgraph-checkpoint-index",
          "model_checkpoint_path": newest basename, "all_model_checkpoint_paths": [oldest, ...,
          newest]}; basenames, so a directory can be moved. A Saver keeps at most `max_to_keep`
          entries and deletes the files of the ones it drops.

Every file is written to a temporary file in the same directory, fsynced and renamed over the
target (os.replace), so a crash leaves either the old file or the new one, never a partial one.
`restore` reads and verifies everything (checksum, names, shapes, dtypes) before it writes any
variable into the session.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterable
from typing import Any

import numpy as np

from symgraph import dtypes as _dt
from symgraph.errors import DataLossError, InvalidArgumentError, NotFoundError
from symgraph.files import write_atomically
from symgraph.graph import Tensor, get_default_graph
from symgraph.variables import GraphKeys, Variable, is_variable

FORMAT = "symgraph-checkpoint"
INDEX_FORMAT = "symgraph-checkpoint-index"
FORMAT_VERSION = 1
INDEX_FILE = "checkpoint.json"
DATA_SUFFIX = ".npz"
META_SUFFIX = ".json"


def _version() -> str:
    import symgraph

    return getattr(symgraph, "__version__", "unknown")


class Saver:
    """Saves and restores variables (TF1's `tf.train.Saver`).

    Args:
      var_list: variables to save: a list (saved under their names), a dict {name: variable},
        or None for every global variable of the default graph when the Saver is made
        (optimizer slots included: make the Saver after the train op).
      max_to_keep: newest checkpoints kept in a directory's index; None or 0 keeps all.
    """

    def __init__(self, var_list: Iterable[Variable] | dict[str, Variable] | None = None,
                 max_to_keep: int | None = 5) -> None:
        if var_list is None:
            var_list = get_default_graph().get_collection(GraphKeys.GLOBAL_VARIABLES)
            if not var_list:
                raise ValueError("no variables to save: the graph has no global variables")
        if isinstance(var_list, dict):
            items = list(var_list.items())
        else:
            items = [(getattr(v, "var_name", None), v) for v in var_list]
        self._vars: dict[str, Variable] = {}
        for name, var in items:
            if not is_variable(var):
                what = var.describe() if isinstance(var, Tensor) else repr(var)
                raise TypeError(f"a Saver saves variables, got {what}")
            if name in self._vars and self._vars[name] is not var:
                raise ValueError(f"two variables to save share the name {name!r}: "
                                 f"{self._vars[name].describe()} and {var.describe()}")
            self._vars[name] = var
        self._max_to_keep = max_to_keep
        self._last_checkpoints: list[str] = []

    @property
    def last_checkpoints(self) -> list[str]:
        """The prefixes kept in the index of the directory this Saver last saved to."""
        return list(self._last_checkpoints)

    # -- save -------------------------------------------------------------------------------
    def save(self, sess: Any, save_path: str, global_step: Any = None,
             write_state: bool = True) -> str:
        """Writes the variables' values in `sess`; returns the prefix ('dir/model-100').

        `global_step` (an int or a tensor) is appended to the prefix. With `write_state`, the
        directory's index lists the checkpoint and drops (deletes) those beyond max_to_keep.
        """
        if global_step is not None:
            step = sess.run(global_step) if isinstance(global_step, Tensor) else global_step
            save_path = f"{save_path}-{int(step)}"
        directory = os.path.dirname(os.path.abspath(save_path))
        if not os.path.isdir(directory):
            raise NotFoundError(f"cannot save checkpoint {save_path!r}: the directory "
                                f"{directory!r} does not exist")
        names = list(self._vars)
        values = sess.run([self._vars[n] for n in names])
        arrays = {n: np.asarray(v) for n, v in zip(names, values)}
        data = _npz_bytes(arrays)
        base = os.path.basename(save_path)
        meta = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "symgraph_version": _version(),
            "data_file": base + DATA_SUFFIX, "data_sha256": hashlib.sha256(data).hexdigest(),
            "variables": [{"name": n, "shape": list(a.shape), "dtype": _dt.as_dtype(a.dtype).name}
                          for n, a in arrays.items()],
        }
        created: list[str] = []  # files this save made, removed again if it fails
        try:
            if os.path.exists(save_path + META_SUFFIX):
                _overwrite(save_path, data, meta)
            else:  # data first: without its metadata a data file is not a checkpoint yet
                for path, content in ((save_path + DATA_SUFFIX, data),
                                      (save_path + META_SUFFIX, _json(meta))):
                    existed = os.path.exists(path)
                    write_atomically(path, content)
                    if not existed:
                        created.append(path)
            if write_state:
                self._update_index(directory, base)
        except BaseException:
            for path in reversed(created):
                with contextlib.suppress(OSError):
                    os.remove(path)
            raise
        return save_path

    def _update_index(self, directory: str, base: str) -> None:
        state = get_checkpoint_state(directory)
        paths = [p for p in (state or {}).get("all_model_checkpoint_paths", []) if p != base]
        paths.append(base)
        dropped: list[str] = []
        if self._max_to_keep:
            dropped, paths = paths[:-self._max_to_keep], paths[-self._max_to_keep:]
        index = {"format": INDEX_FORMAT, "model_checkpoint_path": base,
                 "all_model_checkpoint_paths": paths}
        write_atomically(os.path.join(directory, INDEX_FILE), json.dumps(index, indent=1).encode())
        self._last_checkpoints = [os.path.join(directory, p) for p in paths]
        for old in dropped:  # the metadata first: a checkpoint without it is not a checkpoint
            for suffix in (META_SUFFIX, DATA_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(directory, old + suffix))

    # -- restore ----------------------------------------------------------------------------
    def restore(self, sess: Any, save_path: str) -> None:
        """Loads every variable of this Saver from the checkpoint at prefix `save_path`.

        Raises:
          NotFoundError: no checkpoint at `save_path`, or only missing names (all listed).
          InvalidArgumentError: names missing or shapes or dtypes differing (all listed).
          DataLossError: a truncated or corrupt file. Nothing is loaded when any check fails.
        """
        if save_path is None:
            raise ValueError("restore needs a checkpoint path; sg.train.latest_checkpoint(dir) "
                             "finds the newest")
        arrays = read_checkpoint(save_path)
        problems: list[str] = []
        only_missing = True
        for name, var in self._vars.items():
            arr = arrays.get(name)
            if arr is None:
                problems.append(f"{name!r} is not in the checkpoint (variable {var.describe()})")
                continue
            if not var.shape.is_compatible_with(arr.shape) or arr.dtype != var.dtype.np:
                only_missing = False
                problems.append(f"{name!r} has shape {arr.shape} and dtype {arr.dtype} in the "
                                f"checkpoint, but the variable {var.describe()} needs shape "
                                f"{var.shape} and dtype {var.dtype.name}")
        if problems:
            cls = NotFoundError if only_missing else InvalidArgumentError
            raise cls(f"cannot restore {save_path!r}; {len(problems)} problem(s):\n  "
                      + "\n  ".join(problems))
        for name, var in self._vars.items():
            sess.load_variable(var, arrays[name])


def _json(meta: dict) -> bytes:
    return json.dumps(meta, indent=1).encode()


def _overwrite(save_path: str, data: bytes, meta: dict) -> None:
    """Replaces an existing checkpoint so that a crash at any moment leaves a whole one, old or
    new: the data goes to a file of its own, the metadata switches to it (the commit), the usual
    data file takes its content, the metadata switches back, and the staged file goes. A
    failure part way leaves at most that staged file behind, never a broken checkpoint."""
    staged = f"{save_path}.{meta['data_sha256'][:12]}{DATA_SUFFIX}"
    write_atomically(staged, data)
    write_atomically(save_path + META_SUFFIX,
                     _json({**meta, "data_file": os.path.basename(staged)}))
    linked = save_path + DATA_SUFFIX + ".link"
    try:  # a second name for the same bytes, renamed into place: no second copy to write
        with contextlib.suppress(FileNotFoundError):
            os.remove(linked)
        os.link(staged, linked)
        os.replace(linked, save_path + DATA_SUFFIX)
    except OSError:  # a file system without hard links
        write_atomically(save_path + DATA_SUFFIX, data)
    write_atomically(save_path + META_SUFFIX, _json(meta))
    os.remove(staged)


def read_checkpoint(save_path: str) -> dict[str, np.ndarray]:
    """Every array of the checkpoint at prefix `save_path`, verified against its metadata."""
    meta_path = save_path + META_SUFFIX
    try:
        with open(meta_path, "rb") as f:
            raw_meta = f.read()
    except FileNotFoundError:
        raise NotFoundError(f"no checkpoint at {save_path!r}: {meta_path!r} does not exist") \
            from None
    try:
        meta = json.loads(raw_meta)
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version {meta.get('format_version')!r} is not supported")
        entries = {e["name"]: (tuple(e["shape"]), e["dtype"]) for e in meta["variables"]}
        expected_sha = meta["data_sha256"]
        data_file = os.path.join(os.path.dirname(save_path), meta["data_file"])
    except (ValueError, KeyError, TypeError) as e:
        raise DataLossError(f"the checkpoint metadata {meta_path!r} is corrupt: {e}") from None
    try:
        with open(data_file, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise NotFoundError(f"checkpoint {save_path!r} has metadata but its data file "
                            f"{data_file!r} does not exist") from None
    if hashlib.sha256(data).hexdigest() != expected_sha:
        raise DataLossError(f"the checkpoint data {data_file!r} is truncated or corrupt: its "
                            f"SHA-256 checksum ({len(data)} bytes) does not match the metadata")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except Exception as e:  # any failure to parse means the file is bad
        raise DataLossError(f"cannot read the checkpoint data {data_file!r}: "
                            f"{type(e).__name__}: {e}") from None
    if set(arrays) != set(entries):
        raise DataLossError(f"the checkpoint data {data_file!r} and its metadata list different "
                            "variables")
    for name, (shape, dtype) in entries.items():
        arr = arrays[name]
        if arr.shape != shape or arr.dtype.name != np.dtype(_dt.as_dtype(dtype).np).name:
            raise DataLossError(f"the checkpoint entry {name!r} has shape {arr.shape} and dtype "
                                f"{arr.dtype} but its metadata says {shape} and {dtype}")
    return arrays


def get_checkpoint_state(checkpoint_dir: str) -> dict | None:
    """The directory's index (see the module docstring), or None when it has none."""
    path = os.path.join(checkpoint_dir, INDEX_FILE)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    try:
        state = json.loads(raw)
        if state.get("format") != INDEX_FORMAT:
            raise ValueError(f"format is {state.get('format')!r}")
        paths = state["all_model_checkpoint_paths"]
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise ValueError("all_model_checkpoint_paths is not a list of names")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataLossError(f"the checkpoint index {path!r} is corrupt: {e}") from None
    return state


def latest_checkpoint(checkpoint_dir: str) -> str | None:
    """The prefix of the newest checkpoint listed in `checkpoint_dir`, or None if none exists."""
    state = get_checkpoint_state(checkpoint_dir)
    if not state or not state["all_model_checkpoint_paths"]:
        return None
    prefix = os.path.join(checkpoint_dir, state["all_model_checkpoint_paths"][-1])
    return prefix if os.path.exists(prefix + META_SUFFIX) else None


def checkpoint_exists(save_path: str) -> bool:
    return os.path.exists(save_path + META_SUFFIX)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz archive as np.savez writes it (one NAME.npy per array), never pickling."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)
    return buf.getvalue()
