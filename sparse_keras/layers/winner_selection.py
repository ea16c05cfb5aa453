"""How `KWinners` finds its winners during training: a CPU kernel or `tf.math.top_k`.

`tf.math.top_k` is the training hot spot of a sparse network on CPU: for the
first k-winners layer of MNIST Sparse CNN-2 (64 samples of 4,608 units, k = 400)
it costs several times the whole ReLU it replaces. Only the k-th largest boosted
value of each sample is needed, which a radix select finds in linear time. The CPU
kernel also counts the winners for the duty cycles in the same pass and, on one
replica, updates them. It runs in one of two ways:

- "custom_op": TensorFlow ops compiled from C++ on first use (`winner_ops`), the
  cheapest call (a few µs);
- "numba": `sparse_keras._select.winner_mask_serial` (or `winner_mask` over Numba's
  threads for calls of at least `PARALLEL_MIN_VALUES` values) in a
  `tf.numpy_function`; mask, counts and batch size come back as one array. Handing
  the activations to Python and back costs about as much as a small batch's
  selection.

Both pick exactly the same winners as `tf.math.top_k`, ties going to the lower
index, and give the same duty-cycle bits.

The CPU kernel is a CPU-only training path: it is not used inside XLA
(`jit_compile=True`), for non-float32 inputs, on machines with a GPU or TPU, or
at inference, so exported and inference graphs always contain `top_k` only.

The method is chosen when a layer's training call is traced, i.e. at a model's
first training step: change it before then, or retrace afterwards with
`model.make_train_function(force=True)`.
"""

from __future__ import annotations

import math
import os

import numpy as np
import tensorflow as tf

METHODS = ("auto", "top_k", "custom_op", "numba")
_ENV = "SPARSE_KERAS_WINNER_SELECTION"
_method: str | None = None


def set_winner_selection(method: str) -> None:
    """Chooses how training-time k-winners are found.

    Args:
        method: "auto" (the default): the CPU kernel for float32 training calls
            outside XLA on machines without GPU or TPU (as the compiled op where it
            can be built, else in a `numpy_function`), else `tf.math.top_k`.
            "top_k": always `tf.math.top_k`. "custom_op" / "numba": the CPU kernel
            as the compiled op / in a `numpy_function`, for every float32 training
            call outside XLA, even where a GPU or TPU is visible (the activations
            then travel to the host and back). The environment variable
            `SPARSE_KERAS_WINNER_SELECTION` sets the default.

    Raises:
        ValueError: For any other method.
    """
    global _method
    _method = _checked(method, "method")


def winner_selection() -> str:
    """The current method: the last `set_winner_selection`, else the environment's."""
    if _method is not None:
        return _method
    return _checked(os.environ.get(_ENV, "auto"), _ENV)


def _checked(method: str, name: str) -> str:
    if method not in METHODS:
        raise ValueError(f"{name} must be one of {METHODS}, got {method!r}.")
    return method


def use_cpu_kernel(inputs: tf.Tensor) -> bool:
    """Whether a training call on `inputs` should use the CPU kernel (trace-time check)."""
    method = winner_selection()
    if method == "top_k" or inputs.dtype != tf.float32 or _in_xla_context():
        return False
    return method in ("numba", "custom_op") or not _has_accelerator()


def _compiled_ops():
    """The compiled ops' module for this trace, or `None` for the numpy_function path.

    Raises:
        RuntimeError: If "custom_op" was asked for and the ops cannot be built.
    """
    method = winner_selection()
    if method == "numba":
        return None
    from sparse_keras.layers import winner_ops

    library = winner_ops.library()
    if library is None and method == "custom_op":
        raise RuntimeError(
            "Winner selection 'custom_op' was asked for, but the op could not be built: "
            f"{winner_ops.unavailable_reason()}. Use set_winner_selection('auto') or 'numba'."
        )
    return library


def _in_xla_context() -> bool:
    # tf.function(jit_compile=True), which Keras uses for `jit_compile=True`, traces
    # inside an XLA control-flow context; a numpy_function cannot be compiled there.
    try:
        from tensorflow.python.framework import ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - depends on the TensorFlow version
        return True  # cannot tell: the safe answer keeps top_k
    return control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph())


