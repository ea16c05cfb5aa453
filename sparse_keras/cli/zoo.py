"""`sparse-keras zoo ...`: list, info, check.

Making and publishing zoo folders is maintainer tooling: `python -m training.publish
package|check|publish|embed` (`training/packaging.py`), which shares `add_check_command`.
"""

from __future__ import annotations

import argparse
import json
import pathlib

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


def _run_check(args: argparse.Namespace) -> int:
    from sparse_keras.zoo import checks

    failed = 0
    for item in args.folders:
        folder = _folder(item)
        try:
            checks.check(folder, registry=args.registry)
        except checks.ZooCheckError as err:
            print(err)
            failed += 1
        else:
            print(f"{folder}: OK")
    return 1 if failed else 0


REGISTRY_HELP = "registry file (default: $SPARSE_KERAS_ZOO_REGISTRY or the package's registry.json)"


def add_check_command(subparsers, parents=()) -> None:
    """Adds `check` (validate zoo folders) to an argparse sub-command group.

    Shared with the maintainers' `python -m training.publish`, so both spell it the same.

    Args:
        subparsers: The object returned by `ArgumentParser.add_subparsers()`.
        parents: Parsers whose options every command shares (e.g. `--verbose`).
    """
    parents = list(parents)
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


def add_parser(subparsers, parents=()) -> argparse.ArgumentParser:
    """Adds `sparse-keras zoo {list,info,check}`."""
    parents = list(parents)
    zoo = subparsers.add_parser(
        "zoo",
        help="pretrained models: list, info, check",
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
    add_check_command(commands, parents)
    return zoo
