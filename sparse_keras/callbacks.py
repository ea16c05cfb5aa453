"""Training callbacks for models with `KWinners` layers."""

from __future__ import annotations

import keras

from sparse_keras import metrics
from sparse_keras.layers.k_winners import KWinners


def k_winners_layers(model: keras.Model) -> list[KWinners]:
    """All `KWinners` layers of a model, nested models included, in order."""
    return [
        layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, KWinners)
    ]


class BoostDecay(keras.callbacks.Callback):
    """Sets every `KWinners` boost strength to `beta_0 * factor ** epoch` before each epoch.

    After each epoch (the last one included) the strength steps on to
    `beta_0 * factor ** (epoch + 1)`, as the authors' released code decays it in
    `postEpoch`: a model trained for `E` epochs is then evaluated, saved and exported with
    `beta_0 * factor ** E`. Keras runs `validation_data` *before* this step, so validation
    inside `fit` sees the epoch's own strength; evaluate after `fit` to match the
    released code's per-epoch test.

    The value is derived from the epoch number and each layer's initial boost strength
    (`KWinners(boost_strength=...)`), never from counting calls, so a run resumed at
    epoch `e` (e.g. with `BackupAndRestore` or `initial_epoch=e`) trains with exactly
    the boost strength of an uninterrupted run.

    Args:
        factor: Decay factor per epoch in (0, 1]. `None` uses each layer's own
            `boost_strength_factor`.

    Example:

    >>> model.fit(x, y, epochs=10, callbacks=[BoostDecay(0.85)])  # doctest: +SKIP
    """

    def __init__(self, factor: float | None = None):
        super().__init__()
        if factor is not None:
            from sparse_keras.validation import fraction

            factor = fraction("factor", factor)
        self.factor = factor

    def _set(self, epoch: int) -> None:
        for layer in k_winners_layers(self.model):
            factor = self.factor if self.factor is not None else layer.boost_strength_factor
            layer.boost_strength.assign(layer.initial_boost_strength * factor**epoch)

    def on_epoch_begin(self, epoch, logs=None):
        self._set(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            # The strength this epoch trained with, before the step below.
            for layer in k_winners_layers(self.model):
                logs[f"{layer.name}/boost_strength"] = float(layer.boost_strength.numpy())
        self._set(epoch + 1)


class DutyCycleMonitor(keras.callbacks.Callback):
    """Logs each `KWinners` layer's duty-cycle entropy after every epoch.

    Adds `<layer>/entropy` (bits) and `<layer>/entropy_fraction` (of the maximum
    `n * H2(k / n)`) to the epoch logs, so they appear in `History` and, when this
    callback comes before `keras.callbacks.TensorBoard` in the list, in TensorBoard.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for layer in k_winners_layers(self.model):
            if layer.is_relu:
                continue
            logs[f"{layer.name}/entropy"] = metrics.duty_cycle_entropy(layer)
            logs[f"{layer.name}/entropy_fraction"] = metrics.entropy_fraction(layer)
