"""The paper's published results (SPEC §5): Tables 1 and 2, one home for both.

The aggregate tables (`training.aggregate`), the zoo cards made by
`training.packaging` and the docs quote these numbers beside ours; nothing else in
the project types them in.
"""

from __future__ import annotations

from typing import Any

# The paper's results (mean, std over 10 seeds): accuracy in %, noise score.
PAPER_RESULTS: dict[str, dict[str, Any]] = {
    "mnist_dense_cnn1": {
        "table": 1,
        "label": "Dense CNN-1",
        "accuracy": (99.14, 0.03),
        "noise_score": (74_569, 3_200),
    },
    "mnist_dense_cnn2": {
        "table": 1,
        "label": "Dense CNN-2",
        "accuracy": (99.31, 0.06),
        "noise_score": (97_040, 2_853),
    },
    "mnist_sparse_cnn1": {
        "table": 1,
        "label": "Sparse CNN-1",
        "accuracy": (98.41, 0.08),
        "noise_score": (100_306, 1_735),
    },
    "mnist_sparse_cnn2": {
        "table": 1,
        "label": "Sparse CNN-2",
        "accuracy": (99.09, 0.05),
        "noise_score": (103_764, 1_125),
    },
    "mnist_dense_cnn2_sp3": {
        "table": 1,
        "label": "Dense CNN-2 SP3",
        "accuracy": (99.13, 0.07),
        "noise_score": (100_318, 2_762),
    },
    "mnist_sparse_cnn2_d3": {
        "table": 1,
        "label": "Sparse CNN-2 D3",
        "accuracy": (98.89, 0.13),
        "noise_score": (102_328, 1_720),
    },
    "mnist_sparse_cnn2_w1": {
        "table": 1,
        "label": "Sparse CNN-2 W1",
        "accuracy": (98.2, 0.19),
        "noise_score": (100_322, 2_082),
    },
    "mnist_sparse_cnn2_dsw": {
        "table": 1,
        "label": "Sparse CNN-2 DSW",
        "accuracy": (98.92, 0.09),
        "noise_score": (70_566, 2_857),
    },
    "gsc_dense_cnn2": {
        "table": 2,
        "label": "Dense CNN-2 (dropout 0.0)",
        "accuracy": (96.37, 0.37),
        "noise_score": (8_730, 471),
    },
    "gsc_dense_cnn2_dropout": {
        "table": 2,
        "label": "Dense CNN-2 (dropout 0.5)",
        "accuracy": (95.69, 0.48),
        "noise_score": (7_681, 368),
    },
    "gsc_sparse_cnn2": {
        "table": 2,
        "label": "Sparse CNN-2",
        "accuracy": (96.65, 0.21),
        "noise_score": (11_233, 1_013),
    },
    "gsc_super_sparse_cnn2": {
        "table": 2,
        "label": "Super-Sparse CNN-2",
        "accuracy": (96.57, 0.16),
        "noise_score": (10_752, 942),
    },
}


def paper_result(
    network: str, overrides: dict[str, Any] | None = None, dataset: str | None = None
) -> dict[str, Any] | None:
    """The paper's row for a network (GSC Dense CNN-2 with dropout 0.5 has its own).

    None when the weights were trained on other data than the paper's for that network
    (e.g. a GSC network trained on FSDD): those numbers would not be comparable.
    """
    if dataset is not None and not network.startswith(f"{dataset}_"):
        return None
    if network == "gsc_dense_cnn2" and (overrides or {}).get("dropout"):
        return PAPER_RESULTS["gsc_dense_cnn2_dropout"]
    return PAPER_RESULTS.get(network)


def table(number: int) -> dict[str, dict[str, Any]]:
    """The rows of the paper's Table `number` (1: MNIST, 2: GSC), by network name."""
    return {name: row for name, row in PAPER_RESULTS.items() if row["table"] == number}


def label(network: str, overrides: dict[str, Any] | None = None) -> str:
    """The paper's name for a network ("Sparse CNN-2"), or the network name itself."""
    return (paper_result(network, overrides) or {}).get("label", network)
