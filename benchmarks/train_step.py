"""Training-step time of Sparse CNN-2 (MNIST, GSC) vs the same network with ReLUs.

    python benchmarks/train_step.py [--networks mnist gsc] [--batch-sizes 4 16 64]
        [--steps 40] [--rounds 3] [--out FILE] [--profile]

The dense counterpart has the same layers with ReLUs instead of k-winners and dense
weights. Sparse CNN-2 is timed with every way of finding its training winners
(`sparse_keras.layers.winner_selection`):

- `auto`, the default (on a CPU-only machine the kernel as a compiled TF op,
  `sparse_keras.layers.winner_ops`, on the calling thread below
  `PARALLEL_MIN_VALUES` values per call and over TF's intra-op threads from there);
- `numba`: the same kernel in a `tf.numpy_function` (the default before the op, and
  what `auto` falls back to where the op cannot be built);
- `kernel, threads`: the `numba` path split over Numba's threads at every call
  (`PARALLEL_MIN_VALUES = 0`);
- `top_k`: `tf.math.top_k`;

and, to split the cost, the network with ReLUs but its sparse weights (the weight
masks re-applied after every update). `--profile` adds two stand-ins of the `numba`
path that split it further: its PyFunc returning a cached result (the call without the
selection) and TF ops in its place (the layer's graph without the call).

For each network and batch size the contenders take turns every few steps, so changes
in machine load fall on all of them alike. Each step's CPU time (the process's, all
threads: `time.process_time`) and wall time are recorded; the figures of merit are the
medians' ratios to the dense network (goal: <= 1.15) in CPU time, which a busy machine
disturbs much less than wall time. The load average is printed before and after.
MNIST batches are real training images where the data is found
(`SPARSE_KERAS_DATA`), else normal noise; GSC batches are normal noise of the
network's input shape (the kernel's running time depends a little on the data).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from sparse_keras import models
from sparse_keras.data import mnist
from sparse_keras.layers import set_winner_selection, winner_selection

STEPS_PER_TURN = 5
NETWORKS = {"mnist": "mnist_sparse_cnn2", "gsc": "gsc_sparse_cnn2"}
# name: (winner selection, PARALLEL_MIN_VALUES while it runs, model overrides)
DENSE = {"conv_k": (None, None), "hidden_k": None, "weight_density": 1.0}
CONTENDERS = {
    "dense ReLU": ("auto", None, DENSE),
    "sparse, auto": ("auto", None, {}),
    "sparse, numba": ("numba", None, {}),
    "sparse, kernel, threads": ("numba", 0, {}),
    "sparse, top_k": ("top_k", None, {}),
    # The sparse weights alone: what k-winners cannot be blamed for.
    "ReLU, sparse weights": ("auto", None, {"conv_k": (None, None), "hidden_k": None}),
}


def batches(network: str, batch_size: int, count: int) -> tuple[list, str]:
    """`count` batches: real MNIST training images if available, else noise."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10 if network == "mnist" else 12, batch_size * count)
    if network == "gsc":
        x = rng.normal(size=(count, batch_size, 32, 32, 1)).astype(np.float32)
        source = "normal noise"
    else:
        try:
            images, labels = mnist.load_arrays("train", download=False)
            source = "MNIST training images"
        except (FileNotFoundError, OSError, ValueError):
            images = rng.integers(0, 256, (batch_size * count, 28, 28), dtype=np.uint8)
            source = "random images (MNIST not found)"
        x = mnist.normalize_images(images[: batch_size * count, ..., None] / np.float32(255.0))
        x = np.asarray(x, np.float32).reshape(count, batch_size, 28, 28, 1)
    y = np.asarray(labels[: batch_size * count], np.int32).reshape(count, batch_size)
    return [(tf.constant(x[i]), tf.constant(y[i])) for i in range(count)], source


def cached_py_function(func, inp, Tout, stateful, name):  # noqa: N803 (tf's names)
    """Profile only: the same PyFunc op, whose Python returns its first result again
    (no kernel, no NumPy work): what the call itself costs."""
    cache = {}

    def cached(*args):
        if args[0].shape not in cache:
            cache[args[0].shape] = func(*args)
        return cache[args[0].shape]

    return NUMPY_FUNCTION(cached, inp, Tout, stateful=stateful, name=name)


def no_py_function(func, inp, Tout, stateful, name):  # noqa: N803
    """Profile only: no PyFunc op, a packed array of the right size made by TF ops
    (wrong winners): what the rest of the layer's graph costs."""
    channels = int(inp[1].shape[0])
    mask = tf.reshape(tf.cast(inp[0] > 0, tf.float32), [-1])
    return tf.concat([mask, tf.zeros((channels + 1,))], 0)


NUMPY_FUNCTION = tf.numpy_function
# --profile adds these: the numba path with its PyFunc replaced while tracing.
PROFILE = {
    "numba, PyFunc returns a cached result": ("numba", None, {}, cached_py_function),
    "numba, TF ops instead of the PyFunc": ("numba", None, {}, no_py_function),
}


