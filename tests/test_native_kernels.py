"""The C++ inference kernels: by hand, bit for bit against the Numba kernels they
replace, in `sparse_inference`, their build and cache, and the errors they raise."""

import logging
import math

import keras
import numpy as np
import pytest

from sparse_keras import models, native_build
from sparse_keras.compute import _kernels, native_kernels, simulate_trained_state, sparse_inference
from sparse_keras.compute._stages import _Conv, _DenseLayer


@pytest.fixture(scope="module")
def lib():
    built = native_kernels.library()
    assert built is not None, native_kernels.unavailable_reason()
    return built


def _sparse_batch(rng, batch, size, k, zero_values=0):
    """`batch` samples of `k` ascending active indices in [0, size) and their values
    (the first `zero_values` of each sample exactly 0, as zero-valued winners are)."""
    idx = np.sort(np.argsort(rng.random((batch, size)), axis=1)[:, :k], axis=1).astype(np.int32)
    val = rng.standard_normal((batch, k)).astype(np.float32)
    val[:, :zero_values] = 0.0
    return idx, val


def _padded(kernel, bias):
    extra = -kernel.shape[3] % native_kernels.LANES
    padded = np.pad(kernel, [(0, 0)] * 3 + [(0, extra)])
    return native_kernels.aligned(padded), np.pad(bias, (0, extra)).astype(np.float32)


# --------------------------------------------------------------------------- by hand


def test_sparse_conv_by_hand(lib):
    # The Numba kernel's hand example (test_compute.py): input 3x3x2 with three active
    # values, a 2x2 kernel whose weight at (dy, dx, ci) is 1 + 4 dy + 2 dx + ci, bias 0.5;
    # one real channel, 15 scratch channels of padding.
    w = (1.0 + np.arange(8, dtype=np.float32)).reshape(2, 2, 2, 1)
    kernel, bias = _padded(w, np.array([0.5], np.float32))
    idx = np.array([[1, 8, 9]], np.int32)
    val = np.array([[2.0, 3.0, -1.0]], np.float32)
    out = np.full((1, 2, 2, 1), np.nan, np.float32)
    native_kernels.conv2d_sparse_input(lib, idx, val, (3, 3, 2), kernel, bias, 1, False, out)
    # (0,0): 0.5 + 2*2 + 3*7 - 8 = 17.5; (0,1): 0.5 + 3*5 - 6; (1,0): 0.5 + 3*3 - 4;
    # (1,1): 0.5 + 3*1 - 2.
    np.testing.assert_array_equal(out[0, :, :, 0], [[17.5, 9.5], [5.5, 1.5]])
    pooled = np.full((1, 1, 1, 1), np.nan, np.float32)
    native_kernels.conv2d_sparse_input(lib, idx, -val, (3, 3, 2), kernel, bias, 2, True, pooled)
    assert pooled[0, 0, 0, 0] == 0.0  # max of four negative sums, then ReLU


def test_first_layer_conv_by_hand(lib):
    # x[y, x] = 7y + x on a 7x7 image: conv outputs 25 (7y + x) + 400, the floor-mode
    # pooling window's maximum at (1, 1) is 600; channel 1 (weights -1) peaks at (0, 0).
    x = np.arange(49, dtype=np.float32).reshape(1, 7, 7, 1)
    w = np.zeros((5, 5, 1, 2), np.float32)
    w[..., 0], w[..., 1] = 1.0, -1.0
    kernel, bias = _padded(w, np.array([0.5, 2.0], np.float32))
    out = np.full((1, 1, 1, 2), np.nan, np.float32)
    native_kernels.conv2d_5x5_single_channel_pool2(lib, x, kernel, bias, False, out)
    np.testing.assert_array_equal(out[0, 0, 0], [600.5, -398.0])
    native_kernels.conv2d_5x5_single_channel_pool2(lib, x, kernel, bias, True, out)
    np.testing.assert_array_equal(out[0, 0, 0], [600.5, 0.0])


