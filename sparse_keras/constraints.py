"""The kernel constraint that keeps masked weights at exactly zero."""

from __future__ import annotations

import keras


class FixedMask(keras.constraints.Constraint):
    """Multiplies a weight by a fixed 0/1 mask after every optimizer update.

    Keras applies a variable's constraint right after each optimizer step, which is
    exactly when a sparse layer must re-zero the weights that its mask removes:
    without it, momentum or Adam would move them away from zero.

    Args:
        mask: Tensor or variable of the weight's shape, 1 where a weight is kept and
            0 where it is removed. A variable is read at every call, so the
            constraint follows a mask that is restored from a checkpoint.
        inner: Optional constraint applied before masking (a user's own
            `kernel_constraint`, e.g. `keras.constraints.MaxNorm`).

    Example:

    >>> mask = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> FixedMask(mask)(np.ones((2, 2), "float32")).numpy()
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    """

    def __init__(self, mask, inner: keras.constraints.Constraint | None = None):
        self.mask = mask
        self.inner = keras.constraints.get(inner)

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        return w * keras.ops.cast(self.mask, w.dtype)

    def get_config(self):
        # The mask is layer state (saved as a weight), not configuration: a layer
        # that owns a FixedMask serialises only the inner constraint.
        return {"inner": keras.constraints.serialize(self.inner) if self.inner else None}
