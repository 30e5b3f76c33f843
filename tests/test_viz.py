"""sg.to_dot / sg.visualize: the DOT structure (scopes as clusters, collapsing, gradient style,
kernel hulls, escaping of hostile names) and real PNG/SVG/PDF files from Graphviz."""

from __future__ import annotations

import re
import shutil
import struct
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import symgraph as sg
from symgraph import dot as sgdot
from symgraph import viz

ROOT = Path(__file__).resolve().parent.parent
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed (scripts/ensure_dot.sh)")
QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def _mlp():
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [None, 4], name="x")
        with sg.name_scope("layer"):
            w = sg.Variable(np.ones((4, 3), np.float32), name="w")
            h = sg.nn.relu(sg.matmul(x, w) * 2.0 + 1.0)
        loss = sg.reduce_mean(sg.square(sg.identity(h, name="same")), name="loss")
        (gw,) = sg.gradients(loss, [w])
        train = sg.assign_sub(w, 0.1 * gw, name="train")
    return g, x, loss, train


def _node_lines(dot: str) -> dict[str, str]:
    """DOT node id -> its attribute text, for the statements that declare nodes."""
    return dict(re.findall(r"^\s*(n\d+|s\d+) (\[.*\])$", dot, re.M))


def _label(attrs: str) -> str:
    return re.search(r'label="((?:[^"\\]|\\.)*)"', attrs).group(1)


def _clusters(dot: str) -> dict[str, str]:
    """Cluster label -> the DOT text of its body (nested clusters included); the writer puts
    each cluster's closing brace on its own line at the indent of its opening line."""
    lines = dot.splitlines()
    out = {}
    for i, line in enumerate(lines):
        if line.lstrip().startswith("subgraph cluster_"):
            indent = line[:len(line) - len(line.lstrip())]
            end = next(j for j in range(i + 1, len(lines)) if lines[j] == indent + "}")
            label = re.match(r'\s*label="((?:[^"\\]|\\.)*)"', lines[i + 1]).group(1)
            out[label] = "\n".join(lines[i + 1:end])
    return out


def test_nodes_show_op_name_shape_and_kinds_have_distinct_shapes():
    g, x, loss, _ = _mlp()
    dot = sg.to_dot(loss, collapse_depth=None)
    nodes = _node_lines(dot)
    by_name = {_label(a).split("\\n")[0]: a for a in nodes.values()}
    assert "placeholder" in _label(by_name["x"]) and "(?, 4) f32" in _label(by_name["x"])
    assert 'shape="invhouse"' in by_name["x"] and 'shape="cylinder"' in by_name["w"]
    assert _label(by_name["matmul"]) == "matmul\\n(?, 3) f32"
    assert "= 2" in _label(by_name["constant"]) and 'fillcolor="#eeeeee"' in by_name["constant"]
    assert 'shape="box"' in by_name["relu"] and "(?, 3) f32" in _label(by_name["relu"])
    assert re.search(r'label="\(\?, 3\)"', dot)  # edges carry the shapes they move
    assert _clusters(dot).keys() == {"layer"}
    assert f"n{g.get_operation_by_name('layer/relu').id}" in _node_lines(_clusters(dot)["layer"])
    assert "placeholder" in dot and "blue house" in dot  # the legend


def test_gradients_are_styled_and_can_be_hidden():
    g, _, _, train = _mlp()
    dot = sg.to_dot(train, collapse_depth=None)
    nodes = _node_lines(dot)
    grads = [n for n in g.nodes if n.name.startswith("gradients/") and f"n{n.id}" in nodes]
    assert len(grads) > 3 and all(viz.is_gradient(n) for n in grads)
    for n in grads:
        assert 'style="rounded,filled,dashed"' in nodes[f"n{n.id}"]
    assert "dashed" not in nodes[f"n{g.get_operation_by_name('layer/relu').id}"]
    assert 'bgcolor="#fffaf4"' in _clusters(dot)["gradients"]
    hidden = sg.to_dot(train, show_gradients=False, collapse_depth=None)
    assert not any(f"n{n.id}" in _node_lines(hidden) for n in grads)
    assert f"n{g.get_operation_by_name('train').id}" in _node_lines(hidden)


def test_collapsed_scopes_become_one_box_with_merged_edges():
    g, _, _, train = _mlp()
    dot = sg.to_dot(train, collapse_depth=0)
    nodes = _node_lines(dot)
    boxes = {_label(a): sid for sid, a in nodes.items() if sid.startswith("s")}
    drawn = _node_lines(sg.to_dot(train, collapse_depth=None))
    scoped = [n for n in g.nodes if n.name.startswith("layer/") and f"n{n.id}" in drawn]
    layer = boxes["layer\\n" + f"{len(scoped)} ops"]
    assert any(label.startswith("gradients\\n") for label in boxes)
    assert not any(f"n{n.id}" in nodes for n in scoped)
    edges = re.findall(r"^\s*(\S+) -> (\S+) ", dot, re.M)
    assert len(edges) == len(set(edges)), "edges between collapsed boxes are merged"
    grads = next(sid for label, sid in boxes.items() if label.startswith("gradients"))
    assert (layer, grads) in edges
    assert "subgraph" not in dot  # at depth 0 every scope is a box: no clusters left
    # auto: everything fits in max_nodes, so nothing collapses; a tiny budget collapses
    assert sg.to_dot(train) == sg.to_dot(train, collapse_depth=None)
    assert sg.to_dot(train, max_nodes=5) == dot


