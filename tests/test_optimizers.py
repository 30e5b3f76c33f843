"""Optimizers against NumPy implementations of TF1's formulas; schedules; gradient clipping."""

import math

import numpy as np
import pytest

import symgraph as sg

RNG = np.random.default_rng(0)
X = RNG.normal(size=(5, 3))
Y = RNG.normal(size=(5, 2))
W0 = RNG.normal(size=(3, 2))
B0 = RNG.normal(size=(2,))
STEPS = 5


@pytest.fixture(autouse=True)
def graph():
    g = sg.Graph()
    with g.as_default():
        yield g


def build_problem():
    """loss = sum((x @ w + b - y)^2) / 2 in float64."""
    w = sg.Variable(W0, name="w")
    b = sg.Variable(B0, name="b")
    r = sg.matmul(sg.constant(X), w) + b - sg.constant(Y)
    return w, b, sg.reduce_sum(r * r) * 0.5


def numpy_grads(w, b):
    r = X @ w + b - Y
    return [X.T @ r, r.sum(axis=0)]


# ---- NumPy references of TF1's formulas -----------------------------------------------------


def np_sgd(lr):
    def step(params, grads, state, t):
        return [p - lr * g for p, g in zip(params, grads)]
    return step


def np_momentum(lr, mu, nesterov=False):
    def step(params, grads, state, t):
        accs = state.setdefault("accum", [np.zeros_like(p) for p in params])
        out = []
        for i, (p, g) in enumerate(zip(params, grads)):
            accs[i] = mu * accs[i] + g
            out.append(p - (lr * g + lr * mu * accs[i] if nesterov else lr * accs[i]))
        return out
    return step


def np_rmsprop(lr, rho=0.9, momentum=0.0, eps=1e-10, centered=False):
    def step(params, grads, state, t):
        ms = state.setdefault("ms", [np.ones_like(p) for p in params])
        mom = state.setdefault("mom", [np.zeros_like(p) for p in params])
        mg = state.setdefault("mg", [np.zeros_like(p) for p in params])
        out = []
        for i, (p, g) in enumerate(zip(params, grads)):
            ms[i] = rho * ms[i] + (1 - rho) * g * g
            denom = ms[i]
            if centered:
                mg[i] = rho * mg[i] + (1 - rho) * g
                denom = ms[i] - mg[i] ** 2
            mom[i] = momentum * mom[i] + lr * g / np.sqrt(denom + eps)
            out.append(p - mom[i])
        return out
    return step


def np_adagrad(lr, init=0.1):
    def step(params, grads, state, t):
        acc = state.setdefault("acc", [np.full_like(p, init) for p in params])
        out = []
        for i, (p, g) in enumerate(zip(params, grads)):
            acc[i] = acc[i] + g * g
            out.append(p - lr * g / np.sqrt(acc[i]))
        return out
    return step


def np_adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-8):
    def step(params, grads, state, t):
        m = state.setdefault("m", [np.zeros_like(p) for p in params])
        v = state.setdefault("v", [np.zeros_like(p) for p in params])
        lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        out = []
        for i, (p, g) in enumerate(zip(params, grads)):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            out.append(p - lr_t * m[i] / (np.sqrt(v[i]) + eps))
        return out
    return step


