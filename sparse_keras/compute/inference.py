"""A fast, inference-only path for trained sparse networks: it skips the zeros.

`sparse_inference(model)` reads a trained Keras model (a chain of the layers
`sparse_keras.models.build` uses) and compiles it into a short list of stages run by
Numba kernels (`_kernels.py`):

- a convolution fed by k-winners scatters each active input into the outputs it
  reaches (work proportional to the winners, not to the input size);
- a dense layer fed by k-winners reads only the active rows of its kernel, grouped by
  row over the batch so that each row is read once per batch;
- k-winners is a radix select over the boosted values, picking exactly the set
  `tf.math.top_k` picks (ties to the lower index);
- inference-mode batch normalisation is folded into the convolution or dense layer
  before it, max-pooling and ReLU are fused into the convolution.

The whole forward pass is one Python call with a handful of kernel calls and no
framework executor, which is what makes batch-1 latency low; batches are split over
threads (the kernels release the GIL).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import os
import time

import keras
import numpy as np

from sparse_keras.compute.accounting import single_input
from sparse_keras.layers import KWinners

# Layers that are the identity at inference.
_IDENTITY_LAYERS = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
)

_SUPPORTED = (
    "InputLayer, Conv2D/SparseConv2D (stride 1, 'valid', no dilation or groups), "
    "BatchNormalization, MaxPooling2D (window = stride), ReLU, Activation('relu'|'linear'), "
    "KWinners, Flatten, Dense/SparseDense and Dropout-like layers"
)

WEIGHT_FORMATS = ("rows", "csr")


def _kernels():
    """The Numba kernels, imported on first use so that accounting works without Numba."""
    try:
        from sparse_keras.compute import _kernels
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"sparse_inference needs Numba (pip install 'numba>=0.59'); importing it failed: {err}"
        ) from err
    return _kernels


@dataclasses.dataclass
class _Sparse:
    """A batch of sparse activations: per sample the k active flat indices and values."""

    idx: np.ndarray  # int32 [B, k], ascending per sample
    val: np.ndarray  # float32 [B, k]
    shape: tuple[int, ...]  # per-sample dense shape


def _dense(x) -> np.ndarray:
    if isinstance(x, _Sparse):
        out = np.empty((x.idx.shape[0], math.prod(x.shape)), np.float32)
        _kernels().densify(x.idx, x.val, out)
        return out.reshape((-1, *x.shape))
    return x


class _Stage:
    """One step of the compiled forward pass."""

    layers: list[str]

    def __call__(self, x):
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclasses.dataclass
class _Conv(_Stage):
    kernel: np.ndarray  # [KH, KW, Ci, Co]
    bias: np.ndarray
    layers: list[str]
    in_shape: tuple[int, int, int]
    pool: int = 1
    relu: bool = False

    def output_shape(self):
        h, w, _ = self.in_shape
        kh, kw, _, c_out = self.kernel.shape
        return ((h - kh + 1) // self.pool, (w - kw + 1) // self.pool, c_out)

    def __call__(self, x):
        k = _kernels()
        if isinstance(x, _Sparse):
            out = np.empty((x.idx.shape[0], *self.output_shape()), np.float32)
            k.conv2d_sparse_input(
                x.idx, x.val, *x.shape, self.kernel, self.bias, self.pool, self.relu, out
            )
        else:
            out = np.empty((x.shape[0], *self.output_shape()), np.float32)
            k.conv2d_dense_input(x, self.kernel, self.bias, self.pool, self.relu, out)
        return out

    def describe(self) -> str:
        extra = (f" + max-pool {self.pool}" if self.pool > 1 else "") + (
            " + ReLU" if self.relu else ""
        )
        return f"conv {'x'.join(map(str, self.kernel.shape))}{extra}"


@dataclasses.dataclass
class _Pool(_Stage):
    pool: int
    layers: list[str]
    relu: bool = False

    def __call__(self, x):
        x = _dense(x)
        b, h, w, c = x.shape
        out = np.empty((b, h // self.pool, w // self.pool, c), np.float32)
        _kernels().max_pool(x, self.pool, self.relu, out)
        return out

    def describe(self) -> str:
        return f"max-pool {self.pool}" + (" + ReLU" if self.relu else "")


@dataclasses.dataclass
class _Affine(_Stage):
    scale: np.ndarray
    shift: np.ndarray
    layers: list[str]
    relu: bool = False

    def __call__(self, x):
        x = np.array(_dense(x), np.float32, copy=True)
        _kernels().affine(x.reshape(x.shape[0], -1, x.shape[-1]), self.scale, self.shift, self.relu)
        return x

    def describe(self) -> str:
        return "batch norm (not foldable)" + (" + ReLU" if self.relu else "")


@dataclasses.dataclass
class _Relu(_Stage):
    layers: list[str]

    def __call__(self, x):
        x = np.array(_dense(x), np.float32, copy=True)
        _kernels().relu_inplace(x.reshape(x.shape[0], -1))
        return x

    def describe(self) -> str:
        return "ReLU"


@dataclasses.dataclass
class _KWinners(_Stage):
    boost: np.ndarray  # [n] boost factor of every flat position
    k: int
    layers: list[str]

    def __call__(self, x):
        x = _dense(x)
        shape = tuple(x.shape[1:])
        flat = x.reshape(x.shape[0], -1)
        idx = np.empty((flat.shape[0], self.k), np.int32)
        val = np.empty((flat.shape[0], self.k), np.float32)
        _kernels().kwinners(flat, self.boost, self.k, idx, val)
        return _Sparse(idx, val, shape)

    def describe(self) -> str:
        return f"k-winners {self.k} of {self.boost.size}"


@dataclasses.dataclass
class _Flatten(_Stage):
    layers: list[str]

    def __call__(self, x):
        if isinstance(x, _Sparse):
            # Flat C-order indices of [H, W, C] are exactly Keras' channels-last Flatten.
            return _Sparse(x.idx, x.val, (math.prod(x.shape),))
        return x.reshape(x.shape[0], -1)

    def describe(self) -> str:
        return "flatten"


@dataclasses.dataclass
class _DenseLayer(_Stage):
    kernel: np.ndarray  # [n, units], zeros where masked out
    bias: np.ndarray
    layers: list[str]
    relu: bool = False
    weight_format: str = "rows"
    csr: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __post_init__(self):
        if self.weight_format == "csr":
            rows, cols = np.nonzero(self.kernel)
            indptr = np.zeros(self.kernel.shape[0] + 1, np.int64)
            np.cumsum(np.bincount(rows, minlength=self.kernel.shape[0]), out=indptr[1:])
            self.csr = (indptr, cols.astype(np.int32), self.kernel[rows, cols].astype(np.float32))

    def __call__(self, x):
        k = _kernels()
        batch = x.idx.shape[0] if isinstance(x, _Sparse) else x.shape[0]
        out = np.empty((batch, self.kernel.shape[1]), np.float32)
        if not isinstance(x, _Sparse):
            k.dense_dense_input(x.reshape(batch, -1), self.kernel, self.bias, self.relu, out)
        elif self.csr is not None:
            k.dense_sparse_input_csr(x.idx, x.val, *self.csr, self.bias, self.relu, out)
        else:
            k.dense_sparse_input_rows(x.idx, x.val, self.kernel, self.bias, self.relu, out)
        return out

    def describe(self) -> str:
        n, units = self.kernel.shape
        density = np.count_nonzero(self.kernel) / self.kernel.size
        storage = (
            f"CSR, {self.csr[2].size} stored weights" if self.csr is not None else "dense rows"
        )
        return f"dense {n}->{units} (weight density {density:.2f}, {storage})" + (
            " + ReLU" if self.relu else ""
        )


def _activation_name(layer) -> str:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


def _unsupported(layer, why: str = "") -> ValueError:
    return ValueError(
        f"sparse_inference cannot compile layer {layer.name!r} ({type(layer).__name__})"
        + (f": {why}" if why else "")
        + f". Supported: {_SUPPORTED}."
    )


def _check_chain(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers in order, after checking that each feeds the next."""
    if isinstance(model, keras.Sequential):
        return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"sparse_inference needs a single-input, single-output chain of layers; "
            f"{model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs."
        )
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    previous = None
    for layer in layers:
        if len(layer._inbound_nodes) != 1:
            raise ValueError(f"Layer {layer.name!r} is used {len(layer._inbound_nodes)} times.")
        inputs = layer._inbound_nodes[0].input_tensors
        if len(inputs) != 1:
            raise ValueError(f"Layer {layer.name!r} has {len(inputs)} inputs; a chain has one.")
        producer = inputs[0]._keras_history[0]
        if previous is not None and producer is not previous:
            raise ValueError(
                f"Layer {layer.name!r} is fed by {producer.name!r}, not by the layer before it "
                f"({previous.name!r}): sparse_inference compiles chains only."
            )
        previous = layer
    if model.outputs[0]._keras_history[0] is not previous:
        raise ValueError(f"The output of {model.name!r} is not its last layer's.")
    return layers


