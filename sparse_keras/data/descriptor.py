"""`Dataset`: what evaluation, export, the zoo and training need to know about one dataset.

Each dataset module (`mnist`, `gsc`, `gsc12v2`, `fsdd`) defines one `DATASET`, and
`sparse_keras.data.dataset(name)` finds it. The descriptor is the one place that says,
for its data:

- what a raw example is (`raw_input`: uint8 images, or float waveforms at a sample rate);
- how a batch of raw examples becomes the network's input, in two steps: `prepare`
  (raw -> the *signal*: `[0, 1]` pixels, or the 1-s 16 kHz clip) and `features`
  (signal -> network input: normalisation, or log-mel features). The paper's noise is
  added to the signal, between the two (`add_noise`);
- its class names, feature shape and the size of the test set the noise score counts;
- where its clean test set and its `tf.data` pipelines come from;
- what its model cards and `config.json` files say about it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class RawInput:
    """What a client holds for one example, before any preprocessing.

    Attributes:
        name: Name of the served input: "images" or "waveforms".
        shape: One example's shape; None marks a dimension of any size (audio samples).
        dtype: "uint8" (image pixels 0-255) or "float32" (waveforms in [-1, 1]).
        sample_rate: Audio: the rate, in Hz, of the waveforms `prepare` takes.
        recorded_rate: Audio: the rate the recordings have, when it differs from
            `sample_rate` (FSDD: 8 kHz, resampled to 16 kHz by its loader).
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: str
    sample_rate: int | None = None
    recorded_rate: int | None = None


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One dataset's facts and functions (see the module docstring).

    Attributes:
        name: Registry name; also the prefix of the zoo names of models trained on it.
        title: Its name in prose (model cards).
        class_names: One name per network output, in output order.
        raw_input: A `RawInput`.
        feature_shape: The network input of one example, e.g. `(28, 28, 1)`.
        test_size: Examples in the test set the noise score counts (the score's maximum
            is levels x test size); None when it depends on the copy of the data.
        prepare: TF ops, a batch of raw inputs -> the signal the noise is added to.
        features: TF ops, a batch of signals -> the network's input.
        add_noise: The paper's noise protocol for this data,
            `add_noise(signals, eta, seed=0, example_ids=None)` (see `sparse_keras.noise`).
        clean_test_set: `clean_test_set(data_dir=None, max_examples=None, download=True)`:
            the clean test examples as signals, either `(inputs, labels)` NumPy arrays or
            an unbatched `tf.data.Dataset` of `(input, label)`.
        load: The dataset module's `load(split, batch_size=None, data_dir=None, ...)`:
            `(features, label)` pipelines for training and testing.
        preprocessing: The `preprocessing` entry of a zoo model's `config.json`.
        noise_protocol: The noise protocol in one sentence (model cards).
        hub_id: The Hugging Face Hub dataset id a model card names.
        task: The Hub's task type and name, e.g. `("image-classification", "Image
            Classification")`.
        note: A paragraph model cards add, if any.
        align: Audio: where a clip shorter or longer than 1 s sits in the window, "start"
            (padded or cropped at the end) or "center"; None for images.

    Example:

    >>> mnist = sparse_keras.data.dataset("mnist")
    >>> mnist.num_classes, mnist.feature_shape, mnist.test_size
    (10, (28, 28, 1), 10000)
    >>> mnist.preprocess(np.zeros([2, 28, 28], np.uint8)).shape
    TensorShape([2, 28, 28, 1])
    """

    name: str
    title: str
    class_names: tuple[str, ...]
    raw_input: RawInput
    feature_shape: tuple[int, ...]
    test_size: int | None
    prepare: Callable[[Any], Any]
    features: Callable[[Any], Any]
    add_noise: Callable[..., Any]
    clean_test_set: Callable[..., Any]
    load: Callable[..., Any]
    preprocessing: Mapping[str, Any]
    noise_protocol: str
    hub_id: str
    task: tuple[str, str]
    note: str | None = None
    align: str | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes (network outputs)."""
        return len(self.class_names)

    def preprocess(self, raw):
        """A batch of raw inputs -> the network's input: `features(prepare(raw))`."""
        return self.features(self.prepare(raw))
