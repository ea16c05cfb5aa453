"""Which path runs a model during a noise evaluation: Keras's graph or the sparse path.

A noise evaluation classifies the test set once per level (MNIST: 11 x 10,000 images), so
the model's forward pass is most of its time. For a network with k-winners layers,
Keras's `top_k` selection makes its graph several times slower than the same network
made dense, while `sparse_keras.compute.sparse_inference` skips the zero activations
and masked weights (docs/performance.md). `benchmarks/noise_score.py` measures both
engines on the zoo models (`benchmarks/results/noise_score.md`): the sparse path is about
twice as fast for the sparse networks, with identical correct counts at every level; a
dense network gains nothing from it, so it stays on Keras.

Engines:

- "keras": the model's own graph (`tf.function`, `training=False`).
- "sparse": the sparse inference path (`sparse_keras.compute`); fails if the model has a
  layer it cannot compile.
- "auto" (default): "sparse" for a Keras model with at least one k-winners layer (not a
  plain ReLU) that the sparse path compiles, else "keras".

The sparse path sums in another order than TensorFlow, so a unit whose boosted value
ties the k-th winner's within float32 rounding may be kept by one path and not the other
(docs/performance.md). The first batch evaluated is therefore classified by both paths:
where any class differs, "auto" warns and evaluates with Keras, and "sparse" warns and goes
on (the caller asked for it). The engine used is recorded in the `NoiseReport`.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

ENGINES = ("auto", "keras", "sparse")


@dataclasses.dataclass
class Predictor:
    """A model's forward pass for evaluation, and how it is run.

    Attributes:
        predict: Feature batch -> `[batch, classes]` outputs.
        engine: "keras", "sparse" or "callable" (a user's function, run as given).
        requested: The engine asked for ("auto", "keras", "sparse").
        reference: For "sparse": the Keras graph, which checks the first batch.
    """

    predict: Callable[[Any], Any]
    engine: str
    requested: str = "auto"
    reference: Callable[[Any], Any] | None = None

    def check_first_batch(self, features) -> tuple[Predictor, np.ndarray]:
        """Runs the first batch; for "sparse", also through Keras, comparing classes.

        Args:
            features: The first feature batch of the evaluation.

        Returns:
            `(predictor to use from now on, outputs of this batch)`.
        """
        if self.reference is None:
            return self, np.asarray(self.predict(features))
        fast = np.asarray(self.predict(features))
        reference = np.asarray(self.reference(features))
        if fast.shape != reference.shape:
            raise RuntimeError(
                f"The sparse path gave outputs of shape {fast.shape}, Keras {reference.shape}: "
                "use engine='keras'."
            )
        differing = int(np.sum(fast.argmax(axis=-1) != reference.argmax(axis=-1)))
        if not differing:
            return dataclasses.replace(self, reference=None), fast
        if self.requested == "sparse":
            warnings.warn(
                f"The sparse path classified {differing} of the first {len(fast)} examples "
                "differently from Keras (winners tied within rounding); evaluating with the "
                "sparse path as requested.",
                stacklevel=3,
            )
            return dataclasses.replace(self, reference=None), fast
        warnings.warn(
            f"The sparse path classified {differing} of the first {len(fast)} examples "
            "differently from Keras; evaluating with Keras instead (engine='keras').",
            stacklevel=3,
        )
        return Predictor(self.reference, "keras", self.requested), reference


def keras_predict(model) -> Callable[[tf.Tensor], Any]:
    """A Keras model's inference forward pass as a graph function (`training=False`)."""

    # A graph function runs inference several times faster than eager calls;
    # training=False selects the k-winners' inference k and frozen statistics.
    @tf.function(reduce_retracing=True)
    def predict(inputs):
        return model(inputs, training=False)

    return predict


def gains_from_sparse_path(model) -> bool:
    """Whether `model` has a k-winners layer that is not a plain ReLU (see module doc)."""
    from sparse_keras.callbacks import k_winners_layers

    return any(not layer.is_relu for layer in k_winners_layers(model))


def choose(model, engine: str = "auto") -> Predictor:
    """The forward pass an evaluation uses for `model` (see the module doc).

    Args:
        model: A `keras.Model`, or a callable from a feature batch to outputs.
        engine: "auto", "keras" or "sparse".

    Returns:
        A `Predictor`.

    Raises:
        ValueError: for an unknown engine, or "sparse" with a model the sparse path
            cannot compile (naming the layer) or a plain callable.
        TypeError: if `model` is neither a Keras model nor callable.

    Example:

    >>> from sparse_keras import models
    >>> choose(models.build("mnist_sparse_cnn2", seed=0)).engine
    'sparse'
    >>> choose(models.build("mnist_dense_cnn2", seed=0)).engine
    'keras'
    """
    import keras

    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}; expected one of {ENGINES}.")
    if not isinstance(model, keras.layers.Layer):
        if not callable(model):
            raise TypeError(
                "model must be a keras.Model or a callable returning logits, got "
                f"{type(model).__name__}."
            )
        if engine == "sparse":
            raise ValueError(
                "engine='sparse' compiles a keras.Model; a plain callable is run as it is "
                "(use engine='auto' or 'keras')."
            )
        return Predictor(model, "callable", engine)
    reference = keras_predict(model)
    if engine == "keras" or (engine == "auto" and not gains_from_sparse_path(model)):
        return Predictor(reference, "keras", engine)
    from sparse_keras.compute import sparse_inference

    try:
        fast = sparse_inference(model)
    except (ValueError, ImportError) as err:
        if engine == "sparse":
            raise ValueError(f"engine='sparse' cannot run {model.name!r}: {err}") from err
        return Predictor(reference, "keras", engine)  # a layer the sparse path lacks
    return Predictor(fast, "sparse", engine, reference)
