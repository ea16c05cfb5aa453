"""`sparse-keras export MODEL EXPORT_DIR`: a SavedModel for TensorFlow Serving."""

from __future__ import annotations

import argparse


def add_parser(subparsers, parents=()) -> argparse.ArgumentParser:
    """Adds `sparse-keras export MODEL EXPORT_DIR [--version N] [--dataset D]`."""
    parser = subparsers.add_parser(
        "export",
        parents=list(parents),
        help="export a model for TensorFlow Serving (raw-input signatures)",
        description=(
            "Write MODEL as <EXPORT_DIR>/<name>/<version>/ for TensorFlow Serving. The "
            "serving_default signature takes raw input (uint8 MNIST images [batch, 28, 28] or "
            "16 kHz float waveforms [batch, samples]) and returns probabilities, class_ids "
            "and class_names. See docs/serving.md."
        ),
    )
    parser.add_argument(
        "model", metavar="MODEL", help="zoo model name (e.g. mnist_sparse_cnn2) or a .keras file"
    )
    parser.add_argument(
        "export_dir", metavar="EXPORT_DIR", help="TF Serving base directory (mounted at /models)"
    )
    parser.add_argument("--version", type=int, help="version number (default: next free one)")
    parser.add_argument(
        "--dataset",
        metavar="DATASET",
        help="input type: mnist, gsc, fsdd, ... (sparse_keras.data.DATASETS; default: the "
        "zoo's, else from the input shape)",
    )
    parser.add_argument("--model-name", help="name served under (default: zoo name or file stem)")
    parser.add_argument("--class-names", help="comma-separated class names, one per output")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs `sparse-keras export` with parsed arguments; returns the exit status."""
    from sparse_keras.export import export_for_serving
    from sparse_keras.zoo.resolve import resolve_model

    resolved = resolve_model(args.model)
    class_names = args.class_names.split(",") if args.class_names else None
    path = export_for_serving(
        resolved.model,
        args.export_dir,
        version=args.version,
        dataset=args.dataset or resolved.dataset,
        class_names=class_names,
        model_name=args.model_name or resolved.name,
    )
    print(path)
    return 0
