"""Model cards: the `README.md` of a zoo folder, generated from its config and metrics.

The card carries the Hub's YAML header (library, license, datasets, tags and a
`model-index` with the metrics) and prose. Every number of ours in it is read from
`metrics.json`; the only typed-in numbers are the paper's, quoted from its Tables 1
and 2 (SPEC §5) for comparison.
"""

from __future__ import annotations

import pathlib
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from sparse_keras import data, models


def dataset_facts(dataset: str) -> dict[str, Any]:
    """What a card says about its data: the dataset descriptor's hub id, title, task,
    noise protocol and note (`sparse_keras.data`), or placeholders for other data."""
    descriptor = data.DATASETS.get(dataset)
    if descriptor is None:
        return {
            "hub_id": dataset,
            "title": dataset,
            "task": ("other", "Other"),
            "noise": "see sparse_keras.robustness",
            "note": None,
        }
    return {
        "hub_id": descriptor.hub_id,
        "title": descriptor.title,
        "task": descriptor.task,
        "noise": descriptor.noise_protocol,
        "note": descriptor.note,
    }


CITATION = """@article{ahmad2019dense,
  title   = {How Can We Be So Dense? The Benefits of Using Highly Sparse Representations},
  author  = {Ahmad, Subutai and Scheinkman, Luiz},
  journal = {arXiv preprint arXiv:1903.11257},
  year    = {2019}
}"""

TAGS = [
    "sparse",
    "k-winners-take-all",
    "sparse-weights",
    "noise-robustness",
    "how-can-we-be-so-dense",
    "tensorflow",
]


def describe_network(network_config: models.NetworkConfig) -> list[str]:
    """One line per layer block, with k-winners sizes computed from the shapes."""
    height, width, _ = network_config.input_shape
    lines = []
    for i, (filters, k) in enumerate(
        zip(network_config.conv_filters, network_config.conv_k, strict=True), 1
    ):
        # 5x5 "valid" convolution then 2x2 max-pooling.
        height, width = (height - 4) // 2, (width - 4) // 2
        units = height * width * filters
        norm = ", batch norm" if network_config.batch_norm else ""
        if k is None or k >= units:
            act = "ReLU"
        else:
            act = f"k-winners k={k} of {units:,} ({k / units:.1%})"
        lines.append(f"conv{i}: {filters} filters 5×5{norm}, max-pool 2 → {act}")
    hidden = network_config.hidden_units
    weights = (
        "dense"
        if network_config.weight_density == 1.0
        else f"weight density {network_config.weight_density:g}"
    )
    k = network_config.hidden_k
    act = "ReLU" if k is None or k >= hidden else f"k-winners k={k} of {hidden:,}"
    norm = ", batch norm" if network_config.batch_norm else ""
    dropout = f", dropout {network_config.dropout:g}" if network_config.dropout else ""
    lines.append(f"hidden: {hidden:,} units, {weights}{norm} → {act}{dropout}")
    lines.append(f"output: {network_config.num_classes} logits (linear)")
    return lines


