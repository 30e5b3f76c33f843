"""W2: f = sum(relu(x*a + b) * sigmoid(x) - 0.5*tanh(x)) over 4M float32 values, and df/dx.

Memory- and transcendental-bound: it measures elementwise fusion (one pass, no temporaries) and
whether exp/tanh vectorize. One evaluation is the value and the whole gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.harness import Skip

KEY = "w2"
TITLE = "W2 fused elementwise + gradient, 4M"
A, B = 1.5, -0.25
TINY = {"n": 1000}  # the smoke test's size
TOLERANCES = {"f": 1e-5, "df/dx": 1e-5}


@dataclass
class Problem:
    x: np.ndarray  # (n,) float32


def problem(n: int = 4_000_000, seed: int = 0) -> Problem:
    """Standard normal x, so every branch of relu and the curved parts of sigmoid/tanh count."""
    return Problem((np.random.default_rng(seed).standard_normal(n) * 2).astype(np.float32))


class SymgraphW2:
    def __init__(self, p: Problem, device: str) -> None:
        import symgraph as sg

        self.graph = sg.Graph()
        with self.graph.as_default():
            self.x = sg.placeholder(sg.float32, [None], name="x")
            a, b = sg.constant(np.float32(A)), sg.constant(np.float32(B))
            x = self.x
            self.f = sg.reduce_sum(sg.nn.relu(x * a + b) * sg.sigmoid(x) - 0.5 * sg.tanh(x))
            self.dfdx = sg.gradients(self.f, [x])[0]
        self.sess = sg.Session(graph=self.graph, device=device)
        self.feed = {self.x: p.x}

    def result(self) -> dict[str, np.ndarray]:
        f, dfdx = self.sess.run([self.f, self.dfdx], self.feed)
        return {"f": f, "df/dx": dfdx}

    def step(self) -> None:
        self.sess.run([self.f, self.dfdx], self.feed)


class NumpyW2:
    """By hand, in place where it can be: d/dx = a*[z>0]*s + relu(z)*s*(1-s) - 0.5*(1-t^2)."""

    def __init__(self, p: Problem) -> None:
        self.x = p.x

    def evaluate(self) -> tuple[np.float32, np.ndarray]:
        x = self.x
        z = x * np.float32(A)
        z += np.float32(B)
        r = np.maximum(z, 0, out=z)
        s = np.negative(x)
        np.exp(s, out=s)
        s += 1
        np.reciprocal(s, out=s)  # sigmoid(x)
        t = np.tanh(x)
        f = r * s
        f -= np.float32(0.5) * t
        value = f.sum(dtype=np.float64).astype(np.float32)
        grad = np.where(r > 0, np.float32(A), np.float32(0)).astype(np.float32)
        grad *= s  # a*[z>0]*s
        one_minus_s = np.subtract(1, s)
        one_minus_s *= s
        one_minus_s *= r
        grad += one_minus_s
        t *= t
        t -= 1
        t *= np.float32(0.5)
        grad += t  # - 0.5 (1 - t^2)
        return value, grad

    def result(self) -> dict[str, np.ndarray]:
        f, dfdx = self.evaluate()
        return {"f": f, "df/dx": dfdx}

    def step(self) -> None:
        self.evaluate()


def _torch_f(torch, x):
    return torch.sum(torch.relu(x * A + B) * torch.sigmoid(x) - 0.5 * torch.tanh(x))


class TorchW2:
    """Autograd for the gradient; compiled: the forward under torch.compile, whose backward
    AOTAutograd compiles too."""

    def __init__(self, p: Problem, compiled: bool) -> None:
        import torch

        self.torch = torch
        self.x = torch.from_numpy(p.x).requires_grad_(True)

        def f(x):
            return _torch_f(torch, x)

        self.f = torch.compile(f) if compiled else f

    def evaluate(self):
        y = self.f(self.x)
        (g,) = self.torch.autograd.grad(y, self.x)
        return y.detach(), g

    def result(self) -> dict[str, np.ndarray]:
        f, dfdx = self.evaluate()
        return {"f": f.numpy(), "df/dx": dfdx.numpy()}

    def step(self) -> None:
        self.evaluate()


class JaxW2:
    def __init__(self, p: Problem) -> None:
        import jax
        import jax.numpy as jnp

        def f(x):
            return jnp.sum(jax.nn.relu(x * A + B) * jax.nn.sigmoid(x) - 0.5 * jnp.tanh(x))

        self.fg = jax.jit(jax.value_and_grad(f))
        self.x = jnp.asarray(p.x)

    def result(self) -> dict[str, np.ndarray]:
        f, dfdx = self.fg(self.x)
        return {"f": np.asarray(f), "df/dx": np.asarray(dfdx)}

    def step(self) -> None:
        f, g = self.fg(self.x)
        g.block_until_ready()


def make(impl: str, p: Problem):
    if impl in ("cpu", "reference"):
        return SymgraphW2(p, impl)
    if impl == "numpy":
        return NumpyW2(p)
    if impl in ("torch", "torch.compile"):
        return TorchW2(p, compiled=impl == "torch.compile")
    if impl == "jax":
        return JaxW2(p)
    raise Skip(f"no {impl} implementation")
