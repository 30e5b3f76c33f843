"""sg.train.Trainer: the epoch loop, its summary lines, checkpoints and resume, early stopping,
and the curves PNG."""

import re

import numpy as np
import pytest

import symgraph as sg

LINE = re.compile(r"^(train|valid|test): epoch: \d+, loss: \d+\.\d{4}, accuracy \d\.\d{4}$")


def _data(n=64, seed=0, flip=False):
    """Two Gaussian blobs, labels 0/1 (flipped: the opposite rule, for a validation set that
    only gets worse as training fits the first)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.standard_normal((n, 2)) + 2.0 * (2 * y[:, None] - 1)).astype(np.float32)
    return x, (1 - y if flip else y)


def _model(lr=0.1):
    sg.reset_default_graph()
    sg.set_random_seed(0)
    x = sg.placeholder(sg.float32, [None, 2], name="x")
    y = sg.placeholder(sg.int64, [None], name="y")
    logits = sg.layers.dense(x, 2)
    loss = sg.losses.sparse_softmax_cross_entropy(y, logits)
    acc = sg.reduce_mean(sg.cast(sg.equal(sg.argmax(logits, 1), y), sg.float32))
    train_op = sg.train.AdamOptimizer(lr).minimize(loss)
    return x, y, loss, acc, train_op


def _trainer(sess, model, lines, **kwargs):
    x, y, loss, acc, train_op = model
    return sg.train.Trainer(sess, train_op, loss, [x, y], accuracy=acc, print_fn=lines.append,
                            **kwargs)


def test_summary_line_has_the_lectures_format():
    assert sg.train.summary_line("train", 3, 0.02, 0.98) == \
        "train: epoch: 3, loss: 0.0200, accuracy 0.9800"
    assert sg.train.summary_line("test", 3, 0.1134) == "test: epoch: 3, loss: 0.1134"


def test_fit_trains_prints_a_line_per_split_and_epoch_and_evaluates():
    model, lines = _model(), []
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        trainer = _trainer(sess, model, lines)
        history = trainer.fit(_data(), sg.datasets.DataSet(*_data(seed=1)), epochs=3,
                              batch_size=16)  # tuples of arrays or DataSets
        loss, acc = trainer.evaluate(_data(seed=2))
    assert history.epoch == [1, 2, 3] and trainer.steps == 12
    assert len(lines) == 6 and all(LINE.match(line) for line in lines), lines
    assert [line.split(":")[0] for line in lines] == ["train", "valid"] * 3
    assert history.loss[-1] < history.loss[0] and acc > 0.9 and np.isfinite(loss)
    assert len(history.val_accuracy) == 3 and not history.stopped_early


def test_quiet_prints_nothing_and_max_steps_stops(capsys):
    model, lines = _model(), []
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        trainer = _trainer(sess, model, lines, quiet=True)
        history = trainer.fit(_data(), None, epochs=5, batch_size=16, max_steps=6)
    assert lines == [] and capsys.readouterr().out == ""
    assert trainer.steps == 6 and history.epoch == [1, 2] and history.val_loss == [None, None]


def test_checkpoint_every_epoch_and_resume_from_the_latest(tmp_path):
    lines = []
    model = _model()
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        first = _trainer(sess, model, lines, checkpoint_dir=tmp_path).fit(
            _data(), _data(seed=1), epochs=2, batch_size=16)
        weights = sess.run(sg.trainable_variables())
    assert sg.train.latest_checkpoint(str(tmp_path)).endswith("model-2")
    assert (tmp_path / "history.json").exists()

    # a new process: fresh graph and session, same model; nothing left to do for 2 epochs
    model, lines = _model(), []
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        trainer = _trainer(sess, model, lines, checkpoint_dir=tmp_path)
        again = trainer.fit(_data(), _data(seed=1), epochs=2, batch_size=16)
        assert trainer.steps == 0 and again.loss == first.loss
        for got, want in zip(sess.run(sg.trainable_variables()), weights):
            np.testing.assert_array_equal(got, want)
        resumed = trainer.fit(_data(), _data(seed=1), epochs=4, batch_size=16)
    assert lines[0].startswith("resumed from") and "epoch 2 done" in lines[0]
    assert resumed.epoch == [1, 2, 3, 4] and resumed.loss[:2] == first.loss
    assert trainer.steps == 8
    assert sg.train.latest_checkpoint(str(tmp_path)).endswith("model-4")


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    """Batches are shuffled with seed + epoch and the optimizer's slots are saved too."""
    def run(epochs, directory):
        model = _model()
        with sg.Session() as sess:
            sess.run(sg.global_variables_initializer())
            _trainer(sess, model, [], checkpoint_dir=directory).fit(
                _data(), None, epochs=epochs, batch_size=16, seed=5)
            return sess.run(sg.trainable_variables())

    straight = run(3, tmp_path / "a")
    run(1, tmp_path / "b")
    for got, want in zip(run(3, tmp_path / "b"), straight):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_early_stopping_on_validation_loss_restores_the_best_weights(tmp_path):
    """Validation labels are the opposite rule, so its loss only rises after epoch 1."""
    model, lines = _model(lr=0.3), []
    valid = _data(seed=1, flip=True)
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        trainer = _trainer(sess, model, lines, checkpoint_dir=tmp_path, patience=2)
        history = trainer.fit(_data(), valid, epochs=10, batch_size=16)
        best_loss, _ = trainer.evaluate(valid)
    assert history.stopped_early and history.epoch == [1, 2, 3]
    assert history.val_loss[0] < history.val_loss[1] < history.val_loss[2]
    assert best_loss == pytest.approx(history.val_loss[0], rel=1e-5)
    assert any(line.startswith("early stop") for line in lines)
    assert (tmp_path / "best.json").exists()


def test_plot_history_writes_a_png_atomically(tmp_path):
    pytest.importorskip("matplotlib")
    history = sg.train.History()
    for epoch in range(1, 4):
        history.append(epoch, (1.0 / epoch, 0.5 + 0.1 * epoch), (1.2 / epoch, 0.45 + 0.1 * epoch))
    path = sg.train.plot_history(history, tmp_path / "sub" / "curves.png", title="t")
    assert path == str(tmp_path / "sub" / "curves.png")
    assert (tmp_path / "sub" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["curves.png"]  # no temp left
    no_acc = sg.train.History()
    no_acc.append(1, (0.5, None), (None, None))
    sg.train.plot_history(no_acc, tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 1000


def test_history_json_round_trip_and_truncate():
    history = sg.train.History()
    for epoch in (1, 2, 3):
        history.append(epoch, (0.1 * epoch, None), (None, None))
    back = sg.train.History.from_json(history.to_json())
    assert back == history
    back.truncate(2)
    assert back.epoch == [1, 2] and back.loss == [0.1, 0.2]
