"""Pretrained sparse networks from the Hugging Face Hub, verified and loaded as Keras models.

>>> import sparse_keras.zoo
>>> sparse_keras.zoo.list_models()  # doctest: +SKIP
>>> model = sparse_keras.zoo.load("mnist_sparse_cnn2")  # doctest: +SKIP

The registry (`registry.json`, package data) pins each model's Hub repository, revision
and file checksums. `load` downloads through the Hub cache, refuses any file whose sha256
differs, builds the network from its config (no code or pickles are downloaded) and
loads the weights; without the Hub it falls back to a local copy (`$SPARSE_KERAS_ZOO_DIR`,
the checkout's `zoo/`, or the copy of the README models shipped in the package).
`check` validates a zoo folder; making and publishing folders is maintainer tooling
(`python -m training.publish`, `training/packaging.py`).
"""

from sparse_keras.zoo.hub import (
    ChecksumError,
    WeightsNotAvailableError,
    fetch,
    info,
    list_models,
    load,
)
from sparse_keras.zoo.checks import ZooCheckError, check

__all__ = [
    "ChecksumError",
    "WeightsNotAvailableError",
    "ZooCheckError",
    "check",
    "fetch",
    "info",
    "list_models",
    "load",
]
