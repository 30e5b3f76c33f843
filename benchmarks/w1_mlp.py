"""W1: MLP 784-512-512-10, ReLU, softmax cross-entropy, Adam (TF1's form), batch 128.

GEMM-bound (~0.5 GFLOP a step): it measures what the compiler adds around BLAS (fusion of the
bias/ReLU/softmax/Adam elementwise work, per-step Python overhead) and how fast it compiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.harness import Skip

KEY = "w1"
TITLE = "W1 MLP training, batch 128"
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8
TINY = {"batch": 8, "sizes": (12, 16, 16, 10), "check_steps": 2}  # the smoke test's size
TOLERANCES = {"loss at init": 1e-5, "dW1 at init": 1e-4, "losses": 1e-4}
# torch's Adam adds epsilon to sqrt(v_hat), TF1's to sqrt(v): weights with tiny gradients move
# differently, so the peers' loss after 5 steps differs by a few 1e-4.
PEER_TOLERANCES = {"losses": 2e-3}


@dataclass
class Problem:
    x: np.ndarray  # (batch, 784) float32
    y: np.ndarray  # (batch,) int64 class labels
    params: list[np.ndarray]  # W1, b1, W2, b2, W3, b3; W is (in, out)
    check_steps: int = 5


def mlp_params(sizes: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """Glorot-uniform weights, small nonzero biases (zeros would hide bias-gradient bugs)."""
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        params.append(rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32))
        params.append(rng.uniform(-0.01, 0.01, fan_out).astype(np.float32))
    return params


def problem(batch: int = 128, sizes: tuple[int, ...] = (784, 512, 512, 10),
            seed: int = 0, check_steps: int = 5) -> Problem:
    """Synthetic MNIST-shaped data: uniform pixels, random labels (fine for timing)."""
    rng = np.random.default_rng(seed)
    x = rng.random((batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], batch).astype(np.int64)
    return Problem(x, y, mlp_params(sizes, seed + 1), check_steps)


# -- symgraph -------------------------------------------------------------------------------------
def sg_logits(sg, x, v):
    """The forward pass in symgraph: relu(relu(x W1 + b1) W2 + b2) W3 + b3."""
    h = x
    for i in range(0, len(v) - 2, 2):
        h = sg.nn.relu(h @ v[i] + v[i + 1])
    return h @ v[-2] + v[-1]


class SymgraphMLP:
    def __init__(self, p: Problem, device: str) -> None:
        import symgraph as sg

        self.graph = sg.Graph()
        with self.graph.as_default():
            x = sg.placeholder(sg.float32, [None, p.x.shape[1]], name="x")
            y = sg.placeholder(sg.int64, [None], name="y")
            v = [sg.Variable(w, name=f"p{i}") for i, w in enumerate(p.params)]
            logits = sg_logits(sg, x, v)
            self.loss = sg.reduce_mean(
                sg.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            self.dw1 = sg.gradients(self.loss, [v[0]])[0]
            self.train = sg.train.AdamOptimizer(LR, BETA1, BETA2, EPS).minimize(self.loss)
            init = sg.global_variables_initializer()
        self.sess = sg.Session(graph=self.graph, device=device)
        self.sess.run(init)
        self.feed = {x: p.x, y: p.y}
        self.p = p

    def result(self) -> dict[str, np.ndarray]:
        loss0, dw1 = self.sess.run([self.loss, self.dw1], self.feed)
        losses = [self.sess.run([self.loss, self.train], self.feed)[0]
                  for _ in range(self.p.check_steps)]
        return {"loss at init": loss0, "dW1 at init": dw1, "losses": np.array(losses)}

    def step(self) -> None:
        self.sess.run(self.train, self.feed)


# -- NumPy by hand --------------------------------------------------------------------------------
def np_forward(params: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits and the hidden pre-activations the backward pass needs."""
    acts, pre = [x], []
    h = x
    for i in range(0, len(params) - 2, 2):
        z = h @ params[i]
        z += params[i + 1]
        pre.append(z)
        h = np.maximum(z, 0)
        acts.append(h)
    logits = h @ params[-2]
    logits += params[-1]
    return logits, acts


