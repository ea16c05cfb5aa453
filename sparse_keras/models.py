"""The networks of the paper's Table 3, each built from one small config.

Every network is `[conv 5x5 valid -> (batch norm) -> max-pool 2 -> ReLU | k-winners]`
once or twice, then a hidden layer `[dense -> (batch norm) -> ReLU | k-winners ->
(dropout)]`, then a linear output layer. Models output logits; apply a softmax for
probabilities.
"""

from __future__ import annotations

import dataclasses
import math

import keras

from sparse_keras.layers import KWinners, SparseDense
from sparse_keras.layers.sparse import torch_default_initializer


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Everything that distinguishes one Table 3 network from another.

    Attributes:
        dataset: "mnist" or "gsc" (the input the network expects).
        input_shape: Feature shape, channels last.
        num_classes: Width of the output layer.
        conv_filters: Filters of each conv layer.
        conv_k: Winners of each conv layer's k-winners, None for ReLU.
        hidden_units: Units of the hidden layer.
        hidden_k: Winners of the hidden layer, None for ReLU.
        weight_density: Fraction of hidden-layer weights kept (1.0 = dense).
        batch_norm: Batch norm (no learned scale or offset) before each non-linearity.
        dropout: Dropout rate after the hidden layer.
        boost_strength: Initial boost strength of every k-winners layer.
        boost_strength_factor: Per-epoch boost decay factor.
        k_inference_factor: Inference winners = round(k * factor).
        duty_cycle_period: Duty-cycle averaging period in samples.
    """

    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    conv_filters: tuple[int, ...]
    conv_k: tuple[int | None, ...]
    hidden_units: int
    hidden_k: int | None
    weight_density: float = 1.0
    batch_norm: bool = False
    dropout: float = 0.0
    boost_strength: float = 1.5
    boost_strength_factor: float = 0.85
    k_inference_factor: float = 1.5
    duty_cycle_period: int = 1000

    @property
    def is_sparse(self) -> bool:
        return self.hidden_k is not None or any(k is not None for k in self.conv_k)


_MNIST = dict(dataset="mnist", input_shape=(28, 28, 1), num_classes=10, boost_strength_factor=0.85)
_GSC = dict(
    dataset="gsc",
    input_shape=(32, 32, 1),
    num_classes=12,
    batch_norm=True,
    boost_strength_factor=0.9,
)

CONFIGS: dict[str, NetworkConfig] = {
    "mnist_dense_cnn1": NetworkConfig(
        **_MNIST, conv_filters=(30,), conv_k=(None,), hidden_units=1000, hidden_k=None
    ),
    "mnist_dense_cnn2": NetworkConfig(
        **_MNIST, conv_filters=(30, 30), conv_k=(None, None), hidden_units=1000, hidden_k=None
    ),
    "mnist_sparse_cnn1": NetworkConfig(
        **_MNIST,
        conv_filters=(30,),
        conv_k=(400,),
        hidden_units=150,
        hidden_k=50,
        weight_density=0.3,
    ),
    "mnist_sparse_cnn2": NetworkConfig(
        **_MNIST,
        conv_filters=(32, 64),
        conv_k=(400, 300),
        hidden_units=700,
        hidden_k=100,
        weight_density=0.3,
    ),
    "mnist_dense_cnn2_sp3": NetworkConfig(
        **_MNIST,
        conv_filters=(30, 30),
        conv_k=(None, None),
        hidden_units=700,
        hidden_k=100,
        weight_density=0.3,
    ),
    "mnist_sparse_cnn2_d3": NetworkConfig(
        **_MNIST, conv_filters=(32, 64), conv_k=(400, 300), hidden_units=1000, hidden_k=None
    ),
    "mnist_sparse_cnn2_w1": NetworkConfig(
        **_MNIST, conv_filters=(32, 64), conv_k=(400, 300), hidden_units=700, hidden_k=100
    ),
    "mnist_sparse_cnn2_dsw": NetworkConfig(
        **_MNIST,
        conv_filters=(32, 64),
        conv_k=(400, 300),
        hidden_units=1000,
        hidden_k=None,
        weight_density=0.3,
    ),
    "gsc_dense_cnn2": NetworkConfig(
        **_GSC, conv_filters=(64, 64), conv_k=(None, None), hidden_units=1000, hidden_k=None
    ),
    "gsc_sparse_cnn2": NetworkConfig(
        **_GSC,
        conv_filters=(64, 64),
        conv_k=(1200, 200),
        hidden_units=1000,
        hidden_k=100,
        weight_density=0.4,
    ),
    "gsc_super_sparse_cnn2": NetworkConfig(
        **_GSC,
        conv_filters=(64, 64),
        conv_k=(1200, 200),
        hidden_units=1500,
        hidden_k=100,
        weight_density=0.1,
    ),
}


def list_models() -> list[str]:
    """Names of all networks `build` knows, in Table 3 order."""
    return list(CONFIGS)


def get_config(name: str, **overrides) -> NetworkConfig:
    """The `NetworkConfig` of a named network, with fields replaced by `overrides`."""
    if name not in CONFIGS:
        raise ValueError(f"Unknown network {name!r}; available: {', '.join(CONFIGS)}.")
    fields = {f.name for f in dataclasses.fields(NetworkConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(
            f"Unknown override(s) {sorted(unknown)} for {name!r}; valid fields: {sorted(fields)}."
        )
    return dataclasses.replace(CONFIGS[name], **overrides)


def _activation(k: int | None, config: NetworkConfig, name: str) -> keras.layers.Layer:
    if k is None:
        return keras.layers.ReLU(name=f"{name}_relu")
    return KWinners(
        k,
        k_inference_factor=config.k_inference_factor,
        boost_strength=config.boost_strength,
        boost_strength_factor=config.boost_strength_factor,
        duty_cycle_period=config.duty_cycle_period,
        name=f"{name}_kwinners",
    )


def _batch_norm(name: str) -> keras.layers.Layer:
    # PyTorch's BatchNorm defaults (momentum 0.1 = Keras 0.9, eps 1e-5), no affine part.
    return keras.layers.BatchNormalization(
        center=False, scale=False, momentum=0.9, epsilon=1e-5, name=name
    )


def _torch_init(fan_in: int) -> dict:
    """Kernel and bias initializers of PyTorch's default: both `U(±1 / sqrt(fan_in))`."""
    return {
        "kernel_initializer": torch_default_initializer(),
        "bias_initializer": torch_default_initializer(fan_in),
    }