def test_kernel_hulls_from_a_compiled_plan():
    g, x, loss, _ = _mlp()
    with sg.Session(graph=g, device="cpu") as sess:
        plan = sess.plan_for(loss, {x: np.ones((2, 4), np.float32)})
    dot = sg.to_dot(plan=plan, collapse_depth=None)
    kernel = next(k for k in plan.kernels if "relu" in [m.opdef.name for m in k.members])
    hull = next(body for label, body in _clusters(dot).items() if label.startswith(kernel.name))
    assert 'color="#1f5fa8"' in hull
    # the matmul opens the kernel's epilogue (compiler/epilogue.py): it is inside the hull
    for name in ("layer/matmul", "layer/multiply", "layer/add", "layer/relu"):
        assert f"n{g.get_operation_by_name(name).id}" in _node_lines(hull)
    assert kernel.name.startswith("matmul+fused_")
    # compiled=True makes the same plan (placeholders counted as fed)
    assert sg.to_dot(loss, compiled=True, collapse_depth=None) == dot
    # the compiler removed the identity: it is drawn dotted
    assert "dotted" in _node_lines(dot)[f"n{g.get_operation_by_name('same').id}"]
    assert "dotted" not in _node_lines(dot)[f"n{g.get_operation_by_name('layer/relu').id}"]


def test_hostile_names_are_escaped():
    hostile = 'a"b{c}<d>\\e\nf;g]'
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [2], name="x")
        # a trailing "/" takes the name as written, unchecked: the scope is 'sc"ope{}<>\\'
        y = sg.identity(x * 2.0, name='sc"ope{}<>\\/' + hostile + "/")
    assert y.op.name == 'sc"ope{}<>\\/' + hostile
    dot = sg.to_dot(y, collapse_depth=None)
    rest = QUOTED.sub("", dot)
    assert '"' not in rest and "<" not in rest and "\\" not in rest and ";g" not in rest
    assert 'a\\"b{c}<d>\\\\e\\nf;g]' in dot
    assert 'label="sc\\"ope{}<>\\\\"' in dot
    if shutil.which("dot"):  # Graphviz reads it back and draws the names as written
        for depth, text in ((None, "a&quot;b{c}&lt;d&gt;\\e"), (0, "sc&quot;ope{}&lt;&gt;\\<")):
            svg = sgdot.render_dot(sg.to_dot(y, collapse_depth=depth), "svg").decode()
            ET.fromstring(svg)  # a valid document
            assert text in svg


@needs_dot
def test_png_svg_pdf_files(tmp_path):
    _, _, loss, train = _mlp()
    png = sg.visualize(train, tmp_path / "g.png")
    data = Path(png).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    width, height = struct.unpack(">II", data[16:24])
    assert 200 < width < 4000 and 200 < height < 4000
    svg = Path(sg.visualize(loss, str(tmp_path / "g.svg"))).read_text()
    assert ET.fromstring(svg).tag.endswith("svg") and "relu" in svg
    assert Path(sg.visualize(loss, tmp_path / "g.pdf")).read_bytes()[:5] == b"%PDF-"
    assert Path(sg.visualize(loss, tmp_path / "g.dot")).read_text() == sg.to_dot(loss)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.dot", "g.pdf", "g.png", "g.svg"]
    with pytest.raises(ValueError, match="format"):
        sg.visualize(loss, tmp_path / "g.jpeg2")


def test_a_missing_dot_says_how_to_install_it(monkeypatch, tmp_path):
    _, _, loss, _ = _mlp()
    monkeypatch.setattr(sgdot.shutil, "which", lambda name: None)
    with pytest.raises(sgdot.DotNotFoundError, match=r"apt-get install graphviz.*sg\.to_dot"):
        sg.visualize(loss, tmp_path / "g.png")
    assert not list(tmp_path.iterdir())
    assert "digraph" in sg.to_dot(loss)


@needs_dot
def test_profile_colors_nodes_by_time(tmp_path):
    g, x, loss, _ = _mlp()
    md = sg.RunMetadata()
    with sg.Session(graph=g, device="cpu") as sess:
        sess.run(sg.global_variables_initializer())
        sess.run(loss, {x: np.ones((2, 4), np.float32)},
                 options=sg.RunOptions(trace_level=sg.RunOptions.FULL_TRACE), run_metadata=md)
    dot = sg.to_dot(loss, profile=md, compiled=True, collapse_depth=None)
    slowest = max(md.node_times().items(), key=lambda kv: kv[1])[0]
    attrs = _node_lines(dot)[f"n{g.get_operation_by_name(slowest).id}"]
    assert 'fillcolor="#d7301f"' in attrs and " ms" in _label(attrs)
    assert "fill: time" in dot
    assert Path(sg.visualize(loss, tmp_path / "p.png", profile=md)).stat().st_size > 5000


@needs_dot
def test_mnist_cnn_training_graph_renders_readably_and_fast(tmp_path):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from mnist_cnn import build_model
    finally:
        sys.path.remove(str(ROOT / "examples"))
    g = sg.Graph()
    with g.as_default():
        model = build_model()
        step = sg.train.get_or_create_global_step()
        train = sg.train.AdamOptimizer(1e-3).minimize(model["loss"], global_step=step)
    start = time.perf_counter()
    path = sg.visualize(train, tmp_path / "cnn.png")
    seconds = time.perf_counter() - start
    data = Path(path).read_bytes()
    width, height = struct.unpack(">II", data[16:24])
    assert seconds < 10, seconds
    assert len(g.nodes) > 300
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 500 < width < 4000 and 500 < height < 4000
    dot = sg.to_dot(train)
    assert len(_node_lines(dot)) <= viz.MAX_NODES and "gradients\\n" in dot