CASES = {
    "sgd": (lambda: sg.train.GradientDescentOptimizer(0.05), np_sgd(0.05)),
    "momentum": (lambda: sg.train.MomentumOptimizer(0.05, 0.9), np_momentum(0.05, 0.9)),
    "nesterov": (lambda: sg.train.MomentumOptimizer(0.05, 0.9, use_nesterov=True),
                 np_momentum(0.05, 0.9, nesterov=True)),
    "rmsprop": (lambda: sg.train.RMSPropOptimizer(0.01), np_rmsprop(0.01)),
    "rmsprop_centered_momentum": (
        lambda: sg.train.RMSPropOptimizer(0.01, decay=0.8, momentum=0.5, epsilon=1e-6,
                                          centered=True),
        np_rmsprop(0.01, 0.8, 0.5, 1e-6, centered=True)),
    "adagrad": (lambda: sg.train.AdagradOptimizer(0.1), np_adagrad(0.1)),
    "adagrad_init": (lambda: sg.train.AdagradOptimizer(0.1, initial_accumulator_value=2.0),
                     np_adagrad(0.1, 2.0)),
    "adam": (lambda: sg.train.AdamOptimizer(0.1), np_adam(0.1)),
    "adam_betas": (lambda: sg.train.AdamOptimizer(0.02, beta1=0.5, beta2=0.9, epsilon=1e-3),
                   np_adam(0.02, 0.5, 0.9, 1e-3)),
}


def numpy_trajectory(step_fn, steps=STEPS):
    params, state = [W0.copy(), B0.copy()], {}
    for t in range(1, steps + 1):
        params = step_fn(params, numpy_grads(*params), state, t)
    return params


@pytest.mark.parametrize("case", sorted(CASES))
def test_optimizer_matches_the_tf1_formula(case):
    make, reference = CASES[case]
    w, b, loss = build_problem()
    train = make().minimize(loss)
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        for _ in range(STEPS):
            assert sess.run(train) is None
        got = sess.run([w, b])
    want = numpy_trajectory(reference)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-11, atol=1e-13)
    assert not np.allclose(got[0], W0)  # it moved


def test_learning_rate_may_be_a_tensor():
    w, b, loss = build_problem()
    lr = sg.placeholder(sg.float64, [])
    train = sg.train.MomentumOptimizer(lr, sg.constant(0.9, sg.float64)).minimize(loss)
    step = np_momentum(0.05, 0.9)
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        for _ in range(3):
            sess.run(train, {lr: 0.05})
        got = sess.run([w, b])
    for g, e in zip(got, numpy_trajectory(step, 3)):
        np.testing.assert_allclose(g, e, rtol=1e-12)


def test_float32_variables_with_a_python_learning_rate():
    w = sg.Variable(np.float32([1.0, -2.0]))
    loss = sg.reduce_sum(sg.square(w))
    train = sg.train.AdamOptimizer(0.1).minimize(loss)
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        sess.run(train)
        v = sess.run(w)
    assert v.dtype == np.float32
    np.testing.assert_allclose(v, [0.9, -1.9], rtol=1e-6)  # Adam's first step is lr * sign(g)


def test_slots_are_named_like_tf1_and_saved_with_global_variables():
    w, b, loss = build_problem()
    opt = sg.train.AdamOptimizer()
    opt.minimize(loss)
    names = [v.var_name for v in sg.global_variables()]
    assert names == ["w", "b", "beta1_power", "beta2_power", "w/Adam", "w/Adam_1", "b/Adam",
                     "b/Adam_1"]
    assert sg.trainable_variables() == [w, b]
    assert opt.get_slot(w, "m").var_name == "w/Adam"
    assert opt.get_slot(w, "v").var_name == "w/Adam_1"
    assert opt.get_slot(w, "nope") is None
    assert opt.get_slot_names() == ["m", "v"]
    assert len(opt.variables()) == 6
    rms = sg.train.RMSPropOptimizer(0.1, momentum=0.9)
    rms.minimize(loss, var_list=[w])
    assert rms.get_slot(w, "rms").var_name == "w/RMSProp"
    assert rms.get_slot(w, "momentum").var_name == "w/RMSProp_1"
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(rms.get_slot(w, "rms")), np.ones((3, 2)))


def test_var_list_limits_the_update():
    w, b, loss = build_problem()
    train = sg.train.GradientDescentOptimizer(0.1).minimize(loss, var_list=[b])
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        sess.run(train)
        wv, bv = sess.run([w, b])
    np.testing.assert_array_equal(wv, W0)
    np.testing.assert_allclose(bv, B0 - 0.1 * numpy_grads(W0, B0)[1], rtol=1e-12)


