"""The zoo registry: which pretrained models exist, where they live, and their checksums.

The registry (`registry.json`, shipped as package data) maps each zoo name to its Hugging
Face Hub repository, the pinned revision, the sha256 of every file of the model folder
and the summary metrics. `load` trusts a downloaded file only if its sha256 is the one
recorded here, so the registry, committed with the code, is what pins a model's content.

`SPARSE_KERAS_ZOO_REGISTRY` points every zoo function at another registry file (tests,
private zoos); `SPARSE_KERAS_ZOO_DIR` at another folder of local zoo copies.
"""

from __future__ import annotations

import difflib
import json
import os
import pathlib
from typing import Any

from sparse_keras.data.download import sha256_of

REGISTRY_ENV = "SPARSE_KERAS_ZOO_REGISTRY"
ZOO_DIR_ENV = "SPARSE_KERAS_ZOO_DIR"
PACKAGE_REGISTRY = pathlib.Path(__file__).resolve().with_name("registry.json")
FORMAT_VERSION = 1

# The files of a zoo folder, exactly what a Hub model repo holds.
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"
FILE_NAMES = (CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE, CARD_FILE)
# The files `load` needs; the card and metrics are for people and `check`.
LOAD_FILES = (CONFIG_FILE, WEIGHTS_FILE)

DEFAULT_HUB_ORGANIZATION = "sparse-keras"

PathLike = str | os.PathLike


def registry_path(registry: PathLike | None = None) -> pathlib.Path:
    """The registry file in use: `registry`, else `$SPARSE_KERAS_ZOO_REGISTRY`, else the package's."""
    if registry is not None:
        return pathlib.Path(registry)
    env = os.environ.get(REGISTRY_ENV)
    return pathlib.Path(env) if env else PACKAGE_REGISTRY


def read_registry(registry: PathLike | None = None) -> dict[str, Any]:
    """Reads a registry file.

    Args:
        registry: Registry file; default as `registry_path` says.

    Returns:
        The registry, `{"format_version": 1, "models": {name: entry}}`.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: if it is not a registry of a known format.
    """
    path = registry_path(registry)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"Zoo registry {path} is not valid JSON: {err}") from err
    if (
        not isinstance(data, dict)
        or data.get("format_version") != FORMAT_VERSION
        or "models" not in data
    ):
        raise ValueError(
            f"Zoo registry {path} is not a format-{FORMAT_VERSION} registry "
            f"(expected keys 'format_version' and 'models')."
        )
    return data


def write_registry(data: dict[str, Any], registry: PathLike | None = None) -> pathlib.Path:
    """Writes a registry file (atomically, so a reader never sees half of it)."""
    path = registry_path(registry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def closest_available(name: str, models: dict[str, dict[str, Any]]) -> str | None:
    """The available zoo model a user asking for `name` most likely wants, or None.

    The same network (the part of the name after the dataset, e.g. `sparse_cnn2`)
    trained on another dataset comes first, a dataset whose name starts with the asked
    one's first of those (`gsc` -> `gsc12v2`); otherwise the most similar available name.

    Args:
        name: The name asked for (unknown, or listed without weights).
        models: The registry's models, `{name: entry}`.
    """
    if not isinstance(name, str):
        return None
    available = [n for n, entry in models.items() if entry.get("available") and n != name]
    dataset, _, network = name.partition("_")
    same_network = [n for n in available if n.partition("_")[2] == network]
    if same_network:
        return min(same_network, key=lambda n: (not n.startswith(dataset), n))
    matches = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
    return matches[0] if matches else None


def get_entry(name: str, registry: PathLike | None = None) -> dict[str, Any]:
    """The registry entry of a zoo model.

    Raises:
        ValueError: if `name` is not in the registry; the message names the closest
            available model and lists the names that exist.
    """
    models = read_registry(registry)["models"]
    if name not in models:
        available = [n for n, entry in models.items() if entry.get("available")]
        unavailable = [n for n, entry in models.items() if not entry.get("available")]
        closest = closest_available(name, models)
        raise ValueError(
            f"Unknown zoo model {name!r}."
            + (f" Did you mean {closest!r}?" if closest else "")
            + f" Available: {', '.join(available) or 'none yet'}"
            + (f"; listed without weights: {', '.join(unavailable)}" if unavailable else "")
            + "."
        )
    return models[name]


def checkout_root() -> pathlib.Path | None:
    """The root of the source checkout this package runs from, or None if it is installed."""
    root = pathlib.Path(__file__).resolve().parents[2]
    if (root / "setup.cfg").is_file() and (root / "sparse_keras" / "zoo").is_dir():
        return root
    return None


def zoo_dir() -> pathlib.Path | None:
    """Folder of local zoo copies: `$SPARSE_KERAS_ZOO_DIR`, else `<checkout>/zoo`, else None."""
    env = os.environ.get(ZOO_DIR_ENV)
    if env:
        return pathlib.Path(env)
    root = checkout_root()
    return root / "zoo" if root is not None else None


def file_sha256(path: PathLike) -> str:
    """Hex sha256 of a file."""
    return sha256_of(path)
