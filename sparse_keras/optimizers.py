"""SGD with PyTorch's update rule: coupled L2 weight decay and a learning-rate-free momentum."""

from __future__ import annotations

import numbers

import keras
from keras import ops

from sparse_keras import validation


@keras.saving.register_keras_serializable(package="sparse_keras")
class CoupledSGD(keras.optimizers.SGD):
    """Stochastic gradient descent exactly as `torch.optim.SGD` (no dampening, no Nesterov).

    Per trainable variable `w` with gradient `g`, learning rate `lr`, momentum `mu` and
    coupled weight decay `wd`:

        d = g + wd * w          # the decay joins the gradient, before momentum
        buf = mu * buf + d      # buf starts at 0; with mu = 0, buf = d
        w = w - lr * buf

    Two differences from `keras.optimizers.SGD` matter for reproducing the paper:

    - Keras's `weight_decay` is *decoupled* (`w -= lr * wd * w` outside the momentum), so
      at momentum 0.9 it is ten times weaker than PyTorch's at the same value.
    - Keras folds the learning rate into its momentum buffer (`m = mu * m - lr * g`), so
      when the learning rate steps down between epochs the old, larger rate keeps acting
      through the buffer for a few dozen steps; PyTorch applies the new rate to the whole
      buffer at once.

    The decay applies to every trainable variable, biases included, as PyTorch's does
    when the optimizer is given `model.parameters()`. Non-trainable state (sparse-weight
    masks, duty cycles, batch-norm statistics) is untouched.

    Args:
        learning_rate: Float, schedule or callable, as for `keras.optimizers.SGD`.
        momentum: Momentum `mu >= 0`.
        coupled_weight_decay: L2 coefficient `wd >= 0` added to the gradient.
        **kwargs: Other `keras.optimizers.Optimizer` arguments (`name`, `clipnorm`, ...).
            Keras's own decoupled `weight_decay` and `nesterov` are refused: mixing the two
            kinds of decay is almost always a mistake.

    Example:

    >>> opt = CoupledSGD(learning_rate=0.1, momentum=0.9, coupled_weight_decay=0.01)
    >>> w = keras.Variable([1.0])
    >>> opt.apply([keras.ops.convert_to_tensor([0.5])], [w])
    >>> round(float(w.numpy()[0]), 6)  # 1 - 0.1 * (0.5 + 0.01 * 1)
    0.949
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum: float = 0.0,
        coupled_weight_decay: float = 0.0,
        **kwargs,
    ):
        for refused in ("weight_decay", "nesterov"):
            if kwargs.get(refused):
                raise ValueError(
                    f"CoupledSGD does not take {refused}={kwargs[refused]!r}: use "
                    "coupled_weight_decay (PyTorch's L2), or keras.optimizers.SGD for Keras's "
                    "decoupled decay or Nesterov momentum."
                )
            kwargs.pop(refused, None)
        if isinstance(learning_rate, numbers.Real):
            # A schedule or a variable is Keras's to check; a plain number is ours.
            validation.number_at_least("learning_rate", learning_rate, 0.0)
        momentum = validation.number_at_least("momentum", momentum, 0.0)
        decay = validation.number_at_least("coupled_weight_decay", coupled_weight_decay, 0.0)
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)
        self.coupled_weight_decay = decay

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.coupled_weight_decay:
            decay = ops.cast(self.coupled_weight_decay, variable.dtype)
            gradient = ops.add(gradient, ops.multiply(variable, decay))
        if self.momentum == 0:
            self.assign_sub(variable, ops.multiply(gradient, learning_rate))
            return
        buffer = self.momentums[self._get_variable_index(variable)]
        momentum = ops.cast(self.momentum, variable.dtype)
        self.assign(buffer, ops.add(ops.multiply(buffer, momentum), gradient))
        self.assign_sub(variable, ops.multiply(buffer, learning_rate))

    def get_config(self):
        config = super().get_config()
        config.pop("nesterov", None)
        config.pop("weight_decay", None)
        config["coupled_weight_decay"] = self.coupled_weight_decay
        return config
