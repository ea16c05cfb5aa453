"""Checking a zoo folder: complete, self-consistent, loadable, and the registry's.

`check` is what `sparse-keras zoo check` runs, and what packaging and publishing
(`training/packaging.py`, maintainer tooling) run before they write or upload.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

from sparse_keras.zoo import artifacts, card
from sparse_keras.zoo import registry as _registry

PathLike = str | os.PathLike


class ZooCheckError(ValueError):
    """A zoo folder failed `check`; `problems` lists every finding."""

    def __init__(self, folder: pathlib.Path, problems: list[str]):
        self.folder = folder
        self.problems = problems
        super().__init__(f"Zoo folder {folder} failed the check:\n  - " + "\n  - ".join(problems))


def _check_card(path: pathlib.Path, metrics: dict[str, Any] | None, problems: list[str]) -> None:
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        problems.append(f"{path.name} has no YAML header (it must start with a '---' line).")
        return
    try:
        model_card = card.read_card(path)
    except Exception as err:  # the YAML parser raises several unrelated types
        problems.append(f"{path.name} YAML header does not parse: {err}")
        return
    data = model_card.data
    for key, want in (("library_name", "keras"), ("license", "mit")):
        if getattr(data, key, None) != want:
            problems.append(
                f"{path.name} header: {key} is {getattr(data, key, None)!r}, expected {want!r}."
            )
    for key in ("datasets", "tags"):
        if not getattr(data, key, None):
            problems.append(f"{path.name} header has no {key}.")
    results = {r.metric_type: r.metric_value for r in (data.eval_results or [])}
    if not results:
        problems.append(f"{path.name} header has no model-index metrics.")
    elif metrics is not None:
        expected = {
            "accuracy": round(100 * metrics["clean_accuracy"], 2),
            "noise_score": metrics["noise_score"],
        }
        for key, value in expected.items():
            if results.get(key) != value:
                problems.append(
                    f"{path.name} model-index {key} is {results.get(key)!r}, metrics.json says {value!r}."
                )
    if len(model_card.text.strip()) < 200:
        problems.append(f"{path.name} has almost no prose after the header.")


def check(folder: PathLike, registry: PathLike | None = None, load_weights: bool = True) -> None:
    """Validates a zoo folder before it is committed or published.

    Checks that the four files and nothing else are present; the card has the Hub's
    YAML header (keras, MIT, datasets, tags, model-index) whose metrics equal
    `metrics.json`'s; `metrics.json` has the required fields; the weights load into
    the network `config.json` builds; and every file's sha256 is the registry's.

    Args:
        folder: The zoo folder (its name is the zoo name).
        registry: Registry file; default as `registry.registry_path` says.
        load_weights: Also build the network and load the weights into it.

    Raises:
        ZooCheckError: listing every problem found.
    """
    folder = pathlib.Path(folder)
    problems: list[str] = []
    if not folder.is_dir():
        raise ZooCheckError(folder, [f"{folder} is not a folder."])
    present = {p.name for p in folder.iterdir()}
    for missing in [f for f in _registry.FILE_NAMES if f not in present]:
        problems.append(f"{missing} is missing.")
    for extra in sorted(present - set(_registry.FILE_NAMES)):
        problems.append(f"unexpected file {extra} (the folder is uploaded as it is).")

    metrics = config = None
    if _registry.METRICS_FILE in present:
        try:
            metrics = json.loads((folder / _registry.METRICS_FILE).read_text())
        except json.JSONDecodeError as err:
            problems.append(f"metrics.json is not JSON: {err}")
        else:
            required = (
                "clean_accuracy",
                "noise_levels",
                "noise_accuracy",
                "noise_score",
                "max_score",
                "seed",
                "seeds",
                "recipe",
                "command",
                "versions",
                "dataset",
            )
            missing = [k for k in required if metrics.get(k) is None]
            if missing:
                problems.append(f"metrics.json lacks {', '.join(missing)}.")
                metrics = None
            elif not folder.name.startswith(f"{metrics['dataset']}_"):
                problems.append(
                    f"name {folder.name!r} does not start with the training dataset {metrics['dataset']!r}."
                )
    if _registry.CARD_FILE in present:
        _check_card(folder / _registry.CARD_FILE, metrics, problems)
    if _registry.CONFIG_FILE in present:
        try:
            config = json.loads((folder / _registry.CONFIG_FILE).read_text())
        except json.JSONDecodeError as err:
            problems.append(f"config.json is not JSON: {err}")

    try:
        entry = _registry.get_entry(folder.name, registry)
    except ValueError:
        problems.append(
            f"{folder.name!r} is not in the registry {_registry.registry_path(registry)}."
        )
    else:
        for file_name in _registry.FILE_NAMES:
            if file_name not in present:
                continue
            want = (entry.get("files") or {}).get(file_name)
            got = _registry.file_sha256(folder / file_name)
            if want != got:
                problems.append(f"{file_name} sha256 {got} differs from the registry's {want}.")
        if not entry.get("available"):
            problems.append("the registry marks it unavailable.")

    if load_weights and config is not None and _registry.WEIGHTS_FILE in present:
        try:
            model = artifacts.model_from_config(config)
            model.load_weights(folder / _registry.WEIGHTS_FILE)
        except Exception as err:  # any failure to build or load is a finding, not a crash
            problems.append(
                f"weights do not load into the configured network: {type(err).__name__}: {err}"
            )
    if problems:
        raise ZooCheckError(folder, problems)


__all__ = ["ZooCheckError", "check"]
