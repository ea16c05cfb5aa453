"""Computation of sparse networks: non-zero multiply accounting and a fast inference path.

- `count_multiplies(model, inputs=None)`: per layer, the dense multiply-accumulates,
  the non-zero multiplies the paper's formulas expect from k and weight density
  (Section 4.3), and the non-zero products measured on real inputs.
- `sparse_inference(model)`: a trained network compiled into an inference-only
  callable that skips zero activations and masked-out weights (Numba kernels, and C++
  kernels compiled on first use for the convolutions and masked dense layers:
  `native_kernels`).

`sparse-keras flops MODEL` prints the accounting table; `benchmarks/sparse_inference.py`
measures the inference path; docs/performance.md has the results.
"""

from sparse_keras.compute.accounting import (
    K_MODES,
    LayerCount,
    MultiplyCount,
    count_multiplies,
    simulate_trained_state,
)
from sparse_keras.compute.inference import (
    SparseInferenceModel,
    compare_with_keras,
    sparse_inference,
)

__all__ = [
    "K_MODES",
    "LayerCount",
    "MultiplyCount",
    "SparseInferenceModel",
    "compare_with_keras",
    "count_multiplies",
    "simulate_trained_state",
    "sparse_inference",
]
