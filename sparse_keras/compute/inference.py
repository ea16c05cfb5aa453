"""A fast, inference-only path for trained sparse networks: it skips the zeros.

`sparse_inference(model)` reads a trained Keras model (a chain of the layers
`sparse_keras.models.build` uses) and compiles it into a short list of stages run by
Numba kernels (`_kernels.py`) and, where a C++ compiler is at hand, two C++ kernels
(`native_kernels.py`); the stages are compiled in `_stages.py`:

- a convolution fed by k-winners sums, for each output, only the active inputs it sees
  (work proportional to the winners, not to the input size), 64 output channels at a
  time in vector registers (C++; the Numba kernel adds them tap by tap in L1);
- a dense layer fed by k-winners reads only the active rows of its kernel, four rows
  per pass over a sample's output row; for a batch whose samples outnumber what that
  saves, the C++ kernel instead multiplies each stored (masked-in) weight by 16-64
  samples' inputs at once;
- k-winners is a radix select over the boosted values, picking exactly the set
  `tf.math.top_k` picks (ties to the lower index);
- inference-mode batch normalisation is folded into the convolution or dense layer
  before it, max-pooling and ReLU are fused into the convolution.

The whole forward pass is one Python call with a handful of kernel calls and no
framework executor, which is what makes batch-1 latency low; batches are split over
threads (the kernels release the GIL).
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import time

import keras
import numpy as np

from sparse_keras.compute import native_kernels
from sparse_keras.compute._stages import (
    WEIGHT_FORMATS,
    _compile,
    _Conv,
    _dense,
    _DenseLayer,
    _kernels,
    _KWinners,
    _Stage,
)
from sparse_keras.compute.accounting import single_input


class SparseInferenceModel:
    """An inference-only version of a trained network that skips zero activations.

    Made by `sparse_inference`; see there. Calling it returns the model's outputs
    (logits for `sparse_keras.models` networks) as a NumPy array.

    Attributes:
        input_shape: Per-sample input shape.
        stages: The compiled stages, in order (see `summary()`).
        threads: Threads a batch is split over.
    """

    def __init__(self, stages: list[_Stage], input_shape: tuple[int, ...], threads: int, name: str):
        self.stages = stages
        self.input_shape = input_shape
        self.threads = threads
        self.name = name
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    # Below this many samples per thread, splitting costs more than it saves.
    min_samples_per_thread = 4

    def _check(self, inputs) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(inputs), dtype=np.float32)
        if x.shape[1:] != self.input_shape:
            raise ValueError(
                f"Expected inputs of shape (batch, {', '.join(map(str, self.input_shape))}), "
                f"got {x.shape}."
            )
        finite = np.isfinite(x.reshape(len(x), math.prod(self.input_shape))).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise ValueError(
                f"inputs must be finite; samples {bad[:5].tolist()}"
                f"{' and more' if bad.size > 5 else ''} contain NaN or Inf."
            )
        return x

    def _forward(self, x: np.ndarray) -> np.ndarray:
        for stage in self.stages:
            x = stage(x)
        return _dense(x)

    def __call__(self, inputs) -> np.ndarray:
        """Runs the network on a batch.

        Args:
            inputs: Array-like `(batch, *input_shape)` (NumPy array or `tf.Tensor`),
                preprocessed exactly as for the Keras model.

        Returns:
            float32 NumPy array `(batch, outputs)`.

        Raises:
            ValueError: for inputs of the wrong shape, or with NaN or Inf (named by sample).
        """
        x = self._check(inputs)
        if len(x) == 0:  # the stages reshape by sample; one zero sample gives the width
            return self._forward(np.zeros((1, *self.input_shape), np.float32))[:0]
        chunks = min(self.threads, x.shape[0] // self.min_samples_per_thread)
        if chunks <= 1:
            return self._forward(x)
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(self.threads)
        parts = np.array_split(x, chunks)
        return np.concatenate(list(self._executor.map(self._forward, parts)))

    def predict(self, inputs, batch_size: int = 256) -> np.ndarray:
        """Runs `inputs` through in batches of `batch_size`; returns the stacked outputs."""
        x = self._check(inputs)
        return np.concatenate(
            [self(x[i : i + batch_size]) for i in range(0, max(len(x), 1), batch_size)]
        )

    def profile(self, inputs, repeats: int = 20, clock: str = "wall") -> list[tuple[str, float]]:
        """Median seconds per stage over `repeats` runs of `inputs` (in this thread).

        Args:
            inputs: A batch `(batch, *input_shape)`.
            repeats: Runs to take the median over.
            clock: "wall" (elapsed time) or "cpu" (this thread's CPU time, which
                leaves out the time the thread waited while other jobs held the CPU).

        Returns:
            `[(description, seconds), ...]`, one entry per stage.
        """
        if clock not in ("wall", "cpu"):
            raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}.")
        now = time.perf_counter if clock == "wall" else time.thread_time
        x = self._check(inputs)
        self._forward(x)  # compile / warm up
        times = np.zeros((repeats, len(self.stages)))
        for r in range(repeats):
            h = x
            for s, stage in enumerate(self.stages):
                start = now()
                h = stage(h)
                times[r, s] = now() - start
        return [
            (f"{'+'.join(stage.layers)}: {stage.describe()}", float(t))
            for stage, t in zip(self.stages, np.median(times, axis=0), strict=True)
        ]

    def summary(self) -> str:
        """One line per compiled stage: the Keras layers it covers and what it does."""
        lines = [f"SparseInferenceModel {self.name!r}, input {self.input_shape}:"]
        for stage in self.stages:
            lines.append(f"  {'+'.join(stage.layers):<40} {stage.describe()}")
        return "\n".join(lines)

    def close(self) -> None:
        """Stops the worker threads (they are also stopped when the object is deleted)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def __del__(self):
        self.close()


