"""Structure tests of the graph passes: each builds a small graph, applies one pass and asserts the
graph it returns (op types, node counts, the output node, names and user lines), then checks that
the optimized program computes what the reference computes."""

import numpy as np
import pytest

import symgraph as sg
from compiler import passes, pipeline
from compiler.program import Program, extract, live_nodes
from symgraph.graph import Node

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def graph():
    g = sg.Graph()
    with g.as_default():
        yield g


# ---- helpers ------------------------------------------------------------------------------------


def _node(x) -> Node:
    return x if isinstance(x, Node) else x.node


def program_of(fetches, feeds=()) -> Program:
    """The Program a session would compile for `fetches` (tensors or operations) given `feeds`."""
    fetches = [_node(f) for f in fetches]
    return extract(fetches[0].graph, fetches, [_node(f) for f in feeds])


def ops(program: Program) -> list[str]:
    """Op names of every node in the program's graph, in order (dead ones included)."""
    return [n.opdef.name for n in program.graph.nodes]


def live_ops(program: Program) -> list[str]:
    """Op names of the nodes the outputs need (a pass may leave behind nodes it made dead; the
    next rebuild drops them)."""
    live = live_nodes(program.outputs)
    return [n.opdef.name for n in program.graph.nodes if n.id in live]


def output(program: Program, i: int = 0) -> Node:
    return program.outputs[i]


def assert_stands_for(program: Program, node: Node, user) -> None:
    """`node` of the program carries the user's name and line, and maps back to the user's node."""
    user = _node(user)
    assert node.graph is program.graph
    assert node.name == user.name
    assert node.location == user.location
    assert "test_passes.py:" in node.location
    assert program.user_node(node) is user


def run_both(fetches, feed_dict=None, init=True, runs=1):
    """The values of `fetches` on device "reference" and on device "cpu", one session each."""
    results = []
    for device in ("reference", "cpu"):
        with sg.Session(device=device) as sess:
            if init:
                sess.run(sg.global_variables_initializer())
            results.append([sess.run(fetches, feed_dict) for _ in range(runs)])
    return results


def assert_same(a, b, rtol=1e-12, atol=1e-12) -> None:
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y, rtol, atol)
    elif a is None:
        assert b is None
    else:
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# ---- extract: prune to the fetched subgraph -----------------------------------------------------


def test_extract_copies_only_the_fetched_subgraph(graph):
    x = sg.placeholder(sg.float32, [3], name="x")
    y = x * 2.0
    sg.exp(x, name="unused")
    sg.reduce_sum(y, name="also_unused")
    before = len(graph.nodes)
    program = program_of([y], [x])
    assert ops(program) == ["placeholder", "constant", "multiply"]
    assert program.graph is not graph and len(graph.nodes) == before  # the user's graph is kept
    assert_stands_for(program, output(program), y)
    assert output(program).inputs[0].node is program.inputs[0]
    assert_stands_for(program, program.inputs[0], x)


def test_extract_turns_fed_tensors_into_placeholders(graph):
    x = sg.placeholder(sg.float32, [3], name="x")
    h = sg.exp(sg.sin(x), name="h")
    z = sg.placeholder(sg.float32, [3], name="z")
    y = h * 3.0
    program = program_of([y], [h, z])
    assert ops(program) == ["placeholder", "constant", "multiply"]  # sin, exp and x vanish
    fed, unneeded = program.inputs
    assert unneeded is None  # fed, but the fetches do not need it
    assert fed.opdef.name == "placeholder" and fed.shape == h.shape and fed.dtype == h.dtype
    assert_stands_for(program, fed, h)
    assert output(program).inputs[0].node is fed
    (value,) = run_both(y, {h: np.ones(3, np.float32)}, init=False)[1]
    np.testing.assert_array_equal(value, np.full(3, 3.0, np.float32))


def test_extract_keeps_control_dependencies(graph):
    v = sg.Variable(1.0, name="v")
    bump = v.assign_add(2.0, name="bump")
    with sg.control_dependencies([bump]):
        read = v.read_value()
    sg.exp(read, name="unused")
    program = program_of([read])
    assert ops(program) == ["variable", "constant", "assign_add", "read_variable"]
    out = output(program)
    assert [c.opdef.name for c in out.control_inputs] == ["assign_add"]
    assert_stands_for(program, out.control_inputs[0], bump)
    assert program.graph.nodes[0].name == "v"  # variables keep their exact names (state keys)


