"""SparseDense / SparseConv2D masks: exact counts, enforcement under training, persistence."""

import keras
import numpy as np
import pytest

from sparse_keras import FixedMask, SparseConv2D, SparseDense
from sparse_keras.layers.sparse import kept_fan_in_initializer, random_fan_in_mask


@pytest.mark.parametrize(
    "shape, density, expected",
    [
        ((100, 7), 0.3, 30),
        ((1024, 700), 0.3, 307),
        ((10, 3), 0.05, 1),
        ((5, 5, 32, 64), 0.4, 320),
        ((9, 4), 1.0, 9),
    ],
)
def test_mask_keeps_round_density_times_fan_in_per_output_unit(shape, density, expected):
    mask = random_fan_in_mask(shape, density, seed=3)
    per_unit = mask.reshape(-1, shape[-1]).sum(axis=0)
    assert (per_unit == expected).all()
    assert set(np.unique(mask)) <= {0.0, 1.0}


def test_masks_differ_between_units_and_seeds_and_repeat_with_a_seed():
    a = random_fan_in_mask((50, 20), 0.2, seed=1)
    b = random_fan_in_mask((50, 20), 0.2, seed=1)
    c = random_fan_in_mask((50, 20), 0.2, seed=2)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert len({tuple(col) for col in a.T}) > 1


def test_sparse_dense_kernel_has_exact_nonzeros_per_unit():
    layer = SparseDense(700, density=0.3, seed=0)
    layer.build((None, 1024))
    mask = layer.kernel_mask.numpy()
    assert (mask.sum(axis=0) == 307).all()
    assert layer.nonzero_weights == 307 * 700
    # Zero outside the mask; inside it, a float32 uniform draw can be exactly 0.0 only rarely.
    assert (layer.kernel.numpy()[mask == 0] == 0).all()
    assert np.count_nonzero(layer.kernel.numpy()) >= 307 * 700 - 5


def test_sparse_conv_counts_per_output_channel():
    layer = SparseConv2D(64, 5, density=0.1, seed=0)
    layer.build((None, 14, 14, 32))
    mask = layer.kernel_mask.numpy().reshape(-1, 64)
    assert (mask.sum(axis=0) == round(0.1 * 5 * 5 * 32)).all()
    assert (layer.kernel.numpy().reshape(-1, 64)[mask == 0] == 0).all()


def test_same_seed_same_mask_across_layers():
    a, b = SparseDense(8, density=0.5, seed=7), SparseDense(8, density=0.5, seed=7)
    a.build((None, 16))
    b.build((None, 16))
    np.testing.assert_array_equal(a.kernel_mask.numpy(), b.kernel_mask.numpy())


def test_density_one_is_an_ordinary_dense_layer():
    layer = SparseDense(4, density=1.0)
    layer.build((None, 6))
    assert layer.kernel_mask is None
    assert np.count_nonzero(layer.kernel.numpy()) == 24
    assert [w.name for w in layer.weights] == ["kernel", "bias"]


def test_default_initialiser_uses_the_full_fan_in_as_the_released_code():
    # PyTorch's nn.Linear init U(±1/sqrt(400)) over all 400 inputs, then the mask zeroes
    # 75%: the kept weights are not re-scaled (normalize_weights is off in every config).
    layer = SparseDense(2000, density=0.25, seed=0)
    layer.build((None, 400))
    kept = layer.kernel.numpy()[layer.kernel_mask.numpy() == 1]
    bound = 1 / np.sqrt(400)
    assert np.abs(kept).max() <= bound
    assert np.abs(kept).max() > 0.95 * bound


def test_kept_fan_in_initialiser_is_an_option():
    layer = SparseDense(
        2000, density=0.25, seed=0, kernel_initializer=kept_fan_in_initializer(0.25)
    )
    layer.build((None, 400))
    kept = layer.kernel.numpy()[layer.kernel_mask.numpy() == 1]
    bound = 1 / np.sqrt(0.25 * 400)  # twice the full-fan-in bound
    # float32 rounds the bound 0.1 up to 0.100000001, which a draw can reach.
    assert 0.95 * bound < np.abs(kept).max() <= np.float32(bound)
    with pytest.raises(ValueError, match=r"density must be a number in \(0, 1\], got 0"):
        kept_fan_in_initializer(0)


