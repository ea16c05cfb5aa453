"""Keras layers of sparse networks."""

from sparse_keras.layers.k_winners import KWinners
from sparse_keras.layers.sparse import SparseConv2D, SparseDense

__all__ = ["KWinners", "SparseConv2D", "SparseDense"]
