"""sg.summary: the text table of nodes a user prints to see what they built."""

import pytest

import symgraph as sg


@pytest.fixture(autouse=True)
def fresh_default_graph():
    sg.reset_default_graph()
    yield
    sg.reset_default_graph()


def _rows(text: str) -> list[list[str]]:
    """The table's cells, split on the column starts given by the header line."""
    lines = text.splitlines()
    header, rule = lines[0], lines[1]
    starts = [0] + [i + 2 for i in range(len(rule) - 1) if rule[i:i + 2] == "  "]
    bounds = list(zip(starts, starts[1:] + [None]))
    return [[line[a:b].strip() for a, b in bounds] for line in [header] + lines[2:]]


def test_summary_of_a_tensor_shows_its_dependencies_only(capsys):
    x = sg.placeholder(sg.float32, [None, 3], name="x")
    w = sg.constant([[1.0], [2.0], [3.0]], name="w")
    sg.constant(0, name="unrelated")
    y = sg.reduce_sum(x @ w, name="total")
    text = sg.summary(y)
    assert capsys.readouterr().out.strip() == text.strip()
    rows = _rows(text)
    assert rows[0] == ["id", "op", "name", "shape", "dtype", "inputs"]
    by_name = {r[2]: r for r in rows[1:]}
    assert set(by_name) == {"x", "w", "matmul", "total"}
    assert by_name["x"] == [str(x.op.id), "placeholder", "x", "(None, 3)", "float32", ""]
    assert by_name["w"][3:5] == ["(3, 1)", "float32"]
    mm = by_name["matmul"]
    assert mm[1] == "matmul" and mm[3] == "(None, 1)" and mm[5] == f"{x.op.id}, {w.op.id}"
    assert by_name["total"][1:5] == [y.op.type, "total", "()", "float32"]
    assert by_name["total"][5] == mm[0]
    assert [int(r[0]) for r in rows[1:]] == sorted(int(r[0]) for r in rows[1:])


def test_summary_of_a_graph_lists_every_node_with_control_inputs():
    g = sg.Graph()
    with g.as_default():
        v = sg.Variable([1, 2], name="v")
        init = sg.global_variables_initializer()
    text = sg.summary(g, print_fn=None)
    rows = _rows(text)
    assert [r[2] for r in rows[1:]] == [n.name for n in g.get_operations()]
    init_row = rows[1:][init.id]
    assert init_row[1] == "no_op" and init_row[3:5] == ["-", "-"]  # no output: no shape or dtype
    assert init_row[5] == f"^{v.initializer.id}"
    assert rows[1:][v.op.id][1:5] == ["variable", "v", "(2,)", "int32"]


def test_summary_defaults_to_the_default_graph(capsys):
    sg.constant(1.0, name="only")
    sg.summary()
    out = capsys.readouterr().out
    assert "only" in out and out.splitlines()[0].split() == ["id", "op", "name", "shape",
                                                             "dtype", "inputs"]
