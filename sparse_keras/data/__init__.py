"""The paper's datasets (MNIST, Google Speech Commands), Speech Commands v0.02 and FSDD.

Each dataset module reads its files, builds its `tf.data` pipelines and defines one
`Dataset` descriptor (`DATASET`): class names, raw input, preprocessing, noise protocol,
test-set size. `dataset(name)` returns it; `DATASETS` maps every name to its descriptor.

>>> sparse_keras.data.dataset("gsc").class_names[:3]
('unknown', 'silence', 'zero')
>>> list(sparse_keras.data.DATASETS)
['mnist', 'gsc', 'gsc12v2', 'fsdd']
"""

from __future__ import annotations

from sparse_keras.data import fsdd, gsc, gsc12v2, mnist
from sparse_keras.data.descriptor import Dataset, RawInput

DATASETS: dict[str, Dataset] = {
    descriptor.name: descriptor
    for descriptor in (mnist.DATASET, gsc.DATASET, gsc12v2.DATASET, fsdd.DATASET)
}


def dataset(name: str) -> Dataset:
    """The descriptor of the dataset called `name`.

    Args:
        name: "mnist", "gsc", "gsc12v2" or "fsdd" (the keys of `DATASETS`).

    Returns:
        Its `Dataset`.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if isinstance(name, str) and name in DATASETS:
        return DATASETS[name]
    raise ValueError(f"Unknown dataset {name!r}; expected one of {tuple(DATASETS)}.")


def for_model(model_name: str, feature_shape: tuple[int, ...] | None = None) -> Dataset | None:
    """The dataset a model's name says it was trained on, if any.

    Zoo names start with their dataset (`<dataset>_<variant>_cnn<n>`, e.g.
    "gsc12v2_sparse_cnn2"); the longest dataset name the model name starts with wins.

    Args:
        model_name: A zoo name, network name or model file stem.
        feature_shape: Consider only datasets with this feature shape (without batch).

    Returns:
        The `Dataset`, or None if no known dataset name starts the model name.

    Example:

    >>> sparse_keras.data.for_model("gsc12v2_sparse_cnn2").name
    'gsc12v2'
    >>> print(sparse_keras.data.for_model("my_model"))
    None
    """
    matches = [
        descriptor
        for descriptor in DATASETS.values()
        if str(model_name).startswith(descriptor.name)
        and (feature_shape is None or tuple(feature_shape) == tuple(descriptor.feature_shape))
    ]
    return max(matches, key=lambda descriptor: len(descriptor.name), default=None)


__all__ = ["DATASETS", "Dataset", "RawInput", "dataset", "for_model"]
