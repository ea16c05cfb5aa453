"""`NoisyTestSet`: a named test set corrupted once at every noise level, kept in memory.

`noisy_test_set` draws exactly the noise `evaluate` draws with the same seed, once, so
that many models (or one model after every training epoch) are scored on it without
drawing the noise and computing the features again.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence

import numpy as np

from sparse_keras import data
from sparse_keras.robustness import _protocol as protocol
from sparse_keras.robustness import engines
from sparse_keras.robustness.report import NoiseReport, _check_seed


@dataclasses.dataclass
class NoisyTestSet:
    """A named dataset's test set, corrupted once at every noise level and kept in memory.

    Made by `noisy_test_set`. Evaluating several models (or one model after every
    training epoch) on it gives exactly the scores `evaluate` gives with the same seed,
    without drawing the noise and computing the features again each time.

    Attributes:
        dataset: The dataset's name.
        noise_levels: The levels, in order.
        features: One float32 array `(examples, *feature_shape)` per level.
        labels: int64 class ids `(examples,)`.
        seed: The noise seed.
    """

    dataset: str
    noise_levels: tuple[float, ...]
    features: list[np.ndarray]
    labels: np.ndarray
    seed: int
    num_classes: int | None = None

    def evaluate(
        self,
        model,
        batch_size: int = 1000,
        model_name: str | None = None,
        engine: str = "auto",
    ) -> NoiseReport:
        """Accuracy of `model` at every level: a `NoiseReport`, as `evaluate` returns.

        Args:
            model: A `keras.Model` or a callable from a feature batch to `[batch, classes]`
                outputs (e.g. a `sparse_keras.compute.SparseInferenceModel`).
            batch_size: Examples per model call.
            model_name: Name for the report.
            engine: "auto", "keras" or "sparse", as for `evaluate`.
        """
        batch_size = protocol.positive_int("batch_size", batch_size)
        predictor = engines.choose(model, engine)
        start = time.perf_counter()
        correct = []
        for level, features in enumerate(self.features):
            level_correct = 0
            for first in range(0, len(self.labels), int(batch_size)):
                labels = self.labels[first : first + int(batch_size)]
                batch = features[first : first + int(batch_size)]
                if level == 0 and first == 0:
                    predictor, outputs = predictor.check_first_batch(batch)
                else:
                    outputs = predictor.predict(batch)
                outputs = protocol.check_outputs(outputs, self.num_classes, labels, self.dataset)
                level_correct += int(np.sum(np.argmax(outputs, axis=1) == labels))
            correct.append(level_correct)
        return NoiseReport(
            model_name=protocol.report_name(model, model_name),
            dataset=self.dataset,
            noise_levels=self.noise_levels,
            correct=tuple(correct),
            test_size=len(self.labels),
            seed=self.seed,
            timing={"model": round(time.perf_counter() - start, 3)},
            versions=protocol.package_versions(),
            engine=predictor.engine,
        )


def noisy_test_set(
    dataset: str = "mnist",
    noise_levels: Sequence[float] = protocol.DEFAULT_NOISE_LEVELS,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    max_examples: int | None = None,
) -> NoisyTestSet:
    """Corrupts a named dataset's test set at every level once (the noise `evaluate` draws).

    Args:
        dataset: A name in `sparse_keras.data.DATASETS` ("mnist", "gsc", "gsc12v2", "fsdd").
        noise_levels: Levels in `[0, 1]`.
        seed: Noise seed; the same seed gives the same noise as `evaluate(seed=seed)`.
        data_dir: The dataset's directory (see `evaluate`).
        max_examples: Keep only the first examples.

    Returns:
        A `NoisyTestSet` (memory: levels x examples x features x 4 bytes; MNIST's 11 levels
        take 345 MB).

    Example:

    >>> test_set = noisy_test_set("mnist", noise_levels=(0.0, 0.5), max_examples=100)
    >>> model = sparse_keras.models.build("mnist_sparse_cnn2", seed=0)
    >>> test_set.evaluate(model).max_score
    200
    """
    levels = protocol.check_levels(noise_levels)
    data.dataset(dataset)  # an unknown name fails here, listing the known ones
    seed = _check_seed(seed)
    if max_examples is not None:
        max_examples = protocol.positive_int("max_examples", max_examples)
    test = protocol.named_data(dataset, data_dir, max_examples)
    features, labels, test_size = [], None, None
    with protocol.quiet_tensorflow_warnings():
        for eta in levels:
            batches = list(protocol.feature_batches(test, eta, int(seed), 1000))
            level_labels = np.concatenate([b[1] for b in batches]) if batches else np.zeros(0)
            test_size = protocol.check_level_total(test.name, eta, len(level_labels), test_size)
            features.append(np.concatenate([np.asarray(b[0], np.float32) for b in batches]))
            labels = level_labels
    return NoisyTestSet(test.name, levels, features, labels, int(seed), test.num_classes)
