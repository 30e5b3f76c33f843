"""`Trainer`: the epoch loop around a train op, so that examples are about their models.

    trainer = sg.train.Trainer(sess, train_op, loss, inputs=[x, y], accuracy=acc,
                               training=is_training, checkpoint_dir="out/ckpt", patience=3)
    history = trainer.fit((train_x, train_y), (valid_x, valid_y), epochs=10, batch_size=128)
    test_loss, test_acc = trainer.evaluate((test_x, test_y))
    sg.train.plot_history(history, "out/curves.png")

Each epoch: shuffled minibatches (seed + epoch, so a resumed run sees the batches it would have
seen) with a tqdm bar showing the running loss and accuracy; a validation pass; one summary line
per split in the lectures' format; a checkpoint. `fit` resumes from the newest checkpoint in
`checkpoint_dir` and stops early when the validation loss has not improved for `patience`
epochs, then loads the weights of the best epoch.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from symgraph.datasets.batching import batches
from symgraph.files import write_atomically
from symgraph.graph import Tensor, get_default_graph
from symgraph.train.saver import Saver, latest_checkpoint, read_checkpoint
from symgraph.variables import GraphKeys

HISTORY_FILE = "history.json"
BEST_CHECKPOINT = "best"


def summary_line(split: str, epoch: int, loss: float, accuracy: float | None = None) -> str:
    """'train: epoch: 3, loss: 0.0213, accuracy 0.9812', the lectures' format, 4 decimals."""
    line = f"{split}: epoch: {epoch}, loss: {loss:.4f}"
    return line if accuracy is None else f"{line}, accuracy {accuracy:.4f}"


@dataclass
class History:
    """Per-epoch means; `val_*` are None where there was no validation data."""

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float | None] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    val_accuracy: list[float | None] = field(default_factory=list)
    stopped_early: bool = False

    def append(self, epoch: int, train: tuple, val: tuple) -> None:
        self.epoch.append(epoch)
        for name, value in zip(("loss", "accuracy", "val_loss", "val_accuracy"), (*train, *val)):
            getattr(self, name).append(value)

    def truncate(self, epochs: int) -> None:
        """Keeps the entries of epochs 1..`epochs` (what a restored checkpoint had seen)."""
        keep = sum(1 for e in self.epoch if e <= epochs)
        for name in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy"):
            del getattr(self, name)[keep:]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> History:
        return cls(**json.loads(text))


