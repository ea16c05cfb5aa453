"""The training-time k-winners selection as TensorFlow ops, compiled from C++ on first use.

`_native/kwinners_ops.cc` is the CPU kernel of `sparse_keras._select` (the same radix
select, the same winners as `tf.math.top_k`, the same duty-cycle bits) as two TF ops.
Inside a training graph an op costs a few µs per call; the `tf.numpy_function` around
the Numba kernel costs about as much again as a small batch's whole selection (measured
on MNIST Sparse CNN-2 at batch 4: the PyFunc machinery alone added 15% to the step, see
docs/training_speed.md).

The ops ship as source: `library()` compiles them with the system's C++ compiler
against the installed TensorFlow's headers (about 10 s, once per TensorFlow version and
source) into `$SPARSE_KERAS_CACHE/ops` (default `~/.cache/sparse_keras/ops`) and loads
them. Where that cannot be done (no compiler, no headers, a read-only cache) it returns
`None`, `unavailable_reason()` says why, and training uses the `numpy_function` path.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from pathlib import Path

import tensorflow as tf

from sparse_keras import native_build

SOURCE = Path(__file__).parent / "_native" / "kwinners_ops.cc"
# -ffp-contract=off: no fused multiply-adds, so the duty-cycle update gives the bits of
# KWinners.update_duty_cycles' separate float32 operations.
_FLAGS = ["-std=c++17", "-shared", "-fPIC", "-O3", "-ffp-contract=off", "-w"]

_lock = threading.Lock()
_state: dict[str, object] = {}
# TensorFlow's gradient registry takes each op name once per process (tests reset `_state`).
_gradients_registered = False
_log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where compiled ops are kept: `$SPARSE_KERAS_CACHE/ops`, else `~/.cache/sparse_keras/ops`
    (`$XDG_CACHE_HOME` replacing `~/.cache` where it is set)."""
    return native_build.cache_dir("ops")


def library_path() -> Path:
    """The compiled library's path for this TensorFlow, Python and source (it may not exist yet)."""
    return native_build.library_path(SOURCE, "ops", _FLAGS, [tf.__version__])


def library():
    """The loaded op module (`tf.load_op_library`), compiling it first if needed; `None`
    where it cannot be built or loaded (`unavailable_reason()` says why). Thread-safe;
    the answer is remembered for the process.

    Example (`KWinners` makes these calls itself during training):

    >>> ops = library()
    >>> mask, count, batch = ops.sparse_keras_winner_mask(
    ...     [[0.5, -1.0, 2.0, 1.0], [3.0, 0.0, -2.0, 0.0]], [1.0, 1.0, 1.0, 1.0],
    ...     k=2, parallel_min=1 << 20, message="NaN or Inf inputs")
    >>> mask.numpy().tolist()  # the tie between the zeros goes to the lower index
    [[0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]]
    >>> count.numpy().tolist(), float(batch)  # positive winners per unit, batch size
    ([1.0, 0.0, 1.0, 1.0], 2.0)
    """
    return native_build.load_once(
        _state,
        _lock,
        _load,
        (OSError, RuntimeError, subprocess.SubprocessError, tf.errors.OpError),
        _log,
        "sparse_keras: the k-winners training op could not be built (%s); "
        "training uses the slower numpy_function path.",
    )


def unavailable_reason() -> str | None:
    """Why `library()` returned `None` (`None` if it has not been asked or succeeded)."""
    return _state.get("reason")  # type: ignore[return-value]


def build() -> Path:
    """Compiles the ops into the cache unless they are there already; returns the path.

    Raises:
        RuntimeError: If there is no compiler or it fails (its last lines of errors).
        OSError: If the cache folder cannot be written.
    """
    return native_build.build(
        SOURCE,
        "ops",
        _FLAGS,
        link_args=[*tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()],
        key=[tf.__version__],
        what="the k-winners training op (about 10 s)",
    )


def _load():
    # One library per process: TensorFlow refuses a second registration of the same
    # kernels (from another path) when the op runs.
    module = native_build.load_or_rebuild(
        library_path(),
        build,
        lambda path: tf.load_op_library(str(path)),
        tf.errors.OpError,
        "k-winners op",
    )
    global _gradients_registered
    if not _gradients_registered:
        # The mask is a constant to backprop, as the numpy_function's output is.
        for name in ("SparseKerasWinnerMask", "SparseKerasWinnersAndDutyCycles"):
            tf.no_gradient(name)
        _gradients_registered = True
    return module