def _bn_scale_shift(layer: keras.layers.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    rank = len(layer.input.shape)
    if int(layer.axis) % rank != rank - 1:
        raise _unsupported(layer, f"normalises axis {layer.axis}, not the last one")
    # float64 so that folding adds no rounding beyond the final cast.
    inv = 1.0 / np.sqrt(np.asarray(layer.moving_variance, np.float64) + layer.epsilon)
    if layer.scale:
        inv = inv * np.asarray(layer.gamma, np.float64)
    shift = -np.asarray(layer.moving_mean, np.float64) * inv
    if layer.center:
        shift = shift + np.asarray(layer.beta, np.float64)
    return inv, shift


def _last_producer(stages: list[_Stage]) -> _Stage | None:
    """The last stage that changes values (Flatten only relabels them)."""
    for stage in reversed(stages):
        if not isinstance(stage, _Flatten):
            return stage
    return None


def _compile(model: keras.Model, weight_format: str) -> tuple[list[_Stage], tuple[int, ...]]:
    input_shape = tuple(model.inputs[0].shape[1:])
    if any(dim is None for dim in input_shape):
        raise ValueError(f"sparse_inference needs a fully known input shape, got {input_shape}.")
    stages: list[_Stage] = []
    shape = input_shape
    for layer in _check_chain(model):
        last = stages[-1] if stages else None
        # Whether this layer's input arrives as k-winners' sparse (idx, val) batch.
        sparse_input = isinstance(_last_producer(stages), _KWinners)
        if isinstance(layer, keras.layers.Conv2D):
            if (
                tuple(layer.strides) != (1, 1)
                or layer.padding != "valid"
                or tuple(layer.dilation_rate) != (1, 1)
                or layer.groups != 1
                or layer.data_format != "channels_last"
            ):
                raise _unsupported(layer, "only stride 1, 'valid' padding, channels_last")
            activation = _activation_name(layer)
            if activation not in ("linear", "relu"):
                raise _unsupported(layer, f"activation {activation!r}")
            kernel = np.asarray(layer.kernel, np.float32)
            bias = (
                np.asarray(layer.bias, np.float32)
                if layer.use_bias
                else np.zeros(kernel.shape[-1], np.float32)
            )
            stage = _Conv(kernel, bias, [layer.name], shape, relu=activation == "relu")
            shape = stage.output_shape()
            stages.append(stage)
        elif isinstance(layer, keras.layers.Dense):
            if len(shape) != 1:
                raise _unsupported(layer, f"input of shape {shape}; flatten first")
            activation = _activation_name(layer)
            if activation not in ("linear", "relu"):
                raise _unsupported(layer, f"activation {activation!r}")
            kernel = np.asarray(layer.kernel, np.float32)
            bias = (
                np.asarray(layer.bias, np.float32)
                if layer.use_bias
                else np.zeros(kernel.shape[1], np.float32)
            )
            # Only a layer fed by k-winners gets a sparse input; CSR helps nowhere else.
            fmt = weight_format if sparse_input else "rows"
            stages.append(
                _DenseLayer(
                    kernel, bias, [layer.name], relu=activation == "relu", weight_format=fmt
                )
            )
            shape = (kernel.shape[1],)
        elif isinstance(layer, keras.layers.BatchNormalization):
            scale, shift = _bn_scale_shift(layer)
            foldable = isinstance(last, _Conv | _DenseLayer) and not last.relu
            foldable = foldable and (not isinstance(last, _Conv) or last.pool == 1)
            if foldable:
                last.kernel = (last.kernel * scale).astype(np.float32)
                last.bias = (last.bias * scale + shift).astype(np.float32)
                if isinstance(last, _DenseLayer):
                    last.__post_init__()
                last.layers.append(layer.name)
            else:
                stages.append(
                    _Affine(scale.astype(np.float32), shift.astype(np.float32), [layer.name])
                )
        elif isinstance(layer, keras.layers.MaxPooling2D):
            pool = tuple(layer.pool_size)
            if pool[0] != pool[1] or tuple(layer.strides) != pool or layer.padding != "valid":
                raise _unsupported(layer, "only square windows with stride = window, 'valid'")
            if isinstance(last, _Conv) and last.pool == 1:
                # max and ReLU commute, so a ReLU already fused in stays correct.
                last.pool = pool[0]
                last.layers.append(layer.name)
                shape = last.output_shape()
            else:
                stages.append(_Pool(pool[0], [layer.name]))
                shape = (shape[0] // pool[0], shape[1] // pool[0], shape[2])
        elif isinstance(layer, keras.layers.ReLU | keras.layers.Activation) or (
            isinstance(layer, KWinners) and layer.is_relu
        ):
            if isinstance(layer, keras.layers.ReLU) and (
                layer.max_value is not None or layer.negative_slope or layer.threshold
            ):
                raise _unsupported(layer, "only a plain ReLU")
            if isinstance(layer, keras.layers.Activation):
                name = _activation_name(layer)
                if name == "linear":
                    continue
                if name != "relu":
                    raise _unsupported(layer, f"activation {name!r}")
            if isinstance(last, _Conv | _DenseLayer | _Pool | _Affine):
                last.relu = True
                last.layers.append(layer.name)
            else:
                stages.append(_Relu([layer.name]))
        elif isinstance(layer, KWinners):
            if layer.k_inference >= layer.units:
                continue  # every unit wins: the identity
            boost = np.asarray(layer.boost_factors(), np.float32)
            # Conv: one factor per channel, repeated at every position (C-order).
            boost = np.tile(boost, layer.units // boost.size)
            stages.append(_KWinners(boost, layer.k_inference, [layer.name]))
        elif isinstance(layer, keras.layers.Flatten):
            if len(shape) > 1 and layer.data_format != "channels_last":
                raise _unsupported(layer, "channels_first flattening")
            stages.append(_Flatten([layer.name]))
            shape = (math.prod(shape),)
        elif isinstance(layer, _IDENTITY_LAYERS):
            continue
        else:
            raise _unsupported(layer)
    return stages, input_shape


class SparseInferenceModel:
    """An inference-only version of a trained network that skips zero activations.

    Made by `sparse_inference`; see there. Calling it returns the model's outputs
    (logits for `sparse_keras.models` networks) as a NumPy array.

    Attributes:
        input_shape: Per-sample input shape.
        stages: The compiled stages, in order (see `summary()`).
        threads: Threads a batch is split over.
    """

    def __init__(self, stages: list[_Stage], input_shape: tuple[int, ...], threads: int, name: str):
        self.stages = stages
        self.input_shape = input_shape
        self.threads = threads
        self.name = name
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    # Below this many samples per thread, splitting costs more than it saves.
    min_samples_per_thread = 4

    def _check(self, inputs) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(inputs), dtype=np.float32)
        if x.shape[1:] != self.input_shape:
            raise ValueError(
                f"Expected inputs of shape (batch, {', '.join(map(str, self.input_shape))}), "
                f"got {x.shape}."
            )
        return x

    def _forward(self, x: np.ndarray) -> np.ndarray:
        for stage in self.stages:
            x = stage(x)
        return _dense(x)

    def __call__(self, inputs) -> np.ndarray:
        """Runs the network on a batch.

        Args:
            inputs: Array-like `(batch, *input_shape)` (NumPy array or `tf.Tensor`),
                preprocessed exactly as for the Keras model.

        Returns:
            float32 NumPy array `(batch, outputs)`.
        """
        x = self._check(inputs)
        chunks = min(self.threads, x.shape[0] // self.min_samples_per_thread)
        if chunks <= 1:
            return self._forward(x)
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(self.threads)
        parts = np.array_split(x, chunks)
        return np.concatenate(list(self._executor.map(self._forward, parts)))

    def predict(self, inputs, batch_size: int = 256) -> np.ndarray:
        """Runs `inputs` through in batches of `batch_size`; returns the stacked outputs."""
        x = self._check(inputs)
        return np.concatenate(
            [self(x[i : i + batch_size]) for i in range(0, max(len(x), 1), batch_size)]
        )

    def profile(self, inputs, repeats: int = 20, clock: str = "wall") -> list[tuple[str, float]]:
        """Median seconds per stage over `repeats` runs of `inputs` (in this thread).

        Args:
            inputs: A batch `(batch, *input_shape)`.
            repeats: Runs to take the median over.
            clock: "wall" (elapsed time) or "cpu" (this thread's CPU time, which
                leaves out the time the thread waited while other jobs held the CPU).

        Returns:
            `[(description, seconds), ...]`, one entry per stage.
        """
        if clock not in ("wall", "cpu"):
            raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}.")
        now = time.perf_counter if clock == "wall" else time.thread_time
        x = self._check(inputs)
        self._forward(x)  # compile / warm up
        times = np.zeros((repeats, len(self.stages)))
        for r in range(repeats):
            h = x
            for s, stage in enumerate(self.stages):
                start = now()
                h = stage(h)
                times[r, s] = now() - start
        return [
            (f"{'+'.join(stage.layers)}: {stage.describe()}", float(t))
            for stage, t in zip(self.stages, np.median(times, axis=0), strict=True)
        ]

    def summary(self) -> str:
        """One line per compiled stage: the Keras layers it covers and what it does."""
        lines = [f"SparseInferenceModel {self.name!r}, input {self.input_shape}:"]
        for stage in self.stages:
            lines.append(f"  {'+'.join(stage.layers):<40} {stage.describe()}")
        return "\n".join(lines)

    def close(self) -> None:
        """Stops the worker threads (they are also stopped when the object is deleted)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def __del__(self):
        self.close()


def sparse_inference(
    model: keras.Model,
    threads: int | None = None,
    weight_format: str = "rows",
    warm_up: bool = True,
) -> SparseInferenceModel:
    """Compiles a trained network into a fast inference path that skips the zeros.

    The result computes what `model(x, training=False)` computes (same winners, same
    outputs up to float32 rounding), but a convolution or dense layer fed by
    k-winners only touches the active inputs, batch norm is folded away and there is
    no framework overhead per layer. The model's weights are copied: later changes to
    the model are not seen.

    Rounding: the summation order differs from TensorFlow's, so values differ in the
    last bits (~1e-6). Where two candidates for the k-th winner are closer than that,
    the two paths may keep different winners; see docs/performance.md for how often
    that happens on real inputs.

    Args:
        model: A single-input chain of supported layers (any `sparse_keras.models`
            network, trained or not).
        threads: Threads a batch is split over (a batch of 1 always runs in the
            calling thread). Default: the number of CPUs.
        weight_format: How a dense layer fed by k-winners stores its kernel:
            "rows" (dense rows, zeros included: reads `k` contiguous rows, SIMD
            friendly) or "csr" (only the masked-in weights, compressed sparse rows:
            exactly the non-zero multiplies, but scattered updates).
        warm_up: Run one sample through so that kernels are compiled (or loaded
            from Numba's cache) now rather than on the first call.

    Returns:
        A `SparseInferenceModel`: call it with a `(batch, *input_shape)` array.

    Raises:
        ValueError: for a layer or configuration the compiler does not support.
        ImportError: if Numba is not installed.

    Example:

    >>> model = sparse_keras.models.build("mnist_sparse_cnn2", seed=0)
    >>> fast = sparse_inference(model)
    >>> x = np.random.default_rng(0).normal(size=(8, 28, 28, 1)).astype("float32")
    >>> np.allclose(fast(x), model(x, training=False), atol=1e-4)
    True
    """
    if weight_format not in WEIGHT_FORMATS:
        raise ValueError(f"weight_format must be one of {WEIGHT_FORMATS}, got {weight_format!r}.")
    if threads is None:
        threads = os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}.")
    _kernels()
    stages, input_shape = _compile(model, weight_format)
    compiled = SparseInferenceModel(stages, input_shape, threads, model.name)
    if warm_up:
        compiled(np.zeros((1, *input_shape), np.float32))
    return compiled


def compare_with_keras(
    model: keras.Model,
    fast: SparseInferenceModel,
    inputs,
    atol: float = 1e-4,
    batch_size: int = 256,
) -> dict:
    """Checks `fast` against `model(x, training=False)` and explains any difference.

    Outputs may differ by more than `atol` only where a k-winners layer kept a
    different set of winners. That is legitimate when the swap is within rounding:
    at the first layer whose winners differ the inputs of both paths agreed, so if
    the two paths' boosted values differ by at most `delta` there, any unit kept by
    one path only must be within `2 * delta` of any unit kept by the other path
    only (in the reference's values). A difference is "explained" when it passes
    that test; an unexplained one is a bug. (TensorFlow's own values may change
    with the batch size, since oneDNN picks its algorithm by shape, so the check
    uses the reference values of the very batch that was compared.)

    Args:
        model: The Keras model.
        fast: `sparse_inference(model)`.
        inputs: Preprocessed inputs `(N, *input_shape)`.
        atol: Largest acceptable absolute difference of an output.
        batch_size: Batch size of both paths.

    Returns:
        A dict: `samples`, `max_diff` (over all samples), `differing` (indices with a
        difference > atol), `explained` (bool per differing sample),
        `max_diff_others` (over the remaining samples), `same_class` (fraction of all
        samples with the same arg-max).
    """
    x = np.asarray(inputs, np.float32)
    stages = [s for s in fast.stages if isinstance(s, _KWinners)]
    probe = keras.Model(
        single_input(model), [model.get_layer(s.layers[0]).input for s in stages] + [model.output]
    )
    # The Keras layers' own boost factors: a swap is judged with the reference's values,
    # never with the compiled path's copy (which may be the very thing that is wrong).
    boosts = [_keras_boost(model.get_layer(s.layers[0]), s.boost.size) for s in stages]
    diffs, same, differing, explained = [], 0, [], []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        outputs = probe(batch, training=False)
        outputs = [
            np.asarray(o) for o in (outputs if isinstance(outputs, list | tuple) else [outputs])
        ]
        reference, got = outputs[-1], fast(batch)
        diff = np.abs(reference - got).reshape(len(batch), -1).max(axis=-1)
        diffs.append(diff)
        same += int(np.sum(reference.argmax(-1) == got.argmax(-1)))
        for i in np.flatnonzero(diff > atol):
            differing.append(start + i)
            explained.append(
                _swap_within_rounding(
                    fast, stages, boosts, [o[i] for o in outputs[:-1]], batch[i : i + 1]
                )
            )
    diff = np.concatenate(diffs) if diffs else np.zeros(0)
    others = np.delete(diff, differing)
    return {
        "samples": len(x),
        "max_diff": float(diff.max(initial=0.0)),
        "differing": np.asarray(differing, int),
        "explained": np.asarray(explained, bool),
        "max_diff_others": float(others.max(initial=0.0)),
        "same_class": same / max(len(x), 1),
    }


def _keras_boost(layer, size: int) -> np.ndarray:
    """A Keras k-winners layer's boost factor of every flat position."""
    boost = np.asarray(layer.boost_factors(), np.float32).reshape(-1)
    return np.tile(boost, size // boost.size)


def _swap_within_rounding(
    fast: SparseInferenceModel,
    stages: list[_KWinners],
    boosts: list[np.ndarray],
    reference_inputs: list,
    x: np.ndarray,
) -> bool:
    """For one sample: is the first differing winner set a swap within rounding?

    `reference_inputs` are the Keras model's inputs to each k-winners stage for this
    sample, taken from the batch it was compared in; `boosts` the Keras layers' boost
    factors. A stage whose boost factors differ from its layer's is a bug, not rounding.
    """
    mine = {}
    h = x
    for stage in fast.stages:
        if isinstance(stage, _KWinners):
            mine[id(stage)] = np.asarray(_dense(h), np.float32).reshape(-1)
        h = stage(h)
    for stage, boost, ref_input in zip(stages, boosts, reference_inputs, strict=True):
        if not np.allclose(stage.boost, boost, rtol=1e-6, atol=0.0):
            return False
        ref = np.asarray(ref_input, np.float32).reshape(-1) * boost
        own = mine[id(stage)] * boost
        ref_winners = set(np.argsort(-ref, kind="stable")[: stage.k].tolist())
        own_winners = set(np.argsort(-own, kind="stable")[: stage.k].tolist())
        if ref_winners == own_winners:
            continue
        delta = float(np.max(np.abs(ref.astype(np.float64) - own)))
        only_ref = ref[list(ref_winners - own_winners)].astype(np.float64)
        only_own = ref[list(own_winners - ref_winners)].astype(np.float64)
        return bool(only_ref.max() - only_own.min() <= 2 * delta * (1 + 1e-6))
    return False  # winners all agree, yet the outputs differ: not a rounding swap
