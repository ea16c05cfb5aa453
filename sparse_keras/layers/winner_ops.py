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

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import tensorflow as tf

SOURCE = Path(__file__).parent / "_native" / "kwinners_ops.cc"
_CACHE_ENV = "SPARSE_KERAS_CACHE"
_COMPILER_ENV = "CXX"
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
    root = os.environ.get(_CACHE_ENV)
    if root:
        return Path(root) / "ops"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "sparse_keras" / "ops"


def library_path() -> Path:
    """The compiled library's path for this TensorFlow, Python and source (it may not exist yet)."""
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(" ".join([tf.__version__, sys.version, *_FLAGS]).encode())
    return cache_dir() / f"kwinners_ops-{digest.hexdigest()[:16]}.so"


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
    with _lock:
        if "library" not in _state:
            try:
                _state["library"] = _load()
                _state["reason"] = None
            except (OSError, RuntimeError, subprocess.SubprocessError, tf.errors.OpError) as err:
                _state["library"] = None
                _state["reason"] = str(err)
                _log.warning(
                    "sparse_keras: the k-winners training op could not be built (%s); "
                    "training uses the slower numpy_function path.",
                    err,
                )
        return _state["library"]


def unavailable_reason() -> str | None:
    """Why `library()` returned `None` (`None` if it has not been asked or succeeded)."""
    return _state.get("reason")  # type: ignore[return-value]


def build() -> Path:
    """Compiles the ops into the cache unless they are there already; returns the path.

    Raises:
        RuntimeError: If there is no compiler or it fails (its last lines of errors).
        OSError: If the cache folder cannot be written.
    """
    path = library_path()
    if not path.exists():
        _compile(path)
    return path


def _load():
    # One library per process: TensorFlow refuses a second registration of the same
    # kernels (from another path) when the op runs.
    path = library_path()
    cached = path.exists()
    try:
        module = tf.load_op_library(str(build()))
    except tf.errors.OpError:
        if not cached:
            raise
        # A damaged cached file (truncated copy, full disk): built again, once.
        _log.warning("sparse_keras: the cached k-winners op %s does not load; rebuilding.", path)
        path.unlink()
        module = tf.load_op_library(str(build()))
    global _gradients_registered
    if not _gradients_registered:
        # The mask is a constant to backprop, as the numpy_function's output is.
        for name in ("SparseKerasWinnerMask", "SparseKerasWinnersAndDutyCycles"):
            tf.no_gradient(name)
        _gradients_registered = True
    return module


def _compile(path: Path) -> None:
    compiler = os.environ.get(_COMPILER_ENV) or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        raise RuntimeError("no C++ compiler found (install g++ or set CXX)")
    path.parent.mkdir(parents=True, exist_ok=True)
    _log.warning("sparse_keras: compiling the k-winners training op (once, about 10 s)...")
    # Built under a temporary name and renamed: a concurrent or interrupted build never
    # leaves a half-written library under the final name.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    command = [
        compiler,
        *_FLAGS,
        str(SOURCE),
        "-o",
        tmp,
        *tf.sysconfig.get_compile_flags(),
        *tf.sysconfig.get_link_flags(),
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"{compiler} exited with {result.returncode}: {tail}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
