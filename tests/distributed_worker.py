"""Runs one side of the distributed tests in a fresh interpreter (tests/test_distributed.py).

    python tests/distributed_worker.py mirrored OUT_DIR    # 2 logical CPUs, + references
    python tests/distributed_worker.py worker OUT_DIR      # one MultiWorkerMirroredStrategy task

A fresh process is needed because logical devices and the multi-worker collective
runtime can only be set up before TensorFlow initialises. Every mode writes its
arrays to `OUT_DIR/<name>.npz`; the test compares them.
"""

from __future__ import annotations

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# The multi-worker run: MNIST Sparse CNN-2, three global batches of eight samples.
MNIST_STEPS, MNIST_GLOBAL_BATCH = 3, 8
# The two-device run: a small conv + hidden k-winners network.
SMALL_STEPS, SMALL_GLOBAL_BATCH = 3, 16


def mnist_data() -> tuple[np.ndarray, np.ndarray]:
    """Normalised-looking random images and labels, the same in every process."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(MNIST_STEPS * MNIST_GLOBAL_BATCH, 28, 28, 1)).astype("float32")
    return x, rng.integers(0, 10, len(x))


def small_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(SMALL_STEPS * SMALL_GLOBAL_BATCH, 10, 10, 1)).astype("float32")
    return x, rng.integers(0, 3, len(x))


def compile_sgd(model, learning_rate):
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def small_model():
    """Conv k-winners (per-channel duty cycles), a sparse hidden layer, dense k-winners."""
    import keras

    from sparse_keras import KWinners, SparseDense

    keras.utils.set_random_seed(0)
    inputs = keras.Input((10, 10, 1))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    # A short period so that the three steps cross it: period = 16, then 20, 20.
    x = KWinners(10, boost_strength=1.5, duty_cycle_period=20, name="conv_kwinners")(x)
    x = keras.layers.Flatten()(x)
    x = SparseDense(16, density=0.5, seed=1, name="hidden")(x)
    x = KWinners(4, boost_strength=1.5, duty_cycle_period=20, name="hidden_kwinners")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    return compile_sgd(keras.Model(inputs, outputs), 0.1)


def state(model) -> dict[str, np.ndarray]:
    """Every variable of a model (weights, masks, k-winners state) by path."""
    return {v.path: np.asarray(v.numpy()) for v in model.weights}


def replica_spread(model) -> float:
    """Largest difference between the per-device copies of any variable (0: in sync)."""
    spread = 0.0
    for v in model.weights:
        copies = [np.asarray(c.numpy()) for c in getattr(v.value, "values", (v.value,))]
        spread = max([spread] + [float(np.max(np.abs(c - copies[0]), initial=0)) for c in copies])
    return spread


def fit_global_batches(model, strategy, x, y, batch, feed):
    """One epoch over consecutive global batches of `batch` rows.

    It is epoch 1, so that `BoostDecay` sets every boost strength to `1.5 * 0.5`, and
    to `1.5 * 0.5**2` after it (assignments made outside the replicas, which must reach
    all copies).
    """
    from sparse_keras import BoostDecay

    epoch = dict(initial_epoch=1, epochs=2, callbacks=[BoostDecay(0.5)], verbose=0)
    if feed == "keras":  # Keras splits each global batch over the local replicas itself
        model.fit(x, y, batch_size=batch, shuffle=False, **epoch)
        return
    from sparse_keras.distribute import distribute_global_batches

    dataset = distribute_global_batches(
        strategy, lambda: tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
    )
    # The distributed dataset's length is unknown to Keras: say how many steps.
    model.fit(dataset, steps_per_epoch=len(x) // batch, **epoch)


def run_mirrored(out: pathlib.Path) -> None:
    """Two logical CPUs: MirroredStrategy against one device, save/load, and the
    single-device reference of the multi-worker run."""
    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    from sparse_keras import models

    x, y = small_data()
    one_device = small_model()
    fit_global_batches(one_device, None, x, y, SMALL_GLOBAL_BATCH, "keras")
    np.savez(out / "small_one_device.npz", **state(one_device))

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    for feed in ("keras", "global_batches"):
        with strategy.scope():
            model = small_model()
        fit_global_batches(model, strategy, x, y, SMALL_GLOBAL_BATCH, feed)
        arrays = state(model)
        arrays["replica_spread"] = np.float64(replica_spread(model))
        np.savez(out / f"small_mirrored_{feed}.npz", **arrays)

    # Save from the distributed model; load outside any strategy scope.
    model.save(out / "small_mirrored.keras")
    loaded = keras.models.load_model(out / "small_mirrored.keras")
    np.savez(
        out / "small_loaded.npz",
        distributed=model.predict(x, verbose=0),
        loaded=loaded.predict(x, verbose=0),
        **{f"state/{k}": v for k, v in state(loaded).items()},
    )

    # The multi-worker run's single-device reference: the same global batches.
    keras.utils.set_random_seed(0)
    reference = compile_sgd(models.build("mnist_sparse_cnn2", seed=0), 0.02)
    mx, my = mnist_data()
    fit_global_batches(reference, None, mx, my, MNIST_GLOBAL_BATCH, "keras")
    np.savez(
        out / "mnist_reference.npz",
        predictions=reference.predict(mx, verbose=0),
        **{f"state/{k}": v for k, v in state(reference).items()},
    )


def run_worker(out: pathlib.Path) -> None:
    """One task of a two-worker MultiWorkerMirroredStrategy cluster (TF_CONFIG)."""
    from sparse_keras.distribute import is_chief, make_strategy

    strategy = make_strategy("multiworker")  # first: it sets up the collective runtime
    import keras

    from sparse_keras import models

    task_id = strategy.cluster_resolver.task_id
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = compile_sgd(models.build("mnist_sparse_cnn2", seed=0), 0.02)
    x, y = mnist_data()
    fit_global_batches(model, strategy, x, y, MNIST_GLOBAL_BATCH, "global_batches")
    arrays = {f"state/{k}": v for k, v in state(model).items()}
    if is_chief(strategy):
        # Only the chief writes the model; it is loaded on one device, outside the scope.
        model.save(out / "mnist_worker.keras")
        loaded = keras.models.load_model(out / "mnist_worker.keras")
        arrays["loaded_predictions"] = loaded.predict(x, verbose=0)
        arrays.update({f"loaded/{k}": v for k, v in state(loaded).items()})
    np.savez(out / f"mnist_worker{task_id}.npz", **arrays)


if __name__ == "__main__":
    mode, out_dir = sys.argv[1], pathlib.Path(sys.argv[2])
    {"mirrored": run_mirrored, "worker": run_worker}[mode](out_dir)
    print(f"{mode} done", flush=True)
