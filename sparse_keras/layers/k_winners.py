"""The k-winners-take-all activation with boosting (Algorithm 1 of the paper)."""

from __future__ import annotations

import math
import numbers

import keras
import tensorflow as tf

from sparse_keras import validation
from sparse_keras.layers import winner_selection

# Boosting state stays float32 under float16 / mixed precision: duty cycles change by
# about 1/duty_cycle_period per step, below float16 resolution near 1.
# The state keeps Keras's default aggregation "none": under a tf.distribute strategy a
# replica-context assign then writes only that replica's copy, which is right because
# every replica assigns the same value computed from all-reduced counts
# (`_sum_over_replicas`). "sum" would multiply the new value by the number of replicas;
# "mean" and "only_first_replica" would add a reduction or broadcast per variable and step.
_STATE = {"dtype": "float32", "autocast": False}

# The largest boost strength accepted. Boost factors are exp(beta * (k/n - d)) with
# k/n - d in [-1, 1], so they stay within exp(+-20) ~ 4.9e8^(+-1): the boosted
# activity b * y stays finite in float32 for any |y| < 6.9e29, and a unit whose
# duty cycle is 0 still differs from one at 1 by a finite factor. Beyond ~88,
# exp(beta) overflows float32 to inf; inf * 0 is NaN and winners are then chosen by
# position. The paper uses 1.0-1.5.
MAX_BOOST_STRENGTH = 20.0


