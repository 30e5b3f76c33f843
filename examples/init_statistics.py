"""The lectures' activation statistics: how the initial weights' scale decides what flows forward.

    python examples/init_statistics.py            # the table and out/init_statistics/histograms.png

Ten tanh layers of 500 units get 1000 unit-Gaussian inputs of 500 features. With weights drawn
from N(0, 0.01^2) every layer shrinks its input, so the activations collapse to 0 (and so do the
gradients); with N(0, 1) the pre-activations are huge and tanh saturates at +-1; with Xavier's
N(0, 1/fan_in) the spread stays about the same from layer to layer. The table lists the standard
deviation of each layer's activations; the PNG has one histogram per layer and scheme. Nothing is
trained here, so --epochs and --steps are not used; --batch-size sets the number of inputs.
"""

from __future__ import annotations

import sys

import numpy as np
from common import make_parser, output_dir, say, sg, write_results

LAYERS = 10
UNITS = 500
SCHEMES = {  # name -> stddev of the weights as a function of fan_in
    "small (0.01)": lambda fan_in: 0.01,
    "unit (1.0)": lambda fan_in: 1.0,
    "xavier (1/sqrt(n))": lambda fan_in: 1.0 / np.sqrt(fan_in),
}


def activations(inputs: np.ndarray, stddev: float, seed: int, device: str | None
                ) -> list[np.ndarray]:
    """The outputs of the LAYERS tanh layers for one init scheme, in a fresh graph."""
    with sg.Graph().as_default():
        sg.set_random_seed(seed)
        h = sg.constant(inputs)
        outputs = []
        for i in range(LAYERS):
            h = sg.layers.dense(h, UNITS, activation=sg.tanh, use_bias=False,
                                kernel_initializer=sg.random_normal_initializer(stddev=stddev),
                                name=f"layer{i + 1}")
            outputs.append(h)
        with sg.Session(device=device) as sess:
            sess.run(sg.global_variables_initializer())
            return sess.run(outputs)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__, epochs=None, batch_size=1000,
                         epochs_help="not used: nothing is trained")
    args = parser.parse_args(argv)
    out = output_dir(args, "init_statistics")
    inputs = np.random.default_rng(args.seed).standard_normal((args.batch_size, UNITS))
    inputs = inputs.astype(np.float32)
    layers = {name: activations(inputs, rule(UNITS), args.seed, args.device)
              for name, rule in SCHEMES.items()}
    stds = {name: [float(a.std()) for a in acts] for name, acts in layers.items()}

    say(args, "standard deviation of each layer's tanh activations")
    say(args, f"{'layer':>5s}  " + "  ".join(f"{name:>18s}" for name in SCHEMES))
    for i in range(LAYERS):
        say(args, f"{i + 1:5d}  " + "  ".join(f"{stds[name][i]:18.6f}" for name in SCHEMES))

    plt = sg.train.curves.pyplot()
    fig, axes = plt.subplots(len(SCHEMES), LAYERS, figsize=(2 * LAYERS, 2.2 * len(SCHEMES)),
                             sharex=True)
    for row, (name, acts) in zip(axes, layers.items()):
        for i, (ax, a) in enumerate(zip(row, acts)):
            ax.hist(a.ravel(), bins=40, range=(-1, 1))
            ax.set_yticks([])
            ax.set_title(f"layer {i + 1}: std {a.std():.2g}", fontsize=8)
        row[0].set_ylabel(name)
    fig.suptitle("tanh activations per layer under three weight initializations")
    fig.tight_layout()
    histograms = sg.train.save_figure(fig, out / "histograms.png")
    results = write_results(out, {"std": stds, "layers": LAYERS, "units": UNITS})
    print("init_statistics: last-layer std " + ", ".join(
        f"{name} {s[-1]:.3g}" for name, s in stds.items()))
    print(f"histograms: {histograms}\nresults: {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
