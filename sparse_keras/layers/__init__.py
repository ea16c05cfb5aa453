"""Keras layers of sparse networks."""

from sparse_keras.layers.k_winners import KWinners
from sparse_keras.layers.sparse import SparseConv2D, SparseDense
from sparse_keras.layers.winner_selection import set_winner_selection

__all__ = ["KWinners", "SparseConv2D", "SparseDense", "set_winner_selection"]