# ---- common-subexpression elimination -----------------------------------------------------------


def test_cse_merges_identical_products(graph):
    x = sg.placeholder(sg.float32, [3], name="x")
    y = sg.placeholder(sg.float32, [3], name="y")
    first = sg.multiply(x, y, name="first")
    second = sg.multiply(x, y, name="second")
    z = first + second
    program = passes.eliminate_common_subexpressions(program_of([z], [x, y]))
    assert ops(program) == ["placeholder", "placeholder", "multiply", "add"]
    add = output(program)
    assert add.inputs[0].node is add.inputs[1].node
    assert_stands_for(program, add.inputs[0].node, first)  # the first one stands for both
    assert_stands_for(program, add, z)


def test_cse_merges_commutative_ops_whatever_their_operands_order(graph):
    x = sg.placeholder(sg.float32, [3], name="x")
    y = sg.placeholder(sg.float32, [3], name="y")
    z = sg.placeholder(sg.float32, [3], name="z")
    products = sg.multiply(x, y, name="xy") + sg.multiply(y, x, name="yx")
    maxima = sg.maximum(x, y) - sg.maximum(y, x)
    quotients = sg.divide(x, y) - sg.divide(y, x)  # not commutative: both stay
    sums = sg.add_n([x, y, z]) - sg.add_n([z, y, x])  # three terms: not reordered
    program = passes.eliminate_common_subexpressions(
        program_of([products, maxima, quotients, sums], [x, y, z]))
    assert live_ops(program).count("multiply") == 1 and live_ops(program).count("maximum") == 1
    assert live_ops(program).count("divide") == 2 and live_ops(program).count("add_n") == 2
    add = output(program)
    assert add.inputs[0].node is add.inputs[1].node
    assert_stands_for(program, add.inputs[0].node, products.node.inputs[0])
    rng = np.random.default_rng(1)
    feed = {t: rng.standard_normal(3).astype(np.float32) for t in (x, y, z)}
    reference, cpu = run_both([products, maxima, quotients, sums], feed, init=False)
    assert_same(reference, cpu, rtol=1e-6, atol=1e-6)


def test_cse_merges_equal_constants_but_not_different_ones(graph):
    x = sg.placeholder(sg.float32, [3], name="x")
    z = (x + 2.0) * 2.0 + sg.constant(-0.0) - sg.constant(0.0) + 3.0
    program = passes.eliminate_common_subexpressions(program_of([z], [x]))
    values = [n.attrs["value"] for n in program.graph.nodes if n.opdef.name == "constant"]
    assert len(values) == 4  # 2.0 twice -> once; -0.0, 0.0 and 3.0 stay apart
    assert sorted(float(v) for v in values) == [0.0, 0.0, 2.0, 3.0]
    assert sorted(str(float(v)) for v in values)[:2] == ["-0.0", "0.0"]


def test_cse_keeps_ops_with_different_attributes(graph):
    x = sg.placeholder(sg.float32, [3, 3], name="x")
    z = sg.reduce_sum(x, axis=0) + sg.reduce_sum(x, axis=1) + sg.reduce_sum(x, axis=0)
    t = sg.transpose(x, [1, 0]) + sg.reshape(x, [3, 3])
    program = passes.eliminate_common_subexpressions(program_of([z, t], [x]))
    assert ops(program).count("reduce_sum") == 2
    sums = [n for n in program.graph.nodes if n.opdef.name == "reduce_sum"]
    assert sums[0].attrs != sums[1].attrs
    assert ops(program).count("transpose") == 1 and ops(program).count("reshape") == 1


def test_cse_never_merges_random_draws(graph):
    a = sg.random_normal([3])
    b = sg.random_normal([3])
    program = passes.eliminate_common_subexpressions(program_of([a - b]))
    assert ops(program).count("random_normal") == 2
    (value,) = run_both(a - b, init=False)[1]
    assert np.all(value != 0)  # two draws, not one


def test_cse_never_merges_variables_or_assignments(graph):
    v = sg.Variable(1.0, name="v")
    w = sg.Variable(1.0, name="w")
    first = v.assign_add(1.0)
    second = v.assign_add(1.0)
    reads = [v.read_value(), v.read_value()]
    program = passes.eliminate_common_subexpressions(program_of([first, second, v + w] + reads))
    names = ops(program)
    assert names.count("variable") == 2 and names.count("assign_add") == 2
    assert names.count("read_variable") == 2
    assert {n.name for n in program.graph.nodes if n.opdef.name == "variable"} == {"v", "w"}
    reference, cpu = run_both([first, second, v.read_value()])
    assert_same(reference, cpu)


