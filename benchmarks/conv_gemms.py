"""W3's second convolution as symgraph computes it (three OpenBLAS GEMMs around im2col) beside
PyTorch's oneDNN convolution of the same shape: how far the GEMMs are from what a direct
convolution reaches on this machine (README, Benchmarks: where W3's time goes).

    python benchmarks/conv_gemms.py        # PyTorch's row only where torch is installed
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

# conv2 of W3: batch 64, 14x14 inputs of 32 channels, 3x3 filters, 64 outputs, SAME
ROWS, TAPS, OUT = 64 * 14 * 14, 3 * 3 * 32, 64
FLOP = 2 * ROWS * TAPS * OUT  # one GEMM: the forward, or either gradient


def median_ms(fn: Callable[[], object], reps: int = 100) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def main() -> None:
    rng = np.random.default_rng(0)
    cols = rng.random((ROWS, TAPS), np.float32)  # im2col's patches
    filters = rng.random((TAPS, OUT), np.float32)
    grads = rng.random((ROWS, OUT), np.float32)
    product = np.empty((ROWS, OUT), np.float32)
    patch_grads = np.empty((ROWS, TAPS), np.float32)
    cases = {
        "forward: cols @ w": lambda: np.matmul(cols, filters, out=product),
        "input gradient: g @ w^T": lambda: np.matmul(grads, filters.T, out=patch_grads),
        "filter gradient: cols^T @ g": lambda: np.matmul(cols.T, grads),
    }
    for name, fn in cases.items():  # before PyTorch is loaded: its OpenMP runtime stays out
        report(name, median_ms(fn))
    try:
        import torch
    except ImportError:
        print("(no torch: PyTorch's convolution not timed)")
        return
    x = torch.randn(64, 32, 14, 14).contiguous(memory_format=torch.channels_last)
    w = torch.randn(OUT, 32, 3, 3)
    report("PyTorch conv2d forward, NHWC",
           median_ms(lambda: torch.nn.functional.conv2d(x, w, padding=1)))


def report(name: str, ms: float) -> None:
    print(f"{name:32s} {ms:6.3f} ms  {FLOP / ms / 1e6:5.0f} GFLOP/s")

if __name__ == "__main__":
    main()
