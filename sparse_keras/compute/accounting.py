"""Non-zero multiply accounting (Section 4.3 of the paper).

A layer fed by k-winners sees only `k_{l-1}` non-zero inputs out of `n_{l-1}`, and a
sparse layer keeps only a fraction `w_l` of its weights, so of its dense
multiply-accumulates only about `(k_{l-1} / n_{l-1}) * w_l` multiply two non-zeros:

- hidden layer: `(k_{l-1} / n_{l-1}) * w_l * |y_{l-1}| * |y_l|`, i.e.
  `k_{l-1} * w_l * |y_l|`;
- convolution: `(k_{l-1} / n_{l-1}) * K^2 * C_in * |y_l|` (with `|y_l| = H_out * W_out *
  C_out`), i.e. the fraction of active inputs times the dense count.

`count_multiplies` reports, per layer and in total, the dense count, this expected
count, and (given inputs) the products of non-zero inputs with non-zero weights
actually met on those inputs.

Which k: the paper's figures for GSC Sparse CNN-2 (conv1 -> conv2 about 10.5x fewer than
dense, conv2 -> hidden about 20x) are `n / k` and `n / (k * w)` with the *training* k
(12544 / 1200 = 10.45, 1600 / (200 * 0.4) = 20.0). At inference the network keeps
`round(1.5 * k)` winners, which gives 7.0x and 13.3x; `k="inference"` reports those,
and measured counts always are inference counts.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from sparse_keras.layers import KWinners

K_MODES = ("training", "inference")

# Layers that are the identity at inference (dropout and the like).
IDENTITY_AT_INFERENCE = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
)
# Layers that pass values through unchanged (at inference) or only reshape them.
_PASS_THROUGH = (keras.layers.Flatten, keras.layers.Reshape, *IDENTITY_AT_INFERENCE)
_POOLING = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D)


@dataclasses.dataclass(frozen=True)
class LayerCount:
    """Multiply counts of one layer, per sample.

    Attributes:
        name: Layer name.
        kind: Layer class name.
        output_shape: Per-sample output shape.
        dense: Multiply-accumulates of the layer computed densely.
        expected: Non-zero multiplies the paper's formula expects:
            `input_density * weight_density * dense`.
        measured: Mean number of products of a non-zero input with a non-zero
            weight over the given inputs, or None if no inputs were given.
        input_density: Expected fraction of non-zero inputs (`k / n` of the
            k-winners feeding the layer; 1 for anything else, as in the paper).
        weight_density: Fraction of the kernel kept by its mask (1 without one).
        elementwise: Element-wise multiplies that are not multiply-accumulates (batch
            norm's scale, folded away at inference; k-winners' boost factors).
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    dense: int
    expected: float
    measured: float | None = None
    input_density: float = 1.0
    weight_density: float = 1.0
    elementwise: int = 0

    @property
    def expected_ratio(self) -> float | None:
        """`dense / expected`: how many times fewer multiplies the formula expects."""
        return _ratio(self.dense, self.expected)

    @property
    def measured_ratio(self) -> float | None:
        """`dense / measured`, None without measurements."""
        return None if self.measured is None else _ratio(self.dense, self.measured)


def _ratio(dense: float, sparse: float | None) -> float | None:
    if not dense or sparse is None:
        return None
    return math.inf if sparse == 0 else dense / sparse


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


