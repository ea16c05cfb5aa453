"""Packages finished training runs as zoo folders, checks them, and publishes them to the Hub.

    python -m training.publish package --recipe mnist_sparse_cnn2 --seed 0
    python -m training.publish check mnist_sparse_cnn2
    HF_TOKEN=hf_... python -m training.publish publish mnist_sparse_cnn2

`package` reads `training/runs/<recipe>/seed<k>/final.weights.h5` and
`training/results/<recipe>/seed<k>.json` and writes `zoo/<name>/` (config.json,
model.weights.h5, metrics.json, README.md model card), then records the files'
sha256s and summary metrics in `sparse_keras/zoo/registry.json`. `check` validates a
folder against the registry. `publish` checks, uploads the folder to the registry's Hub
repository (`sparse-keras/<name>`) with `HfApi.upload_folder`, and pins the new commit
as the registry's revision: commit `zoo/<name>/` and the registry afterwards.

`embed` copies the README models into the package (`sparse_keras/_embedded`). This is
maintainer tooling, kept out of the installed package: the logic lives in
`training/packaging.py`; users check a folder with `sparse-keras zoo check`.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from sparse_keras import _embedded
from sparse_keras.cli.zoo import REGISTRY_HELP, _folder, add_check_command
from sparse_keras.zoo import registry as _registry
from sparse_keras.zoo.checks import ZooCheckError, check
from training import packaging


def _seed(text: str) -> int | str:
    if text == "best-val":
        return text
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if seed < 0:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer or 'best-val', got {text!r}"
        )
    return seed


def _run_package(args: argparse.Namespace) -> int:
    folder = packaging.package(
        args.recipe,
        args.seed,
        name=args.name,
        runs_dir=args.runs_dir,
        results_dir=args.results_dir,
        zoo_dir=args.zoo_dir,
        registry=args.registry,
        repo_id=args.repo_id,
    )
    check(folder, registry=args.registry)
    print(f"packaged {folder} (checked; registry {_registry.registry_path(args.registry)} updated)")
    return 0


def _run_embed(args: argparse.Namespace) -> int:
    for folder in packaging.refresh_embedded(args.zoo_dir, names=tuple(args.names)):
        print(f"embedded {folder}")
    return 0


def _run_publish(args: argparse.Namespace) -> int:
    folder = _folder(args.folder)
    try:
        commit = packaging.publish(
            folder, registry=args.registry, repo_id=args.repo_id, private=args.private
        )
    except ZooCheckError as err:
        print(f"{err}\nNothing was uploaded.")
        return 1
    print(f"uploaded {folder} as commit {commit}; the registry now pins that revision (commit it).")
    return 0


def add_packaging_commands(subparsers, parents=()) -> None:
    """Adds `package`, `check`, `publish` and `embed` to an argparse sub-command group.

    Args:
        subparsers: The object returned by `ArgumentParser.add_subparsers()`.
        parents: Parsers whose options every command shares.
    """
    parents = list(parents)
    p = subparsers.add_parser(
        "package", parents=parents, help="make zoo/<name>/ from a finished training run"
    )
    p.add_argument("--recipe", required=True, help="recipe name, e.g. mnist_sparse_cnn2")
    p.add_argument(
        "--seed",
        type=_seed,
        required=True,
        help="seed of the run to package, or best-val: the seed whose kept epoch has the best "
        "validation accuracy (no test-set selection)",
    )
    p.add_argument("--name", default=None, help="zoo name (default: the recipe name)")
    p.add_argument("--runs-dir", type=pathlib.Path, default=None, help="default: training/runs")
    p.add_argument(
        "--results-dir", type=pathlib.Path, default=None, help="default: training/results"
    )
    p.add_argument(
        "--zoo-dir", type=pathlib.Path, default=None, help="default: the checkout's zoo/"
    )
    p.add_argument("--repo-id", default=None, help="Hub repository (default: sparse-keras/<name>)")
    p.add_argument("--registry", default=None, help=REGISTRY_HELP)
    p.set_defaults(func=_run_package)

    add_check_command(subparsers, parents)

    p = subparsers.add_parser(
        "publish",
        parents=parents,
        help="check, then upload a zoo folder to the Hugging Face Hub (token: HF_TOKEN)",
    )
    p.add_argument(
        "folder",
        metavar="NAME_OR_FOLDER",
        help="zoo folder, or a zoo name (looked up in the checkout's zoo/)",
    )
    p.add_argument("--repo-id", default=None, help="Hub repository (default: the registry's)")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--registry", default=None, help=REGISTRY_HELP)
    p.set_defaults(func=_run_publish)

    p = subparsers.add_parser(
        "embed",
        parents=parents,
        help="copy the README models' zoo files into the package (sparse_keras/_embedded)",
        description=(
            "Copy config.json and model.weights.h5 of the models the package ships from zoo/ "
            "into sparse_keras/_embedded/zoo/, so the wheel's copies equal the registry's. "
            "`package` does this itself for those models."
        ),
    )
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        default=list(_embedded.EMBEDDED_MODELS),
        help=f"models to copy (default: {' '.join(_embedded.EMBEDDED_MODELS)})",
    )
    p.add_argument(
        "--zoo-dir", type=pathlib.Path, default=None, help="default: the checkout's zoo/"
    )
    p.set_defaults(func=_run_embed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.publish", description=__doc__.split("\n\n")[0]
    )
    add_packaging_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"python -m training.publish {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