class NumpyMLP:
    def __init__(self, p: Problem) -> None:
        self.p = p
        self.params = [w.copy() for w in p.params]
        self.m = [np.zeros_like(w) for w in p.params]
        self.v = [np.zeros_like(w) for w in p.params]
        self.b1p, self.b2p = BETA1, BETA2  # beta^t of the step being taken (TF1)

    def loss_and_grads(self) -> tuple[float, list[np.ndarray]]:
        x, y, params = self.p.x, self.p.y, self.params
        n = len(y)
        logits, acts = np_forward(params, x)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) - logits[np.arange(n), y]))
        d = e / s  # d loss / d logits = (softmax - onehot) / n
        d[np.arange(n), y] -= 1
        d *= np.float32(1 / n)
        grads = [None] * len(params)
        for i in range(len(params) - 2, -1, -2):
            grads[i] = acts[i // 2].T @ d
            grads[i + 1] = d.sum(axis=0)
            if i:
                d = d @ params[i].T
                d *= acts[i // 2] > 0  # ReLU: h > 0 exactly where z > 0
        return loss, grads

    def adam(self, grads: list[np.ndarray]) -> None:
        lr_t = np.float32(LR * np.sqrt(1 - self.b2p) / (1 - self.b1p))
        for w, m, v, g in zip(self.params, self.m, self.v, grads):
            m += (g - m) * np.float32(1 - BETA1)
            v += (g * g - v) * np.float32(1 - BETA2)
            w -= lr_t * m / (np.sqrt(v) + np.float32(EPS))
        self.b1p *= BETA1
        self.b2p *= BETA2

    def result(self) -> dict[str, np.ndarray]:
        loss0, grads = self.loss_and_grads()
        losses = []
        for _ in range(self.p.check_steps):
            loss, step_grads = self.loss_and_grads()
            losses.append(loss)
            self.adam(step_grads)
        return {"loss at init": np.float32(loss0), "dW1 at init": grads[0],
                "losses": np.array(losses)}

    def step(self) -> None:
        self.adam(self.loss_and_grads()[1])


# -- PyTorch --------------------------------------------------------------------------------------
def torch_mlp(torch, params: list[np.ndarray]):
    """nn.Sequential with the same weights (torch stores Linear weights as (out, in))."""
    layers = []
    for i in range(0, len(params), 2):
        lin = torch.nn.Linear(*params[i].shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(params[i].T.copy()))
            lin.bias.copy_(torch.from_numpy(params[i + 1]))
        layers += [lin, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


class TorchMLP:
    """Eager, or with the model and loss under torch.compile (forward and backward compiled by
    AOTAutograd); the Adam step stays eager (torch's default foreach implementation)."""

    def __init__(self, p: Problem, compiled: bool) -> None:
        import torch

        self.torch, self.p = torch, p
        self.model = torch_mlp(torch, p.params)
        self.x, self.y = torch.from_numpy(p.x), torch.from_numpy(p.y)

        def loss_fn(x, y):
            return torch.nn.functional.cross_entropy(self.model(x), y)

        self.loss_fn = torch.compile(loss_fn) if compiled else loss_fn
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR, betas=(BETA1, BETA2),
                                    eps=EPS)

    def result(self) -> dict[str, np.ndarray]:
        loss0 = self.loss_fn(self.x, self.y)
        loss0.backward()
        dw1 = self.model[0].weight.grad.T.numpy().copy()
        self.opt.zero_grad(set_to_none=True)
        losses = [self._step() for _ in range(self.p.check_steps)]
        return {"loss at init": loss0.detach().numpy(), "dW1 at init": dw1,
                "losses": np.array(losses)}

    def _step(self) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.x, self.y)
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def step(self) -> None:
        self._step()


# -- JAX ------------------------------------------------------------------------------------------
def jax_logits(jnp, params, x):
    h = x
    for i in range(0, len(params) - 2, 2):
        h = jnp.maximum(h @ params[i] + params[i + 1], 0)
    return h @ params[-2] + params[-1]


class JaxMLP:
    """One jitted function: loss, gradients and the Adam update (TF1's form), written by hand."""

    def __init__(self, p: Problem) -> None:
        import jax
        import jax.numpy as jnp

        self.p = p

        def loss_fn(params, x, y):
            logp = jax.nn.log_softmax(jax_logits(jnp, params, x))
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        def train(params, m, v, b1p, b2p, x, y):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            lr_t = LR * jnp.sqrt(1 - b2p) / (1 - b1p)
            m = [mi + (g - mi) * (1 - BETA1) for mi, g in zip(m, grads)]
            v = [vi + (g * g - vi) * (1 - BETA2) for vi, g in zip(v, grads)]
            params = [w - lr_t * mi / (jnp.sqrt(vi) + EPS) for w, mi, vi in zip(params, m, v)]
            return params, m, v, b1p * BETA1, b2p * BETA2, loss

        self.grad = jax.jit(jax.value_and_grad(loss_fn))
        self.train = jax.jit(train)
        self.x, self.y = jnp.asarray(p.x), jnp.asarray(p.y.astype(np.int32))
        params = [jnp.asarray(w) for w in p.params]
        zeros = [jnp.zeros_like(w) for w in params]
        self.state = (params, zeros, list(zeros), jnp.float32(BETA1), jnp.float32(BETA2))

    def result(self) -> dict[str, np.ndarray]:
        loss0, grads = self.grad(self.state[0], self.x, self.y)
        losses = [float(self._step()) for _ in range(self.p.check_steps)]
        return {"loss at init": np.asarray(loss0), "dW1 at init": np.asarray(grads[0]),
                "losses": np.array(losses)}

    def _step(self):
        *state, loss = self.train(*self.state, self.x, self.y)
        self.state = tuple(state)
        return loss.block_until_ready()

    def step(self) -> None:
        self._step()


def make(impl: str, p: Problem):
    """The runner for one implementation (raises Skip when it has none)."""
    if impl in ("cpu", "reference"):
        return SymgraphMLP(p, impl)
    if impl == "numpy":
        return NumpyMLP(p)
    if impl in ("torch", "torch.compile"):
        return TorchMLP(p, compiled=impl == "torch.compile")
    if impl == "jax":
        return JaxMLP(p)
    raise Skip(f"no {impl} implementation")
