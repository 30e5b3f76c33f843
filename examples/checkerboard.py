"""The lectures' playground task: a small MLP learns a 2-D checkerboard.

    python examples/checkerboard.py               # 4x4 board, >= 90% test accuracy, ~20 s
    python examples/checkerboard.py --cells 2     # the XOR pattern
    python examples/checkerboard.py --hidden 8    # too few units: watch it fail

Points are uniform in the square [-1, 1]^2 and the label is the colour of their square on a
cells x cells board. No single line separates the colours; two ReLU layers carve the square into
the pieces they need. Outputs go to out/checkerboard/: boundary.png (the test points over the
predicted probability of class 1), curves.png, results.json.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from common import make_parser, output_dir, say, sg, write_results


def checkerboard(n: int, cells: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n points (n, 2) float32 uniform in [-1, 1]^2 and labels (n,) int64: the square's colour."""
    points = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    squares = np.floor((points + 1) / 2 * cells).clip(0, cells - 1).astype(np.int64)
    return points, (squares[:, 0] + squares[:, 1]) % 2


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__, epochs=60, batch_size=32)
    parser.add_argument("--cells", type=int, default=4, help="squares per side of the board")
    parser.add_argument("--hidden", type=int, default=32, help="units in each hidden layer")
    parser.add_argument("--examples", type=int, default=2000, help="training points")
    args = parser.parse_args(argv)
    out = output_dir(args, "checkerboard")
    rng = np.random.default_rng(args.seed)
    train_x, train_y = checkerboard(args.examples, args.cells, rng)
    valid_x, valid_y = checkerboard(500, args.cells, rng)
    test_x, test_y = checkerboard(1000, args.cells, rng)

    sg.reset_default_graph()
    sg.set_random_seed(args.seed)
    x = sg.placeholder(sg.float32, [None, 2], name="x")
    y = sg.placeholder(sg.int64, [None], name="y")
    h = sg.layers.dense(x, args.hidden, activation=sg.nn.relu)
    h = sg.layers.dense(h, args.hidden, activation=sg.nn.relu)
    logits = sg.layers.dense(h, 2)
    probability = sg.nn.softmax(logits)[:, 1]
    loss = sg.losses.sparse_softmax_cross_entropy(y, logits)
    accuracy = sg.reduce_mean(sg.cast(sg.equal(sg.argmax(logits, 1), y), sg.float32))
    train_op = sg.train.AdamOptimizer(0.01).minimize(loss)

    start = time.perf_counter()
    with sg.Session(device=args.device) as sess:
        sess.run(sg.global_variables_initializer())
        trainer = sg.train.Trainer(sess, train_op, loss, [x, y], accuracy=accuracy,
                                   quiet=args.quiet)
        history = trainer.fit((train_x, train_y), (valid_x, valid_y), epochs=args.epochs,
                              batch_size=args.batch_size, seed=args.seed, max_steps=args.steps)
        test_loss, test_accuracy = trainer.evaluate((test_x, test_y))
        grid = np.linspace(-1, 1, 201, dtype=np.float32)
        gx, gy = np.meshgrid(grid, grid)
        surface = sess.run(probability, {x: np.stack([gx.ravel(), gy.ravel()], 1)})
    seconds = time.perf_counter() - start
    say(args, sg.train.summary_line("test", history.epoch[-1], test_loss, test_accuracy))

    plt = sg.train.curves.pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    image = ax.contourf(gx, gy, surface.reshape(gx.shape), levels=20, cmap="RdBu_r",
                        vmin=0, vmax=1)
    ax.contour(gx, gy, surface.reshape(gx.shape), levels=[0.5], colors="k", linewidths=1)
    ax.scatter(test_x[:, 0], test_x[:, 1], c=test_y, cmap="RdBu_r", s=6, edgecolors="k",
               linewidths=0.2)
    ax.set_title(f"{args.cells}x{args.cells} checkerboard: test accuracy {test_accuracy:.1%}")
    fig.colorbar(image, ax=ax, label="P(class 1)")
    boundary = sg.train.save_figure(fig, out / "boundary.png")
    curves = sg.train.plot_history(history, out / "curves.png", title="checkerboard")
    results = write_results(out, {"test_accuracy": test_accuracy, "test_loss": test_loss,
                                  "epochs": history.epoch[-1], "steps": trainer.steps,
                                  "seconds": round(seconds, 1)})
    print(f"checkerboard: test accuracy {test_accuracy:.4f} on a {args.cells}x{args.cells} "
          f"board after {history.epoch[-1]} epochs ({seconds:.0f} s)")
    print(f"boundary: {boundary}\ncurves: {curves}\nresults: {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
