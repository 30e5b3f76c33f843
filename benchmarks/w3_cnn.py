"""W3: CNN conv3x3(32)-maxpool-conv3x3(64)-maxpool-dense128-dense10 (ReLU, SAME convolutions,
2x2 pools), softmax cross-entropy, momentum SGD, 28x28x1 input, batch 64, NHWC.

Convolution-bound (~1.1 GFLOP a training step, forward and both backward convolutions); it
measures conv2d/pooling forward and backward, and compile time of a deeper graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.harness import Skip

KEY = "w3"
TITLE = "W3 CNN training, batch 64"
LR, MOMENTUM = 0.01, 0.9
# the smoke test's size
TINY = {"batch": 2, "side": 8, "channels": (4, 8), "hidden": 16, "check_steps": 2}
TOLERANCES = {"loss at init": 1e-5, "dK1 at init": 1e-4, "losses": 1e-4}


@dataclass
class Problem:
    x: np.ndarray  # (batch, side, side, 1) float32, NHWC
    y: np.ndarray  # (batch,) int64
    params: list[np.ndarray]  # K1 (3,3,1,c1), b1, K2 (3,3,c1,c2), b2, W3, b3, W4, b4
    check_steps: int = 3


def problem(batch: int = 64, side: int = 28, channels: tuple[int, int] = (32, 64),
            hidden: int = 128, classes: int = 10, seed: int = 0,
            check_steps: int = 3) -> Problem:
    """Random images and labels; Glorot-uniform weights, small nonzero biases."""
    rng = np.random.default_rng(seed)
    c1, c2 = channels
    flat = (side // 4) ** 2 * c2
    shapes = [((3, 3, 1, c1), 9, 9 * c1), ((3, 3, c1, c2), 9 * c1, 9 * c2),
              ((flat, hidden), flat, hidden), ((hidden, classes), hidden, classes)]
    params = []
    for shape, fan_in, fan_out in shapes:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        params.append(rng.uniform(-limit, limit, shape).astype(np.float32))
        params.append(rng.uniform(-0.01, 0.01, shape[-1]).astype(np.float32))
    x = rng.random((batch, side, side, 1), dtype=np.float32)
    y = rng.integers(0, classes, batch).astype(np.int64)
    return Problem(x, y, params, check_steps)


# -- symgraph -------------------------------------------------------------------------------------
class SymgraphCNN:
    def __init__(self, p: Problem, device: str) -> None:
        import symgraph as sg

        graph = sg.Graph()
        with graph.as_default():
            x = sg.placeholder(sg.float32, [None, *p.x.shape[1:]], name="x")
            y = sg.placeholder(sg.int64, [None], name="y")
            k1, b1, k2, b2, w3, b3, w4, b4 = (sg.Variable(w, name=f"p{i}")
                                              for i, w in enumerate(p.params))
            h = sg.nn.relu(sg.nn.conv2d(x, k1, 1, "SAME") + b1)
            h = sg.nn.max_pool2d(h, 2, 2, "VALID")
            h = sg.nn.relu(sg.nn.conv2d(h, k2, 1, "SAME") + b2)
            h = sg.nn.max_pool2d(h, 2, 2, "VALID")
            h = sg.reshape(h, [-1, p.params[4].shape[0]])
            h = sg.nn.relu(h @ w3 + b3)
            logits = h @ w4 + b4
            self.loss = sg.reduce_mean(
                sg.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            self.dk1 = sg.gradients(self.loss, [k1])[0]
            self.train = sg.train.MomentumOptimizer(LR, MOMENTUM).minimize(self.loss)
            init = sg.global_variables_initializer()
        self.sess = sg.Session(graph=graph, device=device)
        self.sess.run(init)
        self.feed = {x: p.x, y: p.y}
        self.p = p

    def result(self) -> dict[str, np.ndarray]:
        loss0, dk1 = self.sess.run([self.loss, self.dk1], self.feed)
        losses = [self.sess.run([self.loss, self.train], self.feed)[0]
                  for _ in range(self.p.check_steps)]
        return {"loss at init": loss0, "dK1 at init": dk1, "losses": np.array(losses)}

    def step(self) -> None:
        self.sess.run(self.train, self.feed)


# -- NumPy by hand: im2col + GEMM, NHWC -----------------------------------------------------------
def im2col3x3(x: np.ndarray) -> np.ndarray:
    """(B, H, W, C) -> (B*H*W, 9*C) patches of a SAME 3x3 convolution, (dy, dx, c) order."""
    b, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = np.empty((b, h, w, 3, 3, c), x.dtype)
    for dy in range(3):
        for dx in range(3):
            cols[:, :, :, dy, dx, :] = xp[:, dy:dy + h, dx:dx + w, :]
    return cols.reshape(b * h * w, 9 * c)


def col2im3x3(dcols: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The adjoint of im2col3x3: sums each patch gradient back onto the input positions."""
    b, h, w, c = shape
    dcols = dcols.reshape(b, h, w, 3, 3, c)
    dxp = np.zeros((b, h + 2, w + 2, c), dcols.dtype)
    for dy in range(3):
        for dx in range(3):
            dxp[:, dy:dy + h, dx:dx + w, :] += dcols[:, :, :, dy, dx, :]
    return dxp[:, 1:-1, 1:-1, :]