def test_two_minimize_ops_in_one_run_use_pre_update_gradients():
    w, b, loss = build_problem()
    v = sg.Variable(np.array([3.0, -1.0]), name="v")
    loss2 = sg.reduce_sum(v * v)
    t1 = sg.train.GradientDescentOptimizer(0.1).minimize(loss, var_list=[w, b])
    t2 = sg.train.MomentumOptimizer(0.2, 0.5).minimize(loss2 + loss, var_list=[w, v])
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        sess.run([t1, t2])
        wv, bv, vv = sess.run([w, b, v])
    gw, gb = numpy_grads(W0, B0)
    np.testing.assert_allclose(wv, W0 - 0.1 * gw - 0.2 * gw, rtol=1e-12)
    np.testing.assert_allclose(bv, B0 - 0.1 * gb, rtol=1e-12)
    np.testing.assert_allclose(vv, [3.0, -1.0] - 0.2 * 2 * np.array([3.0, -1.0]), rtol=1e-12)


def test_global_step_is_incremented_after_the_updates():
    w, b, loss = build_problem()
    step = sg.train.get_or_create_global_step()
    assert sg.train.get_or_create_global_step() is step
    assert sg.train.get_global_step() is step
    assert step.dtype == sg.int64 and not step.trainable
    assert sg.get_collection(sg.GraphKeys.GLOBAL_STEP) == [step]
    train = sg.train.AdamOptimizer(0.1).minimize(loss, global_step=step, name="train")
    assert train.name == "train"
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        for _ in range(3):
            sess.run(train)
        assert sg.train.global_step(sess, step) == 3
        np.testing.assert_allclose(sess.run(w), numpy_trajectory(np_adam(0.1), 3)[0],
                                   rtol=1e-11)
    with pytest.raises(ValueError, match="already exists"):
        sg.train.create_global_step()


def test_gradient_clipping_between_compute_and_apply():
    w, b, loss = build_problem()
    opt = sg.train.GradientDescentOptimizer(0.1)
    gvs = opt.compute_gradients(loss)
    assert [v for _, v in gvs] == [w, b]
    grads, norm = sg.clip_by_global_norm([g for g, _ in gvs], 1.0)
    train = opt.apply_gradients(list(zip(grads, [w, b])))
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        norm_v = sess.run(norm)
        sess.run(train)
        wv, bv = sess.run([w, b])
    gw, gb = numpy_grads(W0, B0)
    gnorm = math.sqrt((gw ** 2).sum() + (gb ** 2).sum())
    assert norm_v == pytest.approx(gnorm, rel=1e-12) and gnorm > 1.0
    np.testing.assert_allclose(wv, W0 - 0.1 * gw / gnorm, rtol=1e-12)
    np.testing.assert_allclose(bv, B0 - 0.1 * gb / gnorm, rtol=1e-12)


def test_clip_by_norm_and_global_norm():
    t = sg.constant(np.array([[3.0, 4.0], [0.0, 0.5]]))
    z = sg.constant(np.zeros(3))
    c_all = sg.clip_by_norm(t, 2.0)
    c_rows = sg.clip_by_norm(t, 1.0, axes=[1])
    c_zero = sg.clip_by_norm(z, 1.0)
    (dz,) = sg.gradients(sg.reduce_sum(c_zero), [z])
    clipped, norm = sg.clip_by_global_norm([t, None, z], 100.0)
    assert clipped[1] is None
    gn = sg.global_norm([t, None, z])
    with sg.Session() as sess:
        a, r, zz, dzv, kept, n, gnv = sess.run([c_all, c_rows, c_zero, dz, clipped[0], norm, gn])
    full = math.sqrt(25.25)
    np.testing.assert_allclose(a, np.array([[3.0, 4.0], [0.0, 0.5]]) * 2.0 / full)
    np.testing.assert_allclose(r, [[0.6, 0.8], [0.0, 0.5]])
    np.testing.assert_array_equal(zz, np.zeros(3))
    assert np.all(np.isfinite(dzv))
    np.testing.assert_allclose(kept, [[3.0, 4.0], [0.0, 0.5]])  # below the clip norm: unchanged
    assert n == pytest.approx(full) and gnv == pytest.approx(full)