def _sparse_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            SparseConv2D(6, 3, density=0.3, seed=1, name="conv"),
            keras.layers.Flatten(),
            SparseDense(
                16,
                density=0.2,
                seed=2,
                name="hidden",
                kernel_constraint=keras.constraints.MaxNorm(0.5),
            ),
            keras.layers.Dense(4, name="out"),
        ]
    )


@pytest.mark.parametrize(
    "optimizer",
    [lambda: keras.optimizers.SGD(0.5, momentum=0.9), lambda: keras.optimizers.Adam(0.05)],
)
def test_masked_weights_stay_exactly_zero_through_fit(optimizer):
    model = _sparse_model()
    masks = {name: model.get_layer(name).kernel_mask.numpy().copy() for name in ("conv", "hidden")}
    model.compile(optimizer(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    before = model.get_layer("hidden").kernel.numpy().copy()
    model.fit(
        rng.normal(size=(64, 8, 8, 3)), rng.integers(0, 4, 64), batch_size=8, epochs=2, verbose=0
    )
    for name, mask in masks.items():
        layer = model.get_layer(name)
        kernel = layer.kernel.numpy()
        np.testing.assert_array_equal(layer.kernel_mask.numpy(), mask)
        assert (kernel[mask == 0] == 0).all()
        assert (
            np.count_nonzero(kernel.reshape(-1, kernel.shape[-1]), axis=0)
            <= mask.reshape(-1, mask.shape[-1]).sum(0)
        ).all()
    after = model.get_layer("hidden").kernel.numpy()
    assert not np.allclose(before, after)  # it did train
    # The user's MaxNorm constraint still applies, before the mask.
    assert np.linalg.norm(after, axis=0).max() <= 0.5 + 1e-5


def test_fixed_mask_constraint_alone():
    mask = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    out = FixedMask(mask, inner=keras.constraints.NonNeg())(
        np.array([[-2.0, 3.0], [4.0, -5.0]], np.float32)
    )
    np.testing.assert_array_equal(np.asarray(out), [[0.0, 0.0], [0.0, 0.0]])
    out = FixedMask(mask)(np.array([[-2.0, 3.0], [4.0, -5.0]], np.float32))
    np.testing.assert_array_equal(np.asarray(out), [[-2.0, 0.0], [0.0, -5.0]])


@pytest.mark.parametrize("density", [0.0, -0.1, 1.5, "0.3", None])
def test_bad_density_is_named(density):
    with pytest.raises(ValueError, match=r"density must be a number in \(0, 1\], got"):
        SparseDense(4, density=density)
    with pytest.raises(ValueError, match=r"density must be a number in \(0, 1\], got"):
        SparseConv2D(4, 3, density=density)


def test_bad_seed_and_data_format_are_named():
    with pytest.raises(ValueError, match="seed must be an integer >= 0 or None, got 1.5"):
        SparseDense(4, density=0.5, seed=1.5)
    with pytest.raises(ValueError, match="channels_last"):
        SparseConv2D(4, 3, density=0.5, data_format="channels_first")


def test_config_round_trip_keeps_user_constraint_only():
    layer = SparseDense(5, density=0.4, seed=3, kernel_constraint=keras.constraints.MaxNorm(2.0))
    layer.build((None, 10))
    config = layer.get_config()
    assert config["density"] == 0.4 and config["seed"] == 3
    assert config["kernel_constraint"]["class_name"] == "MaxNorm"
    clone = SparseDense.from_config(config)
    clone.build((None, 10))
    np.testing.assert_array_equal(clone.kernel_mask.numpy(), layer.kernel_mask.numpy())
    assert isinstance(clone.kernel_constraint, FixedMask)