def maxpool2(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 stride-2 max pool and the mask of the maxima (ties only where ReLU gave 0, whose
    gradient is 0 anyway)."""
    b, h, w, c = x.shape
    xr = x.reshape(b, h // 2, 2, w // 2, 2, c)
    out = xr.max(axis=(2, 4))
    return out, xr == out[:, :, None, :, None, :]


class NumpyCNN:
    def __init__(self, p: Problem) -> None:
        self.p = p
        self.params = [w.copy() for w in p.params]
        self.accum = [np.zeros_like(w) for w in p.params]

    def loss_and_grads(self) -> tuple[float, list[np.ndarray]]:
        x, y = self.p.x, self.p.y
        k1, b1, k2, b2, w3, b3, w4, b4 = self.params
        n = len(y)
        cols1 = im2col3x3(x)
        z1 = (cols1 @ k1.reshape(-1, k1.shape[3]) + b1).reshape(*x.shape[:3], -1)
        a1 = np.maximum(z1, 0)
        p1, m1 = maxpool2(a1)
        cols2 = im2col3x3(p1)
        z2 = (cols2 @ k2.reshape(-1, k2.shape[3]) + b2).reshape(*p1.shape[:3], -1)
        a2 = np.maximum(z2, 0)
        p2, m2 = maxpool2(a2)
        f = p2.reshape(n, -1)
        z3 = f @ w3 + b3
        a3 = np.maximum(z3, 0)
        logits = a3 @ w4 + b4
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) - logits[np.arange(n), y]))
        d = e / s
        d[np.arange(n), y] -= 1
        d *= np.float32(1 / n)
        gw4, gb4 = a3.T @ d, d.sum(axis=0)
        d = (d @ w4.T) * (z3 > 0)
        gw3, gb3 = f.T @ d, d.sum(axis=0)
        d = (d @ w3.T).reshape(p2.shape)
        d = (m2 * d[:, :, None, :, None, :]).reshape(a2.shape) * (z2 > 0)
        d2 = d.reshape(-1, d.shape[3])
        gk2, gb2 = (cols2.T @ d2).reshape(k2.shape), d2.sum(axis=0)
        d = col2im3x3(d2 @ k2.reshape(-1, k2.shape[3]).T, p1.shape)
        d = (m1 * d[:, :, None, :, None, :]).reshape(a1.shape) * (z1 > 0)
        d1 = d.reshape(-1, d.shape[3])
        gk1, gb1 = (cols1.T @ d1).reshape(k1.shape), d1.sum(axis=0)
        return loss, [gk1, gb1, gk2, gb2, gw3, gb3, gw4, gb4]

    def momentum(self, grads: list[np.ndarray]) -> None:
        for w, acc, g in zip(self.params, self.accum, grads):
            acc *= np.float32(MOMENTUM)
            acc += g
            w -= np.float32(LR) * acc

    def result(self) -> dict[str, np.ndarray]:
        loss0, grads = self.loss_and_grads()
        losses = []
        for _ in range(self.p.check_steps):
            loss, step_grads = self.loss_and_grads()
            losses.append(loss)
            self.momentum(step_grads)
        return {"loss at init": np.float32(loss0), "dK1 at init": grads[0],
                "losses": np.array(losses)}

    def step(self) -> None:
        self.momentum(self.loss_and_grads()[1])


# -- PyTorch (NCHW, its native layout; flattened in NHWC order to share the weights) --------------
class TorchCNN:
    """Eager, or the model and loss under torch.compile; the SGD step stays eager."""

    def __init__(self, p: Problem, compiled: bool) -> None:
        import torch

        nn, tf = torch.nn, torch.nn.functional
        self.torch, self.p = torch, p
        k1, b1, k2, b2, w3, b3, w4, b4 = p.params
        conv1 = nn.Conv2d(k1.shape[2], k1.shape[3], 3, padding=1)
        conv2 = nn.Conv2d(k2.shape[2], k2.shape[3], 3, padding=1)
        fc1, fc2 = nn.Linear(*w3.shape), nn.Linear(*w4.shape)
        with torch.no_grad():
            for mod, w, b, hwio in ((conv1, k1, b1, True), (conv2, k2, b2, True),
                                    (fc1, w3, b3, False), (fc2, w4, b4, False)):
                w = w.transpose(3, 2, 0, 1) if hwio else w.T
                mod.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
                mod.bias.copy_(torch.from_numpy(b))
        self.model = nn.ModuleList([conv1, conv2, fc1, fc2])

        def loss_fn(x, y):
            h = tf.max_pool2d(tf.relu(conv1(x)), 2)
            h = tf.max_pool2d(tf.relu(conv2(h)), 2)
            h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)
            return tf.cross_entropy(fc2(tf.relu(fc1(h))), y)

        self.loss_fn = torch.compile(loss_fn) if compiled else loss_fn
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM)
        self.x = torch.from_numpy(np.ascontiguousarray(p.x.transpose(0, 3, 1, 2)))
        self.y = torch.from_numpy(p.y)

    def result(self) -> dict[str, np.ndarray]:
        loss0 = self.loss_fn(self.x, self.y)
        loss0.backward()
        dk1 = self.model[0].weight.grad.numpy().transpose(2, 3, 1, 0).copy()
        self.opt.zero_grad(set_to_none=True)
        losses = [self._step() for _ in range(self.p.check_steps)]
        return {"loss at init": loss0.detach().numpy(), "dK1 at init": dk1,
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
class JaxCNN:
    def __init__(self, p: Problem) -> None:
        import jax
        import jax.numpy as jnp
        from jax import lax

        self.p = p
        dims = ("NHWC", "HWIO", "NHWC")

        def pool(h):
            return lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

        def loss_fn(params, x, y):
            k1, b1, k2, b2, w3, b3, w4, b4 = params
            h = pool(jax.nn.relu(lax.conv_general_dilated(x, k1, (1, 1), "SAME",
                                                          dimension_numbers=dims) + b1))
            h = pool(jax.nn.relu(lax.conv_general_dilated(h, k2, (1, 1), "SAME",
                                                          dimension_numbers=dims) + b2))
            h = jax.nn.relu(h.reshape(h.shape[0], -1) @ w3 + b3)
            logp = jax.nn.log_softmax(h @ w4 + b4)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        def train(params, accum, x, y):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            accum = [MOMENTUM * a + g for a, g in zip(accum, grads)]
            return [w - LR * a for w, a in zip(params, accum)], accum, loss

        self.grad = jax.jit(jax.value_and_grad(loss_fn))
        self.train = jax.jit(train)
        self.x, self.y = jnp.asarray(p.x), jnp.asarray(p.y.astype(np.int32))
        params = [jnp.asarray(w) for w in p.params]
        self.state = (params, [jnp.zeros_like(w) for w in params])

    def result(self) -> dict[str, np.ndarray]:
        loss0, grads = self.grad(self.state[0], self.x, self.y)
        losses = [float(self._step()) for _ in range(self.p.check_steps)]
        return {"loss at init": np.asarray(loss0), "dK1 at init": np.asarray(grads[0]),
                "losses": np.array(losses)}

    def _step(self):
        params, accum, loss = self.train(*self.state, self.x, self.y)
        self.state = (params, accum)
        return loss.block_until_ready()

    def step(self) -> None:
        self._step()


def make(impl: str, p: Problem):
    if impl in ("cpu", "reference"):
        return SymgraphCNN(p, impl)
    if impl == "numpy":
        return NumpyCNN(p)
    if impl in ("torch", "torch.compile"):
        return TorchCNN(p, compiled=impl == "torch.compile")
    if impl == "jax":
        return JaxCNN(p)
    raise Skip(f"no {impl} implementation")
