"""symgraph basics: build graphs, differentiate them, run them, and check the answers.

    python examples/basics.py            # every example with its results
    python examples/basics.py --quiet    # only the final check line
    python examples/basics.py --seed 3   # other random inputs

Each example builds its own graph, asks `sg.gradients` for derivatives, runs them in a Session,
and compares with what calculus says. The exit status is non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import symgraph as sg
except ImportError:  # a plain checkout: use the package next to this folder
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import symgraph as sg

import numpy as np

GRADCHECK_TOLERANCE = 1e-6  # relative error between symbolic and central-difference gradients


class Report:
    """Collects named checks and prints results unless quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.checks: list[tuple[str, bool]] = []

    def say(self, text: str = "") -> None:
        if not self.quiet:
            print(text)

    def check(self, name: str, ok: bool) -> None:
        self.checks.append((name, bool(ok)))
        self.say(f"  [{'ok' if ok else 'FAILED'}] {name}")


def example_f(report: Report) -> None:
    """f = (x + y) z at x=-2, y=5, z=-4: f = -12, df/dx = df/dy = z, df/dz = x + y."""
    report.say("1. f = (x + y) * z at x = -2, y = 5, z = -4")
    with sg.Graph().as_default():
        x = sg.constant(-2.0, name="x")
        y = sg.constant(5.0, name="y")
        z = sg.constant(-4.0, name="z")
        f = (x + y) * z
        grads = sg.gradients(f, [x, y, z])
        with sg.Session() as sess:
            value, (dx, dy, dz) = sess.run([f, grads])
        report.say(f"   f = {value:g}   df/dx = {dx:g}   df/dy = {dy:g}   df/dz = {dz:g}")
        report.check("f = -12 and gradients (-4, -4, 3)",
                     value == -12 and (dx, dy, dz) == (-4, -4, 3))
        report.say("   the graph of f:")
        report.say("\n".join("   " + line for line in sg.summary(f, print_fn=None).splitlines()))


def example_reduce_sum(report: Report, rng: np.random.Generator) -> None:
    """The TF1 tutorial snippet: c = sum(x*y + z), so dc/dx = y, dc/dy = x, dc/dz = 1."""
    report.say("\n2. c = reduce_sum(x * y + z) on (3, 4) arrays")
    xv, yv, zv = (rng.standard_normal((3, 4)) for _ in range(3))
    with sg.Graph().as_default():
        x = sg.placeholder(sg.float64, [3, 4], name="x")
        y = sg.placeholder(sg.float64, [3, 4], name="y")
        z = sg.placeholder(sg.float64, [3, 4], name="z")
        c = sg.reduce_sum(x * y + z)
        grad_x, grad_y, grad_z = sg.gradients(c, [x, y, z])
        with sg.Session() as sess:
            cv, gx, gy, gz = sess.run([c, grad_x, grad_y, grad_z], {x: xv, y: yv, z: zv})
    report.say(f"   c = {cv:.6f}")
    report.say("   dc/dx (should be y):\n   " + np.array2string(gx, precision=4, prefix="   "))
    report.check("dc/dx = y, dc/dy = x, dc/dz = ones",
                 np.allclose(gx, yv) and np.allclose(gy, xv) and np.array_equal(gz, np.ones((3, 4)))
                 and np.isclose(cv, np.sum(xv * yv + zv)))


def example_fan_out(report: Report) -> None:
    """y = x*x + x uses x three times; the gradient sums them: dy/dx = 2x + 1."""
    report.say("\n3. y = x * x + x")
    xv = np.array([-2.0, -0.5, 0.0, 1.0, 3.0], np.float32)
    with sg.Graph().as_default():
        x = sg.placeholder(sg.float32, [None], name="x")
        y = x * x + x
        dx, = sg.gradients(y, x)
        with sg.Session() as sess:
            got = sess.run(dx, {x: xv})
    report.say(f"   x      = {xv}\n   dy/dx  = {got}   (2x + 1 = {2 * xv + 1})")
    report.check("dy/dx = 2x + 1", np.allclose(got, 2 * xv + 1))


def example_third_derivative(report: Report) -> None:
    """Gradients are graphs too, so they differentiate again: x^3 -> 3x^2 -> 6x -> 6."""
    report.say("\n4. derivatives of x ** 3")
    with sg.Graph().as_default():
        x = sg.placeholder(sg.float64, [], name="x")
        d1, = sg.gradients(x ** 3, x)
        d2, = sg.gradients(d1, x)
        d3, = sg.gradients(d2, x)
        with sg.Session() as sess:
            v1, v2, v3 = sess.run([d1, d2, d3], {x: 1.5})
    report.say(f"   at x = 1.5: 3x^2 = {v1:g}, 6x = {v2:g}, d^3/dx^3 = {v3:g}")
    report.check("d^3/dx^3 of x^3 = 6", np.isclose(v1, 6.75) and np.isclose(v2, 9.0) and v3 == 6)


def example_gradient_check(report: Report, rng: np.random.Generator) -> None:
    """A 2-layer tanh net: symbolic gradients against central differences, per parameter."""
    report.say("\n5. gradient check of a 2-layer tanh net (float64, central differences)")
    inputs = rng.standard_normal((6, 3))
    targets = rng.standard_normal((6, 2))
    with sg.Graph().as_default():
        w1 = sg.Variable(rng.standard_normal((3, 4)) * 0.5, name="w1")
        b1 = sg.Variable(rng.standard_normal(4) * 0.1, name="b1")
        w2 = sg.Variable(rng.standard_normal((4, 2)) * 0.5, name="w2")
        b2 = sg.Variable(rng.standard_normal(2) * 0.1, name="b2")
        hidden = sg.tanh(sg.constant(inputs) @ w1 + b1)
        loss = sg.reduce_mean(sg.square(hidden @ w2 + b2 - targets))
        params = [w1, b1, w2, b2]
        grads = sg.gradients(loss, params)
        with sg.Session() as sess:
            sess.run(sg.global_variables_initializer())
            values = sess.run(params)
            symbolic = sess.run(grads)
            worst = 0.0
            for var, value, sym in zip(params, values, symbolic):
                numeric = _central_differences(sess, loss, var, value)
                err = np.linalg.norm(numeric - sym) / max(
                    np.linalg.norm(numeric) + np.linalg.norm(sym), 1e-300)
                worst = max(worst, err)
                report.say(f"   {var.var_name:3s} {str(var.shape):7s} relative error {err:.2e}")
    report.check(f"2-layer tanh net gradients within {GRADCHECK_TOLERANCE:g} relative error",
                 worst < GRADCHECK_TOLERANCE)


def _central_differences(sess, loss, var, value: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """d loss / d var by (f(v + eps) - f(v - eps)) / 2 eps, one element at a time.

    Feeding a variable overrides its value for that run only, so the session's state is untouched.
    """
    grad = np.zeros_like(value)
    for i in np.ndindex(value.shape):
        plus, minus = value.copy(), value.copy()
        plus[i] += eps
        minus[i] -= eps
        grad[i] = (sess.run(loss, {var: plus}) - sess.run(loss, {var: minus})) / (2 * eps)
    return grad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="print only the final check line")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random inputs")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    report = Report(args.quiet)

    example_f(report)
    example_reduce_sum(report, rng)
    example_fan_out(report)
    example_third_derivative(report)
    example_gradient_check(report, rng)

    failed = [name for name, ok in report.checks if not ok]
    report.say()
    if failed:
        print(f"basics: {len(failed)} of {len(report.checks)} checks FAILED: " + "; ".join(failed))
        return 1
    print(f"basics: all {len(report.checks)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