@dataclasses.dataclass(frozen=True)
class MultiplyCount:
    """Per-layer and total multiply counts of a model (per sample).

    Attributes:
        model_name: The model's name.
        k_mode: "training" or "inference": which k the expected counts use.
        samples: Number of inputs the measured counts average over (0 = none).
        layers: One `LayerCount` per layer, in model order.
    """

    model_name: str
    k_mode: str
    samples: int
    layers: tuple[LayerCount, ...]

    @property
    def total_dense(self) -> int:
        return sum(row.dense for row in self.layers)

    @property
    def total_expected(self) -> float:
        return sum(row.expected for row in self.layers)

    @property
    def total_measured(self) -> float | None:
        if not self.samples:
            return None
        return sum(row.measured or 0.0 for row in self.layers)

    @property
    def total_elementwise(self) -> int:
        return sum(row.elementwise for row in self.layers)

    def layer(self, name: str) -> LayerCount:
        """The row of the layer called `name`."""
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(f"No layer {name!r}; layers: {[row.name for row in self.layers]}.")

    def _rows(self) -> tuple[list[str], list[list[str]]]:
        header = [
            "layer",
            "type",
            "output",
            "dense MACs",
            "input density",
            "weight density",
            f"expected non-zero ({self.k_mode} k)",
            "dense/expected",
            "measured non-zero",
            "dense/measured",
            "element-wise",
        ]
        rows = [
            [
                row.name,
                row.kind,
                "x".join(map(str, row.output_shape)),
                _number(row.dense),
                f"{row.input_density:.4f}" if row.dense else "-",
                f"{row.weight_density:.2f}" if row.dense else "-",
                _number(row.expected),
                _times(row.expected_ratio),
                _number(row.measured),
                _times(row.measured_ratio),
                _number(row.elementwise),
            ]
            for row in self.layers
        ]
        rows.append(
            [
                "total",
                "",
                "",
                _number(self.total_dense),
                "",
                "",
                _number(self.total_expected),
                _times(_ratio(self.total_dense, self.total_expected)),
                _number(self.total_measured),
                _times(_ratio(self.total_dense, self.total_measured)),
                _number(self.total_elementwise),
            ]
        )
        return header, rows

    def _caption(self) -> str:
        measured = (
            f"measured on {self.samples} inputs (mean per sample, inference k)"
            if self.samples
            else "no inputs measured"
        )
        return (
            f"{self.model_name}: multiplies per sample; expected with {self.k_mode} k; {measured}."
        )

    def to_markdown(self) -> str:
        """The table as GitHub markdown (with a caption line)."""
        header, rows = self._rows()
        lines = [
            self._caption(),
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---" if i < 3 else "---:" for i in range(len(header))) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)

    def to_text(self) -> str:
        """The table as aligned plain text."""
        header, rows = self._rows()
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        fmt = lambda r: "  ".join(  # noqa: E731
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        return "\n".join([self._caption(), fmt(header), *(fmt(r) for r in rows)])

    def __str__(self) -> str:
        return self.to_text()

    def to_dict(self) -> dict:
        """Plain-Python form (JSON-serialisable) with the totals."""
        return {
            "model": self.model_name,
            "k_mode": self.k_mode,
            "samples": self.samples,
            "layers": [dataclasses.asdict(row) for row in self.layers],
            "total_dense": self.total_dense,
            "total_expected": self.total_expected,
            "total_measured": self.total_measured,
        }


def single_input(model: keras.Model):
    """The model's one input tensor, to build probe models that take a plain array.

    (`model.input` fails on a Sequential model that was never called, and probes
    built on the one-element list `model.inputs` warn when given an array.)
    """
    if len(model.inputs) != 1:
        raise ValueError(f"Expected a single-input model, {model.name!r} has {len(model.inputs)}.")
    return model.inputs[0]


def _producer(layer: keras.layers.Layer) -> keras.layers.Layer | None:
    """The layer whose output feeds `layer` (the first input's, for several)."""
    if not layer._inbound_nodes:
        return None
    inputs = layer._inbound_nodes[0].input_tensors
    return inputs[0]._keras_history[0] if inputs else None


def _per_sample(shape) -> tuple[int, ...]:
    return tuple(int(d) for d in shape[1:])


def _kernel_mask_density(layer) -> tuple[int, float]:
    """(non-zero weights the mask keeps, their fraction of the kernel)."""
    size = math.prod(layer.kernel.shape)
    mask = getattr(layer, "kernel_mask", None)
    kept = size if mask is None else int(np.count_nonzero(np.asarray(mask)))
    return kept, kept / size


def _expected_rows(model: keras.Model, k_mode: str) -> list[LayerCount]:
    density: dict[int, float] = {}  # id(layer) -> expected fraction of non-zero outputs
    rows = []
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if isinstance(model, keras.Sequential):
        producers = [None, *layers[:-1]]
    else:
        producers = [_producer(layer) for layer in layers]
    for layer, producer in zip(layers, producers, strict=True):
        a_in = density.get(id(producer), 1.0)
        out_shape = _per_sample(layer.output.shape)
        kind = type(layer).__name__
        a_out = 1.0
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
            kept, w_density = _kernel_mask_density(layer)
            if isinstance(layer, keras.layers.Conv2D):
                positions = math.prod(out_shape[:-1])  # H_out * W_out
            else:
                positions = math.prod(_per_sample(layer.input.shape)[:-1])
            dense = positions * math.prod(layer.kernel.shape)
            rows.append(
                LayerCount(
                    layer.name,
                    kind,
                    out_shape,
                    dense,
                    a_in * positions * kept,
                    input_density=a_in,
                    weight_density=w_density,
                )
            )
        else:
            elementwise = 0
            if isinstance(layer, KWinners):
                if not layer.is_relu:
                    k = layer.k if k_mode == "training" else layer.k_inference
                    a_out = min(k, layer.units) / layer.units
                    elementwise = layer.units  # boost factors
            elif isinstance(layer, keras.layers.BatchNormalization):
                elementwise = math.prod(out_shape)
            elif isinstance(layer, _PASS_THROUGH):
                a_out = a_in
            elif isinstance(layer, _POOLING):
                # A window is non-zero if any of its inputs is (inputs independent).
                window = math.prod(layer.pool_size)
                a_out = 1.0 - (1.0 - a_in) ** window
            rows.append(
                LayerCount(
                    layer.name, kind, out_shape, 0, 0.0, input_density=a_in, elementwise=elementwise
                )
            )
        density[id(layer)] = a_out
    return rows


def _as_batches(inputs, batch_size: int):
    if isinstance(inputs, tf.data.Dataset):
        for element in inputs:
            yield element[0] if isinstance(element, tuple | list) else element
        return
    x = np.asarray(inputs, np.float32)
    for i in range(0, len(x), batch_size):
        yield x[i : i + batch_size]


def _measure(model: keras.Model, rows: list[LayerCount], inputs, batch_size: int):
    """Mean non-zero products per sample of every conv / dense layer, and the sample count."""
    layers = {layer.name: layer for layer in model.layers}
    compute = [
        layers[r.name]
        for r in rows
        if isinstance(layers[r.name], keras.layers.Conv2D | keras.layers.Dense)
    ]
    probe = keras.Model(single_input(model), [layer.input for layer in compute])
    totals = np.zeros(len(compute))
    samples = 0
    for batch in _as_batches(inputs, batch_size):
        outputs = probe(batch, training=False)
        if len(compute) == 1:
            outputs = [outputs]
        samples += int(tf.shape(batch)[0])
        for i, (layer, x) in enumerate(zip(compute, outputs, strict=True)):
            active = tf.cast(tf.not_equal(x, 0), tf.float32)
            weights = tf.cast(tf.not_equal(layer.kernel, 0), tf.float32)
            if isinstance(layer, keras.layers.Conv2D):
                # Convolving the two indicators counts, per output, the taps where
                # input and weight are both non-zero (counts <= K*K*C_in: exact in float32).
                hits = tf.nn.conv2d(
                    active,
                    weights,
                    strides=layer.strides,
                    padding=layer.padding.upper(),
                    dilations=layer.dilation_rate,
                )
                totals[i] += float(tf.reduce_sum(tf.cast(hits, tf.float64)))
            else:
                per_input = tf.reduce_sum(tf.reshape(active, [-1, active.shape[-1]]), axis=0)
                row_nonzeros = tf.reduce_sum(weights, axis=1)
                totals[i] += float(
                    tf.reduce_sum(
                        tf.cast(per_input, tf.float64) * tf.cast(row_nonzeros, tf.float64)
                    )
                )
    if samples == 0:
        raise ValueError("count_multiplies got inputs with no samples.")
    measured = dict(zip([layer.name for layer in compute], totals / samples, strict=True))
    return measured, samples


def count_multiplies(
    model: keras.Model, inputs=None, k: str = "training", batch_size: int = 256
) -> MultiplyCount:
    """Counts dense, expected non-zero and measured non-zero multiplies per layer.

    Expected counts follow the paper (Section 4.3): a convolution or dense layer fed by
    a k-winners layer with `k` winners out of `n` is expected to multiply
    `k / n * w * dense` non-zeros, where `w` is the fraction of weights its mask
    keeps. Inputs coming from a ReLU or from the data count as dense, as in the
    paper. Measured counts, when `inputs` are given, are the products of a non-zero
    input with a non-zero weight actually met at inference (`training=False`, so
    k-winners keeps `round(1.5 * k)` winners and ReLUs give their real zeros).

    Pooling, ReLU and k-winners layers do no multiply-accumulates (comparisons and a
    selection); batch norm and the boost factors cost one element-wise multiply per
    value, listed in the `elementwise` column and left out of the totals.

    Args:
        model: A built Keras model (e.g. from `sparse_keras.models.build`).
        inputs: Optional preprocessed inputs: an array `(N, *input_shape)` or a
            `tf.data.Dataset` of inputs or `(inputs, labels)` batches.
        k: "training" (the paper's choice: it reproduces its 10.5x and 20x for GSC
            Sparse CNN-2) or "inference" (`round(k * k_inference_factor)` winners).
        batch_size: Batch size for array inputs.

    Returns:
        A `MultiplyCount` (`.to_markdown()`, `.to_text()`, `.layer(name)`).

    Example:

    >>> model = sparse_keras.models.build("gsc_sparse_cnn2", seed=0)
    >>> counts = count_multiplies(model)
    >>> round(counts.layer("conv2").expected_ratio, 2), round(counts.layer("hidden").expected_ratio, 2)
    (10.45, 20.0)
    """
    if k not in K_MODES:
        raise ValueError(f"k must be one of {K_MODES}, got {k!r}.")
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built; call it on an input first.")
    rows = _expected_rows(model, k)
    samples = 0
    if inputs is not None:
        measured, samples = _measure(model, rows, inputs, batch_size)
        rows = [dataclasses.replace(row, measured=measured.get(row.name, 0.0)) for row in rows]
    return MultiplyCount(model.name, k, samples, tuple(rows))


def simulate_trained_state(
    model: keras.Model, inputs=None, seed: int = 0, epochs: int = 10
) -> keras.Model:
    """Gives an untrained network the non-trainable state of a trained one (in place).

    For tests and benchmarks when no trained weights are at hand: the weights stay as
    initialised, but k-winners layers get duty cycles spread around their target
    density (`target * U(0.5, 1.5)`), a full duty-cycle period of samples seen and the
    boost strength left after `epochs` epochs of decay; batch-norm layers get moving
    statistics, measured on `inputs` (layer by layer) when given, random otherwise.

    Args:
        model: A Keras model built from `sparse_keras` layers.
        inputs: Optional preprocessed inputs `(N, *input_shape)` for the batch-norm
            statistics.
        seed: Seed of the random state.
        epochs: Epochs of boost-strength decay to apply.

    Returns:
        The same model.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, KWinners) and layer.built:
            duty = layer.target_density * rng.uniform(0.5, 1.5, layer.duty_cycles.shape)
            layer.duty_cycles.assign(np.minimum(duty, 1.0).astype("float32"))
            layer.samples_seen.assign(float(layer.duty_cycle_period))
            layer.boost_strength.assign(
                layer.initial_boost_strength * layer.boost_strength_factor**epochs
            )
        elif isinstance(layer, keras.layers.BatchNormalization) and layer.built:
            if inputs is None:
                mean = rng.normal(0.0, 0.1, layer.moving_mean.shape)
                variance = rng.uniform(0.5, 2.0, layer.moving_variance.shape)
            else:
                # In order, so each layer's statistics see the earlier layers' state.
                probe = keras.Model(single_input(model), layer.input)
                x = probe(np.asarray(inputs, np.float32), training=False)
                axes = tuple(range(len(x.shape) - 1))
                mean = np.mean(np.asarray(x, np.float64), axis=axes)
                variance = np.var(np.asarray(x, np.float64), axis=axes)
            layer.moving_mean.assign(mean.astype("float32"))
            layer.moving_variance.assign(variance.astype("float32"))
    return model