# ---- constant folding ---------------------------------------------------------------------------


def test_fold_constants_turns_a_chain_into_one_constant(graph):
    x = sg.placeholder(sg.float64, [2], name="x")
    c = sg.divide(sg.constant(2.0, sg.float64) * 3.0 + 1.0, 2.0, name="c")
    y = x + sg.exp(c - 3.5)
    program = passes.eliminate_dead_code(passes.fold_constants(program_of([y], [x])))
    assert ops(program) == ["placeholder", "constant", "add"]
    folded = output(program).inputs[1].node
    assert folded.attrs["value"] == 1.0 and folded.dtype == sg.float64 and folded.shape == ()
    assert_stands_for(program, folded, y.node.inputs[1])  # the exp node it replaced
    reference, cpu = run_both(y, {x: [1.0, 2.0]}, init=False)
    assert_same(reference, cpu)


def test_fold_constants_keeps_the_constants_value_and_dtype(graph):
    c = sg.cast(sg.constant([1.5, -2.5]) * 2.0, sg.int32, name="c")
    program = passes.eliminate_dead_code(passes.fold_constants(program_of([c])))
    assert ops(program) == ["constant"]
    value = output(program).attrs["value"]
    assert value.dtype == np.int32 and value.tolist() == [3, -5]
    assert not value.flags.writeable
    assert_stands_for(program, output(program), c)


def test_fold_constants_never_folds_random_draws_or_placeholders(graph):
    r = sg.random_normal([2]) * 2.0
    x = sg.placeholder(sg.float32, [2], name="x")
    program = passes.fold_constants(program_of([r, x * 2.0, sg.placeholder_with_default(
        sg.constant([1.0, 2.0]), [None]) * 2.0], [x]))
    assert ops(program).count("random_normal") == 1
    mul_inputs = [tuple(t.node.opdef.name for t in n.inputs)
                  for n in program.graph.nodes if n.opdef.name == "multiply"]
    assert mul_inputs == [("random_normal", "constant"), ("placeholder", "constant")]
    # an unfed placeholder_with_default is its default: that one folds
    assert output(program, 2).opdef.name == "constant"


def test_fold_constants_leaves_integer_division_by_zero_to_run_time(graph):
    q = sg.floordiv(sg.constant(7), sg.constant(0), name="q")
    program = passes.fold_constants(program_of([q]))
    assert ops(program) == ["constant", "constant", "floordiv"]
    assert_stands_for(program, output(program), q)
    for device in ("cpu", "reference"):
        with sg.Session(device=device) as sess:
            with pytest.raises(sg.errors.InvalidArgumentError, match="division by zero") as e:
                sess.run(q)
            assert e.value.node is q.node  # the error names the user's node


def test_fold_constants_does_not_materialize_big_constants(graph):
    limit = passes.FOLD_LIMIT
    small = sg.constant(1.0, shape=[limit]) * 2.0
    big = sg.constant(1.0, shape=[limit + 1]) * 2.0
    program = passes.fold_constants(program_of([small, big]))
    assert output(program, 0).opdef.name == "constant"
    assert output(program, 1).opdef.name == "multiply"


def test_fold_constants_keeps_constants_that_wait_for_control_inputs(graph):
    v = sg.Variable(1.0, name="v")
    bump = v.assign_add(1.0)
    with sg.control_dependencies([bump]):
        c = sg.constant(2.0)
    y = c * 3.0
    program = passes.fold_constants(program_of([y]))
    assert output(program).opdef.name == "multiply"
    assert "assign_add" in live_ops(program)
    reference, cpu = run_both([y, v.read_value()], runs=2)
    assert_same(reference, cpu)


