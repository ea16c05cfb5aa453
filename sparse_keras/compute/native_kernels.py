"""The C++ kernels of the sparse inference path, compiled on first use (ctypes).

`_native/sparse_kernels.cc` holds three kernels that replace Numba ones where those stay
furthest from the multiply-count limit (docs/performance.md):

- `conv2d_sparse_input`: a convolution fed by k-winners, sums kept in vector registers
  (about 2x the Numba kernel on the zoo networks' second convolution);
- `conv2d_5x5_single_channel_pool2`: the paper's first layers (dense input), the four
  conv outputs of a pooling window summed in registers 64 channels at a time;
- `dense_sparse_weights`: a dense layer fed by k-winners whose kernel is masked,
  vectorised over the batch so that the masked-out weights are skipped (chosen per
  call by `batch_kernel_pays`, when it needs fewer vector products than reading the
  active rows).

Both give the bits of the Numba kernels they replace (tests/test_native_kernels.py).

`library()` compiles the source with the system's C++ compiler for this CPU
(`-march=native`, a few seconds, once per source and CPU) into
`$SPARSE_KERAS_CACHE/kernels` (default `~/.cache/sparse_keras/kernels`) and loads it.
Where that fails it returns `None`, `unavailable_reason()` says why and
`sparse_inference` uses the Numba kernels.

The functions here are the stages' calls into the library. They check types, shapes,
alignment and index ranges (a wrong pointer would crash the process), so a bad call
raises `ValueError` instead.
"""

from __future__ import annotations

import ctypes
import logging
import math
import threading
from pathlib import Path

import numpy as np

from sparse_keras import native_build

SOURCE = Path(__file__).parent / "_native" / "sparse_kernels.cc"
# -march=native: the vector width of this CPU (the cache key holds the CPU's signature).
# -ffp-contract=fast: multiply-adds fused as LLVM fuses the Numba kernels' (same bits).
FLAGS = ["-std=c++17", "-shared", "-fPIC", "-O3", "-march=native", "-ffp-contract=fast", "-w"]
# Weights and scratch start on a cache line: a 64-byte vector load across two lines
# costs two (the convolution measured clearly slower with an unaligned kernel).
ALIGNMENT = 64
# Output channels / units are padded to a multiple of this (one 16-float vector).
LANES = 16
# Rows per chunk of the batch kernel's weights: a chunk's inputs for 64 samples
# (64 rows x 64 floats = 16 KiB) stay in L1 while every unit reads them.
CHUNK_ROWS = 64
# The convolution keeps weight offsets (flat input index x padded channels) in int32.
MAX_CONV_OFFSET = 2**31 - 1

_lock = threading.Lock()
_state: dict[str, object] = {}
_log = logging.getLogger(__name__)

_P = ctypes.c_void_p
_I = ctypes.c_int64
_SIGNATURES = {
    "sk_conv2d_sparse_input": [
        _P,
        _P,
        _I,
        _I,
        _I,
        _I,
        _I,
        _P,
        _I,
        _I,
        _I,
        _P,
        _I,
        _I,
        ctypes.c_int32,
        _P,
    ],
    "sk_conv2d_5x5_single_channel_pool2": [_P, _I, _I, _I, _P, _I, _P, _I, ctypes.c_int32, _P],
    "sk_dense_sparse_weights": [_P, _P, _I, _I, _I, _I, _P, _P, _P, _P, _I, ctypes.c_int32, _P],
}


def library_path() -> Path:
    """The compiled library's path for this source, CPU and Python (it may not exist yet)."""
    return native_build.library_path(SOURCE, "kernels", FLAGS, [native_build.cpu_signature()])


def library() -> ctypes.CDLL | None:
    """The loaded kernels, compiling them first if needed; `None` where they cannot be
    built or loaded (`unavailable_reason()` says why). Thread-safe; the answer is
    remembered for the process."""
    return native_build.load_once(
        _state,
        _lock,
        _load,
        (OSError, RuntimeError, AttributeError),
        _log,
        "sparse_keras: the C++ inference kernels could not be built (%s); "
        "sparse_inference uses the Numba kernels.",
    )


def unavailable_reason() -> str | None:
    """Why `library()` returned `None` (`None` if it has not been asked or succeeded)."""
    return _state.get("reason")  # type: ignore[return-value]


def _build() -> Path:
    return native_build.build(
        SOURCE,
        "kernels",
        FLAGS,
        key=[native_build.cpu_signature()],
        what="the C++ sparse inference kernels",
    )


def _load() -> ctypes.CDLL:
    lib = native_build.load_or_rebuild(
        library_path(), _build, lambda path: ctypes.CDLL(str(path)), OSError, "C++ kernels"
    )
    for name, argtypes in _SIGNATURES.items():
        function = getattr(lib, name)  # AttributeError: a library of another source
        function.argtypes = argtypes
        function.restype = None
    return lib