def _has_accelerator() -> bool:
    # The kernel runs on the host: on a GPU / TPU machine every call would copy the
    # activations there and back, which top_k on the device avoids.
    return any(tf.config.list_logical_devices(kind) for kind in ("GPU", "TPU"))


NON_FINITE = "k-winners got NaN or Inf inputs"


class NonFiniteInputError(tf.errors.InvalidArgumentError, ValueError):
    """NaN or Inf inputs, raised inside the kernel's `numpy_function`: an
    `InvalidArgumentError` when it runs eagerly, and a `ValueError`, which TensorFlow
    turns into an `InvalidArgumentError` when it runs in a graph."""


# Below this many values per call (batch x units) the kernel runs on the calling
# thread: waking Numba's threads from a TensorFlow thread costs more CPU than it saves
# (about 150 µs per call on the 2-core development VM, against 10-800 µs for the
# selection itself at the Sparse CNN-2 shapes up to batch 64; see
# docs/training_speed.md). From here on the dispatch is under a tenth of the work.
PARALLEL_MIN_VALUES = 1 << 20


def kernel_chunks(batch: int, units: int, threads: int | None = None) -> int:
    """Into how many parts the kernel splits a batch: 1 (the calling thread) below
    `PARALLEL_MIN_VALUES` values, else one per Numba thread (at most one per sample).

    Args:
        batch: Samples in the call.
        units: Values per sample.
        threads: Numba's thread count; `None` asks Numba (`sparse_keras._select.threads`).
    """
    if batch * units < PARALLEL_MIN_VALUES:
        return 1
    if threads is None:
        threads = _kernels().threads()
    return max(1, min(threads, batch))


def _select_into(values, boost, k, positions, channels, mask_out, message) -> np.ndarray:
    """Runs the kernel on `values`, writing the mask to `mask_out` (a flat float32 view);
    returns the int32 `(channels,)` counts of positive winners.

    Raises:
        tf.errors.InvalidArgumentError: `message`, if `values` holds NaN or Inf (what
            `tf.debugging.check_numerics` raises).
    """
    kernels = _kernels()
    if not kernels.all_finite(values):
        raise NonFiniteInputError(None, None, message)
    batch = values.reshape((values.shape[0], positions, channels))
    chunks = kernel_chunks(batch.shape[0], positions * channels)
    mask = mask_out.reshape(batch.shape)
    counts = np.empty((chunks, channels), np.int32)
    if chunks == 1:
        kernels.winner_mask_serial(batch, boost, k, 1, mask, counts)
        return counts[0]
    kernels.winner_mask(batch, boost, k, chunks, mask, counts)
    return counts.sum(axis=0)


