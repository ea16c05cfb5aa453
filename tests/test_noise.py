"""The paper's noise protocols (sparse_keras.noise) and MNIST's use of them."""

import numpy as np
import pytest
import tensorflow as tf

from sparse_keras.data import mnist
from sparse_keras.noise import add_pixel_noise, blend_white_noise

NOISE_VALUE = np.float32(0.7469)


def changed(noisy, clean):
    """Per-image boolean mask of pixels that differ, flattened to [batch, pixels]."""
    return (np.asarray(noisy) != np.asarray(clean)).reshape(len(clean), -1)


@pytest.fixture
def mnist_dir(data_dir):
    return data_dir / "mnist"


# --------------------------------------------------------------------------- pixel noise


@pytest.mark.parametrize("eta", [0.05, 0.1, 0.25, 0.5, 1.0])
def test_pixel_noise_sets_exactly_int_784_eta_pixels_to_0_7469(eta):
    clean = np.zeros([16, 28, 28], np.float32)
    noisy = mnist.add_noise(clean, eta, seed=3).numpy()
    mask = changed(noisy, clean)
    np.testing.assert_array_equal(mask.sum(axis=1), int(784 * eta))
    np.testing.assert_array_equal(noisy.reshape(16, -1)[mask], NOISE_VALUE)
    assert noisy.shape == clean.shape and noisy.dtype == np.float32


def test_pixel_noise_value_is_mean_plus_two_std(mnist_dir):
    # Computed here from the 60,000 training images (pixels scaled to [0, 1]), from a
    # histogram of the 256 grey levels: exact, and no 47-million-value float array.
    images, _ = mnist.load_arrays("train", data_dir=mnist_dir, download=False)
    counts = np.bincount(images.ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256) / 255.0
    mean = np.sum(counts * levels) / counts.sum()
    std = np.sqrt(np.sum(counts * (levels - mean) ** 2) / counts.sum())
    assert (round(mean, 4), round(std, 4)) == (0.1307, 0.3081)
    # The constant is the paper's four-decimal figure: within rounding of the true value.
    assert abs(mnist.NOISE_VALUE - (mean + 2 * std)) < 5e-5
    assert abs(NOISE_VALUE - (mean + 2 * std)) < 5e-5


def test_pixel_noise_level_zero_changes_nothing():
    clean = np.random.default_rng(0).random([4, 28, 28, 1], dtype=np.float32)
    np.testing.assert_array_equal(mnist.add_noise(clean, 0.0, seed=1).numpy(), clean)


def test_pixel_noise_keeps_channel_axis_and_leaves_other_pixels():
    clean = np.random.default_rng(0).random([6, 28, 28, 1], dtype=np.float32) * 0.5  # never 0.7469
    noisy = mnist.add_noise(clean, 0.2, seed=0).numpy()
    assert noisy.shape == (6, 28, 28, 1)
    mask = changed(noisy, clean)
    np.testing.assert_array_equal(mask.sum(axis=1), int(784 * 0.2))
    np.testing.assert_array_equal(noisy.reshape(6, -1)[~mask], clean.reshape(6, -1)[~mask])


def test_pixel_noise_positions_differ_between_images():
    clean = np.zeros([32, 28, 28], np.float32)
    masks = changed(mnist.add_noise(clean, 0.1, seed=0), clean)
    assert len({row.tobytes() for row in masks}) == 32


def test_pixel_noise_is_deterministic_by_seed():
    clean = np.zeros([8, 28, 28], np.float32)
    first = mnist.add_noise(clean, 0.3, seed=5).numpy()
    np.testing.assert_array_equal(first, mnist.add_noise(clean, 0.3, seed=5).numpy())
    np.testing.assert_array_equal(
        first, mnist.add_noise(clean, 0.3, seed=tf.constant([5, 0])).numpy()
    )
    other = mnist.add_noise(clean, 0.3, seed=6).numpy()
    assert not np.array_equal(first, other)


