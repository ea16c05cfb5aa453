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


def render(name: str, config: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The full `README.md` of a zoo model: YAML header and prose.

    Args:
        name: Zoo name.
        config: Its `config.json`.
        metrics: Its `metrics.json`.

    Returns:
        The card text.
    """
    network = metrics["network"]
    overrides = config["arguments"]["overrides"]
    network_config = models.get_config(
        network, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    )
    paper = paper_result(network, overrides, metrics["dataset"])
    dataset = dataset_facts(metrics["dataset"])
    recipe = metrics.get("recipe_config") or {}
    seeds = metrics["seeds"]
    max_score = metrics["max_score"]
    title = (paper_result(network, overrides) or {}).get("label", network)
    # A magnitude-pruned checkpoint (training/pruning.py) of a Table 3 network.
    pruning = metrics.get("pruning")
    if pruning:
        title = f"{title}, magnitude-pruned ({pruning['target']})"

    lines = [
        f"# {name}",
        "",
        (
            _pruned_intro(dataset["title"], title, pruning)
            if pruning
            else f"**{dataset['title']} {title}** from *How Can We Be So Dense? The Benefits of Using Highly "
            "Sparse Representations* (Ahmad & Scheinkman, 2019, arXiv:1903.11257), reproduced in Keras 3 "
            "with `sparse_keras`: convolutional layers followed by k-winners-take-all activations with "
            "boosting, and a hidden layer whose weights keep a fixed random fraction of their inputs."
        ),
        "",
        *([dataset["note"], ""] if dataset.get("note") else []),
        "## Model",
        "",
        f"Network `{network}` (the paper's Table 3), built by `sparse_keras.models.build` from "
        "`config.json` (no code is stored in this repository; `model.weights.h5` holds weights only):",
        "",
        *[f"- {line}" for line in describe_network(network_config)],
        "",
    ]
    if overrides:
        lines += [f"Changed from Table 3 for this checkpoint: `{overrides}`.", ""]
    lines += (
        _pruned_model_lines(metrics, pruning)
        if pruning
        else [
            f"- Parameters: {metrics['parameters']:,} trainable, of which {metrics['nonzero_parameters']:,} "
            "are non-zero (weights outside the masks are exactly 0 and stay 0 when fine-tuning).",
            "- Saved state besides weights: the sparse masks, each k-winners layer's duty cycles, boost "
            "strength and sample count.",
        ]
    )
    lines += [
        f"- Input: `{config['input']['name']}`, float32 `[batch, {', '.join(map(str, config['input']['shape']))}]`. "
        f"{config['preprocessing']['description']}",
        f"- Output: {config['output']['num_classes']} logits (apply a softmax for probabilities); "
        f"classes {', '.join(config['class_names'])}.",
        "",
        "## Training",
        "",
    ]
    lines += (
        _pruned_training_lines(metrics, pruning)
        if pruning
        else _recipe_training_lines(metrics, recipe, network_config.boost_strength_factor)
    )
    lines += [
        "- Versions: "
        + ", ".join(f"{k} {v}" for k, v in (metrics.get("versions") or {}).items())
        + ".",
        "",
        "## Results",
        "",
        f"Noise protocol (as in the paper): {dataset['noise']}.",
        "",
        f"| | clean test accuracy (%) | noise score (max {max_score:,}) |",
        "|---|---|---|",
        f"| this checkpoint (seed {metrics['seed']}) | {_percent(metrics['clean_accuracy'])} | {metrics['noise_score']:,} |",
    ]
    protocols = seeds.get("protocols")
    if protocols:
        count = _plural(len(seeds["all"]), "seed")
        for protocol, label in (
            ("held_out", "epoch chosen without the test set, sample std"),
            ("paper", "paper protocol: best **test-set** epoch, population std"),
        ):
            acc, score = protocols[protocol]["clean_accuracy"], protocols[protocol]["noise_score"]
            lines.append(
                f"| this recipe, {count} ({label}) | {_percent(acc['mean'])} ± {_percent(acc['std'])} "
                f"| {score['mean']:,.0f} ± {score['std']:,.0f} |"
            )
    elif len(seeds["all"]) > 1:
        acc, score = seeds["clean_accuracy"], seeds["noise_score"]
        lines.append(
            f"| this recipe, {len(seeds['all'])} seeds (mean ± std) | {_percent(acc['mean'])} ± {_percent(acc['std'])} "
            f"| {score['mean']:,.0f} ± {score['std']:,.0f} |"
        )
    if pruning:
        lines += _pruned_result_rows(pruning)
    if paper:
        (acc_mean, acc_std), (score_mean, score_std) = paper["accuracy"], paper["noise_score"]
        lines.append(
            f"| paper, Table {paper['table']} {paper['label']}{', unpruned' if pruning else ''} "
            f"(10 seeds, mean ± std) | {acc_mean} ± {acc_std} | {score_mean:,} ± {score_std:,} |"
        )
    lines += [
        "",
        "Accuracy at each noise level:",
        "",
        "| noise level | " + " | ".join(f"{level:.2f}" for level in metrics["noise_levels"]) + " |",
        "|---|" + "---|" * len(metrics["noise_levels"]),
        "| accuracy (%) | "
        + " | ".join(f"{100 * a:.1f}" for a in metrics["noise_accuracy"])
        + " |",
        "",
        "All numbers come from `metrics.json`, copied from the training run's "
        f"`{metrics['source']}`.",
        "",
        "## Usage",
        "",
        "```python",
        "import sparse_keras.zoo",
        "",
        f'model = sparse_keras.zoo.load("{name}")  # downloads, verifies sha256, builds, loads weights',
        "logits = model(features)  # features preprocessed as described above",
        "```",
        "",
        (
            "The pruned weights are plain zeros, with no mask to keep them there: fine-tuning with "
            "`model.fit` makes them non-zero again, unless you prune again (`training/pruning.py` "
            "of sparse_keras) or zero them after each step yourself."
            if pruning
            else "Fine-tuning keeps the masks exact and continues the duty cycles from their saved values; "
            "`docs/fine_tuning.md` of sparse_keras shows how to replace the classifier head."
        ),
        "",
        "## Intended use and limits",
        "",
        f"- A research artifact: the paper's {title} trained on {dataset['title']}, for "
        "studying sparse representations, their robustness to noise, and as a starting point for "
        "fine-tuning. It is not meant for production decisions.",
        "- Robustness is measured only under the noise protocol above; it says nothing about other "
        "corruptions, adversarial inputs or data unlike the training set.",
        "- Inputs must be preprocessed exactly as described; other normalisations or sizes give "
        "meaningless outputs.",
        "- The sparse networks run no faster than dense ones in Keras/TensorFlow: the zeros are "
        "stored and multiplied like any other weight.",
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    return f"---\n{card_data(name, config, metrics).to_yaml()}\n---\n\n" + "\n".join(lines)


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
