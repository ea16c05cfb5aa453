"""sparse_keras: the sparse networks of "How Can We Be So Dense?" as Keras 3 layers and models."""

__version__ = "0.1.0"

from sparse_keras import constraints, metrics  # noqa: E402
from sparse_keras.callbacks import BoostDecay, DutyCycleMonitor  # noqa: E402
from sparse_keras.constraints import FixedMask  # noqa: E402
from sparse_keras.layers import KWinners, SparseConv2D, SparseDense  # noqa: E402

__all__ = [
    "BoostDecay",
    "DutyCycleMonitor",
    "FixedMask",
    "KWinners",
    "SparseConv2D",
    "SparseDense",
    "constraints",
    "metrics",
]
