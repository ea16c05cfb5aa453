"""Training-step time of MNIST Sparse CNN-2 vs a dense ReLU network of the same shape.

    python benchmarks/train_step.py [--batch-size 64] [--steps 40] [--rounds 3] [--out FILE]

The dense network has the same layers with ReLUs instead of k-winners and a dense
hidden layer. Sparse CNN-2 is timed twice: with the winners found by the CPU kernel
(the default on CPU, see `sparse_keras.layers.winner_selection`) and with
`tf.math.top_k`. The networks take turns every few steps, so changes in machine
load fall on all of them alike; the printed ratios (sparse / dense, medians) are
the figures of merit (goal: <= 1.15). The batches are real MNIST training images
where the data is found (`SPARSE_KERAS_DATA`), else normal noise: the kernel's
running time depends a little on the data.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from sparse_keras import models
from sparse_keras.data import mnist
from sparse_keras.layers import set_winner_selection

STEPS_PER_TURN = 5


def batches(batch_size: int, count: int) -> tuple[list[tuple[tf.Tensor, tf.Tensor]], str]:
    """`count` batches of real MNIST training images if available, else of noise."""
    try:
        images, labels = mnist.load_arrays("train", download=False)
        source = "MNIST training images"
    except (FileNotFoundError, OSError, ValueError):
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (batch_size * count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, batch_size * count)
        source = "random images (MNIST not found)"
    x = mnist.normalize_images(images[: batch_size * count, ..., None] / np.float32(255.0))
    x = tf.reshape(tf.cast(x, tf.float32), (count, batch_size, 28, 28, 1))
    y = tf.reshape(tf.constant(labels[: batch_size * count], tf.int32), (count, batch_size))
    return [(x[i], y[i]) for i in range(count)], source


def compiled(selection: str, data, **overrides) -> keras.Model:
    """The network, compiled, traced and warmed up with winners found by `selection`."""
    set_winner_selection(selection)
    keras.utils.set_random_seed(0)
    model = models.build("mnist_sparse_cnn2", seed=0, **overrides)
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    # The selection is fixed when the train step is traced, at its first call.
    for x, y in data[:3]:
        model.train_on_batch(x, y)
    return model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per network per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", help="also append the report to this file")
    args = parser.parse_args(argv)
    data, source = batches(args.batch_size, 16)
    networks = {
        "sparse (kernel)": compiled("auto", data),
        "sparse (top_k)": compiled("top_k", data),
        "dense ReLU": compiled(
            "auto", data, conv_k=(None, None), hidden_k=None, weight_density=1.0
        ),
    }
    times = {name: [] for name in networks}
    turns = max(1, args.steps * args.rounds // STEPS_PER_TURN)
    for turn in range(turns):
        for name, model in networks.items():
            for step in range(STEPS_PER_TURN):
                x, y = data[(turn * STEPS_PER_TURN + step) % len(data)]
                start = time.perf_counter()
                model.train_on_batch(x, y)
                times[name].append(time.perf_counter() - start)
    median = {name: float(np.median(t)) * 1000 for name, t in times.items()}
    dense = median["dense ReLU"]
    lines = [f"batch {args.batch_size}, {source}, {len(times[name])} steps each (medians):"]
    for name, ms in median.items():
        lines.append(f"  {name:16s} {ms:6.2f} ms/step   ratio to dense {ms / dense:.2f}")
    report = "\n".join(lines)
    print(report)
    if args.out:
        # Appended, with the date and command, so that repeated runs stay on record.
        with open(args.out, "a") as out:
            command = "python benchmarks/train_step.py " + " ".join(argv or sys.argv[1:])
            out.write(f"## {datetime.datetime.now():%Y-%m-%d %H:%M} `{command.strip()}`\n")
            out.write(report + "\n\n")


if __name__ == "__main__":
    main()