def build_from_config(
    config: NetworkConfig, name: str = "network", seed: int | None = None
) -> keras.Model:
    """Builds the functional Keras model a `NetworkConfig` describes.

    Args:
        config: The network's config.
        name: Model name.
        seed: Seed of the hidden layer's weight mask (weights themselves follow
            `keras.utils.set_random_seed`).

    Returns:
        An uncompiled `keras.Model` from features `[batch, *input_shape]` to logits
        `[batch, num_classes]`.
    """
    if len(config.conv_filters) != len(config.conv_k):
        raise ValueError(
            f"conv_filters {config.conv_filters} and conv_k {config.conv_k} differ in length."
        )
    inputs = keras.Input(config.input_shape, name="features")
    x = inputs
    for i, (filters, k) in enumerate(zip(config.conv_filters, config.conv_k, strict=True), start=1):
        x = keras.layers.Conv2D(filters, 5, name=f"conv{i}", **_torch_init(25 * x.shape[-1]))(x)
        if config.batch_norm:
            x = _batch_norm(f"conv{i}_bn")(x)
        x = keras.layers.MaxPooling2D(2, name=f"conv{i}_pool")(x)
        x = _activation(k, config, f"conv{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = SparseDense(
        config.hidden_units,
        density=config.weight_density,
        seed=seed,
        name="hidden",
        # The full fan-in, also for sparse weights: the released configs never turn on
        # `normalize_weights` (SPEC §2).
        **_torch_init(x.shape[-1]),
    )(x)
    if config.batch_norm:
        x = _batch_norm("hidden_bn")(x)
    x = _activation(config.hidden_k, config, "hidden")(x)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    outputs = keras.layers.Dense(
        config.num_classes, name="logits", **_torch_init(config.hidden_units)
    )(x)
    return keras.Model(inputs, outputs, name=name)


def build(name: str, seed: int | None = None, **overrides) -> keras.Model:
    """Builds a Table 3 network by name.

    Args:
        name: One of `list_models()`, e.g. "mnist_sparse_cnn2".
        seed: Seed of the sparse weight mask.
        **overrides: `NetworkConfig` fields to change, e.g. `dropout=0.5` or
            `num_classes=10`.

    Returns:
        An uncompiled `keras.Model` producing logits.

    Example:

    >>> model = build("mnist_sparse_cnn2", seed=0)
    >>> model.output_shape
    (None, 10)
    """
    return build_from_config(get_config(name, **overrides), name=name, seed=seed)


def k_winners_fraction(layer_k: int, shape: tuple[int, ...]) -> float:
    """`k / prod(shape)`, the "L1 sparsity" percentages of Table 3 (as a density)."""
    return layer_k / math.prod(shape)
