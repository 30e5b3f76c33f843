"""`sg.train`: optimizers, the global step, learning-rate schedules and checkpoints (TF1 names),
and a small training loop (`Trainer`) with its curves (`plot_history`)."""

from symgraph.train.curves import plot_history, save_figure
from symgraph.train.learning_rate_decay import (
    cosine_decay,
    exponential_decay,
    inverse_time_decay,
    piecewise_constant,
)
from symgraph.train.optimizer import Optimizer
from symgraph.train.optimizers import (
    AdagradOptimizer,
    AdamOptimizer,
    GradientDescentOptimizer,
    MomentumOptimizer,
    RMSPropOptimizer,
)
from symgraph.train.saver import (
    Saver,
    checkpoint_exists,
    get_checkpoint_state,
    latest_checkpoint,
    read_checkpoint,
)
from symgraph.train.trainer import History, Trainer, summary_line
from symgraph.train.training_util import (
    create_global_step,
    get_global_step,
    get_or_create_global_step,
    global_step,
)

__all__ = [
    "AdagradOptimizer", "AdamOptimizer", "GradientDescentOptimizer", "History",
    "MomentumOptimizer", "Optimizer", "RMSPropOptimizer", "Saver", "Trainer",
    "checkpoint_exists", "cosine_decay", "create_global_step", "exponential_decay",
    "get_checkpoint_state", "get_global_step", "get_or_create_global_step", "global_step",
    "inverse_time_decay", "latest_checkpoint", "piecewise_constant", "plot_history",
    "read_checkpoint", "save_figure", "summary_line",
]