class Contender:
    """One network, compiled and traced with its winner selection, timed step by step."""

    def __init__(self, network: str, selection: str, parallel_min, overrides, data, patch=None):
        self.parallel_min = parallel_min
        set_winner_selection(selection)
        keras.utils.set_random_seed(0)
        self.model = models.build(NETWORKS[network], seed=0, **overrides)
        self.model.compile(
            keras.optimizers.SGD(0.01, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        self.cpu: list[float] = []
        self.wall: list[float] = []
        # The selection is fixed when the train step is traced, at its first call.
        if patch is not None:
            tf.numpy_function = patch
        try:
            for x, y in data[:3]:
                self.step(x, y, record=False)
        finally:
            tf.numpy_function = NUMPY_FUNCTION

    def step(self, x, y, record: bool = True) -> None:
        saved = winner_selection.PARALLEL_MIN_VALUES
        if self.parallel_min is not None:
            winner_selection.PARALLEL_MIN_VALUES = self.parallel_min
        try:
            cpu, wall = time.process_time(), time.perf_counter()
            self.model.train_on_batch(x, y)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            winner_selection.PARALLEL_MIN_VALUES = saved
        if record:
            self.cpu.append(cpu)
            self.wall.append(wall)


def measure(
    network: str, batch_size: int, steps: int, rounds: int, profile: bool = False
) -> tuple[dict, str]:
    """{contender: (median CPU ms, median wall ms, steps)} for one network and batch size."""
    data, source = batches(network, batch_size, 16)
    specs = {name: (*spec, None) for name, spec in CONTENDERS.items()}
    if profile:
        specs.update(PROFILE)
    contenders = {
        name: Contender(network, selection, parallel_min, overrides, data, patch)
        for name, (selection, parallel_min, overrides, patch) in specs.items()
    }
    turns = max(1, steps * rounds // STEPS_PER_TURN)
    for turn in range(turns):
        for contender in contenders.values():
            for step in range(STEPS_PER_TURN):
                x, y = data[(turn * STEPS_PER_TURN + step) % len(data)]
                contender.step(x, y)
    set_winner_selection("auto")
    return {
        name: (
            float(np.median(c.cpu)) * 1000,
            float(np.median(c.wall)) * 1000,
            len(c.cpu),
        )
        for name, c in contenders.items()
    }, source


def report_table(results: dict) -> str:
    """Markdown: one row per network and batch, CPU-time ratios to dense (wall in brackets)."""
    names = [name for name in next(iter(results.values()))[0] if name != "dense ReLU"]
    lines = [
        "| network | batch | steps each | dense ReLU: CPU ms (wall) | "
        + " | ".join(f"{name}: CPU ratio (wall)" for name in names)
        + " |",
        "|---|--:|--:|--:|" + "--:|" * len(names),
    ]
    for (network, batch), (medians, _source) in results.items():
        dense_cpu, dense_wall, steps = medians["dense ReLU"]
        cells = [
            f"{medians[name][0] / dense_cpu:.2f} ({medians[name][1] / dense_wall:.2f})"
            for name in names
        ]
        lines.append(
            f"| {NETWORKS[network]} | {batch} | {steps} | {dense_cpu:.2f} ({dense_wall:.2f}) | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="+", choices=sorted(NETWORKS), default=["mnist", "gsc"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[4, 16, 64])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per network per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", help="also append the report to this file")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also time the numba path with its PyFunc returning a cached result, and with "
        "TF ops instead of it (wrong winners: a split of the step's cost, not a method)",
    )
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    results = {}
    for network in args.networks:
        for batch in args.batch_sizes:
            results[network, batch] = measure(network, batch, args.steps, args.rounds, args.profile)
            print(f"done: {network} batch {batch}", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    sources = "; ".join(
        f"{network}: {source}"
        for network, source in {n: r[1] for (n, _), r in results.items()}.items()
    )
    report = "\n".join(
        [
            report_table(results),
            "",
            f"Medians of per-step process CPU time (wall time in brackets), ratio to the dense "
            f"network. Inputs: {sources}. Load average (1/5/15 min) before "
            f"{'/'.join(f'{v:.2f}' for v in load_before)}, after "
            f"{'/'.join(f'{v:.2f}' for v in load_after)}; {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}, "
            f"Keras {keras.__version__}.",
        ]
    )
    print(report)
    if args.out:
        # Appended, with the date and command, so that repeated runs stay on record.
        # "###" headings: the "##" runs above them are the batch-64, MNIST-only format
        # that docs/hooks.py tabulates.
        with open(args.out, "a") as out:
            command = "python benchmarks/train_step.py " + " ".join(
                sys.argv[1:] if argv is None else argv
            )
            out.write(f"### {datetime.datetime.now():%Y-%m-%d %H:%M} `{command.strip()}`\n\n")
            out.write(report + "\n\n")


if __name__ == "__main__":
    main()