def test_fold_constants_takes_shape_and_size_from_the_static_shape(graph):
    # shape() and size() read only their input's shape: where it is fully known statically they
    # fold, and what computes the input drops out (a mean's gradient divides by the size of
    # the mean's output, which no longer runs the forward mean)
    x = sg.placeholder(sg.float32, [3, 4], name="x")
    batch = sg.placeholder(sg.float32, [None, 4], name="batch")
    y = sg.exp(x)
    s, n, dyn = sg.shape(y, name="s"), sg.size(y, name="n"), sg.size(batch * 2.0, name="dyn")
    mean = sg.reduce_mean(sg.exp(batch), name="mean")
    grad = sg.gradients(mean, [batch])[0]
    program = passes.eliminate_dead_code(passes.fold_constants(
        program_of([s, n, dyn, grad], [x, batch])))
    assert [output(program, i).opdef.name for i in range(3)] == ["constant", "constant", "size"]
    assert output(program, 0).attrs["value"].tolist() == [3, 4]
    assert output(program, 1).attrs["value"] == 12
    assert_stands_for(program, output(program, 1), n)
    assert "reduce_mean" not in live_ops(program) and "exp" in live_ops(program)
    feed = {x: np.ones((3, 4), np.float32), batch: RNG.random((5, 4), dtype=np.float32)}
    reference, cpu = run_both([s, n, dyn, grad], feed, init=False)
    assert_same(reference, cpu, rtol=1e-6, atol=1e-7)
    assert cpu[0][2] == 20 and cpu[0][1] == 12

# ---- algebraic simplification -------------------------------------------------------------------


NEUTRAL_FORMS = {
    "x*1": lambda x: x * 1.0,
    "1*x": lambda x: 1.0 * x,
    "x+0": lambda x: x + 0.0,
    "0+x": lambda x: 0.0 + x,
    "x-0": lambda x: x - 0.0,
    "x/1": lambda x: x / 1.0,
    "x*ones": lambda x: x * sg.constant(np.ones(3, np.float32)),
    "x*[[1]]": lambda x: x * sg.constant([[1.0]]),
}


@pytest.mark.parametrize("form", NEUTRAL_FORMS)
def test_simplify_drops_neutral_elements(form):
    x = sg.placeholder(sg.float32, [2, 3], name="x")
    y = sg.exp(NEUTRAL_FORMS[form](x))
    program = passes.simplify(program_of([y], [x]))
    out = output(program)
    assert out.opdef.name == "exp" and out.inputs[0].node is program.inputs[0]
    assert live_ops(program) == ["placeholder", "exp"]


def test_simplify_keeps_int_x_times_one_as_int(graph):
    x = sg.placeholder(sg.int32, [3], name="x")
    program = passes.simplify(program_of([x * 1], [x]))
    assert output(program) is program.inputs[0] and output(program).dtype == sg.int32


@pytest.mark.parametrize("shape, one", [
    ([3], np.ones((2, 3), np.float32)),  # the 1 broadcasts x to (2, 3)
    ([1, 3], np.ones((2, 1), np.float32)),
    ([None, 3], np.ones((2, 3), np.float32)),
    (None, np.ones((2, 3), np.float32)),  # unknown rank: x might be a scalar
    (None, np.ones((1,), np.float32)),
])
def test_simplify_keeps_a_neutral_element_that_broadcasts(shape, one):
    x = sg.placeholder(sg.float32, shape, name="x")
    y = sg.multiply(x, sg.constant(one), name="y")
    z = sg.add(sg.constant(np.zeros_like(one)), x, name="z")
    program = passes.simplify(program_of([y, z], [x]))
    assert_stands_for(program, output(program, 0), y)
    assert_stands_for(program, output(program, 1), z)


def test_simplify_of_unknown_rank_times_one(graph):
    x = sg.placeholder(sg.float32, None, name="x")
    y = x * sg.constant(np.ones((2, 3), np.float32))
    program = passes.simplify(program_of([x * 1.0, y], [x]))
    assert output(program, 0) is program.inputs[0]  # a 0-d 1 never changes the shape
    assert output(program, 1).opdef.name == "multiply"
    reference, cpu = run_both(y, {x: 2.0}, init=False)
    assert cpu[0].shape == reference[0].shape == (2, 3)


def test_simplify_keeps_zero_minus_x_and_one_over_x(graph):
    x = sg.placeholder(sg.float32, [3], name="x")
    program = passes.simplify(program_of([0.0 - x, 1.0 / x, x * 2.0], [x]))
    assert [output(program, i).opdef.name for i in range(3)] == ["subtract", "divide", "multiply"]


