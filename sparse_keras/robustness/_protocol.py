"""The noise protocol's shared parts: test data, noisy feature batches and output checks.

`evaluation.evaluate` streams the protocol and `noisy_sets.NoisyTestSet` draws it once and
keeps it; both take their test data, noise, checks and report metadata from here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import sys
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from sparse_keras import data, noise

# The paper's levels, 0.00 to 0.50 in steps of 0.05 (rounded so that they print and
# compare as written rather than as 0.15000000000000002).
DEFAULT_NOISE_LEVELS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(11))

NoiseFn = Callable[..., tf.Tensor]


@dataclasses.dataclass
class TestData:
    """Raw test examples, in memory (`arrays`) or as an unbatched `(input, label)` dataset,
    with the noise and feature functions that go with them."""

    name: str
    noise_fn: NoiseFn
    preprocess: Callable[[tf.Tensor], tf.Tensor] | None
    num_classes: int | None
    arrays: tuple[np.ndarray, np.ndarray] | None = None
    examples: tf.data.Dataset | None = None

    def raw_batches(self, batch_size: int):
        """Yields `(first_example_index, inputs, labels)` batches of raw inputs."""
        if self.arrays is not None:
            # Slicing in-memory arrays skips a tf.data pipeline and its start-up cost per level.
            inputs, labels = self.arrays
            for start in range(0, len(labels), batch_size):
                yield (
                    start,
                    tf.constant(inputs[start : start + batch_size]),
                    labels[start : start + batch_size],
                )
            return
        start = 0
        for inputs, labels in self.examples.batch(batch_size).prefetch(tf.data.AUTOTUNE):
            labels = labels.numpy()
            yield start, inputs, labels
            start += len(labels)


def check_levels(noise_levels: Sequence[float]) -> tuple[float, ...]:
    if isinstance(noise_levels, str | bytes) or not isinstance(noise_levels, Sequence | np.ndarray):
        raise ValueError(
            f"noise_levels must be a sequence of numbers in [0, 1], got {noise_levels!r}."
        )
    levels = tuple(noise.check_level(level) for level in noise_levels)
    if not levels:
        raise ValueError("noise_levels is empty: give at least one noise level in [0, 1].")
    # A level's noise is seeded by its value, so a repeated level would count the very
    # same answers twice in the noise score.
    repeated = sorted({level for level in levels if levels.count(level) > 1})
    if repeated:
        raise ValueError(
            f"noise_levels must be distinct, got {list(levels)} (repeated: {repeated}); each "
            "level's noise is fixed by its value, so a repeat would count the same answers twice."
        )
    return levels


def positive_int(name: str, value) -> int:
    # int(2.7) would silently evaluate batches of 2; True would be a batch of 1.
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def named_data(name: str, data_dir, max_examples) -> TestData:
    descriptor = data.dataset(name)
    clean = descriptor.clean_test_set(data_dir, max_examples)
    arrays, examples = (clean, None) if isinstance(clean, tuple) else (None, clean)
    return TestData(
        name,
        descriptor.add_noise,
        descriptor.features,
        descriptor.num_classes,
        arrays=arrays,
        examples=examples,
    )


def user_data(dataset: tf.data.Dataset, noise_fn, max_examples) -> TestData:
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(
            f"A custom dataset must yield (input, label) pairs, got element spec {spec}."
        )
    if noise_fn is None:
        raise ValueError(
            "A custom dataset needs a noise_fn(inputs, eta, seed) that corrupts a batch."
        )
    label_spec = spec[1]
    if not label_spec.dtype.is_integer:
        raise ValueError(f"Labels must be integer class ids, got dtype {label_spec.dtype.name}.")
    if label_spec.shape.rank == 1:
        dataset = dataset.unbatch()  # integer labels of rank 1: a batched dataset
    elif label_spec.shape.rank != 0:
        raise ValueError(f"Labels must be class ids [] or [batch], got shape {label_spec.shape}.")
    if max_examples is not None:
        dataset = dataset.take(max_examples)
    return TestData("custom", noise_fn, None, None, examples=dataset)


def takes_example_ids(noise_fn) -> bool:
    try:
        parameters = inspect.signature(noise_fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.name == "example_ids" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
    )


@contextlib.contextmanager
def quiet_tensorflow_warnings():
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def corrupt_fn(
    test: TestData, eta: float, seed: int
) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]:
    """A graph function `(inputs, first_example_index, batch_index) -> noisy features`."""
    # Seeding by the level's value (not its position) keeps the noise of a level the
    # same whichever other levels are evaluated.
    level_seed = tf.constant([seed, round(eta * 1_000_000)], tf.int64)
    with_ids = takes_example_ids(test.noise_fn)

    @tf.function(reduce_retracing=True)
    def corrupt(inputs, first_example, batch_index):
        if with_ids:
            example_ids = first_example + tf.range(tf.shape(inputs, out_type=tf.int64)[0])
            inputs = test.noise_fn(inputs, eta, level_seed, example_ids=example_ids)
        else:
            inputs = test.noise_fn(
                inputs, eta, tf.random.experimental.stateless_fold_in(level_seed, batch_index)
            )
        return inputs if test.preprocess is None else test.preprocess(inputs)

    return corrupt


def report_name(model, model_name: str | None) -> str:
    if model_name:
        return model_name
    return str(
        getattr(model, "name", None) or getattr(model, "__name__", None) or type(model).__name__
    )


def check_outputs(outputs, num_classes: int | None, labels: np.ndarray, dataset: str) -> np.ndarray:
    outputs = np.asarray(outputs)
    if outputs.ndim != 2 or outputs.shape[0] != len(labels):
        raise ValueError(
            f"The model must output [batch, classes] logits or probabilities; for a batch of "
            f"{len(labels)} it gave shape {outputs.shape}."
        )
    width = outputs.shape[1]
    if num_classes is not None and width != num_classes:
        raise ValueError(
            f"The model outputs {width} classes but {dataset} has {num_classes} classes."
        )
    if len(labels) and labels.max() >= width:
        raise ValueError(
            f"Label {labels.max()} is out of range for a model that outputs {width} classes."
        )
    if len(labels) and labels.min() < 0:
        raise ValueError(
            f"Label {labels.min()} is negative: labels must be class ids in [0, {width})."
        )
    if np.issubdtype(outputs.dtype, np.floating) and np.isnan(outputs).any():
        bad = int(np.isnan(outputs).any(axis=1).sum())
        raise ValueError(
            f"The model output NaN for {bad} of {len(labels)} examples; expected finite logits "
            "or probabilities. A NaN output has no meaningful argmax, so no accuracy or noise "
            "score is given (is the model diverged, or its weights corrupt?)."
        )
    return outputs


def package_versions() -> dict[str, str]:
    import keras

    import sparse_keras

    return {
        "sparse_keras": sparse_keras.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": sys.version.split()[0],
    }


def feature_batches(test: TestData, eta: float, seed: int, batch_size: int):
    """Yields `(features, int64 labels)` of every test batch corrupted at level `eta`."""
    # Each level traces its own noise graph on purpose (the number of noisy pixels is a
    # static shape); TensorFlow would warn about "excessive retracing" after five.
    corrupt = corrupt_fn(test, eta, seed)
    for batch_index, (first_example, inputs, labels) in enumerate(test.raw_batches(batch_size)):
        features = corrupt(
            inputs, tf.constant(first_example, tf.int64), tf.constant(batch_index, tf.int64)
        )
        yield features, np.asarray(labels).astype(np.int64)


def check_level_total(name: str, eta: float, level_total: int, test_size: int | None) -> int:
    if level_total == 0:
        raise ValueError(f"The {name} test dataset is empty: nothing to evaluate.")
    if test_size is not None and level_total != test_size:
        raise ValueError(
            f"The dataset gave {level_total} examples at noise {eta} but {test_size} before: "
            "it must give the same examples on every pass."
        )
    return level_total


def is_named(dataset) -> bool:
    return isinstance(dataset, str) and dataset in data.DATASETS
