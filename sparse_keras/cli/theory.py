"""`sparse-keras theory fig2|fig3`: the match-probability figures of Section 2."""

from __future__ import annotations

import argparse
import time

FIGURES = {
    "fig2": "binary vectors: P(match) against n, one curve per a",
    "fig3": "scalar vectors: P(match) against n (S = 1) and against the input scale S",
}


def add_parser(subparsers, parents=()) -> argparse.ArgumentParser:
    """Adds `sparse-keras theory {fig2,fig3} [--out PATH] [--trials N] [--seed S] [--quiet]`.

    Args:
        subparsers: The object returned by `ArgumentParser.add_subparsers()`.
        parents: Parsers whose options every figure command shares (e.g. `--verbose`).

    Returns:
        The `theory` parser (its own sub-commands are the figures).

    Example:

    >>> parser = argparse.ArgumentParser(prog="sparse-keras")
    >>> _ = add_parser(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["theory", "fig2", "--out", "fig2.png"]).figure
    'fig2'
    """
    parser = subparsers.add_parser(
        "theory",
        help="reproduce the match-probability figures (Fig. 2 and 3)",
        description=(
            "Compute a figure of Section 2 (exact Eq. 3 or the Eq. 4 estimator, plus "
            "Monte-Carlo dots) and save it. See docs/theory.md."
        ),
    )
    figures = parser.add_subparsers(dest="figure", metavar="FIGURE", required=True)
    for name, text in FIGURES.items():
        figure = figures.add_parser(name, parents=list(parents), help=text, description=text)
        figure.add_argument(
            "--out", default=f"{name}.png", help=f"output image (default: {name}.png)"
        )
        figure.add_argument(
            "--trials",
            type=int,
            default=1_000_000,
            help="simulated vectors per point (default: 1000000)",
        )
        figure.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
        figure.add_argument("--dpi", type=int, default=150, help="resolution (default: 150)")
        figure.add_argument("--quiet", action="store_true", help="no progress bar")
    # Figures need NumPy and matplotlib only: no TensorFlow to load.
    parser.set_defaults(func=run, uses_tensorflow=False)
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs `sparse-keras theory FIGURE` with parsed arguments; returns the exit status."""
    from sparse_keras import theory

    start = time.perf_counter()
    draw = theory.figure2 if args.figure == "fig2" else theory.figure3
    fig = draw(trials=args.trials, seed=args.seed, progress=not args.quiet)
    path = theory.save_figure(fig, args.out, dpi=args.dpi)
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s")
    return 0