def aligned(array: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy of `array` whose data starts on a 64-byte boundary.

    Example:

    >>> copy = aligned(np.arange(6.0).reshape(2, 3))
    >>> copy.dtype, copy.shape, copy.ctypes.data % 64
    (dtype('float32'), (2, 3), 0)
    """
    array = np.asarray(array, np.float32)
    buffer = np.empty(array.nbytes + ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    out = buffer[start : start + array.nbytes].view(np.float32).reshape(array.shape)
    out[...] = array
    return out


def _check(name: str, array: np.ndarray, dtype, ndim: int, align: bool = False) -> None:
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != ndim:
        got = (
            f"{array.dtype} array of shape {array.shape}"
            if isinstance(array, np.ndarray)
            else type(array).__name__
        )
        raise ValueError(f"{name} must be a {ndim}-d {np.dtype(dtype)} array, got {got}.")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous.")
    if align and array.ctypes.data % ALIGNMENT:
        raise ValueError(f"{name} must start on a {ALIGNMENT}-byte boundary (use aligned()).")


def _check_sparse(idx: np.ndarray, val: np.ndarray) -> None:
    """A sparse batch `(idx, val)`: types and shapes."""
    _check("idx", idx, np.int32, 2)
    _check("val", val, np.float32, 2)
    if val.shape != idx.shape:
        raise ValueError(f"val has shape {val.shape}, idx {idx.shape}: they must match.")


def _check_indices(idx: np.ndarray, size: int) -> None:
    """Checked last (a pass over the data), after the O(1) checks."""
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        raise ValueError(f"active indices must lie in [0, {size}), got [{idx.min()}, {idx.max()}].")


def conv_fits(in_shape: tuple[int, int, int], padded_channels: int) -> bool:
    """Whether the C++ convolution's int32 weight offsets cover this input and kernel."""
    return math.prod(in_shape) * padded_channels <= MAX_CONV_OFFSET


def conv2d_sparse_input(
    lib: ctypes.CDLL,
    idx: np.ndarray,
    val: np.ndarray,
    in_shape: tuple[int, int, int],
    kernel: np.ndarray,
    bias: np.ndarray,
    pool: int,
    relu: bool,
    out: np.ndarray,
) -> None:
    """Valid, stride-1 convolution of a sparse input, max-pooling and ReLU, into `out`.

    Args:
        lib: `library()`.
        idx: int32 `[B, k]` flat indices into `in_shape`, ascending per sample.
        val: float32 `[B, k]`.
        in_shape: `(height, width, c_in)` of the dense input.
        kernel: float32 `[KH, KW, c_in, Cw]`, `Cw` a multiple of 16, 64-byte aligned
            (`aligned()`); channels beyond `out`'s are computed in scratch only.
        bias: float32 `[Cw]`.
        pool: Pooling window and stride, >= 1.
        relu: Apply ReLU to the pooled output.
        out: float32 `[B, (height - KH + 1) // pool, (width - KW + 1) // pool, Co]`, `Co <= Cw`.

    Raises:
        ValueError: naming the first argument that does not fit.
    """
    _check_sparse(idx, val)
    height, width, c_in = (int(d) for d in in_shape)
    _check("kernel", kernel, np.float32, 4, align=True)
    _check("bias", bias, np.float32, 1)
    _check("out", out, np.float32, 4)
    kh, kw, kc, cw = kernel.shape
    if kc != c_in or cw % LANES or bias.shape != (cw,):
        raise ValueError(
            f"kernel {kernel.shape} and bias {bias.shape} do not fit an input with {c_in} "
            f"channels (expected [KH, KW, {c_in}, Cw], Cw a multiple of {LANES}, bias [Cw])."
        )
    if not isinstance(pool, int) or pool < 1 or kh > height or kw > width:
        raise ValueError(f"pool must be >= 1 and the kernel {kh}x{kw} fit {height}x{width}.")
    expected = (idx.shape[0], (height - kh + 1) // pool, (width - kw + 1) // pool)
    if out.shape[:3] != expected or not 0 < out.shape[3] <= cw:
        raise ValueError(f"out has shape {out.shape}, expected {expected} + (channels <= {cw},).")
    if not conv_fits((height, width, c_in), cw):
        raise ValueError(f"input {in_shape} x {cw} channels exceeds the kernel's int32 offsets.")
    _check_indices(idx, height * width * c_in)
    lib.sk_conv2d_sparse_input(
        idx.ctypes.data, val.ctypes.data, idx.shape[0], idx.shape[1], height, width, c_in,
        kernel.ctypes.data, kh, kw, cw, bias.ctypes.data, out.shape[3], pool, int(bool(relu)),
        out.ctypes.data,
    )  # fmt: skip


def conv2d_5x5_single_channel_pool2(
    lib: ctypes.CDLL,
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray,
    relu: bool,
    out: np.ndarray,
) -> None:
    """5x5 convolution of a one-channel image, 2x2 max-pooling and ReLU, into `out`.

    Args:
        lib: `library()`.
        x: float32 `[B, H, W, 1]`.
        kernel: float32 `[5, 5, 1, Cw]`, `Cw` a multiple of 16, 64-byte aligned.
        bias: float32 `[Cw]`.
        relu: Apply ReLU to the pooled output.
        out: float32 `[B, (H - 4) // 2, (W - 4) // 2, Co]`, `Co <= Cw`.

    Raises:
        ValueError: naming the first argument that does not fit.
    """
    _check("x", x, np.float32, 4)
    _check("kernel", kernel, np.float32, 4, align=True)
    _check("bias", bias, np.float32, 1)
    _check("out", out, np.float32, 4)
    batch, height, width, channels = x.shape
    cw = kernel.shape[3]
    if kernel.shape[:3] != (5, 5, 1) or channels != 1 or cw % LANES or bias.shape != (cw,):
        raise ValueError(
            f"expected x [B, H, W, 1], kernel [5, 5, 1, Cw] (Cw a multiple of {LANES}) and "
            f"bias [Cw]; got x {x.shape}, kernel {kernel.shape}, bias {bias.shape}."
        )
    expected = (batch, (height - 4) // 2, (width - 4) // 2)
    if height < 6 or width < 6 or out.shape[:3] != expected or not 0 < out.shape[3] <= cw:
        raise ValueError(f"out has shape {out.shape}, expected {expected} + (channels <= {cw},).")
    lib.sk_conv2d_5x5_single_channel_pool2(
        x.ctypes.data, batch, height, width, kernel.ctypes.data, cw, bias.ctypes.data,
        out.shape[3], int(bool(relu)), out.ctypes.data,
    )  # fmt: skip


class ChunkedColumns:
    """A dense layer's stored (non-zero) weights, laid out for `dense_sparse_weights`.

    Rows in chunks of `CHUNK_ROWS`; within a chunk, unit by unit, rows ascending:
    for chunk `h` and unit `c`, entries `ptr[h * units + c] .. ptr[h * units + c + 1] - 1`
    of `rows` (the row within the chunk) and `weights`.

    Args:
        kernel: float32 `[n, units]`, zeros where masked out.
    """

    def __init__(self, kernel: np.ndarray):
        kernel = np.asarray(kernel, np.float32)
        self.n, self.units = kernel.shape
        row, unit = np.nonzero(kernel)
        order = np.lexsort((row, unit, row // CHUNK_ROWS))
        row, unit = row[order], unit[order]
        chunks = -(-self.n // CHUNK_ROWS)
        counts = np.bincount((row // CHUNK_ROWS) * self.units + unit, minlength=chunks * self.units)
        self.ptr = np.zeros(chunks * self.units + 1, np.int64)
        np.cumsum(counts, out=self.ptr[1:])
        self.rows = (row % CHUNK_ROWS).astype(np.int32)
        self.weights = kernel[row, unit]
        self.stored = int(row.size)


def batch_kernel_pays(batch: int, k: int, stored: int, units: int) -> bool:
    """Whether `dense_sparse_weights` needs fewer 16-float vector products than reading
    the `k` active rows of every sample (`k * units / 16` per sample): it does
    `stored` products per started group of 16 samples.

    Example (MNIST Sparse CNN-2's hidden layer: 214,900 of 1024 x 700 weights kept,
    450 winners; rows cost 19,687.5 products per sample):

    >>> batch_kernel_pays(1, 450, 214_900, 700), batch_kernel_pays(64, 450, 214_900, 700)
    (False, True)
    """
    return stored * math.ceil(batch / LANES) < batch * k * units / LANES


def dense_sparse_weights(
    lib: ctypes.CDLL,
    idx: np.ndarray,
    val: np.ndarray,
    columns: ChunkedColumns,
    bias: np.ndarray,
    relu: bool,
    out: np.ndarray,
) -> None:
    """`out = x @ w + b` (then ReLU) for a sparse `x` and the stored weights of `w`.

    Args:
        lib: `library()`.
        idx: int32 `[B, k]` active input indices (< `columns.n`), ascending per sample.
        val: float32 `[B, k]`.
        columns: `ChunkedColumns(w)`.
        bias: float32 `[units]`.
        relu: Apply ReLU.
        out: float32 `[B, units]`.

    Raises:
        ValueError: naming the first argument that does not fit.
    """
    _check_sparse(idx, val)
    _check("bias", bias, np.float32, 1)
    _check("out", out, np.float32, 2)
    if bias.shape != (columns.units,) or out.shape != (idx.shape[0], columns.units):
        raise ValueError(
            f"bias {bias.shape} and out {out.shape} must be ({columns.units},) and "
            f"({idx.shape[0]}, {columns.units})."
        )
    _check_indices(idx, columns.n)
    lib.sk_dense_sparse_weights(
        idx.ctypes.data, val.ctypes.data, idx.shape[0], idx.shape[1], columns.n, CHUNK_ROWS,
        columns.ptr.ctypes.data, columns.rows.ctypes.data, columns.weights.ctypes.data,
        bias.ctypes.data, columns.units, int(bool(relu)), out.ctypes.data,
    )  # fmt: skip
