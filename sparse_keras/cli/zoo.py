"""`sparse-keras zoo ...`: list, info, package, check, publish.

`add_packaging_commands` is shared with `python -m training.publish`, so both spell the
package/check/publish commands the same way.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from sparse_keras import _embedded  # file locations only

# Nothing from `sparse_keras.zoo` at import time: importing it loads Keras (seconds),
# which `--help` must not wait for. Each command imports what it uses.


def _folder(name_or_path: str) -> pathlib.Path:
    from sparse_keras.zoo import registry as _registry

    path = pathlib.Path(name_or_path)
    if path.is_dir() or "/" in name_or_path:
        return path
    root = _registry.zoo_dir()
    if root is None:
        raise FileNotFoundError(
            f"{name_or_path!r} is not a folder and there is no checkout zoo/ folder."
        )
    return root / name_or_path


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


def _format(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _run_list(args: argparse.Namespace) -> int:
    from sparse_keras.zoo import hub

    rows = hub.list_models(registry=args.registry)
    header = f"{'name':<26} {'dataset':<8} {'accuracy':>9} {'noise score':>17} {'params':>9} {'non-zero':>9}  available"
    print(header)
    for row in rows:
        accuracy = "-" if row["clean_accuracy"] is None else f"{100 * row['clean_accuracy']:.2f}%"
        score = (
            "-"
            if row["noise_score"] is None
            else f"{row['noise_score']:,}/{_format(row['max_score'], ',')}"
        )
        print(
            f"{row['name']:<26} {row['dataset'] or '-':<8} {accuracy:>9} {score:>17} "
            f"{_format(row['parameters'], ',')!s:>9} {_format(row['nonzero_parameters'], ',')!s:>9}  "
            f"{'yes' if row['available'] else 'no'}"
        )
    return 0


def _run_info(args: argparse.Namespace) -> int:
    from sparse_keras.zoo import hub

    print(json.dumps(hub.info(args.name, registry=args.registry), indent=2))
    return 0


def _run_package(args: argparse.Namespace) -> int:
    from sparse_keras.zoo import publishing

    folder = publishing.package(
        args.recipe,
        args.seed,
        name=args.name,
        runs_dir=args.runs_dir,
        results_dir=args.results_dir,
        zoo_dir=args.zoo_dir,
        registry=args.registry,
        repo_id=args.repo_id,
    )
    publishing.check(folder, registry=args.registry)
    from sparse_keras.zoo import registry as _registry

    print(f"packaged {folder} (checked; registry {_registry.registry_path(args.registry)} updated)")
    return 0


def _run_check(args: argparse.Namespace) -> int:
    from sparse_keras.zoo import publishing

    failed = 0
    for item in args.folders:
        folder = _folder(item)
        try:
            publishing.check(folder, registry=args.registry)
        except publishing.ZooCheckError as err:
            print(err)
            failed += 1
        else:
            print(f"{folder}: OK")
    return 1 if failed else 0


def _run_embed(args: argparse.Namespace) -> int:
    from sparse_keras.zoo import publishing

    for folder in publishing.refresh_embedded(args.zoo_dir, names=tuple(args.names)):
        print(f"embedded {folder}")
    return 0


def _run_publish(args: argparse.Namespace) -> int:
    from sparse_keras.zoo import publishing

    folder = _folder(args.folder)
    try:
        commit = publishing.publish(
            folder, registry=args.registry, repo_id=args.repo_id, private=args.private
        )
    except publishing.ZooCheckError as err:
        print(f"{err}\nNothing was uploaded.")
        return 1
    print(f"uploaded {folder} as commit {commit}; the registry now pins that revision (commit it).")
    return 0


REGISTRY_HELP = "registry file (default: $SPARSE_KERAS_ZOO_REGISTRY or the package's registry.json)"


def add_packaging_commands(subparsers, parents=()) -> None:
    """Adds `package`, `check` and `publish` to an argparse sub-command group.

    Args:
        subparsers: The object returned by `ArgumentParser.add_subparsers()`.
        parents: Parsers whose options every command shares (e.g. `--verbose`).
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

    p = subparsers.add_parser(
        "check", parents=parents, help="validate zoo folders (card, metrics, weights, checksums)"
    )
    p.add_argument(
        "folders",
        nargs="+",
        metavar="NAME_OR_FOLDER",
        help="zoo folder, or a zoo name (looked up in the checkout's zoo/)",
    )
    p.add_argument("--registry", default=None, help=REGISTRY_HELP)
    p.set_defaults(func=_run_check)

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


def add_parser(subparsers, parents=()) -> argparse.ArgumentParser:
    """Adds `sparse-keras zoo {list,info,package,check,publish}`."""
    parents = list(parents)
    zoo = subparsers.add_parser(
        "zoo",
        help="pretrained models: list, info, package, check, publish",
        description="The pretrained model zoo. See docs/zoo.md.",
    )
    commands = zoo.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND", required=True)
    p = commands.add_parser("list", parents=parents, help="the zoo's models and their metrics")
    p.add_argument("--registry", default=None, help=REGISTRY_HELP)
    p.set_defaults(func=_run_list)
    p = commands.add_parser("info", parents=parents, help="registry entry of one model (JSON)")
    p.add_argument("name", metavar="NAME", help="zoo name, e.g. mnist_sparse_cnn2")
    p.add_argument("--registry", default=None, help=REGISTRY_HELP)
    p.set_defaults(func=_run_info)
    add_packaging_commands(commands, parents)
    return zoo