def card_data(name: str, config: dict[str, Any], metrics: dict[str, Any]) -> ModelCardData:
    """The card's YAML header: library, license, datasets, tags and the model-index."""
    dataset = dataset_facts(metrics["dataset"])
    task_type, task_name = dataset["task"]

    def result(metric_type: str, value: float, metric_name: str) -> EvalResult:
        return EvalResult(
            task_type=task_type,
            task_name=task_name,
            dataset_type=dataset["hub_id"],
            dataset_name=dataset["title"],
            dataset_split="test",
            metric_type=metric_type,
            metric_value=value,
            metric_name=metric_name,
        )

    levels = len(metrics["noise_levels"])
    return ModelCardData(
        library_name="keras",
        license="mit",
        datasets=[dataset["hub_id"]],
        tags=[*TAGS, metrics["dataset"]],
        pipeline_tag=task_type if task_type != "other" else None,
        model_name=name,
        eval_results=[
            result(
                "accuracy", round(100 * metrics["clean_accuracy"], 2), "Clean test accuracy (%)"
            ),
            result(
                "noise_score",
                metrics["noise_score"],
                f"Noise score (correct over {levels} noise levels, max {metrics['max_score']:,})",
            ),
        ],
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _percent(value: float) -> str:
    return f"{100 * value:.2f}"


TEMPLATE = pathlib.Path(__file__).with_name("card_template.md")


def render(
    name: str,
    config: dict[str, Any],
    metrics: dict[str, Any],
    title: str,
    paper: dict[str, Any] | None = None,
) -> str:
    """The full `README.md` of a zoo model: YAML header and prose, from `card_template.md`.

    Args:
        name: Zoo name.
        config: Its `config.json`.
        metrics: Its `metrics.json`.
        title: The network's name in prose, e.g. "Sparse CNN-2".
        paper: The paper's row for this network and data, with keys `table`, `label`,
            `accuracy` and `noise_score` (mean, std), or None when the paper has no
            comparable number (other data).

    Returns:
        The card text.
    """
    network = metrics["network"]
    overrides = config["arguments"]["overrides"]
    network_config = models.get_config(
        network, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    )
    dataset = dataset_facts(metrics["dataset"])
    # A magnitude-pruned checkpoint (training/pruning.py) of a Table 3 network.
    pruning = metrics.get("pruning")
    if pruning:
        title = f"{title}, magnitude-pruned ({pruning['target']})"
    model = ModelCard.from_template(
        card_data(name, config, metrics),
        template_path=str(TEMPLATE),
        name=name,
        intro=(
            _pruned_intro(dataset["title"], title, pruning)
            if pruning
            else f"**{dataset['title']} {title}** from *How Can We Be So Dense? The Benefits of "
            "Using Highly Sparse Representations* (Ahmad & Scheinkman, 2019, arXiv:1903.11257), "
            "reproduced in Keras 3 with `sparse_keras`: convolutional layers followed by "
            "k-winners-take-all activations with boosting, and a hidden layer whose weights keep "
            "a fixed random fraction of their inputs."
        ),
        note=dataset.get("note"),
        network=network,
        network_lines="\n".join(f"- {line}" for line in describe_network(network_config)),
        overrides=overrides,
        model_lines="\n".join(
            _pruned_model_lines(metrics, pruning)
            if pruning
            else [
                f"- Parameters: {metrics['parameters']:,} trainable, of which "
                f"{metrics['nonzero_parameters']:,} are non-zero (weights outside the masks are "
                "exactly 0 and stay 0 when fine-tuning).",
                "- Saved state besides weights: the sparse masks, each k-winners layer's duty "
                "cycles, boost strength and sample count.",
            ]
        ),
        input_name=config["input"]["name"],
        input_shape=", ".join(map(str, config["input"]["shape"])),
        preprocessing=config["preprocessing"]["description"],
        num_classes=config["output"]["num_classes"],
        class_names=", ".join(config["class_names"]),
        training_lines="\n".join(
            _pruned_training_lines(metrics, pruning)
            if pruning
            else _recipe_training_lines(
                metrics, metrics.get("recipe_config") or {}, network_config.boost_strength_factor
            )
        ),
        versions=", ".join(f"{k} {v}" for k, v in (metrics.get("versions") or {}).items()),
        noise_protocol=dataset["noise"],
        max_score=f"{metrics['max_score']:,}",
        result_rows="\n".join(_result_rows(metrics, pruning, paper)),
        level_table="\n".join(
            [
                "| noise level | "
                + " | ".join(f"{level:.2f}" for level in metrics["noise_levels"])
                + " |",
                "|---|" + "---|" * len(metrics["noise_levels"]),
                "| accuracy (%) | "
                + " | ".join(f"{100 * a:.1f}" for a in metrics["noise_accuracy"])
                + " |",
            ]
        ),
        source=metrics["source"],
        fine_tuning=(
            "The pruned weights are plain zeros, with no mask to keep them there: fine-tuning "
            "with `model.fit` makes them non-zero again, unless you prune again "
            "(`training/pruning.py` of sparse_keras) or zero them after each step yourself."
            if pruning
            else "Fine-tuning keeps the masks exact and continues the duty cycles from their "
            "saved values; `docs/fine_tuning.md` of sparse_keras shows how to replace the "
            "classifier head."
        ),
        title=title,
        dataset_title=dataset["title"],
        citation=CITATION,
    )
    return str(model)


def _result_rows(
    metrics: dict[str, Any], pruning: dict[str, Any] | None, paper: dict[str, Any] | None
) -> list[str]:
    """The results table's rows: this checkpoint, its recipe's seeds, the paper's."""
    seeds = metrics["seeds"]
    rows = [
        f"| this checkpoint (seed {metrics['seed']}) | {_percent(metrics['clean_accuracy'])} "
        f"| {metrics['noise_score']:,} |"
    ]
    protocols = seeds.get("protocols")
    if protocols:
        count = _plural(len(seeds["all"]), "seed")
        for protocol, label in (
            ("held_out", "epoch chosen without the test set, sample std"),
            ("paper", "paper protocol: best **test-set** epoch, population std"),
        ):
            acc, score = protocols[protocol]["clean_accuracy"], protocols[protocol]["noise_score"]
            rows.append(
                f"| this recipe, {count} ({label}) | {_percent(acc['mean'])} ± {_percent(acc['std'])} "
                f"| {score['mean']:,.0f} ± {score['std']:,.0f} |"
            )
    elif len(seeds["all"]) > 1:
        acc, score = seeds["clean_accuracy"], seeds["noise_score"]
        rows.append(
            f"| this recipe, {len(seeds['all'])} seeds (mean ± std) | {_percent(acc['mean'])} "
            f"± {_percent(acc['std'])} | {score['mean']:,.0f} ± {score['std']:,.0f} |"
        )
    if pruning:
        rows += _pruned_result_rows(pruning)
    if paper:
        (acc_mean, acc_std), (score_mean, score_std) = paper["accuracy"], paper["noise_score"]
        rows.append(
            f"| paper, Table {paper['table']} {paper['label']}{', unpruned' if pruning else ''} "
            f"(10 seeds, mean ± std) | {acc_mean} ± {acc_std} | {score_mean:,} ± {score_std:,} |"
        )
    return rows


def _recipe_training_lines(
    metrics: dict[str, Any], recipe: dict[str, Any], boost_factor: float
) -> list[str]:
    return [
        f"- Recipe `{metrics['recipe']}` (`training/recipes/{metrics['recipe']}.py` in sparse_keras: the "
        "hyper-parameters of the authors' released configuration)"
        + (
            f": {_plural(metrics['epochs'], 'epoch')}, batch {recipe.get('batch_size')}"
            + (
                f" ({recipe['first_epoch_batch_size']} in the first epoch)"
                if recipe.get("first_epoch_batch_size")
                else ""
            )
            + (
                # Result files of the runner before the fidelity fixes carry the recipe's
                # own boost_decay; their lr was not stepped before the first epoch.
                f", SGD lr {recipe.get('learning_rate')} × {recipe.get('lr_decay')} per epoch, momentum "
                f"{recipe.get('momentum')}, boost strength × {recipe.get('boost_decay')} per epoch."
                if "boost_decay" in recipe
                else f", SGD lr {recipe.get('learning_rate')} × {recipe.get('lr_decay')} per epoch "
                f"(stepped before each epoch, as the released code), momentum {recipe.get('momentum')}"
                + (
                    f", coupled weight decay {recipe['weight_decay']}"
                    if recipe.get("weight_decay")
                    else ""
                )
                + f", boost strength × {boost_factor} after every epoch."
            )
            if recipe
            else "."
        ),
        f"- Seed {metrics['seed']}"
        + (
            f", chosen for {metrics['seeds']['packaged_because']}"
            if metrics["seeds"].get("packaged_because")
            else ""
        )
        + f" (weights, mask and data order); kept: {metrics.get('selection') or 'last epoch'}"
        + (
            f", epoch {metrics['selected_epoch']}"
            if metrics.get("selected_epoch") is not None
            else ""
        )
        + (
            f"; {_duration(metrics['train_seconds'])} of training."
            if metrics.get("train_seconds")
            else "."
        ),
        f"- Trained with `{metrics['command']}`"
        + (f" at commit `{metrics['git_commit'][:12]}`" if metrics.get("git_commit") else "")
        + f"; packaged with `{metrics['package_command']}`.",
    ]


def _pruned_intro(dataset_title: str, title: str, pruning: dict[str, Any]) -> str:
    return (
        f"**{dataset_title} {title}**: the Dense CNN-2 of *How Can We Be So Dense? The Benefits of "
        "Using Highly Sparse Representations* (Ahmad & Scheinkman, 2019, arXiv:1903.11257), trained "
        "with the paper's recipe in Keras 3 and then magnitude-pruned (Han et al., 2015) with "
        f"tensorflow-model-optimization: {pruning['description']}. It is the baseline for the "
        "question the paper leaves open, whether networks made sparse by pruning are as robust to "
        "noise as its sparse networks (`docs/pruning.md` of sparse_keras has the answer as measured). "
        "It has no k-winners and no sparse masks: the pruned weights are zeros in an ordinary "
        "Dense CNN-2."
    )


def _pruned_model_lines(metrics: dict[str, Any], pruning: dict[str, Any]) -> list[str]:
    density = pruning.get("weight_density") or {}
    per_layer = ", ".join(f"{k} {v:.3f}" for k, v in density.items() if k != "total")
    lines = [
        f"- Parameters: {metrics['parameters']:,} trainable, of which {metrics['nonzero_parameters']:,} "
        "are non-zero (the pruned weights are stored as exact zeros).",
    ]
    if density:
        lines.append(
            f"- Weight density of the conv and dense kernels: {density['total']:.3f} overall; "
            f"{per_layer}."
        )
    mults = pruning.get("nonzero_multiplies") or {}
    if mults:
        lines.append(
            f"- Non-zero multiplies per inference (measured on {mults['samples']:,} test images): "
            f"{mults['measured_per_inference']:,.0f} of {mults['dense_per_inference']:,} dense ones."
        )
    return lines


def _pruned_training_lines(metrics: dict[str, Any], pruning: dict[str, Any]) -> list[str]:
    tune = pruning["fine_tune"]
    base = pruning.get("base") or {}
    return [
        f"- Base: the `{base.get('recipe')}` recipe's seed {base.get('seed')} (`training/recipes/"
        f"{base.get('recipe')}.py` in sparse_keras: the authors' released hyper-parameters).",
        f"- Pruning (`training/pruning.py`, target `{pruning['target']}`): the weights copied into a "
        "tf_keras twin of the network, `tfmot.sparsity.keras.prune_low_magnitude` with a "
        f"PolynomialDecay schedule (sparsity 0 → target, power {pruning['power']}, steps "
        f"{pruning['begin_step']}–{pruning['end_step']}, mask update every {pruning['frequency']} steps) "
        f"while fine-tuning {_plural(tune['epochs'], 'epoch')} (batch {tune['batch_size']}, SGD lr "
        f"{tune['learning_rate']} × {tune['lr_decay']} per epoch, momentum {tune['momentum']}, "
        f"{pruning['train_examples']:,} training images); the last epoch trains with the masks fixed. "
        "Then `strip_pruning`, and the weights copied back into the Keras 3 network.",
        f"- Seed {metrics['seed']} (base weights, data order and noise); kept: "
        f"{metrics.get('selection') or 'last epoch'}"
        + (
            f"; {_duration(metrics['train_seconds'])} of pruning and fine-tuning."
            if metrics.get("train_seconds")
            else "."
        ),
        f"- Made with `{metrics['command']}`"
        + (f" at commit `{metrics['git_commit'][:12]}`" if metrics.get("git_commit") else "")
        + f"; packaged with `{metrics['package_command']}`.",
    ]


def _pruned_result_rows(pruning: dict[str, Any]) -> list[str]:
    base = pruning.get("base") or {}
    if base.get("clean_accuracy") is None:
        return []
    return [
        f"| the dense network it was pruned from (seed {base['seed']}) | "
        f"{_percent(base['clean_accuracy'])} | {base['noise_score']:,} |"
    ]


def read_card(path: str | pathlib.Path) -> ModelCard:
    """Parses a model card file (YAML header and text) without network access."""
    return ModelCard(pathlib.Path(path).read_text(encoding="utf-8"), ignore_metadata_errors=False)
