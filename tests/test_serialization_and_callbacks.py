"""Saving/loading keeps k-winners state and masks; BoostDecay and the entropy monitor."""

import keras
import numpy as np
import pytest

from sparse_keras import BoostDecay, DutyCycleMonitor, KWinners, SparseDense, metrics, models


def _trained_small_model():
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((12,)),
            SparseDense(20, density=0.3, seed=4, name="hidden"),
            KWinners(5, boost_strength=1.2, boost_strength_factor=0.9, name="kw"),
            keras.layers.Dense(3, name="out"),
        ]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 12)).astype("float32"), rng.integers(0, 3, 40)
    model.fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[BoostDecay()])
    return model, x


def test_keras_file_round_trip_keeps_state_and_predictions(tmp_path):
    model, x = _trained_small_model()
    kw = model.get_layer("kw")
    assert kw.samples_seen.numpy() == 80
    # Two epochs, each followed by a decay step (the released postEpoch): 1.2 * 0.9**2.
    assert kw.boost_strength.numpy() == pytest.approx(1.2 * 0.9**2)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    for name in ("duty_cycles", "boost_strength", "samples_seen"):
        np.testing.assert_array_equal(
            getattr(loaded.get_layer("kw"), name).numpy(), getattr(kw, name).numpy()
        )
    np.testing.assert_array_equal(
        loaded.get_layer("hidden").kernel_mask.numpy(),
        model.get_layer("hidden").kernel_mask.numpy(),
    )
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    names = {w.path for w in loaded.non_trainable_weights}
    assert {"kw/duty_cycles", "kw/boost_strength", "kw/samples_seen", "hidden/kernel_mask"} <= names


def test_weights_file_round_trip_into_a_fresh_network(tmp_path):
    model = models.build("mnist_sparse_cnn2", seed=0)
    model.get_layer("hidden_kwinners").duty_cycles.assign(np.linspace(0, 0.3, 700))
    model.save_weights(tmp_path / "w.weights.h5")
    other = models.build("mnist_sparse_cnn2", seed=99)  # a different mask until the weights load
    other.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(
        other.get_layer("hidden").kernel_mask.numpy(), model.get_layer("hidden").kernel_mask.numpy()
    )
    np.testing.assert_allclose(
        other.get_layer("hidden_kwinners").duty_cycles.numpy(), np.linspace(0, 0.3, 700), rtol=1e-6
    )
    x = np.random.default_rng(0).normal(size=(4, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(
        other(x, training=False).numpy(), model(x, training=False).numpy()
    )


def test_config_round_trip():
    layer = KWinners(
        7,
        k_inference_factor=2.0,
        boost_strength=1.1,
        boost_strength_factor=0.8,
        duty_cycle_period=50,
    )
    clone = KWinners.from_config(layer.get_config())
    for attr in (
        "k",
        "k_inference_factor",
        "initial_boost_strength",
        "boost_strength_factor",
        "duty_cycle_period",
    ):
        assert getattr(clone, attr) == getattr(layer, attr)


def test_boost_decay_follows_the_epoch_number_and_resumes():
    model, x = _trained_small_model()
    y = np.zeros(len(x), int)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(float(model.get_layer("kw").boost_strength.numpy()))

    model.fit(x, y, epochs=3, verbose=0, callbacks=[BoostDecay(0.5), Record()])
    assert seen == pytest.approx([1.2, 0.6, 0.3])
    # After E = 3 epochs the model is tested (and saved) with beta * f**E.
    assert model.get_layer("kw").boost_strength.numpy() == pytest.approx(1.2 * 0.5**3)
    seen.clear()
    # A run resumed at epoch 2 trains with exactly what an uninterrupted one would.
    model.fit(x, y, initial_epoch=2, epochs=3, verbose=0, callbacks=[BoostDecay(0.5), Record()])
    assert seen == pytest.approx([0.3])
    with pytest.raises(ValueError, match=r"factor must be a number in \(0, 1\], got 1.5"):
        BoostDecay(1.5)


def test_entropy_values_by_hand():
    assert metrics.max_entropy(100, 10) == pytest.approx(46.89955936, abs=1e-8)
    np.testing.assert_allclose(
        metrics.binary_entropy([0.0, 0.5, 1.0, 0.25]), [0, 1, 0, 0.8112781244591328]
    )
    layer = KWinners(1)
    layer.build((None, 2, 2, 3))  # H * W = 4 positions per channel
    layer.duty_cycles.assign([0.5, 0.0, 0.25])
    assert metrics.duty_cycle_entropy(layer) == pytest.approx(4 * (1 + 0.8112781244591328))
    assert metrics.entropy_fraction(layer) == pytest.approx(
        4 * 1.8112781244591328 / metrics.max_entropy(12, 1)
    )
    with pytest.raises(ValueError, match="n > 0 and 0 <= k <= n, got n=5, k=6"):
        metrics.max_entropy(5, 6)


def test_duty_cycle_monitor_logs_entropy_to_history():
    model, x = _trained_small_model()
    history = model.fit(
        x, np.zeros(len(x), int), epochs=1, verbose=0, callbacks=[DutyCycleMonitor()]
    )
    assert 0 < history.history["kw/entropy_fraction"][0] <= 1
    assert history.history["kw/entropy"][0] == pytest.approx(
        metrics.duty_cycle_entropy(model.get_layer("kw"))
    )