@pytest.mark.parametrize("build", [
    lambda x: -sg.negative(x),
    lambda x: sg.log(sg.exp(x)),
    lambda x: sg.identity(x),
    lambda x: sg.stop_gradient(x),
    lambda x: sg.identity(sg.stop_gradient(-sg.negative(x))),
], ids=["neg-neg", "log-exp", "identity", "stop_gradient", "chain"])
def test_simplify_removes_inverse_pairs_and_pass_throughs(build):
    x = sg.placeholder(sg.float32, [3], name="x")
    program = passes.simplify(program_of([build(x)], [x]))
    assert output(program) is program.inputs[0]
    assert ops(passes.eliminate_dead_code(program)) == ["placeholder"]


def test_simplify_rewrites_log_softmax(graph):
    z = sg.placeholder(sg.float32, [4, 3], name="z")
    y = sg.log(sg.nn.softmax(z, axis=0), name="log_probs")
    program = passes.eliminate_dead_code(passes.simplify(program_of([y], [z])))
    assert ops(program) == ["placeholder", "log_softmax"]
    out = output(program)
    assert out.attrs == y.node.inputs[0].node.attrs  # the softmax's axis
    assert_stands_for(program, out, y)
    logits = np.array([[0.0, 1.0, 2.0]] * 3 + [[200.0, -200.0, 0.0]], np.float32)
    reference, cpu = run_both(y, {z: logits}, init=False)
    assert np.isinf(reference[0]).any() and np.isfinite(cpu[0]).all()  # stable on cpu
    finite = np.isfinite(reference[0])
    np.testing.assert_allclose(cpu[0][finite], reference[0][finite], rtol=1e-5, atol=1e-6)


def test_tf1_tutorial_loss_uses_log_softmax(graph):
    x = sg.placeholder(sg.float64, [None, 3], name="x")
    labels = sg.placeholder(sg.float64, [None, 2], name="labels")
    w = sg.Variable(RNG.normal(size=(3, 2)), name="w")
    b = sg.Variable(np.zeros(2), name="b")
    z = sg.matmul(x, w) + b
    loss = -sg.reduce_sum(labels * sg.log(sg.nn.softmax(z)), name="loss")
    program = pipeline.optimize(program_of([loss], [x, labels]))
    names = ops(program)
    assert "log_softmax" in names and "softmax" not in names and "log" not in names
    assert_stands_for(program, output(program), loss)


@pytest.mark.parametrize("inner, outer", [((1, 2, 0), (1, 0, 2)), ((2, 0, 1), (0, 2, 1))])
def test_simplify_composes_transposes(inner, outer):
    x = sg.placeholder(sg.float64, [2, 3, 4], name="x")
    y = sg.transpose(sg.transpose(x, inner), outer, name="y")
    program = passes.eliminate_dead_code(passes.simplify(program_of([y], [x])))
    assert ops(program) == ["placeholder", "transpose"]
    out = output(program)
    a = np.arange(24.0).reshape(2, 3, 4)
    expected = np.transpose(np.transpose(a, inner), outer)
    np.testing.assert_array_equal(np.transpose(a, out.attrs["perm"]), expected)
    assert out.shape == y.shape
    assert_stands_for(program, out, y)
    reference, cpu = run_both(y, {x: a}, init=False)
    assert_same(reference, cpu)


def test_simplify_cancels_inverse_transposes(graph):
    x = sg.placeholder(sg.float64, [2, 3, 4], name="x")
    program = passes.simplify(program_of([sg.transpose(sg.transpose(x, (1, 2, 0)), (2, 0, 1)),
                                          sg.transpose(sg.transpose(x))], [x]))
    assert output(program, 0) is program.inputs[0]
    assert output(program, 1) is program.inputs[0]
    assert ops(passes.eliminate_dead_code(program)) == ["placeholder"]


def test_simplify_merges_reshapes(graph):
    x = sg.placeholder(sg.float64, [2, 3, 4], name="x")
    y = sg.reshape(sg.reshape(x, [6, 4]), [4, -1], name="y")
    back = sg.reshape(sg.reshape(x, [24]), [2, 3, 4], name="back")
    same = sg.reshape(x, [2, 3, 4], name="same")
    program = passes.eliminate_dead_code(passes.simplify(program_of([y, back, same], [x])))
    assert ops(program) == ["placeholder", "reshape"]
    out = output(program)
    assert out.inputs[0].node is program.inputs[0] and out.shape == (4, 6)
    assert_stands_for(program, out, y)
    assert output(program, 1) is program.inputs[0] and output(program, 2) is program.inputs[0]
    reference, cpu = run_both([y, back, same], {x: RNG.normal(size=(2, 3, 4))}, init=False)
    assert_same(reference, cpu)


