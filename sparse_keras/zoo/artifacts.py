"""The contents of a zoo folder: `config.json`, `metrics.json`, and the model they describe.

`config.json` names a builder and its arguments (a Table 3 network name, `NetworkConfig`
overrides, the mask seed) instead of holding code or a pickled model, so loading a
downloaded model never executes anything from the download: the architecture is built
by this package and only weights are read from `model.weights.h5`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import statistics
from typing import Any

import keras
import numpy as np

from sparse_keras import data, models

CONFIG_FORMAT_VERSION = 1
BUILDER = "sparse_keras.models.build"

def class_names(dataset: str, num_classes: int) -> list[str]:
    """The dataset's class names when it is a known one and they fit, else "0", "1", ..."""
    descriptor = data.DATASETS.get(dataset)
    names = list(descriptor.class_names) if descriptor else []
    return names if len(names) == num_classes else [str(i) for i in range(num_classes)]


def preprocessing(dataset: str) -> dict[str, Any]:
    """The `preprocessing` entry of a `config.json`: the dataset descriptor's."""
    descriptor = data.DATASETS.get(dataset)
    if descriptor is None:
        return {"description": f"see sparse_keras.data.{dataset}"}
    return dict(descriptor.preprocessing)


def _jsonable(value):
    """Round-trips through JSON so that tuples and lists compare equal."""
    return json.loads(json.dumps(value))


def make_config(
    name: str,
    network: str,
    overrides: dict[str, Any] | None,
    mask_seed: int | None,
    dataset: str | None = None,
) -> dict[str, Any]:
    """The `config.json` of a zoo model.

    Args:
        name: Zoo name, e.g. "mnist_sparse_cnn2".
        network: `sparse_keras.models` network name.
        overrides: `NetworkConfig` fields the recipe changed.
        mask_seed: Seed of the sparse weight masks (the masks are also saved as weights).
        dataset: The data the weights were trained on, when it is not the network's own
            (e.g. "fsdd" for a GSC network trained on FSDD); it sets the class names and
            preprocessing.

    Returns:
        A JSON-serialisable dict.
    """
    overrides = dict(overrides or {})
    network_config = models.get_config(network, **_as_config_values(overrides))
    dataset = dataset or network_config.dataset
    return {
        "format_version": CONFIG_FORMAT_VERSION,
        "name": name,
        "builder": BUILDER,
        "arguments": {"name": network, "seed": mask_seed, "overrides": _jsonable(overrides)},
        "network_config": _jsonable(dataclasses.asdict(network_config)),
        "dataset": dataset,
        "input": {
            "name": "features",
            "shape": list(network_config.input_shape),
            "dtype": "float32",
            "layout": "channels_last",
        },
        "output": {"kind": "logits", "num_classes": network_config.num_classes},
        "class_names": class_names(dataset, network_config.num_classes),
        "preprocessing": preprocessing(dataset),
        "weights_file": "model.weights.h5",
    }


def _as_config_values(overrides: dict[str, Any]) -> dict[str, Any]:
    # JSON turns NetworkConfig's tuples (conv_filters, conv_k, input_shape) into lists.
    return {
        key: tuple(value) if isinstance(value, list) else value for key, value in overrides.items()
    }


def model_from_config(config: dict[str, Any]) -> keras.Model:
    """Builds the (untrained) model a zoo `config.json` describes.

    Only the builder `sparse_keras.models.build` is accepted, with a network name and
    `NetworkConfig` overrides as data; the resulting network config must equal the one
    stored at packaging time, which catches a network whose definition changed since.

    Args:
        config: The parsed `config.json`.

    Returns:
        An uncompiled `keras.Model`, ready for `load_weights`.

    Raises:
        ValueError: if the config is of an unknown format or builder, or inconsistent.
    """
    if config.get("format_version") != CONFIG_FORMAT_VERSION:
        raise ValueError(
            f"Zoo config format {config.get('format_version')!r} is not supported "
            f"(this sparse_keras reads format {CONFIG_FORMAT_VERSION}); upgrade sparse_keras."
        )
    if config.get("builder") != BUILDER:
        raise ValueError(
            f"Zoo config names builder {config.get('builder')!r}; only {BUILDER!r} is allowed."
        )
    arguments = config["arguments"]
    seed = arguments.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"Zoo config mask seed must be an integer or null, got {seed!r}.")
    overrides = _as_config_values(arguments.get("overrides") or {})
    network_config = models.get_config(arguments["name"], **overrides)
    stored = config.get("network_config")
    if stored is not None and _jsonable(dataclasses.asdict(network_config)) != stored:
        raise ValueError(
            f"Zoo config of {config.get('name')!r} was packaged for network config {stored}, but "
            f"this sparse_keras builds {dataclasses.asdict(network_config)} from the same arguments."
        )
    return models.build_from_config(
        network_config, name=config.get("name", arguments["name"]), seed=seed
    )


