"""Training-step time of MNIST Sparse CNN-2 vs a dense ReLU network of the same shape.

    python benchmarks/train_step.py [--batch-size 64] [--steps 60]

Both networks are timed in the same process, alternating, so machine load affects both;
the printed ratio (sparse / dense) is the figure of merit (goal: <= 1.15).
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from sparse_keras import models


def step_time(model: keras.Model, x, y, steps: int) -> list[float]:
    model.compile(
        keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.train_on_batch(x, y)  # trace
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(args.batch_size, 28, 28, 1)).astype("float32"))
    y = tf.constant(rng.integers(0, 10, args.batch_size))
    sparse = models.build("mnist_sparse_cnn2", seed=0)
    dense = models.build(
        "mnist_sparse_cnn2", seed=0, conv_k=(None, None), hidden_k=None, weight_density=1.0
    )
    results = {"sparse": [], "dense": []}
    for _ in range(args.rounds):
        results["sparse"] += step_time(sparse, x, y, args.steps)
        results["dense"] += step_time(dense, x, y, args.steps)
    median = {name: float(np.median(t)) * 1000 for name, t in results.items()}
    print(
        f"batch {args.batch_size}: sparse {median['sparse']:.2f} ms/step, dense ReLU {median['dense']:.2f} ms/step"
    )
    print(f"ratio sparse/dense: {median['sparse'] / median['dense']:.2f}")


if __name__ == "__main__":
    main()
