"""Linear regression by gradient descent: recover the weights that made synthetic data.

    python examples/linear_regression.py          # w ~ [2, -3.4, 1.7], b ~ 4.2 in a second
    python examples/linear_regression.py --noise 1.0 --examples 100

Data: y = x w_true + b_true + noise, x ~ N(0, 1) with 3 features. The model is the same affine
map with variables w and b, the loss the mean squared error, minimized by minibatch gradient
descent (sg.train.GradientDescentOptimizer) in a plain TF1 loop: run the train op on each batch,
feed the batch through placeholders. Outputs go to out/linear_regression/: fit.png (loss per
epoch, and predictions against targets), results.json. The exit status is 1 if the recovered
weights are off by more than 0.05.
"""

from __future__ import annotations

import sys

import numpy as np
from common import make_parser, output_dir, say, sg, write_results

TRUE_W = np.array([2.0, -3.4, 1.7], np.float32)
TRUE_B = 4.2
TOLERANCE = 0.05


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__, epochs=10, batch_size=32)
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=0.01, help="stddev of the target noise")
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args(argv)
    out = output_dir(args, "linear_regression")
    rng = np.random.default_rng(args.seed)
    features = rng.standard_normal((args.examples, 3)).astype(np.float32)
    targets = (features @ TRUE_W + TRUE_B
               + args.noise * rng.standard_normal(args.examples)).astype(np.float32)

    sg.reset_default_graph()
    sg.set_random_seed(args.seed)
    x = sg.placeholder(sg.float32, [None, 3], name="x")
    y = sg.placeholder(sg.float32, [None], name="y")
    w = sg.Variable(sg.random_normal([3], stddev=0.01), name="w")
    b = sg.Variable(0.0, name="b")
    prediction = sg.reduce_sum(x * w, axis=1) + b
    loss = sg.reduce_mean(sg.square(prediction - y))
    train_op = sg.train.GradientDescentOptimizer(args.lr).minimize(loss)

    losses, steps = [], 0
    with sg.Session(device=args.device) as sess:
        sess.run(sg.global_variables_initializer())
        for epoch in range(1, args.epochs + 1):
            for xb, yb in sg.datasets.batches(features, targets, batch_size=args.batch_size,
                                              seed=args.seed + epoch):
                if args.steps is not None and steps >= args.steps:
                    break
                sess.run(train_op, {x: xb, y: yb})
                steps += 1
            losses.append(float(sess.run(loss, {x: features, y: targets})))
            say(args, f"epoch {epoch}: loss {losses[-1]:.6f}")
        w_value, b_value, fitted = sess.run([w, b, prediction], {x: features})

    error = float(max(np.max(np.abs(w_value - TRUE_W)), abs(b_value - TRUE_B)))
    say(args, f"w = {np.round(w_value, 3)} (true {TRUE_W}), b = {b_value:.3f} (true {TRUE_B})")
    plt = sg.train.curves.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.semilogy(range(1, len(losses) + 1), losses, marker="o")
    left.set(xlabel="epoch", ylabel="mean squared error", title="loss")
    right.scatter(targets, fitted, s=4)
    right.plot([targets.min(), targets.max()], [targets.min(), targets.max()], "k--", lw=1)
    right.set(xlabel="target", ylabel="prediction", title="fit")
    fig.tight_layout()
    picture = sg.train.save_figure(fig, out / "fit.png")
    results = write_results(out, {"w": w_value.tolist(), "b": float(b_value),
                                  "true_w": TRUE_W.tolist(), "true_b": TRUE_B,
                                  "max_error": error, "loss": losses[-1], "steps": steps})
    ok = error < TOLERANCE
    w_text = ", ".join(f"{v:.3f}" for v in w_value)
    print(f"linear_regression: w = [{w_text}], b = {b_value:.3f}; largest "
          f"error {error:.4f} ({'ok' if ok else 'FAILED'}: tolerance {TOLERANCE})")
    print(f"fit: {picture}\nresults: {results}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
