"""The lectures' numerical gradient check: a 2-hidden-layer net, one relative error per parameter.

    python examples/gradient_check.py             # a table, then "all N parameters pass"
    python examples/gradient_check.py --epochs 20 # check after 20 gradient steps, not at init

For every parameter tensor, sg.gradients' symbolic gradient g is compared with central
differences n_i = (L(w + eps e_i) - L(w - eps e_i)) / 2 eps, element by element, in float64:

    relative error = |n - g| / (|n| + |g|)      (vector norms; < 1e-6 passes, ~1e-10 is typical)
    worst element  = max_i |n_i - g_i| / max(|n_i|, |g_i|, 1e-8)

The net is x (batch, 4) -> tanh(5) -> tanh(5) -> 3 logits, softmax cross entropy plus an L2
penalty, so the check covers matmul, bias add, tanh, softmax, the mean and the regularizer.
Outputs go to out/gradient_check/results.json. The exit status is 1 if a parameter fails.
"""

from __future__ import annotations

import sys

import numpy as np
from common import make_parser, output_dir, say, sg, write_results

TOLERANCE = 1e-6
EPS = 1e-5


def central_differences(sess: sg.Session, loss: sg.Tensor, var: sg.Variable, value: np.ndarray,
                        feed: dict) -> np.ndarray:
    """d loss / d var, one element at a time; feeding a variable overrides it for one run."""
    grad = np.zeros_like(value)
    for i in np.ndindex(value.shape):
        plus, minus = value.copy(), value.copy()
        plus[i] += EPS
        minus[i] -= EPS
        grad[i] = (sess.run(loss, {**feed, var: plus}) - sess.run(loss, {**feed, var: minus})
                   ) / (2 * EPS)
    return grad


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__, epochs=0, batch_size=8,
                         epochs_help="full-batch gradient steps before the check (default 0)")
    args = parser.parse_args(argv)
    out = output_dir(args, "gradient_check")
    rng = np.random.default_rng(args.seed)
    inputs = rng.standard_normal((args.batch_size, 4))
    labels = rng.integers(0, 3, args.batch_size)

    sg.reset_default_graph()
    sg.set_random_seed(args.seed)
    x = sg.placeholder(sg.float64, [None, 4], name="x")
    y = sg.placeholder(sg.int64, [None], name="y")
    l2 = sg.regularizers.l2_regularizer(1e-2)
    h = sg.layers.dense(x, 5, activation=sg.tanh, kernel_regularizer=l2,
                        bias_initializer=sg.random_normal_initializer(stddev=0.1))
    h = sg.layers.dense(h, 5, activation=sg.tanh, kernel_regularizer=l2,
                        bias_initializer=sg.random_normal_initializer(stddev=0.1))
    logits = sg.layers.dense(h, 3, kernel_regularizer=l2)
    loss = (sg.losses.sparse_softmax_cross_entropy(y, logits)
            + sg.losses.get_regularization_loss())
    params = sg.trainable_variables()
    grads = sg.gradients(loss, params)
    train_op = sg.train.GradientDescentOptimizer(0.5).minimize(loss)
    feed = {x: inputs, y: labels}

    rows = []
    with sg.Session(device=args.device) as sess:
        sess.run(sg.global_variables_initializer())
        for _ in range(args.epochs if args.steps is None else min(args.epochs, args.steps)):
            sess.run(train_op, feed)
        values, symbolic = sess.run([params, grads], feed)
        loss_value = float(sess.run(loss, feed))
        for var, value, sym in zip(params, values, symbolic):
            numeric = central_differences(sess, loss, var, value, feed)
            error = np.linalg.norm(numeric - sym) / max(
                np.linalg.norm(numeric) + np.linalg.norm(sym), 1e-300)
            worst = np.max(np.abs(numeric - sym) / np.maximum(
                np.maximum(np.abs(numeric), np.abs(sym)), 1e-8))
            rows.append({"parameter": var.var_name, "shape": list(value.shape),
                         "relative_error": float(error), "worst_element": float(worst),
                         "ok": bool(error < TOLERANCE)})

    say(args, f"loss {loss_value:.6f} after {args.epochs} gradient steps; eps {EPS:g}, "
              f"tolerance {TOLERANCE:g}")
    say(args, f"{'parameter':16s} {'shape':8s} {'relative error':>14s} {'worst element':>14s}")
    for r in rows:
        say(args, f"{r['parameter']:16s} {str(tuple(r['shape'])):8s} "
                  f"{r['relative_error']:14.2e} {r['worst_element']:14.2e}  "
                  f"{'ok' if r['ok'] else 'FAILED'}")
    failed = [r["parameter"] for r in rows if not r["ok"]]
    results = write_results(out, {"parameters": rows, "loss": loss_value,
                                  "tolerance": TOLERANCE, "passed": not failed})
    if failed:
        print(f"gradient_check: {len(failed)} of {len(rows)} parameters FAILED: "
              + ", ".join(failed))
    else:
        print(f"gradient_check: all {len(rows)} parameters pass (worst relative error "
              f"{max(r['relative_error'] for r in rows):.1e})")
    print(f"results: {results}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
