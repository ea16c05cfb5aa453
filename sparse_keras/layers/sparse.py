"""Dense and convolutional layers whose kernels keep a fixed random fraction of weights."""

from __future__ import annotations

import keras
import numpy as np

from sparse_keras import validation
from sparse_keras.constraints import FixedMask


def random_fan_in_mask(shape: tuple[int, ...], density: float, seed: int | None) -> np.ndarray:
    """A 0/1 kernel mask keeping exactly `round(density * fan_in)` weights per output unit.

    The kernel's last axis is the output axis (Keras layout); all other axes form the
    fan-in (`kh * kw * c_in` for a convolution).

    Args:
        shape: Kernel shape, output units last.
        density: Fraction of each output unit's incoming weights to keep, in (0, 1].
        seed: Seed of the NumPy generator; the same seed gives the same mask.

    Returns:
        float32 array of `shape` with values 0 and 1.
    """
    density = validation.fraction("density", density)
    fan_in = int(np.prod(shape[:-1]))
    units = shape[-1]
    keep = max(1, round(density * fan_in))
    rng = np.random.default_rng(seed)
    # The `keep` smallest of fan_in uniform draws pick a uniformly random subset.
    order = np.argsort(rng.random((units, fan_in)), axis=1)[:, :keep]
    mask = np.zeros((units, fan_in), np.float32)
    np.put_along_axis(mask, order, 1.0, axis=1)
    return mask.T.reshape(shape)


def torch_default_initializer(fan_in: int | None = None) -> keras.initializers.Initializer:
    """PyTorch's default initializer of `nn.Linear` / `nn.Conv2d`: `U(±1 / sqrt(fan_in))`.

    PyTorch draws both the weights (Kaiming-uniform with `a = sqrt(5)`) and the biases from
    this range, with `fan_in` = input features (dense) or `kh * kw * c_in` (conv). The
    authors' released code keeps this init everywhere, sparse layers included: the
    fan-in is the layer's *full* fan-in even where most weights are then zeroed.

    Args:
        fan_in: `None` gives a kernel initializer that reads the fan-in from the kernel's
            shape (all axes but the last). An integer gives a fixed range, as a bias
            initializer needs (a bias's shape does not hold the fan-in).

    Returns:
        A Keras initializer.
    """
    if fan_in is None:
        return keras.initializers.VarianceScaling(
            scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
        )
    fan_in = validation.positive_int("fan_in", fan_in)
    bound = 1.0 / float(np.sqrt(fan_in))
    return keras.initializers.RandomUniform(-bound, bound)


def kept_fan_in_initializer(density: float) -> keras.initializers.Initializer:
    """`U(±1 / sqrt(density * fan_in))`: PyTorch's default range computed on the kept weights.

    This is what the released code's `normalize_weights=True` option would give (every
    released config leaves it off). It keeps each unit's initial output variance
    independent of the density, which helps when training very sparse layers from
    scratch with a recipe of your own. The paper's networks do not use it
    (`sparse_keras.models` passes `torch_default_initializer()`).

    Args:
        density: The layer's weight density, in (0, 1].
    """
    density = validation.fraction("density", density)
    return keras.initializers.VarianceScaling(
        scale=1.0 / (3.0 * density), mode="fan_in", distribution="uniform"
    )


