"""MNIST with softmax regression: logits = x W + b, the TF1 beginners' tutorial.

    python examples/mnist_softmax.py              # 5 epochs, about 92% test accuracy, ~10 s
    python examples/mnist_softmax.py --lr 0.1

One linear layer cannot do much better than 92%: every digit gets one template image (a column
of W) and the class whose template best matches the pixels wins. Outputs go to
out/mnist_softmax/: curves.png, templates.png (the 10 columns of W as images), results.json.
"""

from __future__ import annotations

import sys
import time

from common import add_subset_option, load_mnist, make_parser, output_dir, say, sg, write_results


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__, epochs=5, batch_size=100)
    parser.add_argument("--lr", type=float, default=0.5, help="gradient descent step size")
    add_subset_option(parser)
    args = parser.parse_args(argv)
    out = output_dir(args, "mnist_softmax")
    mnist = load_mnist(args, validation_size=5000)

    sg.reset_default_graph()
    sg.set_random_seed(args.seed)
    x = sg.placeholder(sg.float32, [None, 784], name="x")
    y = sg.placeholder(sg.int64, [None], name="y")
    w = sg.Variable(sg.zeros([784, 10]), name="W")  # zeros are fine: the loss is convex
    b = sg.Variable(sg.zeros([10]), name="b")
    logits = x @ w + b
    loss = sg.losses.sparse_softmax_cross_entropy(y, logits)
    accuracy = sg.reduce_mean(sg.cast(sg.equal(sg.argmax(logits, 1), y), sg.float32))
    train_op = sg.train.GradientDescentOptimizer(args.lr).minimize(loss)

    start = time.perf_counter()
    with sg.Session(device=args.device) as sess:
        sess.run(sg.global_variables_initializer())
        trainer = sg.train.Trainer(sess, train_op, loss, [x, y], accuracy=accuracy,
                                   quiet=args.quiet)
        history = trainer.fit(mnist.train, mnist.validation, epochs=args.epochs,
                              batch_size=args.batch_size, seed=args.seed, max_steps=args.steps)
        test_loss, test_accuracy = trainer.evaluate(mnist.test)
        weights = sess.run(w)
    seconds = time.perf_counter() - start
    say(args, sg.train.summary_line("test", history.epoch[-1], test_loss, test_accuracy))

    curves = sg.train.plot_history(history, out / "curves.png", title="mnist_softmax")
    plt = sg.train.curves.pyplot()
    fig, axes = plt.subplots(1, 10, figsize=(12, 1.6))
    for digit, ax in enumerate(axes):
        ax.imshow(weights[:, digit].reshape(28, 28), cmap="seismic")
        ax.set_title(str(digit))
        ax.axis("off")
    templates = sg.train.save_figure(fig, out / "templates.png")
    results = write_results(out, {"test_accuracy": test_accuracy, "test_loss": test_loss,
                                  "epochs": history.epoch[-1], "steps": trainer.steps,
                                  "seconds": round(seconds, 1)})
    print(f"mnist_softmax: test accuracy {test_accuracy:.4f} after {history.epoch[-1]} epochs "
          f"({seconds:.0f} s)")
    print(f"curves: {curves}\ntemplates: {templates}\nresults: {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
