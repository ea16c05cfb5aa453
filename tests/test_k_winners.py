"""KWinners against expectations worked out by hand from SPEC §2."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from sparse_keras import KWinners
from sparse_keras.layers import winner_selection


@pytest.fixture(autouse=True, params=["top_k", "numba"])
def selection(request, monkeypatch):
    """Every expectation below must hold for both ways of finding the winners."""
    monkeypatch.setattr(winner_selection, "_method", request.param)
    return request.param


def kw(k, **kwargs):
    kwargs.setdefault("boost_strength", 0.0)
    return KWinners(k, **kwargs)


def f32(x):
    return np.asarray(x, np.float32)


def test_known_winners_dense():
    layer = kw(2)
    out = layer(f32([[1, 5, 3, 2, 4], [9, -1, 0, 8, 7]]), training=True).numpy()
    np.testing.assert_array_equal(out, [[0, 5, 0, 0, 4], [9, 0, 0, 8, 0]])


def test_winners_may_be_negative_and_keep_unboosted_values():
    layer = kw(2)
    out = layer(f32([[-1, -2, -3, -4]]), training=True).numpy()
    np.testing.assert_array_equal(out, [[-1, -2, 0, 0]])
    # Negative winners are not counted as active (the reference code counts output > 0).
    np.testing.assert_array_equal(layer.duty_cycles.numpy(), [0, 0, 0, 0])


def test_boosting_lets_a_less_used_unit_win():
    layer = KWinners(1, boost_strength=1.0)
    layer.build((None, 4))
    x = f32([[1.0, 0.9, 0.0, 0.0]])
    assert layer(x, training=False).numpy()[0, 0] == 1.0  # k_inference = round(1.5) = 2 here
    layer.duty_cycles.assign([1.0, 0.0, 0.0, 0.0])
    # boost_0 = exp(0.25 - 1) = 0.472 -> 0.472; boost_1 = exp(0.25) = 1.284 -> 1.156: unit 1 wins,
    # and its output is its own un-boosted 0.9.
    out = layer(x, training=True).numpy()
    np.testing.assert_allclose(out, [[0.0, 0.9, 0.0, 0.0]])


def test_duty_cycles_follow_the_update_rule_while_the_period_grows():
    layer = kw(2, duty_cycle_period=1000)
    layer(f32([[4, 3, 2, 1], [1, 2, 3, 4]]), training=True)
    # period = min(1000, 2) = 2, counts [1, 1, 1, 1] -> d = 1/2.
    np.testing.assert_allclose(layer.duty_cycles.numpy(), [0.5, 0.5, 0.5, 0.5])
    layer(f32([[4, 3, 2, 1], [4, 3, 1, 2]]), training=True)
    # period = 4, counts [2, 2, 0, 0]: d = (0.5 * (4 - 2) + count) / 4.
    np.testing.assert_allclose(layer.duty_cycles.numpy(), [0.75, 0.75, 0.25, 0.25])
    assert layer.samples_seen.numpy() == 4


def test_duty_cycle_period_caps_the_average():
    layer = kw(2, duty_cycle_period=3)
    layer(f32([[4, 3, 2, 1], [1, 2, 3, 4]]), training=True)
    layer(f32([[4, 3, 2, 1], [4, 3, 1, 2]]), training=True)
    # samples seen 4 > period 3: d = (0.5 * (3 - 2) + count) / 3.
    np.testing.assert_allclose(
        layer.duty_cycles.numpy(), [2.5 / 3, 2.5 / 3, 0.5 / 3, 0.5 / 3], rtol=1e-6
    )
    layer(f32([[1, 2, 3, 4]]), training=True)
    d = np.array([2.5 / 3, 2.5 / 3, 0.5 / 3, 0.5 / 3])
    np.testing.assert_allclose(layer.duty_cycles.numpy(), (d * 2 + [0, 0, 1, 1]) / 3, rtol=1e-6)


def test_inference_keeps_more_winners_and_freezes_duty_cycles():
    layer = kw(2)
    x = f32([[6, 5, 4, 3, 2, 1]])
    layer(x, training=True)
    before = layer.duty_cycles.numpy().copy()
    out = layer(x, training=False).numpy()
    np.testing.assert_array_equal(out, [[6, 5, 4, 0, 0, 0]])  # round(2 * 1.5) = 3 winners
    np.testing.assert_array_equal(layer.duty_cycles.numpy(), before)
    assert layer.samples_seen.numpy() == 1


def test_inference_k_is_capped_at_n_and_factor_configurable():
    layer = kw(3, k_inference_factor=2.0)
    out = layer(f32([[1, 2, 3, 4]]), training=False).numpy()
    np.testing.assert_array_equal(out, [[1, 2, 3, 4]])
    assert layer.k_inference == 4


def test_untrainable_layer_runs_as_at_inference():
    layer = kw(2)
    layer.trainable = False
    out = layer(f32([[6, 5, 4, 3]]), training=True).numpy()
    np.testing.assert_array_equal(out, [[6, 5, 4, 0]])
    np.testing.assert_array_equal(layer.duty_cycles.numpy(), 0)


def test_conv_input_global_winners_and_per_channel_duty_cycles():
    layer = kw(2)
    x = np.ones((1, 2, 2, 2), np.float32) * 0.5
    x[0, 0, 0, 0] = 9  # channel 0
    x[0, 1, 1, 1] = 8  # channel 1
    out = layer(x, training=True).numpy()
    expected = np.zeros_like(x)
    expected[0, 0, 0, 0], expected[0, 1, 1, 1] = 9, 8
    np.testing.assert_array_equal(out, expected)
    # One winner in each channel, divided by H * W = 4, over a period of 1 sample.
    np.testing.assert_allclose(layer.duty_cycles.numpy(), [0.25, 0.25])

    layer2 = kw(2)
    x2 = np.ones((1, 2, 2, 2), np.float32)
    x2[0, 0, 0, 0], x2[0, 0, 1, 0] = 9, 8  # both winners in channel 0
    layer2(x2, training=True)
    np.testing.assert_allclose(layer2.duty_cycles.numpy(), [0.5, 0.0])


def test_conv_boost_uses_the_channel_duty_cycle():
    layer = KWinners(1, boost_strength=2.0)
    layer.build((None, 1, 2, 2))
    layer.duty_cycles.assign([0.9, 0.0])
    # target density 1/4: boost_0 = exp(2 * (0.25 - 0.9)) = 0.27, boost_1 = exp(0.5) = 1.65.
    x = f32([[[[3.0, 1.0], [2.0, 0.5]]]])  # (1, 1, 2, 2)
    out = layer(x, training=True).numpy()
    # boosted: ch0 -> 0.82, 0.55; ch1 -> 1.65, 0.82: channel 1's first value wins.
    np.testing.assert_allclose(out, [[[[0.0, 1.0], [0.0, 0.0]]]])


def test_gradient_flows_only_through_winners():
    layer = kw(2)
    x = tf.constant(f32([[1, 5, 3, 2, 4]]))
    weights = tf.constant(f32([[10, 20, 30, 40, 50]]))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(layer(x, training=True) * weights)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [[0, 20, 0, 0, 50]])


def test_ties_never_give_more_than_k_winners():
    layer = kw(3)
    out = layer(np.ones((4, 10), np.float32), training=True).numpy()
    assert (np.count_nonzero(out, axis=1) == 3).all()
    out = kw(3)(np.zeros((2, 3, 3, 4), np.float32) + 0.25, training=False).numpy()
    assert (np.count_nonzero(out.reshape(2, -1), axis=1) == round(3 * 1.5)).all()


def test_k_at_least_n_is_relu():
    layer = kw(5)
    out = layer(f32([[-1, 2, -3, 4, 0]]), training=True).numpy()
    np.testing.assert_array_equal(out, [[0, 2, 0, 4, 0]])
    assert layer.is_relu


def test_works_in_fit_with_jit_variable_batches_and_float16():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6, 6, 2)), KWinners(5), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True
    )
    x = np.random.default_rng(0).normal(size=(37, 6, 6, 2)).astype("float32")
    y = np.arange(37) % 3
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # last batch has 5 samples
    layer = model.layers[0]
    assert layer.samples_seen.numpy() == 37
    assert layer.duty_cycles.numpy().sum() > 0
    assert model.predict(x[:3], verbose=0).shape == (3, 3)

    half = KWinners(2, dtype="float16")
    out = half(np.array([[1, 3, 2, 0]], np.float16), training=True)
    assert out.dtype == tf.float16
    np.testing.assert_array_equal(out.numpy(), [[0, 3, 2, 0]])


def test_duty_cycles_converge_towards_the_target_density_with_boosting():
    layer = KWinners(10, boost_strength=1.5, duty_cycle_period=100)
    rng = np.random.default_rng(0)
    # Unit i is on average i-times more active: without boosting the top units would always win.
    scale = np.linspace(0.5, 1.5, 50).astype(np.float32)
    for _ in range(100):
        layer(np.abs(rng.normal(size=(16, 50))).astype(np.float32) * scale, training=True)
    duty = layer.duty_cycles.numpy()
    assert np.count_nonzero(duty > 0) > 20  # boosting spreads winning beyond the 10 strongest
    assert math.isclose(duty.sum(), 10.0, rel_tol=0.02)  # k winners per sample on average


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(k=0), "k must be a positive integer, got 0"),
        (dict(k=2.5), "k must be a positive integer, got 2.5"),
        (dict(k=-3), "k must be a positive integer, got -3"),
        (dict(k=2, k_inference_factor=0.5), "k_inference_factor must be >= 1.0, got 0.5"),
        (dict(k=2, boost_strength=-1.0), "boost_strength must be >= 0.0, got -1.0"),
        (dict(k=2, duty_cycle_period=0), "duty_cycle_period must be a positive integer, got 0"),
        (
            dict(k=2, boost_strength_factor=1.5),
            "boost_strength_factor must be a number in (0, 1], got 1.5",
        ),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=re_escape(message)):
        KWinners(**kwargs)


def test_wrong_input_rank_is_named():
    with pytest.raises(
        ValueError, match=r"rank-2 .* or rank-4 .* got shape \(None, 4, 4\) \(rank 3\)"
    ):
        KWinners(2)(keras.Input((4, 4)))


def test_input_of_another_shape_than_built_is_refused():
    layer = kw(2)
    layer(np.ones((1, 10), np.float32))
    with pytest.raises(ValueError, match="expected ndim=2, found ndim=4"):
        layer(np.ones((1, 3, 3, 4), np.float32))


def re_escape(text):
    import re

    return re.escape(text)