def count_parameters(model: keras.Model, count_zeros: bool = False) -> tuple[int, int]:
    """Trainable parameters of a model, and how many of them its sparse masks keep.

    Masks, duty cycles and other non-trainable state are not parameters. A masked
    kernel counts only its kept weights as non-zero (structurally: a kept weight that
    happens to be 0.0 still counts).

    Args:
        model: The model.
        count_zeros: Count the weights that are exactly 0.0 as zero instead, mask or
            no mask: the non-zero count of a magnitude-pruned network, whose zeros
            have no mask.

    Returns:
        `(parameters, nonzero_parameters)`.
    """
    masks = {
        id(layer.kernel): layer.kernel_mask
        for layer in model._flatten_layers(include_self=False)
        if getattr(layer, "kernel_mask", None) is not None
    }
    total = nonzero = 0
    for weight in model.trainable_weights:
        size = math.prod(weight.shape)
        total += size
        mask = masks.get(id(weight))
        if count_zeros:
            nonzero += int(np.count_nonzero(keras.ops.convert_to_numpy(weight)))
        else:
            nonzero += size if mask is None else int(np.sum(keras.ops.convert_to_numpy(mask)))
    return total, nonzero


def score_maximum(dataset: str, noise_levels: list[float]) -> int | None:
    """The best possible noise score: noise levels x test-set size (None if unknown)."""
    descriptor = data.DATASETS.get(dataset)
    size = None if descriptor is None else descriptor.test_size
    return None if size is None else len(noise_levels) * size


