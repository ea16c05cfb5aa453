"""Shared test set-up: quiet TensorFlow, the real data directory, small helpers."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    """The real datasets (`$SPARSE_KERAS_DATA`, else `../shared/data`); skips if absent."""
    root = pathlib.Path(os.environ.get("SPARSE_KERAS_DATA", SHARED_DATA))
    if not (root / "mnist").exists():
        pytest.skip(f"real data not found at {root}; set SPARSE_KERAS_DATA")
    return root