def test_simplify_never_bypasses_a_node_with_control_inputs(graph):
    v = sg.Variable(1.0, name="v", dtype=sg.float64)
    bump = v.assign_add(1.0)
    with sg.control_dependencies([bump]):
        inner = -v
        one = sg.constant(1.0, sg.float64)
        exp = sg.exp(v)
    ys = [-inner, v * one, sg.log(exp)]
    program = passes.eliminate_dead_code(passes.simplify(program_of(ys)))
    assert [output(program, i).opdef.name for i in range(3)] == ["negative", "multiply", "log"]
    assert "assign_add" in ops(program)
    reference, cpu = run_both(ys + [v.read_value()], runs=3)
    assert_same(reference, cpu)
    assert reference[-1][-1] == 4.0  # one assign_add per run, on both devices



def relu_pool_gradients(padding, ksize, strides, also_h=False):
    """conv - ReLU - max pool's backward, without the conv: the gradients of x and of the bias."""
    x = sg.placeholder(sg.float64, [None, 5, 5, 2], name="x")
    b = sg.Variable(np.array([0.25, -0.5]), name="b")
    h = sg.nn.relu(x + b)
    y = sg.nn.max_pool(h, [1, *ksize, 1], [1, *strides, 1], padding)
    loss = sg.reduce_sum(0.5 * y * y + y)
    return x, sg.gradients(loss, [x, b, h] if also_h else [x, b])


def relu_pool_feeds(x):
    """Windows with a positive maximum, with only zeros and negatives, ties at 0, and a NaN."""
    z = RNG.normal(size=(3, 5, 5, 2))
    z[0, :2, :2, 0] = -1.0  # a window that the ReLU zeroes
    z[1, :, :, 1] = 0.5  # ties: x + b = 0 exactly
    nan = z.copy()
    nan[2, 3, 1, 0] = np.nan
    return [{x: z}, {x: nan}]


@pytest.mark.parametrize("padding,ksize,strides", [("VALID", (2, 2), (2, 2)),
                                                   ("SAME", (3, 3), (2, 2)),
                                                   ("SAME", (2, 2), (1, 1))])
def test_simplify_masks_a_relus_gradient_after_its_max_pool(padding, ksize, strides):
    """where(z > 0, max_pool_grad(relu(z), g), 0) becomes max_pool_grad(relu(z), where(max_pool
    > 0, g, 0)), and the bias gradient sums the pooled gradient: no full-size where or sum."""
    x, grads = relu_pool_gradients(padding, ksize, strides)
    program = pipeline.optimize(program_of(grads, [x]))
    grad_x, bias_sum = output(program), output(program, 1)
    assert grad_x.opdef.name == "max_pool2d_grad", ops(program)
    masked = grad_x.inputs[1].node
    assert masked.opdef.name == "where" and masked.inputs[0].node.inputs[0].node.opdef.name \
        == "max_pool2d"
    assert bias_sum.opdef.name == "reduce_sum" and bias_sum.inputs[0].node is masked
    assert live_ops(program).count("max_pool2d_grad") == 1
    assert live_ops(program).count("max_pool2d") == 1  # the forward's, shared (CSE)
    for feed in relu_pool_feeds(x):
        reference, cpu = run_both(grads, feed)
        assert_same(reference, cpu)


def test_simplify_keeps_a_relus_full_size_gradient_that_is_fetched():
    x, grads = relu_pool_gradients("VALID", (2, 2), (2, 2), also_h=True)
    program = pipeline.optimize(program_of(grads, [x]))
    assert output(program).opdef.name == "where"  # masks the fetched max_pool2d_grad
    assert output(program).inputs[1].node is output(program, 2)
    assert live_ops(program).count("max_pool2d_grad") == 1  # not computed twice
    reference, cpu = run_both(grads, relu_pool_feeds(x)[0])
    assert_same(reference, cpu)

# ---- dead-code elimination ----------------------------------------------------------------------