KERNELS = ("auto", "native", "numba")


def sparse_inference(
    model: keras.Model,
    threads: int | None = None,
    weight_format: str = "rows",
    warm_up: bool = True,
    kernels: str = "auto",
) -> SparseInferenceModel:
    """Compiles a trained network into a fast inference path that skips the zeros.

    The result computes what `model(x, training=False)` computes (same winners, same
    outputs up to float32 rounding), but a convolution or dense layer fed by
    k-winners only touches the active inputs, batch norm is folded away and there is
    no framework overhead per layer. The model's weights are copied: later changes to
    the model are not seen.

    Rounding: the summation order differs from TensorFlow's, so values differ in the
    last bits (~1e-6). Where two candidates for the k-th winner are closer than that,
    the two paths may keep different winners; see docs/performance.md for how often
    that happens on real inputs.

    Args:
        model: A single-input chain of supported layers (any `sparse_keras.models`
            network, trained or not).
        threads: Threads a batch is split over (a batch of 1 always runs in the
            calling thread). Default: the number of CPUs.
        weight_format: How a dense layer fed by k-winners stores its kernel:
            "rows" (dense rows, zeros included: reads `k` contiguous rows, SIMD
            friendly) or "csr" (only the masked-in weights, compressed sparse rows:
            exactly the non-zero multiplies, but scattered updates).
        warm_up: Run one sample through so that kernels are compiled (or loaded
            from Numba's cache) now rather than on the first call.
        kernels: "auto" (the C++ kernels where they can be built, compiled on the
            first call of the process, a few seconds, else Numba with one warning),
            "native" (the C++ kernels or a `RuntimeError` saying why not) or "numba"
            (Numba only). Outputs are the same bits either way.

    Returns:
        A `SparseInferenceModel`: call it with a `(batch, *input_shape)` array.

    Raises:
        ValueError: for a layer or configuration the compiler does not support, or an
            unknown `weight_format`, `threads` or `kernels`.
        ImportError: if Numba is not installed.
        RuntimeError: for `kernels="native"` where the C++ kernels cannot be built.

    Example:

    >>> model = sparse_keras.models.build("mnist_sparse_cnn2", seed=0)
    >>> fast = sparse_inference(model)
    >>> x = np.random.default_rng(0).normal(size=(8, 28, 28, 1)).astype("float32")
    >>> np.allclose(fast(x), model(x, training=False), atol=1e-4)
    True
    """
    if weight_format not in WEIGHT_FORMATS:
        raise ValueError(f"weight_format must be one of {WEIGHT_FORMATS}, got {weight_format!r}.")
    if threads is None:
        threads = os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}.")
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS}, got {kernels!r}.")
    _kernels()
    native = None
    if kernels != "numba":
        native = native_kernels.library()
        if native is None and kernels == "native":
            raise RuntimeError(
                "kernels='native' was asked for, but the C++ kernels could not be built: "
                f"{native_kernels.unavailable_reason()}. Use kernels='auto' or 'numba'."
            )
    stages, input_shape = _compile(model, weight_format)
    for stage in stages:
        # CSR is an explicit request for the Numba CSR kernel; the C++ ones read rows.
        csr = isinstance(stage, _DenseLayer) and stage.csr is not None
        if isinstance(stage, _Conv) or (isinstance(stage, _DenseLayer) and stage.sparse_input):
            stage.native = None if csr else native
    compiled = SparseInferenceModel(stages, input_shape, threads, model.name)
    if warm_up:
        compiled(np.zeros((1, *input_shape), np.float32))
    return compiled


