"""Draws the pictures the README shows: python docs/make_pictures.py (needs Graphviz's dot).

docs/mlp_graph.png: the MNIST MLP of examples/mnist_mlp.py (784-512-512-10, dropout, Adam) as
sg.visualize draws its training step: forward, gradients and Adam updates, with every
top-level name scope collapsed to one box. docs/mlp_fused.png: its forward pass and loss as
the cpu device compiles them, fused kernels drawn as hulls.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]



def main() -> int:
    from mnist_mlp import build_model  # the example's own model, so the picture stays true

    import symgraph as sg

    sg.reset_default_graph()
    model = build_model([512, 512], dropout=0.2, batch_norm=False, l2=0.0)
    train_op = sg.train.AdamOptimizer(1e-3).minimize(model["loss"])
    out = Path(__file__).resolve().parent
    print(sg.visualize(train_op, out / "mlp_graph.png", collapse_depth=0, dpi=72,
                       title="examples/mnist_mlp.py: one training step"))
    print(sg.visualize(model["loss"], out / "mlp_fused.png", compiled=True,
                       show_gradients=False, dpi=72,
                       title="examples/mnist_mlp.py: the loss, compiled for the cpu device"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