def test_eliminate_dead_code_drops_what_a_rewrite_left_behind(graph):
    x = sg.placeholder(sg.float32, [3], name="x")
    s = sg.nn.softmax(x)
    y = sg.log(s) + sg.log(sg.exp(x))
    simplified = passes.simplify(program_of([y], [x]))
    assert ops(simplified) == ["placeholder", "softmax", "log_softmax", "exp", "add"]
    program = passes.eliminate_dead_code(simplified)
    assert ops(program) == ["placeholder", "log_softmax", "add"]
    assert_stands_for(program, output(program), y)
    assert program.inputs[0].opdef.name == "placeholder"


def test_eliminate_dead_code_keeps_live_state_ops(graph):
    v = sg.Variable(1.0, name="v")
    bump = v.assign_add(1.0)
    with sg.control_dependencies([bump]):
        y = sg.identity(v)
    program = passes.eliminate_dead_code(program_of([y]))
    assert ops(program) == ["variable", "constant", "assign_add", "identity"]


# ---- the whole pipeline -------------------------------------------------------------------------


def mlp(x, labels, seed):
    rng = np.random.default_rng(seed)
    w1 = sg.Variable(rng.normal(size=(3, 5)), name="w1")
    b1 = sg.Variable(rng.normal(size=5) * 0.1, name="b1")
    w2 = sg.Variable(rng.normal(size=(5, 2)), name="w2")
    b2 = sg.Variable(np.zeros(2), name="b2")
    hidden = sg.nn.relu(sg.matmul(x, w1) + b1 * 1.0)
    logits = sg.matmul(hidden, w2) + b2
    loss = -sg.reduce_mean(sg.reduce_sum(labels * sg.log(sg.nn.softmax(logits)), axis=1))
    return [w1, b1, w2, b2], loss


def mlp_feed(x, labels):
    rng = np.random.default_rng(1)
    return {x: rng.normal(size=(6, 3)), labels: np.eye(2)[rng.integers(0, 2, 6)]}


def test_optimize_shrinks_a_gradient_graph_and_keeps_its_values(graph):
    x = sg.placeholder(sg.float64, [None, 3], name="x")
    labels = sg.placeholder(sg.float64, [None, 2], name="labels")
    params, loss = mlp(x, labels, seed=2)
    grads = sg.gradients(loss, params)
    program = program_of([loss] + grads, [x, labels])
    optimized = pipeline.optimize(program)
    assert len(optimized.graph.nodes) < len(program.graph.nodes)
    assert "identity" not in ops(optimized) and "log" not in ops(optimized)
    assert len(optimized.outputs) == 1 + len(params)
    for node in optimized.graph.nodes:
        assert program.user_node(node) is node  # not a node of the extracted program
        assert optimized.user_node(node).graph is graph
    reference, cpu = run_both([loss] + grads, mlp_feed(x, labels))
    assert_same(reference, cpu)


def test_optimized_adam_steps_match_the_reference(graph):
    x = sg.placeholder(sg.float64, [None, 3], name="x")
    labels = sg.placeholder(sg.float64, [None, 2], name="labels")
    params, loss = mlp(x, labels, seed=3)
    train = sg.train.AdamOptimizer(0.05).minimize(loss)
    feed = mlp_feed(x, labels)
    results = []
    for device in ("reference", "cpu"):
        with sg.Session(device=device) as sess:
            sess.run(sg.global_variables_initializer())
            losses = [sess.run([loss, train], feed)[0] for _ in range(3)]
            results.append((losses, sess.run(params), sess.run(sg.global_variables())))
    reference, cpu = results
    assert_same(reference, cpu)
    assert reference[0][2] < reference[0][0]  # it trains


def test_state_ops_keep_their_order(graph):
    v = sg.Variable(np.array([1.0, 2.0]), name="v")
    bump = v.assign_add(sg.constant([2.0, 2.0], sg.float64) * 1.0)
    with sg.control_dependencies([bump]):
        after = v.read_value() * 1.0
    before = v * 1.0
    program = pipeline.optimize(program_of([before, bump, after]))
    state_ops = [n.opdef.name for n in program.graph.nodes
                 if n.opdef.name in ("variable", "assign", "assign_add", "read_variable")]
    assert state_ops == ["variable", "assign", "read_variable"]  # assign(v, v + d): one writer
    reference, cpu = run_both([before, bump, after], runs=3)
    assert_same(reference, cpu)
    np.testing.assert_array_equal(cpu[-1][0], [5.0, 6.0])  # read when the run began
    np.testing.assert_array_equal(cpu[-1][2], [7.0, 8.0])  # read after this run's assign_add


