"""CoupledSGD against PyTorch's SGD update, computed by hand (SPEC §3)."""

import keras
import numpy as np
import pytest

from sparse_keras.optimizers import CoupledSGD


def test_one_momentum_step_with_coupled_decay_by_hand():
    # torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01), two steps on w = [1, -2]:
    #   step 1: d = g + 0.01 w = [0.5 + 0.01, -1 - 0.02] = [0.51, -1.02]; buf = d
    #           w = [1 - 0.051, -2 + 0.102] = [0.949, -1.898]
    #   step 2 (g = [0.5, -1] again, lr now 0.05):
    #           d = [0.5 + 0.00949, -1 - 0.01898] = [0.50949, -1.01898]
    #           buf = 0.9 * [0.51, -1.02] + d = [0.96849, -1.93698]
    #           w = [0.949 - 0.0484245, -1.898 + 0.096849] = [0.9005755, -1.801151]
    w = keras.Variable(np.array([1.0, -2.0], "float32"))
    opt = CoupledSGD(learning_rate=0.1, momentum=0.9, coupled_weight_decay=0.01)
    g = keras.ops.convert_to_tensor(np.array([0.5, -1.0], "float32"))
    opt.apply([g], [w])
    np.testing.assert_allclose(w.numpy(), [0.949, -1.898], rtol=1e-6)
    opt.learning_rate.assign(0.05)  # the buffer holds no learning rate (unlike Keras's SGD)
    opt.apply([g], [w])
    np.testing.assert_allclose(w.numpy(), [0.9005755, -1.801151], rtol=1e-6)


def test_differs_from_keras_decoupled_decay():
    # Keras's SGD(weight_decay=0.01) decays outside momentum: after step 1 it agrees, but
    # its buffer holds no decay, so after 20 steps the coupled decay has pulled harder.
    def run(opt):
        w = keras.Variable(np.array([1.0], "float32"))
        for _ in range(20):
            opt.apply([keras.ops.zeros((1,))], [w])
        return float(w.numpy()[0])

    coupled = run(CoupledSGD(learning_rate=0.1, momentum=0.9, coupled_weight_decay=0.01))
    decoupled = run(keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, weight_decay=0.01))
    # Pure decay with momentum: w shrinks by the momentum-amplified factor.
    assert decoupled == pytest.approx(0.999**20, rel=1e-5)
    assert coupled < decoupled - 0.05


def test_without_momentum_or_decay_it_is_plain_sgd():
    w = keras.Variable(np.array([3.0], "float32"))
    CoupledSGD(learning_rate=0.5).apply([keras.ops.ones((1,))], [w])
    assert w.numpy()[0] == pytest.approx(2.5)


def test_config_round_trip_and_refused_arguments():
    opt = CoupledSGD(learning_rate=0.02, momentum=0.5, coupled_weight_decay=0.01)
    clone = CoupledSGD.from_config(opt.get_config())
    assert (clone.momentum, clone.coupled_weight_decay) == (0.5, 0.01)
    with pytest.raises(ValueError, match="does not take weight_decay=0.1: use coupled"):
        CoupledSGD(weight_decay=0.1)
    with pytest.raises(ValueError, match="coupled_weight_decay must be >= 0.0, got -1"):
        CoupledSGD(coupled_weight_decay=-1)
    with pytest.raises(ValueError, match="momentum must be a number >= 0.0, got nan"):
        CoupledSGD(momentum=float("nan"))