def compare_with_keras(
    model: keras.Model,
    fast: SparseInferenceModel,
    inputs,
    atol: float = 1e-4,
    batch_size: int = 256,
) -> dict:
    """Checks `fast` against `model(x, training=False)` and explains any difference.

    Outputs may differ by more than `atol` only where a k-winners layer kept a
    different set of winners. That is legitimate when the swap is within rounding:
    at the first layer whose winners differ the inputs of both paths agreed, so if
    the two paths' boosted values differ by at most `delta` there, any unit kept by
    one path only must be within `2 * delta` of any unit kept by the other path
    only (in the reference's values). A difference is "explained" when it passes
    that test; an unexplained one is a bug. (TensorFlow's own values may change
    with the batch size, since oneDNN picks its algorithm by shape, so the check
    uses the reference values of the very batch that was compared.)

    Args:
        model: The Keras model.
        fast: `sparse_inference(model)`.
        inputs: Preprocessed inputs `(N, *input_shape)`.
        atol: Largest acceptable absolute difference of an output.
        batch_size: Batch size of both paths.

    Returns:
        A dict: `samples`, `max_diff` (over all samples), `differing` (indices with a
        difference > atol), `explained` (bool per differing sample),
        `max_diff_others` (over the remaining samples), `same_class` (fraction of all
        samples with the same arg-max).
    """
    x = np.asarray(inputs, np.float32)
    stages = [s for s in fast.stages if isinstance(s, _KWinners)]
    probe = keras.Model(
        single_input(model), [model.get_layer(s.layers[0]).input for s in stages] + [model.output]
    )
    # The Keras layers' own boost factors: a swap is judged with the reference's values,
    # never with the compiled path's copy (which may be the very thing that is wrong).
    boosts = [_keras_boost(model.get_layer(s.layers[0]), s.boost.size) for s in stages]
    diffs, same, differing, explained = [], 0, [], []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        outputs = probe(batch, training=False)
        outputs = [
            np.asarray(o) for o in (outputs if isinstance(outputs, list | tuple) else [outputs])
        ]
        reference, got = outputs[-1], fast(batch)
        diff = np.abs(reference - got).reshape(len(batch), -1).max(axis=-1)
        diffs.append(diff)
        same += int(np.sum(reference.argmax(-1) == got.argmax(-1)))
        for i in np.flatnonzero(diff > atol):
            differing.append(start + i)
            explained.append(
                _swap_within_rounding(
                    fast, stages, boosts, [o[i] for o in outputs[:-1]], batch[i : i + 1]
                )
            )
    diff = np.concatenate(diffs) if diffs else np.zeros(0)
    others = np.delete(diff, differing)
    return {
        "samples": len(x),
        "max_diff": float(diff.max(initial=0.0)),
        "differing": np.asarray(differing, int),
        "explained": np.asarray(explained, bool),
        "max_diff_others": float(others.max(initial=0.0)),
        "same_class": same / max(len(x), 1),
    }


def _keras_boost(layer, size: int) -> np.ndarray:
    """A Keras k-winners layer's boost factor of every flat position."""
    boost = np.asarray(layer.boost_factors(), np.float32).reshape(-1)
    return np.tile(boost, size // boost.size)


def _swap_within_rounding(
    fast: SparseInferenceModel,
    stages: list[_KWinners],
    boosts: list[np.ndarray],
    reference_inputs: list,
    x: np.ndarray,
) -> bool:
    """For one sample: is the first differing winner set a swap within rounding?

    `reference_inputs` are the Keras model's inputs to each k-winners stage for this
    sample, taken from the batch it was compared in; `boosts` the Keras layers' boost
    factors. A stage whose boost factors differ from its layer's is a bug, not rounding.
    """
    mine = {}
    h = x
    for stage in fast.stages:
        if isinstance(stage, _KWinners):
            mine[id(stage)] = np.asarray(_dense(h), np.float32).reshape(-1)
        h = stage(h)
    for stage, boost, ref_input in zip(stages, boosts, reference_inputs, strict=True):
        if not np.allclose(stage.boost, boost, rtol=1e-6, atol=0.0):
            return False
        ref = np.asarray(ref_input, np.float32).reshape(-1) * boost
        own = mine[id(stage)] * boost
        ref_winners = set(np.argsort(-ref, kind="stable")[: stage.k].tolist())
        own_winners = set(np.argsort(-own, kind="stable")[: stage.k].tolist())
        if ref_winners == own_winners:
            continue
        delta = float(np.max(np.abs(ref.astype(np.float64) - own)))
        only_ref = ref[list(ref_winners - own_winners)].astype(np.float64)
        only_own = ref[list(own_winners - ref_winners)].astype(np.float64)
        return bool(only_ref.max() - only_own.min() <= 2 * delta * (1 + 1e-6))
    return False  # winners all agree, yet the outputs differ: not a rounding swap