def test_a_relative_assignment_becomes_an_assignment_of_a_fusable_update(graph):
    v = sg.Variable(np.array([1.0, 2.0]), name="v")
    g = sg.placeholder(sg.float64, [2], name="g")
    step = v.assign_sub(0.5 * sg.square(g))
    program = passes.expand_relative_assignments(program_of([step]))
    ops = [n.opdef.name for n in program.graph.nodes]
    assert "assign_sub" not in ops and ops[-2:] == ["subtract", "assign"]
    assign = program.graph.nodes[-1]
    assert assign.inputs[1].node.inputs[0].node is assign.inputs[0].node  # v - 0.5 g^2
    reference, cpu = run_both([step], {g: [2.0, 4.0]}, runs=3)
    assert_same(reference, cpu)
    np.testing.assert_array_equal(cpu[-1][0], [-5.0, -22.0])


def test_a_variable_written_twice_keeps_its_relative_assignments(graph):
    # the second update must start from the first one's result, not from the run's first read
    v = sg.Variable(np.array([1.0, 2.0]), name="v")
    first = v.assign_add(sg.constant([1.0, 1.0], sg.float64))
    with sg.control_dependencies([first]):
        second = v.assign_sub(sg.constant([0.5, 0.5], sg.float64))
    program = passes.expand_relative_assignments(program_of([second]))
    ops = [n.opdef.name for n in program.graph.nodes]
    assert "assign_add" in ops and "assign_sub" in ops and "assign" not in ops
    reference, cpu = run_both([second], runs=2)
    assert_same(reference, cpu)
    np.testing.assert_array_equal(cpu[-1][0], [2.0, 3.0])


# ---- an assignment's readers read the assigned value -------------------------------------------


def _momentum_step():
    """TF1's MomentumOptimizer's update: the weight's step reads the slot's assignment."""
    w = sg.Variable(np.array([1.0, 2.0, 3.0]), name="w")
    m = sg.Variable(np.array([0.5, 0.0, -0.5]), name="m")
    g = sg.placeholder(sg.float64, [3], name="g")
    m_t = m.assign(m * 0.9 + g)
    return w, m, g, m_t, w.assign_sub(0.1 * m_t)


def test_an_assignments_fusable_readers_read_its_value_and_it_runs_before_the_next_write(graph):
    w, m, g, m_t, step = _momentum_step()
    program = passes.forward_assigned_values(
        passes.expand_relative_assignments(program_of([step])))
    of_user = {program.user_node(n): n for n in program.graph.nodes if n.opdef.name == "assign"}
    slot, weight = of_user[m_t.node], of_user[step.node]
    scaled = weight.inputs[1].node.inputs[1].node  # w - 0.1 * (m * 0.9 + g)
    assert scaled.opdef.name == "multiply" and scaled.inputs[1].node is slot.inputs[1].node
    assert not any(t.node is slot for n in program.graph.nodes for t in n.inputs)
    assert weight.control_inputs == (slot,)  # the slot's write still runs with the weight's
    assert program.user_node(scaled) is step.node.inputs[1].node  # errors name the user's node
    feeds = {g: np.array([1.0, -1.0, 2.0])}
    reference, cpu = run_both([step, m], feeds, runs=3)
    assert_same(reference, cpu)
    np.testing.assert_allclose(cpu[0][0], [0.855, 2.1, 2.845])


def test_an_assignment_read_by_a_fetched_fusable_node_keeps_its_reader(graph):
    """A control input would cost the fetched node its loop: the reader keeps the assignment's
    output, which still makes the assignment run when only the reader is fetched."""
    w, m, g, m_t, step = _momentum_step()
    doubled = m_t * 2.0
    program = passes.forward_assigned_values(program_of([doubled]))
    (slot,) = [n for n in program.graph.nodes if n.opdef.name == "assign"]
    assert program.outputs[0].inputs[0].node is slot
    feeds = {g: np.array([1.0, -1.0, 2.0])}
    reference, cpu = run_both([doubled, m], feeds, runs=2)
    assert_same(reference, cpu)
    np.testing.assert_allclose(cpu[1][1], [1.45, -1.0, 1.55])  # the first run updated m
    np.testing.assert_allclose(cpu[1][0], [4.61, -3.8, 6.79])