class _FixedMaskMixin:
    """Shared mask handling of SparseDense and SparseConv2D.

    The mask weight is created before the kernel so that the kernel's constraint can
    refer to it; the kernel is zeroed outside the mask once, and the constraint keeps
    it so after every optimizer step.
    """

    def _init_mask(self, density, seed, kwargs):
        self.density = validation.fraction("density", density)
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0
        ):
            raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}.")
        self.seed = None if seed is None else int(seed)
        if kwargs.get("kernel_initializer") is None:
            kwargs["kernel_initializer"] = torch_default_initializer()
        return kwargs

    def _build_mask(self, kernel_shape):
        self.user_kernel_constraint = self.kernel_constraint
        if self.density == 1.0:
            self.kernel_mask = None
            return
        # Without a seed every layer still gets its own mask, drawn from NumPy's
        # global generator (so np.random.seed makes whole models reproducible).
        seed = self.seed if self.seed is not None else int(np.random.randint(2**31 - 1))
        self.kernel_mask = self.add_weight(
            name="kernel_mask",
            shape=kernel_shape,
            initializer=keras.initializers.Constant(
                random_fan_in_mask(kernel_shape, self.density, seed)
            ),
            trainable=False,
        )
        self.kernel_constraint = FixedMask(self.kernel_mask, inner=self.user_kernel_constraint)

    def _zero_masked_kernel(self):
        if self.kernel_mask is not None:
            self.kernel.assign(self.kernel_constraint(self.kernel))

    # Keras's Dense and Conv layers save a fixed list of variables (kernel, bias,
    # quantisation state); the mask rides along under its own key.
    def save_own_variables(self, store):
        super().save_own_variables(store)
        if self.built and self.kernel_mask is not None:
            store["kernel_mask"] = self.kernel_mask

    def load_own_variables(self, store):
        if self.kernel_mask is None:
            if "kernel_mask" in store:
                saved = np.asarray(store["kernel_mask"])
                raise ValueError(
                    f"Layer {self.name!r} is dense (density 1.0) but the saved weights hold a "
                    f"kernel_mask of density {saved.mean():.4g}: they come from a sparse layer. "
                    "Build the layer with the density it was saved with."
                )
        else:
            if "kernel_mask" not in store:
                raise ValueError(
                    f"Layer {self.name!r} has a sparse kernel (density {self.density}) but the saved "
                    "weights hold no kernel_mask: they come from a dense layer or another network."
                )
            mask = np.asarray(store["kernel_mask"])
            self._check_saved_mask(mask)
            # Restore the mask first: assigning the kernel does not re-apply the constraint.
            self.kernel_mask.assign(mask)
        super().load_own_variables(store)

    def _check_saved_mask(self, mask: np.ndarray) -> None:
        """Refuses a saved mask the layer's own `density` could not have made.

        Loading it anyway would leave `density` (and `get_config`, the model card's
        numbers, the multiply accounting) disagreeing with the weights actually used.
        """
        shape = tuple(self.kernel_mask.shape)
        if mask.shape != shape:
            raise ValueError(
                f"Layer {self.name!r}: the saved kernel_mask has shape {mask.shape}, expected "
                f"{shape} (the layer's kernel shape)."
            )
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError(
                f"Layer {self.name!r}: the saved kernel_mask must hold only 0 and 1, got values "
                f"{np.unique(mask)[:5].tolist()}..."
            )
        fan_in = int(np.prod(shape[:-1]))
        expected = max(1, round(self.density * fan_in))
        kept = mask.reshape(fan_in, shape[-1]).sum(axis=0)
        if not np.all(kept == expected):
            raise ValueError(
                f"Layer {self.name!r} has density {self.density} (keeps {expected} of {fan_in} "
                f"weights per output unit), but the saved kernel_mask keeps "
                f"{int(kept.min())}..{int(kept.max())} (density {kept.mean() / fan_in:.4g}): "
                "the weights come from a layer of another density. Build the layer with the "
                "density it was saved with."
            )

    def _mask_config(self, config):
        config["kernel_constraint"] = keras.constraints.serialize(self.user_kernel_constraint)
        config.update({"density": self.density, "seed": self.seed})
        return config

    @property
    def nonzero_weights(self) -> int:
        """Number of kernel weights the mask keeps (all of them when density is 1)."""
        if self.kernel_mask is None:
            return int(np.prod(self.kernel.shape))
        return int(keras.ops.sum(self.kernel_mask))


