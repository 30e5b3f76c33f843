"""W4: W1's MLP forward (logits) on a batch of 10000: inference, large GEMMs plus bias+ReLU.

It shows whether the bias-add and ReLU epilogues cost a pass over memory each, at a size where
the GEMMs take tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.harness import Skip
from benchmarks.w1_mlp import jax_logits, mlp_params, np_forward, sg_logits, torch_mlp

KEY = "w4"
TITLE = "W4 MLP forward, batch 10000"
TINY = {"batch": 16, "sizes": (12, 16, 16, 10)}  # the smoke test's size
TOLERANCES = {"logits": 1e-5}


@dataclass
class Problem:
    x: np.ndarray  # (batch, 784) float32
    params: list[np.ndarray]


def problem(batch: int = 10_000, sizes: tuple[int, ...] = (784, 512, 512, 10),
            seed: int = 0) -> Problem:
    rng = np.random.default_rng(seed)
    return Problem(rng.random((batch, sizes[0]), dtype=np.float32), mlp_params(sizes, seed + 1))


class SymgraphW4:
    def __init__(self, p: Problem, device: str) -> None:
        import symgraph as sg

        graph = sg.Graph()
        with graph.as_default():
            x = sg.placeholder(sg.float32, [None, p.x.shape[1]], name="x")
            v = [sg.Variable(w, name=f"p{i}") for i, w in enumerate(p.params)]
            self.logits = sg_logits(sg, x, v)
            init = sg.global_variables_initializer()
        self.sess = sg.Session(graph=graph, device=device)
        self.sess.run(init)
        self.feed = {x: p.x}

    def result(self) -> dict[str, np.ndarray]:
        return {"logits": self.sess.run(self.logits, self.feed)}

    def step(self) -> None:
        self.sess.run(self.logits, self.feed)


class NumpyW4:
    def __init__(self, p: Problem) -> None:
        self.p = p

    def result(self) -> dict[str, np.ndarray]:
        return {"logits": np_forward(self.p.params, self.p.x)[0]}

    def step(self) -> None:
        np_forward(self.p.params, self.p.x)


class TorchW4:
    def __init__(self, p: Problem, compiled: bool) -> None:
        import torch

        self.torch = torch
        model = torch_mlp(torch, p.params).eval()
        self.model = torch.compile(model) if compiled else model
        self.x = torch.from_numpy(p.x)

    def result(self) -> dict[str, np.ndarray]:
        with self.torch.inference_mode():
            return {"logits": self.model(self.x).numpy().copy()}

    def step(self) -> None:
        with self.torch.inference_mode():
            self.model(self.x)


class JaxW4:
    def __init__(self, p: Problem) -> None:
        import jax
        import jax.numpy as jnp

        self.forward = jax.jit(lambda params, x: jax_logits(jnp, params, x))
        self.params = [jnp.asarray(w) for w in p.params]
        self.x = jnp.asarray(p.x)

    def result(self) -> dict[str, np.ndarray]:
        return {"logits": np.asarray(self.forward(self.params, self.x))}

    def step(self) -> None:
        self.forward(self.params, self.x).block_until_ready()


def make(impl: str, p: Problem):
    if impl in ("cpu", "reference"):
        return SymgraphW4(p, impl)
    if impl == "numpy":
        return NumpyW4(p)
    if impl in ("torch", "torch.compile"):
        return TorchW4(p, compiled=impl == "torch.compile")
    if impl == "jax":
        return JaxW4(p)
    raise Skip(f"no {impl} implementation")
