"""The CPU winner-selection kernel against tf.math.top_k: same winners, same state."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from sparse_keras import KWinners, _select, models
from sparse_keras.layers import set_winner_selection, winner_selection


@pytest.fixture(autouse=True)
def restore_selection(monkeypatch):
    monkeypatch.setattr(winner_selection, "_method", None)
    monkeypatch.delenv("SPARSE_KERAS_WINNER_SELECTION", raising=False)


def reference_mask(x, boost, k):
    """Top-k of x * boost per sample by a full sort, ties to the lower index."""
    batch = x.shape[0]
    boosted = (x * boost).reshape(batch, -1)
    mask = np.zeros_like(boosted)
    for s in range(batch):
        # lexsort: last key first; sort by value descending, then index ascending.
        order = np.lexsort((np.arange(boosted.shape[1]), -boosted[s]))
        mask[s, order[:k]] = 1.0
    return mask.reshape(x.shape)


def awkward_inputs(rng, shape):
    """Normal values, with rows of other scales, many ties and signed zeros."""
    x = rng.normal(size=shape).astype(np.float32)
    x *= rng.uniform(0.01, 10.0, (shape[0],) + (1,) * (len(shape) - 1)).astype(np.float32)
    x[1] = np.round(x[1])  # ties across the threshold
    x[2] = np.where(rng.random(x[2].shape) < 0.5, -0.0, 0.0)  # only zeros
    x[3] -= 50.0  # all negative
    return x


@pytest.mark.parametrize(
    "positions, channels, k", [(144, 32, 400), (16, 64, 300), (1, 700, 100), (6, 3, 17), (1, 5, 1)]
)
@pytest.mark.parametrize("chunks", [1, 2, 3])
def test_kernel_matches_a_full_sort(positions, channels, k, chunks):
    rng = np.random.default_rng(positions * channels + k)
    x = awkward_inputs(rng, (9, positions, channels))
    boost = rng.uniform(0.5, 2.0, channels).astype(np.float32)
    mask = np.full(x.shape, -1.0, np.float32)
    counts = np.full((chunks, channels), -1, np.int32)
    _select.winner_mask(x, boost, k, chunks, mask, counts)
    expected = reference_mask(x, boost, k)
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(counts.sum(axis=0), ((expected > 0) & (x > 0)).sum(axis=(0, 1)))


def test_kernel_is_exact_when_the_previous_sample_misleads_its_guess():
    # Each sample starts from the previous sample's threshold: a large sample then
    # a tiny one (and the reverse) must still give exact winners.
    x = np.stack([np.linspace(-1, 1, 64) * scale for scale in (1e4, 1e-4, 1e4, 1.0, -1.0)])
    x = x.astype(np.float32)[:, None, :]
    boost = np.ones(64, np.float32)
    mask = np.empty_like(x)
    counts = np.empty((1, 64), np.int32)
    _select.winner_mask(x, boost, 7, 1, mask, counts)
    np.testing.assert_array_equal(mask, reference_mask(x, boost, 7))


# The CPU kernel's two call paths: the compiled TF op and the Numba kernel in a numpy_function.
KERNEL_METHODS = ("custom_op", "numba")


def train_pair(layer_args, input_shape, steps, seed, eager=False):
    """Trains the same KWinners with every method; returns outputs, grads and state."""
    results = {}
    for method in ("top_k", *KERNEL_METHODS):
        set_winner_selection(method)
        layer = KWinners(**layer_args)
        rng = np.random.default_rng(seed)
        outputs, grads = [], []

        def step(x, g, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(y * g)
            return y, tape.gradient(loss, x)

        if not eager:
            step = tf.function(step)
        for _ in range(steps):
            x = tf.constant(awkward_inputs(rng, input_shape))
            g = tf.constant(rng.normal(size=input_shape).astype(np.float32))
            y, dx = step(x, g)
            outputs.append(y.numpy())
            grads.append(dx.numpy())
        results[method] = (outputs, grads, [w.numpy() for w in layer.weights])
    return results


@pytest.mark.parametrize(
    "layer_args, input_shape",
    [
        (dict(k=40, boost_strength=1.5, duty_cycle_period=50), (8, 6, 6, 8)),
        (dict(k=10, boost_strength=2.0, duty_cycle_period=30), (8, 60)),
    ],
)
# Both ways of running the kernel: on the calling thread (these shapes are far below
# the default PARALLEL_MIN_VALUES) and split over threads (threshold 0): Numba's, or
# TensorFlow's intra-op threads for the compiled op.
@pytest.mark.parametrize("parallel_min", [None, 0])
# Eagerly as well: TF's graph optimiser turns a division by a constant into a multiply
# by its reciprocal, eager mode does not; the duty cycles must agree in both.
@pytest.mark.parametrize("eager", [False, True])
def test_both_methods_train_identically(layer_args, input_shape, parallel_min, eager, monkeypatch):
    if parallel_min is not None:
        monkeypatch.setattr(winner_selection, "PARALLEL_MIN_VALUES", parallel_min)
    results = train_pair(layer_args, input_shape, steps=12, seed=3, eager=eager)
    for method in KERNEL_METHODS:
        for fast, reference in zip(results[method], results["top_k"], strict=True):
            for a, b in zip(fast, reference, strict=True):
                np.testing.assert_array_equal(a, b, err_msg=method)
    duty_cycles = results["custom_op"][2][0]
    assert duty_cycles.min() < duty_cycles.max()  # boosting had something to act on


def op_types(function, *args):
    graph = function.get_concrete_function(*args).graph
    types = {op.type for op in graph.get_operations()}
    for f in graph.as_graph_def().library.function:
        types.update(node.op for node in f.node_def)
    return types


# Graph op types of the kernel's two call paths.
KERNEL_OPS = {"PyFuncStateless", "SparseKerasWinnersAndDutyCycles", "SparseKerasWinnerMask"}


def test_training_graph_uses_the_kernel_only_where_it_applies():
    layer = KWinners(3)
    layer.build((None, 10))
    spec = tf.TensorSpec((None, 10), tf.float32)
    train = tf.function(lambda x: layer(x, training=True))
    infer = tf.function(lambda x: layer(x, training=False))
    # auto: the compiled op (it builds on this machine), no Python call in the graph.
    assert KERNEL_OPS & op_types(train, spec) == {"SparseKerasWinnersAndDutyCycles"}
    assert "TopKV2" not in op_types(train, spec)
    # Inference (and so every export) keeps top_k: graphs without Python or custom ops.
    assert not KERNEL_OPS & op_types(infer, spec)
    assert "TopKV2" in op_types(infer, spec)
    # XLA cannot compile a numpy_function or our op: jit_compile keeps top_k.
    jit = tf.function(lambda x: layer(x, training=True), jit_compile=True)
    assert not KERNEL_OPS & op_types(jit, spec)
    # The kernel is float32 only.
    half = KWinners(3, dtype="float16")
    half.build((None, 10))
    spec16 = tf.TensorSpec((None, 10), tf.float16)
    assert not KERNEL_OPS & op_types(tf.function(lambda x: half(x, training=True)), spec16)
    set_winner_selection("numba")
    numba_graph = op_types(tf.function(lambda x: layer(x, training=True)), spec)
    assert KERNEL_OPS & numba_graph == {"PyFuncStateless"}
    set_winner_selection("top_k")
    assert not KERNEL_OPS & op_types(tf.function(lambda x: layer(x, training=True)), spec)


def test_auto_falls_back_to_numba_where_the_op_cannot_be_built(monkeypatch, tmp_path):
    # A compiler that fails: no library, a reason naming the failure, nothing left in the
    # cache; auto trains through the numpy_function, an explicit custom_op says why not.
    from sparse_keras.layers import winner_ops

    monkeypatch.setattr(winner_ops, "_state", {})
    monkeypatch.setenv("SPARSE_KERAS_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "false")
    assert winner_ops.library_path().parent == tmp_path / "ops"
    assert winner_ops.library() is None
    assert "false exited with 1" in winner_ops.unavailable_reason()
    assert list((tmp_path / "ops").iterdir()) == []
    layer = KWinners(3, boost_strength=0.0)
    layer.build((None, 10))
    spec = tf.TensorSpec((None, 10), tf.float32)
    assert KERNEL_OPS & op_types(tf.function(lambda x: layer(x, training=True)), spec) == {
        "PyFuncStateless"
    }
    y = layer(np.arange(10, dtype=np.float32)[None], training=True).numpy()
    np.testing.assert_array_equal(y, [[0] * 7 + [7, 8, 9]])
    set_winner_selection("custom_op")
    with pytest.raises(RuntimeError, match="'custom_op' was asked for.*false exited with 1"):
        layer(np.ones((1, 10), np.float32), training=True)


def test_the_compiled_op_is_cached_and_a_damaged_copy_rebuilt(monkeypatch, tmp_path):
    # In a fresh process (one op library per process): a truncated file under the cached
    # name is replaced by a good build, which then trains.
    from sparse_keras.layers import winner_ops

    monkeypatch.setenv("SPARSE_KERAS_CACHE", str(tmp_path))
    path = winner_ops.library_path()
    assert path.parent == tmp_path / "ops"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x7fELF truncated")
    script = (
        "import numpy as np\n"
        "from sparse_keras import KWinners\n"
        "from sparse_keras.layers import winner_ops\n"
        "assert winner_ops.library() is not None, winner_ops.unavailable_reason()\n"
        "x = np.array([[0.5, -1.0, 2.0, 1.0]], 'float32')\n"
        "print(KWinners(2, boost_strength=0.0)(x, training=True).numpy().tolist())\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[[0.0, -0.0, 2.0, 1.0]]"
    assert "does not load; rebuilding" in result.stderr
    # Rebuilt under the same name, no temporary file left; the next build compiles nothing.
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert path.stat().st_size > 10_000
    stamp = path.stat().st_mtime_ns
    monkeypatch.setenv("CXX", "false")  # would fail if it compiled again
    assert winner_ops.build() == path and path.stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    "inputs, boost, k, message",
    [
        (
            np.ones((2, 3, 4), np.float32),
            np.ones(4, np.float32),
            2,
            r"rank 2 or 4, got shape \[2,3,4\]",
        ),
        (
            np.ones((2, 4), np.float32),
            np.ones(3, np.float32),
            2,
            "boost has 3 entries, the input's last axis 4",
        ),
        (np.ones((2, 4), np.float32), np.ones((2, 2), np.float32), 2, "boost must be a vector"),
        (np.ones((2, 4), np.float32), np.ones(4, np.float32), 4, r"k = 4 must be in \[1, 4\)"),
        (np.ones((2, 4), np.float32), np.ones(4, np.float32), 0, r"k = 0 must be in \[1, 4\)"),
    ],
)
def test_the_compiled_op_names_bad_inputs(inputs, boost, k, message):
    # KWinners never passes these; a direct caller of the op gets an error naming the value.
    from sparse_keras.layers import winner_ops

    ops = winner_ops.library()
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        ops.sparse_keras_winner_mask(inputs, boost, k=k, parallel_min=1 << 20, message="m")
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        ops.sparse_keras_winners_and_duty_cycles(
            inputs,
            boost,
            np.zeros(boost.shape, np.float32),
            0.0,
            k=k,
            parallel_min=1 << 20,
            message="m",
            period=10.0,
            share=1.0,
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="duty cycles must match boost"):
        ops.sparse_keras_winners_and_duty_cycles(
            np.ones((2, 4), np.float32),
            np.ones(4, np.float32),
            np.zeros(3, np.float32),
            0.0,
            k=2,
            parallel_min=1 << 20,
            message="m",
            period=10.0,
            share=1.0,
        )


def test_environment_variable_sets_the_default(monkeypatch):
    monkeypatch.setenv("SPARSE_KERAS_WINNER_SELECTION", "top_k")
    assert winner_selection.winner_selection() == "top_k"
    assert not winner_selection.use_cpu_kernel(tf.zeros((2, 4)))
    set_winner_selection("numba")  # an explicit choice wins over the environment
    assert winner_selection.winner_selection() == "numba"


def test_unknown_methods_are_named(monkeypatch):
    with pytest.raises(ValueError, match=r"method must be one of .*'top_k'.*got 'fast'"):
        set_winner_selection("fast")
    monkeypatch.setenv("SPARSE_KERAS_WINNER_SELECTION", "quick")
    with pytest.raises(ValueError, match="SPARSE_KERAS_WINNER_SELECTION must be one of"):
        winner_selection.winner_selection()


@pytest.mark.parametrize("method", ["top_k", *KERNEL_METHODS])
def test_empty_batch_changes_nothing(method):
    set_winner_selection(method)
    layer = KWinners(3, boost_strength=1.0)
    layer.build((None, 10))
    empty = np.zeros((0, 10), np.float32)
    for warm_up in (None, np.ones((2, 10), np.float32)):  # first batch, and a later one
        if warm_up is not None:
            layer(warm_up, training=True)
        before = [w.numpy() for w in layer.weights]
        assert layer(empty, training=True).shape == (0, 10)
        for b, w in zip(before, layer.weights, strict=True):
            np.testing.assert_array_equal(w.numpy(), b)  # no 0 / 0 on the first batch
    assert layer.samples_seen.numpy() == 2.0


def test_sparse_cnn2_fit_gives_the_same_weights_with_both_methods():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 48)
    weights = {}
    for method in ("top_k", *KERNEL_METHODS):
        set_winner_selection(method)
        keras.utils.set_random_seed(0)
        model = models.build("mnist_sparse_cnn2", seed=0)
        model.compile(
            keras.optimizers.SGD(0.01, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        weights[method] = model.get_weights()
    for method in KERNEL_METHODS:
        for a, b in zip(weights[method], weights["top_k"], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=method)


def test_auto_keeps_top_k_where_an_accelerator_is_visible(monkeypatch):
    monkeypatch.setattr(winner_selection, "_has_accelerator", lambda: True)
    x = tf.zeros((2, 4))
    assert not winner_selection.use_cpu_kernel(x)  # auto
    set_winner_selection("numba")  # the user asks for the kernel anyway
    assert winner_selection.use_cpu_kernel(x)
    assert not winner_selection.use_cpu_kernel(tf.zeros((2, 4), tf.float16))


@pytest.mark.parametrize(
    "batch, units, threads, chunks",
    [
        (4, 4608, 2, 1),  # MNIST conv1 k-winners at batch 4: 18,432 values
        (64, 12544, 2, 1),  # GSC conv1 k-winners at batch 64: 802,816 < 2**20
        (84, 12544, 2, 2),  # 1,053,696 >= 2**20 = 1,048,576: one part per thread
        (1, 1 << 20, 4, 1),  # never more parts than samples
        (3, 1 << 20, 4, 3),
        (0, 4608, 2, 1),  # an empty batch
    ],
)
def test_kernel_chunks_follow_the_documented_rule(batch, units, threads, chunks):
    assert winner_selection.PARALLEL_MIN_VALUES == 1 << 20
    assert winner_selection.kernel_chunks(batch, units, threads) == chunks


@pytest.mark.parametrize("parallel_min, expected", [(None, "serial"), (0, "parallel")])
def test_the_layer_calls_the_kernel_the_rule_picks(parallel_min, expected, monkeypatch):
    set_winner_selection("numba")
    if parallel_min is not None:
        monkeypatch.setattr(winner_selection, "PARALLEL_MIN_VALUES", parallel_min)
    calls = []
    for name in ("winner_mask", "winner_mask_serial"):
        kernel = getattr(_select, name)

        def spy(x, boost, k, chunks, mask, counts, kernel=kernel, name=name):
            calls.append((name, chunks))
            return kernel(x, boost, k, chunks, mask, counts)

        monkeypatch.setattr(_select, name, spy)
    layer = KWinners(2, boost_strength=0.0)
    x = np.array([[0.1, 0.9, 0.3, 0.5], [4.0, -1.0, 3.0, 2.0]], np.float32)
    y = layer(x, training=True).numpy()
    np.testing.assert_array_equal(y, x * np.array([[0, 1, 0, 1], [1, 0, 1, 0]], np.float32))
    # Positive winners per unit over the batch of 2, folded into the duty cycles.
    np.testing.assert_array_equal(layer.duty_cycles.numpy(), np.array([1, 1, 1, 1]) / 2)
    assert layer.samples_seen.numpy() == 2.0
    chunks = min(_select.threads(), 2)
    assert calls == (
        [("winner_mask_serial", 1)] if expected == "serial" else [("winner_mask", chunks)]
    )


def test_all_finite_by_hand():
    assert _select.all_finite(np.array([1.0, -0.0, 3e38, -1e-45], np.float32))
    assert _select.all_finite(np.zeros((0, 3), np.float32))
    for bad in (np.inf, -np.inf, np.nan):
        x = np.ones((2, 3, 4), np.float32)
        x[1, 2, 3] = bad
        assert not _select.all_finite(x)


@pytest.mark.parametrize("method", KERNEL_METHODS)
@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("shape", [(2, 4), (1, 4, 4, 1)])
def test_the_kernel_path_refuses_non_finite_inputs(method, graph, shape):
    # Only the kernel checks here: the layer leaves out TF's check_numerics on this path.
    set_winner_selection(method)
    layer = KWinners(2, name="kw")
    layer.build(shape)
    call = lambda x: layer(x, training=True)  # noqa: E731
    if graph:
        call = tf.function(call)
        assert "CheckNumerics" not in op_types(call, tf.TensorSpec(shape, tf.float32))
        call(tf.ones(shape))
        layer.samples_seen.assign(0.0)
    for bad in (np.nan, np.inf, -np.inf):
        x = np.ones(shape, np.float32)
        x.flat[3] = bad
        with pytest.raises(tf.errors.InvalidArgumentError, match="KWinners layer 'kw' got NaN"):
            call(tf.constant(x))
    assert layer.samples_seen.numpy() == 0.0  # no duty-cycle update either