def test_batch_dense_kernel_by_hand(lib):
    # w[i, c] = 10 i + c + 1 where kept; unit 0 keeps rows {0, 2, 5}, unit 1 rows {1, 2},
    # unit 2 nothing. 70 samples: lanes of two 64-sample groups, the second partial.
    w = np.zeros((6, 3), np.float32)
    for i, c in [(0, 0), (2, 0), (5, 0), (1, 1), (2, 1)]:
        w[i, c] = 10 * i + c + 1
    columns = native_kernels.ChunkedColumns(w)
    assert columns.stored == 5 and columns.ptr.tolist() == [0, 3, 5, 5]
    assert columns.rows.tolist() == [0, 2, 5, 1, 2]
    idx = np.tile(np.array([[1, 2, 5]], np.int32), (70, 1))
    val = np.tile(np.array([[3.0, 2.0, -1.0]], np.float32), (70, 1))
    val[69] = [1.0, 0.0, 1.0]
    bias = np.array([1.0, -1.0, 0.25], np.float32)
    out = np.full((70, 3), np.nan, np.float32)
    native_kernels.dense_sparse_weights(lib, idx, val, columns, bias, False, out)
    # Sample 0: unit 0 = 1 + 2*21 - 51 = -8; unit 1 = -1 + 3*12 + 2*22 = 79; unit 2 = 0.25.
    # Sample 69: unit 0 = 1 + 0*21 + 51 = 52; unit 1 = -1 + 12 + 0 = 11.
    np.testing.assert_array_equal(out[:69], np.tile([[-8.0, 79.0, 0.25]], (69, 1)))
    np.testing.assert_array_equal(out[69], [52.0, 11.0, 0.25])
    native_kernels.dense_sparse_weights(lib, idx, val, columns, bias, True, out)
    np.testing.assert_array_equal(out[0], [0.0, 79.0, 0.25])


def test_batch_kernel_pays_by_the_product_count():
    # MNIST Sparse CNN-2's hidden layer: 1024 x 700, 307 weights kept per unit (214,900
    # stored), 450 winners: reading rows costs 450 * 700 / 16 = 19,687.5 vector products
    # per sample; the batch kernel 214,900 per started group of 16 samples.
    stored = 307 * 700
    assert not native_kernels.batch_kernel_pays(1, 450, stored, 700)  # 214,900 > 19,687.5
    assert not native_kernels.batch_kernel_pays(10, 450, stored, 700)  # > 196,875
    assert native_kernels.batch_kernel_pays(11, 450, stored, 700)  # < 216,562.5
    assert native_kernels.batch_kernel_pays(64, 450, stored, 700)
    # A partial group of 16 costs a whole one: 17 samples = 2 groups, 429,800 > 334,687.5.
    assert not native_kernels.batch_kernel_pays(17, 450, stored, 700)
    # GSC Sparse CNN-2's: 1600 x 1000 at 0.4, 300 winners: 640,000 per 16 samples
    # against 300,000: never.
    assert not native_kernels.batch_kernel_pays(64, 300, 640_000, 1000)
    assert not native_kernels.batch_kernel_pays(256, 300, 640_000, 1000)


# --------------------------------------------------------------------------- Numba's bits