def _mean_std(values: list[float], population: bool = False) -> dict[str, float]:
    if population:
        return {"mean": statistics.fmean(values), "std": statistics.pstdev(values)}
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def _protocol_summaries(seeds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Seed means of both reporting protocols (result files from the per-epoch runner).

    "paper": each seed's best *test-set* epoch, population std (the released tables);
    "held_out": the epoch chosen without the test set, sample std.
    """
    if not seeds or any("protocols" not in r for r in seeds):
        return None
    summaries = {}
    for protocol, population in (("paper", True), ("held_out", False)):
        chosen = [r["protocols"][protocol] for r in seeds]
        summaries[protocol] = {
            "selection": chosen[0]["selection"],
            "epochs": [c["epoch"] for c in chosen],
            "clean_accuracy": _mean_std([c["clean_accuracy"] for c in chosen], population),
            "noise_score": _mean_std([c["noise_score"] for c in chosen], population),
            "std": "population" if population else "sample",
        }
    return summaries


def make_metrics(
    name: str,
    result: dict[str, Any],
    all_results: list[dict[str, Any]],
    parameters: tuple[int, int],
    source: str,
    package_command: str,
    packaged_with: dict[str, str],
    seed_choice: str | None = None,
) -> dict[str, Any]:
    """The `metrics.json` of a zoo model, from the training results of its seed.

    Args:
        name: Zoo name.
        result: The packaged seed's `training/results/<recipe>/seed<k>.json`.
        all_results: The results of every seed of the recipe (the packaged one included),
            summarised as mean and std next to the packaged seed's numbers.
        parameters: `count_parameters` of the model.
        source: Path of the results file, relative to the repository root.
        package_command: The command that packaged the folder.
        packaged_with: Package versions at packaging time.
        seed_choice: Why this seed was packaged (e.g. "the best validation accuracy
            (0.9045) of 2 seeds"), or None when it was simply asked for.

    Returns:
        A JSON-serialisable dict; every number is copied or derived from `result`.
    """
    noise = result["noise"]
    levels = list(noise["noise_levels"])
    # sparse_keras.robustness reports "accuracies"; older result files say "accuracy".
    accuracies = noise.get("accuracies", noise.get("accuracy"))
    max_score = noise.get("max_score") or score_maximum(result["dataset"], levels)
    seeds = sorted(all_results, key=lambda r: r["seed"])
    metrics = {
        "name": name,
        "recipe": result["recipe"],
        "network": result["network"],
        "dataset": result["dataset"],
        "seed": result["seed"],
        "clean_accuracy": result["clean_accuracy"],
        "noise_levels": levels,
        "noise_accuracy": list(accuracies),
        "noise_score": result["noise_score"],
        "max_score": max_score,
        "parameters": parameters[0],
        "nonzero_parameters": parameters[1],
        "epochs": result.get("epochs"),
        "selected_epoch": result.get("selected_epoch"),
        "selection": result.get("selection"),
        "train_seconds": result.get("train_seconds"),
        "recipe_config": result.get("recipe_config"),
        "seeds": {
            "packaged": result["seed"],
            **({"packaged_because": seed_choice} if seed_choice else {}),
            "all": [
                {
                    "seed": r["seed"],
                    "clean_accuracy": r["clean_accuracy"],
                    "noise_score": r["noise_score"],
                }
                for r in seeds
            ],
            "clean_accuracy": _mean_std([r["clean_accuracy"] for r in seeds]),
            "noise_score": _mean_std([r["noise_score"] for r in seeds]),
            "protocols": _protocol_summaries(seeds),
        },
        "command": result.get("command"),
        "git_commit": result.get("git_commit"),
        "versions": result.get("versions"),
        "source": source,
        "package_command": package_command,
        "packaged_with": packaged_with,
    }
    if result.get("pruning"):
        # A magnitude-pruned network (training/pruning.py): how it was pruned, from what,
        # and how sparse it came out, for its card.
        base = result.get("base") or {}
        metrics["pruning"] = {
            **result["pruning"],
            "weight_density": result.get("weight_density"),
            "nonzero_multiplies": result.get("nonzero_multiplies"),
            "base": {
                key: base.get(key)
                for key in ("recipe", "seed", "result", "clean_accuracy", "noise_score")
            },
        }
    if result.get("train_command"):
        # The commands that make the packaged weights, when the training runner's
        # default (`training.train --recipe <recipe>`) is not one of them.
        metrics["train_command"] = result["train_command"]
    return metrics


# gzip level of `compact_weights`: 9 costs a second or two once, at packaging, and every
# download and wheel after that is smaller.
WEIGHTS_GZIP_LEVEL = 9


def compact_weights(source: str | os.PathLike, destination: str | os.PathLike) -> pathlib.Path:
    """Writes a Keras `.weights.h5` file again with every tensor stored compressed.

    Keras writes weights uncompressed; sparse networks' kernels and masks are mostly
    zeros, which HDF5's shuffle + gzip filters shrink several-fold. The tensors, names,
    groups and attributes are copied exactly, so `model.load_weights` restores the same
    values (h5py decompresses transparently). Scalars and empty tensors, which HDF5
    cannot chunk, are copied as they are.

    Args:
        source: A weights file written by `model.save_weights`.
        destination: The compact file to write (replaced atomically if it exists).

    Returns:
        `destination` as a Path.
    """
    import h5py

    source, destination = pathlib.Path(source), pathlib.Path(destination)
    tmp = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")

    def copy_attrs(src, dst) -> None:
        for key, value in src.attrs.items():
            dst.attrs[key] = value

    def copy_group(src, dst) -> None:
        copy_attrs(src, dst)
        for key, item in src.items():
            if isinstance(item, h5py.Group):
                copy_group(item, dst.create_group(key))
                continue
            data = item[()]
            compress = item.shape is not None and item.size > 1
            out = dst.create_dataset(
                key,
                data=data,
                dtype=item.dtype,
                track_times=False,
                **(
                    {"compression": "gzip", "compression_opts": WEIGHTS_GZIP_LEVEL, "shuffle": True}
                    if compress
                    else {}
                ),
            )
            copy_attrs(item, out)

    try:
        with h5py.File(source, "r") as src, h5py.File(tmp, "w", track_order=False) as dst:
            copy_group(src, dst)
        os.replace(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)
    return destination
