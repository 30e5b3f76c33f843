"""`tf.train` of TF1: optimizers, the global step, learning-rate decay and `Saver`.

The optimizers are symgraph's own (same names, arguments and update rules as TF1). `Saver`
takes TF1's constructor and `save` signatures; it writes symgraph's checkpoint format (an
`.npz` of the values plus a JSON index), not TF's, so checkpoints do not move between the two.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from symgraph.compat.v1._names import refuse_argument, unsupported
from symgraph.train import (  # noqa: F401 - re-exported under TF1's names
    AdagradOptimizer,
    AdamOptimizer,
    GradientDescentOptimizer,
    MomentumOptimizer,
    Optimizer,
    RMSPropOptimizer,
    checkpoint_exists,
    cosine_decay,
    create_global_step,
    exponential_decay,
    get_checkpoint_state,
    get_global_step,
    get_or_create_global_step,
    global_step,
    inverse_time_decay,
    latest_checkpoint,
    piecewise_constant,
)
from symgraph.train import Saver as _Saver
from symgraph.variables import Variable

__all__ = [
    "AdagradOptimizer", "AdamOptimizer", "GradientDescentOptimizer", "MomentumOptimizer",
    "Optimizer", "RMSPropOptimizer", "Saver", "checkpoint_exists", "cosine_decay",
    "create_global_step", "exponential_decay", "get_checkpoint_state", "get_global_step",
    "get_or_create_global_step", "global_step", "inverse_time_decay", "latest_checkpoint",
    "piecewise_constant",
]


class Saver(_Saver):
    """TF1's `tf.train.Saver(var_list=None, reshape=False, sharded=False, max_to_keep=5, ...)`.

    `save` returns the checkpoint prefix; `restore(sess, path)` loads it into any session whose
    graph has variables of the same names (a new process or a new Session).
    """

    def __init__(self, var_list: Iterable[Variable] | dict[str, Variable] | None = None,
                 reshape: bool = False, sharded: bool = False, max_to_keep: int | None = 5,
                 keep_checkpoint_every_n_hours: float = 10000.0, name: str | None = None,
                 restore_sequentially: bool = False, saver_def: Any = None,
                 builder: Any = None, defer_build: bool = False,
                 allow_empty: bool = False, write_version: Any = None,
                 pad_step_number: bool = False, save_relative_paths: bool = False,
                 filename: str | None = None) -> None:
        for arg, value in (("reshape", reshape), ("saver_def", saver_def),
                           ("builder", builder), ("pad_step_number", pad_step_number)):
            if value:
                refuse_argument("tf.train.Saver", arg, value)
        super().__init__(var_list, max_to_keep=max_to_keep)

    def save(self, sess: Any, save_path: str, global_step: Any = None,  # noqa: D417
             latest_filename: str | None = None, meta_graph_suffix: str = "meta",
             write_meta_graph: bool = True, write_state: bool = True,
             strip_default_attrs: bool = False, save_debug_info: bool = False) -> str:
        """Writes the variables' values; returns the prefix ('dir/model.ckpt-100').

        No meta graph is written (symgraph rebuilds graphs from Python); `latest_filename`,
        the name of TF's index file, must stay the default.
        """
        if latest_filename not in (None, "checkpoint"):
            refuse_argument("tf.train.Saver.save", "latest_filename", latest_filename)
        return super().save(sess, save_path, global_step=global_step, write_state=write_state)


__getattr__ = unsupported("tf.train")
