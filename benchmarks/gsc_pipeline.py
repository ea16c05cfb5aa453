"""Throughput of the augmented GSC training pipeline, in clips per second.

    python benchmarks/gsc_pipeline.py [--data-dir DIR] [--batch-size 64] [--seconds 20]
        [--train-steps 30]

Times `gsc.load("train", augment=True, class_balanced=True)` (WAV decoding, the four
augmentations, STFT, mel, dB) repeated over the training split, after a few warm-up
batches, with no model attached. Without `--data-dir` the full tree is used if
present, else the 300-clip sample (`$SPARSE_KERAS_DATA/gsc/sample_v0.01`), whose 68
training clips stay in the OS file cache, so the figure measures compute, not disk.
To compare with a model's step rate, call `measure_pipeline` and divide.
"""

from __future__ import annotations

import argparse
import os
import time

import tensorflow as tf

from sparse_keras.data import gsc
from sparse_keras.data.download import DataNotFoundError, data_root


def default_tree() -> str:
    """The full GSC tree if there is one, else the bundled 300-clip sample."""
    try:
        return str(gsc.find_tree(None, download_if_missing=False))
    except DataNotFoundError:
        return str(data_root(None, "gsc") / "sample_v0.01")


def measure_pipeline(
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    seconds: float = 20.0,
    warmup_batches: int = 5,
    augment: bool = True,
    class_balanced: bool = True,
    seed: int = 0,
) -> dict[str, float]:
    """Runs the GSC training input pipeline alone and reports its rate.

    Args:
        data_dir: A v0.01 tree; default `default_tree()`.
        batch_size: Batch size.
        seconds: Time to measure for (after the warm-up).
        warmup_batches: Batches consumed before timing (tracing, autotuning).
        augment: Time the augmented pipeline (the paper's training input).
        class_balanced: Use class-balanced sampling, as the paper's training does.
        seed: Pipeline seed.

    Returns:
        Dict with "clips_per_second", "batches_per_second", "clips" and "seconds".
    """
    data_dir = default_tree() if data_dir is None else data_dir
    ds = gsc.load(
        "train", batch_size, data_dir, augment=augment, class_balanced=class_balanced, seed=seed
    ).repeat()
    iterator = iter(ds)
    for _ in range(warmup_batches):
        next(iterator)
    clips = batches = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        _, labels = next(iterator)
        clips += int(tf.shape(labels)[0])
        batches += 1
    return {
        "clips_per_second": clips / elapsed,
        "batches_per_second": batches / elapsed,
        "clips": float(clips),
        "seconds": elapsed,
    }


def measure_training_step(batch_size: int = 16, steps: int = 30) -> float:
    """Training clips/second of GSC Sparse CNN-2 (its recipe's SGD, random features)."""
    import keras
    import numpy as np

    from sparse_keras import models

    model = models.build("gsc_sparse_cnn2", seed=0)
    model.compile(
        keras.optimizers.SGD(0.01, weight_decay=0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(-80, 0, size=(batch_size, 32, 32, 1)).astype("float32")
    y = rng.integers(0, 12, batch_size)
    model.train_on_batch(x, y)  # trace
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch_size / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--no-balance", action="store_true")
    parser.add_argument(
        "--train-steps", type=int, default=30, help="timed training steps of the model"
    )
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_tree()
    result = measure_pipeline(
        data_dir,
        batch_size=args.batch_size,
        seconds=args.seconds,
        augment=not args.no_augment,
        class_balanced=not args.no_balance,
    )
    print(
        f"GSC training pipeline ({'augmented' if not args.no_augment else 'plain'}, batch "
        f"{args.batch_size}, {data_dir}): {result['clips_per_second']:.0f} clips/s "
        f"({result['batches_per_second']:.1f} batches/s over {result['seconds']:.1f} s, "
        f"{os.cpu_count()} CPUs)"
    )
    # The recipe trains at batch 16: the pipeline must deliver clips faster than this.
    step_rate = measure_training_step(batch_size=16, steps=args.train_steps)
    print(f"GSC Sparse CNN-2 training step (batch 16): {step_rate:.0f} clips/s")
    print(f"pipeline / training ratio: {result['clips_per_second'] / step_rate:.1f} (must be > 1)")


if __name__ == "__main__":
    main()
