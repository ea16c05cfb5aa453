"""Training throughput on 2 logical CPU devices (MirroredStrategy) vs 1, same global batch.

    python benchmarks/distributed_scaling.py [--batch-size 64] [--steps 20] [--rounds 3]

MNIST Sparse CNN-2 (three k-winners layers, so three small duty-cycle all-reduces per
step) and its dense ReLU twin (no k-winners, gradients only) are timed in one process,
alternating one device and two in every round so that changing machine load affects
all four alike. Prints the median samples/s of each and the 2-vs-1 ratio.

Logical CPU devices share the process's CPU threads: this measures what splitting a
batch and synchronising replicas costs, not extra compute. On GPUs or separate machines
the same code runs one replica per device.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def configure_two_cpus() -> None:
    """Splits the CPU into two logical devices; must run before TensorFlow starts."""
    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def build(network: str, strategy: tf.distribute.Strategy):
    import keras

    from sparse_keras import models

    overrides = {} if network == "sparse" else dict(conv_k=(None, None), hidden_k=None)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = models.build("mnist_sparse_cnn2", seed=0, **overrides)
        model.compile(
            keras.optimizers.SGD(0.01),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    return model


def samples_per_second(model, dataset, batch_size: int, steps: int) -> float:
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
    return steps * batch_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64, help="global batch")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    configure_two_cpus()
    from sparse_keras.distribute import distribute_global_batches

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4 * args.batch_size, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, len(x))

    def global_batches():
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size).cache().repeat()

    strategies = {
        "1 device": tf.distribute.get_strategy(),
        "2 logical devices": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
    }
    runs = {}
    for network in ("sparse", "dense"):
        for name, strategy in strategies.items():
            model = build(network, strategy)
            dataset = distribute_global_batches(strategy, global_batches)
            model.fit(dataset, steps_per_epoch=3, shuffle=False, verbose=0)  # trace, warm up
            runs[network, name] = (model, dataset, [])
    for _ in range(args.rounds):
        for model, dataset, results in runs.values():
            results.append(samples_per_second(model, dataset, args.batch_size, args.steps))

    print(
        f"global batch {args.batch_size}, {args.steps} steps x {args.rounds} rounds, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end"
    )
    for network in ("sparse", "dense"):
        line, medians = [f"{network:6s}"], {}
        for name in strategies:
            results = runs[network, name][2]
            medians[name] = float(np.median(results))
            line.append(
                f"{name}: {medians[name]:6.0f} samples/s (range {min(results):.0f}-{max(results):.0f})"
            )
        ratio = medians["2 logical devices"] / medians["1 device"]
        print("   ".join(line) + f"   ratio 2/1: {ratio:.2f}")


if __name__ == "__main__":
    main()
