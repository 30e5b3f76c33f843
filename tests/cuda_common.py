"""What the cuda device's checks (tests/cuda_checks_*.py) share: the gate, the simulator's
set-up, tolerances, input values and the MLP.

The checks are not collected by a plain `pytest` (their names do not match test_*.py):
tests/test_cuda.py runs them in a subprocess with NUMBA_ENABLE_CUDASIM=1 (which must be set
before numba is first imported, and the rest of the suite imports numba normally), and `make
test-gpu` runs them on a real GPU; both set SYMGRAPH_CUDA_TESTS. Every check file imports this
module, so without SYMGRAPH_CUDA_TESTS the file is skipped, and with it but no usable device it
fails. Shapes are tiny: the simulator costs ~0.1 ms per simulated thread.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback

import numpy as np
import pytest

import symgraph as sg
from compiler.codegen_cuda_nn import BUILDERS

if not os.environ.get("SYMGRAPH_CUDA_TESTS"):
    pytest.skip("run by tests/test_cuda.py (simulator) or `make test-gpu`, which set "
                "SYMGRAPH_CUDA_TESTS", allow_module_level=True)
if not sg.cuda.is_available():
    pytest.fail(f"SYMGRAPH_CUDA_TESTS is set, but {sg.cuda.unavailable_reason()}", pytrace=False)


def _simulator_shared_arrays_made_atomic() -> None:
    """The simulator runs a block's threads as Python threads, and its cuda.shared.array looks
    the array up by call site and creates it if missing: two threads that interleave there get
    two arrays, and one reads the other's unwritten garbage (NaN results now and then, more
    often the shorter the GIL switch interval). The same lookup, under a lock."""
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    lock = threading.Lock()
    unlocked = kernelapi.FakeCUDAShared.array

    def array(self, shape, dtype, alignment=None):  # noqa: ANN001 - the simulator's signature
        if shape == 0 or alignment is not None:  # dynamic shared memory: no lookup to race
            return unlocked(self, shape, dtype, alignment)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        caller = traceback.extract_stack(sys._getframe())[-2][0:2]  # the kernel's line
        with lock:
            found = self._allocations.get(caller)
            if found is None:
                found = self._allocations[caller] = np.empty(shape, dtype)
        return found

    kernelapi.FakeCUDAShared.array = array


if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    _simulator_shared_arrays_made_atomic()
    # the simulator's block manager busy-waits on the threads at syncthreads: a short GIL
    # switch interval hands them the GIL sooner (~5x faster here)
    sys.setswitchinterval(2e-5)


# float32 on the device: math.exp etc. are libdevice (GPU) or NumPy (simulator), and reductions
# combine in a tree rather than in order: a few ulp from the reference
TOLERANCE = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-11, atol=1e-12)}
# kernels the cuda plan must hold for these ops (the rest may run on the host, counted)
NN_OPS = set(BUILDERS)  # convolution and pooling, forward and backward


def _ints(shape: tuple, dtype: type, lo: int, hi: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi, shape, endpoint=True).astype(dtype)


def _vals(shape: tuple, dtype: type = np.float32, seed: int = 0) -> np.ndarray:
    """Distinct values of `shape`: a copy that lands anywhere else shows."""
    x = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    if np.dtype(dtype) == np.bool_:
        return np.random.default_rng(seed).integers(0, 2, shape).astype(bool)
    return (x - x.size // 2).astype(dtype)


def _mlp(dropout: float) -> dict:
    """examples/mnist_mlp.py's graph, tiny: dense-relu-dropout (a bool `training` switch),
    sparse cross-entropy, accuracy by argmax/equal/cast, Adam on a cosine-decayed rate."""
    sg.set_random_seed(7)
    x = sg.placeholder(sg.float32, [None, 6], name="x")
    y = sg.placeholder(sg.int64, [None], name="y")
    training = sg.placeholder_with_default(False, [], name="training")
    h = sg.layers.dense(x, 5, activation=sg.nn.relu)
    h = sg.layers.dropout(h, dropout, training=training) if dropout else h
    logits = sg.layers.dense(h, 3)
    loss = sg.losses.sparse_softmax_cross_entropy(y, logits)
    accuracy = sg.reduce_mean(sg.cast(sg.equal(sg.argmax(logits, 1), y), sg.float32))
    step = sg.train.get_or_create_global_step()
    rate = sg.train.cosine_decay(0.05, step, 10)
    train = sg.train.AdamOptimizer(rate).minimize(loss, global_step=step)
    masks = [n.output for n in sg.get_default_graph().nodes if n.opdef.name == "dropout_mask"]
    return {"x": x, "y": y, "training": training, "loss": loss, "accuracy": accuracy,
            "train": train, "masks": masks, "step": step}