@pytest.mark.parametrize(
    "in_shape, kernel_size, c_out, pool, k",
    [
        ((12, 12, 32), 5, 64, 2, 600),  # MNIST Sparse CNN-2's conv2
        ((14, 14, 64), 5, 64, 2, 1800),  # GSC Sparse CNN-2's conv2
        ((9, 11, 3), 3, 70, 1, 40),  # 80 computed channels: a 64 block and a 16 one
        ((8, 8, 5), 3, 130, 3, 25),  # 144: two 64 blocks and a 16 one; pool 3 drops a row
        ((6, 6, 4), 1, 16, 2, 0),  # 1x1 taps; no active input at all: bias only
    ],
)
@pytest.mark.parametrize("relu", [False, True])
def test_sparse_conv_gives_the_numba_kernels_bits(lib, in_shape, kernel_size, c_out, pool, k, relu):
    rng = np.random.default_rng(k + c_out)
    idx, val = _sparse_batch(rng, 5, math.prod(in_shape), k, zero_values=min(k, 3))
    w = rng.standard_normal((kernel_size, kernel_size, in_shape[2], c_out)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    kernel, bias = _padded(w, b)
    h, wd = ((d - kernel_size + 1) // pool for d in in_shape[:2])
    expected = np.empty((5, h, wd, c_out), np.float32)
    _kernels.conv2d_sparse_input(idx, val, *in_shape, kernel, bias, pool, relu, expected)
    got = np.full_like(expected, np.nan)
    native_kernels.conv2d_sparse_input(lib, idx, val, in_shape, kernel, bias, pool, relu, got)
    np.testing.assert_array_equal(got, expected)
    # A sample's bits do not depend on the batch it came in.
    one = np.full_like(expected[:1], np.nan)
    native_kernels.conv2d_sparse_input(
        lib, idx[3:4], val[3:4], in_shape, kernel, bias, pool, relu, one
    )
    np.testing.assert_array_equal(one[0], expected[3])


@pytest.mark.parametrize("size, channels", [(28, 32), (32, 64), (27, 48), (32, 80)])
@pytest.mark.parametrize("relu", [False, True])
def test_first_layer_conv_gives_the_numba_kernels_bits(lib, size, channels, relu):
    rng = np.random.default_rng(size + channels)
    x = rng.standard_normal((3, size, size, 1)).astype(np.float32)
    kernel = native_kernels.aligned(rng.standard_normal((5, 5, 1, channels)))
    bias = rng.standard_normal(channels).astype(np.float32)
    shape = (3, (size - 4) // 2, (size - 4) // 2, channels - 2)  # two scratch channels
    expected = np.empty(shape, np.float32)
    _kernels.conv2d_5x5_single_channel_pool2(x, kernel, bias, relu, expected)
    got = np.full(shape, np.nan, np.float32)
    native_kernels.conv2d_5x5_single_channel_pool2(lib, x, kernel, bias, relu, got)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("batch", [1, 15, 16, 17, 64, 65, 130])
@pytest.mark.parametrize("n, units, k", [(1024, 700, 450), (100, 10, 7), (1600, 1000, 300)])
def test_batch_dense_gives_the_row_kernels_bits(lib, batch, n, units, k):
    rng = np.random.default_rng(batch + n)
    idx, val = _sparse_batch(rng, batch, n, k, zero_values=2)
    kernel = rng.standard_normal((n, units)).astype(np.float32)
    kernel[rng.random((n, units)) >= 0.3] = 0.0  # a 30% mask, as Sparse CNN-2's hidden layer
    bias = rng.standard_normal(units).astype(np.float32)
    columns = native_kernels.ChunkedColumns(kernel)
    for relu in (False, True):
        expected = np.empty((batch, units), np.float32)
        _kernels.dense_sparse_input_rows(idx, val, kernel, bias, relu, expected)
        got = np.full_like(expected, np.nan)
        native_kernels.dense_sparse_weights(lib, idx, val, columns, bias, relu, got)
        np.testing.assert_array_equal(got, expected)


# --------------------------------------------------------------------------- sparse_inference


@pytest.fixture(scope="module")
def mnist_images(data_dir):
    from sparse_keras.data import mnist

    images, _ = mnist.load_arrays("test", data_dir=data_dir / "mnist", download=False)
    return np.asarray(mnist.normalize_images(images[:400, ..., None].astype(np.float32) / 255.0))


def test_sparse_inference_gives_the_same_bits_with_either_kernels(lib, mnist_images):
    keras.utils.set_random_seed(2)
    model = simulate_trained_state(models.build("mnist_sparse_cnn2", seed=2), mnist_images)
    native = sparse_inference(model, threads=2, kernels="native")
    numba = sparse_inference(model, threads=2, kernels="numba")
    convs = [s for s in native.stages if isinstance(s, _Conv)]
    hidden = [s for s in native.stages if isinstance(s, _DenseLayer) and s.sparse_input]
    assert all(s.native is lib for s in convs + hidden)
    assert all(s.native is None for s in numba.stages if isinstance(s, _Conv | _DenseLayer))
    assert native.summary().count("(C++ kernel)") == 2
    assert "(C++ kernel)" not in numba.summary()
    # Batches 1 and 4 read rows in the hidden layer, 32 per thread take the batch kernel.
    for batch in (1, 4, 64, 400):
        np.testing.assert_array_equal(native(mnist_images[:batch]), numba(mnist_images[:batch]))
    calls = []
    real = native_kernels.dense_sparse_weights
    try:
        native_kernels.dense_sparse_weights = lambda *a: calls.append(a[1].shape) or real(*a)
        native(mnist_images[:64])
        native(mnist_images[:1])
    finally:
        native_kernels.dense_sparse_weights = real
    assert calls == [(32, 450), (32, 450)]  # two threads of 32; never for one sample


def test_sparse_inference_refuses_non_finite_inputs(lib):
    fast = sparse_inference(models.build("mnist_sparse_cnn2", seed=0), threads=1)
    x = np.zeros((8, 28, 28, 1), np.float32)
    x[2, 3, 3, 0] = np.nan
    x[6, 0, 0, 0] = -np.inf
    with pytest.raises(ValueError, match=r"must be finite; samples \[2, 6\] contain NaN or Inf"):
        fast(x)


@pytest.mark.parametrize("kernels", ["native", "numba"])
def test_an_empty_batch_gives_no_rows(lib, kernels):
    fast = sparse_inference(models.build("gsc_sparse_cnn2", seed=0), kernels=kernels)
    out = fast(np.zeros((0, 32, 32, 1), np.float32))
    assert out.shape == (0, 12) and out.dtype == np.float32


def test_unknown_kernels_are_named():
    with pytest.raises(
        ValueError, match=r"kernels must be one of \('auto', 'native', 'numba'\), got 'cuda'"
    ):
        sparse_inference(models.build("mnist_sparse_cnn2", seed=0), kernels="cuda")


# --------------------------------------------------------------------------- build and cache


def test_without_a_compiler_auto_uses_numba_and_native_says_why(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(native_kernels, "_state", {})
    monkeypatch.setenv("SPARSE_KERAS_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "false")
    model = models.build("mnist_sparse_cnn2", seed=0)
    with pytest.raises(RuntimeError, match="kernels='native' was asked for.*false exited with 1"):
        sparse_inference(model, kernels="native")
    assert list((tmp_path / "kernels").iterdir()) == []  # no half-built file left
    monkeypatch.setattr(native_kernels, "_state", {})
    with caplog.at_level(logging.WARNING, logger="sparse_keras.compute.native_kernels"):
        fast = sparse_inference(model, threads=1)
    assert "uses the Numba kernels" in caplog.text
    assert all(s.native is None for s in fast.stages if isinstance(s, _Conv | _DenseLayer))
    x = np.random.default_rng(0).standard_normal((3, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(fast(x), model(x, training=False), atol=1e-4)


def test_the_library_is_cached_per_cpu_and_a_damaged_copy_rebuilt(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(native_kernels, "_state", {})
    monkeypatch.setenv("SPARSE_KERAS_CACHE", str(tmp_path))
    path = native_kernels.library_path()
    assert path.parent == tmp_path / "kernels" and path.name.startswith("sparse_kernels-")
    # Another CPU (as a cache shared over machines would see) gets another file.
    monkeypatch.setattr(native_build, "cpu_signature", lambda: "model name : another CPU")
    assert native_kernels.library_path() != path
    monkeypatch.undo()
    monkeypatch.setattr(native_kernels, "_state", {})
    monkeypatch.setenv("SPARSE_KERAS_CACHE", str(tmp_path))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x7fELF truncated")
    with caplog.at_level(logging.WARNING, logger="sparse_keras"):
        rebuilt = native_kernels.library()
    assert rebuilt is not None, native_kernels.unavailable_reason()
    assert "does not load; rebuilding" in caplog.text
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    stamp = path.stat().st_mtime_ns
    monkeypatch.setenv("CXX", "false")  # would fail if it compiled again
    monkeypatch.setattr(native_kernels, "_state", {})
    assert native_kernels.library() is not None and path.stat().st_mtime_ns == stamp


# --------------------------------------------------------------------------- bad calls


def test_the_wrappers_name_bad_arguments_instead_of_crashing(lib):
    kernel, bias = _padded(np.ones((3, 3, 2, 4), np.float32), np.zeros(4, np.float32))
    idx = np.array([[0, 5, 17]], np.int32)
    val = np.ones((1, 3), np.float32)
    out = np.empty((1, 4, 4, 4), np.float32)
    conv = native_kernels.conv2d_sparse_input
    with pytest.raises(ValueError, match="idx must be a 2-d int32 array, got int64"):
        conv(lib, idx.astype(np.int64), val, (6, 6, 2), kernel, bias, 1, False, out)
    with pytest.raises(ValueError, match=r"active indices must lie in \[0, 72\), got \[0, 72\]"):
        conv(lib, np.array([[0, 5, 72]], np.int32), val, (6, 6, 2), kernel, bias, 1, False, out)
    with pytest.raises(ValueError, match=r"active indices must lie in \[0, 72\), got \[-1, 17\]"):
        conv(lib, np.array([[-1, 5, 17]], np.int32), val, (6, 6, 2), kernel, bias, 1, False, out)
    misaligned = np.empty(kernel.size + 1, np.float32)[1:].reshape(kernel.shape)
    misaligned[...] = kernel
    with pytest.raises(ValueError, match="kernel must start on a 64-byte boundary"):
        conv(lib, idx, val, (6, 6, 2), misaligned, bias, 1, False, out)
    with pytest.raises(ValueError, match=r"do not fit an input with 3 channels"):
        conv(lib, idx, val, (6, 6, 3), kernel, bias, 1, False, out)
    with pytest.raises(ValueError, match=r"out has shape \(1, 4, 4, 4\), expected \(1, 2, 2\)"):
        conv(lib, idx, val, (6, 6, 2), kernel, bias, 2, False, out)
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        conv(
            lib,
            idx,
            val,
            (6, 6, 2),
            kernel,
            bias,
            1,
            False,
            np.empty((1, 4, 4, 8), np.float32)[..., ::2],
        )
    with pytest.raises(ValueError, match=r"val has shape \(1, 2\), idx \(1, 3\)"):
        conv(lib, idx, val[:, :2].copy(), (6, 6, 2), kernel, bias, 1, False, out)
    columns = native_kernels.ChunkedColumns(np.eye(5, 3, dtype=np.float32))
    dense = native_kernels.dense_sparse_weights
    with pytest.raises(ValueError, match=r"active indices must lie in \[0, 5\), got \[0, 17\]"):
        dense(lib, idx, val, columns, np.zeros(3, np.float32), False, np.empty((1, 3), np.float32))
    with pytest.raises(
        ValueError, match=r"bias \(4,\) and out \(1, 3\) must be \(3,\) and \(1, 3\)"
    ):
        dense(lib, idx, val, columns, np.zeros(4, np.float32), False, np.empty((1, 3), np.float32))
    first = native_kernels.conv2d_5x5_single_channel_pool2
    with pytest.raises(ValueError, match=r"expected x \[B, H, W, 1\], kernel \[5, 5, 1, Cw\]"):
        first(lib, np.zeros((1, 8, 8, 2), np.float32), kernel, bias, False, out)
