"""MkDocs hooks: the tables that are generated at build time, never typed in.

A page asks for a generated table with a marker line (an HTML comment, so the raw
Markdown still reads well on GitHub):

- `<!-- generated: zoo-models -->`: the zoo's models, from `sparse_keras/zoo/registry.json`
  (and the file sizes of the checkout's `zoo/<name>/` copies).
- `<!-- generated: table1 -->`: Table 1 (MNIST) from `training/results/<recipe>/seed*.json`,
  by the same function that `python -m training.aggregate table1` uses to write
  `training/results/table1.md`.
- `<!-- generated: table2 -->`: Table 2 (GSC) and its FSDD stand-in from the same results
  folders, next to the paper's numbers (`training.paper.PAPER_RESULTS`).
- `<!-- generated: gsc12v2 -->`: the real Speech Commands v0.02 results,
  `training/results/gsc12v2_table.md` (written by `python -m training.aggregate gsc12v2`).
- `<!-- generated: train-step -->`: every run recorded in `benchmarks/results/train_step.md`
  by `python benchmarks/train_step.py --out ...`.
- `<!-- generated: pruning-answer -->`: the answer `python -m training.pruning --report` writes
  into `training/results/pruning.md`.
- `<!-- generated: side-by-side -->`: `training/results/side_by_side.md`, our training steps
  against a PyTorch re-implementation of the released step (`training/side_by_side_torch.py`).

An unknown marker fails the build. Pages that other work is still writing
(`OPTIONAL_PAGES`) are dropped from the navigation while their file is missing; any
other missing page, and every broken link, fails `mkdocs build --strict`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "sparse_keras" / "zoo" / "registry.json"
ZOO_DIR = ROOT / "zoo"
RESULTS_DIR = ROOT / "training" / "results"
TRAIN_STEP_RESULTS = ROOT / "benchmarks" / "results" / "train_step.md"
# The files `sparse_keras.zoo.load` downloads (`registry.LOAD_FILES`).
LOAD_FILES = ("config.json", "model.weights.h5")
# Pages being written elsewhere: listed in the nav once their file exists.
OPTIONAL_PAGES = frozenset({"distributed.md", "performance.md", "pruning.md"})

# The results tables import TensorFlow (through the training code): keep its start-up quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
MARKER = re.compile(r"^<!-- generated: ([a-z0-9-]+)(?: ([\w.]+))? -->[ \t]*$", re.MULTILINE)
log = logging.getLogger("mkdocs.hooks")


# --------------------------------------------------------------------------- navigation


def _prune_nav(items, docs_dir: pathlib.Path):
    kept = []
    for item in items:
        if isinstance(item, dict):
            (title, value), *_ = item.items()
            if isinstance(value, list):
                value = _prune_nav(value, docs_dir)
                if value:
                    kept.append({title: value})
                continue
            target = value
        else:
            target = item
        if target in OPTIONAL_PAGES and not (docs_dir / target).is_file():
            log.info("docs/%s does not exist yet: left out of the navigation.", target)
            continue
        kept.append(item)
    return kept


def on_config(config):
    if config.get("nav"):
        config["nav"] = _prune_nav(config["nav"], pathlib.Path(config["docs_dir"]))
    return config


# --------------------------------------------------------------------------- zoo table


def _size(num_bytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1000 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1000
    raise AssertionError("unreachable")


def _download_size(name: str, entry: dict) -> str:
    """Size of the files `load` downloads, from the checkout's copy of the model."""
    if not entry.get("available"):
        return "–"
    paths = [ZOO_DIR / name / file_name for file_name in LOAD_FILES]
    if not all(path.is_file() for path in paths):
        return "not in this checkout"
    return _size(sum(path.stat().st_size for path in paths))


def _count(value) -> str:
    return "–" if value is None else f"{value:,}"


