"""`sparse-keras flops MODEL`: the non-zero multiply table of a network."""

from __future__ import annotations

import argparse
from typing import Any

INPUT_CHOICES = ("auto", "mnist", "gsc-sample", "none")


def _mnist_inputs(count: int):
    import numpy as np

    from sparse_keras.data import mnist

    images, _ = mnist.load_arrays("test", download=False)
    return np.asarray(mnist.DATASET.preprocess(images[:count]), np.float32)


def _gsc_sample_inputs(count: int):
    import numpy as np

    from sparse_keras.data import gsc
    from sparse_keras.data.download import data_root

    tree = data_root(None, "gsc") / "sample_v0.01"
    dataset = gsc.load("test", batch_size=64, data_dir=tree, download=False, cache=False)
    x = np.concatenate([features.numpy() for features, _ in dataset])
    return x[:count]


def load_inputs(kind: str, model: Any, count: int) -> tuple[Any, str]:
    """Real preprocessed inputs for `model`, and a note on what they are.

    Args:
        kind: "mnist" (test images), "gsc-sample" (the test clips of the 300-clip
            GSC sample), "none", or "auto" (by the model's input shape).
        model: The model the inputs are for.
        count: At most this many inputs.
    """
    if kind == "none":
        return None, "no inputs"
    shape = tuple(model.inputs[0].shape[1:])
    if kind == "auto":
        from sparse_keras.data import gsc, mnist

        by_shape = {mnist.DATASET.feature_shape: "mnist", gsc.DATASET.feature_shape: "gsc-sample"}
        kind = by_shape.get(shape, "none")
        if kind == "none":
            return None, f"no inputs (none known for input shape {shape})"
        try:
            return load_inputs(kind, model, count)
        except (FileNotFoundError, OSError, ValueError) as err:
            return None, f"no inputs ({kind} data not available: {err})"
    loader = {"mnist": _mnist_inputs, "gsc-sample": _gsc_sample_inputs}[kind]
    x = loader(count)
    if x.shape[1:] != shape:
        raise ValueError(f"{kind} inputs have shape {x.shape[1:]}, the model expects {shape}.")
    return x, f"{len(x)} {kind} test inputs"


def run(args: argparse.Namespace) -> int:
    """Runs `sparse-keras flops` with parsed arguments; returns the exit status."""
    from sparse_keras.compute.accounting import count_multiplies
    from sparse_keras.zoo.resolve import resolve_model

    if args.samples < 1:
        raise ValueError(f"--samples must be a positive integer, got {args.samples}.")
    model = resolve_model(args.model, networks=not args.pretrained, seed=args.seed).model
    inputs, note = load_inputs(args.inputs, model, args.samples)
    counts = count_multiplies(model, inputs, k=args.k)
    print(counts.to_markdown() if args.format == "markdown" else counts.to_text())
    if inputs is None:
        print(f"({note})")
    return 0


def add_parser(subparsers, parents=()) -> argparse.ArgumentParser:
    """Adds `sparse-keras flops MODEL [--inputs ...] [--k training|inference]`."""
    parser = subparsers.add_parser(
        "flops",
        parents=list(parents),
        help="count dense, expected and measured non-zero multiplies per layer",
        description=(
            "Print, per layer and in total, the dense multiply-accumulates, the non-zero "
            "multiplies the paper's formulas expect from k and weight density, and the "
            "non-zero products measured on real test inputs. See docs/performance.md."
        ),
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="network name (e.g. gsc_sparse_cnn2), zoo name or .keras file",
    )
    parser.add_argument(
        "--inputs",
        choices=INPUT_CHOICES,
        default="auto",
        help="real inputs to measure on (default: by the model's input shape)",
    )
    parser.add_argument(
        "--samples", type=int, default=1000, help="inputs to measure on (default 1000)"
    )
    parser.add_argument(
        "--k",
        choices=("training", "inference"),
        default="training",
        help="k used by the expected counts (training: the paper's convention)",
    )
    parser.add_argument(
        "--pretrained",
        action="store_true",
        help="load network names from the zoo instead of building them untrained",
    )
    parser.add_argument("--seed", type=int, default=0, help="mask seed of freshly built networks")
    parser.add_argument(
        "--format",
        choices=("text", "markdown"),
        default="text",
        help="table format (default: text)",
    )
    parser.set_defaults(func=run)
    return parser
