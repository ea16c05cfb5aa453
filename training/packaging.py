"""Making zoo folders from training runs and publishing them to the Hub (maintainer tooling).

    package: training/runs/<recipe>/seed<k>/final.weights.h5 + training/results/<recipe>/seed<k>.json
             -> zoo/<name>/{config.json, model.weights.h5, metrics.json, README.md} + registry entry
    publish: check, then upload the folder to its Hub repo and pin the new commit in the registry

`python -m training.publish package|check|publish|embed` is the command line. The
installed package only reads what this writes: `sparse_keras.zoo` loads and checks
zoo folders (`sparse_keras.zoo.checks.check`), and renders cards from a template
(`sparse_keras.zoo.card`); the paper's numbers the cards quote come from
`training.paper`.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from typing import Any

import huggingface_hub
import keras

import sparse_keras
from sparse_keras import _embedded
from sparse_keras.zoo import artifacts, card
from sparse_keras.zoo import registry as _registry
from sparse_keras.zoo.checks import check
from training import paper

PathLike = str | os.PathLike


def _checkout_path(*parts: str) -> pathlib.Path:
    root = _registry.checkout_root()
    if root is None:
        raise FileNotFoundError(
            f"Not running from a sparse_keras checkout: pass the {'/'.join(parts)} folder explicitly."
        )
    return root.joinpath(*parts)


def _relative(path: pathlib.Path) -> str:
    root = _registry.checkout_root()
    try:
        return str(path.resolve().relative_to(root)) if root else str(path)
    except ValueError:
        return str(path)


def _write_json(path: pathlib.Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def package_command(recipe: str, seed: int, name: str | None) -> str:
    """The canonical command that packages a run (recorded in metrics.json and the card)."""
    return f"python -m training.publish package --recipe {recipe} --seed {seed}" + (
        f" --name {name}" if name and name != recipe else ""
    )


BEST_VALIDATION = "best-val"


def best_validation_seed(results_dir: PathLike, recipe: str) -> tuple[int, str]:
    """The finished seed whose kept epoch has the best validation accuracy.

    Chooses a zoo checkpoint without looking at the test set. Ties go to the lowest seed.

    Returns:
        `(seed, why)`: the seed and a phrase for the card, e.g. "the best validation
        accuracy (0.9045) of 2 seeds".

    Raises:
        FileNotFoundError: no result file of the recipe records a validation accuracy.
    """
    candidates = []
    for path in sorted(pathlib.Path(results_dir, recipe).glob("seed*.json")):
        result = json.loads(path.read_text())
        history, epoch = result.get("history") or [], result.get("selected_epoch")
        if epoch is not None and epoch < len(history) and "val_accuracy" in history[epoch]:
            candidates.append((-history[epoch]["val_accuracy"], result["seed"]))
    if not candidates:
        raise FileNotFoundError(
            f"No result of recipe {recipe!r} in {results_dir} records a validation accuracy: "
            f"{BEST_VALIDATION!r} needs runs that keep their best-validation epoch."
        )
    negative_accuracy, seed = min(candidates)
    return seed, (
        f"the best validation accuracy ({-negative_accuracy:.4f}) of {len(candidates)} seeds"
    )


def package(
    recipe: str,
    seed: int | str,
    *,
    name: str | None = None,
    runs_dir: PathLike | None = None,
    results_dir: PathLike | None = None,
    zoo_dir: PathLike | None = None,
    registry: PathLike | None = None,
    repo_id: str | None = None,
) -> pathlib.Path:
    """Builds `zoo/<name>/` from a finished training run and registers it.

    Reads the run's `final.weights.h5` and result file, loads the weights into the
    network the result names (so a folder is never made from weights that do not fit),
    and writes `config.json`, `model.weights.h5` (the run's tensors, stored compressed by
    `artifacts.compact_weights`), `metrics.json` and the model card. For the models the
    package ships (`mnist_sparse_cnn2`, `mnist_dense_cnn2`) packaged into the checkout,
    the embedded copy is refreshed too (`refresh_embedded`). The registry entry gets the files' sha256s, the summary metrics, and
    `available: true`; its pinned revision is cleared when the content changed, until
    `publish` pins the new Hub commit.

    Args:
        recipe: Recipe name, e.g. "mnist_sparse_cnn2".
        seed: Seed of the run to package, or "best-val" for the seed whose kept epoch
            has the best validation accuracy (`best_validation_seed`).
        name: Zoo name; default the recipe name. It must start with the dataset the
            weights were trained on (`mnist_`, `gsc_`, ...).
        runs_dir: Folder of training runs; default the checkout's `training/runs`.
        results_dir: Folder of results; default the checkout's `training/results`.
        zoo_dir: Folder of zoo folders; default as `registry.zoo_dir` says.
        registry: Registry file to update; default as `registry.registry_path` says.
        repo_id: Hub repository; default the registry's, else "sparse-keras/<name>".

    Returns:
        The zoo folder.

    Raises:
        FileNotFoundError: the run's weights or result file is missing.
        ValueError: the name does not match the training data, or the weights do not
            fit the network.
    """
    name = name or recipe
    runs_dir = pathlib.Path(runs_dir) if runs_dir else _checkout_path("training", "runs")
    results_dir = (
        pathlib.Path(results_dir) if results_dir else _checkout_path("training", "results")
    )
    seed_choice = None
    if seed == BEST_VALIDATION:
        seed, seed_choice = best_validation_seed(results_dir, recipe)
    elif isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(
            f"seed must be a non-negative integer or {BEST_VALIDATION!r}, got {seed!r}."
        )
    zoo_root = pathlib.Path(zoo_dir) if zoo_dir else _registry.zoo_dir()
    if zoo_root is None:
        raise FileNotFoundError("No zoo folder: pass zoo_dir or set " + _registry.ZOO_DIR_ENV + ".")
    weights = runs_dir / recipe / f"seed{seed}" / "final.weights.h5"
    result_file = results_dir / recipe / f"seed{seed}.json"
    for path, what in ((weights, "final weights"), (result_file, "result file")):
        if not path.is_file():
            raise FileNotFoundError(
                f"No {what} for recipe {recipe!r} seed {seed}: {path} is missing "
                f"(train it with: python -m training.train --recipe {recipe} --first-seed {seed})."
            )
    result = json.loads(result_file.read_text())
    dataset = result["dataset"]
    if not name.startswith(f"{dataset}_"):
        # The dataset in a zoo name is the data the weights were trained on: weights from
        # other data must never appear under e.g. a gsc_ name.
        raise ValueError(
            f"Zoo name {name!r} must start with {dataset + '_'!r}: the weights were trained on {dataset}."
        )
    if result.get("seed") != seed or result.get("recipe") != recipe:
        raise ValueError(
            f"{result_file} describes recipe {result.get('recipe')!r} seed {result.get('seed')!r}."
        )
    overrides = (result.get("recipe_config") or {}).get("model_overrides") or {}
    config = artifacts.make_config(
        name, result["network"], overrides, mask_seed=seed, dataset=dataset
    )
    model = artifacts.model_from_config(config)
    try:
        model.load_weights(weights)
    except ValueError as err:
        raise ValueError(
            f"{weights} does not fit network {result['network']!r} {overrides}: {err}"
        ) from err
    all_results = [
        json.loads(p.read_text()) for p in sorted((results_dir / recipe).glob("seed*.json"))
    ]
    metrics = artifacts.make_metrics(
        name,
        result,
        all_results,
        # A pruned network's zeros have no mask: count them as they are.
        artifacts.count_parameters(model, count_zeros="pruning" in result),
        source=_relative(result_file),
        package_command=package_command(recipe, seed, name),
        seed_choice=seed_choice,
        packaged_with={
            "sparse_keras": sparse_keras.__version__,
            "keras": keras.__version__,
            "huggingface_hub": huggingface_hub.__version__,
        },
    )

    folder = zoo_root / name
    folder.mkdir(parents=True, exist_ok=True)
    artifacts.compact_weights(weights, folder / _registry.WEIGHTS_FILE)
    _write_json(folder / _registry.CONFIG_FILE, config)
    _write_json(folder / _registry.METRICS_FILE, metrics)
    network, dataset = result["network"], result["dataset"]
    text = card.render(
        name,
        config,
        metrics,
        title=paper.label(network, overrides),
        paper=paper.paper_result(network, overrides, dataset),
    )
    (folder / _registry.CARD_FILE).write_text(text, encoding="utf-8")
    register(folder, registry=registry, repo_id=repo_id)
    checkout = _registry.checkout_root()
    if (
        name in _embedded.EMBEDDED_MODELS
        and checkout is not None
        and zoo_root.resolve() == (checkout / "zoo").resolve()
        and _registry.registry_path(registry).resolve() == _registry.PACKAGE_REGISTRY
    ):
        # The checkout's zoo and registry changed: the package's copy must follow, or
        # the shipped files would fail their sha256 check.
        refresh_embedded(zoo_root, names=(name,))
    return folder


def refresh_embedded(
    zoo_dir: PathLike | None = None,
    names: tuple[str, ...] = _embedded.EMBEDDED_MODELS,
    embedded_dir: PathLike | None = None,
) -> list[pathlib.Path]:
    """Copies the README models' `config.json` and weights into the package's embedded folder.

    The embedded copy (`sparse_keras/_embedded/zoo/<name>/`, shipped in the wheel) is
    always a byte copy of the zoo folder, so the registry's sha256s cover both.

    Args:
        zoo_dir: Folder of zoo folders; default as `registry.zoo_dir` says.
        names: The models to copy; default every embedded model.
        embedded_dir: Destination root; default the package's `_embedded/zoo`.

    Returns:
        The folders written.

    Raises:
        FileNotFoundError: a zoo folder lacks a file `load` needs.
        ValueError: a name is not one of the embedded models.
    """
    zoo_root = pathlib.Path(zoo_dir) if zoo_dir else _registry.zoo_dir()
    if zoo_root is None:
        raise FileNotFoundError("No zoo folder: pass zoo_dir or set " + _registry.ZOO_DIR_ENV + ".")
    target_root = pathlib.Path(embedded_dir) if embedded_dir else _embedded.ZOO_DIR
    written = []
    for name in names:
        if name not in _embedded.EMBEDDED_MODELS:
            raise ValueError(
                f"{name!r} is not embedded; the package ships {_embedded.EMBEDDED_MODELS}."
            )
        target = target_root / name
        target.mkdir(parents=True, exist_ok=True)
        for file_name in _registry.LOAD_FILES:
            source = zoo_root / name / file_name
            if not source.is_file():
                raise FileNotFoundError(f"Cannot embed {name!r}: {source} is missing.")
            tmp = target / f".{file_name}.{os.getpid()}.tmp"
            shutil.copyfile(source, tmp)
            tmp.replace(target / file_name)
        written.append(target)
    return written


def register(
    folder: PathLike, registry: PathLike | None = None, repo_id: str | None = None
) -> dict[str, Any]:
    """Records a zoo folder's checksums and summary metrics in the registry.

    Returns:
        The new registry entry.
    """
    folder = pathlib.Path(folder)
    name = folder.name
    metrics = json.loads((folder / _registry.METRICS_FILE).read_text())
    data = _registry.read_registry(registry)
    old = data["models"].get(name, {})
    files = {f: _registry.file_sha256(folder / f) for f in _registry.FILE_NAMES}
    entry = {
        "repo_id": repo_id or old.get("repo_id") or f"{_registry.DEFAULT_HUB_ORGANIZATION}/{name}",
        # A pinned Hub commit holds the old files: keep it only if nothing changed.
        "revision": old.get("revision") if old.get("files") == files else None,
        "dataset": metrics["dataset"],
        "network": metrics["network"],
        "recipe": metrics["recipe"],
        "available": True,
        "files": files,
        "metrics": {
            "clean_accuracy": metrics["clean_accuracy"],
            "noise_score": metrics["noise_score"],
            "max_score": metrics["max_score"],
            "parameters": metrics["parameters"],
            "nonzero_parameters": metrics["nonzero_parameters"],
            "seed": metrics["seed"],
        },
        "train_command": (
            f"{metrics['train_command']} && {metrics['package_command']}"
            if metrics.get("train_command")
            else None
        )
        or old.get("train_command")
        or f"python -m training.train --recipe {metrics['recipe']} --seeds 1 && {metrics['package_command']}",
    }
    data["models"][name] = entry
    _registry.write_registry(data, registry)
    return entry


def publish(
    folder: PathLike,
    *,
    registry: PathLike | None = None,
    repo_id: str | None = None,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
) -> str:
    """Checks a zoo folder, uploads it to its Hub repository, and pins the commit.

    The token comes from `token`, else `HF_TOKEN` (or a prior `hf auth login`); the
    endpoint from `HF_ENDPOINT`. After the upload the registry entry's `revision` is
    set to the new commit, so `load` fetches exactly what was checked.

    Args:
        folder: The zoo folder.
        registry: Registry file to read and update.
        repo_id: Hub repository; default the registry's.
        token: Hub token with write access.
        private: Create the repository as private if it does not exist.
        commit_message: Hub commit message.

    Returns:
        The Hub commit id.

    Raises:
        ZooCheckError: the folder failed `check`; nothing was uploaded.
    """
    folder = pathlib.Path(folder)
    check(folder, registry=registry)
    entry = _registry.get_entry(folder.name, registry)
    repo_id = repo_id or entry["repo_id"]
    api = huggingface_hub.HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    metrics = entry.get("metrics") or {}
    commit = api.upload_folder(
        repo_id=repo_id,
        repo_type="model",
        folder_path=str(folder),
        commit_message=commit_message
        or f"{folder.name}: accuracy {metrics.get('clean_accuracy')}, noise score {metrics.get('noise_score')}",
    )
    data = _registry.read_registry(registry)
    data["models"][folder.name].update({"repo_id": repo_id, "revision": commit.oid})
    _registry.write_registry(data, registry)
    return commit.oid