@keras.saving.register_keras_serializable(package="sparse_keras")
class KWinners(keras.layers.Layer):
    """Keeps the k most active units of each sample and zeroes the rest.

    Winners are the top-k of the *boosted* activity `b * y`, where
    `b_i = exp(boost_strength * (k / n - d_i))` and `d_i` is unit `i`'s duty cycle
    (the running fraction of samples in which it won). Boosting only chooses the
    winners: the output keeps the un-boosted values `y` at the winners (they may be
    negative: there is no ReLU inside) and 0 elsewhere, so gradients flow to the
    winners only.

    Rank-2 inputs `(batch, units)` compete over the `units` values of a sample.
    Rank-4 inputs `(batch, height, width, channels)` (channels-last, as after a
    convolution and max-pooling) compete globally over all `height * width * channels`
    values of a sample, and keep one duty cycle per channel: a winner at any position
    of channel `c` counts `1 / (height * width)` towards `d_c`, and every position of
    channel `c` is boosted with `d_c`.

    During training (`training=True` and the layer is trainable) the duty cycles are
    updated after each batch of `B` samples:
    `period = min(duty_cycle_period, samples_seen)` and
    `d <- (d * (period - B) + count) / period`, where `count_i` is the number of
    samples of the batch in which unit `i` is a winner with a positive output (as
    in the authors' code, which counts `output > 0`). At inference
    `round(k * k_inference_factor)` winners are kept (at most `n`), with the duty
    cycles frozen. A layer with `trainable = False` behaves as at inference, as
    `BatchNormalization` does: its duty cycles stay frozen while the rest of a
    model is fine-tuned.

    Duty cycles, the current boost strength and the number of samples seen are
    non-trainable weights: they are saved and restored with the model. The boost
    strength decays per epoch through `sparse_keras.callbacks.BoostDecay`.

    Under a `tf.distribute` strategy (`MirroredStrategy`,
    `MultiWorkerMirroredStrategy`; build the model inside `strategy.scope()`) each
    replica picks the winners of its own shard, then the replicas sum their winner
    counts and batch sizes (one small all-reduce per layer and step), so the duty
    cycles and the number of samples seen are those of the whole global batch,
    identical on every replica and equal to a single device's. Without a strategy
    this adds nothing to the training step.

    If `k >= n` the layer is a plain ReLU (the paper's "100%" rows).

    An input holding NaN or Inf (a diverged network, or bad data) raises
    `tf.errors.InvalidArgumentError` naming the layer, in eager and graph mode, in
    training and at inference: top-k over NaN values would otherwise return NaN
    "winners" chosen by position. Under XLA (`jit_compile=True`) TensorFlow compiles
    this check away, so there a NaN input gives NaN outputs (and a NaN loss, which
    `keras.callbacks.TerminateOnNaN` stops on).
    The CPU kernel (below) checks its inputs in the kernel, with the same error;
    TensorFlow's `check_numerics`, used everywhere else, also checks the gradient
    flowing back through the layer.

    On a machine without GPU or TPU, float32 training calls find their winners with
    a CPU kernel instead of `tf.math.top_k` (the same winners, several times faster;
    see `sparse_keras.layers.winner_selection`); inference always uses `top_k`.

    Args:
        k: Number of winners per sample during training, a positive integer.
        k_inference_factor: Winners at inference are `round(k * k_inference_factor)`,
            capped at `n`. At least 1. Default 1.5 (the paper's).
        boost_strength: Initial boost strength, `0 <= beta <= MAX_BOOST_STRENGTH`
            (20: larger values overflow the boost factors `exp(beta * (k/n - d))` in
            float32 for ordinary activations); 0 disables boosting.
        boost_strength_factor: Factor in (0, 1] by which `BoostDecay` multiplies the
            boost strength after every epoch, if the callback is not given its own.
        duty_cycle_period: Length (in samples) of the duty-cycle running average.
        **kwargs: Base `Layer` arguments (`name`, `dtype`, ...).

    Input shape:
        `(batch, units)` or `(batch, height, width, channels)`.

    Output shape:
        Same as the input.

    Example:

    >>> layer = KWinners(k=2, k_inference_factor=1.0)
    >>> layer(np.array([[0.1, 0.9, 0.3, 0.5]], "float32")).numpy()
    array([[0. , 0.9, 0. , 0.5]], dtype=float32)
    """

    def __init__(
        self,
        k: int,
        k_inference_factor: float = 1.5,
        boost_strength: float = 1.5,
        boost_strength_factor: float = 1.0,
        duty_cycle_period: int = 1000,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.k = validation.positive_int("k", k)
        self.k_inference_factor = validation.number_at_least(
            "k_inference_factor", k_inference_factor, 1.0
        )
        self.initial_boost_strength = validation.number_at_least(
            "boost_strength", boost_strength, 0.0
        )
        if self.initial_boost_strength > MAX_BOOST_STRENGTH:
            raise ValueError(
                f"boost_strength must be <= {MAX_BOOST_STRENGTH} (larger values overflow the "
                f"boost factors exp(boost_strength * (k/n - duty_cycle)) in float32), got "
                f"{boost_strength!r}. The paper uses 1.0-1.5."
            )
        self.boost_strength_factor = validation.fraction(
            "boost_strength_factor", boost_strength_factor
        )
        self.duty_cycle_period = validation.positive_int("duty_cycle_period", duty_cycle_period)
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        if rank not in (2, 4):
            raise ValueError(
                f"KWinners expects a rank-2 (batch, units) or rank-4 (batch, height, width, "
                f"channels) input, got shape {tuple(input_shape)} (rank {rank})."
            )
        if any(dim is None for dim in input_shape[1:]):
            raise ValueError(
                f"KWinners needs every non-batch dimension known, got input shape {tuple(input_shape)}."
            )
        self.input_spec = keras.layers.InputSpec(
            ndim=rank, axes={axis: int(input_shape[axis]) for axis in range(1, rank)}
        )
        self.units = math.prod(input_shape[1:])
        # Positions that share one duty cycle: 1 for dense input, height * width for conv.
        self.positions_per_unit = 1 if rank == 2 else input_shape[1] * input_shape[2]
        duty_shape = (input_shape[-1],)
        self.duty_cycles = self.add_weight(
            name="duty_cycles", shape=duty_shape, initializer="zeros", trainable=False, **_STATE
        )
        self.boost_strength = self.add_weight(
            name="boost_strength",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_boost_strength),
            trainable=False,
            **_STATE,
        )
        # Only ever compared with duty_cycle_period, so float32 rounding of very large
        # counts cannot change the period.
        self.samples_seen = self.add_weight(
            name="samples_seen", shape=(), initializer="zeros", trainable=False, **_STATE
        )
        self.k_inference = min(self.units, round(self.k * self.k_inference_factor))
        self.target_density = min(self.k, self.units) / self.units
        self.is_relu = self.k >= self.units

    @property
    def density(self) -> float:
        """Fraction of units kept per sample during training, `k / n`."""
        return self.target_density

    def boost_factors(self) -> tf.Tensor:
        """Per-unit (or per-channel) boost factors `exp(beta * (k / n - d))`."""
        return tf.exp(self.boost_strength * (self.target_density - self.duty_cycles))

    def call(self, inputs, training=None):
        if not inputs.dtype.is_floating:
            raise TypeError(
                f"KWinners layer {self.name!r} expects float inputs (activations), got dtype "
                f"{inputs.dtype.name}. Cast them, e.g. keras.ops.cast(x, 'float32')."
            )
        message = (
            f"KWinners layer {self.name!r} got NaN or Inf inputs (a diverged network, e.g. "
            "too high a learning rate, or non-finite data); it cannot choose winners among them"
        )
        training = bool(training) and self.trainable
        if self.is_relu or not (training and winner_selection.use_cpu_kernel(inputs)):
            return self._call_tf(tf.debugging.check_numerics(inputs, message), training)
        # Same winners as _call_tf's, in a fraction of top_k's time (see winner_selection).
        # The kernel checks the inputs itself: TF's check_numerics costs an extra pass
        # forward and another over the gradient, 5% of a batch-64 MNIST Sparse CNN-2 step.
        if _replicas_to_sum():
            mask, count, batch = winner_selection.cpu_winner_mask(
                inputs, self.boost_factors(), self.k, message
            )
            self._fold_counts(count, batch)
            return inputs * mask
        # One replica: the kernel call also computes the new duty cycles, exactly as
        # update_duty_cycles would (its batch size cannot be negative).
        mask, duty_cycles, samples_seen = winner_selection.cpu_winners_and_duty_cycles(
            inputs,
            self.boost_factors(),
            self.k,
            self.duty_cycles,
            self.samples_seen,
            self.duty_cycle_period,
            message,
        )
        self.samples_seen.assign(samples_seen)
        self.duty_cycles.assign(duty_cycles)
        return inputs * mask

    def _call_tf(self, inputs, training):
        """ReLU, or the winners found by `tf.math.top_k` (and the duty-cycle update)."""
        if self.is_relu:
            return tf.nn.relu(inputs)
        k = self.k if training else self.k_inference
        if k >= self.units:
            winners_only = inputs
        else:
            mask = self._winner_mask(inputs, k)
            winners_only = inputs * tf.cast(mask, inputs.dtype)
        if training:
            self._update_duty_cycles(winners_only)
        return winners_only

    def _winner_mask(self, inputs, k):
        """Boolean mask of exactly k winners per sample (ties broken by position)."""
        boosted = tf.cast(tf.stop_gradient(inputs), "float32") * self.boost_factors()
        flat = tf.reshape(boosted, (-1, self.units))
        # Only the k-th largest value is needed: thresholding at it is much cheaper
        # than scattering the top-k indices back into a mask (top_k itself dominates).
        top_values, _ = tf.math.top_k(flat, k=k, sorted=False)
        threshold = tf.reduce_min(top_values, axis=1, keepdims=True)
        at_least = flat >= threshold

        def break_ties():
            # Values equal to the threshold (e.g. constant background after a
            # convolution) would give more than k winners: keep the first ones.
            above = flat > threshold
            tied = tf.equal(flat, threshold)
            room = k - tf.reduce_sum(tf.cast(above, tf.int32), axis=1, keepdims=True)
            return above | (tied & (tf.cumsum(tf.cast(tied, tf.int32), axis=1) <= room))

        too_many = tf.reduce_any(tf.reduce_sum(tf.cast(at_least, tf.int32), axis=1) > k)
        mask = tf.cond(too_many, break_ties, lambda: at_least)
        return tf.reshape(mask, tf.shape(inputs))

    def _update_duty_cycles(self, outputs):
        active = tf.cast(outputs > 0, "float32")
        reduce_axes = [0] if len(outputs.shape) == 2 else [0, 1, 2]
        batch = tf.cast(tf.shape(outputs)[0], "float32")
        self._fold_counts(tf.reduce_sum(active, axis=reduce_axes), batch)

    def _fold_counts(self, count, batch):
        """Folds per-channel winner counts (summed over the batch and positions) in."""
        # Whole winner counts: exact in float32 whatever order replicas add them in,
        # so the division below gives the same bits as on one device.
        count, batch = _sum_over_replicas(count, batch)
        # A multiply by the float32 reciprocal: what TF's graph optimiser makes of a
        # division by a constant anyway, and now eager mode and the CPU kernel's fused
        # update (winner_selection.cpu_winners_and_duty_cycles) compute the same bits.
        self.update_duty_cycles(
            count * winner_selection.per_unit_reciprocal(self.positions_per_unit), batch
        )

    def update_duty_cycles(self, count, batch_size):
        """Folds one batch's winner counts into the duty cycles (SPEC §2).

        Public so that distributed training can pass counts summed over replicas.
        Under a `tf.distribute` strategy each replica updates its own copy of the
        state (the variables have no cross-replica aggregation), so in a replica
        context every replica must pass the same global `count` and `batch_size`;
        `call` does this itself by summing its counts over all replicas first.

        Args:
            count: Float tensor of shape `duty_cycles.shape`: per unit, the number of
                samples of the batch in which it won (conv: divided by height * width).
            batch_size: Number of samples the counts were taken over, `>= 0` (a
                Python number is checked at once, a tensor when the graph runs).

        Raises:
            ValueError: if `batch_size` is a negative or non-finite Python number, or
                `count` has another shape than `duty_cycles`.
            tf.errors.InvalidArgumentError: if a tensor `batch_size` is negative.
        """
        is_number = isinstance(batch_size, numbers.Real)
        if isinstance(batch_size, bool) or (is_number and not 0 <= batch_size < math.inf):
            raise ValueError(f"batch_size must be a number of samples >= 0, got {batch_size!r}.")
        count_shape = getattr(count, "shape", None)
        if count_shape is not None and tuple(count_shape) != tuple(self.duty_cycles.shape):
            raise ValueError(
                f"count must have the duty cycles' shape {tuple(self.duty_cycles.shape)}, got "
                f"{tuple(count_shape)}."
            )
        batch_size = tf.cast(batch_size, "float32")
        if not is_number:
            check = tf.debugging.assert_greater_equal(
                batch_size,
                0.0,
                message=f"KWinners {self.name!r}: update_duty_cycles needs batch_size >= 0",
            )
            with tf.control_dependencies([check] if check is not None else []):
                batch_size = tf.identity(batch_size)
        samples = self.samples_seen + batch_size
        # At least 1: an empty first batch must leave the duty cycles alone, not 0 / 0.
        period = tf.maximum(tf.minimum(float(self.duty_cycle_period), samples), 1.0)
        self.samples_seen.assign(samples)
        self.duty_cycles.assign((self.duty_cycles * (period - batch_size) + count) / period)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "k": self.k,
                "k_inference_factor": self.k_inference_factor,
                "boost_strength": self.initial_boost_strength,
                "boost_strength_factor": self.boost_strength_factor,
                "duty_cycle_period": self.duty_cycle_period,
            }
        )
        return config


def _sum_over_replicas(count: tf.Tensor, batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Sums a replica's winner counts and batch size over all replicas in sync.

    Under `MirroredStrategy` / `MultiWorkerMirroredStrategy` each replica sees only
    its shard of the global batch. Summing counts and batch sizes (one all-reduce
    of a small vector per layer and step) makes every replica fold the whole
    global batch into its duty cycles, bit-identically: the copies stay equal
    without any further synchronisation, and equal those of one device.
    """
    if not _replicas_to_sum():
        return count, batch
    context = tf.distribute.get_replica_context()
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.concat([count, batch[None]], 0))
    return total[:-1], total[-1]


def _replicas_to_sum() -> bool:
    """Whether winner counts must be summed over replicas (decided while tracing).

    Without a strategy, or with one replica, there is nothing to reduce and the
    training step gets no extra op. A cross-replica call (no replica context, e.g.
    `layer(x, training=True)` directly under `strategy.scope()`) sees the whole
    batch and writes every copy itself.
    """
    if not tf.distribute.has_strategy():
        return False
    context = tf.distribute.get_replica_context()
    return context is not None and context.num_replicas_in_sync > 1