def test_clip_by_global_norm_of_inf_gives_nan():
    clipped, _ = sg.clip_by_global_norm([sg.constant([np.inf, 1.0])], 1.0)
    with sg.Session() as sess:
        assert np.all(np.isnan(sess.run(clipped[0])))


def test_errors_name_what_is_wrong():
    w, b, loss = build_problem()
    other = sg.Variable(1.0, name="unused")
    with pytest.raises(ValueError, match=r"no gradients for any variable \[unused\]"):
        sg.train.GradientDescentOptimizer(0.1).minimize(loss, var_list=[other])
    with pytest.raises(TypeError, match="var_list must hold variables"):
        sg.train.GradientDescentOptimizer(0.1).minimize(loss, var_list=[loss])
    with pytest.raises(ValueError, match="does not fit the variable"):
        sg.train.GradientDescentOptimizer(0.1).apply_gradients([(sg.constant(np.ones(3)), b)])
    with pytest.raises(TypeError, match="floating"):
        sg.train.GradientDescentOptimizer(0.1).minimize(sg.constant(1))


# ---- learning-rate schedules ----------------------------------------------------------------


def schedule_values(make, steps):
    step = sg.placeholder(sg.int64, [])
    lr = make(step)
    with sg.Session() as sess:
        return [float(sess.run(lr, {step: s})) for s in steps]


STEPS_AT = [0, 1, 7, 10, 15, 30, 100]


