"""The order of a plan's steps (compiler.schedule): leaves first, scalars computed from leaves
alone next, then creation order."""

import numpy as np

import symgraph as sg
from compiler.program import extract
from compiler.schedule import schedule


def test_scalars_of_leaves_come_before_the_rest():
    with sg.Graph().as_default() as g:
        w = sg.Variable(np.ones((3, 2), np.float32), name="w")
        p = sg.Variable(np.float32(0.9), name="p")
        x = sg.placeholder(sg.float32, [3, 2], name="x")
        grad = w * x                       # created first, reads a feed
        rate = 0.1 * sg.sqrt(1.0 - p)      # created later, from leaves alone: hoisted
        fed = rate * sg.reduce_sum(x)      # reads a feed: stays
        with sg.control_dependencies([grad]):
            ordered = p * 2.0              # waits for its control input: stays
        update = grad * rate + fed + ordered
    program = extract(g, [update.node], [x.node])
    steps = schedule(program.outputs, {program.inputs[0].id})
    at = {n.name: i for i, n in enumerate(steps)}
    assert at["w"] < at["p"] < at[rate.node.name] < at[grad.node.name]
    assert at[fed.node.name] > at[grad.node.name]
    assert at[ordered.node.name] > at[grad.node.name]
