"""The stages of the sparse inference path and the compiler that makes them from a model.

`_compile(model, weight_format)` walks a chain of Keras layers and returns a list of
stages, each covering one or more layers (a convolution with its batch norm, max-pooling
and ReLU fused, a k-winners layer, a dense layer) with one kernel call: the Numba kernels
(`_kernels.py`, and `sparse_keras._select` for k-winners) or, for the convolutions and a
masked dense layer fed by k-winners, the C++ kernels (`native_kernels.py`) where they
could be built (`sparse_inference` hands them to the stages). Activations pass between
stages either dense (a NumPy array) or sparse (`_Sparse`: the winners of each sample).
`sparse_keras.compute.inference` runs the stages.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np

from sparse_keras.compute import native_kernels
from sparse_keras.compute.accounting import IDENTITY_AT_INFERENCE
from sparse_keras.layers import KWinners

_SUPPORTED = (
    "InputLayer, Conv2D/SparseConv2D (stride 1, 'valid', no dilation or groups), "
    "BatchNormalization, MaxPooling2D (window = stride), ReLU, Activation('relu'|'linear'), "
    "KWinners, Flatten, Dense/SparseDense and Dropout-like layers"
)

WEIGHT_FORMATS = ("rows", "csr")
# Output channels of a conv stage are padded to a multiple of this (`_Conv.padded_weights`).
CHANNEL_BLOCK = 16


def _kernels():
    """The Numba kernels, imported on first use so that accounting works without Numba."""
    try:
        from sparse_keras.compute import _kernels
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"sparse_inference needs Numba (pip install 'numba>=0.59'); importing it failed: {err}"
        ) from err
    return _kernels


def _selection():
    """The k-winners kernel's module, imported on first use like `_kernels()`."""
    _kernels()  # the same clear error if Numba is missing
    from sparse_keras import _select

    return _select


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
    # Fed by k-winners (an `_Sparse` input); the C++ kernels (`native_kernels.library()`)
    # for a sparse input or the first-layer shape, or None: Numba.
    sparse_input: bool = False
    native: object = dataclasses.field(default=None, repr=False)
    _padded: tuple | None = dataclasses.field(default=None, init=False, repr=False)

    def output_shape(self):
        h, w, _ = self.in_shape
        kh, kw, _, c_out = self.kernel.shape
        return ((h - kh + 1) // self.pool, (w - kw + 1) // self.pool, c_out)

    def padded_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Kernel `[KH, KW, Ci, Co']` and bias `[Co']` zero-padded to `Co'`, a multiple of 16.

        The kernels' innermost loop runs over output channels. LLVM vectorises it in
        whole blocks and does the rest one channel at a time, so 30 channels (the MNIST
        networks) ran about 1.7x slower than 32. The padded channels live only in the
        kernels' scratch rows: the output keeps `Co` channels, and every real channel
        sums the same terms in the same order (identical bits). The kernel starts on a
        cache line (`native_kernels.aligned`), as the C++ kernel needs.
        """
        # Cached per kernel object: folding a batch norm in replaces the arrays.
        if self._padded is None or self._padded[0] is not self.kernel:
            c_out = self.kernel.shape[3]
            extra = -c_out % CHANNEL_BLOCK
            kernel = native_kernels.aligned(np.pad(self.kernel, [(0, 0)] * 3 + [(0, extra)]))
            bias = np.pad(self.bias, (0, extra)).astype(np.float32)
            self._padded = (self.kernel, kernel, bias)
        return self._padded[1], self._padded[2]

    def first_layer_kernel(self) -> bool:
        """Whether a dense input goes to the kernel for the paper's first layers
        (5x5 taps, one input channel, max-pool 2)."""
        return not self.sparse_input and self.kernel.shape[:3] == (5, 5, 1) and self.pool == 2

    def __call__(self, x):
        k = _kernels()
        kernel, bias = self.padded_weights()
        if isinstance(x, _Sparse):
            out = np.empty((x.idx.shape[0], *self.output_shape()), np.float32)
            if self.native is not None and native_kernels.conv_fits(x.shape, kernel.shape[3]):
                native_kernels.conv2d_sparse_input(
                    self.native, x.idx, x.val, x.shape, kernel, bias, self.pool, self.relu, out
                )
            else:
                k.conv2d_sparse_input(
                    x.idx, x.val, *x.shape, kernel, bias, self.pool, self.relu, out
                )
        else:
            out = np.empty((x.shape[0], *self.output_shape()), np.float32)
            if self.first_layer_kernel() and self.native is not None:
                native_kernels.conv2d_5x5_single_channel_pool2(
                    self.native, x, kernel, bias, self.relu, out
                )
            elif self.first_layer_kernel():
                k.conv2d_5x5_single_channel_pool2(x, kernel, bias, self.relu, out)
            else:
                k.conv2d_dense_input(x, kernel, bias, self.pool, self.relu, out)
        return out

    def describe(self) -> str:
        extra = (f" + max-pool {self.pool}" if self.pool > 1 else "") + (
            " + ReLU" if self.relu else ""
        )
        cpp = self.native is not None and (self.sparse_input or self.first_layer_kernel())
        engine = " (C++ kernel)" if cpp else ""
        return f"conv {'x'.join(map(str, self.kernel.shape))}{extra}{engine}"


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
        _selection().kwinners(flat, self.boost, self.k, idx, val)
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
    # Fed by k-winners, and then the C++ kernels for the "rows" format, or None: Numba.
    sparse_input: bool = False
    native: object = dataclasses.field(default=None, repr=False)
    _columns: tuple | None = dataclasses.field(default=None, init=False, repr=False)

    def columns(self) -> native_kernels.ChunkedColumns:
        """The stored weights laid out for the C++ batch kernel (cached per kernel)."""
        if self._columns is None or self._columns[0] is not self.kernel:
            self._columns = (self.kernel, native_kernels.ChunkedColumns(self.kernel))
        return self._columns[1]

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
        elif self.native is not None and native_kernels.batch_kernel_pays(
            batch, x.idx.shape[1], self.columns().stored, self.kernel.shape[1]
        ):
            # Many samples and a masked kernel: every stored weight meets 16-64 samples
            # at once, the masked-out ones are skipped (same bits as reading rows).
            native_kernels.dense_sparse_weights(
                self.native, x.idx, x.val, self.columns(), self.bias, self.relu, out
            )
        else:
            k.dense_sparse_input_rows(x.idx, x.val, self.kernel, self.bias, self.relu, out)
        return out

    def describe(self) -> str:
        n, units = self.kernel.shape
        density = np.count_nonzero(self.kernel) / self.kernel.size
        storage = (
            f"CSR, {self.csr[2].size} stored weights" if self.csr is not None else "dense rows"
        )
        if self.native is not None and self.csr is None and density < 1.0:
            storage += "; C++ batch kernel where it needs fewer products"
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


def _kernel_and_bias(layer: keras.layers.Layer) -> tuple[np.ndarray, np.ndarray]:
    """A Conv2D's or Dense's float32 kernel and bias (zeros when it has none)."""
    kernel = np.asarray(layer.kernel, np.float32)
    if layer.use_bias:
        return kernel, np.asarray(layer.bias, np.float32)
    return kernel, np.zeros(kernel.shape[-1], np.float32)


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
            kernel, bias = _kernel_and_bias(layer)
            stage = _Conv(
                kernel,
                bias,
                [layer.name],
                shape,
                relu=activation == "relu",
                sparse_input=sparse_input,
            )
            shape = stage.output_shape()
            stages.append(stage)
        elif isinstance(layer, keras.layers.Dense):
            if len(shape) != 1:
                raise _unsupported(layer, f"input of shape {shape}; flatten first")
            activation = _activation_name(layer)
            if activation not in ("linear", "relu"):
                raise _unsupported(layer, f"activation {activation!r}")
            kernel, bias = _kernel_and_bias(layer)
            # Only a layer fed by k-winners gets a sparse input; CSR helps nowhere else.
            fmt = weight_format if sparse_input else "rows"
            stages.append(
                _DenseLayer(
                    kernel,
                    bias,
                    [layer.name],
                    relu=activation == "relu",
                    weight_format=fmt,
                    sparse_input=sparse_input,
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
        elif isinstance(layer, IDENTITY_AT_INFERENCE):
            continue
        else:
            raise _unsupported(layer)
    return stages, input_shape
