"""Data shipped inside the package, so the README's main job runs without network.

- `mnist/`: the MNIST test set (10,000 images and labels) as the original gzipped IDX
  files, byte-identical to the canonical distribution (sha256 in
  `sparse_keras.data.mnist.SHA256`); see `mnist/README.md` for attribution and license.
- `zoo/<name>/`: `config.json` and `model.weights.h5` of the two README models, byte
  copies of the checkout's `zoo/<name>/` files, verified against the zoo registry's
  sha256s like any Hub download. `python -m training.publish embed` (run by `package`
  for these names) refreshes them; a test checks they equal the registry's.

Nothing here imports anything: the data and zoo modules ask this one where the files are.
"""

from __future__ import annotations

import pathlib

EMBEDDED_DIR = pathlib.Path(__file__).resolve().parent
MNIST_DIR = EMBEDDED_DIR / "mnist"
ZOO_DIR = EMBEDDED_DIR / "zoo"
# The models the README runs; every other zoo model comes from the Hub (or a local copy).
EMBEDDED_MODELS = ("mnist_sparse_cnn2", "mnist_dense_cnn2")
# The MNIST files shipped: the test split only (the training images are 9.9 MB).
MNIST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def model_dir(name: str) -> pathlib.Path | None:
    """The embedded copy's folder of zoo model `name`, or None if it is not shipped."""
    folder = ZOO_DIR / name
    return folder if name in EMBEDDED_MODELS and folder.is_dir() else None
