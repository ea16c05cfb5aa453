"""`evaluate`: accuracy at each noise level and the noise score, on a named or custom dataset.

A named dataset brings its own clean test set, noise protocol and features (its
`sparse_keras.data.Dataset` descriptor); a custom `tf.data.Dataset` comes with the
caller's `noise_fn`. (`noisy_sets.noisy_test_set` draws the same noise once and keeps it.)

Noise is drawn with stateless random ops from `(seed, noise level, example index)`,
so a score is reproducible: the same seed gives the same noise whatever the batch
size or the other levels evaluated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import pathlib
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from sparse_keras import data, noise
from sparse_keras.robustness import engines
from sparse_keras.robustness.report import NoiseReport, _check_seed
from sparse_keras.zoo.resolve import resolve_model

# The paper's levels, 0.00 to 0.50 in steps of 0.05 (rounded so that they print and
# compare as written rather than as 0.15000000000000002).
DEFAULT_NOISE_LEVELS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(11))

NoiseFn = Callable[..., tf.Tensor]


@dataclasses.dataclass
class _TestData:
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


def _check_levels(noise_levels: Sequence[float]) -> tuple[float, ...]:
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


def _positive_int(name: str, value) -> int:
    # int(2.7) would silently evaluate batches of 2; True would be a batch of 1.
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _named_data(name: str, data_dir, max_examples) -> _TestData:
    descriptor = data.dataset(name)
    clean = descriptor.clean_test_set(data_dir, max_examples)
    arrays, examples = (clean, None) if isinstance(clean, tuple) else (None, clean)
    return _TestData(
        name,
        descriptor.add_noise,
        descriptor.features,
        descriptor.num_classes,
        arrays=arrays,
        examples=examples,
    )


def _user_data(dataset: tf.data.Dataset, noise_fn, max_examples) -> _TestData:
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
    return _TestData("custom", noise_fn, None, None, examples=dataset)


def _takes_example_ids(noise_fn) -> bool:
    try:
        parameters = inspect.signature(noise_fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.name == "example_ids" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
    )


@contextlib.contextmanager
def _quiet_tensorflow_warnings():
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def _corrupt_fn(
    test: _TestData, eta: float, seed: int
) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]:
    """A graph function `(inputs, first_example_index, batch_index) -> noisy features`."""
    # Seeding by the level's value (not its position) keeps the noise of a level the
    # same whichever other levels are evaluated.
    level_seed = tf.constant([seed, round(eta * 1_000_000)], tf.int64)
    with_ids = _takes_example_ids(test.noise_fn)

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


def _model_name(model, model_name: str | None) -> str:
    if model_name:
        return model_name
    return str(
        getattr(model, "name", None) or getattr(model, "__name__", None) or type(model).__name__
    )


def _check_outputs(
    outputs, num_classes: int | None, labels: np.ndarray, dataset: str
) -> np.ndarray:
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


def _versions() -> dict[str, str]:
    import keras

    import sparse_keras

    return {
        "sparse_keras": sparse_keras.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": sys.version.split()[0],
    }


def evaluate(
    model,
    dataset: str | tf.data.Dataset = "mnist",
    noise_levels: Sequence[float] = DEFAULT_NOISE_LEVELS,
    seed: int = 0,
    batch_size: int = 1000,
    data_dir: str | os.PathLike | None = None,
    noise_fn: NoiseFn | None = None,
    preprocess: Callable[[tf.Tensor], tf.Tensor] | None = None,
    progress: bool = True,
    max_examples: int | None = None,
    model_name: str | None = None,
    num_classes: int | None = None,
    engine: str = "auto",
) -> NoiseReport:
    """Accuracy at each noise level and the noise score (the paper's Fig. 5B, Tables 1-2).

    For each level, every test example is corrupted at the raw-input level, turned into
    the model's features and classified (argmax of the outputs):

    - a named dataset: its clean test set -> its noise protocol -> its features -> model
      (`sparse_keras.data.dataset(name)`: `clean_test_set`, `add_noise`, `features`).
      "mnist": test images in `[0, 1]` -> pixel noise -> normalisation; "gsc", "gsc12v2",
      "fsdd": padded 16 kHz test waveforms -> white-noise blending -> log-mel features;
    - a `tf.data.Dataset` of `(raw_input, integer_label)` (single examples or batches)
      with your `noise_fn(inputs, eta, seed)` and optional `preprocess(inputs)`.

    Noise is reproducible: the same seed gives the same noise (and score) on every run,
    whatever the batch size. A `noise_fn` that accepts `example_ids=` (as the built-in
    ones do) is given each example's index; otherwise it gets a seed per batch, and its
    noise then depends on the batch size.

    Args:
        model: A `keras.Model` (run in inference mode as a compiled graph), any
            callable mapping a feature batch to logits or probabilities `[batch, classes]`,
            or a zoo name / `.keras` path (see `load_model`).
        dataset: "mnist", "gsc", "gsc12v2" (Speech Commands v0.02 keywords: the noise
            test uses the keyword and unknown test clips, no silence), "fsdd", or a
            `tf.data.Dataset`.
        noise_levels: Levels in `[0, 1]`; default 0.00, 0.05, ..., 0.50.
        seed: Noise seed.
        batch_size: Examples per model call.
        data_dir: The named dataset's own directory (MNIST: the IDX files; GSC: the
            v0.01 tree); default `$SPARSE_KERAS_DATA/<dataset>`.
        noise_fn: Replaces the dataset's noise: `noise_fn(inputs, eta, seed)` on a batch
            of raw inputs, TF ops (it runs in `tf.data`). Required for custom datasets.
        preprocess: Replaces the dataset's feature step (TF ops, on a batch).
        progress: Show a progress bar over the levels.
        max_examples: Evaluate only the first examples (quick checks; the score is then
            not comparable with the paper's).
        model_name: Name for the report; default the model's `name`.
        num_classes: Expected output width, checked against the model (default: the
            named dataset's classes).
        engine: How a Keras model runs: "auto" (the sparse inference path for a network
            with k-winners layers, else Keras), "keras" or "sparse". The sparse path's
            classes are checked against Keras's on the first batch; see
            `sparse_keras.robustness.engines`. The report records the engine used.

    Returns:
        A `NoiseReport`.

    Raises:
        ValueError: on levels outside `[0, 1]` or repeated, an unknown dataset name or
            engine, `engine="sparse"` with a model the sparse path cannot compile,
            an empty dataset, a non-positive or non-integer `batch_size` /
            `max_examples`, labels outside `[0, classes)`, model outputs of the wrong
            shape, or NaN outputs (a model with NaN logits gets an error, never an
            accuracy; infinite logits are accepted, argmax is defined for them).
        TypeError: if `seed` is not an integer (a float or bool seed would be
            truncated into another seed's noise).

    Example:

    >>> model = sparse_keras.models.build("mnist_sparse_cnn2", seed=0)
    >>> report = evaluate(model, "mnist", noise_levels=(0.0, 0.5), max_examples=100)
    >>> report.max_score
    200
    """
    levels = _check_levels(noise_levels)
    seed = _check_seed(seed)
    if not isinstance(dataset, tf.data.Dataset) and not _is_named(dataset):
        raise ValueError(
            f"Unknown dataset {dataset!r}; expected one of {tuple(data.DATASETS)} or a "
            "tf.data.Dataset."
        )
    batch_size = _positive_int("batch_size", batch_size)
    if max_examples is not None:
        max_examples = _positive_int("max_examples", max_examples)
    if engine not in engines.ENGINES:
        raise ValueError(f"Unknown engine {engine!r}; expected one of {engines.ENGINES}.")
    if isinstance(model, str | os.PathLike):
        path = pathlib.Path(model)
        model_name = model_name or (path.stem if path.suffix == ".keras" else str(model))
        model = load_model(model)
    if isinstance(dataset, tf.data.Dataset):
        test = _user_data(dataset, noise_fn, max_examples)
    else:
        test = _named_data(dataset, data_dir, max_examples)
    test.noise_fn = noise_fn or test.noise_fn
    test.preprocess = preprocess or test.preprocess
    test.num_classes = num_classes or test.num_classes
    predictor = engines.choose(model, engine)
    first_batch = True

    from tqdm.auto import tqdm

    correct: list[int] = []
    test_size = None
    timing = {"data": 0.0, "model": 0.0}
    start = time.perf_counter()
    bar = tqdm(levels, desc=f"noise levels ({test.name})", unit="level", disable=not progress)
    with _quiet_tensorflow_warnings():
        for eta in bar:
            level_correct = level_total = 0
            tick = time.perf_counter()
            for features, labels in _feature_batches(test, eta, int(seed), int(batch_size)):
                tock = time.perf_counter()
                if first_batch:
                    predictor, outputs = predictor.check_first_batch(features)
                    first_batch = False
                else:
                    outputs = predictor.predict(features)
                outputs = _check_outputs(outputs, test.num_classes, labels, test.name)
                timing["data"] += tock - tick
                level_correct += int(np.sum(np.argmax(outputs, axis=1) == labels))
                level_total += len(labels)
                tick = time.perf_counter()
                timing["model"] += tick - tock
            test_size = _check_level_total(test.name, eta, level_total, test_size)
            correct.append(level_correct)
            bar.set_postfix(accuracy=f"{100 * level_correct / level_total:.2f}%")
    timing["total"] = time.perf_counter() - start
    return NoiseReport(
        model_name=_model_name(model, model_name),
        dataset=test.name,
        noise_levels=levels,
        correct=tuple(correct),
        test_size=test_size,
        seed=int(seed),
        timing={key: round(value, 3) for key, value in timing.items()},
        versions=_versions(),
        engine=predictor.engine,
    )


def _feature_batches(test: _TestData, eta: float, seed: int, batch_size: int):
    """Yields `(features, int64 labels)` of every test batch corrupted at level `eta`."""
    # Each level traces its own noise graph on purpose (the number of noisy pixels is a
    # static shape); TensorFlow would warn about "excessive retracing" after five.
    corrupt = _corrupt_fn(test, eta, seed)
    for batch_index, (first_example, inputs, labels) in enumerate(test.raw_batches(batch_size)):
        features = corrupt(
            inputs, tf.constant(first_example, tf.int64), tf.constant(batch_index, tf.int64)
        )
        yield features, np.asarray(labels).astype(np.int64)


def _check_level_total(name: str, eta: float, level_total: int, test_size: int | None) -> int:
    if level_total == 0:
        raise ValueError(f"The {name} test dataset is empty: nothing to evaluate.")
    if test_size is not None and level_total != test_size:
        raise ValueError(
            f"The dataset gave {level_total} examples at noise {eta} but {test_size} before: "
            "it must give the same examples on every pass."
        )
    return level_total


def load_model(name_or_path: str | os.PathLike):
    """A model from a `.keras` file or, failing that, from the model zoo by name.

    The same rule as every `sparse-keras` command's MODEL argument
    (`sparse_keras.zoo.resolve.resolve_model`).

    Args:
        name_or_path: Path to a `.keras` file, or a zoo name such as "mnist_sparse_cnn2".

    Returns:
        The `keras.Model` (not compiled).

    Raises:
        FileNotFoundError: for a model path that does not exist.
        ValueError: for a file that is not a Keras model, or an unknown zoo name.
    """
    return resolve_model(name_or_path).model


def _is_named(dataset) -> bool:
    return isinstance(dataset, str) and dataset in data.DATASETS
