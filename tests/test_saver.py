"""Saver: round trips, slots, max_to_keep, the index, mismatches, corruption, atomicity."""

import json
import os

import numpy as np
import pytest

import symgraph as sg
from symgraph.train import saver as saver_mod


@pytest.fixture(autouse=True)
def graph():
    g = sg.Graph()
    with g.as_default():
        yield g


def make_vars():
    w = sg.Variable(np.arange(6.0, dtype=np.float32).reshape(2, 3), name="layer/w")
    n = sg.Variable(np.int64(7), name="n")
    flag = sg.Variable(np.array([True, False]), name="flag")
    return w, n, flag


def test_round_trip_into_a_new_session(tmp_path):
    w, n, flag = make_vars()
    saver = sg.train.Saver()
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        sess.run([w.assign(w * 2.0), n.assign_add(np.int64(3))])
        prefix = saver.save(sess, str(tmp_path / "model"))
    assert prefix == str(tmp_path / "model")
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.json", "model.json", "model.npz"]
    with sg.Session() as sess:
        saver.restore(sess, prefix)
        wv, nv, fv = sess.run([w, n, flag])
    np.testing.assert_array_equal(wv, np.arange(6.0).reshape(2, 3) * 2)
    assert wv.dtype == np.float32 and nv == 10 and nv.dtype == np.int64
    np.testing.assert_array_equal(fv, [True, False])
    # the documented format: a plain npz keyed by variable name, and JSON metadata
    with np.load(prefix + ".npz", allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["layer/w"], wv)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["format"] == "symgraph-checkpoint" and meta["symgraph_version"] == sg.__version__
    assert {"name": "n", "shape": [], "dtype": "int64"} in meta["variables"]


def test_var_list_subset_and_dict_names(tmp_path):
    w, n, flag = make_vars()
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        sg.train.Saver({"renamed": w}).save(sess, str(tmp_path / "a"))
    with np.load(tmp_path / "a.npz") as npz:
        assert npz.files == ["renamed"]
    with sg.Session() as sess:
        sess.run(n.initializer)
        sg.train.Saver({"renamed": w}).restore(sess, str(tmp_path / "a"))
        np.testing.assert_array_equal(sess.run(w), np.arange(6.0).reshape(2, 3))
    with pytest.raises(TypeError, match="saves variables"):
        sg.train.Saver([w + 1.0])


def train_graph(seed_values):
    w = sg.Variable(seed_values, name="w")
    loss = sg.reduce_sum(sg.square(w - 1.0))
    step = sg.train.get_or_create_global_step()
    train = sg.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
    return w, step, train


def test_optimizer_slots_make_training_resume_exactly(tmp_path):
    w, step, train = train_graph(np.array([3.0, -2.0]))
    saver = sg.train.Saver()
    saved = {v.var_name for v in sg.global_variables()}
    assert {"w/Adam", "w/Adam_1", "beta1_power", "beta2_power", "global_step"} <= saved
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        for _ in range(2):
            sess.run(train)
        path = saver.save(sess, str(tmp_path / "model"), global_step=step)
        for _ in range(3):
            sess.run(train)
        uninterrupted = sess.run(w)
    assert path.endswith("model-2")
    with sg.Session() as sess:
        saver.restore(sess, sg.train.latest_checkpoint(str(tmp_path)))
        assert sess.run(step) == 2
        for _ in range(3):
            sess.run(train)
        np.testing.assert_array_equal(sess.run(w), uninterrupted)


def test_max_to_keep_and_latest_checkpoint(tmp_path):
    w, n, flag = make_vars()
    saver = sg.train.Saver(max_to_keep=2)
    assert sg.train.latest_checkpoint(str(tmp_path)) is None
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        for step in (10, 20, 30, 40):
            sess.run(n.assign(np.int64(step)))
            saver.save(sess, str(tmp_path / "ckpt"), global_step=step)
    assert sorted(os.listdir(tmp_path)) == [
        "checkpoint.json", "ckpt-30.json", "ckpt-30.npz", "ckpt-40.json", "ckpt-40.npz"]
    index = json.loads((tmp_path / "checkpoint.json").read_text())
    assert index["all_model_checkpoint_paths"] == ["ckpt-30", "ckpt-40"]  # newest last
    latest = sg.train.latest_checkpoint(str(tmp_path))
    assert latest == str(tmp_path / "ckpt-40")
    assert saver.last_checkpoints == [str(tmp_path / "ckpt-30"), latest]
    with sg.Session() as sess:
        saver.restore(sess, str(tmp_path / "ckpt-30"))
        assert sess.run(n) == 30