def cpu_winner_mask(
    inputs: tf.Tensor, boost: tf.Tensor, k: int, message: str = NON_FINITE
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The training winners of `inputs`, found by the CPU kernel.

    Args:
        inputs: float32 `(batch, units)` or `(batch, height, width, channels)`.
        boost: float32 `(channels,)`, the boost factor of every channel (of every
            unit for rank-2 input).
        k: Winners per sample, `1 <= k < ` values per sample.
        message: The error's message if `inputs` holds NaN or Inf.

    Returns:
        `(mask, count, batch_size)`: float32 of `inputs`' shape, 1.0 at the winners
        and 0.0 elsewhere; float32 `(channels,)`, the number of winners with a
        positive input in each channel, summed over the batch and all positions;
        the float32 batch size.
    """
    ops = _compiled_ops()
    if ops is not None:
        return ops.sparse_keras_winner_mask(
            inputs, boost, k=k, parallel_min=PARALLEL_MIN_VALUES, message=message
        )
    channels = int(boost.shape[0])
    positions = math.prod(inputs.shape[1:]) // channels

    def select(values: np.ndarray, boost: np.ndarray) -> np.ndarray:
        # One flat output, [mask..., count..., batch size]: every further output of a
        # numpy_function costs tens of µs of conversion, more than the SplitV below.
        # Reshaping here rather than in the graph saves TF ops, which cost more than
        # NumPy's views at these sizes.
        size = values.size
        packed = np.empty(size + channels + 1, np.float32)
        counts = _select_into(values, boost, k, positions, channels, packed[:size], message)
        packed[size:-1] = counts
        packed[-1] = values.shape[0]
        return packed

    # A numpy_function has no gradient: the mask is a constant to backprop.
    packed = tf.numpy_function(
        select, [inputs, boost], tf.float32, stateful=False, name="winner_mask"
    )
    return _unpacked(packed, inputs, channels)


def cpu_winners_and_duty_cycles(
    inputs: tf.Tensor,
    boost: tf.Tensor,
    k: int,
    duty_cycles: tf.Tensor,
    samples_seen: tf.Tensor,
    duty_cycle_period: int,
    message: str = NON_FINITE,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`cpu_winner_mask` with the duty-cycle update of `KWinners.update_duty_cycles`
    done in the same call: the new state comes back with the mask.

    The update is the layer's, in the same float32 operations in the same order, so
    it gives the same bits; it replaces about a dozen small TF ops per layer and
    step, which at batch 4 cost more than the selection itself.

    Args:
        inputs: float32 `(batch, units)` or `(batch, height, width, channels)`.
        boost: float32 `(channels,)`, the boost factor of every channel.
        k: Winners per sample, `1 <= k < ` values per sample.
        duty_cycles: float32 `(channels,)`, the current duty cycles.
        samples_seen: float32 scalar, the samples seen so far.
        duty_cycle_period: The layer's period, in samples.
        message: The error's message if `inputs` holds NaN or Inf.

    Returns:
        `(mask, new_duty_cycles, new_samples_seen)`.
    """
    channels = int(boost.shape[0])
    positions = math.prod(inputs.shape[1:]) // channels
    # Rank 4: one duty cycle per channel, each winner counting 1 / (height * width).
    share = per_unit_reciprocal(positions if len(inputs.shape) == 4 else 1)
    period_cap = np.float32(float(duty_cycle_period))  # as tf.minimum(float(period), ...)
    ops = _compiled_ops()
    if ops is not None:
        # float32 attributes: the op sees exactly these two float32 values.
        return ops.sparse_keras_winners_and_duty_cycles(
            inputs,
            boost,
            duty_cycles,
            samples_seen,
            k=k,
            parallel_min=PARALLEL_MIN_VALUES,
            message=message,
            period=float(period_cap),
            share=float(share),
        )

    def select(values, boost, duty, seen) -> np.ndarray:
        size = values.size
        packed = np.empty(size + channels + 1, np.float32)
        counts = _select_into(values, boost, k, positions, channels, packed[:size], message)
        # KWinners.update_duty_cycles, operation for operation (all float32).
        batch = np.float32(values.shape[0])
        samples = seen + batch
        period = np.maximum(np.minimum(period_cap, samples), np.float32(1))
        count = counts.astype(np.float32) * share
        packed[size:-1] = (duty * (period - batch) + count) / period
        packed[-1] = samples
        return packed

    packed = tf.numpy_function(
        select,
        [inputs, boost, duty_cycles, samples_seen],
        tf.float32,
        stateful=False,
        name="winner_mask_and_duty_cycles",
    )
    return _unpacked(packed, inputs, channels)


def per_unit_reciprocal(positions_per_unit: int) -> np.float32:
    """`1 / positions_per_unit` rounded once to float32: a winner's share of a duty cycle
    (`KWinners` multiplies its counts by it on every path)."""
    return np.float32(1.0) / np.float32(positions_per_unit)


def _unpacked(packed, inputs, channels):
    packed.set_shape((None,))
    mask, tail, last = tf.split(packed, [-1, channels, 1])
    # Only the batch dimension can be unknown (KWinners.build): no Shape op needed.
    mask = tf.reshape(mask, [-1, *inputs.shape[1:]])
    mask.set_shape(inputs.shape)
    tail.set_shape((channels,))
    return mask, tail, tf.reshape(last, ())


def _kernels():
    # Imported on first use: importing Numba costs a noticeable part of a second, which
    # a model that never trains on the CPU kernel should not pay.
    from sparse_keras import _select

    return _select