def test_pixel_noise_of_an_example_does_not_depend_on_batching():
    clean = np.zeros([10, 28, 28], np.float32)
    whole = mnist.add_noise(clean, 0.2, seed=2).numpy()
    # A consecutive slice (one vectorised draw) and scattered ids (a draw per row).
    part = mnist.add_noise(clean[4:7], 0.2, seed=2, example_ids=tf.range(4, 7)).numpy()
    scattered = mnist.add_noise(clean[:2], 0.2, seed=2, example_ids=[9, 1]).numpy()
    np.testing.assert_array_equal(part, whole[4:7])
    np.testing.assert_array_equal(scattered, whole[[9, 1]])


def test_pixel_noise_runs_inside_tf_data():
    clean = np.zeros([8, 28, 28, 1], np.float32)
    ds = (
        tf.data.Dataset.from_tensor_slices(clean)
        .batch(4)
        .map(lambda x: mnist.add_noise(x, 0.1, seed=0))
    )
    noisy = np.concatenate(list(ds.as_numpy_iterator()))
    np.testing.assert_array_equal(changed(noisy, clean).sum(axis=1), 78)


def test_pixel_noise_rejects_bad_input():
    with pytest.raises(ValueError, match=r"Noise level must be in \[0, 1\], got 1.5"):
        mnist.add_noise(np.zeros([1, 28, 28], np.float32), 1.5, seed=0)
    with pytest.raises(TypeError, match="floats in \\[0, 1\\]"):
        mnist.add_noise(np.zeros([1, 28, 28], np.uint8), 0.1, seed=0)


# --------------------------------------------------------------------------- waveform noise


def test_blend_level_zero_is_unchanged_and_level_one_is_pure_noise():
    clean = np.random.default_rng(0).uniform(-1, 1, [3, 16000]).astype(np.float32)
    np.testing.assert_array_equal(blend_white_noise(clean, 0.0, seed=0).numpy(), clean)
    noise = blend_white_noise(clean, 1.0, seed=0).numpy()
    assert noise.min() >= -1.0 and noise.max() <= 1.0
    np.testing.assert_array_equal(
        noise, blend_white_noise(np.zeros_like(clean), 1.0, seed=0).numpy()
    )
    assert np.abs(noise.mean()) < 0.01 and abs(noise.var() - 1 / 3) < 0.01


@pytest.mark.parametrize("eta", [0.2, 0.5])
def test_blend_mean_and_variance_follow_the_formula(eta):
    amplitude = 0.4
    blended = blend_white_noise(np.full([64, 16000], amplitude, np.float32), eta, seed=1).numpy()
    # 1,024,000 samples: the mean's standard error is below 2e-4.
    assert blended.mean() == pytest.approx((1 - eta) * amplitude, abs=2e-3)
    assert blended.var() == pytest.approx(eta**2 / 3, rel=0.01)


def test_blend_is_deterministic_and_independent_between_clips():
    clean = np.zeros([4, 16000], np.float32)
    first = blend_white_noise(clean, 0.3, seed=9).numpy()
    np.testing.assert_array_equal(first, blend_white_noise(clean, 0.3, seed=9).numpy())
    assert not np.array_equal(first, blend_white_noise(clean, 0.3, seed=10).numpy())
    assert not np.array_equal(first[0], first[1])
    np.testing.assert_array_equal(
        blend_white_noise(clean[:1], 0.3, seed=9, example_ids=[3]).numpy(), first[3:]
    )


def test_pixel_noise_sets_the_value_it_is_given():
    clean = np.zeros([3, 10, 10], np.float32)
    noisy = add_pixel_noise(clean, 0.5, seed=0, value=0.25).numpy()
    assert set(np.unique(noisy)) == {0.0, 0.25}
    np.testing.assert_array_equal(changed(noisy, clean).sum(axis=1), 50)
    with pytest.raises(TypeError, match="value"):
        add_pixel_noise(clean, 0.5, seed=0)  # the value is the dataset's: no default
