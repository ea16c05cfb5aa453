"""The one "zoo name or model file -> model" rule.

A model argument is a `.keras` file (or a legacy `.h5` model file), a zoo name such
as "mnist_sparse_cnn2", or, where the caller allows it, a `sparse_keras.models`
network name built fresh. `resolve_model` decides which, in that order, and loads it.
Every `sparse-keras` command's MODEL argument goes through it, and so does
`sparse_keras.robustness.evaluate` (`robustness.load_model`) for a model given by name.

Example:

>>> resolved = resolve_model("mnist_sparse_cnn2", networks=True)
>>> resolved.source, resolved.model.name
('network', 'mnist_sparse_cnn2')
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import keras

import sparse_keras.layers  # noqa: F401  (registers the custom layers for loading)
from sparse_keras import models
from sparse_keras.zoo import hub

MODEL_FILE_SUFFIXES = (".keras", ".h5")


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    """A loaded model and what its argument said about it.

    Attributes:
        model: The `keras.Model`.
        name: Zoo or network name, or the file's stem.
        dataset: The dataset a zoo model was trained on; None for files and fresh networks.
        source: "file", "zoo" or "network".
    """

    model: Any
    name: str
    dataset: str | None
    source: str


def _is_file_argument(spec: str, path: pathlib.Path) -> bool:
    return path.suffix in MODEL_FILE_SUFFIXES or path.exists() or os.sep in spec or "/" in spec


def resolve_model(
    spec: str | os.PathLike,
    *,
    networks: bool = False,
    seed: int = 0,
) -> ResolvedModel:
    """Loads the model a command-line MODEL argument names.

    Args:
        spec: A path to a `.keras` (or `.h5`) model file, a zoo name, or (with
            `networks`) a `sparse_keras.models` network name.
        networks: Build a `sparse_keras.models` network name fresh (untrained, masks
            from `seed`) instead of loading it from the zoo.
        seed: Mask seed of freshly built networks.

    Returns:
        A `ResolvedModel`.

    Raises:
        FileNotFoundError: a model path that does not exist.
        IsADirectoryError: a path that is a folder (e.g. a SavedModel export).
        ValueError: a file that is not a Keras model file, or an unknown zoo name
            (the message lists the known ones).
        sparse_keras.zoo.WeightsNotAvailableError, sparse_keras.zoo.ChecksumError:
            as `sparse_keras.zoo.load` raises them.
    """
    text = os.fspath(spec)
    path = pathlib.Path(text).expanduser()
    if _is_file_argument(text, path):
        if path.is_dir():
            raise IsADirectoryError(
                f"Model {text!r} is a folder; expected a .keras file saved with "
                "model.save('name.keras') or a zoo name."
            )
        if not path.is_file():
            raise FileNotFoundError(
                f"Model file {text!r} not found (expected a .keras file or a zoo name)."
            )
        if path.suffix not in MODEL_FILE_SUFFIXES:
            raise ValueError(
                f"{text!r} is a file but not a Keras model file (.keras or .h5); save models "
                "with model.save('name.keras')."
            )
        model = keras.saving.load_model(path, compile=False)
        return ResolvedModel(model, path.stem, None, "file")
    if networks and text in models.list_models():
        return ResolvedModel(models.build(text, seed=seed), text, None, "network")
    dataset = hub.info(text)["dataset"]  # unknown names fail here, before any download
    return ResolvedModel(hub.load(text), text, dataset, "zoo")


__all__ = ["MODEL_FILE_SUFFIXES", "ResolvedModel", "resolve_model"]
