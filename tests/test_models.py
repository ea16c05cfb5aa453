"""The Table 3 networks: shapes behind the paper's percentages, parameter and non-zero counts."""

import keras
import numpy as np
import pytest

from sparse_keras import KWinners, models


def kwinners(model):
    return {layer.name: layer for layer in model.layers if isinstance(layer, KWinners)}


@pytest.mark.parametrize(
    "name, expected",
    [
        (
            "mnist_sparse_cnn2",
            {
                "conv1_kwinners": (400, 4608),
                "conv2_kwinners": (300, 1024),
                "hidden_kwinners": (100, 700),
            },
        ),
        ("mnist_sparse_cnn1", {"conv1_kwinners": (400, 4320), "hidden_kwinners": (50, 150)}),
        (
            "gsc_sparse_cnn2",
            {
                "conv1_kwinners": (1200, 12544),
                "conv2_kwinners": (200, 1600),
                "hidden_kwinners": (100, 1000),
            },
        ),
        (
            "gsc_super_sparse_cnn2",
            {
                "conv1_kwinners": (1200, 12544),
                "conv2_kwinners": (200, 1600),
                "hidden_kwinners": (100, 1500),
            },
        ),
        ("mnist_dense_cnn2_sp3", {"hidden_kwinners": (100, 700)}),
    ],
)
def test_k_winners_sizes_match_table3(name, expected):
    layers = kwinners(models.build(name, seed=0))
    assert {n: (layer.k, layer.units) for n, layer in layers.items()} == expected


def test_table3_l1_percentage():
    # "L1 sparsity 8.7%" of MNIST Sparse CNN-2 is k / (H * W * C) = 400 / 4608.
    assert round(100 * models.k_winners_fraction(400, (12, 12, 32)), 1) == 8.7


@pytest.mark.parametrize(
    "name, trainable",
    [
        # conv1 5*5*1*30+30, conv2 5*5*30*30+30, hidden 480*1000+1000, out 1000*10+10
        ("mnist_dense_cnn2", 780 + 22530 + 481000 + 10010),
        ("mnist_dense_cnn1", 780 + 4320 * 1000 + 1000 + 10010),
        # conv1 832, conv2 5*5*32*64+64, hidden 1024*700+700, out 7010
        ("mnist_sparse_cnn2", 832 + 51264 + 717500 + 7010),
        # GSC: conv1 5*5*1*64+64, conv2 5*5*64*64+64, hidden 1600*1000+1000, out 1000*12+12 (BN has no trainables)
        ("gsc_sparse_cnn2", 1664 + 102464 + 1601000 + 12012),
    ],
)
def test_trainable_parameter_counts(name, trainable):
    model = models.build(name, seed=0)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable


@pytest.mark.parametrize(
    "name, fan_in, units, density",
    [
        ("mnist_sparse_cnn2", 1024, 700, 0.3),
        ("gsc_sparse_cnn2", 1600, 1000, 0.4),
        ("gsc_super_sparse_cnn2", 1600, 1500, 0.1),
    ],
)
def test_nonzero_weights_of_sparse_hidden_layers(name, fan_in, units, density):
    hidden = models.build(name, seed=0).get_layer("hidden")
    per_unit = round(density * fan_in)
    assert hidden.nonzero_weights == per_unit * units
    mask = hidden.kernel_mask.numpy()
    assert (mask.sum(axis=0) == per_unit).all()
    # A kept weight may itself be drawn as exactly 0.0 (float32 uniform), so the kernel's
    # non-zeros are checked against the mask rather than counted.
    assert (hidden.kernel.numpy()[mask == 0] == 0).all()


def test_gsc_networks_use_batch_norm_without_scale_or_offset():
    model = models.build("gsc_dense_cnn2", dropout=0.5)
    bns = [layer for layer in model.layers if layer.__class__.__name__ == "BatchNormalization"]
    assert [b.name for b in bns] == ["conv1_bn", "conv2_bn", "hidden_bn"]
    assert all(not b.center and not b.scale for b in bns)
    assert model.get_layer("dropout").rate == 0.5
    assert model.output_shape == (None, 12)


def test_all_networks_build_and_run():
    for name in models.list_models():
        model = models.build(name, seed=0)
        x = np.zeros((2, *model.input_shape[1:]), np.float32)
        assert model(x).shape == (2, model.output_shape[-1])


def test_unknown_names_and_overrides_are_named():
    with pytest.raises(
        ValueError, match="Unknown network 'mnist_cnn9'; available: mnist_dense_cnn1"
    ):
        models.build("mnist_cnn9")
    with pytest.raises(ValueError, match=r"Unknown override\(s\) \['hiden_units'\]"):
        models.build("mnist_sparse_cnn2", hiden_units=3)


@pytest.mark.parametrize("name", models.list_models())
def test_every_layer_starts_as_pytorch_default_biases_included(name):
    # SPEC §2: weights and biases U(±1/sqrt(fan_in)), fan_in = c_in * 25 for the 5x5
    # convolutions and the full input width for dense layers, sparse or not.
    keras.utils.set_random_seed(0)
    model = models.build(name, seed=0)
    config = models.get_config(name)
    conv_in = [config.input_shape[-1], *config.conv_filters[:-1]]
    flat = model.get_layer("flatten").output.shape[-1]
    fan_ins = {f"conv{i + 1}": 25 * c for i, c in enumerate(conv_in)}
    fan_ins |= {"hidden": flat, "logits": config.hidden_units}
    for layer_name, fan_in in fan_ins.items():
        layer = model.get_layer(layer_name)
        bound = 1 / np.sqrt(fan_in)
        kernel = layer.kernel.numpy()
        kept = kernel[kernel != 0]
        for values, what in ((kept, "kernel"), (layer.bias.numpy(), "bias")):
            assert np.abs(values).max() <= bound, (layer_name, what)
            # Spread over the whole range (not zeros, not a narrower range); a bias
            # has few values, so only ask that it fill most of the range.
            spread = 0.9 if values.size > 200 else 0.5
            assert np.abs(values).max() > spread * bound, (layer_name, what)
