"""Evaluation engines: the sparse inference path under `robustness.evaluate`, checked
against Keras, with the engine recorded in every report."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from sparse_keras import KWinners, models, robustness, zoo
from sparse_keras.robustness import engines

LEVELS = (0.0, 0.25, 0.5)


@pytest.fixture(scope="module")
def mnist_sparse():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Hub unreachable, using the checkout copy"
        return zoo.load("mnist_sparse_cnn2")


def _evaluate(model, engine, dataset="mnist", max_examples=2000, **kwargs):
    return robustness.evaluate(
        model,
        dataset,
        noise_levels=LEVELS,
        max_examples=max_examples,
        progress=False,
        engine=engine,
        **kwargs,
    )


def test_auto_runs_a_sparse_network_on_the_sparse_path_with_keras_counts(mnist_sparse):
    """The sparse path gives the Keras path's correct count at every level (2,000 images)."""
    fast = _evaluate(mnist_sparse, "auto")
    reference = _evaluate(mnist_sparse, "keras")
    assert (fast.engine, reference.engine) == ("sparse", "keras")
    assert fast.correct == reference.correct
    assert fast.correct[0] > 1950  # a trained network, not a trivially equal pair


def test_auto_runs_a_real_gsc_sparse_network_on_the_sparse_path(data_dir):
    if not (data_dir / "gsc_test_v0.02" / "testing_list.txt").exists():
        pytest.skip("gsc_test_v0.02 not found")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = zoo.load("gsc12v2_sparse_cnn2")
    fast = _evaluate(model, "auto", dataset="gsc12v2", max_examples=300)
    reference = _evaluate(model, "keras", dataset="gsc12v2", max_examples=300)
    assert (fast.engine, reference.engine) == ("sparse", "keras")
    assert fast.correct == reference.correct


def test_auto_keeps_keras_for_a_dense_network():
    # A dense network gains nothing on the sparse path (docs: 5x slower at batch 1000).
    model = models.build("mnist_dense_cnn2", seed=0)
    assert not engines.gains_from_sparse_path(model)
    assert engines.choose(model).engine == "keras"
    assert engines.choose(model, "sparse").engine == "sparse"  # asked for: compiled anyway


def test_plain_callables_run_as_given():
    def predict(features):
        return np.zeros((len(features), 10), np.float32)

    assert engines.choose(predict).engine == "callable"
    assert engines.choose(predict, "keras").engine == "callable"
    with pytest.raises(ValueError, match="engine='sparse' compiles a keras.Model"):
        engines.choose(predict, "sparse")
    with pytest.raises(TypeError, match="got int"):
        engines.choose(3)


def test_unknown_engine_is_refused_before_any_work():
    with pytest.raises(ValueError, match=r"Unknown engine 'numba'; expected one of \('auto'"):
        robustness.evaluate("no such model", "mnist", engine="numba")


def test_a_layer_the_sparse_path_lacks_keeps_keras_or_fails_when_asked():
    inputs = keras.Input((20,))
    hidden = KWinners(k=5, name="winners")(keras.layers.Dense(20)(inputs))
    model = keras.Model(inputs, keras.layers.LayerNormalization()(hidden), name="odd")
    assert engines.gains_from_sparse_path(model)
    assert engines.choose(model, "auto").engine == "keras"
    with pytest.raises(ValueError, match="engine='sparse' cannot run 'odd'"):
        engines.choose(model, "sparse")


def _disagreeing(requested):
    right = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    wrong = right[:, [1, 2, 0]]  # every class shifted
    return engines.Predictor(lambda x: wrong, "sparse", requested, lambda x: right), right, wrong


def test_first_batch_disagreement_falls_back_to_keras_under_auto():
    predictor, right, _ = _disagreeing("auto")
    with pytest.warns(UserWarning, match="classified 4 of the first 4 examples differently"):
        used, outputs = predictor.check_first_batch(np.zeros((4, 1)))
    assert used.engine == "keras" and used.reference is None
    np.testing.assert_array_equal(outputs, right)
    np.testing.assert_array_equal(used.predict(None), right)


def test_first_batch_disagreement_warns_but_keeps_an_explicit_sparse_request():
    predictor, _, wrong = _disagreeing("sparse")
    with pytest.warns(UserWarning, match="evaluating with the sparse path as requested"):
        used, outputs = predictor.check_first_batch(np.zeros((4, 1)))
    assert used.engine == "sparse"
    np.testing.assert_array_equal(outputs, wrong)


def test_agreement_drops_the_reference_so_later_batches_run_once():
    right = np.eye(3, dtype=np.float32)
    calls = []
    predictor = engines.Predictor(
        lambda x: right, "sparse", "auto", lambda x: calls.append(1) or right
    )
    used, _ = predictor.check_first_batch(None)
    assert used.engine == "sparse" and used.reference is None and calls == [1]


def test_engine_is_in_the_report_text_and_json(mnist_sparse):
    report = _evaluate(mnist_sparse, "auto", max_examples=100)
    assert "seed 0, sparse engine)" in report.to_text().splitlines()[0]
    assert report.to_dict()["engine"] == "sparse"
    assert robustness.NoiseReport.from_json(report.to_json()) == report
    old = report.to_dict()
    del old["engine"]  # reports written before engines were recorded still load
    assert robustness.NoiseReport.from_dict(old).engine == ""


def test_noisy_test_set_records_its_engine(mnist_sparse):
    test_set = robustness.noisy_test_set("mnist", noise_levels=LEVELS, max_examples=500)
    fast = test_set.evaluate(mnist_sparse)
    reference = test_set.evaluate(mnist_sparse, engine="keras")
    assert (fast.engine, reference.engine) == ("sparse", "keras")
    assert fast.correct == reference.correct
