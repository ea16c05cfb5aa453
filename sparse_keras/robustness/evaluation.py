"""`evaluate`: accuracy at each noise level and the noise score, on a named or custom dataset.

A named dataset brings its own clean test set, noise protocol and features (its
`sparse_keras.data.Dataset` descriptor); a custom `tf.data.Dataset` comes with the
caller's `noise_fn`. (`noisy_sets.noisy_test_set` draws the same noise once and keeps it.)

Noise is drawn with stateless random ops from `(seed, noise level, example index)`,
so a score is reproducible: the same seed gives the same noise whatever the batch
size or the other levels evaluated.
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from sparse_keras import data
from sparse_keras.robustness import _protocol as protocol
from sparse_keras.robustness import engines
from sparse_keras.robustness.report import NoiseReport, _check_seed
from sparse_keras.zoo.resolve import resolve_model

DEFAULT_NOISE_LEVELS = protocol.DEFAULT_NOISE_LEVELS


def evaluate(
    model,
    dataset: str | tf.data.Dataset = "mnist",
    noise_levels: Sequence[float] = DEFAULT_NOISE_LEVELS,
    seed: int = 0,
    batch_size: int = 1000,
    data_dir: str | os.PathLike | None = None,
    noise_fn: protocol.NoiseFn | None = None,
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
    levels = protocol.check_levels(noise_levels)
    seed = _check_seed(seed)
    if not isinstance(dataset, tf.data.Dataset) and not protocol.is_named(dataset):
        raise ValueError(
            f"Unknown dataset {dataset!r}; expected one of {tuple(data.DATASETS)} or a "
            "tf.data.Dataset."
        )
    batch_size = protocol.positive_int("batch_size", batch_size)
    if max_examples is not None:
        max_examples = protocol.positive_int("max_examples", max_examples)
    if engine not in engines.ENGINES:
        raise ValueError(f"Unknown engine {engine!r}; expected one of {engines.ENGINES}.")
    if isinstance(model, str | os.PathLike):
        path = pathlib.Path(model)
        model_name = model_name or (path.stem if path.suffix == ".keras" else str(model))
        model = load_model(model)
    if isinstance(dataset, tf.data.Dataset):
        test = protocol.user_data(dataset, noise_fn, max_examples)
    else:
        test = protocol.named_data(dataset, data_dir, max_examples)
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
    with protocol.quiet_tensorflow_warnings():
        for eta in bar:
            level_correct = level_total = 0
            tick = time.perf_counter()
            for features, labels in protocol.feature_batches(test, eta, int(seed), int(batch_size)):
                tock = time.perf_counter()
                if first_batch:
                    predictor, outputs = predictor.check_first_batch(features)
                    first_batch = False
                else:
                    outputs = predictor.predict(features)
                outputs = protocol.check_outputs(outputs, test.num_classes, labels, test.name)
                timing["data"] += tock - tick
                level_correct += int(np.sum(np.argmax(outputs, axis=1) == labels))
                level_total += len(labels)
                tick = time.perf_counter()
                timing["model"] += tick - tock
            test_size = protocol.check_level_total(test.name, eta, level_total, test_size)
            correct.append(level_correct)
            bar.set_postfix(accuracy=f"{100 * level_correct / level_total:.2f}%")
    timing["total"] = time.perf_counter() - start
    return NoiseReport(
        model_name=protocol.report_name(model, model_name),
        dataset=test.name,
        noise_levels=levels,
        correct=tuple(correct),
        test_size=test_size,
        seed=int(seed),
        timing={key: round(value, 3) for key, value in timing.items()},
        versions=protocol.package_versions(),
        engine=predictor.engine,
    )


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