def zoo_models_markdown(registry_path: pathlib.Path = REGISTRY) -> str:
    """The zoo's models as a Markdown table, read from the registry file."""
    models = json.loads(registry_path.read_text())["models"]
    lines = [
        "| model | dataset | accuracy | noise score | parameters | non-zero parameters "
        "| download | weights |",
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    missing: dict[str, list[str]] = {}
    for name, entry in models.items():
        metrics = entry.get("metrics") or {}
        accuracy = metrics.get("clean_accuracy")
        score, max_score = metrics.get("noise_score"), metrics.get("max_score")
        lines.append(
            "| "
            + " | ".join(
                [
                    f"`{name}`",
                    str(entry.get("dataset", "–")),
                    "–" if accuracy is None else f"{100 * accuracy:.2f}%",
                    "–" if score is None else f"{score:,} / {max_score:,}",
                    _count(metrics.get("parameters")),
                    _count(metrics.get("nonzero_parameters")),
                    _download_size(name, entry),
                    "available" if entry.get("available") else "not available",
                ]
            )
            + " |"
        )
        if not entry.get("available"):
            reason = entry.get("unavailable_reason") or "not trained and published yet."
            missing.setdefault(reason, []).append(name)
    if missing:
        lines += ["", "Models listed without weights:", ""]
        for reason, names in missing.items():
            listed = ", ".join(f"`{name}`" for name in names)
            lines.append(f"- {listed}: {reason[0].upper()}{reason[1:]}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- results tables


def _training_modules():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from training import aggregate

    return aggregate


def _demote(markdown: str) -> str:
    """Drops a generated file's own title and moves its sections under the page's."""
    lines = markdown.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join("#" + line if line.startswith("## ") else line for line in lines) + "\n"


def gsc12v2_markdown() -> str:
    """`training/results/gsc12v2_table.md`, every heading one level down."""
    lines = (RESULTS_DIR / "gsc12v2_table.md").read_text().splitlines()[1:]  # drop the title
    return "\n".join("#" + line if line.startswith("#") else line for line in lines) + "\n"


def table1_markdown() -> str:
    return _demote(_training_modules().table1_markdown())


TABLE2_ROWS = (
    ("gsc_dense_cnn2", "fsdd_dense_cnn2"),
    ("gsc_dense_cnn2_dropout", "fsdd_dense_cnn2_dropout"),
    ("gsc_sparse_cnn2", "fsdd_sparse_cnn2"),
    ("gsc_super_sparse_cnn2", "fsdd_super_sparse_cnn2"),
)


def _ours(aggregate, recipe: str, accuracy_digits: int = 2) -> tuple[str, str, str]:
    runs = aggregate.load_results(recipe, RESULTS_DIR)
    if not runs:
        return "–", "not run yet", "not run yet"
    seeds = ",".join(str(run["seed"]) for run in runs)
    accuracy = aggregate.mean_std([100 * run["clean_accuracy"] for run in runs])
    score = aggregate.mean_std([run["noise_score"] for run in runs])
    return seeds, _fmt(*accuracy, accuracy_digits), _fmt(*score, 0)


def _fmt(mean: float, std: float, digits: int) -> str:
    if math.isnan(std):
        return f"{mean:,.{digits}f} (1 seed)"
    return f"{mean:,.{digits}f} ± {std:,.{digits}f}"


def table2_markdown() -> str:
    """GSC rows (ours where run, the paper's) and the FSDD stand-in rows."""
    aggregate = _training_modules()
    from training.paper import PAPER_RESULTS

    lines = [
        "| network | GSC seeds | GSC accuracy % (ours) | GSC accuracy % (paper) "
        "| GSC noise score (ours) | GSC noise score (paper) "
        "| FSDD seeds | FSDD accuracy % | FSDD noise score |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for gsc_recipe, fsdd_recipe in TABLE2_ROWS:
        paper = PAPER_RESULTS[gsc_recipe]
        gsc_seeds, gsc_accuracy, gsc_score = _ours(aggregate, gsc_recipe)
        fsdd_seeds, fsdd_accuracy, fsdd_score = _ours(aggregate, fsdd_recipe)
        lines.append(
            f"| {paper['label']} | {gsc_seeds} | {gsc_accuracy} | {_fmt(*paper['accuracy'], 2)} "
            f"| {gsc_score} | {_fmt(*paper['noise_score'], 0)} "
            f"| {fsdd_seeds} | {fsdd_accuracy} | {fsdd_score} |"
        )
    return "\n".join(lines) + "\n"


def _activation(k: int | None, units: int) -> str:
    if k is None or k >= units:
        return "ReLU"
    return f"k = {k:,} of {units:,} ({k / units:.1%})"


def table3_markdown() -> str:
    """The networks `sparse_keras.models.build` knows (the paper's Table 3)."""
    _training_modules()  # the checkout on sys.path, for an uninstalled package
    from sparse_keras import models

    lines = [
        "| network | input | conv 1 | conv 2 | hidden | hidden weight density |",
        "|---|---|---|---|---|---|",
    ]
    for name in models.list_models():
        config = models.get_config(name)
        height, width, _ = config.input_shape
        convs = []
        for filters, k in zip(config.conv_filters, config.conv_k, strict=True):
            # 5x5 "valid" convolution, then 2x2 max-pooling.
            height, width = (height - 4) // 2, (width - 4) // 2
            convs.append(f"{filters} filters, {_activation(k, height * width * filters)}")
        convs += ["–"] * (2 - len(convs))
        extras = (", batch norm" if config.batch_norm else "") + (
            f", dropout {config.dropout:g}" if config.dropout else ""
        )
        lines.append(
            f"| `{name}` | {config.dataset} {'×'.join(map(str, config.input_shape[:2]))} "
            f"| {convs[0]} | {convs[1]} "
            f"| {config.hidden_units:,} units, {_activation(config.hidden_k, config.hidden_units)}"
            f"{extras} | {config.weight_density:g} |"
        )
    return "\n".join(lines) + "\n"


def training_times_markdown() -> str:
    """Epochs and wall time of the committed training runs, per recipe."""
    aggregate = _training_modules()
    lines = ["| recipe | seeds | epochs | training time per seed |", "|---|---|--:|--:|"]
    for folder in sorted(path for path in RESULTS_DIR.iterdir() if path.is_dir()):
        runs = [
            run
            for run in aggregate.load_results(folder.name, RESULTS_DIR)
            if "train_seconds" in run
        ]
        if not runs:
            continue
        mean, std = aggregate.mean_std([run["train_seconds"] / 60 for run in runs])
        minutes = f"{mean:.0f} min (1 seed)" if math.isnan(std) else f"{mean:.0f} ± {std:.0f} min"
        epochs = ", ".join(sorted({str(run.get("epochs", "?")) for run in runs}))
        seeds = ",".join(str(run["seed"]) for run in runs)
        lines.append(f"| `{folder.name}` | {seeds} | {epochs} | {minutes} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- benchmarks

TRAIN_STEP_RUN = re.compile(r"^## (?P<date>\d{4}-\d\d-\d\d \d\d:\d\d) `(?P<command>[^`]*)`$")
TRAIN_STEP_LINE = re.compile(
    r"^\s+(?P<network>sparse \(kernel\)|sparse \(top_k\)|dense ReLU)\s+(?P<ms>[\d.]+) ms/step"
    r"\s+ratio to dense (?P<ratio>[\d.]+)$"
)


def train_step_runs(path: pathlib.Path = TRAIN_STEP_RESULTS) -> list[dict]:
    """The runs recorded by `benchmarks/train_step.py --out`: date, command, ms and ratios."""
    runs: list[dict] = []
    for line in path.read_text().splitlines():
        if match := TRAIN_STEP_RUN.match(line):
            runs.append({**match.groupdict(), "ms": {}, "ratio": {}})
        elif (match := TRAIN_STEP_LINE.match(line)) and runs:
            runs[-1]["ms"][match["network"]] = float(match["ms"])
            runs[-1]["ratio"][match["network"]] = float(match["ratio"])
    if not runs or any(len(run["ms"]) != 3 for run in runs):
        raise ValueError(f"{path}: no complete train-step runs found")
    return runs


def train_step_markdown() -> str:
    """One row per recorded train-step run: ms per step and the ratio to the dense network."""
    lines = [
        "| run | Sparse CNN-2, CPU kernel: ms | ratio | Sparse CNN-2, `top_k`: ms | ratio "
        "| dense ReLU: ms |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for run in train_step_runs():
        ms, ratio = run["ms"], run["ratio"]
        lines.append(
            f"| {run['date']} | {ms['sparse (kernel)']:.2f} | **{ratio['sparse (kernel)']:.2f}** "
            f"| {ms['sparse (top_k)']:.2f} | {ratio['sparse (top_k)']:.2f} "
            f"| {ms['dense ReLU']:.2f} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- API reference


def api_rest_markdown(package: str) -> str:
    """mkdocstrings blocks for the public names of a package's modules that it does not re-export.

    A package page renders `::: package` (its `__all__`, under the names users import);
    this adds everything else its public modules define, so a new public function shows
    up without editing the page. Read statically with griffe, as mkdocstrings reads it.
    """
    import griffe

    root = griffe.load(package, search_paths=[str(ROOT)])
    exported = {
        member.target_path
        for name, member in root.members.items()
        if name in (root.exports or ()) and member.is_alias
    }
    blocks = []
    for module_name, module in sorted(root.modules.items()):
        if module_name.startswith("_"):
            continue
        names = [
            name
            for name, member in module.members.items()
            if not member.is_alias
            and not member.is_module
            and member.is_public
            and member.path not in exported
        ]
        if names:
            members = "\n".join(f"        - {name}" for name in names)
            blocks.append(f"::: {module.path}\n    options:\n      members:\n{members}")
    return "\n\n".join(blocks) + "\n"


def side_by_side_markdown() -> str:
    """The committed `training/results/side_by_side.md` (python training/side_by_side_torch.py)."""
    return _demote((RESULTS_DIR / "side_by_side.md").read_text())


def pruning_answer_markdown() -> str:
    """The generated answer in `training/results/pruning.md` (python -m training.pruning --report)."""
    text = (RESULTS_DIR / "pruning.md").read_text()
    begin, end = "<!-- answer -->", "<!-- end of answer -->"
    if begin not in text or end not in text:
        raise ValueError(f"{RESULTS_DIR / 'pruning.md'} has no {begin} ... {end} section.")
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n") + "\n"


def audio_facts_markdown() -> str:
    """The committed `training/results/audio_facts.md` (python -m training.audio_facts)."""
    return _demote((RESULTS_DIR / "audio_facts.md").read_text())


# --------------------------------------------------------------------------- markers

GENERATORS = {
    "zoo-models": zoo_models_markdown,
    "table1": table1_markdown,
    "table2": table2_markdown,
    "gsc12v2": gsc12v2_markdown,
    "table3": table3_markdown,
    "training-times": training_times_markdown,
    "train-step": train_step_markdown,
    "api-rest": api_rest_markdown,
    "audio-facts": audio_facts_markdown,
    "side-by-side": side_by_side_markdown,
    "pruning-answer": pruning_answer_markdown,
}


def expand_markers(markdown: str, where: str = "page") -> str:
    """Replaces every `<!-- generated: NAME -->` line with its generated Markdown."""

    def replace(match: re.Match) -> str:
        name, argument = match.groups()
        if name not in GENERATORS:
            raise ValueError(
                f"{where}: unknown marker <!-- generated: {name} -->; "
                f"expected one of {sorted(GENERATORS)}."
            )
        generator = GENERATORS[name]
        return (generator() if argument is None else generator(argument)).rstrip("\n")

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown, page, config, files):
    return expand_markers(markdown, page.file.src_uri)