def test_exponential_decay():
    got = schedule_values(lambda s: sg.train.exponential_decay(0.1, s, 10, 0.5), STEPS_AT)
    np.testing.assert_allclose(got, [0.1 * 0.5 ** (s / 10) for s in STEPS_AT], rtol=1e-6)
    got = schedule_values(
        lambda s: sg.train.exponential_decay(0.1, s, 10, 0.5, staircase=True), STEPS_AT)
    np.testing.assert_allclose(got, [0.1 * 0.5 ** (s // 10) for s in STEPS_AT], rtol=1e-6)


def test_inverse_time_decay():
    got = schedule_values(lambda s: sg.train.inverse_time_decay(1.0, s, 5, 0.5), STEPS_AT)
    np.testing.assert_allclose(got, [1.0 / (1 + 0.5 * s / 5) for s in STEPS_AT], rtol=1e-6)
    got = schedule_values(
        lambda s: sg.train.inverse_time_decay(1.0, s, 5, 0.5, staircase=True), STEPS_AT)
    np.testing.assert_allclose(got, [1.0 / (1 + 0.5 * (s // 5)) for s in STEPS_AT], rtol=1e-6)


def test_cosine_decay():
    got = schedule_values(lambda s: sg.train.cosine_decay(0.2, s, 30, alpha=0.1), STEPS_AT)
    want = [0.2 * (0.9 * 0.5 * (1 + math.cos(math.pi * min(s, 30) / 30)) + 0.1)
            for s in STEPS_AT]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_piecewise_constant():
    got = schedule_values(
        lambda s: sg.train.piecewise_constant(s, [5, 10], [1.0, 0.5, 0.1]), [0, 5, 6, 10, 11])
    np.testing.assert_allclose(got, [1.0, 1.0, 0.5, 0.5, 0.1], rtol=1e-7)
    with pytest.raises(ValueError, match="one more value"):
        sg.train.piecewise_constant(sg.constant(1), [1, 2], [1.0])


def test_schedule_drives_an_optimizer_through_the_global_step():
    w = sg.Variable(np.array([1.0]), name="w")
    step = sg.train.get_or_create_global_step()
    lr = sg.train.exponential_decay(sg.constant(0.1, sg.float64), step, 1, 0.5)
    train = sg.train.GradientDescentOptimizer(lr).minimize(sg.reduce_sum(w), global_step=step)
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        for _ in range(3):
            sess.run(train)
        # each step reads the step before its increment: lr = 0.1, 0.05, 0.025
        np.testing.assert_allclose(sess.run(w), [1.0 - 0.175], rtol=1e-12)


# ---- in-place updates (cpu) -------------------------------------------------------------------

IN_PLACE_OPTIMIZERS = {"adam": lambda: sg.train.AdamOptimizer(0.1),
                       "momentum": lambda: sg.train.MomentumOptimizer(0.05, 0.9)}


def broadcast_problem(shape):
    """loss = sum((w * x)^2) with x broadcast along w's last axis: the gradient fuses into the
    slot update, whose loop is then not flat (rank 2) or merges its leading dims (rank 3)."""
    w = sg.Variable(np.linspace(-1, 1, math.prod(shape)).reshape(shape), name="w")
    x = sg.constant(np.linspace(0.5, 1.5, shape[-1]))
    return [w], sg.reduce_sum(sg.square(w * x))


def dense_problem():
    w, b, loss = build_problem()
    return [w, b], loss


def in_place_kernels(plan):
    """The plan's loops that store into their inputs, by form: flat, merged or plain."""
    forms = {}
    for k in plan.kernels:
        loop = k if hasattr(k, "writes") else None
        if loop is None:  # an epilogue: its loop is the kernel of the same name after the "+"
            loop = next((c for c in plan.kernels if c.name == k.name.split("+")[-1]), None)
        if loop is not None and loop.writes:
            form = "flat" if loop.flat_shape else "merged" if loop.merged else "plain"
            forms.setdefault(form, []).append(loop)
    return forms


@pytest.mark.parametrize("problem", ["dense", "rank2", "rank3"])
@pytest.mark.parametrize("name", sorted(IN_PLACE_OPTIMIZERS))
def test_cpu_updates_weights_and_slots_in_their_own_buffers(name, problem):
    """After the first step (which copies the initial values into buffers of the session's
    own), each step writes every weight and slot into the array it read them from, as TF1's
    ApplyAdam does: one copy of each, no new arrays; results stay the reference's."""
    variables, loss = {"dense": dense_problem, "rank2": lambda: broadcast_problem((3, 4)),
                       "rank3": lambda: broadcast_problem((2, 3, 4))}[problem]()
    opt = IN_PLACE_OPTIMIZERS[name]()
    train = opt.minimize(loss)
    state = [v for v in sg.global_variables() if v.shape.rank]  # weights and slots
    assert len(state) == len(variables) * (3 if name == "adam" else 2)
    cpu, ref = sg.Session(device="cpu"), sg.Session(device="reference")
    for sess in (cpu, ref):
        sess.run(sg.global_variables_initializer())
    plan = cpu.plan_for(train)
    assert {u.var.name for ups in plan.updates for u in ups if u.reuse} == {
        v.node.name for v in state}
    form = {"dense": "flat", "rank2": "plain", "rank3": "merged"}[problem]
    assert form in in_place_kernels(plan), in_place_kernels(plan)
    cpu.run(train)
    ref.run(train)
    held = [cpu._store.read(v.node) for v in state]  # held: their memory cannot be reused
    for _ in range(STEPS - 1):
        cpu.run(train)
        ref.run(train)
    for v, old in zip(state, held):
        now = cpu._store.read(v.node)
        assert np.shares_memory(now, old), f"{v.name} got a new array"
        assert not now.flags.writeable
    for got, want in zip(cpu.run(state), ref.run(state)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    for loops in in_place_kernels(plan).values():  # one compiled version each, every step
        for loop in loops:
            assert len(loop.fn.signatures) == 1, (loop.name, loop.fn.signatures)


@pytest.mark.parametrize("name", sorted(IN_PLACE_OPTIMIZERS))
def test_the_assigns_of_in_place_updates_are_made_by_their_kernel_steps(monkeypatch, name):
    """An assign right after the kernel step that computed its value in place is folded into
    that step (schedule.fold_assigns): a plain run skips it as a step of its own; a traced
    run still runs it as one, and a kernel that falls back to its nodes still assigns. The
    variables follow the reference's, step after step."""
    from compiler import codegen_cpu
    from runtime import executor

    w, b, loss = build_problem()
    train = IN_PLACE_OPTIMIZERS[name]().minimize(loss)
    state = [v for v in sg.global_variables() if v.shape.rank]  # weights and slots
    cpu, ref = sg.Session(device="cpu"), sg.Session(device="reference")
    for sess in (cpu, ref):
        sess.run(sg.global_variables_initializer())
    plan = cpu.plan_for(train)
    folded = [s for s, f in zip(plan.steps, plan.folded) if f]
    assert len(folded) == len(state) and all(s.opdef.name == "assign" for s in folded)
    assert {u.assign for ups in plan.updates for u in ups} - {None} == {s.id for s in folded}

    def check():
        for got, want in zip(cpu.run(state), ref.run(state)):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)

    cpu.run(train)
    ref.run(train)
    check()
    metadata = sg.RunMetadata()  # traced: every step runs, the assigns too
    cpu.run(train, options=sg.RunOptions(trace_level=sg.RunOptions.FULL_TRACE),
            run_metadata=metadata)
    ref.run(train)
    assert sum(st.ops == ("assign",) for st in metadata.step_stats) >= len(folded)
    check()
    function_for = codegen_cpu.Kernel.function_for

    def refuse(self, args, part=False):  # as a loop does when run-time shapes do not fit
        if self.writes:
            raise ValueError("refused")
        return function_for(self, args, part)

    monkeypatch.setattr(codegen_cpu.Kernel, "function_for", refuse)
    before = executor.fallbacks
    cpu.run(train)
    ref.run(train)
    assert executor.fallbacks > before
    check()


def test_in_place_updates_compile_no_more_kernels():
    """The in-place form replaces the allocating form: a training step of a small MLP compiles
    as many kernels as before (9 loops for Adam, 9 for Momentum, measured before the change),
    and one more since the cross-entropy has a loop of its own (codegen_cpu_nn). Each weight's
    update shares its slots' loop (passes.forward_assigned_values): one call a variable, 16 ->
    13 calls for Adam (its lr_t is a loop of its own, computed first), 16 -> 12 calls and 10
    -> 9 loops for Momentum. Two fewer since (13 -> 11 and 12 -> 10 calls): the mean's gradient
    no longer divides by the size of its scalar output (size folds: 1), and the loop that
    spreads the gradient over the batch waits for the divisor and divides it too."""
    for make, slots, calls, loops in ((lambda: sg.train.AdamOptimizer(1e-3), 2, 11, 8),
                                      (lambda: sg.train.MomentumOptimizer(0.1, 0.9), 1, 10, 7)):
        with sg.Graph().as_default() as g:
            sg.set_random_seed(1)
            x = sg.placeholder(sg.float32, [None, 20])
            y = sg.placeholder(sg.int64, [None])
            h = sg.layers.dense(x, 16, activation=sg.nn.relu)
            logits = sg.layers.dense(h, 5)
            loss = sg.reduce_mean(sg.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y, logits=logits))
            train = make().minimize(loss)
            sess = sg.Session(graph=g, device="cpu")
            sess.run(sg.global_variables_initializer())
            feed = {x: np.ones((8, 20), np.float32), y: np.arange(8) % 5}
            plan = sess.plan_for(train, feed)
            for _ in range(3):
                sess.run(train, feed)
        names = {k.name.split("+")[-1] for k in plan.kernels}
        assert (len(plan.kernels), len(names)) == (calls, loops), sorted(names)
        # 2 kernels and 2 biases, each with its slots: every one updated in place
        assert sum(u.reuse for ups in plan.updates for u in ups) == 4 * (1 + slots)
