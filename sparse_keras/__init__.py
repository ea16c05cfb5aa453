"""sparse_keras: the sparse networks of "How Can We Be So Dense?" as Keras 3 layers and models."""

__version__ = "0.1.0"

import importlib as _importlib  # noqa: E402
import os as _os  # noqa: E402
import sys as _sys  # noqa: E402

# Where each public name lives; loaded on first use when the import below is deferred.
_LAZY = {
    "constraints": ("sparse_keras.constraints", None),
    "metrics": ("sparse_keras.metrics", None),
    "BoostDecay": ("sparse_keras.callbacks", "BoostDecay"),
    "DutyCycleMonitor": ("sparse_keras.callbacks", "DutyCycleMonitor"),
    "FixedMask": ("sparse_keras.constraints", "FixedMask"),
    "KWinners": ("sparse_keras.layers", "KWinners"),
    "SparseConv2D": ("sparse_keras.layers", "SparseConv2D"),
    "SparseDense": ("sparse_keras.layers", "SparseDense"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'sparse_keras' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = _importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def _launched_as_command() -> bool:
    # The `sparse-keras` console script imports sparse_keras.cli, and with it this file.
    # Importing the layers here would load TensorFlow (seconds) before `--help` can
    # answer; each command imports what it needs itself.
    argv = getattr(_sys, "argv", None) or [""]
    name = _os.path.basename(str(argv[0])).lower()
    if name in {"sparse-keras", "sparse-keras.exe", "sparse-keras-script.py"}:
        return True
    original = list(getattr(_sys, "orig_argv", ()))  # `python -m sparse_keras.cli ...`
    return any(
        flag == "-m" and module == "sparse_keras.cli"
        for flag, module in zip(original, original[1:], strict=False)
    )


if not _launched_as_command():
    # Importing sparse_keras registers the custom layers with Keras, so that
    # `keras.models.load_model` can rebuild saved sparse models.
    from sparse_keras import constraints, metrics  # noqa: E402
    from sparse_keras.callbacks import BoostDecay, DutyCycleMonitor  # noqa: E402
    from sparse_keras.constraints import FixedMask  # noqa: E402
    from sparse_keras.layers import KWinners, SparseConv2D, SparseDense  # noqa: E402

__all__ = [
    "BoostDecay",
    "DutyCycleMonitor",
    "FixedMask",
    "KWinners",
    "SparseConv2D",
    "SparseDense",
    "constraints",
    "metrics",
]