class Trainer:
    """Trains a graph's train op on in-memory arrays, epoch by epoch.

    Args:
      sess: the Session holding the variables (initialized by the caller, or restored here).
      train_op: the update op, e.g. `optimizer.minimize(loss)`.
      loss: the scalar mean loss of a batch.
      inputs: placeholders fed with the data arrays, in the order of the arrays (e.g. [x, y]).
      accuracy: an optional scalar mean accuracy of a batch.
      training: an optional bool placeholder fed True in training steps only (dropout, batch
        norm); evaluation leaves it at its default.
      checkpoint_dir: where a checkpoint is saved after every epoch and resumed from; None saves
        nothing.
      patience: stop when the validation loss has not improved for this many epochs, then load
        the best epoch's weights; None never stops early.
      quiet: no progress bar and no summary lines (the bar is also off when stdout is not a
        terminal, or without tqdm).
      print_fn: where summary lines go.
    """

    def __init__(self, sess: Any, train_op: Any, loss: Tensor, inputs: Sequence[Tensor],
                 accuracy: Tensor | None = None, training: Tensor | None = None,
                 checkpoint_dir: str | os.PathLike | None = None, patience: int | None = None,
                 quiet: bool = False, print_fn: Callable[[str], None] = print) -> None:
        self.sess, self.train_op, self.loss, self.accuracy = sess, train_op, loss, accuracy
        self.inputs, self.training = list(inputs), training
        self.checkpoint_dir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        self.patience = patience
        self.quiet = quiet
        self.print_fn = print_fn
        graph = getattr(sess, "graph", None) or get_default_graph()
        # every global variable, optimizer slots too, so that a resume continues exactly
        self.variables = graph.get_collection(GraphKeys.GLOBAL_VARIABLES)
        self.saver = Saver(self.variables, max_to_keep=2) if self.checkpoint_dir else None
        self.steps = 0  # training steps taken by this Trainer
        self._best: dict | None = None  # variable -> value at the best validation loss

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self, train_data: Sequence[np.ndarray], validation_data: Sequence[np.ndarray] | None
            = None, epochs: int = 1, batch_size: int = 32, seed: int = 0,
            max_steps: int | None = None) -> History:
        """Runs epochs `first..epochs`, where `first` follows the newest checkpoint, if any.

        Args:
          train_data / validation_data: tuples of arrays matching `inputs`, or DataSets.
          max_steps: stop after this many training steps in all (a short run for tests); the
            epoch in progress is then evaluated and saved as usual.

        Returns:
          The History of every epoch, those before a resume included.
        """
        train_data = tuple(train_data)  # a DataSet unpacks to (images, labels)
        if validation_data is not None:
            validation_data = tuple(validation_data) if len(tuple(validation_data)[0]) else None
        history, first = self._resume()
        best_loss, best_epoch = _best(history)
        for epoch in range(first, epochs + 1):
            train = self._train_epoch(train_data, epoch, epochs, batch_size, seed, max_steps)
            val = (self.evaluate(validation_data, batch_size=max(batch_size, 500))
                   if validation_data is not None else (None, None))
            history.append(epoch, train, val)
            self._say(summary_line("train", epoch, *train))
            if val[0] is not None:
                self._say(summary_line("valid", epoch, *val))
                if best_loss is None or val[0] < best_loss:
                    best_loss, best_epoch = val[0], epoch
                    self._save_best()
            self._checkpoint(epoch, history)
            if max_steps is not None and self.steps >= max_steps:
                break
            if self.patience is not None and best_epoch and epoch - best_epoch >= self.patience:
                history.stopped_early = True
                self._say(f"early stop: the validation loss last improved in epoch {best_epoch}"
                          f" ({best_loss:.4f}); loading those weights")
                self._load_best()
                break
        return history

    def evaluate(self, data: Sequence[np.ndarray], batch_size: int = 500
                 ) -> tuple[float, float | None]:
        """(mean loss, mean accuracy) over `data` in order, in batches, training off."""
        data = tuple(data)
        fetches = [self.loss] + ([self.accuracy] if self.accuracy is not None else [])
        totals, count = np.zeros(len(fetches)), 0
        for batch in batches(*data, batch_size=batch_size, shuffle=False):
            values = self.sess.run(fetches, dict(zip(self.inputs, batch)))
            totals += np.asarray(values, np.float64) * len(batch[0])
            count += len(batch[0])
        means = totals / max(count, 1)
        return float(means[0]), (float(means[1]) if self.accuracy is not None else None)

    def _train_epoch(self, data: Sequence[np.ndarray], epoch: int, epochs: int, batch_size: int,
                     seed: int, max_steps: int | None) -> tuple[float, float | None]:
        """One pass of shuffled batches; returns the example-weighted means of loss, accuracy."""
        n = len(data[0])
        steps = -(-n // batch_size)
        if max_steps is not None:
            steps = max(0, min(steps, max_steps - self.steps))
        fetches = [self.train_op, self.loss] + ([self.accuracy] if self.accuracy is not None
                                                 else [])
        bar = self._progress_bar(steps, f"epoch {epoch}/{epochs}")
        totals, count = np.zeros(len(fetches) - 1), 0
        try:
            for _, batch in zip(range(steps), batches(*data, batch_size=batch_size,
                                                      seed=seed + epoch)):
                feed = dict(zip(self.inputs, batch))
                if self.training is not None:
                    feed[self.training] = True
                _, *values = self.sess.run(fetches, feed)
                self.steps += 1
                totals += np.asarray(values, np.float64) * len(batch[0])
                count += len(batch[0])
                if bar is not None:
                    means = totals / count
                    postfix = {"loss": f"{means[0]:.4f}"}
                    if len(means) > 1:
                        postfix["acc"] = f"{means[1]:.4f}"
                    bar.set_postfix(postfix, refresh=False)
                    bar.update()
        finally:
            if bar is not None:
                bar.close()
        means = totals / max(count, 1)
        return float(means[0]), (float(means[1]) if self.accuracy is not None else None)

    # -- output -----------------------------------------------------------------------------------
    def _say(self, line: str) -> None:
        if not self.quiet:
            self.print_fn(line)

    def _progress_bar(self, total: int, desc: str) -> Any:
        if self.quiet or not sys.stdout.isatty():
            return None
        try:
            from tqdm import tqdm
        except ImportError:  # an optional dependency (the `examples` extra)
            return None
        return tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)

    # -- checkpoints ------------------------------------------------------------------------------
    def _resume(self) -> tuple[History, int]:
        """The History so far and the first epoch to run, from the newest checkpoint."""
        history = History()
        prefix = latest_checkpoint(self.checkpoint_dir) if self.checkpoint_dir else None
        if prefix is None:
            return history, 1
        self.saver.restore(self.sess, prefix)
        done = int(prefix.rsplit("-", 1)[1])
        path = os.path.join(self.checkpoint_dir, HISTORY_FILE)
        if os.path.exists(path):
            with open(path) as f:
                history = History.from_json(f.read())
            history.truncate(done)
        self._say(f"resumed from {prefix} (epoch {done} done)")
        return history, done + 1

    def _checkpoint(self, epoch: int, history: History) -> None:
        if self.saver is None:
            return
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        # the history first: a checkpoint never lacks the history of its epochs
        write_atomically(os.path.join(self.checkpoint_dir, HISTORY_FILE), history.to_json())
        self.saver.save(self.sess, os.path.join(self.checkpoint_dir, "model"), global_step=epoch)

    def _save_best(self) -> None:
        """Keeps the weights of the best validation loss: in memory, and on disk to resume."""
        if self.patience is None:
            return
        self._best = dict(zip(self.variables, self.sess.run(self.variables)))
        if self.saver is not None:
            os.makedirs(self.checkpoint_dir, exist_ok=True)
            self.saver.save(self.sess, os.path.join(self.checkpoint_dir, BEST_CHECKPOINT),
                            write_state=False)

    def _load_best(self) -> None:
        best = self._best
        if best is None and self.saver is not None:  # found best before a resume
            arrays = read_checkpoint(os.path.join(self.checkpoint_dir, BEST_CHECKPOINT))
            best = {v: arrays[v.var_name] for v in self.variables}
        for var, value in (best or {}).items():
            self.sess.load_variable(var, value)


def _best(history: History) -> tuple[float | None, int]:
    """(lowest validation loss, its epoch) in a History; (None, 0) when it has none."""
    scored = [(loss, e) for loss, e in zip(history.val_loss, history.epoch) if loss is not None]
    return min(scored) if scored else (None, 0)
