"""What the training examples share: the symgraph import, their command line, output folders.

Every example takes --epochs, --batch-size, --seed, --quiet, --device, --steps (a cap on training
steps, for quick runs and tests) and --out (default out/NAME/ under the repository root), and
writes its key numbers to OUT/results.json besides its pictures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

try:
    import symgraph as sg
except ImportError:  # a plain checkout: use the package next to this folder
    sys.path.insert(0, str(ROOT))
    import symgraph as sg

from symgraph.files import write_atomically  # noqa: E402 - after the import fallback above


def make_parser(doc: str, epochs: int | None, batch_size: int, seed: int = 0,
                epochs_help: str | None = None) -> argparse.ArgumentParser:
    """The options every example takes, with its own defaults; the docstring is the help."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--epochs", type=int, default=epochs,
                        help=epochs_help or f"passes over the training data (default {epochs})")
    parser.add_argument("--batch-size", type=int, default=batch_size,
                        help=f"default {batch_size}")
    parser.add_argument("--seed", type=int, default=seed, help="seeds the data order and weights")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars or per-epoch lines, only the results")
    parser.add_argument("--device", default=None,
                        help="Session device ('reference', 'cpu', 'cuda'); default: the Session's")
    parser.add_argument("--steps", type=int, default=None,
                        help="stop after this many training steps (quick runs, tests)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default out/NAME)")
    return parser


def output_dir(args: argparse.Namespace, name: str) -> Path:
    """OUT (from --out, else ROOT/out/NAME), created."""
    out = args.out if args.out is not None else ROOT / "out" / name
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_results(out: Path, results: dict[str, Any]) -> Path:
    """OUT/results.json: the numbers a test or a script reads back, written atomically."""
    path = out / "results.json"
    write_atomically(path, json.dumps(results, indent=1) + "\n")
    return path


def add_subset_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subset", type=int, default=None,
                        help="use only the first N examples of each split (quick runs, tests)")


def load_mnist(args: argparse.Namespace, **kwargs: Any) -> Any:
    """sg.datasets.mnist.load_data(**kwargs), cut to --subset; on no data, exit 2 with the
    loader's message on how to provide it."""
    try:
        mnist = sg.datasets.mnist.load_data(**kwargs)
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        raise SystemExit(2) from None
    if args.subset is not None:
        cut = [sg.datasets.DataSet(d.images[:args.subset], d.labels[:args.subset])
               for d in mnist[:3]]
        mnist = mnist._replace(train=cut[0], validation=cut[1], test=cut[2])
    say(args, f"MNIST from {mnist.source}: {mnist.train.num_examples} train, "
              f"{mnist.validation.num_examples} validation, {mnist.test.num_examples} test")
    return mnist


def say(args: argparse.Namespace, text: str = "") -> None:
    """Prints unless --quiet."""
    if not args.quiet:
        print(text)