def test_every_mismatch_is_named_in_one_error(tmp_path):
    w, n, flag = make_vars()
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        path = sg.train.Saver([w, n]).save(sess, str(tmp_path / "m"))
    g = sg.Graph()
    with g.as_default():
        w2 = sg.Variable(np.zeros((3, 2), np.float32), name="layer/w")  # shape differs
        n2 = sg.Variable(np.float64(0), name="n")  # dtype differs
        sg.Variable(np.zeros(2), name="missing")
        saver = sg.train.Saver()
        with sg.Session(graph=g) as sess:
            sess.run(sg.global_variables_initializer())
            with pytest.raises(sg.errors.InvalidArgumentError) as info:
                saver.restore(sess, path)
            message = str(info.value)
            assert "3 problem(s)" in message
            assert "'layer/w' has shape (2, 3)" in message and "needs shape (3, 2)" in message
            assert "'n' has shape () and dtype int64" in message and "float64" in message
            assert "'missing' is not in the checkpoint" in message
            # nothing was loaded
            np.testing.assert_array_equal(sess.run(w2), np.zeros((3, 2)))
            assert sess.run(n2) == 0.0
            with pytest.raises(sg.errors.NotFoundError, match="'missing' is not in"):
                sg.train.Saver({"missing": w2}).restore(sess, path)


def saved_checkpoint(tmp_path):
    w, n, flag = make_vars()
    saver = sg.train.Saver()
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        path = saver.save(sess, str(tmp_path / "model"))
    return saver, w, path


def test_truncated_data_is_detected_and_nothing_is_loaded(tmp_path):
    saver, w, path = saved_checkpoint(tmp_path)
    data = (tmp_path / "model.npz").read_bytes()
    (tmp_path / "model.npz").write_bytes(data[: len(data) // 2])
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        sess.run(w.assign(sg.zeros([2, 3])))
        with pytest.raises(sg.errors.DataLossError, match="truncated or corrupt"):
            saver.restore(sess, path)
        np.testing.assert_array_equal(sess.run(w), np.zeros((2, 3)))


def test_corrupt_files_are_reported(tmp_path):
    saver, w, path = saved_checkpoint(tmp_path)
    meta_path = tmp_path / "model.json"
    meta = json.loads(meta_path.read_text())
    # a corrupt archive whose checksum was updated to match: the parse fails
    garbage = b"not a zip file at all"
    (tmp_path / "model.npz").write_bytes(garbage)
    meta["data_sha256"] = saver_mod.hashlib.sha256(garbage).hexdigest()
    meta_path.write_text(json.dumps(meta))
    with sg.Session() as sess:
        with pytest.raises(sg.errors.DataLossError, match="cannot read the checkpoint data"):
            saver.restore(sess, path)
    meta_path.write_text("{ not json")
    with sg.Session() as sess:
        with pytest.raises(sg.errors.DataLossError, match="metadata .* is corrupt"):
            saver.restore(sess, path)
    (tmp_path / "checkpoint.json").write_text("[]")
    with pytest.raises(sg.errors.DataLossError, match="index .* is corrupt"):
        sg.train.latest_checkpoint(str(tmp_path))


def test_missing_files_give_not_found(tmp_path):
    saver, w, path = saved_checkpoint(tmp_path)
    with sg.Session() as sess:
        with pytest.raises(sg.errors.NotFoundError, match="no checkpoint at"):
            saver.restore(sess, str(tmp_path / "other"))
        os.remove(tmp_path / "model.npz")
        with pytest.raises(sg.errors.NotFoundError, match="data file"):
            saver.restore(sess, path)
        with pytest.raises(sg.errors.NotFoundError, match="does not exist"):
            saver.save(sess, str(tmp_path / "no_such_dir" / "model"))


@pytest.mark.parametrize("function, failing_call", [
    ("fsync", 1),  # writing the data file
    ("replace", 1),  # committing the data file
    ("replace", 2),  # committing the metadata
    ("replace", 3),  # committing the index
])
def test_a_failed_write_leaves_no_partial_files(tmp_path, monkeypatch, function, failing_call):
    w, n, flag = make_vars()
    saver = sg.train.Saver()
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        first = saver.save(sess, str(tmp_path / "model"), global_step=1)
        before = {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)}
        calls = []
        real = getattr(os, function)

        def failing(*args):
            calls.append(args)
            if len(calls) == failing_call:
                raise OSError("disk full")
            return real(*args)

        monkeypatch.setattr(saver_mod.os, function, failing)
        with pytest.raises(OSError, match="disk full"):
            saver.save(sess, str(tmp_path / "model"), global_step=2)
        monkeypatch.undo()
    after = {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)}
    assert after == before  # no temp files, no half checkpoint, the index untouched
    assert sg.train.latest_checkpoint(str(tmp_path)) == first
