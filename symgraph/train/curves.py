"""Pictures of training: loss and accuracy curves, saved as PNG with matplotlib.

matplotlib is optional (the `examples` extra: `pip install -e ".[examples]"`); it is imported
only when a picture is drawn, with the Agg backend, so no display is needed.
"""

from __future__ import annotations

import os
from typing import Any

from symgraph.files import atomic_file
from symgraph.train.trainer import History


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or an ImportError that says how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError('drawing needs matplotlib: pip install matplotlib (or pip install -e '
                          '".[examples]" in the symgraph checkout)') from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100) -> str:
    """Writes a matplotlib figure as PNG atomically (temp file + os.replace), then closes it.

    Returns the path written. A reader never sees a half-written picture.
    """
    path = os.fspath(path)
    try:
        with atomic_file(path) as f:
            fig.savefig(f, format="png", dpi=dpi)
    finally:
        pyplot().close(fig)
    return path


def plot_history(history: History, path: str | os.PathLike, title: str | None = None) -> str:
    """Loss and accuracy per epoch, training and validation, side by side; returns `path`."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    has_acc = any(a is not None for a in history.accuracy)
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5, 4),
                             squeeze=False)
    panels = [("loss", "loss", "val_loss")]
    if has_acc:
        panels.append(("accuracy", "accuracy", "val_accuracy"))
    for ax, (label, train_key, val_key) in zip(axes[0], panels):
        for key, name in ((train_key, "train"), (val_key, "validation")):
            points = [(e, v) for e, v in zip(history.epoch, getattr(history, key))
                      if v is not None]
            if points:
                ax.plot(*zip(*points), marker="o", label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
