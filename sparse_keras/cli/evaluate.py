"""`sparse-keras evaluate MODEL`: accuracy under the paper's noise protocol and the noise score."""

from __future__ import annotations

import argparse

# The same values as `sparse_keras.robustness.DEFAULT_NOISE_LEVELS` (a test checks):
# written here so that `--help` does not import TensorFlow to show them. The dataset
# names are not repeated: `robustness.evaluate` checks `--dataset` against
# `sparse_keras.data.DATASETS`.
DEFAULT_NOISE_LEVELS = tuple(round(0.05 * i, 2) for i in range(11))
# `sparse_keras.robustness.engines.ENGINES`, for the same reason (a test checks).
ENGINES = ("auto", "keras", "sparse")


def parse_levels(text: str) -> tuple[float, ...]:
    """Noise levels from "0,0.05,0.1" (each in [0, 1]).

    Raises:
        ValueError: a part is not a number or a level is outside [0, 1].
    """
    try:
        levels = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as err:
        raise ValueError(
            f"--levels must be comma-separated numbers such as 0,0.05,0.1; got {text!r}."
        ) from err
    if not levels:
        raise ValueError(f"--levels needs at least one noise level; got {text!r}.")
    bad = [level for level in levels if not 0.0 <= level <= 1.0]
    if bad:
        raise ValueError(f"--levels must be in [0, 1]; got {', '.join(map(str, bad))}.")
    return levels


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def default_dataset(name: str, trained_on: str | None) -> str:
    """The test data for a model: the zoo's record, else the file name's prefix, else MNIST.

    Args:
        name: Zoo name or the model file's stem.
        trained_on: The dataset the zoo records, or None for a file.
    """
    if trained_on is not None:
        return trained_on  # `robustness.evaluate` says so if it cannot load that data
    from sparse_keras import data

    named = data.for_model(name)
    return "mnist" if named is None else named.name


def add_parser(subparsers, parents=()) -> argparse.ArgumentParser:
    """Adds `sparse-keras evaluate` to the command's sub-parsers."""
    parser = subparsers.add_parser(
        "evaluate",
        parents=list(parents),
        help="accuracy under the paper's noise protocol and the noise score",
        description=(
            "Evaluates a model on the test set at each noise level (the paper's Fig. 5B) and "
            "prints the accuracy per level and the noise score (Tables 1-2)."
        ),
    )
    parser.add_argument(
        "model", metavar="MODEL", help="zoo name (e.g. mnist_sparse_cnn2) or path to a .keras file"
    )
    parser.add_argument(
        "--dataset",
        metavar="DATASET",
        help="test data: mnist, gsc, fsdd, ... (sparse_keras.data.DATASETS; default: the zoo "
        "entry's; for .keras files the dataset the file name starts with, else 'mnist')",
    )
    parser.add_argument(
        "--levels",
        type=str,
        default=",".join(f"{level:g}" for level in DEFAULT_NOISE_LEVELS),
        help="comma-separated noise levels in [0, 1] (default: 0,0.05,...,0.5)",
    )
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=1000,
        help="examples per model call (default 1000)",
    )
    parser.add_argument(
        "--max-examples", type=_positive_int, help="evaluate only the first N test examples"
    )
    parser.add_argument(
        "--data-dir",
        help="the dataset's directory (MNIST IDX files / GSC tree; default "
        "$SPARSE_KERAS_DATA/<dataset>, then the download cache; MNIST falls back to the "
        "test set shipped with the package)",
    )
    parser.add_argument("--json", metavar="PATH", help="write the report as JSON")
    parser.add_argument(
        "--plot", metavar="PATH", help="save the accuracy-vs-noise plot (e.g. out.png)"
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="how the model runs: auto (the sparse inference path for networks with "
        "k-winners layers, checked against Keras on the first batch; else Keras), keras or "
        "sparse (default auto)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs `sparse-keras evaluate` with parsed arguments; returns the exit status."""
    levels = parse_levels(args.levels)
    from sparse_keras import robustness
    from sparse_keras.zoo.resolve import resolve_model

    # A mistyped output path fails now, not after minutes of evaluation.
    for option in ("json", "plot"):
        if getattr(args, option):
            robustness.check_output_path(getattr(args, option), f"--{option} path")

    resolved = resolve_model(args.model)
    report = robustness.evaluate(
        resolved.model,
        args.dataset or default_dataset(resolved.name, resolved.dataset),
        noise_levels=levels,
        seed=args.seed,
        batch_size=args.batch_size,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        max_examples=args.max_examples,
        model_name=resolved.name,
        engine=args.engine,
    )
    print(report.to_text())
    if args.json:
        report.to_json(args.json)
        print(f"wrote {args.json}")
    if args.plot:
        report.plot().figure.savefig(args.plot, dpi=150)
        print(f"wrote {args.plot}")
    return 0