@keras.saving.register_keras_serializable(package="sparse_keras")
class SparseDense(_FixedMaskMixin, keras.layers.Dense):
    """A `Dense` layer with a fixed random sparse kernel.

    At `build` each output unit keeps exactly `round(density * fan_in)` randomly
    chosen incoming weights; the others are zero and stay zero forever: the 0/1 mask
    is a non-trainable weight (saved with the model) and a `FixedMask` kernel
    constraint re-applies it after every optimizer update. `density=1.0` gives an
    ordinary `Dense` layer.

    Args:
        units: Number of output units.
        density: Fraction of each unit's incoming weights that are kept, in (0, 1].
        seed: Integer seed of the mask; two layers with the same seed and shape get
            the same mask. `None` draws one from NumPy's global generator.
        **kwargs: Any `keras.layers.Dense` argument. `kernel_initializer` defaults
            to PyTorch's `U(±1 / sqrt(fan_in))` over the *full* fan-in, as the authors'
            released code (`torch_default_initializer`); pass
            `kernel_initializer=kept_fan_in_initializer(density)` to scale to the kept
            fan-in instead. A `kernel_constraint` is applied before the mask.

    Input shape:
        `(batch, ..., input_dim)`.

    Output shape:
        `(batch, ..., units)`.

    Example:

    >>> layer = SparseDense(8, density=0.25, seed=1)
    >>> _ = layer(np.ones((2, 16), "float32"))
    >>> np.count_nonzero(layer.kernel.numpy(), axis=0).tolist()
    [4, 4, 4, 4, 4, 4, 4, 4]
    """

    def __init__(self, units: int, density: float, seed: int | None = None, **kwargs):
        kwargs = self._init_mask(density, seed, kwargs)
        super().__init__(units, **kwargs)

    def build(self, input_shape):
        self._build_mask((input_shape[-1], self.units))
        super().build(input_shape)
        self._zero_masked_kernel()

    def get_config(self):
        return self._mask_config(super().get_config())


@keras.saving.register_keras_serializable(package="sparse_keras")
class SparseConv2D(_FixedMaskMixin, keras.layers.Conv2D):
    """A `Conv2D` layer whose filters keep a fixed random fraction of their weights.

    Each output channel keeps exactly `round(density * kh * kw * c_in)` weights of its
    filter; the mask is saved with the model and enforced after every optimizer
    update, as in `SparseDense`. `density=1.0` gives an ordinary `Conv2D`.

    Args:
        filters: Number of output channels.
        kernel_size: Integer or pair, the filter size.
        density: Fraction of each filter's weights that are kept, in (0, 1].
        seed: Integer seed of the mask, or `None`.
        **kwargs: Any `keras.layers.Conv2D` argument (channels-last data only).
            `kernel_initializer` defaults as in `SparseDense`.

    Input shape:
        `(batch, height, width, channels)`.

    Output shape:
        `(batch, new_height, new_width, filters)`.

    Example:

    >>> layer = SparseConv2D(4, 3, density=0.5, seed=0)
    >>> _ = layer(np.ones((1, 8, 8, 2), "float32"))
    >>> np.count_nonzero(layer.kernel.numpy().reshape(-1, 4), axis=0).tolist()
    [9, 9, 9, 9]
    """

    def __init__(
        self, filters: int, kernel_size, density: float, seed: int | None = None, **kwargs
    ):
        kwargs = self._init_mask(density, seed, kwargs)
        super().__init__(filters, kernel_size, **kwargs)
        if self.data_format != "channels_last":
            raise ValueError(
                f"SparseConv2D supports data_format='channels_last' only, got {self.data_format!r}."
            )

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(
                f"SparseConv2D needs a known channel dimension, got {tuple(input_shape)}."
            )
        self._build_mask((*self.kernel_size, in_channels // self.groups, self.filters))
        super().build(input_shape)
        self._zero_masked_kernel()

    def get_config(self):
        return self._mask_config(super().get_config())
